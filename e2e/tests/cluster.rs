//! The lab with a BIRD router: Kubernetes side (nodes, EndpointSlices, node death) and the
//! routed network (sessions, ECMP, the nodes' kube-proxy view).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::{Duration, Instant};

use common::{ip, net, service_with_addresses, wait_on_every_node, wait_route_via};
use ferrolb_e2e::topology::{CLIENT_NS, L2CLIENT_NS};
use ferrolb_e2e::{Lab, NodeId, Target, lb_service, poll};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;

#[tokio::test]
async fn kubectl_lists_every_node_ready() {
    let lab = Lab::shared().await;
    let out = lab
        .kubectl(&["get", "nodes", "--no-headers"])
        .await
        .unwrap();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    for (row, n) in rows.iter().zip(lab.nodes()) {
        assert_eq!(row[0], n.name(), "{out}");
        assert_eq!(row[1], "Ready", "{out}");
    }
}

/// (node, ready) of the endpoint for `pod` in the Service's EndpointSlices (IPv4 ones).
async fn endpoint_of(
    slices: &Api<EndpointSlice>,
    service: &str,
    pod: &str,
) -> Option<(String, bool)> {
    let list = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .ok()?;
    list.items
        .iter()
        .filter(|s| s.address_type == "IPv4")
        .flat_map(|s| &s.endpoints)
        .find(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(pod))
        .map(|e| {
            (
                e.node_name.clone().unwrap_or_default(),
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            )
        })
}

fn node_ready(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// Brings a killed node back even when the test fails half-way.
struct Revive(ferrolb_e2e::state::Paths);

impl Drop for Revive {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = ferrolb_e2e::lab::restore(&self.0, Target::Node(NodeId(2)));
        }
    }
}

#[tokio::test]
async fn ready_pod_on_node2_is_in_the_endpointslice_until_node2_dies() {
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("eps").await.unwrap();
    let client = lab.client().await;
    let mut svc = lb_service("web");
    svc.spec.as_mut().unwrap().load_balancer_class = Some(common::FOREIGN_CLASS.into());
    lab.create_service(&ns, &svc).await.unwrap();
    let pod = lab
        .create_ready_pod(&ns, "web-1", "node2", &[("app", "web")])
        .await
        .unwrap();
    assert!(pod.status.unwrap().pod_ip.is_some());

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let ep = poll(
        "web-1 in web's EndpointSlice",
        Duration::from_secs(20),
        || async {
            endpoint_of(&slices, "web", "web-1")
                .await
                .ok_or("not there yet")
        },
    )
    .await
    .unwrap();
    assert_eq!(ep, ("node2".to_string(), true));

    let _revive = Revive(lab.paths.clone());
    let killed = Instant::now();
    lab.kill(Target::Node(NodeId(2))).await.unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    poll("node2 NotReady", Duration::from_secs(10), || async {
        let n = nodes.get("node2").await.map_err(|e| e.to_string())?;
        match node_ready(&n).as_deref() {
            Some("True") => Err("still Ready".to_string()),
            other => Ok(other.map(str::to_string)),
        }
    })
    .await
    .unwrap();
    let not_ready_after = killed.elapsed();
    assert!(
        not_ready_after <= Duration::from_secs(10),
        "NotReady after {not_ready_after:?}"
    );
    let ep = poll("web-1 not ready", Duration::from_secs(10), || async {
        match endpoint_of(&slices, "web", "web-1").await {
            Some((node, false)) => Ok(node),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    assert_eq!(ep, "node2");
    eprintln!("node2 NotReady {not_ready_after:?} after lab kill node");

    lab.restart(Target::Node(NodeId(2))).await.unwrap();
    poll("node2 Ready again", Duration::from_secs(30), || async {
        let n = nodes.get("node2").await.map_err(|e| e.to_string())?;
        if node_ready(&n).as_deref() == Some("True") {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await
    .unwrap();
    poll("web-1 ready again", Duration::from_secs(30), || async {
        match endpoint_of(&slices, "web", "web-1").await {
            Some((_, true)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    lab.wait_sessions(&[NodeId(2)], Duration::from_secs(60))
        .await
        .unwrap();
}

#[tokio::test]
async fn router_has_an_established_session_to_every_node() {
    let lab = Lab::shared().await;
    common::assert_sessions_established(&lab).await;
}

#[tokio::test]
async fn route_injected_on_two_nodes_is_one_route_with_two_next_hops() {
    let lab = Lab::exclusive().await;
    common::assert_injected_route_is_ecmp(&lab).await;
}

#[tokio::test]
async fn client_reaches_each_nodes_responder_through_the_router() {
    let lab = Lab::exclusive().await;
    common::assert_client_reaches_each_node(&lab).await;
}

#[tokio::test]
async fn local_policy_is_answered_only_where_an_endpoint_is_ready() {
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("local").await.unwrap();
    let addr = "198.51.100.239";
    lab.create_ready_pod(&ns, "local-1", "node1", &[("app", "local")])
        .await
        .unwrap();
    service_with_addresses(&lab, &ns, "local", &[addr], true).await;
    wait_on_every_node(&lab, addr).await;
    let dst = net(&format!("{addr}/32"));

    lab.inject_routes(NodeId(1), &[dst]).await.unwrap();
    wait_route_via(&lab, dst, &[NodeId(1)]).await;
    let body = poll(
        "node1 answering (its endpoint is ready)",
        Duration::from_secs(20),
        || lab.http_get(CLIENT_NS, ip(addr), 80),
    )
    .await
    .unwrap();
    assert_eq!(body, "node1");

    lab.inject_routes(NodeId(1), &[]).await.unwrap();
    lab.inject_routes(NodeId(2), &[dst]).await.unwrap();
    wait_route_via(&lab, dst, &[NodeId(2)]).await;
    let refused = lab.http_get(CLIENT_NS, ip(addr), 80).await;
    assert!(
        refused.is_err(),
        "node2 has no endpoint and must drop, got {refused:?}"
    );
    lab.inject_routes(NodeId(2), &[]).await.unwrap();
    wait_route_via(&lab, dst, &[]).await;
}

#[tokio::test]
async fn nodes_never_answer_arp_for_service_addresses_themselves() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("arp").await.unwrap();
    // On the node segment, like an L2 address, but of a class ferrolb does not serve: only a
    // speaker may answer for it, and none does.
    let addr = "192.0.2.241";
    service_with_addresses(&lab, &ns, "arp", &[addr], false).await;
    wait_on_every_node(&lab, addr).await;
    let arping = |target: &'static str| {
        let lab = &lab;
        async move {
            lab.exec(
                L2CLIENT_NS,
                &["arping", "-c", "2", "-w", "2", "-I", "eth0", target],
            )
            .await
            .unwrap()
        }
    };
    let node = arping("192.0.2.11").await;
    assert!(
        node.status.success(),
        "a node's own address is answered: {node:?}"
    );
    let service = arping(addr).await;
    assert!(
        !service.status.success(),
        "nobody may answer ARP for {addr} (arp_ignore=1 on the nodes): {}",
        String::from_utf8_lossy(&service.stdout)
    );
}

/// gobgpd in a node namespace, standing in for ferrolb's speaker; killed when dropped.
struct StandInSpeaker(std::process::Child);

impl Drop for StandInSpeaker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn node_bird_template_takes_a_speakers_routes_and_passes_on_only_service_routes() {
    let lab = Lab::exclusive().await;
    let node = NodeId(3);
    let dir = std::env::temp_dir().join(format!("ferrolb-standin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gobgpd.toml");
    // What a BGPPeer of examples/lab/ferrolb.yaml asks of the speaker: AS 64700 to the
    // node's BIRD (AS 64600) at 127.0.0.1, dialling out only.
    std::fs::write(
        &config,
        format!(
            r#"[global.config]
  as = 64700
  router-id = "{id}"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.1"
    peer-as = 64600
  [neighbors.transport.config]
    local-address = "127.0.0.1"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#,
            id = node.addr4()
        ),
    )
    .unwrap();
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", &node.netns(), "gobgpd", "-f"])
        .arg(&config)
        .args(["--api-hosts", "127.0.0.1:50051", "--log-level", "warn"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gobgpd (Debian package gobgpd) runs");
    let _speaker = StandInSpeaker(child);
    poll(
        "the speaker session at node3's BIRD",
        Duration::from_secs(30),
        || async {
            let sessions =
                ferrolb_e2e::routing::node_sessions(&lab.paths, node).map_err(|e| e.to_string())?;
            match sessions.iter().find(|(name, _)| name == "ferrolb_speaker") {
                Some((_, state)) if state == "Established" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap();

    let gobgp = |args: Vec<String>| {
        let lab = &lab;
        async move {
            let mut argv = vec!["gobgp".to_string()];
            argv.extend(args);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = lab.exec(&node.netns(), &argv).await.unwrap();
            assert!(
                out.status.success(),
                "{argv:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let a4 = node.addr4().to_string();
    let a6 = node.addr6().to_string();
    for (family, prefix, hop) in [
        ("ipv4", "198.51.100.230/32", a4.as_str()),
        ("ipv6", "2001:db8:198::230/128", a6.as_str()),
        // Outside the service ranges: BIRD must keep it from the router.
        ("ipv4", "203.0.113.99/32", a4.as_str()),
    ] {
        gobgp(
            ["global", "rib", "-a", family, "add", prefix, "nexthop", hop]
                .map(String::from)
                .to_vec(),
        )
        .await;
    }
    wait_route_via(&lab, net("198.51.100.230/32"), &[node]).await;
    wait_route_via(&lab, net("2001:db8:198::230/128"), &[node]).await;
    let stray = lab.router_route(net("203.0.113.99/32")).await.unwrap();
    assert!(
        stray.is_none(),
        "a non-service route reached the router: {stray:?}"
    );

    // At the node the speaker's route is a destination on the node, not an unreachable one.
    let shown = ferrolb_e2e::routing::birdc(
        &lab.paths,
        Some(node),
        &["show", "route", "for", "198.51.100.230"],
    )
    .unwrap();
    assert!(
        shown.contains("dev lo") && !shown.contains("unreachable"),
        "{shown}"
    );

    drop(_speaker);
    wait_route_via(&lab, net("198.51.100.230/32"), &[]).await;
    std::fs::remove_dir_all(dir).ok();
}
