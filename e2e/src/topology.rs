//! Names and addresses of the lab network, computed from the number of nodes. Pure: nothing
//! here touches the machine, so the plan can be checked without root.
//!
//! ```text
//!                    flb-client 203.0.113.10 / 2001:db8:203::10
//!                         │ eth0
//!                         │ eth1 203.0.113.1 / 2001:db8:203::1
//!                    flb-router ── BIRD or FRR, AS 64512, ECMP into its kernel
//!                         │ br0 192.0.2.1 / 2001:db8:2::1   (the node segment)
//!                         │     192.0.2.250:6443 ─ forwarded ─► root namespace 127.0.0.1:6443
//!    ┌──────────────┬─────┴────────┬──────────────┐
//!  flb-node1      flb-node2  …   flb-nodeN     flb-l2client
//!  192.0.2.11     192.0.2.12     192.0.2.1N    192.0.2.100
//!  BIRD AS 64600, speaker, agent (kubelet + kube-proxy view)
//!
//!  root namespace: etcd, kube-apiserver, controller-manager, controller — on loopback only
//! ```
//!
//! The root namespace's network is left exactly as it is: no address, route, link or sysctl.
//! (It may well use these very ranges for the machine's own uplink: this one has 192.0.2.2/24
//! on eth0.) Nodes reach the API server through `lab apiproxy`, a forwarder process in the root
//! namespace whose listening socket was made inside flb-router.
//!
//! Every address on an interface, in a route or in a packet is from the documentation ranges
//! (RFC 5737, RFC 3849). Cluster IPs and pod IPs are different: the lab has no kube-proxy for
//! cluster IPs and no pod network, so those addresses exist only as API data. Kubernetes needs
//! room for 10,000 Services' cluster IPs (the benchmarks create that many), which no IPv4
//! documentation /24 holds, so IPv4 cluster and pod IPs come from the private ranges
//! Kubernetes uses by default; their IPv6 counterparts fit in 2001:db8::/32.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Largest lab: node addresses are 192.0.2.11 and up, below the L2 client's 192.0.2.100.
pub const MAX_NODES: u8 = 16;

/// AS numbers of the lab's BGP speakers.
pub const ROUTER_ASN: u32 = 64512;
/// Every node's BIRD uses one AS, so one BGPPeer object serves all speakers.
pub const NODE_ASN: u32 = 64600;
/// The AS ferrolb's speaker uses towards its node's BIRD (examples/lab/).
pub const SPEAKER_ASN: u32 = 64700;

/// The API server's port at API_ADDR4 (the forwarder's side, inside flb-router). The root
/// namespace's loopback ports are picked free by each `lab up` (state::Ports).
pub const APISERVER_PORT: u16 = 6443;

/// Namespaces the lab owns. Helpers' private test namespaces (`flb-bgpt-*`, `flb-l2t-*`)
/// are never among them.
pub const ROUTER_NS: &str = "flb-router";
pub const CLIENT_NS: &str = "flb-client";
pub const L2CLIENT_NS: &str = "flb-l2client";
/// The bridge in flb-router that forms the node segment.
pub const BRIDGE: &str = "br0";
/// Where a node keeps the Service addresses, as kube-proxy in IPVS mode does.
pub const IPVS_LINK: &str = "kube-ipvs0";

/// Which routing daemon runs in flb-router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouterKind {
    Bird,
    Frr,
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouterKind::Bird => "bird",
            RouterKind::Frr => "frr",
        })
    }
}

impl FromStr for RouterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bird" => Ok(RouterKind::Bird),
            "frr" => Ok(RouterKind::Frr),
            other => Err(format!("unknown router {other:?}: expected bird or frr")),
        }
    }
}

/// A lab node, numbered from 1. Its Kubernetes name is `node<N>`, its namespace `flb-node<N>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u8);

impl NodeId {
    pub fn name(self) -> String {
        format!("node{}", self.0)
    }
    pub fn netns(self) -> String {
        format!("flb-node{}", self.0)
    }
    /// The node's address on the segment, 192.0.2.(10+N).
    pub fn addr4(self) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 10 + self.0)
    }
    /// 2001:db8:2::(0x10+N): reads like the IPv4 one for nodes 1–9.
    pub fn addr6(self) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10 + u16::from(self.0))
    }
    /// The router's port towards this node on the bridge.
    pub fn router_port(self) -> String {
        format!("n{}", self.0)
    }
    /// IPv4 pod addresses of this node (API data only, see the module comment).
    pub fn pod_net4(self) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::new(10, 244, self.0, 0), 24).expect("prefix length 24 is valid")
    }
    /// IPv6 pod addresses of this node.
    pub fn pod_net6(self) -> Ipv6Net {
        Ipv6Net::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0x244, u16::from(self.0), 0, 0, 0, 0),
            64,
        )
        .expect("prefix length 64 is valid")
    }
}

impl FromStr for NodeId {
    type Err = String;
    /// Accepts `node2`, `flb-node2` or `2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("flb-").unwrap_or(s);
        let digits = digits.strip_prefix("node").unwrap_or(digits);
        match digits.parse::<u8>() {
            Ok(n) if (1..=MAX_NODES).contains(&n) => Ok(NodeId(n)),
            _ => Err(format!(
                "{s:?} is not a lab node: expected node1..node{MAX_NODES}"
            )),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// The whole plan for a lab of `nodes` nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    pub nodes: u8,
    pub router: RouterKind,
}

/// The node segment.
pub const SEGMENT4: Ipv4Net = net4(192, 0, 2, 0, 24);
pub const SEGMENT6: Ipv6Net = net6([0x2001, 0xdb8, 2, 0, 0, 0, 0, 0], 64);
/// The client's subnet behind the router.
pub const CLIENT_SUBNET4: Ipv4Net = net4(203, 0, 113, 0, 24);
pub const CLIENT_SUBNET6: Ipv6Net = net6([0x2001, 0xdb8, 0x203, 0, 0, 0, 0, 0], 64);
/// Addresses BGP may carry from a node to the router (the lab's BGP pools live here).
pub const BGP_SERVICES4: Ipv4Net = net4(198, 51, 100, 0, 24);
pub const BGP_SERVICES6: Ipv6Net = net6([0x2001, 0xdb8, 0x198, 0, 0, 0, 0, 0], 48);
/// Cluster IP ranges given to the API server (API data only, see the module comment).
pub const CLUSTER_IPS4: Ipv4Net = net4(10, 96, 0, 0, 16);
pub const CLUSTER_IPS6: Ipv6Net = net6([0x2001, 0xdb8, 0x96, 0, 0, 0, 0, 0], 108);

pub const ROUTER_ADDR4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const ROUTER_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
pub const ROUTER_CLIENT_ADDR4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const ROUTER_CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x203, 0, 0, 0, 0, 1);
pub const CLIENT_ADDR4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x203, 0, 0, 0, 0, 0x10);
pub const L2CLIENT_ADDR4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub const L2CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
/// The API server's address on the node segment (on flb-router's bridge, forwarded to the
/// root namespace's loopback).
pub const API_ADDR4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 250);

const fn net4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    match Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len) {
        Ok(n) => n,
        Err(_) => panic!("invalid prefix length"),
    }
}

const fn net6(s: [u16; 8], len: u8) -> Ipv6Net {
    match Ipv6Net::new(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    ) {
        Ok(n) => n,
        Err(_) => panic!("invalid prefix length"),
    }
}

impl Topology {
    pub fn new(nodes: u8, router: RouterKind) -> Result<Self, String> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(format!(
                "--nodes {nodes}: the lab has 1 to {MAX_NODES} nodes"
            ));
        }
        Ok(Topology { nodes, router })
    }

    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        (1..=self.nodes).map(NodeId)
    }

    pub fn has_node(&self, node: NodeId) -> bool {
        (1..=self.nodes).contains(&node.0)
    }

    /// Every namespace this lab creates, router first (the others hang off its bridge).
    pub fn namespaces(&self) -> Vec<String> {
        let mut all = vec![
            ROUTER_NS.to_string(),
            CLIENT_NS.to_string(),
            L2CLIENT_NS.to_string(),
        ];
        all.extend(self.node_ids().map(NodeId::netns));
        all
    }

    /// Every address the lab configures on an interface.
    pub fn configured_addresses(&self) -> Vec<IpAddr> {
        let mut all: Vec<IpAddr> = vec![
            ROUTER_ADDR4.into(),
            ROUTER_ADDR6.into(),
            ROUTER_CLIENT_ADDR4.into(),
            ROUTER_CLIENT_ADDR6.into(),
            CLIENT_ADDR4.into(),
            CLIENT_ADDR6.into(),
            L2CLIENT_ADDR4.into(),
            L2CLIENT_ADDR6.into(),
            API_ADDR4.into(),
        ];
        for n in self.node_ids() {
            all.push(n.addr4().into());
            all.push(n.addr6().into());
        }
        all
    }
}

/// Whether a namespace name is one the lab creates (and so one `lab down` may remove).
pub fn is_lab_namespace(name: &str) -> bool {
    if [ROUTER_NS, CLIENT_NS, L2CLIENT_NS].contains(&name) {
        return true;
    }
    name.strip_prefix("flb-node")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The documentation ranges every on-the-wire address of the lab must come from.
pub fn documentation_ranges() -> [IpNet; 4] {
    [
        net4(192, 0, 2, 0, 24).into(),
        net4(198, 51, 100, 0, 24).into(),
        net4(203, 0, 113, 0, 24).into(),
        net6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32).into(),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_configured_address_is_documentation_space() {
        let topo = Topology::new(MAX_NODES, RouterKind::Bird).unwrap();
        let docs = documentation_ranges();
        let mut configured = topo.configured_addresses();
        for net in [SEGMENT4.into(), CLIENT_SUBNET4.into(), BGP_SERVICES4.into()] {
            let net: IpNet = net;
            configured.push(net.addr());
        }
        for net in [SEGMENT6, CLIENT_SUBNET6, BGP_SERVICES6, CLUSTER_IPS6] {
            configured.push(net.addr().into());
        }
        for n in topo.node_ids() {
            configured.push(n.pod_net6().addr().into());
        }
        for addr in configured {
            assert!(
                docs.iter().any(|d| d.contains(&addr)),
                "{addr} outside documentation space"
            );
        }
    }

    #[test]
    fn addresses_are_unique_and_on_their_subnets() {
        let topo = Topology::new(MAX_NODES, RouterKind::Bird).unwrap();
        let all = topo.configured_addresses();
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(all.len(), dedup.len(), "duplicate address in {all:?}");
        for n in topo.node_ids() {
            assert!(SEGMENT4.contains(&n.addr4()));
            assert!(SEGMENT6.contains(&n.addr6()));
            assert!(
                n.addr4() < L2CLIENT_ADDR4,
                "{n} collides with the L2 client range"
            );
            assert!(!BGP_SERVICES4.contains(&n.addr4()));
        }
    }

    #[test]
    fn node_ids_parse_in_every_spelling() {
        assert_eq!("node2".parse::<NodeId>(), Ok(NodeId(2)));
        assert_eq!("flb-node2".parse::<NodeId>(), Ok(NodeId(2)));
        assert_eq!("2".parse::<NodeId>(), Ok(NodeId(2)));
        assert!("node0".parse::<NodeId>().is_err());
        assert!("node17".parse::<NodeId>().is_err());
        assert!("router".parse::<NodeId>().is_err());
    }

    #[test]
    fn only_lab_namespaces_are_claimed() {
        for ns in [
            "flb-node1",
            "flb-node12",
            "flb-router",
            "flb-client",
            "flb-l2client",
        ] {
            assert!(is_lab_namespace(ns), "{ns}");
        }
        for ns in [
            "flb-bgpt-1",
            "flb-l2t-a",
            "flb-node",
            "flb-nodex",
            "flb-router2",
            "default",
        ] {
            assert!(!is_lab_namespace(ns), "{ns}");
        }
    }

    #[test]
    fn node_counts_outside_the_range_are_refused() {
        assert!(Topology::new(0, RouterKind::Bird).is_err());
        assert!(Topology::new(MAX_NODES + 1, RouterKind::Frr).is_err());
        assert_eq!(
            Topology::new(3, RouterKind::Frr)
                .unwrap()
                .namespaces()
                .len(),
            6
        );
    }
}
