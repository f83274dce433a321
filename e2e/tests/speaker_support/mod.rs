//! Helpers of the speaker's L2 tests: a pool and an L2Advertisement per test (removed on
//! drop), LoadBalancer Services asking for given addresses, and what the L2 client sees.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of this; tests may unwrap

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferrolb_api::ServiceL2Status;
use ferrolb_e2e::topology::L2CLIENT_NS;
use ferrolb_e2e::{Lab, NodeId, poll};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

pub const WAIT: Duration = Duration::from_secs(60);

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Cluster-scoped objects a test made (pools, advertisements), deleted when dropped.
pub struct ClusterObjects {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    objects: Vec<String>,
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

/// An IPAddressPool `name` with `addresses` (not auto-assigned: only Services asking for it
/// get its addresses) and an L2Advertisement `name` for it with `spec` merged in.
pub async fn l2_pool(
    lab: &Lab,
    name: &str,
    addresses: &[&str],
    advertisement: serde_json::Value,
) -> ClusterObjects {
    let mut spec = json!({"ipAddressPools": [name]});
    for (k, v) in advertisement.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let yaml = serde_json::to_string(&json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "ferrolb.io/v1alpha1",
                "kind": "IPAddressPool",
                "metadata": {"name": name},
                "spec": {"addresses": addresses, "autoAssign": false}
            },
            {
                "apiVersion": "ferrolb.io/v1alpha1",
                "kind": "L2Advertisement",
                "metadata": {"name": name},
                "spec": spec
            }
        ]
    }))
    .unwrap();
    lab.apply_yaml(&yaml).await.unwrap();
    ClusterObjects {
        kubectl: kubectl_path(),
        kubeconfig: lab.paths.kubeconfig(),
        objects: vec![
            format!("ipaddresspool.ferrolb.io/{name}"),
            format!("l2advertisement.ferrolb.io/{name}"),
        ],
    }
}

/// Replaces the L2Advertisement `name`'s spec (its pool stays `name`).
pub async fn set_advertisement(lab: &Lab, name: &str, advertisement: serde_json::Value) {
    let mut spec = json!({"ipAddressPools": [name]});
    for (k, v) in advertisement.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let yaml = serde_json::to_string(&json!({
        "apiVersion": "ferrolb.io/v1alpha1",
        "kind": "L2Advertisement",
        "metadata": {"name": name},
        "spec": spec
    }))
    .unwrap();
    lab.apply_yaml(&yaml).await.unwrap();
}

/// How a test Service routes external traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Cluster,
    Local,
}

/// A LoadBalancer Service `name` (Pods `app: <name>`, port 80) asking pool `pool` for
/// `addresses` (one per family; two make it RequireDualStack).
pub fn l2_service(name: &str, pool: &str, addresses: &[IpAddr], policy: Policy) -> Service {
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

/// The node ferrolb's election picks for `addr` among `eligible`.
pub fn predicted_owner(addr: IpAddr, eligible: &[NodeId]) -> NodeId {
    let names: Vec<String> = eligible.iter().map(|n| n.name()).collect();
    let owner = ferrolb_speaker::election::owner(addr, names.iter().map(String::as_str)).unwrap();
    owner.parse().unwrap()
}

/// The L2 client's neighbour entry (MAC) for `addr`, if it has a usable one.
pub async fn neighbour_mac(lab: &Lab, addr: IpAddr) -> Option<String> {
    lab.neighbours(L2CLIENT_NS)
        .await
        .ok()?
        .into_iter()
        .find(|n| n.ip == addr && !n.state.iter().any(|s| s == "FAILED" || s == "INCOMPLETE"))
        .and_then(|n| n.mac)
}

/// Forgets the L2 client's neighbour entry for `addr`, so the next packet resolves it anew.
pub async fn forget_neighbour(lab: &Lab, addr: IpAddr) {
    let _ = lab
        .exec(
            L2CLIENT_NS,
            &[
                "ip",
                "neigh",
                "flush",
                "to",
                &addr.to_string(),
                "dev",
                "eth0",
            ],
        )
        .await;
}

/// The MAC of every node's segment interface.
pub async fn node_macs(lab: &Lab) -> BTreeMap<String, NodeId> {
    let mut out = BTreeMap::new();
    for n in lab.nodes() {
        out.insert(lab.node_mac(n).await.unwrap(), n);
    }
    out
}

/// The node whose MAC the L2 client resolves `addr` to, after an HTTP request (which must
/// be answered: the reply body, the answering node's name, is returned too).
pub async fn resolve_and_get(lab: &Lab, addr: IpAddr) -> (NodeId, String) {
    let macs = node_macs(lab).await;
    poll(
        &format!("HTTP to {addr} from {L2CLIENT_NS} and a neighbour entry"),
        WAIT,
        || async {
            let body = lab
                .http_get(L2CLIENT_NS, addr, 80)
                .await
                .map_err(|e| e.to_string())?;
            let mac = neighbour_mac(lab, addr)
                .await
                .ok_or_else(|| "no neighbour entry".to_string())?;
            let node = macs
                .get(&mac)
                .ok_or_else(|| format!("{mac} is no node's MAC"))?;
            Ok::<_, String>((*node, body))
        },
    )
    .await
    .unwrap()
}

/// Waits until the L2 client's neighbour entry for `addr` points at `node`, without sending
/// anything to `addr` (only the speaker's announcements can move it).
pub async fn wait_neighbour(lab: &Lab, addr: IpAddr, node: NodeId) {
    let want = lab.node_mac(node).await.unwrap();
    poll(
        &format!("{L2CLIENT_NS}'s neighbour entry for {addr} to be {node} ({want})"),
        WAIT,
        || async {
            match neighbour_mac(lab, addr).await {
                Some(m) if m == want => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap();
}

/// ServiceL2Status objects of one Service: (node, interfaces).
pub async fn l2_statuses(lab: &Lab, ns: &str, service: &str) -> Vec<(String, Vec<String>)> {
    let api: Api<ServiceL2Status> = Api::namespaced(lab.client().await, ns);
    let list = api
        .list(&ListParams::default().labels(&format!("ferrolb.io/service-name={service}")))
        .await
        .unwrap();
    let mut out: Vec<(String, Vec<String>)> = list
        .items
        .into_iter()
        .filter_map(|s| s.status)
        .map(|s| (s.node, s.interfaces.into_iter().map(|i| i.name).collect()))
        .collect();
    out.sort();
    out
}

/// Waits until the Service's ServiceL2Status objects are exactly `want`.
pub async fn wait_l2_status(lab: &Lab, ns: &str, service: &str, want: &[(NodeId, &[&str])]) {
    let want: Vec<(String, Vec<String>)> = want
        .iter()
        .map(|(n, i)| (n.name(), i.iter().map(|s| s.to_string()).collect()))
        .collect();
    poll(
        &format!("ServiceL2Status of {ns}/{service} to be {want:?}"),
        WAIT,
        || async {
            let got = l2_statuses(lab, ns, service).await;
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    )
    .await
    .unwrap();
}

/// A speaker's /metrics text.
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sum of a metric's samples whose labels contain every `label="value"` in `labels`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends `count` ARP requests for `addr` from the L2 client while capturing the segment there;
/// returns the source MACs of the replies seen.
pub async fn arp_repliers(lab: &Lab, addr: IpAddr, count: u32) -> Vec<String> {
    let addr_s = addr.to_string();
    let argv = [
        "ip".to_string(),
        "netns".into(),
        "exec".into(),
        L2CLIENT_NS.into(),
        "tcpdump".into(),
        "-i".into(),
        "eth0".into(),
        "-n".into(),
        "-e".into(),
        "-l".into(),
        "-Q".into(),
        "in".into(),
        format!("arp and arp[6:2] == 2 and arp[14:4] == {}", ipv4_hex(addr)),
    ];
    let mut capture = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // tcpdump says "listening on" once its filter is in place.
    let mut stderr = tokio::io::BufReader::new(capture.stderr.take().unwrap());
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut line = String::new();
            let n = tokio::io::AsyncBufReadExt::read_line(&mut stderr, &mut line)
                .await
                .unwrap();
            seen.push_str(&line);
            if n == 0 || line.contains("listening on") {
                break;
            }
        }
    })
    .await
    .expect("tcpdump starts listening");
    assert!(seen.contains("listening on"), "tcpdump: {seen}");
    let out = lab
        .exec(
            L2CLIENT_NS,
            &["arping", "-c", &count.to_string(), "-i", "eth0", &addr_s],
        )
        .await
        .unwrap();
    let arping = String::from_utf8_lossy(&out.stdout).into_owned();
    // Replies to the last request may still be on their way into the capture.
    let _ = capture.start_kill();
    let output = capture.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let macs: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    assert!(
        !macs.is_empty() || !arping.contains("bytes from"),
        "arping saw replies the capture missed: {arping}"
    );
    macs
}

fn ipv4_hex(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => format!("0x{:08x}", u32::from(v4)),
        IpAddr::V6(_) => panic!("ARP is IPv4 only"),
    }
}
