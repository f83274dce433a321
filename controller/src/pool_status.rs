//! An `IPAddressPool`'s status from the allocator's view of it: counters per family and the
//! `Valid` and `Overlapping` conditions. Pure; [`crate::reconciler`] writes it at most once a
//! second per pool, and only when it differs from what the pool carries.

use ferrolb_api::IPAddressPoolStatus;
use ferrolb_api::conditions::{ConfigConditionType, ConfigReason};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::engine::PoolView;

fn saturating_u64(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn condition(
    type_: ConfigConditionType,
    ok: bool,
    reason: ConfigReason,
    message: String,
    generation: Option<i64>,
    previous: &[Condition],
    now: Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_.as_str() && c.status == status)
        .map_or(now, |c| c.last_transition_time.0);
    Condition {
        type_: type_.as_str().to_string(),
        status: status.to_string(),
        reason: reason.as_str().to_string(),
        message,
        observed_generation: generation,
        last_transition_time: Time(since),
    }
}

/// The status the pool should have. `previous` (its current status) keeps the
/// `lastTransitionTime` of conditions whose status did not flip.
pub fn pool_status(
    view: &PoolView,
    previous: Option<&IPAddressPoolStatus>,
    now: Timestamp,
) -> IPAddressPoolStatus {
    let prev = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let valid = match &view.valid {
        Ok(()) => condition(
            ConfigConditionType::Valid,
            true,
            ConfigReason::Accepted,
            "every address entry and selector is valid".into(),
            view.generation,
            prev,
            now,
        ),
        Err(e) => condition(
            ConfigConditionType::Valid,
            false,
            e.reason,
            format!("{}; the pool is ignored until it is fixed", e.message),
            view.generation,
            prev,
            now,
        ),
    };
    let overlapping = if view.overlapping.is_empty() {
        condition(
            ConfigConditionType::Overlapping,
            false,
            ConfigReason::NoOverlap,
            "no address of this pool is in another pool".into(),
            view.generation,
            prev,
            now,
        )
    } else {
        let names: Vec<&str> = view.overlapping.iter().map(|p| p.0.as_str()).collect();
        let which = if names.len() == 1 { "pool" } else { "pools" };
        condition(
            ConfigConditionType::Overlapping,
            true,
            ConfigReason::OverlapsOtherPool,
            format!(
                "some addresses are also in {which} {}; each address still goes to one service only",
                names.join(", ")
            ),
            view.generation,
            prev,
            now,
        )
    };
    IPAddressPoolStatus {
        assigned_ipv4: saturating_u64(view.counters.v4.assigned),
        available_ipv4: saturating_u64(view.counters.v4.available),
        assigned_ipv6: saturating_u64(view.counters.v6.assigned),
        available_ipv6: view.counters.v6.available.to_string(),
        conditions: vec![valid, overlapping],
    }
}

/// Whether two statuses say the same (conditions compared without their times).
pub fn same_status(a: &IPAddressPoolStatus, b: &IPAddressPoolStatus) -> bool {
    let key = |c: &Condition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            c.observed_generation,
        )
    };
    let mut ca: Vec<_> = a.conditions.iter().map(key).collect();
    let mut cb: Vec<_> = b.conditions.iter().map(key).collect();
    ca.sort();
    cb.sort();
    a.assigned_ipv4 == b.assigned_ipv4
        && a.available_ipv4 == b.available_ipv4
        && a.assigned_ipv6 == b.assigned_ipv6
        && a.available_ipv6 == b.available_ipv6
        && ca == cb
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::{FamilyCounters, PoolCounters, PoolName};
    use crate::convert::InvalidPool;

    fn view(overlapping: &[&str]) -> PoolView {
        PoolView {
            generation: Some(3),
            valid: Ok(()),
            counters: PoolCounters {
                v4: FamilyCounters {
                    assigned: 2,
                    available: 254,
                },
                v6: FamilyCounters {
                    assigned: 1,
                    available: u128::MAX,
                },
            },
            overlapping: overlapping.iter().map(|n| PoolName::from(*n)).collect(),
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn counters_per_family_with_ipv6_available_as_exact_decimal() {
        let s = pool_status(&view(&[]), None, t("2025-01-01T00:00:00Z"));
        assert_eq!(
            (s.assigned_ipv4, s.available_ipv4, s.assigned_ipv6),
            (2, 254, 1)
        );
        assert_eq!(s.available_ipv6, u128::MAX.to_string());
    }

    #[test]
    fn overlapping_names_the_other_pools() {
        let s = pool_status(&view(&["b", "c"]), None, t("2025-01-01T00:00:00Z"));
        let o = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Overlapping")
            .unwrap();
        assert_eq!(
            (o.status.as_str(), o.reason.as_str()),
            ("True", "OverlapsOtherPool")
        );
        assert!(o.message.contains("pools b, c"), "{}", o.message);
        assert_eq!(o.observed_generation, Some(3));
    }

    #[test]
    fn invalid_pool_is_valid_false_with_the_parser_message() {
        let mut v = view(&[]);
        v.valid = Err(InvalidPool {
            reason: ConfigReason::InvalidAddress,
            message: "spec.addresses: address entry \"x\" is bad".into(),
        });
        let s = pool_status(&v, None, t("2025-01-01T00:00:00Z"));
        let c = s.conditions.iter().find(|c| c.type_ == "Valid").unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InvalidAddress")
        );
        assert!(
            c.message
                .starts_with("spec.addresses: address entry \"x\" is bad")
        );
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let first = pool_status(&view(&[]), None, t("2025-01-01T00:00:00Z"));
        let again = pool_status(&view(&[]), Some(&first), t("2025-01-02T00:00:00Z"));
        assert_eq!(first, again);
        assert!(same_status(&first, &again));
        let flipped = pool_status(&view(&["b"]), Some(&first), t("2025-01-02T00:00:00Z"));
        let o = flipped
            .conditions
            .iter()
            .find(|c| c.type_ == "Overlapping")
            .unwrap();
        assert_eq!(o.last_transition_time.0, t("2025-01-02T00:00:00Z"));
        assert!(!same_status(&first, &flipped));
    }

    #[test]
    fn a_counter_change_is_a_different_status() {
        let a = pool_status(&view(&[]), None, t("2025-01-01T00:00:00Z"));
        let mut v = view(&[]);
        v.counters.v4.assigned = 3;
        let b = pool_status(&v, Some(&a), t("2025-01-01T00:00:00Z"));
        assert!(!same_status(&a, &b));
    }
}
