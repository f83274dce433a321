//! Checks of the lab's routed network, shared by the BIRD-router and FRR-router test binaries.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of this; tests may unwrap

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_e2e::{Family, Lab, NodeId, poll};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

/// A class no ferrolb controller serves: the lab's kube-proxy view still places the addresses
/// (as kube-proxy does for any LoadBalancer Service), and nothing else touches the Service.
pub const FOREIGN_CLASS: &str = "lab.invalid/not-ferrolb";

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub async fn assert_sessions_established(lab: &Lab) {
    let nodes = lab.nodes();
    let sessions = poll(
        "every router session Established",
        Duration::from_secs(60),
        || async {
            let s = lab.router_sessions().await.map_err(|e| e.to_string())?;
            let all = nodes.iter().all(|n| {
                [Family::V4, Family::V6].iter().all(|f| {
                    s.iter()
                        .any(|x| x.node == *n && x.family == *f && x.established())
                })
            });
            if all { Ok(s) } else { Err(format!("{s:?}")) }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        sessions.len(),
        nodes.len() * 2,
        "one session per node and family: {sessions:?}"
    );
}

/// Waits until the router's route to `dst` goes exactly via `nodes` (none: no route).
pub async fn wait_route_via(lab: &Lab, dst: IpNet, nodes: &[NodeId]) {
    let want: Vec<NodeId> = nodes.to_vec();
    poll(
        &format!("{dst} via {want:?} at the router"),
        Duration::from_secs(20),
        || async {
            let route = lab.router_route(dst).await.map_err(|e| e.to_string())?;
            let got = route
                .as_ref()
                .map(|r| lab.next_hop_nodes(r))
                .unwrap_or_default();
            if got == want {
                Ok(())
            } else {
                Err(format!("{route:?}"))
            }
        },
    )
    .await
    .unwrap();
}

/// Static routes on two nodes' BIRD become one router route with both nodes as next hops,
/// in both families, and go away with the routes.
pub async fn assert_injected_route_is_ecmp(lab: &Lab) {
    let (n1, n2) = (NodeId(1), NodeId(2));
    let routes = [net("198.51.100.250/32"), net("2001:db8:198::250/128")];
    for n in [n1, n2] {
        lab.inject_routes(n, &routes).await.unwrap();
    }
    for dst in routes {
        wait_route_via(lab, dst, &[n1, n2]).await;
        let route = lab.router_route(dst).await.unwrap().unwrap();
        assert_eq!(
            route.next_hops.len(),
            2,
            "one route, two next hops: {route:?}"
        );
    }
    lab.inject_routes(n1, &[]).await.unwrap();
    for dst in routes {
        wait_route_via(lab, dst, &[n2]).await;
    }
    lab.inject_routes(n2, &[]).await.unwrap();
    for dst in routes {
        wait_route_via(lab, dst, &[]).await;
    }
}

/// A LoadBalancer Service of a foreign class whose status the test writes itself (the lab's
/// stand-in for what the controller will do).
pub async fn service_with_addresses(
    lab: &Lab,
    ns: &str,
    name: &str,
    addrs: &[&str],
    local: bool,
) -> Service {
    let client = lab.client().await;
    let api: Api<Service> = Api::namespaced(client, ns);
    let mut svc = ferrolb_e2e::lb_service(name);
    let spec = svc.spec.as_mut().unwrap();
    spec.load_balancer_class = Some(FOREIGN_CLASS.into());
    if local {
        spec.external_traffic_policy = Some("Local".into());
    }
    api.create(&PostParams::default(), &svc).await.unwrap();
    let ingress: Vec<_> = addrs
        .iter()
        .map(|a| json!({"ip": a, "ipMode": "VIP"}))
        .collect();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": ingress}}})),
    )
    .await
    .unwrap()
}

/// Waits until every node has `addr` on kube-ipvs0 (the agent's kube-proxy view).
pub async fn wait_on_every_node(lab: &Lab, addr: &str) {
    for n in lab.nodes() {
        let netns = n.netns();
        poll(
            &format!("{addr} on {n}'s kube-ipvs0"),
            Duration::from_secs(20),
            || async {
                let out = lab
                    .exec(&netns, &["ip", "-o", "addr", "show", "dev", "kube-ipvs0"])
                    .await
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if text.contains(&format!(" {addr}/")) {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        )
        .await
        .unwrap();
    }
}

/// flb-client reaches every node's HTTP responder through the router (a route to one node
/// only, per node), and connections to a route over two nodes are spread over both.
pub async fn assert_client_reaches_each_node(lab: &Lab) {
    let ns = lab.namespace("reach").await.unwrap();
    let nodes = lab.nodes();
    let per_node: Vec<String> = nodes
        .iter()
        .map(|n| format!("198.51.100.{}", 240 + n.0))
        .collect();
    let shared = "198.51.100.240";
    let mut all: Vec<&str> = per_node.iter().map(String::as_str).collect();
    all.push(shared);
    service_with_addresses(lab, &ns, "reach", &all, false).await;
    for a in &all {
        wait_on_every_node(lab, a).await;
    }
    for (n, a) in nodes.iter().zip(&per_node) {
        let mut routes = vec![net(&format!("{a}/32"))];
        if n.0 <= 2 {
            routes.push(net(&format!("{shared}/32")));
        }
        lab.inject_routes(*n, &routes).await.unwrap();
    }
    for (n, a) in nodes.iter().zip(&per_node) {
        wait_route_via(lab, net(&format!("{a}/32")), &[*n]).await;
        let body = lab
            .http_get(ferrolb_e2e::topology::CLIENT_NS, ip(a), 80)
            .await
            .unwrap();
        assert_eq!(body, n.name(), "{a} is routed to {n} only");
    }
    wait_route_via(lab, net(&format!("{shared}/32")), &[NodeId(1), NodeId(2)]).await;
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        seen.insert(
            lab.http_get(ferrolb_e2e::topology::CLIENT_NS, ip(shared), 80)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        seen,
        BTreeSet::from(["node1".to_string(), "node2".to_string()]),
        "40 connections over a two-path route reach both nodes (the router hashes on ports)"
    );
    for n in &nodes {
        lab.inject_routes(*n, &[]).await.unwrap();
    }
}
