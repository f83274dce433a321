//! The routes a speaker wants announced to one peer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::wire::{Community, Family, LargeCommunity};

/// What a route is announced with. Routes with equal attributes are packed together.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteAttrs {
    /// The address traffic for the route should go to: the node. Must be of the route's
    /// family (IPv4 next hop for IPv4 routes, IPv6 for IPv6).
    pub next_hop: IpAddr,
    pub communities: BTreeSet<Community>,
    pub large_communities: BTreeSet<LargeCommunity>,
    /// Sent to iBGP peers only; eBGP peers never see LOCAL_PREF (RFC 4271 §5.1.5).
    pub local_pref: Option<u32>,
}

impl RouteAttrs {
    pub fn new(next_hop: IpAddr) -> Self {
        Self {
            next_hop,
            communities: BTreeSet::new(),
            large_communities: BTreeSet::new(),
            local_pref: None,
        }
    }
}

/// Why a route was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("route {prefix} has next hop {next_hop} of the other address family")]
    NextHopFamily { prefix: IpNet, next_hop: IpAddr },
}

/// A set of routes keyed by prefix. Attributes are shared between routes (one
/// allocation per distinct attribute set, not per route).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSet {
    routes: BTreeMap<IpNet, Arc<RouteAttrs>>,
}

impl RouteSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a route. The prefix is normalised (host bits cleared).
    pub fn insert(&mut self, prefix: IpNet, attrs: Arc<RouteAttrs>) -> Result<(), RouteError> {
        if prefix.addr().is_ipv4() != attrs.next_hop.is_ipv4() {
            return Err(RouteError::NextHopFamily {
                prefix,
                next_hop: attrs.next_hop,
            });
        }
        self.routes.insert(prefix.trunc(), attrs);
        Ok(())
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<Arc<RouteAttrs>> {
        self.routes.remove(&prefix.trunc())
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&Arc<RouteAttrs>> {
        self.routes.get(prefix)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&IpNet, &Arc<RouteAttrs>)> {
        self.routes.iter()
    }

    /// Routes of one family.
    pub fn family(&self, family: Family) -> impl Iterator<Item = (&IpNet, &Arc<RouteAttrs>)> {
        self.routes
            .iter()
            .filter(move |(p, _)| family_of(p) == family)
    }

    pub fn count(&self, family: Family) -> usize {
        self.family(family).count()
    }

    pub(crate) fn insert_unchecked(&mut self, prefix: IpNet, attrs: Arc<RouteAttrs>) {
        self.routes.insert(prefix, attrs);
    }
}

pub fn family_of(prefix: &IpNet) -> Family {
    match prefix {
        IpNet::V4(_) => Family::Ipv4Unicast,
        IpNet::V6(_) => Family::Ipv6Unicast,
    }
}

/// The difference between what a peer has and what it should have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteDiff {
    /// New routes and routes whose attributes changed (re-announcing replaces them).
    pub announce: Vec<(IpNet, Arc<RouteAttrs>)>,
    pub withdraw: Vec<IpNet>,
}

impl RouteDiff {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }
}

/// Compares `current` (what the peer was sent) with `desired`, limited to `families`,
/// in one ordered walk over both.
pub fn diff(current: &RouteSet, desired: &RouteSet, families: &BTreeSet<Family>) -> RouteDiff {
    use std::cmp::Ordering;
    let mut out = RouteDiff::default();
    let mut have = current.routes.iter().peekable();
    let mut want = desired
        .routes
        .iter()
        .filter(|(p, _)| families.contains(&family_of(p)))
        .peekable();
    loop {
        match (have.peek(), want.peek()) {
            (None, None) => break,
            (Some((p, _)), None) => {
                out.withdraw.push(**p);
                have.next();
            }
            (None, Some((p, a))) => {
                out.announce.push((**p, Arc::clone(a)));
                want.next();
            }
            (Some((hp, ha)), Some((wp, wa))) => match hp.cmp(wp) {
                Ordering::Less => {
                    out.withdraw.push(**hp);
                    have.next();
                }
                Ordering::Greater => {
                    out.announce.push((**wp, Arc::clone(wa)));
                    want.next();
                }
                Ordering::Equal => {
                    if ha != wa {
                        out.announce.push((**wp, Arc::clone(wa)));
                    }
                    have.next();
                    want.next();
                }
            },
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn attrs(nh: &str, lp: Option<u32>) -> Arc<RouteAttrs> {
        Arc::new(RouteAttrs {
            local_pref: lp,
            ..RouteAttrs::new(nh.parse().unwrap())
        })
    }

    #[test]
    fn next_hop_must_match_family() {
        let mut set = RouteSet::new();
        let err = set
            .insert("2001:db8::1/128".parse().unwrap(), attrs("192.0.2.1", None))
            .unwrap_err();
        assert!(err.to_string().contains("other address family"));
        assert!(set.is_empty());
    }

    #[test]
    fn diff_announces_new_changed_and_withdraws_removed() {
        let both: BTreeSet<Family> = Family::ALL.into_iter().collect();
        let mut current = RouteSet::new();
        let mut desired = RouteSet::new();
        let a = attrs("192.0.2.1", None);
        let b = attrs("192.0.2.1", Some(200));
        current
            .insert("198.51.100.1/32".parse().unwrap(), a.clone())
            .unwrap();
        current
            .insert("198.51.100.2/32".parse().unwrap(), a.clone())
            .unwrap();
        current
            .insert("198.51.100.3/32".parse().unwrap(), a.clone())
            .unwrap();
        desired
            .insert("198.51.100.2/32".parse().unwrap(), a.clone())
            .unwrap();
        desired
            .insert("198.51.100.3/32".parse().unwrap(), b.clone())
            .unwrap();
        desired
            .insert("198.51.100.4/32".parse().unwrap(), a.clone())
            .unwrap();
        desired
            .insert(
                "2001:db8::4/128".parse().unwrap(),
                attrs("2001:db8::1", None),
            )
            .unwrap();
        let d = diff(&current, &desired, &both);
        assert_eq!(
            d.withdraw,
            vec!["198.51.100.1/32".parse::<IpNet>().unwrap()]
        );
        let announced: Vec<String> = d.announce.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            announced,
            ["198.51.100.3/32", "198.51.100.4/32", "2001:db8::4/128"]
        );
        // A family the peer does not speak is left out.
        let v4: BTreeSet<Family> = [Family::Ipv4Unicast].into_iter().collect();
        assert_eq!(diff(&current, &desired, &v4).announce.len(), 2);
        assert!(diff(&desired, &desired, &both).is_empty());
    }
}
