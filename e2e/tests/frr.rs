//! The same routed network with FRR (zebra + bgpd, multipath) as the router instead of BIRD.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use ferrolb_e2e::{Lab, LabConfig, RouterKind};

const FRR: LabConfig = LabConfig {
    nodes: 3,
    router: RouterKind::Frr,
    node_daemons: ferrolb_e2e::nodepeer::NodeDaemons::BIRD,
};

#[tokio::test]
async fn frr_router_has_an_established_session_to_every_node() {
    let lab = Lab::shared_with(FRR).await;
    common::assert_sessions_established(&lab).await;
}

#[tokio::test]
async fn frr_installs_a_route_from_two_nodes_as_one_route_with_two_next_hops() {
    let lab = Lab::exclusive_with(FRR).await;
    common::assert_injected_route_is_ecmp(&lab).await;
}

#[tokio::test]
async fn client_reaches_each_nodes_responder_through_frr() {
    let lab = Lab::exclusive_with(FRR).await;
    common::assert_client_reaches_each_node(&lab).await;
}
