//! The speaker's BGP mode in the lab (issue 7): real speakers announce Service addresses to
//! their node's BIRD (examples/lab/bird/node.conf), which passes them to flb-router; the
//! router installs one ECMP route with a next hop per announcing node.
//!
//! Every test makes its own pool and BGPAdvertisement (addresses of 198.51.100.0/24 and
//! 2001:db8:198::/64 that no other test of this binary uses) and its own namespace; the
//! BGPPeer `node-bird` is shared. Tests that kill or restart parts of the lab, or change the
//! peer, take the lab exclusively and put back what they changed.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod speaker_bgp_support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_e2e::{Lab, NodeId, Target, poll};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use speaker_bgp_support::*;

fn all_nodes() -> Vec<NodeId> {
    vec![NodeId(1), NodeId(2), NodeId(3)]
}

#[tokio::test]
async fn cluster_policy_route_has_one_next_hop_per_node_and_traffic_reaches_several() {
    let lab = Lab::shared().await;
    let addr = ip("198.51.100.10");
    let _pool = bgp_pool(&lab, "bgp-cluster", &["198.51.100.10"], json!({})).await;
    let ns = lab.namespace("bgp-cluster").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "bgp-cluster", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;

    // Every node is eligible under Cluster policy, endpoints or not.
    wait_route_via(&lab, host(addr), &all_nodes()).await;
    let route = lab.router_route(host(addr)).await.unwrap().unwrap();
    assert_eq!(route.next_hops.len(), 3, "one next hop per node: {route:?}");
    assert_eq!(route.protocol, "bird", "{route:?}");

    let seen = answering_nodes(&lab, addr, 40).await;
    assert!(
        seen.len() >= 2,
        "40 connections through a three-path route reach several nodes: {seen:?}"
    );
    for node in seen.keys() {
        assert!(
            ["node1", "node2", "node3"].contains(&node.as_str()),
            "{seen:?}"
        );
    }
}

/// Sets a Pod's readiness through the lab agent's annotation.
async fn set_ready(lab: &Lab, ns: &str, pod: &str, ready: bool) {
    let api: Api<Pod> = Api::namespaced(lab.client().await, ns);
    api.patch(
        pod,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"lab.ferrolb.io/ready": ready.to_string()}}}),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn local_policy_next_hops_are_the_nodes_with_ready_endpoints() {
    let lab = Lab::shared().await;
    let addr = ip("198.51.100.20");
    let _pool = bgp_pool(&lab, "bgp-local", &["198.51.100.20"], json!({})).await;
    let ns = lab.namespace("bgp-local").await.unwrap();
    lab.create_ready_pod(&ns, "web-1", "node1", &[("app", "web")])
        .await
        .unwrap();
    lab.create_ready_pod(&ns, "web-2", "node2", &[("app", "web")])
        .await
        .unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "bgp-local", &[addr], Policy::Local),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    wait_route_via(&lab, host(addr), &[NodeId(1), NodeId(2)]).await;
    let seen = answering_nodes(&lab, addr, 30).await;
    let nodes: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    assert!(
        nodes.is_subset(&BTreeSet::from(["node1", "node2"])),
        "only nodes with an endpoint get traffic: {seen:?}"
    );

    // The endpoint moves from node1 to node3: so does the next hop.
    lab.create_ready_pod(&ns, "web-3", "node3", &[("app", "web")])
        .await
        .unwrap();
    wait_route_via(&lab, host(addr), &all_nodes()).await;
    set_ready(&lab, &ns, "web-1", false).await;
    wait_route_via(&lab, host(addr), &[NodeId(2), NodeId(3)]).await;

    // No ready endpoint anywhere: no route.
    set_ready(&lab, &ns, "web-2", false).await;
    set_ready(&lab, &ns, "web-3", false).await;
    wait_route_via(&lab, host(addr), &[]).await;

    // One comes back.
    set_ready(&lab, &ns, "web-2", true).await;
    wait_route_via(&lab, host(addr), &[NodeId(2)]).await;
}

#[tokio::test]
async fn deleted_service_leaves_no_route_and_no_status() {
    let lab = Lab::shared().await;
    let a4 = ip("198.51.100.40");
    let a6 = ip("2001:db8:198::40");
    let _pool = bgp_pool(
        &lab,
        "bgp-delete",
        &["198.51.100.40", "2001:db8:198::40"],
        json!({}),
    )
    .await;
    let ns = lab.namespace("bgp-delete").await.unwrap();
    for round in 0..3 {
        lab.create_service(
            &ns,
            &bgp_service("web", "bgp-delete", &[a4, a6], Policy::Cluster),
        )
        .await
        .unwrap();
        wait_addresses(&lab, &ns, "web", &[a4, a6]).await;
        wait_route_via(&lab, host(a4), &all_nodes()).await;
        wait_route_via(&lab, host(a6), &all_nodes()).await;
        poll(
            &format!("round {round}: a ServiceBGPStatus per node"),
            WAIT,
            || async {
                let s = bgp_statuses(&lab, &ns, "web").await;
                if s.len() == 3 {
                    Ok(())
                } else {
                    Err(format!("{s:?}"))
                }
            },
        )
        .await
        .unwrap();

        let api: Api<Service> = Api::namespaced(lab.client().await, &ns);
        api.delete("web", &DeleteParams::default()).await.unwrap();
        wait_route_via(&lab, host(a4), &[]).await;
        wait_route_via(&lab, host(a6), &[]).await;
        poll(
            &format!("round {round}: no ServiceBGPStatus left"),
            WAIT,
            || async {
                let s = bgp_statuses(&lab, &ns, "web").await;
                if s.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{s:?}"))
                }
            },
        )
        .await
        .unwrap();
        // Nothing stale anywhere on the way: no node's BIRD still holds the route.
        for n in all_nodes() {
            let held = node_bird_routes(&lab, n, "ferrolb_speaker").await;
            assert!(
                !held.contains_key(&host(a4)) && !held.contains_key(&host(a6)),
                "{n} still holds a deleted Service's route: {held:?}"
            );
        }
    }
}

#[tokio::test]
async fn ipv6_host_route_over_mp_bgp_and_dual_stack_gets_both() {
    let lab = Lab::shared().await;
    let v6 = ip("2001:db8:198::60");
    let d4 = ip("198.51.100.61");
    let d6 = ip("2001:db8:198::61");
    let _pool = bgp_pool(
        &lab,
        "bgp-v6",
        &["2001:db8:198::60", "198.51.100.61", "2001:db8:198::61"],
        json!({}),
    )
    .await;
    let ns = lab.namespace("bgp-v6").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("single", "bgp-v6", &[v6], Policy::Cluster),
    )
    .await
    .unwrap();
    lab.create_service(
        &ns,
        &bgp_service("dual", "bgp-v6", &[d4, d6], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "single", &[v6]).await;
    wait_addresses(&lab, &ns, "dual", &[d4, d6]).await;

    for a in [v6, d4, d6] {
        wait_route_via(&lab, host(a), &all_nodes()).await;
    }
    // A /128 whose next hops are the nodes' global IPv6 addresses, reachable on the segment.
    let route = lab.router_route(host(v6)).await.unwrap().unwrap();
    assert_eq!(route.dst.prefix_len(), 128);
    for hop in &route.next_hops {
        let IpAddr::V6(h) = hop else {
            panic!("IPv4 next hop on an IPv6 route: {route:?}")
        };
        assert!(
            !h.is_unicast_link_local(),
            "a global next hop, not a link-local one: {route:?}"
        );
    }
    // At the node's BIRD the speaker named the node's own IPv6 address as next hop.
    for n in all_nodes() {
        let held = node_bird_routes(&lab, n, "ferrolb_speaker").await;
        let r = held
            .get(&host(v6))
            .unwrap_or_else(|| panic!("{n}'s BIRD lacks {v6}: {held:?}"));
        assert!(
            r.next_hop
                .split_whitespace()
                .any(|h| h == n.addr6().to_string()),
            "{n}: {r:?}"
        );
    }
    // Reachable in both families from the client, through the router.
    for a in [v6, d4, d6] {
        let body = poll(&format!("HTTP to {a}"), WAIT, || {
            lab.http_get(ferrolb_e2e::topology::CLIENT_NS, a, 80)
        })
        .await
        .unwrap();
        assert!(body.starts_with("node"), "{body}");
    }
}

#[tokio::test]
async fn communities_and_large_communities_are_seen_by_the_nodes_bird() {
    let lab = Lab::shared().await;
    let addr = ip("198.51.100.70");
    let _pool = bgp_pool(
        &lab,
        "bgp-communities",
        &["198.51.100.70"],
        json!({
            "communities": ["64512:100", "65535:65281", "large:64512:1:2"],
            "peers": [PEER],
        }),
    )
    .await;
    let ns = lab.namespace("bgp-communities").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "bgp-communities", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    for n in all_nodes() {
        let route = poll(&format!("{addr} at {n}'s BIRD"), WAIT, || async {
            node_bird_routes(&lab, n, "ferrolb_speaker")
                .await
                .remove(&host(addr))
                .ok_or("not there")
        })
        .await
        .unwrap();
        assert_eq!(
            route.communities,
            BTreeSet::from(["64512:100".to_string(), "65535:65281".to_string()]),
            "{n}: {route:?}"
        );
        assert_eq!(
            route.large_communities,
            BTreeSet::from(["64512:1:2".to_string()]),
            "{n}: {route:?}"
        );
        assert_eq!(route.next_hop, n.addr4().to_string(), "{n}: {route:?}");
        assert_eq!(
            route.as_path,
            ferrolb_e2e::topology::SPEAKER_ASN.to_string(),
            "{n}: {route:?}"
        );
    }
}

/// Local preference only travels on iBGP sessions, so this test gives node1's BIRD a second,
/// iBGP session for the speaker (AS 64600 on both sides, on port 1791) and a BGPPeer for it
/// that selects node1 only. (BIRD's `neighbor … port` only keeps the two sessions to
/// 127.0.0.1 apart: BIRD takes one lock per neighbor address and port.)
#[tokio::test]
async fn local_preference_is_seen_by_the_nodes_bird_over_ibgp() {
    let lab = Lab::shared().await;
    let node = NodeId(1);
    let addr = ip("198.51.100.71");
    node_bird_extra(
        &lab,
        node,
        r#"protocol bgp ferrolb_ibgp {
  local 127.0.0.1 port 1791 as NODE_ASN;
  neighbor 127.0.0.1 port 1791 as NODE_ASN;
  passive on;
  ipv4 { import filter ferrolb_speaker_import; export none; };
}
"#,
    )
    .await;
    apply(
        &lab,
        vec![json!({
            "apiVersion": "ferrolb.io/v1alpha1",
            "kind": "BGPPeer",
            "metadata": {"name": "node1-ibgp"},
            "spec": {
                "peerAddress": "127.0.0.1",
                "peerPort": 1791,
                "peerASN": ferrolb_e2e::topology::NODE_ASN,
                "myASN": ferrolb_e2e::topology::NODE_ASN,
                // iBGP refuses a peer with one's own router ID, and the node's BIRD uses the
                // node's address, the speaker's default.
                "routerID": "192.0.2.211",
                "connectTime": "1s",
                "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "node1"}}],
            }
        })],
    )
    .await;
    let _peer = ClusterObjects::new(&lab, vec!["bgppeer.ferrolb.io/node1-ibgp".into()]);
    let _pool = bgp_pool(
        &lab,
        "bgp-localpref",
        &["198.51.100.71"],
        json!({
            "peers": ["node1-ibgp"],
            "localPref": 250,
            "communities": ["64512:71"],
        }),
    )
    .await;
    let ns = lab.namespace("bgp-localpref").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "bgp-localpref", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    let route = poll(&format!("{addr} at node1's iBGP session"), WAIT, || async {
        node_bird_routes(&lab, node, "ferrolb_ibgp")
            .await
            .remove(&host(addr))
            .ok_or("not there")
    })
    .await
    .unwrap();
    assert_eq!(route.local_pref, Some(250), "{route:?}");
    assert_eq!(
        route.communities,
        BTreeSet::from(["64512:71".to_string()]),
        "{route:?}"
    );
    // Only to the peer the advertisement names: not over the eBGP session.
    let ebgp = node_bird_routes(&lab, node, "ferrolb_speaker").await;
    assert!(!ebgp.contains_key(&host(addr)), "{ebgp:?}");
    node_bird_extra(&lab, node, "").await;
}

#[tokio::test]
async fn bgp_status_and_metrics_report_each_node_and_peer() {
    let lab = Lab::shared().await;
    let addr = ip("198.51.100.80");
    let _pool = bgp_pool(
        &lab,
        "bgp-status",
        &["198.51.100.80"],
        json!({"peers": [PEER]}),
    )
    .await;
    let ns = lab.namespace("bgp-status").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "bgp-status", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    wait_route_via(&lab, host(addr), &all_nodes()).await;
    let statuses = poll("a ServiceBGPStatus per node", WAIT, || async {
        let s = bgp_statuses(&lab, &ns, "web").await;
        if s.len() == 3 {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await
    .unwrap();
    for n in all_nodes() {
        let s = &statuses[&n.name()];
        let st = s.status.as_ref().unwrap();
        assert_eq!(st.service_namespace, ns.name);
        assert_eq!(st.peers, vec![PEER.to_string()], "{s:?}");
        assert_eq!(
            s.metadata.name.as_deref(),
            Some(format!("web.{}", n.name()).as_str())
        );
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Service", "web")
        );
    }

    let label = format!("peer=\"{PEER_LABEL}\"");
    for n in all_nodes() {
        let text = speaker_metrics(&lab, n).await;
        assert_eq!(
            metric(&text, "ferrolb_bgp_session_up", &label),
            Some(1.0),
            "{n}: {:?}",
            series(&text, "ferrolb_bgp_session_up")
        );
        let announced = metric(&text, "ferrolb_bgp_announced_prefixes", &label).unwrap();
        let held = node_bird_routes(&lab, n, "ferrolb_speaker").await;
        assert!(
            announced >= 1.0 && held.contains_key(&host(addr)),
            "{n}: announced {announced}, BIRD holds {held:?}"
        );
        let sent = metric(&text, "ferrolb_bgp_updates_sent_total", &label).unwrap();
        assert!(sent >= 1.0, "{n}: {sent}");
    }
}

/// Brings a killed node back, and the usual peer, even when a test fails half-way.
struct Restore {
    paths: ferrolb_e2e::state::Paths,
    node: Option<NodeId>,
    peer: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(n) = self.node {
            let _ = ferrolb_e2e::lab::restore(&self.paths, Target::Node(n));
        }
        if self.peer {
            let yaml = serde_json::to_string(&node_bird_peer(true)).unwrap();
            let st = ferrolb_e2e::state::State::load(&self.paths).unwrap();
            let _ = ferrolb_e2e::cmd::run_with_input(
                ferrolb_e2e::controlplane::kubectl(&st.k8s_dir, &self.paths)
                    .args(["apply", "-f", "-"]),
                &yaml,
            );
        }
    }
}

#[tokio::test]
async fn killed_node_loses_its_next_hop_and_regains_it_when_back() {
    let lab = Lab::exclusive().await;
    let addr = ip("198.51.100.30");
    let _pool = bgp_pool(&lab, "bgp-kill", &["198.51.100.30"], json!({})).await;
    let ns = lab.namespace("bgp-kill").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "bgp-kill", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    wait_route_via(&lab, host(addr), &all_nodes()).await;

    let mut restore = Restore {
        paths: lab.paths.clone(),
        node: Some(NodeId(2)),
        peer: false,
    };
    let killed = Instant::now();
    lab.kill(Target::Node(NodeId(2))).await.unwrap();
    // The router learns of a dead node from its hold timer (9 s in the lab).
    wait_route_via(&lab, host(addr), &[NodeId(1), NodeId(3)]).await;
    eprintln!(
        "node2's next hop gone {:?} after the kill",
        killed.elapsed()
    );
    let seen = answering_nodes(&lab, addr, 20).await;
    assert!(!seen.contains_key("node2"), "{seen:?}");

    lab.restart(Target::Node(NodeId(2))).await.unwrap();
    restore.node = None;
    let back = Instant::now();
    wait_route_via(&lab, host(addr), &all_nodes()).await;
    eprintln!(
        "node2's next hop back {:?} after the restart",
        back.elapsed()
    );
}

/// Waits until a restarted speaker has its session with its BIRD again and has re-sent its
/// routes (the speaker's own metrics say so).
async fn wait_speaker_announcing(lab: &Lab, node: NodeId, at_least: f64) {
    let label = format!("peer=\"{PEER_LABEL}\"");
    poll(
        &format!("{node}'s new speaker Established and announcing"),
        WAIT,
        || async {
            let out = lab
                .exec(
                    &node.netns(),
                    &[
                        "curl",
                        "-sS",
                        "--max-time",
                        "1",
                        "http://127.0.0.1:9402/metrics",
                    ],
                )
                .await
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let up = metric(&text, "ferrolb_bgp_session_up", &label);
            let n = metric(&text, "ferrolb_bgp_announced_prefixes", &label);
            if up == Some(1.0) && n.is_some_and(|n| n >= at_least) {
                Ok(())
            } else {
                Err(format!("up {up:?}, announced {n:?}"))
            }
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn speaker_restart_with_graceful_restart_never_loses_the_route() {
    let lab = Lab::exclusive().await;
    let addr = ip("198.51.100.50");
    let _pool = bgp_pool(&lab, "bgp-gr", &["198.51.100.50"], json!({})).await;
    let ns = lab.namespace("bgp-gr").await.unwrap();
    lab.create_service(&ns, &bgp_service("web", "bgp-gr", &[addr], Policy::Cluster))
        .await
        .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    wait_route_via(&lab, host(addr), &all_nodes()).await;

    // (After a test that turned it off, the sessions take a moment to come back with it.)
    poll(
        "node2's BIRD sees the speaker announce graceful restart",
        WAIT,
        || async {
            match node_session_graceful_restart(&lab, NodeId(2), "ferrolb_speaker").await {
                Some(true) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap();
    wait_route_via(&lab, host(addr), &all_nodes()).await;
    let since = node_session_since(&lab, NodeId(2), "ferrolb_speaker").await;
    let watcher = RouteWatcher::start(&lab, host(addr), all_nodes());
    let restarted = Instant::now();
    lab.restart(Target::Speaker(NodeId(2))).await.unwrap();
    wait_speaker_announcing(&lab, NodeId(2), 1.0).await;
    let took = restarted.elapsed();
    // The session really went and came back (a new one, not the old one kept).
    let again = node_session_since(&lab, NodeId(2), "ferrolb_speaker").await;
    assert_ne!(since, again, "node2's BIRD saw no new session");
    // A little longer: the stale routes BIRD kept must give way to the re-sent ones, not
    // vanish at End-of-RIB.
    ferrolb_e2e::holds(
        "the route via every node after the restart",
        Duration::from_secs(3),
        || async {
            let got = router_next_hops(&lab, host(addr)).await?;
            if got == all_nodes() {
                Ok(())
            } else {
                Err(format!("via {got:?}"))
            }
        },
    )
    .await
    .unwrap();
    let RouteLog { samples, misses } = watcher.finish();
    eprintln!("speaker restart took {took:?}; {samples} samples of the router's route");
    assert!(samples > 20, "too few samples ({samples}) to tell");
    assert!(
        misses.is_empty(),
        "the route left node2 during a graceful restart: {misses:?}"
    );
}

#[tokio::test]
async fn speaker_restart_without_graceful_restart_withdraws_then_returns() {
    let lab = Lab::exclusive().await;
    let addr = ip("198.51.100.51");
    let _pool = bgp_pool(&lab, "bgp-nogr", &["198.51.100.51"], json!({})).await;
    let _restore = Restore {
        paths: lab.paths.clone(),
        node: None,
        peer: true,
    };
    apply(&lab, vec![node_bird_peer(false)]).await;
    let ns = lab.namespace("bgp-nogr").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "bgp-nogr", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    // The sessions restart for the changed peer: wait for node2's to be one without graceful
    // restart (its BIRD then drops the routes with the connection).
    poll("node2's session without graceful restart", WAIT, || async {
        match node_session_graceful_restart(&lab, NodeId(2), "ferrolb_speaker").await {
            Some(false) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    wait_route_via(&lab, host(addr), &all_nodes()).await;

    // The speaker is back within a fraction of a second, so the gap is short: watch closely.
    let watcher = RouteWatcher::start(&lab, host(addr), all_nodes());
    lab.restart(Target::Speaker(NodeId(2))).await.unwrap();
    wait_speaker_announcing(&lab, NodeId(2), 1.0).await;
    wait_route_via(&lab, host(addr), &all_nodes()).await;
    let log = watcher.finish();
    assert!(
        log.misses
            .iter()
            .any(|(_, via)| *via == vec![NodeId(1), NodeId(3)]),
        "the route never left node2 (withdrawn, then back): {log:?}"
    );
    assert!(
        log.misses
            .iter()
            .all(|(_, via)| via.contains(&NodeId(1)) && via.contains(&NodeId(3))),
        "only node2 may leave: {log:?}"
    );
}

/// A BGPPeer for node3 only, on 127.0.0.1:`port`.
fn node3_peer(name: &str, port: u16, peer_asn: u32, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({
        "peerAddress": "127.0.0.1",
        "peerPort": port,
        "peerASN": peer_asn,
        "myASN": ferrolb_e2e::topology::SPEAKER_ASN,
        "connectTime": "1s",
        "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "node3"}}],
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({
        "apiVersion": "ferrolb.io/v1alpha1",
        "kind": "BGPPeer",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Bad peers next to the good one, all on node3: three sessions to node3's BIRD that it
/// refuses (our peerASN wrong, our myASN wrong, a TCP MD5 password it does not share) and
/// three fake peers (garbage, a malformed UPDATE, silence). Each must give a log line, a
/// metric and an Event on its BGPPeer, and be retried with backoff; the speaker keeps running
/// and its session with node-bird, and the routes through it, are not disturbed.
#[tokio::test]
async fn bad_peers_are_reported_and_retried_and_disturb_nothing_else() {
    let lab = Lab::shared().await;
    let node = NodeId(3);
    let addr = ip("198.51.100.90");
    let _pool = bgp_pool(
        &lab,
        "bgp-badpeers",
        &["198.51.100.90"],
        json!({"peers": [PEER]}),
    )
    .await;
    let ns = lab.namespace("bgp-badpeers").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "bgp-badpeers", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    wait_route_via(&lab, host(addr), &all_nodes()).await;
    let since = node_session_since(&lab, node, "ferrolb_speaker").await;
    let speaker = ferrolb_e2e::state::State::load(&lab.paths).unwrap().procs
        [&ferrolb_e2e::state::Part::Speaker(node)]
        .id
        .unwrap();
    let watcher = RouteWatcher::start(&lab, host(addr), all_nodes());

    node_bird_extra(
        &lab,
        node,
        r#"protocol bgp bad_asn {
  local 127.0.0.1 port 1792 as NODE_ASN;
  neighbor 127.0.0.1 port 1792 as SPEAKER_ASN;
  passive on; multihop;
  ipv4 { import filter ferrolb_speaker_import; export none; };
}
protocol bgp refuses_our_asn {
  local 127.0.0.1 port 1793 as NODE_ASN;
  neighbor 127.0.0.1 port 1793 as 64701;
  passive on; multihop;
  ipv4 { import filter ferrolb_speaker_import; export none; };
}
protocol bgp md5_peer {
  local 127.0.0.1 port 1794 as NODE_ASN;
  neighbor 127.0.0.1 port 1794 as SPEAKER_ASN;
  passive on; multihop; password "the-right-password";
  ipv4 { import filter ferrolb_speaker_import; export none; };
}
"#,
    )
    .await;
    let fakes = [
        (1795, Misbehaviour::Garbage),
        (1796, Misbehaviour::MalformedUpdate),
        (1797, Misbehaviour::Silent),
    ]
    .map(|(port, how)| (port, FakePeer::start(&node.netns(), port, how)));
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bgp-password", "namespace": "ferrolb-system"},
        "stringData": {"password": "not-the-right-one"},
    });
    let nasn = ferrolb_e2e::topology::NODE_ASN;
    apply(
        &lab,
        vec![
            secret,
            node3_peer("bad-asn", 1792, 64999, json!({})),
            node3_peer("refuses-our-asn", 1793, nasn, json!({})),
            node3_peer(
                "wrong-password",
                1794,
                nasn,
                json!({"passwordSecret": {"name": "bgp-password", "namespace": "ferrolb-system"}}),
            ),
            node3_peer("garbage", 1795, nasn, json!({})),
            node3_peer("malformed-update", 1796, nasn, json!({})),
            node3_peer("silent", 1797, nasn, json!({"holdTime": "9s"})),
        ],
    )
    .await;
    let _objects = ClusterObjects::new(
        &lab,
        [
            "bad-asn",
            "refuses-our-asn",
            "wrong-password",
            "garbage",
            "malformed-update",
            "silent",
        ]
        .iter()
        .map(|p| format!("bgppeer.ferrolb.io/{p}"))
        .collect(),
    );

    // (BGPPeer, port, reset reason, what the log line and the Event say)
    let cases = [
        (
            "bad-asn",
            1792,
            "open_rejected",
            "peer AS 64600 is not the configured 64999",
        ),
        (
            "refuses-our-asn",
            1793,
            "notification_received",
            "peer sent NOTIFICATION",
        ),
        (
            "wrong-password",
            1794,
            "connect_failed",
            "tcp connect timed out",
        ),
        (
            "garbage",
            1795,
            "malformed_message",
            "malformed message from peer",
        ),
        (
            "malformed-update",
            1796,
            "malformed_message",
            "malformed message from peer",
        ),
        ("silent", 1797, "hold_timer_expired", "hold timer expired"),
    ];
    for (name, port, reason, says) in cases {
        let peer = format!("127.0.0.1:{port}");
        let label = format!("peer=\"{peer}\"");
        let text = poll(&format!("{name}: reset counted"), WAIT, || async {
            let text = speaker_metrics(&lab, node).await;
            let resets = metric(
                &text,
                "ferrolb_bgp_session_resets_total",
                &format!("{label},reason=\"{reason}\""),
            );
            if resets.is_some_and(|r| r >= 1.0) {
                Ok(text)
            } else {
                Err(format!(
                    "{:?}",
                    series(&text, "ferrolb_bgp_session_resets_total")
                ))
            }
        })
        .await
        .unwrap();
        // (The silent peer is Established for its hold time at every attempt.)
        if name != "silent" {
            assert_eq!(
                metric(&text, "ferrolb_bgp_session_up", &label),
                Some(0.0),
                "{name}"
            );
        }
        let lines = session_down_lines(&lab, node, &peer);
        assert!(
            lines.iter().any(|l| {
                [&l["error"], &l["cause"]]
                    .iter()
                    .any(|v| v.as_str().is_some_and(|e| e.contains(says)))
            }),
            "{name}: no log line saying {says:?}: {lines:?}"
        );
        let notes = poll(
            &format!("{name}: a BGPSessionFailed Event"),
            WAIT,
            || async {
                let notes = peer_events(&lab, name, "BGPSessionFailed").await;
                if notes.iter().any(|n| n.contains(says)) {
                    Ok(notes)
                } else {
                    Err(format!("{notes:?}"))
                }
            },
        )
        .await
        .unwrap();
        assert!(
            notes.iter().all(|n| n.starts_with("node node3: ")),
            "{notes:?}"
        );
        if name == "wrong-password" {
            assert!(
                notes.iter().any(|n| n.contains("TCP MD5 password")),
                "{notes:?}"
            );
        }
    }

    // Backoff: the fake peers see the speaker come back less and less often.
    poll("four attempts at each fake peer", WAIT, || async {
        let counts: Vec<usize> = fakes.iter().map(|(_, f)| f.accepted().len()).collect();
        if counts.iter().all(|c| *c >= 4) {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await
    .unwrap();
    for (port, fake) in &fakes {
        let times = fake.accepted();
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.windows(2).take(2).all(|g| g[1] > g[0]),
            "127.0.0.1:{port}: the waits between attempts grow: {gaps:?}"
        );
    }
    let resets = |text: &str, port: u16| -> f64 {
        series(text, "ferrolb_bgp_session_resets_total")
            .iter()
            .filter(|l| l.contains(&format!("peer=\"127.0.0.1:{port}\"")))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let text = speaker_metrics(&lab, node).await;
    for port in [1792, 1793, 1794] {
        // About 20 s in with waits of 1, 2, 4, 8 s: a handful of attempts, not dozens.
        assert!(
            resets(&text, port) <= 8.0,
            "127.0.0.1:{port}: {}",
            resets(&text, port)
        );
    }

    // Nothing else noticed: the speaker is the same process, its session with node-bird is
    // the same session, and the route via node3 never wavered.
    assert!(ferrolb_e2e::procs::alive(speaker), "node3's speaker died");
    assert_eq!(
        node_session_since(&lab, node, "ferrolb_speaker").await,
        since
    );
    assert_eq!(
        metric(
            &text,
            "ferrolb_bgp_session_up",
            &format!("peer=\"{PEER_LABEL}\"")
        ),
        Some(1.0)
    );
    let log = watcher.finish();
    assert!(log.misses.is_empty(), "{log:?}");
    node_bird_extra(&lab, node, "").await;
}
