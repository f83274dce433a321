//! L2 counters. Registered into a registry the caller passes in (the speaker's, created with
//! prefix `ferrolb`), never a global one.
//!
//! Every frame the socket filter lets through counts once in `l2_requests_received`, and
//! then exactly once in one of `l2_responses_sent`, `l2_frames_ignored`,
//! `l2_frames_malformed` or `l2_send_errors`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::responder::{IgnoreReason, Protocol};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum ProtocolLabel {
    Arp,
    Ndp,
}

impl From<Protocol> for ProtocolLabel {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Arp => ProtocolLabel::Arp,
            Protocol::Ndp => ProtocolLabel::Ndp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum ReasonLabel {
    NotARequest,
    NotOwned,
    OwnFrame,
    OtherProtocol,
    Gratuitous,
}

impl From<IgnoreReason> for ReasonLabel {
    fn from(r: IgnoreReason) -> Self {
        match r {
            IgnoreReason::NotARequest => ReasonLabel::NotARequest,
            IgnoreReason::NotOwned => ReasonLabel::NotOwned,
            IgnoreReason::OwnFrame => ReasonLabel::OwnFrame,
            IgnoreReason::OtherProtocol => ReasonLabel::OtherProtocol,
            IgnoreReason::Gratuitous => ReasonLabel::Gratuitous,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FrameLabels {
    pub protocol: ProtocolLabel,
    pub interface: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct IgnoredLabels {
    pub protocol: ProtocolLabel,
    pub interface: String,
    pub reason: ReasonLabel,
}

/// Handles to the L2 counters; cheap to clone (shared counters).
#[derive(Debug, Clone, Default)]
pub struct L2Metrics {
    pub requests_received: Family<FrameLabels, Counter>,
    pub responses_sent: Family<FrameLabels, Counter>,
    pub gratuitous_sent: Family<FrameLabels, Counter>,
    pub ignored: Family<IgnoredLabels, Counter>,
    pub malformed: Family<FrameLabels, Counter>,
    pub send_errors: Family<FrameLabels, Counter>,
}

impl L2Metrics {
    /// Creates the counters and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> L2Metrics {
        let m = L2Metrics::default();
        registry.register(
            "l2_requests_received",
            "ARP and neighbour solicitation frames received on announcing interfaces",
            m.requests_received.clone(),
        );
        registry.register(
            "l2_responses_sent",
            "ARP replies and neighbour advertisements sent in answer to a request",
            m.responses_sent.clone(),
        );
        registry.register(
            "l2_gratuitous_sent",
            "gratuitous ARP and unsolicited neighbour advertisements sent",
            m.gratuitous_sent.clone(),
        );
        registry.register(
            "l2_frames_ignored",
            "well-formed frames not answered, by reason",
            m.ignored.clone(),
        );
        registry.register(
            "l2_frames_malformed",
            "truncated or malformed ARP/NDP frames dropped",
            m.malformed.clone(),
        );
        registry.register(
            "l2_send_errors",
            "frames the kernel refused to send",
            m.send_errors.clone(),
        );
        m
    }

    pub(crate) fn frame(protocol: Protocol, interface: &str) -> FrameLabels {
        FrameLabels {
            protocol: protocol.into(),
            interface: interface.to_owned(),
        }
    }

    /// Sum of a family's counters over all label sets matching `protocol` (for tests and
    /// benchmarks).
    pub fn total(
        family: &Family<FrameLabels, Counter>,
        interface: &str,
        protocol: Protocol,
    ) -> u64 {
        family
            .get_or_create(&Self::frame(protocol, interface))
            .get()
    }

    /// The ignored-frame count for one reason (for tests and benchmarks).
    pub fn ignored_total(&self, interface: &str, protocol: Protocol, reason: IgnoreReason) -> u64 {
        self.ignored
            .get_or_create(&IgnoredLabels {
                protocol: protocol.into(),
                interface: interface.to_owned(),
                reason: reason.into(),
            })
            .get()
    }
}
