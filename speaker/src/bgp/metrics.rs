//! Prometheus metrics of the BGP sessions, registered into a registry the caller owns.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::config::PeerKey;
use super::fsm::ResetReason;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResetLabels {
    pub peer: String,
    pub reason: ResetReason,
}

impl EncodeLabelValue for ResetReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// `ferrolb_bgp_*` metrics. Cloning shares the same series.
#[derive(Debug, Clone, Default)]
pub struct BgpMetrics {
    session_up: Family<PeerLabels, Gauge>,
    announced_prefixes: Family<PeerLabels, Gauge>,
    updates_sent: Family<PeerLabels, Counter>,
    session_resets: Family<ResetLabels, Counter>,
}

impl BgpMetrics {
    /// Registers the metrics; pass the registry with prefix `ferrolb` (or a sub-registry).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "bgp_session_up",
            "1 while the BGP session with the peer is Established",
            m.session_up.clone(),
        );
        registry.register(
            "bgp_announced_prefixes",
            "Prefixes the peer currently has from this speaker",
            m.announced_prefixes.clone(),
        );
        registry.register(
            "bgp_updates_sent",
            "UPDATE messages sent to the peer",
            m.updates_sent.clone(),
        );
        registry.register(
            "bgp_session_resets",
            "Sessions (or connection attempts) that failed, by reason",
            m.session_resets.clone(),
        );
        m
    }

    pub(crate) fn peer(&self, peer: &PeerKey) -> PeerMetrics {
        PeerMetrics {
            metrics: self.clone(),
            labels: PeerLabels {
                peer: peer.to_string(),
            },
        }
    }
}

/// The series of one peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerMetrics {
    metrics: BgpMetrics,
    labels: PeerLabels,
}

impl PeerMetrics {
    pub(crate) fn set_up(&self, up: bool) {
        self.metrics
            .session_up
            .get_or_create(&self.labels)
            .set(i64::from(up));
    }

    pub(crate) fn set_announced(&self, n: usize) {
        self.metrics
            .announced_prefixes
            .get_or_create(&self.labels)
            .set(n as i64);
    }

    pub(crate) fn updates_sent(&self, n: u64) {
        if n > 0 {
            self.metrics
                .updates_sent
                .get_or_create(&self.labels)
                .inc_by(n);
        }
    }

    pub(crate) fn reset(&self, reason: ResetReason) {
        self.metrics
            .session_resets
            .get_or_create(&ResetLabels {
                peer: self.labels.peer.clone(),
                reason,
            })
            .inc();
    }

    /// Drops the gauges of a removed peer (counters stay: they only ever grow).
    pub(crate) fn remove(&self) {
        self.metrics.session_up.remove(&self.labels);
        self.metrics.announced_prefixes.remove(&self.labels);
    }
}
