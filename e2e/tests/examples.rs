//! Every manifest in examples/ applied to the lab as a user would (`kubectl apply -f`), and
//! checked against what its comments say it does: addresses, pools, conditions, who answers
//! ARP, which nodes the router sends traffic to, the communities BIRD receives.
//!
//! The examples are cluster-wide configuration that would disturb one another (two pools
//! without serviceAllocation both catch every Service), so each test takes the lab alone and
//! starts from a cluster without ferrolb configuration or LoadBalancer Services.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::{ip, net, wait_route_via};
use ferrolb_e2e::topology::{CLIENT_NS, L2CLIENT_NS};
use ferrolb_e2e::{Lab, NodeId, Target, poll};

/// Each example and the test that applies it; a new example without a test fails
/// `every_example_has_a_test`.
const TESTED: &[&str] = &[
    "l2.yaml",
    "bgp.yaml",
    "dual-stack.yaml",
    "shared-ip.yaml",
    "pool-per-namespace.yaml",
    "local-traffic-policy.yaml",
];

const WAIT: Duration = Duration::from_secs(30);

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

#[test]
fn every_example_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(example(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut tested: Vec<String> = TESTED.iter().map(|s| s.to_string()).collect();
    tested.sort();
    assert_eq!(files, tested);
}

/// Removes every ferrolb configuration object, every LoadBalancer Service and the
/// namespaces examples create, so that a test sees only its own example.
async fn reset(lab: &Lab) {
    lab.kubectl(&[
        "delete",
        "ipaddresspools.ferrolb.io,l2advertisements.ferrolb.io,bgpadvertisements.ferrolb.io,bgppeers.ferrolb.io",
        "--all",
        "--wait",
    ])
    .await
    .unwrap();
    let list = lab
        .kubectl(&["get", "services", "--all-namespaces", "-o", "json"])
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    for s in list["items"].as_array().unwrap() {
        if s["spec"]["type"] == "LoadBalancer" {
            lab.kubectl(&[
                "delete",
                "service",
                s["metadata"]["name"].as_str().unwrap(),
                "-n",
                s["metadata"]["namespace"].as_str().unwrap(),
                "--wait",
            ])
            .await
            .unwrap();
        }
    }
    lab.kubectl(&[
        "delete",
        "namespace",
        "team-a",
        "team-b",
        "--ignore-not-found",
        "--wait",
        "--timeout=60s",
    ])
    .await
    .unwrap();
}

/// `kubectl apply -f examples/<name>`, namespaced objects without a namespace into `ns`.
async fn apply(lab: &Lab, name: &str, ns: &str) {
    lab.kubectl(&[
        "apply",
        "-n",
        ns,
        "-f",
        &example(name).display().to_string(),
    ])
    .await
    .unwrap();
}

fn jsonpath(path: &str) -> String {
    format!("jsonpath={path}")
}

/// The addresses in a Service's status.
async fn addresses(lab: &Lab, ns: &str, svc: &str) -> Vec<IpAddr> {
    let out = lab
        .kubectl(&[
            "get",
            "service",
            svc,
            "-n",
            ns,
            "-o",
            &jsonpath("{.status.loadBalancer.ingress[*].ip}"),
        ])
        .await
        .unwrap();
    out.split_whitespace().map(|a| a.parse().unwrap()).collect()
}

/// Waits until the Service's status holds exactly `want`.
async fn wait_addresses(lab: &Lab, ns: &str, svc: &str, want: &[&str]) {
    let want: Vec<IpAddr> = want.iter().map(|a| ip(a)).collect();
    poll(&format!("{ns}/{svc} to get {want:?}"), WAIT, || async {
        let got = addresses(lab, ns, svc).await;
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{got:?}; condition {:?}",
                condition(lab, ns, svc).await
            ))
        }
    })
    .await
    .unwrap();
}

/// The Service's ferrolb.io/IPAllocated condition: (status, reason).
async fn condition(lab: &Lab, ns: &str, svc: &str) -> (String, String) {
    let out = lab
        .kubectl(&[
            "get",
            "service",
            svc,
            "-n",
            ns,
            "-o",
            &jsonpath(
                r#"{range .status.conditions[?(@.type=="ferrolb.io/IPAllocated")]}{.status} {.reason}{end}"#,
            ),
        ])
        .await
        .unwrap();
    let mut words = out.split_whitespace();
    (
        words.next().unwrap_or("").to_string(),
        words.next().unwrap_or("").to_string(),
    )
}

async fn wait_condition(lab: &Lab, ns: &str, svc: &str, status: &str, reason: &str) {
    poll(
        &format!("{ns}/{svc}: IPAllocated {status} {reason}"),
        WAIT,
        || async {
            let got = condition(lab, ns, svc).await;
            if got == (status.to_string(), reason.to_string()) {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    )
    .await
    .unwrap();
}

/// The pool the controller wrote into the Service's annotation.
async fn allocated_from(lab: &Lab, ns: &str, svc: &str) -> String {
    lab.kubectl(&[
        "get",
        "service",
        svc,
        "-n",
        ns,
        "-o",
        &jsonpath(r"{.metadata.annotations.ferrolb\.io/ip-allocated-from-pool}"),
    ])
    .await
    .unwrap()
    .trim()
    .to_string()
}

/// Names of a kind's objects in a namespace (`hello.node2`, …).
async fn names(lab: &Lab, kind: &str, ns: &str) -> BTreeSet<String> {
    let out = lab
        .kubectl(&[
            "get",
            kind,
            "-n",
            ns,
            "-o",
            &jsonpath("{.items[*].metadata.name}"),
        ])
        .await
        .unwrap();
    out.split_whitespace().map(str::to_string).collect()
}

async fn wait_names(lab: &Lab, kind: &str, ns: &str, want: &[String]) {
    let want: BTreeSet<String> = want.iter().cloned().collect();
    poll(&format!("{kind} in {ns}: {want:?}"), WAIT, || async {
        let got = names(lab, kind, ns).await;
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await
    .unwrap();
}

/// The node `flb-l2client` reaches `addr` on: it answers HTTP with its name, and the
/// client's neighbour entry for `addr` is that node's MAC.
async fn l2_owner(lab: &Lab, addr: IpAddr) -> NodeId {
    poll(
        &format!("HTTP to {addr} from {L2CLIENT_NS}"),
        WAIT,
        || async {
            let body = lab
                .http_get(L2CLIENT_NS, addr, 80)
                .await
                .map_err(|e| e.to_string())?;
            let node: NodeId = body.parse()?;
            let mac = neighbour_mac(lab, addr).await;
            let want = lab.node_mac(node).await.map_err(|e| e.to_string())?;
            if mac.as_deref() == Some(want.as_str()) {
                Ok(node)
            } else {
                Err(format!("{node} answered, neighbour entry {mac:?}"))
            }
        },
    )
    .await
    .unwrap()
}

async fn neighbour_mac(lab: &Lab, addr: IpAddr) -> Option<String> {
    lab.neighbours(L2CLIENT_NS)
        .await
        .ok()?
        .into_iter()
        .find(|n| n.ip == addr && !n.state.iter().any(|s| s == "FAILED" || s == "INCOMPLETE"))
        .and_then(|n| n.mac)
}

/// The MACs that answer `arping` for an IPv4 address on the node segment.
async fn arp_repliers(lab: &Lab, addr: &str) -> BTreeSet<String> {
    let out = lab
        .exec(
            L2CLIENT_NS,
            &["arping", "-c", "3", "-w", "5", "-I", "eth0", addr],
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Thomas Habets' arping: "60 bytes from 5a:…:01 (192.0.2.200): index=0 time=…".
    text.lines()
        .filter_map(|l| l.split_once(" bytes from ")?.1.split_whitespace().next())
        .map(str::to_lowercase)
        .collect()
}

/// Restarts a killed speaker when the test ends, passing or not.
struct RestartSpeaker(ferrolb_e2e::state::Paths, NodeId);

impl Drop for RestartSpeaker {
    fn drop(&mut self) {
        let _ = ferrolb_e2e::lab::restore(&self.0, Target::Speaker(self.1));
    }
}

#[tokio::test]
async fn l2_basic() {
    let lab = Lab::exclusive().await;
    reset(&lab).await;
    let ns = lab.namespace("ex-l2").await.unwrap();
    apply(&lab, "l2.yaml", &ns).await;

    // The lowest address of the pool.
    wait_addresses(&lab, &ns, "hello", &["192.0.2.200"]).await;
    assert_eq!(allocated_from(&lab, &ns, "hello").await, "default");
    let addr = ip("192.0.2.200");

    // One node answers, and says so in its ServiceL2Status.
    let owner = l2_owner(&lab, addr).await;
    let owner_mac = lab.node_mac(owner).await.unwrap();
    assert_eq!(
        arp_repliers(&lab, "192.0.2.200").await,
        BTreeSet::from([owner_mac.clone()]),
        "exactly one node answers ARP"
    );
    wait_names(
        &lab,
        "servicel2statuses",
        &ns,
        &[format!("hello.{}", owner.name())],
    )
    .await;

    // Its speaker stops: another node takes over and announces it by gratuitous ARP, which
    // moves the client's neighbour entry without the client asking.
    let _restart = RestartSpeaker(lab.paths.clone(), owner);
    lab.kill(Target::Speaker(owner)).await.unwrap();
    let mut macs = BTreeSet::new();
    for n in lab.nodes() {
        macs.insert(lab.node_mac(n).await.unwrap());
    }
    poll(
        "the client's neighbour entry to move to another node",
        WAIT,
        || async {
            match neighbour_mac(&lab, addr).await {
                Some(m) if m != owner_mac && macs.contains(&m) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap();
    let new_owner = l2_owner(&lab, addr).await;
    assert_ne!(new_owner, owner);
    drop(_restart);

    reset(&lab).await;
}

#[tokio::test]
async fn bgp_with_the_node_local_bird() {
    let lab = Lab::exclusive().await;
    reset(&lab).await;
    let ns = lab.namespace("ex-bgp").await.unwrap();
    apply(&lab, "bgp.yaml", &ns).await;

    wait_addresses(
        &lab,
        &ns,
        "hello-bgp",
        &["198.51.100.10", "2001:db8:198::10"],
    )
    .await;
    let all = lab.nodes();
    // Every node's speaker announces to its own BIRD, which passes the route on: the router
    // spreads each address over every node.
    for dst in ["198.51.100.10/32", "2001:db8:198::10/128"] {
        wait_route_via(&lab, net(dst), &all).await;
    }
    for a in ["198.51.100.10", "2001:db8:198::10"] {
        let body = lab.http_get(CLIENT_NS, ip(a), 80).await.unwrap();
        assert!(
            all.iter().any(|n| n.name() == body),
            "{a} answered by {body}"
        );
    }

    // On a node: the route came from ferrolb_speaker (node.conf's session to the speaker),
    // with the advertisement's communities.
    for n in &all {
        let paths = lab.paths.clone();
        let n = *n;
        let out = tokio::task::spawn_blocking(move || {
            ferrolb_e2e::routing::birdc(
                &paths,
                Some(n),
                &["show", "route", "all", "for", "198.51.100.10/32"],
            )
        })
        .await
        .unwrap()
        .unwrap();
        let compact: String = out.split_whitespace().collect();
        assert!(out.contains("ferrolb_speaker"), "{n}: {out}");
        assert!(compact.contains("BGP.community:(64600,100)"), "{n}: {out}");
        assert!(
            compact.contains("BGP.large_community:(64600,1,2)"),
            "{n}: {out}"
        );
    }
    wait_names(
        &lab,
        "servicebgpstatuses",
        &ns,
        &all.iter()
            .map(|n| format!("hello-bgp.{}", n.name()))
            .collect::<Vec<_>>(),
    )
    .await;

    reset(&lab).await;
    // Withdrawn with the Service.
    wait_route_via(&lab, net("198.51.100.10/32"), &[]).await;
}

#[tokio::test]
async fn dual_stack() {
    let lab = Lab::exclusive().await;
    reset(&lab).await;
    let ns = lab.namespace("ex-dual").await.unwrap();
    apply(&lab, "dual-stack.yaml", &ns).await;

    wait_addresses(&lab, &ns, "hello-dual", &["192.0.2.210", "2001:db8:2::210"]).await;
    assert_eq!(allocated_from(&lab, &ns, "hello-dual").await, "dual-stack");
    // ARP for the IPv4 address, NDP for the IPv6 one: the client on the segment reaches both.
    l2_owner(&lab, ip("192.0.2.210")).await;
    l2_owner(&lab, ip("2001:db8:2::210")).await;

    // RequireDualStack: with no IPv6 address left, a second Service gets none at all.
    let svc = r#"
apiVersion: v1
kind: Service
metadata:
  name: second
  annotations:
    ferrolb.io/address-pool: dual-stack
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector: {app: second}
  ports: [{name: http, port: 80}]
"#;
    lab.kubectl(&[
        "patch",
        "ipaddresspool",
        "dual-stack",
        "--type=merge",
        "-p",
        r#"{"spec":{"addresses":["192.0.2.210-192.0.2.214","2001:db8:2::210"]}}"#,
    ])
    .await
    .unwrap();
    lab.kubectl_input(&["apply", "-n", &ns, "-f", "-"], Some(svc))
        .await
        .unwrap();
    wait_condition(&lab, &ns, "second", "False", "PoolExhausted").await;
    assert!(addresses(&lab, &ns, "second").await.is_empty());
    let message = lab
        .kubectl(&[
            "get",
            "service",
            "second",
            "-n",
            &ns,
            "-o",
            &jsonpath(r#"{.status.conditions[?(@.type=="ferrolb.io/IPAllocated")].message}"#),
        ])
        .await
        .unwrap();
    assert!(
        message.contains("IPv6"),
        "the missing family named: {message}"
    );

    reset(&lab).await;
}

#[tokio::test]
async fn shared_ip() {
    let lab = Lab::exclusive().await;
    reset(&lab).await;
    let ns = lab.namespace("ex-shared").await.unwrap();
    apply(&lab, "shared-ip.yaml", &ns).await;

    wait_addresses(&lab, &ns, "web-http", &["192.0.2.215"]).await;
    wait_addresses(&lab, &ns, "web-admin", &["192.0.2.215"]).await;
    // Both ports at the one address, on the one node that answers for it.
    let owner = l2_owner(&lab, ip("192.0.2.215")).await;
    let admin = poll("HTTP to 192.0.2.215:8443", WAIT, || {
        lab.http_get(L2CLIENT_NS, ip("192.0.2.215"), 8443)
    })
    .await
    .unwrap();
    assert_eq!(admin, owner.name());

    // A third Service with the key and a port already taken gets no address.
    let svc = r#"
apiVersion: v1
kind: Service
metadata:
  name: web-other
  annotations:
    ferrolb.io/loadBalancerIPs: 192.0.2.215
    ferrolb.io/allow-shared-ip: web
spec:
  type: LoadBalancer
  selector: {app: web-other}
  ports: [{name: http, port: 80}]
"#;
    lab.kubectl_input(&["apply", "-n", &ns, "-f", "-"], Some(svc))
        .await
        .unwrap();
    wait_condition(&lab, &ns, "web-other", "False", "SharingConflict").await;
    assert!(addresses(&lab, &ns, "web-other").await.is_empty());

    reset(&lab).await;
}

#[tokio::test]
async fn a_pool_per_namespace_with_priorities() {
    let lab = Lab::exclusive().await;
    reset(&lab).await;
    let other = lab.namespace("ex-other").await.unwrap();
    // The example names its namespaces.
    lab.kubectl(&[
        "apply",
        "-f",
        &example("pool-per-namespace.yaml").display().to_string(),
    ])
    .await
    .unwrap();

    wait_addresses(&lab, "team-a", "web", &["192.0.2.220"]).await;
    assert_eq!(allocated_from(&lab, "team-a", "web").await, "team-a");
    // team-b by its label.
    wait_addresses(&lab, "team-b", "web", &["192.0.2.222"]).await;
    assert_eq!(allocated_from(&lab, "team-b", "web").await, "team-b");

    // team-a's own pool has two addresses; the third Service gets the overflow pool's.
    let svc = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n\
             spec: {{type: LoadBalancer, selector: {{app: {name}}}, ports: [{{name: http, port: 80}}]}}\n"
        )
    };
    for name in ["web-2", "web-3"] {
        lab.kubectl_input(&["apply", "-n", "team-a", "-f", "-"], Some(&svc(name)))
            .await
            .unwrap();
        // One at a time, so that the order of the addresses is the order of the Services.
        poll(&format!("team-a/{name} address"), WAIT, || async {
            if addresses(&lab, "team-a", name).await.is_empty() {
                Err("none yet")
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
    }
    wait_addresses(&lab, "team-a", "web-2", &["192.0.2.221"]).await;
    assert_eq!(allocated_from(&lab, "team-a", "web-2").await, "team-a");
    wait_addresses(&lab, "team-a", "web-3", &["192.0.2.224"]).await;
    assert_eq!(
        allocated_from(&lab, "team-a", "web-3").await,
        "teams-overflow"
    );

    // Elsewhere, nothing from these pools.
    lab.kubectl_input(&["apply", "-n", &other, "-f", "-"], Some(&svc("web")))
        .await
        .unwrap();
    wait_condition(&lab, &other, "web", "False", "NoMatchingPool").await;
    assert!(addresses(&lab, &other, "web").await.is_empty());

    // The advertisement selects the pools by label: the overflow address is answered too.
    l2_owner(&lab, ip("192.0.2.224")).await;

    reset(&lab).await;
}

#[tokio::test]
async fn local_traffic_policy() {
    let lab = Lab::exclusive().await;
    reset(&lab).await;
    let ns = lab.namespace("ex-local").await.unwrap();
    let (n1, n3) = (NodeId(1), NodeId(3));
    for (pod, node) in [("local-1", n1), ("local-3", n3)] {
        lab.create_ready_pod(&ns, pod, &node.name(), &[("app", "hello-local")])
            .await
            .unwrap();
    }
    apply(&lab, "local-traffic-policy.yaml", &ns).await;
    wait_addresses(&lab, &ns, "hello-local", &["198.51.100.64"]).await;
    let dst = net("198.51.100.64/32");

    // Only the nodes with a ready endpoint announce: the router never sends to node2.
    wait_route_via(&lab, dst, &[n1, n3]).await;
    wait_names(
        &lab,
        "servicebgpstatuses",
        &ns,
        &[
            format!("hello-local.{}", n1.name()),
            format!("hello-local.{}", n3.name()),
        ],
    )
    .await;
    let mut answered = BTreeSet::new();
    for _ in 0..20 {
        answered.insert(
            lab.http_get(CLIENT_NS, ip("198.51.100.64"), 80)
                .await
                .unwrap(),
        );
    }
    assert!(
        answered.is_subset(&BTreeSet::from([n1.name(), n3.name()])),
        "{answered:?}"
    );

    // node3's endpoint goes: node3 withdraws.
    lab.kubectl(&["delete", "pod", "local-3", "-n", &ns, "--wait"])
        .await
        .unwrap();
    wait_route_via(&lab, dst, &[n1]).await;
    // No endpoint anywhere: nobody announces, and the Service keeps its address.
    lab.kubectl(&["delete", "pod", "local-1", "-n", &ns, "--wait"])
        .await
        .unwrap();
    wait_route_via(&lab, dst, &[]).await;
    assert_eq!(
        addresses(&lab, &ns, "hello-local").await,
        vec![ip("198.51.100.64")]
    );

    reset(&lab).await;
}
