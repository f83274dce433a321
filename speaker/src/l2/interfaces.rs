//! Which interfaces an address is announced on, and a live view of the node's interfaces.
//!
//! ```text
//!  kernel ──netlink RTMGRP_LINK/IFADDR──▶ LinkMonitor (wake-up only)
//!                                            │ readable: drain, getifaddrs
//!                                            ▼
//!                           watch::Sender<Arc<LinkTable>> ──▶ speaker core: select(), then
//!                                                              L2Announcer::set_links/set_owned
//! ```
//!
//! Changes are picked up by a netlink subscription rather than a periodic re-scan: the
//! kernel tells us within microseconds, idle costs nothing, and the message content is not
//! parsed at all (any notification triggers one getifaddrs re-read, and bursts of
//! notifications are coalesced because the socket is drained before re-reading).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::watch;

use super::frame::MacAddr;
use super::responder::LinkIdentity;
use crate::sys::packet::{self, IFF_LOOPBACK, IFF_RUNNING, IFF_UP, LinkMonitor, RawInterface};

/// A network interface name, as the kernel spells it (`eth0`, `bond0.100`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterfaceName(String);

impl InterfaceName {
    pub fn new(name: impl Into<String>) -> Self {
        InterfaceName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<&str> for InterfaceName {
    fn from(s: &str) -> Self {
        InterfaceName(s.to_owned())
    }
}

/// A /32 or /128.
fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

fn is_link_local(net: &IpNet) -> bool {
    matches!(net.addr(), IpAddr::V6(a) if a.is_unicast_link_local())
}

/// ARPHRD_ETHER: ARP and NDP as implemented here need Ethernet framing.
const HARDWARE_ETHERNET: u16 = 1;

/// One interface of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: InterfaceName,
    pub index: u32,
    pub mac: Option<MacAddr>,
    /// Administratively up and with carrier (IFF_UP and IFF_RUNNING).
    pub up: bool,
    pub loopback: bool,
    pub hardware_type: u16,
    pub addresses: Vec<IpNet>,
}

impl Link {
    /// The IPv6 link-local address, source of neighbour advertisements.
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        self.addresses.iter().find_map(|n| match n.addr() {
            IpAddr::V6(a) if a.is_unicast_link_local() => Some(a),
            _ => None,
        })
    }

    /// What the responder answers with on this link; `None` without a MAC.
    pub fn identity(&self) -> Option<LinkIdentity> {
        Some(LinkIdentity {
            mac: self.mac?,
            link_local: self.link_local(),
        })
    }

    /// Can carry ARP/NDP announcements at all: up, Ethernet, has a MAC, not excluded.
    fn usable(&self) -> bool {
        self.up
            && !self.loopback
            && self.hardware_type == HARDWARE_ETHERNET
            && self.mac.is_some()
            && !is_excluded_name(self.name.as_str())
    }

    /// Holds a subnet (not a host route) containing `addr`.
    fn has_subnet_containing(&self, addr: IpAddr) -> bool {
        self.addresses
            .iter()
            .any(|net| !is_host(net) && net.contains(&addr))
    }
}

/// Interfaces that are never chosen automatically: loopback, container plumbing, CNI
/// bridges and overlays, kube-proxy's IPVS dummy, tunnels. Announcing a service address on
/// them would either reach nobody or confuse the CNI.
pub fn is_excluded_name(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "lo",
        "kube-ipvs0",
        "kube-bridge",
        "kube-dummy-if",
        "nodelocaldns",
        "datapath",
        "ovs-system",
        "docker0",
        "cni0",
    ];
    const PREFIXES: &[&str] = &[
        "veth",
        "cni",
        "docker",
        "br-",
        "virbr",
        "flannel",
        "cali",
        "cilium_",
        "lxc",
        "tunl",
        "tun",
        "tap",
        "vxlan",
        "genev",
        "weave",
        "antrea-",
        "wg",
        "kube-",
        "nodelocal",
        "gre",
        "ipip",
        "sit",
        "ip6tnl",
        "erspan",
        "dummy",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A snapshot of the node's interfaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTable {
    links: BTreeMap<InterfaceName, Link>,
}

impl LinkTable {
    pub fn from_links(links: impl IntoIterator<Item = Link>) -> Self {
        LinkTable {
            links: links.into_iter().map(|l| (l.name.clone(), l)).collect(),
        }
    }

    fn from_raw(raw: Vec<RawInterface>) -> Self {
        LinkTable::from_links(raw.into_iter().map(|r| {
            Link {
                name: InterfaceName(r.name),
                index: r.index,
                mac: r.mac.map(MacAddr),
                up: r.flags & IFF_UP != 0 && r.flags & IFF_RUNNING != 0,
                loopback: r.flags & IFF_LOOPBACK != 0,
                hardware_type: r.hardware_type,
                // Only subnets and the IPv6 link-local address matter here; host addresses
                // (kube-ipvs0 holds one per Service) are left out, and their changes do not
                // wake the monitor (packet::notification_matters).
                addresses: r
                    .addresses
                    .into_iter()
                    .filter_map(|(a, p)| IpNet::new(a, p).ok())
                    .filter(|n| !is_host(n) || is_link_local(n))
                    .collect(),
            }
        }))
    }

    /// Reads the interfaces of the calling thread's network namespace.
    pub fn scan() -> io::Result<LinkTable> {
        Ok(LinkTable::from_raw(packet::list_interfaces()?))
    }

    pub fn get(&self, name: &InterfaceName) -> Option<&Link> {
        self.links.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
    }

    /// The interfaces to announce `addr` on.
    ///
    /// - `explicit` non-empty (the L2Advertisement's `interfaces`): those of them that exist
    ///   and are up, whatever their name (an admin may deliberately pick a bridge).
    /// - otherwise the usable interfaces holding a subnet that contains `addr`;
    /// - if none does, every usable interface (up, Ethernet, not excluded by
    ///   [`is_excluded_name`]): the address is on no local subnet, so the admin routes it to
    ///   the node's segment and any physical port may be the way in.
    pub fn select(&self, addr: IpAddr, explicit: &[InterfaceName]) -> Vec<InterfaceName> {
        if !explicit.is_empty() {
            let mut chosen: Vec<InterfaceName> = explicit
                .iter()
                .filter(|n| {
                    self.links.get(n).is_some_and(|l| {
                        l.up && l.mac.is_some() && l.hardware_type == HARDWARE_ETHERNET
                    })
                })
                .cloned()
                .collect();
            chosen.sort();
            chosen.dedup();
            return chosen;
        }
        let usable: Vec<&Link> = self.links.values().filter(|l| l.usable()).collect();
        let on_subnet: Vec<InterfaceName> = usable
            .iter()
            .filter(|l| l.has_subnet_containing(addr))
            .map(|l| l.name.clone())
            .collect();
        if !on_subnet.is_empty() {
            return on_subnet;
        }
        usable.into_iter().map(|l| l.name.clone()).collect()
    }
}

/// Keeps a [`LinkTable`] current for the network namespace it was started in.
///
/// Must be started from within a tokio runtime; the task ends when every receiver is gone.
pub fn watch_links() -> io::Result<watch::Receiver<Arc<LinkTable>>> {
    let monitor = LinkMonitor::open()?.into_async()?;
    // Subscribe before the first scan so no change between the two is missed.
    let (tx, rx) = watch::channel(Arc::new(LinkTable::scan()?));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                ready = monitor.readable() => {
                    let mut guard = match ready {
                        Ok(g) => g,
                        Err(error) => {
                            tracing::error!(%error, "interface monitor failed; interface changes are no longer picked up");
                            return;
                        }
                    };
                    let matters = match guard.get_inner().drain() {
                        Ok(matters) => matters,
                        Err(error) => {
                            tracing::warn!(%error, "reading interface notifications");
                            true
                        }
                    };
                    guard.clear_ready();
                    if !matters {
                        continue;
                    }
                    match LinkTable::scan() {
                        Ok(table) => {
                            tx.send_if_modified(|cur| {
                                if **cur == table {
                                    false
                                } else {
                                    *cur = Arc::new(table);
                                    true
                                }
                            });
                        }
                        Err(error) => tracing::warn!(%error, "listing interfaces"),
                    }
                }
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn link(name: &str, index: u32, up: bool, nets: &[&str]) -> Link {
        Link {
            name: name.into(),
            index,
            mac: Some(MacAddr([2, 0, 0, 0, 0, index as u8])),
            up,
            loopback: name == "lo",
            hardware_type: if name == "lo" { 772 } else { 1 },
            addresses: nets.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    fn table() -> LinkTable {
        LinkTable::from_links([
            link("lo", 1, true, &["127.0.0.1/8", "::1/128"]),
            link(
                "eth0",
                2,
                true,
                &["192.0.2.5/24", "2001:db8:1::5/64", "fe80::1/64"],
            ),
            link("eth1", 3, true, &["198.51.100.5/24"]),
            link("eth2", 4, false, &["203.0.113.5/24"]),
            link("cni0", 5, true, &["203.0.113.1/24"]),
            link("veth12ab", 6, true, &[]),
            link("kube-ipvs0", 7, true, &["192.0.2.10/32"]),
        ])
    }

    fn names(v: Vec<InterfaceName>) -> Vec<String> {
        v.into_iter().map(|n| n.0).collect()
    }

    #[test]
    fn subnet_match_wins() {
        let t = table();
        assert_eq!(
            names(t.select("192.0.2.10".parse().unwrap(), &[])),
            ["eth0"]
        );
        assert_eq!(
            names(t.select("2001:db8:1::10".parse().unwrap(), &[])),
            ["eth0"]
        );
        assert_eq!(
            names(t.select("198.51.100.77".parse().unwrap(), &[])),
            ["eth1"]
        );
    }

    #[test]
    fn no_subnet_falls_back_to_physical_up_interfaces_only() {
        let t = table();
        // 203.0.113.0/24 is on eth2 (down) and cni0 (excluded): neither counts.
        assert_eq!(
            names(t.select("203.0.113.9".parse().unwrap(), &[])),
            ["eth0", "eth1"]
        );
        assert_eq!(
            names(t.select("2001:db8:9::1".parse().unwrap(), &[])),
            ["eth0", "eth1"]
        );
    }

    #[test]
    fn explicit_list_is_used_as_given_if_present_and_up() {
        let t = table();
        let explicit = ["eth1".into(), "cni0".into(), "eth2".into(), "nope".into()];
        assert_eq!(
            names(t.select("192.0.2.10".parse().unwrap(), &explicit)),
            ["cni0", "eth1"]
        );
    }

    #[test]
    fn exclusions() {
        for n in [
            "lo",
            "veth0",
            "cni0",
            "docker0",
            "flannel.1",
            "cali123",
            "cilium_host",
            "kube-ipvs0",
            "tunl0",
            "vxlan.calico",
            "lxc1234",
            "wg0",
        ] {
            assert!(is_excluded_name(n), "{n}");
        }
        for n in ["eth0", "ens3", "enp1s0f0", "bond0", "bond0.100", "eno1"] {
            assert!(!is_excluded_name(n), "{n}");
        }
    }

    /// One route-netlink message: header of `kind`, then `body`, padded to 4 bytes.
    fn nlmsg(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = 16 + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        m.resize(len.div_ceil(4) * 4, 0);
        m
    }

    /// An address notification: ifaddrmsg, then one IFA_ADDRESS attribute.
    fn addr_msg(kind: u16, family: i32, prefix_len: u8, scope: u8) -> Vec<u8> {
        let mut body = vec![family as u8, prefix_len, 0, scope];
        body.extend_from_slice(&7u32.to_ne_bytes());
        let addr_len = if family == libc::AF_INET { 4 } else { 16 };
        body.extend_from_slice(&((4 + addr_len) as u16).to_ne_bytes());
        body.extend_from_slice(&1u16.to_ne_bytes());
        body.extend(std::iter::repeat_n(0xab, addr_len));
        nlmsg(kind, &body)
    }

    #[test]
    fn host_address_changes_do_not_wake_the_table_and_everything_else_does() {
        use crate::sys::packet::notification_matters;
        const NEWLINK: u16 = 16;
        const NEWADDR: u16 = 20;
        const DELADDR: u16 = 21;
        const UNIVERSE: u8 = 0;
        const HOST: u8 = 254;
        const LINK: u8 = 253;
        // kube-ipvs0's Service addresses: not wanted.
        assert!(!notification_matters(&addr_msg(
            NEWADDR,
            libc::AF_INET,
            32,
            UNIVERSE
        )));
        assert!(!notification_matters(&addr_msg(
            DELADDR,
            libc::AF_INET6,
            128,
            UNIVERSE
        )));
        assert!(!notification_matters(&addr_msg(
            NEWADDR,
            libc::AF_INET,
            32,
            HOST
        )));
        // Several in one datagram, still none wanted; one subnet among them is.
        let mut burst = addr_msg(NEWADDR, libc::AF_INET, 32, UNIVERSE);
        burst.extend(addr_msg(NEWADDR, libc::AF_INET6, 128, UNIVERSE));
        assert!(!notification_matters(&burst));
        burst.extend(addr_msg(NEWADDR, libc::AF_INET6, 64, UNIVERSE));
        assert!(notification_matters(&burst));
        // Subnets, link-local addresses (even as /128), links.
        assert!(notification_matters(&addr_msg(
            NEWADDR,
            libc::AF_INET,
            24,
            UNIVERSE
        )));
        assert!(notification_matters(&addr_msg(
            DELADDR,
            libc::AF_INET6,
            64,
            LINK
        )));
        assert!(notification_matters(&addr_msg(
            NEWADDR,
            libc::AF_INET6,
            128,
            LINK
        )));
        assert!(notification_matters(&nlmsg(NEWLINK, &[0; 16])));
        // What does not parse: re-read rather than miss a change.
        let whole = addr_msg(NEWADDR, libc::AF_INET, 32, UNIVERSE);
        assert!(notification_matters(&[]));
        assert!(notification_matters(&whole[..10]));
        assert!(notification_matters(&whole[..18]));
        let mut too_long = whole.clone();
        too_long[0] = 200;
        assert!(notification_matters(&too_long));
        let mut too_short = whole;
        too_short[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(notification_matters(&too_short));
    }

    #[test]
    fn the_table_keeps_subnets_and_link_local_addresses_only() {
        let raw = RawInterface {
            name: "eth0".into(),
            index: 2,
            flags: IFF_UP | IFF_RUNNING,
            hardware_type: 1,
            mac: Some([2, 0, 0, 0, 0, 9]),
            addresses: vec![
                ("192.0.2.10".parse().unwrap(), 24),
                ("192.0.2.99".parse().unwrap(), 32),
                ("2001:db8::5".parse().unwrap(), 128),
                ("2001:db8::1".parse().unwrap(), 64),
                ("fe80::9".parse().unwrap(), 64),
                ("fe80::10".parse().unwrap(), 128),
            ],
        };
        let t = LinkTable::from_raw(vec![raw]);
        let eth0 = t.get(&"eth0".into()).unwrap();
        let kept: Vec<String> = eth0.addresses.iter().map(ToString::to_string).collect();
        assert_eq!(
            kept,
            [
                "192.0.2.10/24",
                "2001:db8::1/64",
                "fe80::9/64",
                "fe80::10/128"
            ]
        );
        assert_eq!(eth0.link_local(), Some("fe80::9".parse().unwrap()));
    }

    #[test]
    fn link_local_and_identity() {
        let t = table();
        let eth0 = t.get(&"eth0".into()).unwrap();
        assert_eq!(eth0.link_local(), Some("fe80::1".parse().unwrap()));
        assert_eq!(eth0.identity().unwrap().mac, MacAddr([2, 0, 0, 0, 0, 2]));
    }
}
