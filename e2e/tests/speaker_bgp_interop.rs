//! The speaker's BGP sessions with other implementations as the node-local peer (issue 7,
//! interop): this lab runs BIRD on node1, FRR's bgpd on node2 and GoBGP on node3, each in
//! the role of examples/lab/bird/node.conf (e2e/src/nodepeer.rs), so every test here covers
//! all three at once: the router's one ECMP route needs every node's daemon to take the
//! speaker's routes and pass them on.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod speaker_bgp_support;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_e2e::nodepeer::{NodeDaemon, NodeDaemons};
use ferrolb_e2e::{Lab, LabConfig, NodeId, RouterKind, Target, poll};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use speaker_bgp_support::*;

const MIXED: LabConfig = LabConfig {
    nodes: 3,
    router: RouterKind::Bird,
    node_daemons: NodeDaemons::BIRD
        .with(NodeId(2), NodeDaemon::Frr)
        .with(NodeId(3), NodeDaemon::Gobgp),
};

fn all_nodes() -> Vec<NodeId> {
    vec![NodeId(1), NodeId(2), NodeId(3)]
}

/// The nodes whose daemon is not BIRD.
const OTHERS: [NodeId; 2] = [NodeId(2), NodeId(3)];

#[tokio::test]
async fn every_daemon_takes_the_routes_with_their_attributes_and_passes_them_on() {
    let lab = Lab::shared_with(MIXED).await;
    let a4 = ip("198.51.100.110");
    let a6 = ip("2001:db8:198::110");
    let _pool = bgp_pool(
        &lab,
        "interop-announce",
        &["198.51.100.110", "2001:db8:198::110"],
        json!({"communities": ["64512:110", "large:64512:1:2"]}),
    )
    .await;
    let ns = lab.namespace("interop-announce").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "interop-announce", &[a4, a6], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[a4, a6]).await;
    wait_route_via(&lab, host(a4), &all_nodes()).await;
    wait_route_via(&lab, host(a6), &all_nodes()).await;

    for n in all_nodes() {
        let daemon = lab.config.node_daemons.get(n);
        let held = poll(&format!("both routes at {n}'s {daemon}"), WAIT, || async {
            let held = node_speaker_routes(&lab, n).await;
            if held.contains_key(&host(a4)) && held.contains_key(&host(a6)) {
                Ok(held)
            } else {
                Err(format!("{held:?}"))
            }
        })
        .await
        .unwrap();
        for (addr, hop) in [(a4, IpAddr::from(n.addr4())), (a6, n.addr6().into())] {
            let r = &held[&host(addr)];
            assert!(
                r.next_hop.split_whitespace().any(|h| h == hop.to_string()),
                "{n} ({daemon}) {addr}: next hop {hop}: {r:?}"
            );
            assert_eq!(
                r.communities,
                BTreeSet::from(["64512:110".to_string()]),
                "{n} ({daemon}) {addr}: {r:?}"
            );
            assert_eq!(
                r.large_communities,
                BTreeSet::from(["64512:1:2".to_string()]),
                "{n} ({daemon}) {addr}: {r:?}"
            );
        }
    }

    let seen = answering_nodes(&lab, a4, 40).await;
    assert!(seen.len() >= 2, "{seen:?}");
    let body = lab
        .http_get(ferrolb_e2e::topology::CLIENT_NS, a6, 80)
        .await
        .unwrap();
    assert!(body.starts_with("node"), "{body}");

    // Deleted: gone from every daemon and from the router.
    let api: Api<Service> = Api::namespaced(lab.client().await, &ns);
    api.delete("web", &DeleteParams::default()).await.unwrap();
    wait_route_via(&lab, host(a4), &[]).await;
    wait_route_via(&lab, host(a6), &[]).await;
    for n in all_nodes() {
        let held = poll(&format!("nothing left at {n}"), WAIT, || async {
            let held = node_speaker_routes(&lab, n).await;
            if held.contains_key(&host(a4)) || held.contains_key(&host(a6)) {
                Err(format!("{held:?}"))
            } else {
                Ok(held)
            }
        })
        .await;
        held.unwrap();
    }
}

#[tokio::test]
async fn local_policy_moves_between_frr_and_gobgp_nodes() {
    let lab = Lab::shared_with(MIXED).await;
    let addr = ip("198.51.100.120");
    let _pool = bgp_pool(&lab, "interop-local", &["198.51.100.120"], json!({})).await;
    let ns = lab.namespace("interop-local").await.unwrap();
    lab.create_ready_pod(&ns, "web-2", "node2", &[("app", "web")])
        .await
        .unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "interop-local", &[addr], Policy::Local),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    wait_route_via(&lab, host(addr), &[NodeId(2)]).await;

    let pods: Api<Pod> = Api::namespaced(lab.client().await, &ns);
    lab.create_ready_pod(&ns, "web-3", "node3", &[("app", "web")])
        .await
        .unwrap();
    wait_route_via(&lab, host(addr), &[NodeId(2), NodeId(3)]).await;
    let not_ready = |pod: &'static str| {
        let pods = pods.clone();
        async move {
            pods.patch(
                pod,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"lab.ferrolb.io/ready": "false"}}}),
                ),
            )
            .await
            .unwrap();
        }
    };
    not_ready("web-2").await;
    wait_route_via(&lab, host(addr), &[NodeId(3)]).await;
    not_ready("web-3").await;
    wait_route_via(&lab, host(addr), &[]).await;
}

/// Graceful restart against FRR and GoBGP: restart the speakers of node2 and node3 while
/// watching the router's route every 20 ms.
#[tokio::test]
async fn speaker_restarts_keep_the_route_at_frr_and_gobgp_with_graceful_restart() {
    let lab = Lab::exclusive_with(MIXED).await;
    let addr = ip("198.51.100.130");
    let _pool = bgp_pool(&lab, "interop-gr", &["198.51.100.130"], json!({})).await;
    let ns = lab.namespace("interop-gr").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "interop-gr", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    for n in OTHERS {
        poll(
            &format!("{n}'s daemon sees the speaker announce graceful restart"),
            WAIT,
            || async {
                match node_speaker_graceful_restart(&lab, n).await {
                    Some(true) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
        .unwrap();
    }
    wait_route_via(&lab, host(addr), &all_nodes()).await;

    let watcher = RouteWatcher::start(&lab, host(addr), all_nodes());
    for n in OTHERS {
        lab.restart(Target::Speaker(n)).await.unwrap();
        wait_speaker_up(&lab, n).await;
    }
    ferrolb_e2e::holds(
        "the route via every node after the restarts",
        std::time::Duration::from_secs(3),
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
    let log = watcher.finish();
    assert!(log.samples > 20, "{log:?}");
    assert!(
        log.misses.is_empty(),
        "the route left a node during a graceful restart: {log:?}"
    );
}

#[tokio::test]
async fn speaker_restarts_withdraw_at_frr_and_gobgp_without_graceful_restart() {
    let lab = Lab::exclusive_with(MIXED).await;
    let addr = ip("198.51.100.131");
    let _pool = bgp_pool(&lab, "interop-nogr", &["198.51.100.131"], json!({})).await;
    let _restore = RestorePeer(lab.paths.clone());
    apply(&lab, vec![node_bird_peer(false)]).await;
    let ns = lab.namespace("interop-nogr").await.unwrap();
    lab.create_service(
        &ns,
        &bgp_service("web", "interop-nogr", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[addr]).await;
    for n in OTHERS {
        poll(
            &format!("{n}'s session without graceful restart"),
            WAIT,
            || async {
                match node_speaker_graceful_restart(&lab, n).await {
                    Some(false) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
        .unwrap();
    }
    wait_route_via(&lab, host(addr), &all_nodes()).await;

    for n in OTHERS {
        let watcher = RouteWatcher::start(&lab, host(addr), all_nodes());
        lab.restart(Target::Speaker(n)).await.unwrap();
        wait_speaker_up(&lab, n).await;
        wait_route_via(&lab, host(addr), &all_nodes()).await;
        let log = watcher.finish();
        let without: Vec<NodeId> = all_nodes().into_iter().filter(|x| *x != n).collect();
        assert!(
            log.misses.iter().any(|(_, via)| *via == without),
            "{n}: the route never left it (withdrawn, then back): {log:?}"
        );
    }
}

/// Waits until a restarted speaker's session with its node's daemon is up again and it has
/// sent its routes (its own metrics say so).
async fn wait_speaker_up(lab: &Lab, node: NodeId) {
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
            if up == Some(1.0) && n.is_some_and(|n| n >= 1.0) {
                Ok(())
            } else {
                Err(format!("up {up:?}, announced {n:?}"))
            }
        },
    )
    .await
    .unwrap();
}

/// Puts the usual peer (graceful restart on) back, also when a test fails half-way.
struct RestorePeer(ferrolb_e2e::state::Paths);

impl Drop for RestorePeer {
    fn drop(&mut self) {
        let yaml = serde_json::to_string(&node_bird_peer(true)).unwrap();
        if let Ok(st) = ferrolb_e2e::state::State::load(&self.0) {
            let _ = ferrolb_e2e::cmd::run_with_input(
                ferrolb_e2e::controlplane::kubectl(&st.k8s_dir, &self.0).args(["apply", "-f", "-"]),
                &yaml,
            );
        }
    }
}
