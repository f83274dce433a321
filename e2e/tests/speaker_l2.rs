//! The speaker in L2 mode, in the lab (issue 6's acceptance): a client on the node segment
//! resolves Service addresses the ordinary way (ARP, neighbour discovery) and reaches the
//! node the speakers elected.
//!
//! Each test has its own namespace, pool and L2Advertisement (addresses from the segment,
//! 192.0.2.150-249 and 2001:db8:2::/64, split between tests) and asks the controller for given
//! addresses. Tests that change Nodes or kill parts of the lab take it exclusively.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod speaker_support;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use ferrolb_e2e::topology::L2CLIENT_NS;
use ferrolb_e2e::{Lab, NodeId, Target, poll};
use ferrolb_speaker::l2::arp::ArpPacket;
use ferrolb_speaker::l2::ndp::{NdpMessage, NdpPacket, NeighborSolicitation};
use ferrolb_speaker::l2::{LinkTable, MacAddr};
use ferrolb_speaker::membership::Envelope;
use ferrolb_speaker::sys::packet::{PacketSocket, enter_network_namespace};
use k8s_openapi::api::core::v1::{Event, Node, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use speaker_support::*;

fn all_nodes() -> Vec<NodeId> {
    vec![NodeId(1), NodeId(2), NodeId(3)]
}

#[tokio::test]
async fn l2_dual_stack_service_resolves_to_the_elected_node_and_answers() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("l2-basic").await.unwrap();
    let _pool = l2_pool(
        &lab,
        "l2t-basic",
        &["192.0.2.200-192.0.2.201", "2001:db8:2::200-2001:db8:2::201"],
        json!({}),
    )
    .await;
    let (v4, v6) = (ip("192.0.2.200"), ip("2001:db8:2::200"));
    lab.create_service(
        &ns,
        &l2_service("web", "l2t-basic", &[v4, v6], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "web", &[v4, v6]).await;
    for addr in [v4, v6] {
        let owner = predicted_owner(addr, &all_nodes());
        forget_neighbour(&lab, addr).await;
        let (resolved, body) = resolve_and_get(&lab, addr).await;
        assert_eq!(resolved, owner, "{addr} resolves to the elected node");
        assert_eq!(body, owner.name(), "{addr}: the elected node answers HTTP");
    }
}

#[tokio::test]
async fn l2_exactly_one_node_answers_arp() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("l2-one").await.unwrap();
    let _pool = l2_pool(&lab, "l2t-one", &["192.0.2.202"], json!({})).await;
    let addr = ip("192.0.2.202");
    lab.create_service(&ns, &l2_service("one", "l2t-one", &[addr], Policy::Cluster))
        .await
        .unwrap();
    wait_addresses(&lab, &ns, "one", &[addr]).await;
    let owner = predicted_owner(addr, &all_nodes());
    wait_l2_status(&lab, &ns, "one", &[(owner, &["eth0"])]).await;
    let repliers = arp_repliers(&lab, addr, 20).await;
    let owner_mac = lab.node_mac(owner).await.unwrap();
    assert!(repliers.len() >= 19, "replies to 20 requests: {repliers:?}");
    assert!(
        repliers.iter().all(|m| *m == owner_mac),
        "every reply from {owner} ({owner_mac}): {repliers:?}"
    );
}

#[tokio::test]
async fn l2_thirty_services_over_three_nodes_none_owns_more_than_half() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("l2-thirty").await.unwrap();
    let _pool = l2_pool(&lab, "l2t-thirty", &["192.0.2.160-192.0.2.189"], json!({})).await;
    let addrs: Vec<IpAddr> = (160..190)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    for (i, a) in addrs.iter().enumerate() {
        lab.create_service(
            &ns,
            &l2_service(&format!("s{i}"), "l2t-thirty", &[*a], Policy::Cluster),
        )
        .await
        .unwrap();
    }
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for (i, a) in addrs.iter().enumerate() {
        let name = format!("s{i}");
        wait_addresses(&lab, &ns, &name, &[*a]).await;
        let owner = predicted_owner(*a, &all_nodes());
        wait_l2_status(&lab, &ns, &name, &[(owner, &["eth0"])]).await;
        *per_node.entry(owner.name()).or_default() += 1;
    }
    println!("owners of 30 addresses: {per_node:?}");
    assert_eq!(per_node.values().sum::<usize>(), 30);
    assert!(per_node.values().all(|&n| n <= 15), "{per_node:?}");
    // What the statuses say is what the segment sees, for a sample.
    for a in addrs.iter().step_by(7) {
        forget_neighbour(&lab, *a).await;
        let (node, _) = resolve_and_get(&lab, *a).await;
        assert_eq!(node, predicted_owner(*a, &all_nodes()), "{a}");
    }
}

#[tokio::test]
async fn l2_local_policy_owner_has_the_endpoint_and_follows_it() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("l2-local").await.unwrap();
    let _pool = l2_pool(
        &lab,
        "l2t-local",
        &["192.0.2.203", "2001:db8:2::203"],
        json!({}),
    )
    .await;
    let (v4, v6) = (ip("192.0.2.203"), ip("2001:db8:2::203"));
    lab.create_service(
        &ns,
        &l2_service("loc", "l2t-local", &[v4, v6], Policy::Local),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "loc", &[v4, v6]).await;
    // No endpoint anywhere: nobody announces.
    wait_l2_status(&lab, &ns, "loc", &[]).await;

    lab.create_ready_pod(&ns, "loc-a", "node2", &[("app", "loc")])
        .await
        .unwrap();
    wait_l2_status(&lab, &ns, "loc", &[(NodeId(2), &["eth0"])]).await;
    for addr in [v4, v6] {
        forget_neighbour(&lab, addr).await;
        let (node, body) = resolve_and_get(&lab, addr).await;
        assert_eq!((node, body.as_str()), (NodeId(2), "node2"), "{addr}");
    }

    // The endpoint moves to node3: so do the owner and the client's entries, by the
    // speaker's announcements alone (the client sends nothing meanwhile).
    lab.create_ready_pod(&ns, "loc-b", "node3", &[("app", "loc")])
        .await
        .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(lab.client().await, &ns);
    pods.delete("loc-a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_l2_status(&lab, &ns, "loc", &[(NodeId(3), &["eth0"])]).await;
    for addr in [v4, v6] {
        wait_neighbour(&lab, addr, NodeId(3)).await;
        let body = lab.http_get(L2CLIENT_NS, addr, 80).await.unwrap();
        assert_eq!(body, "node3", "{addr}");
    }
}

#[tokio::test]
async fn l2_status_matches_reality_and_goes_with_the_service() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("l2-status").await.unwrap();
    let _pool = l2_pool(&lab, "l2t-status", &["192.0.2.207"], json!({})).await;
    let addr = ip("192.0.2.207");
    lab.create_service(
        &ns,
        &l2_service("st", "l2t-status", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "st", &[addr]).await;
    let owner = predicted_owner(addr, &all_nodes());
    wait_l2_status(&lab, &ns, "st", &[(owner, &["eth0"])]).await;
    forget_neighbour(&lab, addr).await;
    assert_eq!(resolve_and_get(&lab, addr).await.0, owner);

    // The object is owned by the Service, and the Service has an Event naming the node.
    let statuses: Api<ferrolb_api::ServiceL2Status> = Api::namespaced(lab.client().await, &ns);
    let obj = statuses.get(&format!("st.{}", owner.name())).await.unwrap();
    let services: Api<Service> = Api::namespaced(lab.client().await, &ns);
    let uid = services.get("st").await.unwrap().metadata.uid.unwrap();
    let refs = obj.metadata.owner_references.unwrap();
    assert_eq!(
        (refs[0].kind.as_str(), refs[0].uid.as_str()),
        ("Service", uid.as_str())
    );
    wait_announcing_event(&lab, &ns, "st", owner).await;

    services
        .delete("st", &DeleteParams::default())
        .await
        .unwrap();
    wait_l2_status(&lab, &ns, "st", &[]).await;
}

#[tokio::test]
async fn l2_node_selectors_choose_the_announcer() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("l2-sel").await.unwrap();
    let addr = ip("192.0.2.210");
    // Only node1 and node3 may announce; the election is among them.
    let _pool = l2_pool(
        &lab,
        "l2t-sel",
        &["192.0.2.210"],
        json!({"nodeSelectors": [
            {"matchLabels": {"kubernetes.io/hostname": "node1"}},
            {"matchLabels": {"kubernetes.io/hostname": "node3"}}
        ]}),
    )
    .await;
    lab.create_service(&ns, &l2_service("sel", "l2t-sel", &[addr], Policy::Cluster))
        .await
        .unwrap();
    wait_addresses(&lab, &ns, "sel", &[addr]).await;
    let owner = predicted_owner(addr, &[NodeId(1), NodeId(3)]);
    wait_l2_status(&lab, &ns, "sel", &[(owner, &["eth0"])]).await;
    // Narrowed to the other one: it takes over.
    let other = if owner == NodeId(1) {
        NodeId(3)
    } else {
        NodeId(1)
    };
    set_advertisement(
        &lab,
        "l2t-sel",
        json!({"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": other.name()}}]}),
    )
    .await;
    wait_l2_status(&lab, &ns, "sel", &[(other, &["eth0"])]).await;
    wait_neighbour_after_traffic(&lab, addr, other).await;
}

#[tokio::test]
async fn l2_interfaces_choose_where_it_is_answered() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("l2-if").await.unwrap();
    let addr = ip("192.0.2.211");
    // An interface no node has: the owner is elected but answers nowhere.
    let _pool = l2_pool(
        &lab,
        "l2t-if",
        &["192.0.2.211"],
        json!({"interfaces": ["eth9"]}),
    )
    .await;
    lab.create_service(&ns, &l2_service("ifc", "l2t-if", &[addr], Policy::Cluster))
        .await
        .unwrap();
    wait_addresses(&lab, &ns, "ifc", &[addr]).await;
    let owner = predicted_owner(addr, &all_nodes());
    wait_l2_status(&lab, &ns, "ifc", &[(owner, &[])]).await;
    assert!(
        arp_repliers(&lab, addr, 3).await.is_empty(),
        "nobody answers on eth0"
    );
    // The segment interface named: answered there.
    set_advertisement(&lab, "l2t-if", json!({"interfaces": ["eth0"]})).await;
    wait_l2_status(&lab, &ns, "ifc", &[(owner, &["eth0"])]).await;
    forget_neighbour(&lab, addr).await;
    assert_eq!(resolve_and_get(&lab, addr).await.0, owner);
}

/// Waits for a NodeAnnouncing Event on Service `service` naming `node`.
async fn wait_announcing_event(lab: &Lab, ns: &str, service: &str, node: NodeId) {
    let events: Api<Event> = Api::namespaced(lab.client().await, ns);
    poll(
        &format!("a NodeAnnouncing event on {ns}/{service} naming {node}"),
        WAIT,
        || async {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .iter()
                .find(|e| {
                    e.involved_object.kind.as_deref() == Some("Service")
                        && e.involved_object.name.as_deref() == Some(service)
                        && e.reason.as_deref() == Some("NodeAnnouncing")
                        && e.message
                            .as_deref()
                            .is_some_and(|m| m.contains(&node.name()))
                })
                .map(|_| ())
                .ok_or_else(|| {
                    format!(
                        "{:?}",
                        list.items
                            .iter()
                            .map(|e| (&e.reason, &e.message))
                            .collect::<Vec<_>>()
                    )
                })
        },
    )
    .await
    .unwrap();
}

/// Waits until the client, sending to `addr` now and then, resolves it to `node`.
async fn wait_neighbour_after_traffic(lab: &Lab, addr: IpAddr, node: NodeId) {
    let want = lab.node_mac(node).await.unwrap();
    poll(&format!("{addr} resolved to {node}"), WAIT, || async {
        let _ = lab.http_get(L2CLIENT_NS, addr, 80).await;
        match neighbour_mac(lab, addr).await {
            Some(m) if m == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
}

/// Sends bad frames and datagrams from the L2 client's namespace.
fn send_bad_input(owned_v6: Ipv6Addr, node_addr: Ipv4Addr, node_mac: MacAddr) {
    std::thread::spawn(move || {
        let netns = File::open(format!("/run/netns/{L2CLIENT_NS}")).unwrap();
        enter_network_namespace(&netns).unwrap();
        let links = LinkTable::scan().unwrap();
        let eth0 = links.get(&"eth0".into()).unwrap();
        let mac = eth0.mac.unwrap();
        let socket = PacketSocket::open(eth0.index).unwrap();
        let request = ArpPacket {
            operation: ferrolb_speaker::l2::arp::ArpOperation::Request,
            sender_mac: mac,
            sender_ip: Ipv4Addr::new(192, 0, 2, 100),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(192, 0, 2, 199),
        }
        .to_frame(MacAddr::BROADCAST, mac);
        for _ in 0..5 {
            // Truncated ARP: the Ethernet header and half the ARP payload.
            socket.send(&request[..28]).unwrap();
            // Malformed ARP: hardware address length 9.
            let mut bad = request.clone();
            bad[18] = 9;
            socket.send(&bad).unwrap();
            // A well-formed request for an address nobody owns.
            socket.send(&request).unwrap();
            // Neighbour solicitations, unicast to the owner (as reachability probes are),
            // one with a wrong ICMPv6 checksum, one with hop limit 64. (Truncated IPv6 never
            // reaches the node: the segment's bridge, with br_netfilter, drops it itself.)
            let ns = NdpPacket {
                source: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100),
                destination: owned_v6,
                message: NdpMessage::Solicitation(NeighborSolicitation {
                    target: owned_v6,
                    source_link_layer: Some(mac),
                }),
            }
            .to_frame(node_mac, mac);
            let mut bad_sum = ns.clone();
            bad_sum[56] ^= 0xff;
            socket.send(&bad_sum).unwrap();
            let mut bad_hops = ns.clone();
            bad_hops[21] = 64;
            socket.send(&bad_hops).unwrap();
            // A well-formed solicitation for an address nobody owns.
            let unowned = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x1ff);
            let ns_unowned = NdpPacket {
                source: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100),
                destination: unowned,
                message: NdpMessage::Solicitation(NeighborSolicitation {
                    target: unowned,
                    source_link_layer: Some(mac),
                }),
            }
            .to_frame(node_mac, mac);
            socket.send(&ns_unowned).unwrap();
        }
        // Membership datagrams sealed with another key, and plain garbage.
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        let to = SocketAddr::from((node_addr, 7946));
        let forged = Envelope::new(b"not the cluster's key").seal(b"\x01 hello, I am node9");
        for _ in 0..5 {
            udp.send_to(&forged, to).unwrap();
            udp.send_to(b"garbage", to).unwrap();
        }
    })
    .join()
    .unwrap();
}

#[tokio::test]
async fn l2_bad_input_is_ignored_and_counted_and_the_speaker_keeps_answering() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("l2-bad").await.unwrap();
    let _pool = l2_pool(
        &lab,
        "l2t-bad",
        &["192.0.2.208", "2001:db8:2::208"],
        json!({}),
    )
    .await;
    let (v4, v6) = (ip("192.0.2.208"), ip("2001:db8:2::208"));
    lab.create_service(
        &ns,
        &l2_service("bad", "l2t-bad", &[v4, v6], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "bad", &[v4, v6]).await;
    let owner6 = predicted_owner(v6, &all_nodes());
    wait_l2_status(&lab, &ns, "bad", &l2_owner_rows(v4, v6)).await;
    let before = speaker_metrics(&lab, owner6).await;
    let IpAddr::V6(owned_v6) = v6 else {
        unreachable!()
    };
    let node_mac: MacAddr = parse_mac(&lab.node_mac(owner6).await.unwrap());
    send_bad_input(owned_v6, owner6.addr4(), node_mac);
    poll("the bad input counted on the IPv6 owner", WAIT, || async {
        let after = speaker_metrics(&lab, owner6).await;
        let grew = |name: &str, labels: &[&str], by: f64| {
            metric(&after, name, labels) - metric(&before, name, labels) >= by
        };
        let counted = grew(
            "ferrolb_l2_frames_malformed_total",
            &["protocol=\"Arp\""],
            10.0,
        ) && grew(
            "ferrolb_l2_frames_malformed_total",
            &["protocol=\"Ndp\""],
            10.0,
        ) && grew(
            "ferrolb_l2_frames_ignored_total",
            &["protocol=\"Arp\"", "reason=\"NotOwned\""],
            5.0,
        ) && grew(
            "ferrolb_l2_frames_ignored_total",
            &["protocol=\"Ndp\"", "reason=\"NotOwned\""],
            5.0,
        ) && grew(
            "ferrolb_membership_datagrams_dropped_total",
            &["reason=\"Unauthenticated\""],
            5.0,
        ) && grew(
            "ferrolb_membership_datagrams_dropped_total",
            &["reason=\"Malformed\""],
            5.0,
        );
        if counted { Ok(()) } else { Err(after) }
    })
    .await
    .unwrap();
    // Still answering, and the membership still whole.
    for addr in [v4, v6] {
        forget_neighbour(&lab, addr).await;
        let (node, _) = resolve_and_get(&lab, addr).await;
        assert_eq!(node, predicted_owner(addr, &all_nodes()), "{addr}");
    }
    let m = speaker_metrics(&lab, owner6).await;
    assert_eq!(
        metric(&m, "ferrolb_members", &["state=\"Alive\""]),
        3.0,
        "{m}"
    );
}

fn parse_mac(text: &str) -> MacAddr {
    let mut out = [0u8; 6];
    for (o, part) in out.iter_mut().zip(text.split(':')) {
        *o = u8::from_str_radix(part, 16).unwrap();
    }
    MacAddr(out)
}

/// The ServiceL2Status rows of a dual-stack Service on all nodes: one per owning node.
fn l2_owner_rows(v4: IpAddr, v6: IpAddr) -> Vec<(NodeId, &'static [&'static str])> {
    let mut rows = vec![
        (predicted_owner(v4, &all_nodes()), &["eth0"][..]),
        (predicted_owner(v6, &all_nodes()), &["eth0"][..]),
    ];
    rows.sort();
    rows.dedup();
    rows
}

// ---- tests that break parts of the lab --------------------------------------------------

/// Puts a killed node and a stopped API server back even when a test fails half-way.
struct Restore {
    paths: ferrolb_e2e::state::Paths,
    targets: Vec<Target>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        for t in self.targets.drain(..) {
            let _ = ferrolb_e2e::lab::restore(&self.paths, t);
        }
    }
}

#[tokio::test]
async fn l2_killed_owner_fails_over_to_a_survivor() {
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("l2-kill").await.unwrap();
    let _pool = l2_pool(&lab, "l2t-kill", &["192.0.2.204"], json!({})).await;
    let addr = ip("192.0.2.204");
    lab.create_service(
        &ns,
        &l2_service("kill", "l2t-kill", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "kill", &[addr]).await;
    let owner = predicted_owner(addr, &all_nodes());
    wait_l2_status(&lab, &ns, "kill", &[(owner, &["eth0"])]).await;
    forget_neighbour(&lab, addr).await;
    assert_eq!(resolve_and_get(&lab, addr).await.0, owner);

    let _restore = Restore {
        paths: lab.paths.clone(),
        targets: vec![Target::Node(owner)],
    };
    let started = std::time::Instant::now();
    lab.kill(Target::Node(owner)).await.unwrap();
    let survivors: Vec<NodeId> = all_nodes().into_iter().filter(|n| *n != owner).collect();
    let next = predicted_owner(addr, &survivors);
    wait_neighbour(&lab, addr, next).await;
    println!(
        "failover: {owner} killed → neighbour entry at {next} after {:?}",
        started.elapsed()
    );
    let body = lab.http_get(L2CLIENT_NS, addr, 80).await.unwrap();
    assert_eq!(body, next.name());
    // The dead node's status goes, the new owner's comes, with an Event naming it.
    wait_l2_status(&lab, &ns, "kill", &[(next, &["eth0"])]).await;
    wait_announcing_event(&lab, &ns, "kill", next).await;

    // Back: it owns the address again.
    lab.restart(Target::Node(owner)).await.unwrap();
    wait_neighbour(&lab, addr, owner).await;
    wait_l2_status(&lab, &ns, "kill", &[(owner, &["eth0"])]).await;
}

#[tokio::test]
async fn l2_failover_works_with_the_api_server_down() {
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("l2-noapi").await.unwrap();
    let _pool = l2_pool(&lab, "l2t-noapi", &["192.0.2.205"], json!({})).await;
    let addr = ip("192.0.2.205");
    lab.create_service(
        &ns,
        &l2_service("noapi", "l2t-noapi", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "noapi", &[addr]).await;
    let owner = predicted_owner(addr, &all_nodes());
    wait_l2_status(&lab, &ns, "noapi", &[(owner, &["eth0"])]).await;
    forget_neighbour(&lab, addr).await;
    assert_eq!(resolve_and_get(&lab, addr).await.0, owner);

    let _restore = Restore {
        paths: lab.paths.clone(),
        targets: vec![Target::Apiserver, Target::Node(owner)],
    };
    lab.kill(Target::Apiserver).await.unwrap();
    lab.kill(Target::Node(owner)).await.unwrap();
    let survivors: Vec<NodeId> = all_nodes().into_iter().filter(|n| *n != owner).collect();
    let next = predicted_owner(addr, &survivors);
    wait_neighbour(&lab, addr, next).await;
    assert_eq!(
        lab.http_get(L2CLIENT_NS, addr, 80).await.unwrap(),
        next.name()
    );

    lab.restart(Target::Apiserver).await.unwrap();
    lab.restart(Target::Node(owner)).await.unwrap();
    wait_neighbour(&lab, addr, owner).await;
    wait_l2_status(&lab, &ns, "noapi", &[(owner, &["eth0"])]).await;
}

/// Takes a label or condition off a node again even when a test fails half-way.
struct NodeReset {
    kubectl: Vec<Vec<String>>,
    lab_kubeconfig: std::path::PathBuf,
}

impl Drop for NodeReset {
    fn drop(&mut self) {
        let paths = ferrolb_e2e::state::Paths::from_build();
        let Ok(state) = ferrolb_e2e::state::State::load(&paths) else {
            return;
        };
        for args in &self.kubectl {
            let _ = std::process::Command::new(state.k8s_dir.join("kubectl"))
                .arg("--kubeconfig")
                .arg(&self.lab_kubeconfig)
                .args(args)
                .status();
        }
    }
}

#[tokio::test]
async fn l2_exclusion_label_and_network_unavailable_move_the_address() {
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("l2-elig").await.unwrap();
    let _pool = l2_pool(&lab, "l2t-elig", &["192.0.2.206"], json!({})).await;
    let addr = ip("192.0.2.206");
    lab.create_service(
        &ns,
        &l2_service("elig", "l2t-elig", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "elig", &[addr]).await;
    let owner = predicted_owner(addr, &all_nodes());
    wait_l2_status(&lab, &ns, "elig", &[(owner, &["eth0"])]).await;
    let survivors: Vec<NodeId> = all_nodes().into_iter().filter(|n| *n != owner).collect();
    let next = predicted_owner(addr, &survivors);
    forget_neighbour(&lab, addr).await;
    assert_eq!(resolve_and_get(&lab, addr).await.0, owner);
    let nodes: Api<Node> = Api::all(lab.client().await);
    let _reset = NodeReset {
        kubectl: vec![
            vec![
                "label".into(),
                "node".into(),
                owner.name(),
                "node.kubernetes.io/exclude-from-external-load-balancers-".into(),
            ],
            vec![
                "patch".into(),
                "node".into(),
                owner.name(),
                "--subresource=status".into(),
                "--type=strategic".into(),
                "-p".into(),
                r#"{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","reason":"Test","message":"reset"}]}}"#.into(),
            ],
        ],
        lab_kubeconfig: lab.paths.kubeconfig(),
    };

    // The exclusion label: the runner-up takes over; without it, back.
    nodes
        .patch(
            &owner.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "node.kubernetes.io/exclude-from-external-load-balancers": "true"
            }}})),
        )
        .await
        .unwrap();
    wait_l2_status(&lab, &ns, "elig", &[(next, &["eth0"])]).await;
    wait_neighbour(&lab, addr, next).await;
    nodes
        .patch(
            &owner.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "node.kubernetes.io/exclude-from-external-load-balancers": null
            }}})),
        )
        .await
        .unwrap();
    wait_l2_status(&lab, &ns, "elig", &[(owner, &["eth0"])]).await;
    wait_neighbour(&lab, addr, owner).await;

    // NetworkUnavailable True: the same; False again: back.
    let condition = |status: &str| {
        Patch::Strategic(json!({"status": {"conditions": [{
            "type": "NetworkUnavailable", "status": status,
            "reason": "Test", "message": "set by the speaker's e2e test"
        }]}}))
    };
    nodes
        .patch_status(&owner.name(), &PatchParams::default(), &condition("True"))
        .await
        .unwrap();
    wait_l2_status(&lab, &ns, "elig", &[(next, &["eth0"])]).await;
    wait_neighbour(&lab, addr, next).await;
    nodes
        .patch_status(&owner.name(), &PatchParams::default(), &condition("False"))
        .await
        .unwrap();
    wait_l2_status(&lab, &ns, "elig", &[(owner, &["eth0"])]).await;
    wait_neighbour(&lab, addr, owner).await;
}

#[tokio::test]
async fn l2_stopped_speaker_hands_over_and_takes_back_on_restart() {
    // A speaker stopped with SIGTERM leaves the membership: its addresses move at once (no
    // failure-detector wait); started again, it takes them back.
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("l2-restart").await.unwrap();
    let _pool = l2_pool(&lab, "l2t-restart", &["192.0.2.212"], json!({})).await;
    let addr = ip("192.0.2.212");
    lab.create_service(
        &ns,
        &l2_service("rs", "l2t-restart", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "rs", &[addr]).await;
    let owner = predicted_owner(addr, &all_nodes());
    wait_l2_status(&lab, &ns, "rs", &[(owner, &["eth0"])]).await;
    forget_neighbour(&lab, addr).await;
    assert_eq!(resolve_and_get(&lab, addr).await.0, owner);
    let _restore = Restore {
        paths: lab.paths.clone(),
        targets: vec![Target::Speaker(owner)],
    };
    lab.kill(Target::Speaker(owner)).await.unwrap();
    let survivors: Vec<NodeId> = all_nodes().into_iter().filter(|n| *n != owner).collect();
    let next = predicted_owner(addr, &survivors);
    wait_neighbour(&lab, addr, next).await;
    lab.restart(Target::Speaker(owner)).await.unwrap();
    wait_neighbour(&lab, addr, owner).await;
    wait_l2_status(&lab, &ns, "rs", &[(owner, &["eth0"])]).await;
}
