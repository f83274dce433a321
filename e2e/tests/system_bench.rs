//! Figures of issue 9's own scenarios, printed and recorded (FERROLB_BENCH_OUT), never
//! asserted; ignored by default, run by `make bench` (bench/README.md says how each is timed):
//!
//!     cargo build --bins && cargo test -p ferrolb-e2e --test system_bench -- --ignored --nocapture --test-threads 1
//!
//! - Service created → the L2 client gets an ARP answer for its address (p50/p99);
//! - peak RSS of the controller and of the speakers at 0, 100, 1k and 10k Services announced
//!   over BGP (targets: controller < 64 MiB at 10k, issue 5; speaker < 48 MiB at 10k routes,
//!   issue 7).
//!
//! The tests run in name order (libtest sorts them) and `a_` comes first on purpose: the ARP
//! figure is taken in a quiet lab, before the memory ramp leaves 10,000 Services behind.
//! FERROLB_BENCH_SIZE=smoke runs 5 ARP samples and a ramp to 10 Services.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ferrolb_e2e::benchjson::{self, Record, Stat};
use ferrolb_e2e::state::{Part, Paths, State};
use ferrolb_e2e::topology::L2CLIENT_NS;
use ferrolb_e2e::{Lab, cmd, poll};
use futures::StreamExt;
use ipnet::{IpNet, Ipv6Net};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

/// Cluster-scoped objects a test made, deleted (without waiting) when dropped.
struct ClusterObjects {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    objects: Vec<String>,
}

impl Drop for ClusterObjects {
    fn drop(&mut self) {
        for o in &self.objects {
            let _ = std::process::Command::new(&self.kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", o, "--wait=false", "--ignore-not-found"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Applies `items` (cluster-scoped ferrolb objects) and returns their guard.
async fn apply(lab: &Lab, items: Vec<serde_json::Value>) -> ClusterObjects {
    let objects = items
        .iter()
        .map(|i| {
            format!(
                "{}.ferrolb.io/{}",
                i["kind"].as_str().unwrap().to_lowercase(),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    lab.apply_yaml(&list.to_string()).await.unwrap();
    let state = State::load(&Paths::from_build()).unwrap();
    ClusterObjects {
        kubectl: state.k8s_dir.join("kubectl"),
        kubeconfig: lab.paths.kubeconfig(),
        objects,
    }
}

/// A LoadBalancer Service `name` asking pool `pool` for `addr` (one family, Cluster policy).
fn service(name: &str, pool: &str, addr: Option<IpAddr>, family: &str) -> Service {
    let mut annotations = json!({"ferrolb.io/address-pool": pool});
    if let Some(a) = addr {
        annotations["ferrolb.io/loadBalancerIPs"] = json!(a.to_string());
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": [family],
            "externalTrafficPolicy": "Cluster",
            // The lab's NodePort range holds 2,768 ports: the 10k step would run out.
            "allocateLoadBalancerNodePorts": false,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        }
    }))
    .unwrap()
}

/// `arping` on the L2 client's segment interface; the caller adds the rest of the arguments.
fn arping(addr: Ipv4Addr, args: &[&str]) -> tokio::process::Command {
    let mut c = cmd::in_netns(L2CLIENT_NS, "arping");
    c.args(["-i", "eth0"]).args(args).arg(addr.to_string());
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    tokio::process::Command::from(c)
}

/// Waits until nothing answers ARP for `addr` any more (a deleted Service's address being
/// reused): one request, 300 ms for a reply, repeated until none comes.
async fn wait_unanswered(addr: Ipv4Addr) {
    poll(
        &format!("no ARP answer for {addr}"),
        Duration::from_secs(30),
        || async move {
            let st = arping(addr, &["-c", "1", "-w", "0.3"])
                .status()
                .await
                .map_err(|e| e.to_string())?;
            if st.success() {
                Err("still answered".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn a_service_created_to_arp_answer_at_the_l2_client() {
    let size = benchjson::size();
    let n: usize = size.pick(5, 200);
    // 100 addresses on the segment that the lab leaves free (nodes are .11–.26, the L2
    // client .100, the API address .250); the second hundred samples reuse them.
    let addrs: Vec<Ipv4Addr> = (0..100u8)
        .map(|i| Ipv4Addr::new(192, 0, 2, 120 + i))
        .collect();
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("sysb-arp").await.unwrap();
    let _objects = apply(
        &lab,
        vec![
            json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
                "metadata": {"name": "sysb-arp"},
                "spec": {"addresses": ["192.0.2.120-192.0.2.219"], "autoAssign": false}}),
            json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "L2Advertisement",
                "metadata": {"name": "sysb-arp"},
                "spec": {"ipAddressPools": ["sysb-arp"]}}),
        ],
    )
    .await;
    let api: Api<Service> = Api::namespaced(lab.client().await, &ns);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let addr = addrs[i % addrs.len()];
        if i >= addrs.len() {
            wait_unanswered(addr).await;
        }
        // One request every millisecond until the first reply (-C 1), then exit; the
        // deadline only guards against a Service that never gets announced.
        let mut probe = arping(addr, &["-C", "1", "-W", "0.001", "-w", "60"])
            .spawn()
            .unwrap();
        let name = format!("arp-{i}");
        let created = Instant::now();
        api.create(
            &PostParams::default(),
            &service(&name, "sysb-arp", Some(IpAddr::V4(addr)), "IPv4"),
        )
        .await
        .unwrap();
        let status = probe.wait().await.unwrap();
        let took = created.elapsed();
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = probe.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut err).await;
            }
            panic!(
                "no ARP answer for {addr} within 60 s of creating {}/{name}: {status} {err}",
                ns.name
            );
        }
        println!("sample {i:3}: {addr} answered {took:?} after the create request");
        samples.push(took.as_secs_f64() * 1e3);
        api.delete(&name, &DeleteParams::default()).await.unwrap();
        poll(
            &format!("{}/{name} gone", ns.name),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    match api.get_opt(&name).await {
                        Ok(None) => Ok(()),
                        Ok(Some(_)) => Err("still there".to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await
        .unwrap();
    }
    let r = Record::new(
        "service_to_arp_answer",
        "Service create request → first ARP reply at the L2 client",
        "ms",
        n as u64,
        samples,
    );
    println!("FIGURE {r}");
    benchjson::record(&r).unwrap();
}

/// Peak RSS (VmHWM, MiB) of every running lab process of the parts `is` selects.
fn peaks(lab: &Lab, is: impl Fn(&Part) -> bool) -> Vec<(String, f64)> {
    let state = State::load(&lab.paths).unwrap();
    state
        .procs
        .iter()
        .filter(|(part, _)| is(part))
        .filter_map(|(part, p)| {
            let id = p.id?;
            Some((part.to_string(), benchjson::peak_rss_mib(id.pid).ok()?))
        })
        .collect()
}

/// A ferrolb-controller replica (`controller`, or `controller-N` when the lab runs several).
fn is_controller(part: &Part) -> bool {
    let s = part.to_string();
    s == "controller"
        || s.strip_prefix("controller-")
            .is_some_and(|r| r.bytes().all(|b| b.is_ascii_digit()))
}

fn is_speaker(part: &Part) -> bool {
    matches!(part, Part::Speaker(_))
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn b_peak_rss_against_services() {
    let size = benchjson::size();
    let levels: Vec<usize> = size.pick(vec![0, 5, 10], vec![0, 100, 1_000, 10_000]);
    // Inside the range the nodes' BIRD passes on to the router (BGP_SERVICES6).
    let pool: Ipv6Net = "2001:db8:198::5:0/112".parse().unwrap();
    let lab = Lab::exclusive().await;
    let nodes = lab.nodes().len();
    let ns = lab.namespace("sysb-mem").await.unwrap();
    let _objects = apply(
        &lab,
        vec![
            json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
                "metadata": {"name": "sysb-mem"},
                "spec": {"addresses": [pool.to_string()], "autoAssign": false}}),
            json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPPeer",
                "metadata": {"name": "sysb-node-bird"},
                "spec": {"peerAddress": "127.0.0.1", "peerASN": ferrolb_e2e::topology::NODE_ASN,
                    "myASN": ferrolb_e2e::topology::SPEAKER_ASN}}),
            json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPAdvertisement",
                "metadata": {"name": "sysb-mem"},
                "spec": {"ipAddressPools": ["sysb-mem"]}}),
        ],
    )
    .await;
    let api: Api<Service> = Api::namespaced(lab.client().await, &ns);
    let mut created = 0usize;
    for &level in &levels {
        let started = Instant::now();
        // 32 create requests in flight: the API server's pace, not one round trip each.
        futures::stream::iter(created..level)
            .map(|i| {
                let api = api.clone();
                async move {
                    api.create(
                        &PostParams::default(),
                        &service(&format!("mem-{i}"), "sysb-mem", None, "IPv6"),
                    )
                    .await
                    .map(drop)
                }
            })
            .buffer_unordered(32)
            .for_each(|r| async move { r.unwrap() })
            .await;
        let made = started.elapsed();
        created = level;
        // Every Service assigned and announced by every speaker: the router has a route to
        // each address with one next hop per node.
        poll(
            &format!("{level} routes with {nodes} next hops each at the router"),
            Duration::from_secs(600),
            || async {
                let routes = lab.router_routes().await.map_err(|e| e.to_string())?;
                let full = routes
                    .iter()
                    .filter(|r| matches!(r.dst, IpNet::V6(d) if pool.contains(&d)))
                    .filter(|r| r.next_hops.len() == nodes)
                    .count();
                if full == level {
                    Ok(())
                } else {
                    Err(format!("{full} of {level}"))
                }
            },
        )
        .await
        .unwrap();
        println!(
            "{level} Services: created in {made:?}, all routed after {:?}",
            started.elapsed()
        );
        let controllers = peaks(&lab, is_controller);
        let speakers = peaks(&lab, is_speaker);
        assert!(
            !controllers.is_empty() && speakers.len() == nodes,
            "every controller and speaker has a readable peak RSS: {controllers:?} {speakers:?}"
        );
        for (part, mib) in controllers.iter().chain(&speakers) {
            println!("  {part}: peak RSS {mib:.1} MiB");
        }
        let max = |v: &[(String, f64)]| v.iter().map(|x| x.1).fold(0.0, f64::max);
        let c = Record::new(
            "system_memory",
            "controller peak RSS (largest replica)",
            "MiB",
            level as u64,
            vec![max(&controllers)],
        );
        let s = Record::new(
            "system_memory",
            "speaker peak RSS (largest of the nodes, BGP)",
            "MiB",
            level as u64,
            vec![max(&speakers)],
        );
        let (c, s) = if level == 10_000 {
            (c.target(Stat::Worst, 64.0), s.target(Stat::Worst, 48.0))
        } else {
            (c, s)
        };
        for r in [c, s] {
            println!("FIGURE {r}");
            benchjson::record(&r).unwrap();
        }
    }
}
