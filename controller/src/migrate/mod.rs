//! `ferrolb-controller convert`: MetalLB configuration in, ferrolb configuration out.
//!
//! ```text
//!   files / stdin ──► input::read ──► convert(documents, options) ──► Conversion
//!                     (YAML, Lists)    pure: MetalLB → ferrolb,        ├─ objects ──► stdout (YAML)
//!                                      then ferrolb_api's checks       └─ findings ─► stderr
//! ```
//!
//! [`convert`] is a pure function of the documents: it reads MetalLB's `metallb.io/v1beta1`
//! and `v1beta2` IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer and Community
//! objects (and the Secrets BGPPeers refer to), and returns ferrolb.io/v1alpha1 objects plus a
//! [`Finding`] for every object and field it could not carry over unchanged. The objects are
//! checked with `ferrolb_api`'s own parsers and validators — the ones the controller and the
//! speaker use — so what convert writes is what ferrolb runs. [`cli`] is the thin I/O around it.
//!
//! Mapping decisions that change how something is written (each has a unit test):
//!
//! - MetalLB's namespaced objects become cluster-scoped ones with the same names (and labels,
//!   which pool selectors use); a name defined in two namespaces is an error.
//! - Pool priority: MetalLB tries pools with a priority before pools with priority 0 (unset)
//!   and lower numbers first; ferrolb sorts ascending. 0 becomes `i32::MAX`.
//! - A `serviceAllocation` that selects no namespace and no Service kept MetalLB from ever
//!   assigning from the pool unasked; it becomes `autoAssign: false`.
//! - Timers in Go's duration syntax become whole seconds; MetalLB's hold time of three
//!   keepalives when only `keepaliveTime` is set is written out.
//! - An inline BGP `password` becomes a Secret in the namespace ferrolb runs in; a
//!   `passwordSecret` points there too (and its Secret is copied when it is in the input).
//! - Community aliases (MetalLB's Community objects) are replaced by their values.

pub mod cli;
mod duration;
pub mod finding;
pub mod input;
pub mod metallb;
mod output;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ferrolb_api::addr::AddressEntry;
use ferrolb_api::rules::limits;
use ferrolb_api::validate::Community;
use ferrolb_api::{
    BGPAdvertisement, BGPAdvertisementSpec, BGPPeer, BGPPeerSpec, IPAddressPool, IPAddressPoolSpec,
    L2Advertisement, L2AdvertisementSpec, PasswordSecret, ServiceAllocation,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use cli::ConvertArgs;
pub use finding::{Finding, ObjectId, Reason, Severity, Subject};
pub use input::Document;
pub use output::{Converted, Object};

use finding::KindLeftOut;

/// Where convert puts what has no place in MetalLB's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The namespace ferrolb is installed in: BGP password Secrets are written there, the
    /// only namespace its speaker reads Secrets from.
    pub secret_namespace: String,
    /// The namespace MetalLB ran in, assumed for objects whose manifest names none.
    pub metallb_namespace: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            secret_namespace: "ferrolb-system".into(),
            metallb_namespace: "metallb-system".into(),
        }
    }
}

/// What [`convert`] made of the input.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// The ferrolb objects, Secrets first, then pools, peers, BGP and L2 advertisements, each
    /// kind in input order.
    pub objects: Vec<Converted>,
    /// Everything the user should know, in input order.
    pub findings: Vec<Finding>,
}

impl Conversion {
    /// Whether any finding is an error (then nothing should be written).
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity() == Severity::Error)
    }

    /// The objects as multi-document YAML, each introduced by a comment naming its source.
    pub fn to_yaml(&self) -> String {
        output::to_yaml(&self.objects)
    }

    /// The names of the Secrets the converted BGPPeers refer to (what the Helm chart's
    /// `bgp.passwordSecrets` must list).
    pub fn password_secrets(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .objects
            .iter()
            .filter_map(|c| match &c.object {
                Object::Peer(p) => p.spec.password_secret.as_ref().map(|s| s.name.clone()),
                _ => None,
            })
            .collect();
        names.into_iter().collect()
    }
}

/// The default name of the Secret made for a peer's inline password.
fn password_secret_name(peer: &str) -> String {
    format!("{peer}-bgp-password")
}

/// The kinds convert turns into ferrolb objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Pool,
    L2Advertisement,
    BgpAdvertisement,
    Peer,
    Community,
}

impl Kind {
    fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "IPAddressPool" => Kind::Pool,
            "L2Advertisement" => Kind::L2Advertisement,
            "BGPAdvertisement" => Kind::BgpAdvertisement,
            "BGPPeer" => Kind::Peer,
            "Community" => Kind::Community,
            _ => return None,
        })
    }
}

/// A MetalLB object accepted for conversion.
struct Input<'a> {
    kind: Kind,
    id: ObjectId,
    subject: Subject,
    api_version: String,
    labels: Option<BTreeMap<String, String>>,
    spec: &'a Value,
}

/// Converts MetalLB manifests into ferrolb objects. Pure: the same documents give the same
/// result.
pub fn convert(documents: &[Document], options: &Options) -> Conversion {
    let mut c = Converter {
        options,
        findings: Vec::new(),
        secrets_in: HashMap::new(),
        secrets_used: BTreeSet::new(),
        secrets_out: Vec::new(),
    };
    let inputs = c.classify(documents);
    c.check_names(&inputs);
    let aliases = c.community_aliases(&inputs);

    let mut pools = Vec::new();
    let mut peers = Vec::new();
    let mut bgp_advertisements = Vec::new();
    let mut l2_advertisements = Vec::new();
    for input in &inputs {
        match input.kind {
            Kind::Pool => pools.extend(c.pool(input).map(|p| (input, p))),
            Kind::Peer => peers.extend(c.peer(input).map(|p| (input, p))),
            Kind::BgpAdvertisement => {
                bgp_advertisements.extend(c.bgp_advertisement(input, &aliases).map(|a| (input, a)))
            }
            Kind::L2Advertisement => {
                l2_advertisements.extend(c.l2_advertisement(input).map(|a| (input, a)))
            }
            Kind::Community => {}
        }
    }
    c.unused_secrets();

    let pool_specs: Vec<(&ObjectMeta, &IPAddressPoolSpec)> =
        pools.iter().map(|(_, p)| (&p.metadata, &p.spec)).collect();
    let peer_names: BTreeSet<&str> = peers
        .iter()
        .filter_map(|(_, p)| p.metadata.name.as_deref())
        .collect();
    for (input, adv) in &bgp_advertisements {
        c.check_bgp_references(input, &adv.spec, &pool_specs, &peer_names);
    }
    for (input, adv) in &l2_advertisements {
        c.check_pool_references(input, &adv.spec.ip_address_pools, &pool_specs);
    }

    let mut objects: Vec<Converted> = std::mem::take(&mut c.secrets_out);
    let from = |input: &Input<'_>| Some((input.api_version.clone(), input.id.clone()));
    objects.extend(pools.into_iter().map(|(i, p)| Converted {
        from: from(i),
        object: Object::Pool(p),
    }));
    objects.extend(peers.into_iter().map(|(i, p)| Converted {
        from: from(i),
        object: Object::Peer(p),
    }));
    objects.extend(bgp_advertisements.into_iter().map(|(i, a)| Converted {
        from: from(i),
        object: Object::BgpAdvertisement(a),
    }));
    objects.extend(l2_advertisements.into_iter().map(|(i, a)| Converted {
        from: from(i),
        object: Object::L2Advertisement(a),
    }));
    // Findings in input order, whatever step found them.
    let position: HashMap<(&str, usize), usize> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| ((d.source.as_str(), d.number), i))
        .collect();
    let mut findings = c.findings;
    findings.sort_by_key(|f| {
        position
            .get(&(f.subject.source.as_str(), f.subject.document))
            .copied()
            .unwrap_or(usize::MAX)
    });
    Conversion { objects, findings }
}

/// An input Secret, by namespace and name.
struct InputSecret {
    subject: Subject,
    password: Option<ByteString>,
}

struct Converter<'o> {
    options: &'o Options,
    findings: Vec<Finding>,
    secrets_in: HashMap<(String, String), InputSecret>,
    secrets_used: BTreeSet<(String, String)>,
    secrets_out: Vec<Converted>,
}

impl Converter<'_> {
    fn report(&mut self, subject: &Subject, field: impl Into<String>, reason: Reason) {
        self.findings.push(Finding {
            subject: subject.clone(),
            field: field.into(),
            reason,
        });
    }

    /// Sorts the documents into MetalLB objects to convert, Secrets, and what is left out.
    fn classify<'d>(&mut self, documents: &'d [Document]) -> Vec<Input<'d>> {
        let mut inputs = Vec::new();
        for doc in documents {
            let mut subject = doc.subject();
            let str_at = |path: &[&str]| {
                path.iter()
                    .try_fold(&doc.value, |v, key| v.get(key))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            let (Some(api_version), Some(kind), Some(name)) = (
                str_at(&["apiVersion"]),
                str_at(&["kind"]),
                str_at(&["metadata", "name"]),
            ) else {
                self.report(&subject, "", Reason::NotAnObject);
                continue;
            };
            let namespace = str_at(&["metadata", "namespace"])
                .unwrap_or(&self.options.metallb_namespace)
                .to_owned();
            let id = ObjectId {
                kind: kind.to_owned(),
                namespace,
                name: name.to_owned(),
            };
            subject.object = Some(id.clone());

            if api_version == "v1" && kind == "Secret" {
                self.read_secret(doc, subject, &id);
                continue;
            }
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            if group != metallb::GROUP {
                self.report(
                    &subject,
                    "",
                    Reason::NotMetalLb {
                        api_version: api_version.to_owned(),
                        kind: kind.to_owned(),
                    },
                );
                continue;
            }
            if !metallb::VERSIONS.contains(&version) {
                self.report(
                    &subject,
                    "apiVersion",
                    Reason::UnsupportedVersion {
                        api_version: api_version.to_owned(),
                    },
                );
                continue;
            }
            let Some(kind) = Kind::parse(kind) else {
                let why = match kind {
                    "BFDProfile" => KindLeftOut::BfdProfile,
                    "AddressPool" => KindLeftOut::AddressPool,
                    "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState" => {
                        KindLeftOut::Status
                    }
                    _ => KindLeftOut::NoEquivalent,
                };
                self.report(&subject, "", Reason::LeftOut { why });
                continue;
            };
            let labels = doc
                .value
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .cloned()
                .map(serde_json::from_value::<BTreeMap<String, String>>);
            let labels = match labels {
                None => None,
                Some(Ok(labels)) => Some(labels).filter(|l| !l.is_empty()),
                Some(Err(e)) => {
                    self.report(
                        &subject,
                        "metadata.labels",
                        Reason::Malformed {
                            message: e.to_string(),
                        },
                    );
                    continue;
                }
            };
            static NO_SPEC: Value = Value::Null;
            inputs.push(Input {
                kind,
                id,
                subject,
                api_version: api_version.to_owned(),
                labels,
                spec: doc.value.get("spec").unwrap_or(&NO_SPEC),
            });
        }
        inputs
    }

    fn read_secret(&mut self, doc: &Document, subject: Subject, id: &ObjectId) {
        let secret: Secret = match serde_json::from_value(doc.value.clone()) {
            Ok(secret) => secret,
            Err(e) => {
                self.report(
                    &subject,
                    "",
                    Reason::Malformed {
                        message: e.to_string(),
                    },
                );
                return;
            }
        };
        let password = secret
            .data
            .as_ref()
            .and_then(|d| d.get("password").cloned())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get("password"))
                    .map(|p| ByteString(p.clone().into_bytes()))
            });
        self.secrets_in.insert(
            (id.namespace.clone(), id.name.clone()),
            InputSecret { subject, password },
        );
    }

    fn unused_secrets(&mut self) {
        let mut unused: Vec<Subject> = self
            .secrets_in
            .iter()
            .filter(|(key, _)| !self.secrets_used.contains(*key))
            .map(|(_, s)| s.subject.clone())
            .collect();
        unused.sort();
        for subject in unused {
            self.report(
                &subject,
                "",
                Reason::LeftOut {
                    why: KindLeftOut::UnreferencedSecret,
                },
            );
        }
    }

    /// Cluster-scoped names must be unique per kind; MetalLB's were per namespace.
    fn check_names(&mut self, inputs: &[Input<'_>]) {
        let mut seen: HashMap<(Kind, &str), &str> = HashMap::new();
        let mut namespaces: BTreeSet<&str> = BTreeSet::new();
        let mut first_elsewhere: Option<&Subject> = None;
        for input in inputs {
            if namespaces.insert(&input.id.namespace) && namespaces.len() == 2 {
                first_elsewhere = Some(&input.subject);
            }
            if input.kind == Kind::Community {
                continue;
            }
            match seen.get(&(input.kind, input.id.name.as_str())) {
                Some(other) => {
                    let reason = Reason::NameCollision {
                        kind: input.id.kind.clone(),
                        name: input.id.name.clone(),
                        other_namespace: (*other).to_owned(),
                    };
                    self.report(&input.subject, "metadata.name", reason);
                }
                None => {
                    seen.insert((input.kind, &input.id.name), &input.id.namespace);
                }
            }
        }
        if let Some(subject) = first_elsewhere {
            let namespaces = namespaces.into_iter().collect::<Vec<_>>().join(", ");
            let subject = subject.clone();
            self.report(&subject, "", Reason::SeveralNamespaces { namespaces });
        }
    }

    /// Deserializes a spec; a failure is an error finding.
    fn spec<T: DeserializeOwned + Default>(&mut self, input: &Input<'_>) -> Option<T> {
        if input.spec.is_null() {
            return Some(T::default());
        }
        match serde_json::from_value(input.spec.clone()) {
            Ok(spec) => Some(spec),
            Err(e) => {
                self.report(
                    &input.subject,
                    "spec",
                    Reason::Malformed {
                        message: e.to_string(),
                    },
                );
                None
            }
        }
    }

    fn unknown_fields(&mut self, subject: &Subject, prefix: &str, unknown: &metallb::Unknown) {
        for field in unknown.keys() {
            self.report(subject, format!("{prefix}.{field}"), Reason::UnknownField);
        }
    }

    fn selectors(&mut self, subject: &Subject, field: &str, selectors: &[LabelSelector]) {
        for (i, selector) in selectors.iter().enumerate() {
            if let Err(e) = ferrolb_api::selector::Selector::new(selector) {
                self.report(subject, format!("{field}[{i}]"), Reason::Selector(e));
            }
        }
    }

    fn invalid(&mut self, subject: &Subject, errors: Vec<ferrolb_api::validate::InvalidField>) {
        for e in errors {
            // The message starts with the ferrolb field's path.
            self.report(subject, "", Reason::Invalid(e));
        }
    }

    fn too_many(&mut self, subject: &Subject, field: &str, count: usize, max: u32) {
        if count > max as usize {
            self.report(subject, field, Reason::TooMany { count, max });
        }
    }

    fn meta(&self, input: &Input<'_>) -> ObjectMeta {
        ObjectMeta {
            name: Some(input.id.name.clone()),
            labels: input.labels.clone(),
            ..ObjectMeta::default()
        }
    }

    /// Community aliases from every Community object, by name.
    fn community_aliases(&mut self, inputs: &[Input<'_>]) -> HashMap<String, Community> {
        let mut aliases: HashMap<String, (Community, ObjectId)> = HashMap::new();
        for input in inputs.iter().filter(|i| i.kind == Kind::Community) {
            let Some(spec) = self.spec::<metallb::CommunitySpec>(input) else {
                continue;
            };
            self.unknown_fields(&input.subject, "spec", &spec.unknown);
            for (i, alias) in spec.communities.iter().enumerate() {
                let field = format!("spec.communities[{i}]");
                let Some(value) = metallb::parse_community(&alias.value) else {
                    self.report(
                        &input.subject,
                        field,
                        Reason::BadAlias {
                            alias: alias.name.clone(),
                            value: alias.value.clone(),
                        },
                    );
                    continue;
                };
                if let Some((_, other)) = aliases.get(&alias.name) {
                    let reason = Reason::DuplicateAlias {
                        alias: alias.name.clone(),
                        other: other.to_string(),
                    };
                    self.report(&input.subject, field, reason);
                    continue;
                }
                aliases.insert(alias.name.clone(), (value, input.id.clone()));
            }
        }
        aliases.into_iter().map(|(k, (v, _))| (k, v)).collect()
    }

    fn pool(&mut self, input: &Input<'_>) -> Option<IPAddressPool> {
        let spec: metallb::PoolSpec = self.spec(input)?;
        let subject = &input.subject;
        self.unknown_fields(subject, "spec", &spec.unknown);
        let errors_before = self.error_count();

        if spec.addresses.is_empty() {
            self.report(subject, "spec.addresses", Reason::NoAddresses);
        }
        self.too_many(
            subject,
            "spec.addresses",
            spec.addresses.len(),
            limits::POOL_ADDRESSES,
        );
        let mut addresses = Vec::with_capacity(spec.addresses.len());
        for (i, text) in spec.addresses.iter().enumerate() {
            match AddressEntry::parse(text) {
                Ok(entry) => {
                    let written = output::address(&entry);
                    if entry.host_bits_set() {
                        let reason = Reason::CidrHostBits {
                            entry: text.clone(),
                            written: written.clone(),
                        };
                        self.report(subject, format!("spec.addresses[{i}]"), reason);
                    }
                    addresses.push(written);
                }
                Err(e) => self.report(subject, format!("spec.addresses[{i}]"), Reason::Address(e)),
            }
        }

        let mut auto_assign = spec.auto_assign.unwrap_or(true);
        let service_allocation = match spec.service_allocation {
            None => None,
            Some(a) => {
                let field = "spec.serviceAllocation";
                self.unknown_fields(subject, field, &a.unknown);
                self.selectors(
                    subject,
                    "spec.serviceAllocation.namespaceSelectors",
                    &a.namespace_selectors,
                );
                self.selectors(
                    subject,
                    "spec.serviceAllocation.serviceSelectors",
                    &a.service_selectors,
                );
                let selects_nothing = a.namespaces.is_empty()
                    && a.namespace_selectors.is_empty()
                    && a.service_selectors.is_empty();
                if selects_nothing {
                    let reason = if auto_assign {
                        auto_assign = false;
                        Reason::AllocationSelectsNothing
                    } else {
                        Reason::AllocationIgnored
                    };
                    self.report(subject, field, reason);
                    None
                } else {
                    let priority = self.priority(subject, a.priority);
                    Some(ServiceAllocation {
                        priority,
                        namespaces: a.namespaces,
                        namespace_selectors: a.namespace_selectors,
                        service_selectors: a.service_selectors,
                    })
                }
            }
        };

        (self.error_count() == errors_before).then(|| IPAddressPool {
            metadata: self.meta(input),
            spec: IPAddressPoolSpec {
                addresses,
                auto_assign,
                avoid_buggy_ips: spec.avoid_buggy_ips,
                service_allocation,
            },
            status: None,
        })
    }

    /// MetalLB: priorities above 0 ascending, then 0 (unset). ferrolb: ascending.
    fn priority(&mut self, subject: &Subject, value: i64) -> i32 {
        let field = "spec.serviceAllocation.priority";
        match value {
            0 => {
                let written = i32::MAX;
                self.report(subject, field, Reason::PriorityUnset { written });
                written
            }
            v if v < 0 => {
                self.report(subject, field, Reason::PriorityNegative { value: v });
                i32::try_from(v).unwrap_or(i32::MIN)
            }
            v => match i32::try_from(v) {
                Ok(p) if p < i32::MAX => p,
                _ => {
                    let written = i32::MAX - 1;
                    self.report(
                        subject,
                        field,
                        Reason::PriorityTooLarge { value: v, written },
                    );
                    written
                }
            },
        }
    }

    fn error_count(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity() == Severity::Error)
            .count()
    }

    fn peer(&mut self, input: &Input<'_>) -> Option<BGPPeer> {
        let spec: metallb::PeerSpec = self.spec(input)?;
        let subject = &input.subject;
        self.unknown_fields(subject, "spec", &spec.unknown);
        let errors_before = self.error_count();

        let peer_asn = match (spec.peer_asn, spec.dynamic_asn.as_deref()) {
            (0, None) => {
                self.report(subject, "spec.peerASN", Reason::MissingPeerAsn);
                0
            }
            (asn, None) => asn,
            (0, Some("internal")) => {
                let asn = spec.my_asn;
                self.report(subject, "spec.dynamicASN", Reason::DynamicInternal { asn });
                asn
            }
            (0, Some(mode)) => {
                let mode = mode.to_owned();
                self.report(subject, "spec.dynamicASN", Reason::DynamicAsn { mode });
                0
            }
            (_, Some(_)) => {
                self.report(subject, "spec.dynamicASN", Reason::PeerAsnAndDynamic);
                0
            }
        };
        let peer_address = match (spec.peer_address, spec.interface) {
            (Some(address), None) => address,
            (_, Some(interface)) => {
                self.report(subject, "spec.interface", Reason::Unnumbered { interface });
                String::new()
            }
            (None, None) => {
                self.report(subject, "spec.peerAddress", Reason::MissingPeerAddress);
                String::new()
            }
        };

        // MetalLB: either timer alone implies the other (hold = 3 keepalives, keepalive =
        // hold / 3, the latter also ferrolb's default).
        let keepalive = spec
            .keepalive_time
            .as_deref()
            .and_then(|k| self.timer(subject, "spec.keepaliveTime", k));
        let hold_time = match (spec.hold_time.as_deref(), &keepalive) {
            (Some(hold), _) => self.timer(subject, "spec.holdTime", hold).map(|(t, _)| t),
            (None, Some((_, seconds))) => {
                let written = format!("{}s", seconds.saturating_mul(3));
                let reason = Reason::HoldFromKeepalive {
                    written: written.clone(),
                };
                self.report(subject, "spec.holdTime", reason);
                Some(written)
            }
            (None, None) => Some(ferrolb_api::bgp::DEFAULT_HOLD_TIME.to_owned()),
        };
        let connect_time = match spec.connect_time.as_deref() {
            Some(c) => self.timer(subject, "spec.connectTime", c).map(|(t, _)| t),
            None => Some(ferrolb_api::bgp::DEFAULT_CONNECT_TIME.to_owned()),
        };

        if let Some(profile) = spec.bfd_profile {
            self.report(subject, "spec.bfdProfile", Reason::Bfd { profile });
        }
        if let Some(vrf) = spec.vrf {
            self.report(subject, "spec.vrf", Reason::Vrf { vrf });
        }
        if spec.disable_mp {
            self.report(subject, "spec.disableMP", Reason::AddressFamilies);
        }
        if spec.dual_stack_address_family {
            self.report(
                subject,
                "spec.dualStackAddressFamily",
                Reason::AddressFamilies,
            );
        }
        self.selectors(subject, "spec.nodeSelectors", &spec.node_selectors);
        let password_secret = self.password(input, spec.password, spec.password_secret);

        let peer = BGPPeer {
            metadata: self.meta(input),
            spec: BGPPeerSpec {
                my_asn: spec.my_asn,
                peer_asn,
                peer_address,
                peer_port: match spec.peer_port {
                    0 => ferrolb_api::bgp::DEFAULT_PEER_PORT,
                    port => port,
                },
                source_address: spec.source_address,
                hold_time: hold_time.unwrap_or_default(),
                keepalive_time: keepalive.map(|(t, _)| t),
                connect_time: connect_time.unwrap_or_default(),
                router_id: spec.router_id,
                node_selectors: spec.node_selectors,
                password_secret,
                ebgp_multi_hop: spec.ebgp_multi_hop,
                enable_graceful_restart: spec.enable_graceful_restart,
            },
            status: None,
        };
        if self.error_count() != errors_before {
            return None;
        }
        if let Err(errors) = ferrolb_api::validate::bgp_peer(&peer.spec) {
            self.invalid(subject, errors);
            return None;
        }
        Some(peer)
    }

    /// A Go duration as ferrolb writes it (whole seconds), and its seconds. A text ferrolb
    /// reads as the same whole seconds is kept as written.
    fn timer(&mut self, subject: &Subject, field: &str, text: &str) -> Option<(String, u128)> {
        let Some(nanos) = duration::parse_go(text) else {
            let reason = Reason::NotADuration {
                value: text.to_owned(),
            };
            self.report(subject, field, reason);
            return None;
        };
        let (seconds, cut) = duration::whole_seconds(nanos);
        // Rounding never turns a set timer into 0s, which means "off" to ferrolb.
        let seconds = if nanos > 0 { seconds.max(1) } else { 0 };
        let kept = !cut
            && ferrolb_api::validate::parse_duration(text)
                .is_some_and(|d| u128::from(d.as_secs()) == seconds);
        if kept {
            return Some((text.to_owned(), seconds));
        }
        let written = format!("{seconds}s");
        if cut {
            let reason = Reason::DurationRounded {
                value: text.to_owned(),
                written: written.clone(),
            };
            self.report(subject, field, reason);
        }
        Some((written, seconds))
    }

    /// Where the peer's password is in ferrolb: always a Secret in the namespace ferrolb runs
    /// in.
    fn password(
        &mut self,
        input: &Input<'_>,
        password: Option<String>,
        secret_ref: Option<metallb::SecretReference>,
    ) -> Option<PasswordSecret> {
        let subject = &input.subject;
        let secret_ref = secret_ref.filter(|r| !r.name.is_empty());
        let namespace = self.options.secret_namespace.clone();
        let (name, data) = match (password, secret_ref) {
            (None, None) => return None,
            (Some(_), Some(_)) => {
                self.report(subject, "spec.password", Reason::PasswordAndSecret);
                return None;
            }
            (Some(password), None) => {
                let name = password_secret_name(&input.id.name);
                let reason = Reason::PasswordToSecret {
                    namespace: namespace.clone(),
                    name: name.clone(),
                };
                self.report(subject, "spec.password", reason);
                (name, Some(ByteString(password.into_bytes())))
            }
            (None, Some(reference)) => {
                // MetalLB reads the Secret from its own namespace, the peer's.
                let key = (input.id.namespace.clone(), reference.name.clone());
                let field = "spec.passwordSecret";
                match self.secrets_in.get(&key) {
                    Some(InputSecret {
                        password: Some(password),
                        ..
                    }) => {
                        let password = password.clone();
                        self.secrets_used.insert(key);
                        let reason = Reason::SecretCopied {
                            from_namespace: input.id.namespace.clone(),
                            name: reference.name.clone(),
                            namespace: namespace.clone(),
                        };
                        self.report(subject, field, reason);
                        (reference.name, Some(password))
                    }
                    Some(InputSecret { password: None, .. }) => {
                        self.secrets_used.insert(key);
                        let reason = Reason::SecretWithoutPassword {
                            namespace: input.id.namespace.clone(),
                            name: reference.name.clone(),
                        };
                        self.report(subject, field, reason);
                        return None;
                    }
                    None => {
                        let reason = Reason::SecretNotInInput {
                            from_namespace: input.id.namespace.clone(),
                            name: reference.name.clone(),
                            namespace: namespace.clone(),
                        };
                        self.report(subject, field, reason);
                        (reference.name, None)
                    }
                }
            }
        };
        if let Some(data) = data {
            self.add_secret(input, &namespace, &name, data);
        }
        Some(PasswordSecret {
            name,
            namespace,
            key: ferrolb_api::bgp::DEFAULT_PASSWORD_KEY.to_owned(),
        })
    }

    fn add_secret(&mut self, input: &Input<'_>, namespace: &str, name: &str, password: ByteString) {
        let secret = output::password_secret(namespace, name, password);
        let existing = self.secrets_out.iter().find_map(|c| match &c.object {
            Object::Secret(s) if s.metadata.name.as_deref() == Some(name) => Some(s),
            _ => None,
        });
        match existing {
            Some(same) if *same == secret => {}
            Some(_) => {
                let reason = Reason::SecretConflict {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                };
                self.report(&input.subject, "spec.passwordSecret", reason);
            }
            None => self.secrets_out.push(Converted {
                from: Some((input.api_version.clone(), input.id.clone())),
                object: Object::Secret(secret),
            }),
        }
    }

    fn bgp_advertisement(
        &mut self,
        input: &Input<'_>,
        aliases: &HashMap<String, Community>,
    ) -> Option<BGPAdvertisement> {
        let spec: metallb::BgpAdvertisementSpec = self.spec(input)?;
        let subject = &input.subject;
        self.unknown_fields(subject, "spec", &spec.unknown);
        let errors_before = self.error_count();

        self.too_many(
            subject,
            "spec.communities",
            spec.communities.len(),
            limits::COMMUNITIES,
        );
        let mut communities: Vec<Community> = Vec::new();
        for (i, text) in spec.communities.iter().enumerate() {
            let field = format!("spec.communities[{i}]");
            let community = match aliases.get(text) {
                Some(value) => {
                    let reason = Reason::CommunityAlias {
                        alias: text.clone(),
                        value: value.to_string(),
                    };
                    self.report(subject, field, reason);
                    *value
                }
                None => match metallb::parse_community(text) {
                    Some(value) => value,
                    None => {
                        let reason = Reason::UnknownCommunity {
                            value: text.clone(),
                        };
                        self.report(subject, field, reason);
                        continue;
                    }
                },
            };
            if !communities.contains(&community) {
                communities.push(community);
            }
        }
        self.selectors(
            subject,
            "spec.ipAddressPoolSelectors",
            &spec.ip_address_pool_selectors,
        );
        self.selectors(subject, "spec.nodeSelectors", &spec.node_selectors);

        let adv = BGPAdvertisement {
            metadata: self.meta(input),
            spec: BGPAdvertisementSpec {
                ip_address_pools: spec.ip_address_pools,
                ip_address_pool_selectors: spec.ip_address_pool_selectors,
                node_selectors: spec.node_selectors,
                peers: spec.peers,
                aggregation_length: spec.aggregation_length.unwrap_or(32),
                aggregation_length_v6: spec.aggregation_length_v6.unwrap_or(128),
                local_pref: Some(spec.local_pref).filter(|&p| p != 0),
                communities: communities.iter().map(ToString::to_string).collect(),
            },
            status: None,
        };
        if self.error_count() != errors_before {
            return None;
        }
        if let Err(errors) = ferrolb_api::validate::bgp_advertisement(&adv.spec) {
            self.invalid(subject, errors);
            return None;
        }
        Some(adv)
    }

    fn l2_advertisement(&mut self, input: &Input<'_>) -> Option<L2Advertisement> {
        let spec: metallb::L2AdvertisementSpec = self.spec(input)?;
        let subject = &input.subject;
        self.unknown_fields(subject, "spec", &spec.unknown);
        let errors_before = self.error_count();
        self.too_many(
            subject,
            "spec.interfaces",
            spec.interfaces.len(),
            limits::INTERFACES,
        );
        self.selectors(
            subject,
            "spec.ipAddressPoolSelectors",
            &spec.ip_address_pool_selectors,
        );
        self.selectors(subject, "spec.nodeSelectors", &spec.node_selectors);
        let adv = L2Advertisement {
            metadata: self.meta(input),
            spec: L2AdvertisementSpec {
                ip_address_pools: spec.ip_address_pools,
                ip_address_pool_selectors: spec.ip_address_pool_selectors,
                node_selectors: spec.node_selectors,
                interfaces: spec.interfaces,
                service_selectors: Vec::new(),
            },
            status: None,
        };
        if self.error_count() != errors_before {
            return None;
        }
        if let Err(errors) = ferrolb_api::validate::l2_advertisement(&adv.spec) {
            self.invalid(subject, errors);
            return None;
        }
        Some(adv)
    }

    fn check_pool_references(
        &mut self,
        input: &Input<'_>,
        names: &[String],
        pools: &[(&ObjectMeta, &IPAddressPoolSpec)],
    ) {
        for name in names {
            if !pools.iter().any(|(m, _)| m.name.as_ref() == Some(name)) {
                let reason = Reason::UnknownReference {
                    kind: "IPAddressPool",
                    name: name.clone(),
                };
                self.report(&input.subject, "spec.ipAddressPools", reason);
            }
        }
    }

    /// References to pools and peers, and the aggregation lengths against the selected
    /// pools (`ferrolb_api::validate::aggregation_fits_pool`, as the controller checks it).
    fn check_bgp_references(
        &mut self,
        input: &Input<'_>,
        spec: &BGPAdvertisementSpec,
        pools: &[(&ObjectMeta, &IPAddressPoolSpec)],
        peers: &BTreeSet<&str>,
    ) {
        self.check_pool_references(input, &spec.ip_address_pools, pools);
        for name in &spec.peers {
            if !peers.contains(name.as_str()) {
                let reason = Reason::UnknownReference {
                    kind: "BGPPeer",
                    name: name.clone(),
                };
                self.report(&input.subject, "spec.peers", reason);
            }
        }
        let Ok(settings) = ferrolb_api::validate::bgp_advertisement(spec) else {
            return;
        };
        let selectors: Vec<_> = spec
            .ip_address_pool_selectors
            .iter()
            .filter_map(|s| ferrolb_api::selector::Selector::new(s).ok())
            .collect();
        let every_pool = spec.ip_address_pools.is_empty() && selectors.is_empty();
        for (meta, pool) in pools {
            let name = meta.name.as_deref().unwrap_or_default();
            let empty = BTreeMap::new();
            let labels = meta.labels.as_ref().unwrap_or(&empty);
            let selected = every_pool
                || spec.ip_address_pools.iter().any(|n| n == name)
                || ferrolb_api::selector::any_matches(&selectors, labels);
            if !selected {
                continue;
            }
            let nets = pool
                .addresses
                .iter()
                .filter_map(|a| AddressEntry::parse(a).ok())
                .flat_map(|e| output::covering_cidrs(&e));
            if let Err(errors) = ferrolb_api::validate::aggregation_fits_pool(&settings, name, nets)
            {
                let subject = input.subject.clone();
                self.invalid(&subject, errors);
            }
        }
    }
}
