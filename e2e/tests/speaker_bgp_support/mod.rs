//! Helpers of the speaker's BGP tests: the BGPPeer to every node's BIRD, a pool and a
//! BGPAdvertisement per test (removed on drop), Services asking for given addresses, and what
//! the router, the nodes' BIRD and the speakers' /metrics show.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of this; tests may unwrap

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrolb_api::ServiceBGPStatus;
use ferrolb_e2e::topology::{self as t, CLIENT_NS};
use ferrolb_e2e::{Lab, NodeId, poll};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::json;

pub const WAIT: Duration = Duration::from_secs(60);

/// The BGPPeer every test's routes go to: each node's BIRD over loopback
/// (examples/lab/bird/node.conf's `ferrolb_speaker`).
pub const PEER: &str = "node-bird";
/// How the speakers name that peer in metrics and logs.
pub const PEER_LABEL: &str = "127.0.0.1:179";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// Cluster-scoped objects a test made, deleted when dropped.
pub struct ClusterObjects {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    objects: Vec<String>,
}

impl ClusterObjects {
    pub fn new(lab: &Lab, objects: Vec<String>) -> Self {
        ClusterObjects {
            kubectl: kubectl_path(),
            kubeconfig: lab.paths.kubeconfig(),
            objects,
        }
    }

    /// Deletes the objects now and waits until they are gone.
    pub fn delete(mut self) {
        for o in std::mem::take(&mut self.objects) {
            let _ = Command::new(&self.kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", &o, "--ignore-not-found"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for ClusterObjects {
    fn drop(&mut self) {
        for o in &self.objects {
            let _ = Command::new(&self.kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", o, "--wait=false", "--ignore-not-found"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The lab's kubectl binary (next to the Kubernetes binaries the lab runs).
fn kubectl_path() -> PathBuf {
    let paths = ferrolb_e2e::state::Paths::from_build();
    let state = ferrolb_e2e::state::State::load(&paths).unwrap();
    state.k8s_dir.join("kubectl")
}

pub async fn apply(lab: &Lab, objects: Vec<serde_json::Value>) {
    let yaml = serde_json::to_string(&json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": objects,
    }))
    .unwrap();
    // Tests running at once apply the shared peer at once: `kubectl apply` is get-then-create,
    // so one of them may find it created under its feet. Applying again is then an update.
    poll("kubectl apply", WAIT, || async {
        match lab.apply_yaml(&yaml).await {
            Err(e) if e.to_string().contains("AlreadyExists") => Err(e.to_string()),
            other => Ok(other.unwrap()),
        }
    })
    .await
    .unwrap();
}

/// The BGPPeer `node-bird` (examples/lab/ferrolb.yaml's, with short timers and graceful
/// restart as asked). Every test applies it; applying it unchanged changes nothing.
pub fn node_bird_peer(graceful_restart: bool) -> serde_json::Value {
    json!({
        "apiVersion": "ferrolb.io/v1alpha1",
        "kind": "BGPPeer",
        "metadata": {"name": PEER},
        "spec": {
            "peerAddress": "127.0.0.1",
            "peerASN": t::NODE_ASN,
            "myASN": t::SPEAKER_ASN,
            "holdTime": "9s",
            "keepaliveTime": "3s",
            "connectTime": "1s",
            "enableGracefulRestart": graceful_restart,
        }
    })
}

/// The lab's usual peer: graceful restart on.
pub async fn ensure_peer(lab: &Lab) {
    apply(lab, vec![node_bird_peer(true)]).await;
}

/// An IPAddressPool `name` with `addresses` (not auto-assigned: only Services asking for it
/// get its addresses) and a BGPAdvertisement `name` for it with `advertisement` merged into
/// its spec. Also makes sure the usual peer exists.
pub async fn bgp_pool(
    lab: &Lab,
    name: &str,
    addresses: &[&str],
    advertisement: serde_json::Value,
) -> ClusterObjects {
    let mut spec = json!({"ipAddressPools": [name]});
    for (k, v) in advertisement.as_object().unwrap() {
        spec[k] = v.clone();
    }
    apply(
        lab,
        vec![
            node_bird_peer(true),
            json!({
                "apiVersion": "ferrolb.io/v1alpha1",
                "kind": "IPAddressPool",
                "metadata": {"name": name},
                "spec": {"addresses": addresses, "autoAssign": false}
            }),
            json!({
                "apiVersion": "ferrolb.io/v1alpha1",
                "kind": "BGPAdvertisement",
                "metadata": {"name": name},
                "spec": spec
            }),
        ],
    )
    .await;
    ClusterObjects::new(
        lab,
        vec![
            format!("bgpadvertisement.ferrolb.io/{name}"),
            format!("ipaddresspool.ferrolb.io/{name}"),
        ],
    )
}

/// How a test Service routes external traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Cluster,
    Local,
}

/// A LoadBalancer Service `name` (Pods `app: <name>`, port 80) asking pool `pool` for
/// `addresses` (one per family; two make it RequireDualStack).
pub fn bgp_service(name: &str, pool: &str, addresses: &[IpAddr], policy: Policy) -> Service {
    let families: Vec<&str> = addresses
        .iter()
        .map(|a| if a.is_ipv4() { "IPv4" } else { "IPv6" })
        .collect();
    let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": {
                "ferrolb.io/address-pool": pool,
                "ferrolb.io/loadBalancerIPs": list.join(","),
            }
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ipFamilyPolicy": if families.len() > 1 { "RequireDualStack" } else { "SingleStack" },
            "ipFamilies": families,
            "externalTrafficPolicy": match policy { Policy::Cluster => "Cluster", Policy::Local => "Local" },
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        }
    }))
    .unwrap()
}

/// Waits until the controller has given the Service exactly `addresses`.
pub async fn wait_addresses(lab: &Lab, ns: &str, name: &str, addresses: &[IpAddr]) {
    let api: Api<Service> = Api::namespaced(lab.client().await, ns);
    let want: BTreeSet<IpAddr> = addresses.iter().copied().collect();
    poll(
        &format!("{ns}/{name} assigned {want:?} (by the controller)"),
        WAIT,
        || {
            let api = api.clone();
            let want = want.clone();
            async move {
                let svc = api.get(name).await.map_err(|e| e.to_string())?;
                let got: BTreeSet<IpAddr> = svc
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|lb| lb.ingress)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| i.ip.as_deref()?.parse().ok())
                    .collect();
                if got == want {
                    Ok(())
                } else {
                    Err(format!("ingress {got:?}"))
                }
            }
        },
    )
    .await
    .unwrap();
}

/// The nodes the router's route to exactly `dst` points at (empty: no route).
pub async fn router_next_hops(lab: &Lab, dst: IpNet) -> Result<Vec<NodeId>, String> {
    let route = lab.router_route(dst).await.map_err(|e| e.to_string())?;
    let Some(route) = route else {
        return Ok(vec![]);
    };
    let nodes = lab.next_hop_nodes(&route);
    // Every next hop must be a node, and each node only once.
    if nodes.len() != route.next_hops.len() {
        return Err(format!("next hops that are not nodes: {route:?}"));
    }
    let unique: BTreeSet<NodeId> = nodes.iter().copied().collect();
    if unique.len() != nodes.len() {
        return Err(format!("a node twice: {route:?}"));
    }
    Ok(nodes)
}

/// Waits until the router's route to `dst` goes exactly via `nodes`, one next hop each
/// (none: no route).
pub async fn wait_route_via(lab: &Lab, dst: IpNet, nodes: &[NodeId]) {
    wait_route_via_within(lab, dst, nodes, WAIT).await
}

pub async fn wait_route_via_within(lab: &Lab, dst: IpNet, nodes: &[NodeId], within: Duration) {
    let mut want: Vec<NodeId> = nodes.to_vec();
    want.sort();
    poll(
        &format!("{dst} via {want:?} at the router"),
        within,
        || async {
            let got = router_next_hops(lab, dst).await?;
            if got == want {
                Ok(())
            } else {
                Err(format!("via {got:?}"))
            }
        },
    )
    .await
    .unwrap();
}

/// What a [`RouteWatcher`] saw.
#[derive(Debug)]
pub struct RouteLog {
    pub samples: usize,
    /// When (ms after the start) the route did not go via exactly the expected nodes, and
    /// where it went instead.
    pub misses: Vec<(u128, Vec<NodeId>)>,
}

/// Polls the router's kernel route to one destination every 20 ms, on a thread of its own,
/// until finished.
pub struct RouteWatcher {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<RouteLog>,
}

impl RouteWatcher {
    pub fn start(lab: &Lab, dst: IpNet, nodes: Vec<NodeId>) -> RouteWatcher {
        let topo = lab.topology();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut log = RouteLog {
                samples: 0,
                misses: Vec::new(),
            };
            while !stopped.load(Ordering::Relaxed) {
                let mut got: Vec<NodeId> = ferrolb_e2e::routing::routes(t::ROUTER_NS)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|r| r.dst == dst)
                    .map(|r| {
                        r.next_hops
                            .iter()
                            .filter_map(|h| ferrolb_e2e::routing::node_by_addr(&topo, *h))
                            .collect()
                    })
                    .unwrap_or_default();
                got.sort();
                log.samples += 1;
                if got != nodes {
                    log.misses.push((start.elapsed().as_millis(), got));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            log
        });
        RouteWatcher { stop, thread }
    }

    pub fn finish(self) -> RouteLog {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Which nodes answer `n` HTTP connections from flb-client to `addr` (through the router).
pub async fn answering_nodes(lab: &Lab, addr: IpAddr, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let body = lab.http_get(CLIENT_NS, addr, 80).await.unwrap();
        *seen.entry(body).or_insert(0) += 1;
    }
    seen
}

/// A speaker's /metrics, from inside its node.
pub async fn speaker_metrics(lab: &Lab, node: NodeId) -> String {
    let out = lab
        .exec(
            &node.netns(),
            &[
                "curl",
                "-sS",
                "--max-time",
                "2",
                "http://127.0.0.1:9402/metrics",
            ],
        )
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the series `name{labels}` (labels exactly as printed, e.g.
/// `peer="127.0.0.1:179"`) in a Prometheus text exposition.
pub fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    let series = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok())?
    })
}

/// Every series of metric `name` (`name{...} value` lines).
pub fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}{{");
    text.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// The ServiceBGPStatus objects of Service `name` in `ns`, by node.
pub async fn bgp_statuses(lab: &Lab, ns: &str, name: &str) -> BTreeMap<String, ServiceBGPStatus> {
    let api: Api<ServiceBGPStatus> = Api::namespaced(lab.client().await, ns);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|s| s.status.as_ref().is_some_and(|st| st.service_name == name))
        .map(|s| (s.status.as_ref().unwrap().node.clone(), s))
        .collect()
}

/// A route as a node's BIRD holds it from one protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BirdRoute {
    /// `BGP.next_hop`.
    pub next_hop: String,
    pub local_pref: Option<u32>,
    /// `(64512,1)` → `64512:1`.
    pub communities: BTreeSet<String>,
    /// `(1,2,3)` → `1:2:3`.
    pub large_communities: BTreeSet<String>,
    pub as_path: String,
}

/// `birdc show route all protocol <protocol>` on a node, parsed.
pub async fn node_bird_routes(
    lab: &Lab,
    node: NodeId,
    protocol: &str,
) -> BTreeMap<IpNet, BirdRoute> {
    let paths = lab.paths.clone();
    let protocol = protocol.to_string();
    let text = tokio::task::spawn_blocking(move || {
        ferrolb_e2e::routing::birdc(
            &paths,
            Some(node),
            &["show", "route", "all", "protocol", &protocol],
        )
    })
    .await
    .unwrap()
    .unwrap_or_default();
    parse_bird_routes(&text)
}

fn parse_bird_routes(text: &str) -> BTreeMap<IpNet, BirdRoute> {
    let mut out = BTreeMap::new();
    let mut current: Option<(IpNet, BirdRoute)> = None;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if !line.starts_with(char::is_whitespace) {
            if let Ok(net) = first.parse::<IpNet>() {
                if let Some((n, r)) = current.take() {
                    out.insert(n, r);
                }
                current = Some((net, BirdRoute::default()));
            }
            continue;
        }
        let Some((_, route)) = current.as_mut() else {
            continue;
        };
        let line = line.trim();
        if let Some(v) = line.strip_prefix("BGP.next_hop:") {
            route.next_hop = v.split_whitespace().next().unwrap_or("").to_owned();
        } else if let Some(v) = line.strip_prefix("BGP.local_pref:") {
            route.local_pref = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("BGP.community:") {
            route.communities = bird_tuples(v);
        } else if let Some(v) = line.strip_prefix("BGP.large_community:") {
            route.large_communities = bird_tuples(v);
        } else if let Some(v) = line.strip_prefix("BGP.as_path:") {
            route.as_path = v.trim().to_owned();
        }
    }
    if let Some((n, r)) = current.take() {
        out.insert(n, r);
    }
    out
}

/// `(64512,1) (65535,65282)` → {"64512:1", "65535:65282"}; also for large communities.
fn bird_tuples(s: &str) -> BTreeSet<String> {
    s.split(')')
        .filter_map(|t| t.trim().strip_prefix('('))
        .map(|t| t.split(',').map(str::trim).collect::<Vec<_>>().join(":"))
        .collect()
}

/// The state of a BGP protocol in a node's BIRD (`Established`, `Active`, …).
pub async fn node_session_state(lab: &Lab, node: NodeId, protocol: &str) -> Option<String> {
    let paths = lab.paths.clone();
    let sessions =
        tokio::task::spawn_blocking(move || ferrolb_e2e::routing::node_sessions(&paths, node))
            .await
            .unwrap()
            .ok()?;
    sessions
        .into_iter()
        .find(|(name, _)| name == protocol)
        .map(|(_, state)| state)
}

/// Whether a node's BIRD has an established session `protocol` in which the speaker
/// announced graceful restart (`None`: not established).
pub async fn node_session_graceful_restart(
    lab: &Lab,
    node: NodeId,
    protocol: &str,
) -> Option<bool> {
    let paths = lab.paths.clone();
    let name = protocol.to_string();
    let out = tokio::task::spawn_blocking(move || {
        ferrolb_e2e::routing::birdc(&paths, Some(node), &["show", "protocols", "all", &name])
    })
    .await
    .unwrap()
    .ok()?;
    parse_neighbor_graceful_restart(&out)
}

fn parse_neighbor_graceful_restart(out: &str) -> Option<bool> {
    if !out.contains("BGP state:          Established") {
        return None;
    }
    let caps = out.split("Neighbor capabilities").nth(1)?;
    let caps = caps.split("Session:").next().unwrap_or(caps);
    Some(caps.lines().any(|l| l.trim() == "Graceful restart"))
}

/// When a node's BIRD last changed the state of a protocol (`birdc show protocols`' Since).
pub async fn node_session_since(lab: &Lab, node: NodeId, protocol: &str) -> String {
    let paths = lab.paths.clone();
    let name = protocol.to_string();
    let out = tokio::task::spawn_blocking(move || {
        ferrolb_e2e::routing::birdc(&paths, Some(node), &["show", "protocols", &name])
    })
    .await
    .unwrap()
    .unwrap();
    out.lines()
        .find(|l| l.starts_with(protocol))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or_else(|| panic!("no protocol {protocol} in {out}"))
        .to_string()
}

/// Replaces the extra configuration of a node's BIRD (the file the lab includes for injected
/// routes; this test binary injects none) and makes BIRD read it.
pub async fn node_bird_extra(lab: &Lab, node: NodeId, config: &str) {
    let path = lab.paths.bird_injected(node);
    std::fs::write(
        &path,
        format!("# Written by e2e/tests/speaker_bgp*.rs\n{config}"),
    )
    .unwrap();
    let paths = lab.paths.clone();
    let out = tokio::task::spawn_blocking(move || {
        ferrolb_e2e::routing::birdc(&paths, Some(node), &["configure"])
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.contains("Reconfigured") || out.contains("Reconfiguration"),
        "{out}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_route_attributes_parse() {
        let text = "Table master4:
198.51.100.70/32     unicast [ferrolb_speaker 10:00:00.000] * (100) [AS64700i]
\tdev lo
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64700
\tBGP.next_hop: 192.0.2.11
\tBGP.local_pref: 100
\tBGP.community: (64512,100) (65535,65282)
\tBGP.large_community: (64512, 1, 2)
";
        let r = parse_bird_routes(text);
        let route = &r[&net("198.51.100.70/32")];
        assert_eq!(route.next_hop, "192.0.2.11");
        assert_eq!(route.local_pref, Some(100));
        assert_eq!(route.as_path, "64700");
        assert_eq!(
            route.communities,
            BTreeSet::from(["64512:100".to_string(), "65535:65282".to_string()])
        );
        assert_eq!(
            route.large_communities,
            BTreeSet::from(["64512:1:2".to_string()])
        );
    }

    #[test]
    fn birds_view_of_the_speakers_graceful_restart_parses() {
        let out = "ferrolb_speaker BGP        ---        up     08:29:35.298  Established
  BGP state:          Established
    Neighbor address: 127.0.0.1
    Local capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Route refresh
      Graceful restart
      4-octet AS numbers
    Neighbor capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Route refresh
      Graceful restart
        Restart time: 120
        Restart recovery
        AF supported: ipv4 ipv6
        AF preserved: ipv4 ipv6
      4-octet AS numbers
    Session:          external multihop AS4
";
        assert_eq!(parse_neighbor_graceful_restart(out), Some(true));
        let without = out.replace(
            "      Graceful restart
        Restart time: 120
        Restart recovery
        AF supported: ipv4 ipv6
        AF preserved: ipv4 ipv6
",
            "",
        );
        assert_eq!(parse_neighbor_graceful_restart(&without), Some(false));
        assert_eq!(
            parse_neighbor_graceful_restart(&out.replace("Established", "Active")),
            None
        );
    }

    #[test]
    fn metric_lines_are_found_by_series() {
        let text = "# HELP x\nferrolb_bgp_session_up{peer=\"127.0.0.1:179\"} 1\nferrolb_bgp_updates_sent_total{peer=\"127.0.0.1:179\"} 12\n";
        assert_eq!(
            metric(text, "ferrolb_bgp_session_up", "peer=\"127.0.0.1:179\""),
            Some(1.0)
        );
        assert_eq!(metric(text, "ferrolb_bgp_session_up", "peer=\"x\""), None);
        assert_eq!(series(text, "ferrolb_bgp_updates_sent_total").len(), 1);
    }
}

/// How a [`FakePeer`] misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Answers the speaker's OPEN with bytes that are not BGP.
    Garbage,
    /// Completes the handshake, then sends an UPDATE whose withdrawn-routes length runs past
    /// the message.
    MalformedUpdate,
    /// Completes the handshake with a hold time of 3 s, then never sends again.
    Silent,
}

/// A BGP peer that misbehaves, listening inside a lab namespace; stops when dropped.
pub struct FakePeer {
    stop: Arc<AtomicBool>,
    accepted: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const MARKER: [u8; 16] = [0xff; 16];

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = MARKER.to_vec();
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// OPEN from AS 64600 with `hold` seconds and identifier 192.0.2.250, offering IPv4 unicast.
fn fake_open(hold: u16) -> Vec<u8> {
    let mut body = vec![4];
    body.extend_from_slice(&(t::NODE_ASN as u16).to_be_bytes());
    body.extend_from_slice(&hold.to_be_bytes());
    body.extend_from_slice(&[192, 0, 2, 250]);
    // One capabilities parameter: multiprotocol IPv4 unicast.
    body.extend_from_slice(&[8, 2, 6, 1, 4, 0, 1, 0, 1]);
    message(1, &body)
}

/// Reads one whole BGP message (or gives up when the connection ends or stalls).
fn read_message(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut header = [0u8; 19];
    stream.read_exact(&mut header).ok()?;
    let len = u16::from_be_bytes([header[16], header[17]]) as usize;
    let mut rest = vec![0u8; len.checked_sub(19)?];
    stream.read_exact(&mut rest).ok()?;
    let mut all = header.to_vec();
    all.extend(rest);
    Some(all)
}

impl FakePeer {
    pub fn start(netns: &str, port: u16, how: Misbehaviour) -> FakePeer {
        let listener = ferrolb_e2e::apiproxy::bind_in_netns(
            netns,
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stopped, seen) = (Arc::clone(&stop), Arc::clone(&accepted));
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    // Non-blocking: nobody is connecting right now.
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                seen.lock().unwrap().push(std::time::Instant::now());
                serve(stream, how, &stopped);
            }
        });
        FakePeer {
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    /// When the speaker's connections were accepted.
    pub fn accepted(&self) -> Vec<std::time::Instant> {
        self.accepted.lock().unwrap().clone()
    }
}

fn serve(mut stream: std::net::TcpStream, how: Misbehaviour, stop: &AtomicBool) {
    use std::io::Write;
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The speaker's OPEN first (it dials, so it speaks first).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    if read_message_until(&mut stream, deadline).is_none() {
        return;
    }
    let out = match how {
        Misbehaviour::Garbage => vec![0u8; 40],
        Misbehaviour::MalformedUpdate => {
            let mut m = fake_open(9);
            m.extend(message(4, &[]));
            // Withdrawn-routes length 16, and nothing after it.
            m.extend(message(2, &[0, 16]));
            m
        }
        Misbehaviour::Silent => {
            let mut m = fake_open(3);
            m.extend(message(4, &[]));
            m
        }
    };
    if stream.write_all(&out).is_err() {
        return;
    }
    // Take whatever the speaker sends (its NOTIFICATION) until it closes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        use std::io::Read;
        let mut sink = [0u8; 4096];
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

fn read_message_until(
    stream: &mut std::net::TcpStream,
    deadline: std::time::Instant,
) -> Option<Vec<u8>> {
    while std::time::Instant::now() < deadline {
        if let Some(m) = read_message(stream) {
            return Some(m);
        }
    }
    None
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `bgp session down` lines a speaker logged for `peer` (its log is JSON lines).
pub fn session_down_lines(lab: &Lab, node: NodeId, peer: &str) -> Vec<serde_json::Value> {
    let log = lab.paths.log(&ferrolb_e2e::state::Part::Speaker(node));
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("bgp session down"))
                && v["peer"].as_str() == Some(peer)
        })
        .collect()
}

/// Notes of the Events with `reason` about BGPPeer `peer`.
pub async fn peer_events(lab: &Lab, peer: &str, reason: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::all(lab.client().await);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("BGPPeer") && r.name.as_deref() == Some(peer)
                })
        })
        .filter_map(|e| e.note)
        .collect()
}

/// The routes a node's daemon — BIRD, FRR or GoBGP (`LabConfig::node_daemons`) — holds from
/// its speaker.
pub async fn node_speaker_routes(
    lab: &Lab,
    node: NodeId,
) -> BTreeMap<IpNet, ferrolb_e2e::nodepeer::SpeakerRoute> {
    use ferrolb_e2e::nodepeer::{self, NodeDaemon, SpeakerRoute};
    match lab.config.node_daemons.get(node) {
        NodeDaemon::Bird => node_bird_routes(lab, node, "ferrolb_speaker")
            .await
            .into_iter()
            .map(|(net, r)| {
                (
                    net,
                    SpeakerRoute {
                        next_hop: r.next_hop,
                        local_pref: r.local_pref,
                        communities: r.communities,
                        large_communities: r.large_communities,
                    },
                )
            })
            .collect(),
        daemon => {
            let paths = lab.paths.clone();
            tokio::task::spawn_blocking(move || nodepeer::speaker_routes(&paths, node, daemon))
                .await
                .unwrap()
                .unwrap_or_default()
        }
    }
}

/// Whether a node's daemon has an established session with its speaker in which the
/// speaker announced graceful restart (`None`: no established session).
pub async fn node_speaker_graceful_restart(lab: &Lab, node: NodeId) -> Option<bool> {
    use ferrolb_e2e::nodepeer::{self, NodeDaemon};
    match lab.config.node_daemons.get(node) {
        NodeDaemon::Bird => node_session_graceful_restart(lab, node, "ferrolb_speaker").await,
        daemon => {
            let paths = lab.paths.clone();
            tokio::task::spawn_blocking(move || {
                nodepeer::speaker_graceful_restart(&paths, node, daemon)
            })
            .await
            .unwrap()
            .ok()
            .flatten()
        }
    }
}
