//! The speaker core's metrics (the L2 driver, the membership and the BGP sessions register
//! their own). Registered into the caller's registry, prefixed `ferrolb`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::announce::{NotAnnounced, Plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum ProtocolLabel {
    L2,
    Bgp,
}

impl EncodeLabelValue for NotAnnounced {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub protocol: ProtocolLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub protocol: ProtocolLabel,
    pub reason: NotAnnounced,
}

/// `ferrolb_announced{protocol}` and `ferrolb_not_announced{protocol,reason}`.
#[derive(Debug, Clone, Default)]
pub struct SpeakerMetrics {
    pub announced: Family<ProtocolLabels, Gauge>,
    pub not_announced: Family<ReasonLabels, Gauge>,
}

impl SpeakerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = SpeakerMetrics::default();
        registry.register(
            "announced",
            "Service addresses this node announces, by protocol",
            m.announced.clone(),
        );
        registry.register(
            "not_announced",
            "Service addresses this node does not announce, by protocol and reason",
            m.not_announced.clone(),
        );
        m
    }

    /// Sets every gauge from `plan`.
    pub fn observe(&self, plan: &Plan) {
        let mut bgp_announced = std::collections::BTreeSet::new();
        let mut counts: std::collections::BTreeMap<(bool, NotAnnounced), i64> =
            std::collections::BTreeMap::new();
        for out in plan.services.values() {
            for reason in out.l2.values().filter_map(|o| o.here.as_ref().err()) {
                *counts.entry((true, *reason)).or_default() += 1;
            }
            for (addr, o) in &out.bgp {
                match o {
                    Ok(_) => {
                        bgp_announced.insert(*addr);
                    }
                    Err(reason) => *counts.entry((false, *reason)).or_default() += 1,
                }
            }
        }
        let set = |protocol, n: usize| {
            self.announced
                .get_or_create(&ProtocolLabels { protocol })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set(ProtocolLabel::L2, plan.l2.len());
        set(ProtocolLabel::Bgp, bgp_announced.len());
        for (l2, protocol) in [(true, ProtocolLabel::L2), (false, ProtocolLabel::Bgp)] {
            for reason in NotAnnounced::ALL {
                self.not_announced
                    .get_or_create(&ReasonLabels { protocol, reason })
                    .set(counts.get(&(l2, reason)).copied().unwrap_or(0));
            }
        }
    }
}
