//! BIRD on the nodes, BIRD or FRR on the router: their configuration, how they start, and what
//! the lab reads back from them (sessions, the router's kernel routes, neighbour tables).

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use ipnet::IpNet;
use serde::Deserialize;

use crate::cmd;
use crate::error::{LabError, Result};
use crate::procs::ProcSpec;
use crate::state::{Part, Paths, write_file};
use crate::topology::{self as t, NodeId, RouterKind, Topology};

/// A node's BIRD configuration: the constants of examples/lab/bird/node.conf, that file
/// unchanged, and the routes the lab injects for tests.
pub fn node_bird_config(paths: &Paths, n: NodeId) -> String {
    format!(
        r#"# Written by the lab for {node}. The protocols are in {template}.
log stderr all;
define NODE_ADDR4 = {a4};
define NODE_ADDR6 = {a6};
define TOR_ADDR4 = {r4};
define TOR_ADDR6 = {r6};
define NODE_ASN = {node_asn};
define TOR_ASN = {tor_asn};
define SPEAKER_ASN = {speaker_asn};
define SERVICE_NETS4 = [ {s4}{{{l4},32}} ];
define SERVICE_NETS6 = [ {s6}{{{l6},128}} ];
include "{template}";
include "{injected}";
"#,
        node = n.name(),
        template = paths.bird_node_template().display(),
        injected = paths.bird_injected(n).display(),
        a4 = n.addr4(),
        a6 = n.addr6(),
        r4 = t::ROUTER_ADDR4,
        r6 = t::ROUTER_ADDR6,
        node_asn = t::NODE_ASN,
        tor_asn = t::ROUTER_ASN,
        speaker_asn = t::SPEAKER_ASN,
        s4 = t::BGP_SERVICES4,
        l4 = t::BGP_SERVICES4.prefix_len(),
        s6 = t::BGP_SERVICES6,
        l6 = t::BGP_SERVICES6.prefix_len(),
    )
}

/// Static routes for a node's BIRD (a stand-in for what a speaker announces). They leave the
/// node like a speaker's routes do, when inside the BGP service ranges.
pub fn injected_config(routes: &[IpNet]) -> String {
    let mut v4 = String::new();
    let mut v6 = String::new();
    for r in routes {
        let line = format!("  route {r} via \"lo\";\n");
        match r {
            IpNet::V4(_) => v4.push_str(&line),
            IpNet::V6(_) => v6.push_str(&line),
        }
    }
    let mut out = String::from("# Routes injected by the lab (lab inject / the e2e harness).\n");
    if !v4.is_empty() {
        out.push_str(&format!(
            "protocol static lab_injected4 {{\n  ipv4;\n{v4}}}\n"
        ));
    }
    if !v6.is_empty() {
        out.push_str(&format!(
            "protocol static lab_injected6 {{\n  ipv6;\n{v6}}}\n"
        ));
    }
    out
}

/// The router's BIRD: one session per node and family, everything learnt goes into the kernel
/// with all equal paths merged into one multipath route.
pub fn router_bird_config(topo: &Topology) -> String {
    let mut s = format!(
        r#"# Written by the lab: flb-router, the nodes' top-of-rack router.
log stderr all;
router id {r4};
protocol device {{}}
protocol kernel {{ ipv4 {{ export all; import none; }}; merge paths on; }}
protocol kernel {{ ipv6 {{ export all; import none; }}; merge paths on; }}
# Data-center timers: a dead node's routes go within 9 s; a returning node is taken back
# at once (BIRD's defaults wait minutes after an error).
template bgp node4 {{
  local {r4} as {asn}; hold time 9; keepalive time 3; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export none; }};
}}
template bgp node6 {{
  local {r6} as {asn}; hold time 9; keepalive time 3; connect retry time 2; error wait time 1, 5;
  ipv6 {{ import all; export none; }};
}}
"#,
        r4 = t::ROUTER_ADDR4,
        r6 = t::ROUTER_ADDR6,
        asn = t::ROUTER_ASN,
    );
    for n in topo.node_ids() {
        s.push_str(&format!(
            "protocol bgp {name}v4 from node4 {{ neighbor {a4} as {asn}; }}\n\
             protocol bgp {name}v6 from node6 {{ neighbor {a6} as {asn}; }}\n",
            name = n.name(),
            a4 = n.addr4(),
            a6 = n.addr6(),
            asn = t::NODE_ASN,
        ));
    }
    s
}

/// The router's FRR (bgpd): the same sessions, ECMP over up to 64 paths, nothing sent back.
pub fn router_frr_config(topo: &Topology) -> String {
    let mut s = format!(
        "! Written by the lab: flb-router, the nodes' top-of-rack router.
frr defaults datacenter
hostname flb-router
log stdout informational
!
route-map NODES-IN permit 10
 set ipv6 next-hop prefer-global
!
route-map NOTHING deny 10
!
router bgp {asn}
 bgp router-id {r4}
 no bgp default ipv4-unicast
 no bgp ebgp-requires-policy
 bgp bestpath as-path multipath-relax
 neighbor nodes4 peer-group
 neighbor nodes4 remote-as {node_asn}
 neighbor nodes6 peer-group
 neighbor nodes6 remote-as {node_asn}
",
        asn = t::ROUTER_ASN,
        node_asn = t::NODE_ASN,
        r4 = t::ROUTER_ADDR4,
    );
    for n in topo.node_ids() {
        s.push_str(&format!(
            " neighbor {} peer-group nodes4\n neighbor {} peer-group nodes6\n",
            n.addr4(),
            n.addr6()
        ));
    }
    s.push_str(
        " address-family ipv4 unicast
  neighbor nodes4 activate
  neighbor nodes4 route-map NOTHING out
  maximum-paths 64
 exit-address-family
 address-family ipv6 unicast
  neighbor nodes6 activate
  neighbor nodes6 route-map NODES-IN in
  neighbor nodes6 route-map NOTHING out
  maximum-paths 64
 exit-address-family
!
",
    );
    s
}

/// BIRD in the foreground (so the recorded pid is BIRD's), for a node or (`None`) the router.
pub fn bird_spec(paths: &Paths, node: Option<NodeId>) -> ProcSpec {
    let (netns, part, conf) = match node {
        Some(n) => (
            n.netns(),
            Part::Bird(n),
            paths.bird_dir().join(format!("{}.conf", n.name())),
        ),
        None => (
            t::ROUTER_NS.to_string(),
            Part::Router,
            paths.bird_dir().join("router.conf"),
        ),
    };
    ProcSpec {
        netns: Some(netns),
        program: "bird".into(),
        args: vec![
            "-f".into(),
            "-c".into(),
            conf.display().to_string(),
            "-s".into(),
            paths.bird_socket(node).display().to_string(),
        ],
        env: vec![],
        log: paths.log(&part),
    }
}

/// FRR's zebra (routes into the kernel) and bgpd, in the foreground, as user frr (FRR's vty
/// group check refuses root unless root is in frrvty).
pub fn frr_specs(paths: &Paths) -> [(Part, ProcSpec); 2] {
    let dir = paths.frr_dir();
    let d = |f: &str| dir.join(f).display().to_string();
    let common = |conf: &str, pid: &str| {
        vec![
            "-f".into(),
            d(conf),
            "-i".into(),
            d(pid),
            "-z".into(),
            d("zserv.api"),
            "--vty_socket".into(),
            dir.display().to_string(),
            "-u".into(),
            "frr".into(),
            "-g".into(),
            "frr".into(),
            // No vty TCP port: vtysh uses the socket in `dir`.
            "-P".into(),
            "0".into(),
        ]
    };
    [
        (
            Part::Router,
            ProcSpec {
                netns: Some(t::ROUTER_NS.into()),
                program: "/usr/lib/frr/zebra".into(),
                args: common("zebra.conf", "zebra.pid"),
                env: vec![],
                log: paths.log(&Part::Router),
            },
        ),
        (
            Part::RouterBgpd,
            ProcSpec {
                netns: Some(t::ROUTER_NS.into()),
                program: "/usr/lib/frr/bgpd".into(),
                args: common("bgpd.conf", "bgpd.pid"),
                env: vec![],
                log: paths.log(&Part::RouterBgpd),
            },
        ),
    ]
}

/// Writes every routing daemon's configuration (and the empty injected-route files).
pub fn write_configs(paths: &Paths, topo: &Topology) -> Result<()> {
    for n in topo.node_ids() {
        write_file(
            &paths.bird_dir().join(format!("{}.conf", n.name())),
            &node_bird_config(paths, n),
        )?;
        write_file(&paths.bird_injected(n), &injected_config(&[]))?;
    }
    match topo.router {
        RouterKind::Bird => write_file(
            &paths.bird_dir().join("router.conf"),
            &router_bird_config(topo),
        )?,
        RouterKind::Frr => {
            let dir = paths.frr_dir();
            write_file(
                &dir.join("zebra.conf"),
                "hostname flb-router\nlog stdout informational\n",
            )?;
            write_file(&dir.join("bgpd.conf"), &router_frr_config(topo))?;
            // FRR drops to user frr: it must own its directory, and reach it.
            cmd::run(Command::new("chown").args(["-R", "frr:frr"]).arg(&dir))?;
            cmd::run(Command::new("chmod").args(["0755"]).arg(&paths.dir))?;
        }
    }
    Ok(())
}

/// Replaces the routes injected into a node's BIRD and makes BIRD read them.
pub fn inject(paths: &Paths, n: NodeId, routes: &[IpNet]) -> Result<()> {
    write_file(&paths.bird_injected(n), &injected_config(routes))?;
    birdc(paths, Some(n), &["configure"]).map(drop)
}

/// `birdc -s <socket> <args>` for a node or (`None`) the router.
pub fn birdc(paths: &Paths, node: Option<NodeId>, args: &[&str]) -> Result<String> {
    cmd::run(
        Command::new("birdc")
            .arg("-s")
            .arg(paths.bird_socket(node))
            .args(args),
    )
}

/// `vtysh` against the router's FRR.
pub fn vtysh(paths: &Paths, command: &str) -> Result<String> {
    cmd::run(
        Command::new("vtysh")
            .arg("--vty_socket")
            .arg(paths.frr_dir())
            .args(["-c", command]),
    )
}

/// Address family of a BGP session or route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

/// One of the router's BGP sessions to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub node: NodeId,
    pub family: Family,
    /// As the daemon reports it, e.g. "Established", "Active", "Connect".
    pub state: String,
}

impl Session {
    pub fn established(&self) -> bool {
        self.state == "Established"
    }
}

/// The router's sessions to every node, from BIRD or FRR.
pub fn router_sessions(paths: &Paths, topo: &Topology) -> Result<Vec<Session>> {
    match topo.router {
        RouterKind::Bird => Ok(parse_bird_protocols(&birdc(
            paths,
            None,
            &["show", "protocols"],
        )?)),
        RouterKind::Frr => {
            let json = vtysh(paths, "show bgp summary json")?;
            parse_frr_summary(&json, topo)
        }
    }
}

/// Sessions a node's BIRD has: (protocol name, state) for every BGP protocol.
pub fn node_sessions(paths: &Paths, n: NodeId) -> Result<Vec<(String, String)>> {
    let out = birdc(paths, Some(n), &["show", "protocols"])?;
    Ok(bird_protocol_rows(&out)
        .filter(|r| r.1 == "BGP")
        .map(|r| (r.0.to_string(), r.2.to_string()))
        .collect())
}

/// Rows of `birdc show protocols`: (name, proto, BGP state or protocol state).
fn bird_protocol_rows(out: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    out.lines().filter_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        // Name Proto Table State Since [Info…]; Since may be a date and a time.
        if cols.len() < 5 || cols[0] == "Name" {
            return None;
        }
        // Info starts with the BGP state ("Established", "Active", "Connect  Socket: …").
        let info = cols.get(5).copied().unwrap_or(cols[3]);
        Some((cols[0], cols[1], info))
    })
}

fn parse_bird_protocols(out: &str) -> Vec<Session> {
    bird_protocol_rows(out)
        .filter(|r| r.1 == "BGP")
        .filter_map(|(name, _, state)| {
            let (node, family) = if let Some(n) = name.strip_suffix("v4") {
                (n, Family::V4)
            } else {
                (name.strip_suffix("v6")?, Family::V6)
            };
            Some(Session {
                node: node.parse().ok()?,
                family,
                state: state.to_string(),
            })
        })
        .collect()
}

fn parse_frr_summary(json: &str, topo: &Topology) -> Result<Vec<Session>> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| LabError::ParseOutput {
        command: "vtysh -c 'show bgp summary json'".into(),
        detail: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (family_key, family) in [("ipv4Unicast", Family::V4), ("ipv6Unicast", Family::V6)] {
        let Some(peers) = v
            .get(family_key)
            .and_then(|f| f.get("peers"))
            .and_then(|p| p.as_object())
        else {
            continue;
        };
        for (addr, peer) in peers {
            let Ok(ip) = addr.parse::<IpAddr>() else {
                continue;
            };
            let Some(node) = node_by_addr(topo, ip) else {
                continue;
            };
            let state = peer
                .get("state")
                .and_then(|s| s.as_str())
                .unwrap_or("unknown");
            out.push(Session {
                node,
                family,
                state: state.to_string(),
            });
        }
    }
    Ok(out)
}

/// Which node an address on the segment belongs to.
pub fn node_by_addr(topo: &Topology, ip: IpAddr) -> Option<NodeId> {
    topo.node_ids()
        .find(|n| ip == IpAddr::V4(n.addr4()) || ip == IpAddr::V6(n.addr6()))
}

/// A route in a namespace's kernel table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub next_hops: Vec<IpAddr>,
    /// "bird", "bgp", "kernel", …
    pub protocol: String,
}

#[derive(Deserialize)]
struct IpRoute {
    dst: String,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    nexthops: Vec<IpNextHop>,
}

#[derive(Deserialize)]
struct IpNextHop {
    #[serde(default)]
    gateway: Option<String>,
}

/// `ip -j route` of both families in a namespace.
pub fn routes(netns: &str) -> Result<Vec<Route>> {
    let mut all = Vec::new();
    for fam in ["-4", "-6"] {
        let out = cmd::run(Command::new("ip").args(["-n", netns, "-j", fam, "route", "show"]))?;
        all.extend(parse_routes(&out, fam == "-6")?);
    }
    Ok(all)
}

fn parse_routes(json: &str, v6: bool) -> Result<Vec<Route>> {
    let parsed: Vec<IpRoute> = serde_json::from_str(json).map_err(|e| LabError::ParseOutput {
        command: "ip -j route show".into(),
        detail: e.to_string(),
    })?;
    Ok(parsed
        .into_iter()
        .filter_map(|r| {
            let dst = if r.dst == "default" {
                if v6 {
                    "::/0".parse().ok()?
                } else {
                    "0.0.0.0/0".parse().ok()?
                }
            } else if r.dst.contains('/') {
                r.dst.parse().ok()?
            } else {
                IpNet::from(r.dst.parse::<IpAddr>().ok()?)
            };
            let mut next_hops: Vec<IpAddr> = r
                .nexthops
                .iter()
                .filter_map(|h| h.gateway.as_deref()?.parse().ok())
                .collect();
            if let Some(gw) = r.gateway.as_deref().and_then(|g| g.parse().ok()) {
                next_hops.push(gw);
            }
            next_hops.sort();
            Some(Route {
                dst,
                next_hops,
                protocol: r.protocol.unwrap_or_default(),
            })
        })
        .collect())
}

/// A neighbour (ARP/NDP) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    pub mac: Option<String>,
    pub dev: String,
    /// e.g. ["REACHABLE"], ["STALE"], ["FAILED"].
    pub state: Vec<String>,
}

#[derive(Deserialize)]
struct IpNeigh {
    dst: String,
    #[serde(default)]
    dev: String,
    #[serde(default)]
    lladdr: Option<String>,
    #[serde(default)]
    state: Vec<String>,
}

/// `ip -j neigh show` in a namespace.
pub fn neighbours(netns: &str) -> Result<Vec<Neighbour>> {
    let out = cmd::run(Command::new("ip").args(["-n", netns, "-j", "neigh", "show"]))?;
    parse_neighbours(&out)
}

fn parse_neighbours(json: &str) -> Result<Vec<Neighbour>> {
    let parsed: Vec<IpNeigh> = serde_json::from_str(json).map_err(|e| LabError::ParseOutput {
        command: "ip -j neigh show".into(),
        detail: e.to_string(),
    })?;
    Ok(parsed
        .into_iter()
        .filter_map(|n| {
            Some(Neighbour {
                ip: n.dst.parse().ok()?,
                mac: n.lladdr,
                dev: n.dev,
                state: n.state,
            })
        })
        .collect())
}

/// The MAC address of an interface in a namespace.
pub fn mac_of(netns: &str, dev: &str) -> Result<String> {
    let out = cmd::run(Command::new("ip").args(["-n", netns, "-j", "link", "show", dev]))?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| LabError::ParseOutput {
        command: format!("ip -n {netns} -j link show {dev}"),
        detail: e.to_string(),
    })?;
    v.get(0)
        .and_then(|l| l.get("address"))
        .and_then(|a| a.as_str())
        .map(str::to_string)
        .ok_or_else(|| LabError::ParseOutput {
            command: format!("ip -n {netns} -j link show {dev}"),
            detail: "no address".into(),
        })
}

/// Whether the BIRD configuration template exists where the lab expects it.
pub fn check_template(path: &Path) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(LabError::Missing {
            what: path.display().to_string(),
            hint: "run the lab from a ferrolb checkout".into(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn multipath_and_single_routes_parse() {
        let json = r#"[{"dst":"198.51.100.10","protocol":"bird","metric":32,"flags":[],
            "nexthops":[{"gateway":"192.0.2.12","dev":"br0","weight":1,"flags":[]},
                        {"gateway":"192.0.2.11","dev":"br0","weight":1,"flags":[]}]},
            {"dst":"192.0.2.0/24","dev":"br0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.1","flags":[]},
            {"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]}]"#;
        let r = parse_routes(json, false).unwrap();
        assert_eq!(r[0].dst, "198.51.100.10/32".parse::<IpNet>().unwrap());
        assert_eq!(
            r[0].next_hops,
            vec![
                "192.0.2.11".parse::<IpAddr>().unwrap(),
                "192.0.2.12".parse().unwrap()
            ]
        );
        assert_eq!(r[0].protocol, "bird");
        assert!(r[1].next_hops.is_empty());
        assert_eq!(r[2].dst, "0.0.0.0/0".parse::<IpNet>().unwrap());
    }

    #[test]
    fn bird_protocol_table_parses() {
        let out = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     04:00:16.879
kernel1    Kernel     master4    up     04:00:16.879
node1v4    BGP        ---        up     04:00:20.727  Established
node1v6    BGP        ---        start  04:00:16.879  Active
node2v4    BGP        ---        start  04:00:16.879  Connect       Socket: Connection refused
";
        let s = parse_bird_protocols(out);
        assert_eq!(s.len(), 3);
        assert!(s[0].established() && s[0].node == NodeId(1) && s[0].family == Family::V4);
        assert_eq!(s[1].state, "Active");
        assert_eq!(s[2].node, NodeId(2));
        assert!(!s[2].established());
    }

    #[test]
    fn frr_summary_maps_peers_to_nodes() {
        let topo = Topology::new(2, RouterKind::Frr).unwrap();
        let json = r#"{"ipv4Unicast":{"peers":{"192.0.2.11":{"state":"Established"},"192.0.2.12":{"state":"Active"}}},
                       "ipv6Unicast":{"peers":{"2001:db8:2::11":{"state":"Established"}}}}"#;
        let s = parse_frr_summary(json, &topo).unwrap();
        assert_eq!(s.len(), 3);
        assert!(
            s.iter()
                .any(|x| x.node == NodeId(2) && x.family == Family::V4 && !x.established())
        );
        assert!(
            s.iter()
                .any(|x| x.node == NodeId(1) && x.family == Family::V6 && x.established())
        );
    }

    #[test]
    fn injected_routes_split_by_family() {
        let c = injected_config(&[
            "198.51.100.250/32".parse().unwrap(),
            "2001:db8:198::fa/128".parse().unwrap(),
        ]);
        assert!(c.contains(
            "protocol static lab_injected4 {\n  ipv4;\n  route 198.51.100.250/32 via \"lo\";"
        ));
        assert!(c.contains(
            "protocol static lab_injected6 {\n  ipv6;\n  route 2001:db8:198::fa/128 via \"lo\";"
        ));
        assert!(!injected_config(&[]).contains("protocol"));
    }
}
