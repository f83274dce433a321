//! BGPPeer (a BGP session a speaker opens) and BGPAdvertisement (which pools it announces,
//! with which attributes).

// kube's `printcolumn(..)` lists repeat `type_ = "string"`, which clippy takes for
// duplicated attributes on the items the derive generates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::conditions::ConfigStatus;
use crate::rules::{self, EachItem, limits};

/// Default `holdTime` (RFC 4271's suggested value).
pub const DEFAULT_HOLD_TIME: &str = "90s";
/// Default `connectTime`: short, since the usual peer is the node's own BIRD.
pub const DEFAULT_CONNECT_TIME: &str = "10s";
/// Default `peerPort`.
pub const DEFAULT_PEER_PORT: u16 = 179;
/// The Secret key that holds the TCP MD5 password when `passwordSecret.key` is not given.
pub const DEFAULT_PASSWORD_KEY: &str = "password";

/// A BGP session that speakers on the selected nodes open to a router, typically the node's
/// own BIRD at 127.0.0.1.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPPeer",
    plural = "bgppeers",
    shortname = "flbpeer",
    category = "ferrolb",
    status = "ConfigStatus",
    derive = "PartialEq",
    doc = "A BGP session speakers on the selected nodes open to a router. Cluster-scoped.",
    printcolumn(
        name = "Peer Address",
        type_ = "string",
        json_path = ".spec.peerAddress"
    ),
    printcolumn(name = "Peer ASN", type_ = "integer", json_path = ".spec.peerASN"),
    printcolumn(name = "My ASN", type_ = "integer", json_path = ".spec.myASN"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Valid")].status"#,
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [rules::KEEPALIVE_BELOW_HOLD.to_json()]))]
pub struct BGPPeerSpec {
    /// The AS number the speaker uses on this session (1 to 4294967295; 4-octet AS numbers
    /// are supported).
    #[serde(rename = "myASN")]
    #[schemars(range(max = 4_294_967_295u32), extend("x-kubernetes-validations" = [rules::ASN_NOT_ZERO.to_json()]))]
    pub my_asn: u32,

    /// The AS number the peer must present. Equal to myASN for an iBGP session.
    #[serde(rename = "peerASN")]
    #[schemars(range(max = 4_294_967_295u32), extend("x-kubernetes-validations" = [rules::ASN_NOT_ZERO.to_json()]))]
    pub peer_asn: u32,

    /// The address the speaker connects to (IPv4 or IPv6), e.g. 127.0.0.1 for the node's
    /// own BIRD. The speaker only dials out; it never listens on port 179.
    #[schemars(
        length(max = limits::IP_LENGTH),
        extend("x-kubernetes-validations" = [rules::IS_IP.to_json()])
    )]
    pub peer_address: String,

    /// The TCP port the speaker connects to.
    #[serde(default = "default_peer_port")]
    #[schemars(range(min = 1))]
    pub peer_port: u16,

    /// The local address the session's TCP connection is bound to. Unset: chosen by the
    /// kernel's routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = limits::IP_LENGTH),
        extend("x-kubernetes-validations" = [rules::IS_IP.to_json()])
    )]
    pub source_address: Option<String>,

    /// The hold time the speaker proposes (RFC 4271), in whole seconds written as a duration
    /// (`90s`, `3m`): 0s (no keepalives) or 3s to 65535s. The session uses the smaller of
    /// both sides' proposals.
    #[serde(default = "default_hold_time")]
    #[schemars(
        length(max = limits::DURATION_LENGTH),
        extend("x-kubernetes-validations" = [rules::DURATION_FORM.to_json(), rules::HOLD_TIME_RANGE.to_json()])
    )]
    pub hold_time: String,

    /// How often KEEPALIVE messages are sent, as a duration in whole seconds; shorter than
    /// holdTime (0s when holdTime is 0s). Unset: a third of the negotiated hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = limits::DURATION_LENGTH),
        extend("x-kubernetes-validations" = [rules::DURATION_FORM.to_json()])
    )]
    pub keepalive_time: Option<String>,

    /// How long the speaker waits between attempts to connect, as a duration in whole
    /// seconds between 1s and 65535s.
    #[serde(default = "default_connect_time")]
    #[schemars(
        length(max = limits::DURATION_LENGTH),
        extend("x-kubernetes-validations" = [rules::DURATION_FORM.to_json(), rules::CONNECT_TIME_RANGE.to_json()])
    )]
    pub connect_time: String,

    /// The BGP identifier the speaker sends, written as an IPv4 address. Unset: the speaker
    /// derives one from the node's addresses.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = limits::IP_LENGTH),
        extend("x-kubernetes-validations" = [rules::ROUTER_ID.to_json()])
    )]
    pub router_id: Option<String>,

    /// Open the session only from nodes whose labels match any of these selectors. Empty:
    /// every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// A Secret holding the TCP MD5 (RFC 2385) password for the session. Unset: no password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<PasswordSecret>,

    /// Allow an eBGP peer that is more than one hop away (sets a TTL of 255 instead of 1).
    #[serde(default)]
    pub ebgp_multi_hop: bool,

    /// Negotiate graceful restart (RFC 4724): after a speaker restart, the peer keeps the
    /// speaker's routes until End-of-RIB instead of dropping them.
    #[serde(default)]
    pub enable_graceful_restart: bool,
}

fn default_peer_port() -> u16 {
    DEFAULT_PEER_PORT
}

fn default_hold_time() -> String {
    DEFAULT_HOLD_TIME.to_owned()
}

fn default_connect_time() -> String {
    DEFAULT_CONNECT_TIME.to_owned()
}

/// Where a BGP session's password is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSecret {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// The Secret's namespace (BGPPeer is cluster-scoped, so it must be given).
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,

    /// The key in the Secret's data that holds the password.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_password_key() -> String {
    DEFAULT_PASSWORD_KEY.to_owned()
}

/// Announces the addresses of the selected pools over BGP to the selected peers.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    shortname = "flbbgpadv",
    category = "ferrolb",
    status = "ConfigStatus",
    derive = "PartialEq",
    doc = "Announces the addresses of the selected pools over BGP. Cluster-scoped.",
    printcolumn(name = "Pools", type_ = "string", json_path = ".spec.ipAddressPools"),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Valid")].status"#,
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Names of the IPAddressPools to announce. If both this and ipAddressPoolSelectors are
    /// empty, every pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,

    /// Announce the pools whose labels match any of these selectors (in addition to
    /// ipAddressPools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// Announce only from nodes whose labels match any of these selectors. Empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Names of the BGPPeers to announce to. Empty: every peer of the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,

    /// The prefix length IPv4 Service addresses are announced with: 32 announces each
    /// address as a host route; shorter lengths announce the covering prefix instead. It
    /// must not be shorter than the prefix of any selected pool entry (checked by the
    /// controller).
    #[serde(default = "default_aggregation_length")]
    #[schemars(extend("x-kubernetes-validations" = [rules::AGGREGATION_LENGTH_V4.to_json()]))]
    pub aggregation_length: i32,

    /// Like aggregationLength, for IPv6 addresses (1 to 128).
    #[serde(default = "default_aggregation_length_v6")]
    #[schemars(extend("x-kubernetes-validations" = [rules::AGGREGATION_LENGTH_V6.to_json()]))]
    pub aggregation_length_v6: i32,

    /// The LOCAL_PREF attribute sent with the routes (iBGP sessions only). Unset: not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,

    /// BGP communities attached to the routes: `A:B` (RFC 1997, each part 0-65535, e.g.
    /// 65535:65282 for no-advertise) or `large:A:B:C` (RFC 8092, each part 0-4294967295).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = limits::COMMUNITIES),
        inner(length(max = limits::COMMUNITY_LENGTH)),
        transform = EachItem(&[rules::COMMUNITY])
    )]
    pub communities: Vec<String>,
}

fn default_aggregation_length() -> i32 {
    32
}

fn default_aggregation_length_v6() -> i32 {
    128
}
