//! The controller's Prometheus metrics, registered into the registry the program passes in.

use std::sync::atomic::AtomicU64;

use ferrolb_api::addr::Family;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::allocator::{PoolCounters, PoolName};
use crate::engine::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the variant names are the label values
pub enum FamilyLabel {
    ipv4,
    ipv6,
}

impl From<Family> for FamilyLabel {
    fn from(f: Family) -> Self {
        match f {
            Family::V4 => FamilyLabel::ipv4,
            Family::V6 => FamilyLabel::ipv6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the variant names are the label values
pub enum AddressState {
    assigned,
    available,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub family: FamilyLabel,
    pub state: AddressState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    /// `Allocated`, a refusal reason (`PoolExhausted`, …) or `Released`.
    pub result: String,
}

/// Every metric the controller exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    pool_addresses: MetricFamily<PoolLabels, Gauge<f64, AtomicU64>>,
    allocations: MetricFamily<ResultLabels, Counter>,
    latency: Histogram,
    leader: Gauge,
    events_dropped: Counter,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            pool_addresses: MetricFamily::default(),
            allocations: MetricFamily::default(),
            // 1 ms .. ~33 s.
            latency: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.001, 2.0, 16,
            )),
            leader: Gauge::default(),
            events_dropped: Counter::default(),
        };
        registry.register(
            "pool_addresses",
            "Addresses of each pool and family, by state (assigned to Services, or available)",
            m.pool_addresses.clone(),
        );
        registry.register(
            "allocations",
            "Service status changes written, by result: Allocated, a refusal reason, or Released",
            m.allocations.clone(),
        );
        registry.register(
            "allocation_latency_seconds",
            "From a Service event seen to its status written",
            m.latency.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and writes, else 0",
            m.leader.clone(),
        );
        registry.register(
            "events_dropped",
            "Events not sent because the event queue was full",
            m.events_dropped.clone(),
        );
        m
    }

    pub fn set_pool(&self, pool: &PoolName, counters: PoolCounters) {
        for (family, c) in [
            (FamilyLabel::ipv4, counters.v4),
            (FamilyLabel::ipv6, counters.v6),
        ] {
            for (state, n) in [
                (AddressState::assigned, c.assigned),
                (AddressState::available, c.available),
            ] {
                self.pool_addresses
                    .get_or_create(&PoolLabels {
                        pool: pool.0.clone(),
                        family,
                        state,
                    })
                    .set(n as f64);
            }
        }
    }

    pub fn remove_pool(&self, pool: &PoolName) {
        for family in [FamilyLabel::ipv4, FamilyLabel::ipv6] {
            for state in [AddressState::assigned, AddressState::available] {
                self.pool_addresses.remove(&PoolLabels {
                    pool: pool.0.clone(),
                    family,
                    state,
                });
            }
        }
    }

    pub fn allocation(&self, outcome: Outcome) {
        let result = match outcome {
            Outcome::Condition(reason) => reason.as_str(),
            Outcome::Released => "Released",
        };
        self.allocations
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    pub fn latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::FamilyCounters;
    use ferrolb_api::conditions::IpAllocatedReason;

    #[test]
    fn exported_names_and_labels() {
        let mut registry = Registry::with_prefix("ferrolb");
        let m = Metrics::register(&mut registry);
        m.set_pool(
            &PoolName::from("p"),
            PoolCounters {
                v4: FamilyCounters {
                    assigned: 2,
                    available: 6,
                },
                v6: FamilyCounters::default(),
            },
        );
        m.allocation(Outcome::Condition(IpAllocatedReason::PoolExhausted));
        m.allocation(Outcome::Released);
        m.latency(0.004);
        m.set_leader(true);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"ferrolb_pool_addresses{pool="p",family="ipv4",state="assigned"} 2.0"#,
            r#"ferrolb_pool_addresses{pool="p",family="ipv4",state="available"} 6.0"#,
            r#"ferrolb_allocations_total{result="PoolExhausted"} 1"#,
            r#"ferrolb_allocations_total{result="Released"} 1"#,
            "ferrolb_allocation_latency_seconds_count 1",
            "ferrolb_leader 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        m.remove_pool(&PoolName::from("p"));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains(r#"pool="p""#), "{text}");
    }
}
