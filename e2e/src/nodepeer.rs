//! The routing daemon on a lab node: BIRD with examples/lab/bird/node.conf (the default), or,
//! to prove the speaker against other implementations, FRR's bgpd or GoBGP in the same role
//! (`lab up --node-daemons node2=frr,node3=gobgp`):
//!
//! ```text
//!   speaker ──eBGP over 127.0.0.1, AS 64700 → 64600──▶ node daemon (passive, multihop)
//!                                                        │ only Service prefixes in
//!                                                        │ (198.51.100.0/24, 2001:db8:198::/48)
//!                                                        ▼ next hop self
//!                                   flb-router ◀── eBGP per family, AS 64600 → 64512
//! ```
//!
//! Whatever the daemon, it is the lab part `bird NODE` (`lab kill bird node2` stops FRR there),
//! and it keeps routes out of the node's kernel (FRR runs without zebra, GoBGP has none).
//! What the tests read back — the session with the speaker and the routes it sent — comes
//! from each daemon's own CLI.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::cmd;
use crate::error::{LabError, Result};
use crate::procs::ProcSpec;
use crate::state::{Part, Paths, write_file};
use crate::topology::{self as t, MAX_NODES, NodeId};

/// Which daemon runs on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeDaemon {
    #[default]
    Bird,
    Frr,
    Gobgp,
}

impl fmt::Display for NodeDaemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeDaemon::Bird => "bird",
            NodeDaemon::Frr => "frr",
            NodeDaemon::Gobgp => "gobgp",
        })
    }
}

impl FromStr for NodeDaemon {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "bird" => Ok(NodeDaemon::Bird),
            "frr" => Ok(NodeDaemon::Frr),
            "gobgp" => Ok(NodeDaemon::Gobgp),
            other => Err(format!(
                "unknown node daemon {other:?}: expected bird, frr or gobgp"
            )),
        }
    }
}

/// The daemon of every node: BIRD unless named otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeDaemons([NodeDaemon; MAX_NODES as usize]);

impl NodeDaemons {
    /// BIRD everywhere.
    pub const BIRD: NodeDaemons = NodeDaemons([NodeDaemon::Bird; MAX_NODES as usize]);

    /// These daemons with `node`'s replaced.
    pub const fn with(mut self, node: NodeId, daemon: NodeDaemon) -> Self {
        if node.0 >= 1 && node.0 <= MAX_NODES {
            self.0[(node.0 - 1) as usize] = daemon;
        }
        self
    }

    pub fn get(&self, node: NodeId) -> NodeDaemon {
        self.0
            .get(usize::from(node.0).wrapping_sub(1))
            .copied()
            .unwrap_or_default()
    }

    /// The daemons other than BIRD, by node.
    pub fn others(&self) -> Vec<(NodeId, NodeDaemon)> {
        (1..=MAX_NODES)
            .map(NodeId)
            .map(|n| (n, self.get(n)))
            .filter(|(_, d)| *d != NodeDaemon::Bird)
            .collect()
    }
}

impl fmt::Display for NodeDaemons {
    /// `node2=frr,node3=gobgp`; empty for BIRD everywhere.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .others()
            .iter()
            .map(|(n, d)| format!("{n}={d}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl FromStr for NodeDaemons {
    type Err = String;
    /// `node2=frr,node3=gobgp` (empty: BIRD everywhere).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut out = NodeDaemons::BIRD;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (node, daemon) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected NODE=DAEMON, e.g. node2=frr"))?;
            out = out.with(node.parse()?, daemon.parse()?);
        }
        Ok(out)
    }
}

/// Where a node's FRR or GoBGP keeps its configuration and sockets.
pub fn dir(paths: &Paths, node: NodeId, daemon: NodeDaemon) -> PathBuf {
    paths.dir.join(format!("{daemon}-{}", node.name()))
}

/// The programs a daemon needs.
pub fn tools(daemon: NodeDaemon) -> &'static [&'static str] {
    match daemon {
        NodeDaemon::Bird => &["bird", "birdc"],
        NodeDaemon::Frr => &["/usr/lib/frr/bgpd", "vtysh"],
        NodeDaemon::Gobgp => &["gobgpd", "gobgp"],
    }
}

/// FRR's bgpd in the role of examples/lab/bird/node.conf.
pub fn frr_config(n: NodeId) -> String {
    let (s4, s6) = (t::BGP_SERVICES4, t::BGP_SERVICES6);
    format!(
        "! Written by the lab for {node}: FRR in the role of examples/lab/bird/node.conf.
frr defaults datacenter
hostname {node}
log stdout informational
!
ip prefix-list SERVICES4 seq 5 permit {s4} le 32
ipv6 prefix-list SERVICES6 seq 5 permit {s6} le 128
!
route-map SERVICES4 permit 10
 match ip address prefix-list SERVICES4
!
route-map SERVICES6 permit 10
 match ipv6 address prefix-list SERVICES6
!
route-map NOTHING deny 10
!
router bgp {node_asn}
 bgp router-id {a4}
 no bgp default ipv4-unicast
 no bgp ebgp-requires-policy
 bgp graceful-restart
 neighbor 127.0.0.1 remote-as {speaker_asn}
 neighbor 127.0.0.1 passive
 neighbor 127.0.0.1 ebgp-multihop 2
 neighbor 127.0.0.1 timers 3 9
 neighbor {r4} remote-as {tor_asn}
 neighbor {r6} remote-as {tor_asn}
 address-family ipv4 unicast
  neighbor 127.0.0.1 activate
  neighbor 127.0.0.1 route-map SERVICES4 in
  neighbor 127.0.0.1 route-map NOTHING out
  neighbor {r4} activate
  neighbor {r4} next-hop-self
  neighbor {r4} route-map NOTHING in
  neighbor {r4} route-map SERVICES4 out
 exit-address-family
 address-family ipv6 unicast
  neighbor 127.0.0.1 activate
  neighbor 127.0.0.1 route-map SERVICES6 in
  neighbor 127.0.0.1 route-map NOTHING out
  neighbor {r6} activate
  neighbor {r6} next-hop-self
  neighbor {r6} route-map NOTHING in
  neighbor {r6} route-map SERVICES6 out
 exit-address-family
!
",
        node = n.name(),
        a4 = n.addr4(),
        r4 = t::ROUTER_ADDR4,
        r6 = t::ROUTER_ADDR6,
        node_asn = t::NODE_ASN,
        speaker_asn = t::SPEAKER_ASN,
        tor_asn = t::ROUTER_ASN,
    )
}

/// GoBGP in the role of examples/lab/bird/node.conf. Its policies are global: only Service
/// prefixes come in (the router sends none anyway) and only they go out.
pub fn gobgp_config(n: NodeId) -> String {
    let (s4, s6) = (t::BGP_SERVICES4, t::BGP_SERVICES6);
    format!(
        r#"# Written by the lab for {node}: GoBGP in the role of examples/lab/bird/node.conf.
[global.config]
  as = {node_asn}
  router-id = "{a4}"
[global.apply-policy.config]
  import-policy-list = ["services-only"]
  default-import-policy = "reject-route"
  export-policy-list = ["services-only"]
  default-export-policy = "reject-route"

[[defined-sets.prefix-sets]]
  prefix-set-name = "services"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "{s4}"
    masklength-range = "{l4}..32"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "{s6}"
    masklength-range = "{l6}..128"

[[policy-definitions]]
  name = "services-only"
  [[policy-definitions.statements]]
    name = "services"
    [policy-definitions.statements.conditions.match-prefix-set]
      prefix-set = "services"
    [policy-definitions.statements.actions]
      route-disposition = "accept-route"

# The speaker, over loopback.
[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.1"
    peer-as = {speaker_asn}
  [neighbors.transport.config]
    passive-mode = true
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 2
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true

# The top-of-rack router, one session per family.
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{r4}"
    peer-as = {tor_asn}
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{r6}"
    peer-as = {tor_asn}
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#,
        node = n.name(),
        a4 = n.addr4(),
        r4 = t::ROUTER_ADDR4,
        r6 = t::ROUTER_ADDR6,
        node_asn = t::NODE_ASN,
        speaker_asn = t::SPEAKER_ASN,
        tor_asn = t::ROUTER_ASN,
        l4 = s4.prefix_len(),
        l6 = s6.prefix_len(),
    )
}

/// Writes the configuration of a node's FRR or GoBGP (BIRD's is routing::write_configs').
pub fn write_config(paths: &Paths, n: NodeId, daemon: NodeDaemon) -> Result<()> {
    let dir = dir(paths, n, daemon);
    match daemon {
        NodeDaemon::Bird => Ok(()),
        NodeDaemon::Frr => write_file(&dir.join("bgpd.conf"), &frr_config(n)),
        NodeDaemon::Gobgp => write_file(&dir.join("gobgpd.toml"), &gobgp_config(n)),
    }
}

/// How a node's daemon is started (`None` for BIRD: routing::bird_spec).
pub fn spec(paths: &Paths, n: NodeId, daemon: NodeDaemon) -> Option<ProcSpec> {
    let dir = dir(paths, n, daemon);
    let d = |f: &str| dir.join(f).display().to_string();
    let (program, args) = match daemon {
        NodeDaemon::Bird => return None,
        // Without zebra (-Z) bgpd installs nothing and takes every next hop as reachable;
        // as root without dropping privileges (-S), its vty socket in `dir`.
        NodeDaemon::Frr => (
            "/usr/lib/frr/bgpd".to_string(),
            vec![
                "-f".into(),
                d("bgpd.conf"),
                "-i".into(),
                d("bgpd.pid"),
                "-z".into(),
                d("zserv.api"),
                "-Z".into(),
                "-n".into(),
                "-S".into(),
                "--vty_socket".into(),
                dir.display().to_string(),
                "-P".into(),
                "0".into(),
                "--log".into(),
                "stdout".into(),
            ],
        ),
        // Its gRPC API on the node's own loopback.
        NodeDaemon::Gobgp => (
            "gobgpd".to_string(),
            vec![
                "-f".into(),
                d("gobgpd.toml"),
                "-t".into(),
                "toml".into(),
                "--api-hosts".into(),
                "127.0.0.1:50051".into(),
                "--pprof-disable".into(),
                "--log-level".into(),
                "info".into(),
            ],
        ),
    };
    Some(ProcSpec {
        netns: Some(n.netns()),
        program: program.into(),
        args,
        env: vec![],
        log: paths.log(&Part::Bird(n)),
    })
}

/// `vtysh` against a node's FRR.
fn vtysh(paths: &Paths, n: NodeId, command: &str) -> Result<String> {
    cmd::run(
        Command::new("vtysh")
            .arg("--vty_socket")
            .arg(dir(paths, n, NodeDaemon::Frr))
            .args(["-d", "bgpd", "-c", command]),
    )
}

/// `gobgp` against a node's GoBGP (inside the node, where its API listens).
fn gobgp(n: NodeId, args: &[&str]) -> Result<String> {
    cmd::run(cmd::in_netns(&n.netns(), "gobgp").args(args))
}

fn parse_json(command: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| LabError::ParseOutput {
        command: command.into(),
        detail: e.to_string(),
    })
}

/// Whether the node's daemon has its session with the speaker Established.
pub fn speaker_session_established(paths: &Paths, n: NodeId, daemon: NodeDaemon) -> Result<bool> {
    Ok(match daemon {
        NodeDaemon::Bird => crate::routing::node_sessions(paths, n)?
            .iter()
            .any(|(name, state)| name == "ferrolb_speaker" && state == "Established"),
        NodeDaemon::Frr => {
            let v = parse_json(
                "show bgp neighbors 127.0.0.1 json",
                &vtysh(paths, n, "show bgp neighbors 127.0.0.1 json")?,
            )?;
            v["127.0.0.1"]["bgpState"] == "Established"
        }
        NodeDaemon::Gobgp => {
            let v = parse_json(
                "gobgp neighbor 127.0.0.1 -j",
                &gobgp(n, &["neighbor", "127.0.0.1", "-j"])?,
            )?;
            v["state"]["session_state"] == 6
        }
    })
}

/// Whether the node's FRR or GoBGP has an established session with the speaker in which the
/// speaker announced graceful restart (`None`: not established).
pub fn speaker_graceful_restart(
    paths: &Paths,
    n: NodeId,
    daemon: NodeDaemon,
) -> Result<Option<bool>> {
    Ok(match daemon {
        NodeDaemon::Bird => {
            return Err(LabError::Usage(
                "BIRD's view: birdc show protocols all ferrolb_speaker".into(),
            ));
        }
        NodeDaemon::Frr => {
            let v = parse_json(
                "show bgp neighbors 127.0.0.1 json",
                &vtysh(paths, n, "show bgp neighbors 127.0.0.1 json")?,
            )?;
            let peer = &v["127.0.0.1"];
            (peer["bgpState"] == "Established").then(|| {
                // "advertisedAndReceived" when both sides announced it.
                peer["neighborCapabilities"]["gracefulRestart"]
                    .as_str()
                    .is_some_and(|s| s.contains("eceived"))
            })
        }
        NodeDaemon::Gobgp => {
            let v = parse_json(
                "gobgp neighbor 127.0.0.1 -j",
                &gobgp(n, &["neighbor", "127.0.0.1", "-j"])?,
            )?;
            (v["state"]["session_state"] == 6).then(|| {
                // The capabilities the speaker sent, as protobuf Any values.
                v["state"]["remote_cap"].as_array().is_some_and(|caps| {
                    caps.iter().any(|c| {
                        c["type_url"]
                            .as_str()
                            .is_some_and(|u| u.ends_with(".GracefulRestartCapability"))
                    })
                })
            })
        }
    })
}

/// A route as a node's daemon holds it from the speaker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeakerRoute {
    pub next_hop: String,
    pub local_pref: Option<u32>,
    /// `64512:1`.
    pub communities: BTreeSet<String>,
    /// `64512:1:2`.
    pub large_communities: BTreeSet<String>,
}

/// The routes a node's FRR or GoBGP holds from the speaker (for BIRD, read `birdc show route
/// all protocol ferrolb_speaker`).
pub fn speaker_routes(
    paths: &Paths,
    n: NodeId,
    daemon: NodeDaemon,
) -> Result<BTreeMap<IpNet, SpeakerRoute>> {
    match daemon {
        NodeDaemon::Bird => Err(LabError::Usage(
            "BIRD's routes: birdc show route all protocol ferrolb_speaker".into(),
        )),
        NodeDaemon::Frr => frr_routes(paths, n),
        NodeDaemon::Gobgp => gobgp_routes(n),
    }
}

fn frr_routes(paths: &Paths, n: NodeId) -> Result<BTreeMap<IpNet, SpeakerRoute>> {
    let mut out = BTreeMap::new();
    for family in ["ipv4", "ipv6"] {
        let command = format!("show bgp {family} unicast neighbors 127.0.0.1 routes json");
        let v = parse_json(&command, &vtysh(paths, n, &command)?)?;
        let Some(routes) = v["routes"].as_object() else {
            continue;
        };
        for (prefix, paths_of) in routes {
            let Ok(net) = prefix.parse::<IpNet>() else {
                continue;
            };
            let command = format!("show bgp {family} unicast {prefix} json");
            let detail = parse_json(&command, &vtysh(paths, n, &command)?)?;
            let Some(path) = detail["paths"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["peer"]["peerId"] == "127.0.0.1"))
            else {
                continue;
            };
            let words = |v: &serde_json::Value| -> BTreeSet<String> {
                v["string"]
                    .as_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .map(|w| match w {
                        // FRR prints the well-known communities by name.
                        "no-export" => "65535:65281".to_owned(),
                        "no-advertise" => "65535:65282".to_owned(),
                        "local-AS" => "65535:65283".to_owned(),
                        other => other.to_owned(),
                    })
                    .collect()
            };
            let _ = paths_of;
            out.insert(
                net,
                SpeakerRoute {
                    next_hop: path["nexthops"][0]["ip"].as_str().unwrap_or("").to_owned(),
                    local_pref: path["locPrf"].as_u64().map(|v| v as u32),
                    communities: words(&path["community"]),
                    large_communities: words(&path["largeCommunity"]),
                },
            );
        }
    }
    Ok(out)
}

fn gobgp_routes(n: NodeId) -> Result<BTreeMap<IpNet, SpeakerRoute>> {
    let mut out = BTreeMap::new();
    for family in ["ipv4", "ipv6"] {
        let args = ["neighbor", "127.0.0.1", "adj-in", "-a", family, "-j"];
        let v = parse_json(&format!("gobgp {}", args.join(" ")), &gobgp(n, &args)?)?;
        let Some(map) = v.as_object() else { continue };
        for (prefix, paths_of) in map {
            let Ok(net) = prefix.parse::<IpNet>() else {
                continue;
            };
            let mut route = SpeakerRoute::default();
            for attr in paths_of[0]["attrs"].as_array().into_iter().flatten() {
                match attr["type"].as_u64() {
                    Some(3) | Some(14) => {
                        route.next_hop = attr["nexthop"].as_str().unwrap_or("").to_owned()
                    }
                    Some(5) => route.local_pref = attr["value"].as_u64().map(|v| v as u32),
                    Some(8) => {
                        route.communities = attr["communities"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.as_u64())
                            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                            .collect()
                    }
                    Some(32) => {
                        route.large_communities = attr["value"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|c| {
                                format!(
                                    "{}:{}:{}",
                                    c["ASN"].as_u64().unwrap_or(0),
                                    c["LocalData1"].as_u64().unwrap_or(0),
                                    c["LocalData2"].as_u64().unwrap_or(0)
                                )
                            })
                            .collect()
                    }
                    _ => {}
                }
            }
            out.insert(net, route);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn node_daemons_parse_and_print() {
        let d: NodeDaemons = "node2=frr, node3=gobgp".parse().unwrap();
        assert_eq!(d.get(NodeId(1)), NodeDaemon::Bird);
        assert_eq!(d.get(NodeId(2)), NodeDaemon::Frr);
        assert_eq!(d.get(NodeId(3)), NodeDaemon::Gobgp);
        assert_eq!(d.to_string(), "node2=frr,node3=gobgp");
        assert_eq!("".parse::<NodeDaemons>().unwrap(), NodeDaemons::BIRD);
        assert_eq!(NodeDaemons::BIRD.to_string(), "");
        assert!("node2".parse::<NodeDaemons>().is_err());
        assert!("node2=quagga".parse::<NodeDaemons>().is_err());
        assert!("node99=frr".parse::<NodeDaemons>().is_err());
        assert_eq!(
            NodeDaemons::BIRD.with(NodeId(2), NodeDaemon::Frr),
            "node2=frr".parse().unwrap()
        );
    }

    #[test]
    fn configs_keep_to_the_service_ranges_and_the_lab_asns() {
        let frr = frr_config(NodeId(2));
        assert!(frr.contains("router bgp 64600"));
        assert!(frr.contains("neighbor 127.0.0.1 remote-as 64700"));
        assert!(frr.contains("ip prefix-list SERVICES4 seq 5 permit 198.51.100.0/24 le 32"));
        assert!(frr.contains("neighbor 192.0.2.1 next-hop-self"));
        let gobgp = gobgp_config(NodeId(3));
        assert!(gobgp.contains("router-id = \"192.0.2.13\""));
        assert!(gobgp.contains("ip-prefix = \"2001:db8:198::/48\""));
        assert!(gobgp.contains("masklength-range = \"48..128\""));
    }
}
