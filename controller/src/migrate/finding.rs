//! What `convert` tells the user: one [`Finding`] per object and field it could not carry over
//! unchanged, each with a typed [`Reason`] whose message says why.

use std::fmt;

use ferrolb_api::addr::AddressError;
use ferrolb_api::selector::SelectorError;
use ferrolb_api::validate::InvalidField;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Written differently, with the same effect (or the effect MetalLB had).
    Note,
    /// A setting or object is left out or behaves differently: read the message.
    Warning,
    /// The input cannot be converted as it stands; nothing is written.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The input object a finding is about, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    /// Where it was read: a file name or `<stdin>`, and the document's number in it (from 1).
    pub source: String,
    pub document: usize,
    /// `kind namespace/name` when the document got that far, else empty.
    pub object: Option<ObjectId>,
}

/// An input object's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{object}"),
            None => write!(f, "{} document {}", self.source, self.document),
        }
    }
}

/// One thing the user should know about the conversion of one object (and field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub subject: Subject,
    /// The field's path in the input object (`spec.bfdProfile`), or empty for the whole
    /// object.
    pub field: String,
    pub reason: Reason,
}

impl Finding {
    pub fn severity(&self) -> Severity {
        self.reason.severity()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity(), self.subject)?;
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Why something was not carried over as it was written. Each variant's message is what the
/// user reads on stderr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    // --- reading the input
    #[error("not YAML: {message}")]
    Yaml { message: String },
    #[error("not a Kubernetes object (it needs apiVersion, kind and metadata.name)")]
    NotAnObject,
    #[error("{api_version} {kind} is not MetalLB configuration: left out")]
    NotMetalLb { api_version: String, kind: String },
    #[error(
        "{api_version} is not a MetalLB version convert reads (metallb.io/v1beta1 and v1beta2)"
    )]
    UnsupportedVersion { api_version: String },
    #[error("left out: {why}")]
    LeftOut { why: KindLeftOut },
    #[error("cannot be read: {message}")]
    Malformed { message: String },
    #[error("unknown field, not carried over: ferrolb has no such setting")]
    UnknownField,
    #[error(
        "{kind} {name:?} is also defined in namespace {other_namespace:?}: ferrolb's \
         configuration kinds are cluster-scoped, so one name is one object (MetalLB reads only \
         the namespace it runs in: convert that namespace's objects alone)"
    )]
    NameCollision {
        kind: String,
        name: String,
        other_namespace: String,
    },
    #[error(
        "the input holds MetalLB objects from several namespaces ({namespaces}); they all \
         become cluster-wide ferrolb objects, although MetalLB reads only the namespace it runs in"
    )]
    SeveralNamespaces { namespaces: String },

    // --- IPAddressPool
    #[error("a pool needs at least one address")]
    NoAddresses,
    #[error("{0}")]
    Address(AddressError),
    #[error("{entry:?} is written as {written}, the network it means (as in MetalLB)")]
    CidrHostBits { entry: String, written: String },
    #[error(
        "priority 0 (unset) is written as {written}: MetalLB tries pools without a priority \
         after those with one, ferrolb tries the lowest number first"
    )]
    PriorityUnset { written: i32 },
    #[error(
        "negative priority {value} is kept: ferrolb tries it before every positive priority, \
         MetalLB's order for negative priorities was not defined"
    )]
    PriorityNegative { value: i64 },
    #[error(
        "priority {value} is beyond ferrolb's 32-bit priorities: written as {written}, which \
         keeps it after the smaller ones"
    )]
    PriorityTooLarge { value: i64, written: i32 },
    #[error(
        "selects no namespace and no Service, so MetalLB never assigned from this pool without \
         being asked (by pool name or address): written as autoAssign: false with no \
         serviceAllocation, which keeps that (ferrolb would otherwise offer the pool to every \
         Service)"
    )]
    AllocationSelectsNothing,
    #[error(
        "selects no namespace and no Service and the pool has autoAssign: false: dropped, it \
         had no effect"
    )]
    AllocationIgnored,

    // --- BGPPeer
    #[error("a peer needs peerAddress (ferrolb has no unnumbered BGP over an interface)")]
    MissingPeerAddress,
    #[error(
        "unnumbered BGP over interface {interface:?} is not supported: ferrolb's speaker \
         connects to an address (usually the node's BIRD at 127.0.0.1)"
    )]
    Unnumbered { interface: String },
    #[error("a peer needs peerASN (or MetalLB's dynamicASN: internal)")]
    MissingPeerAsn,
    #[error("both peerASN and dynamicASN are set (MetalLB refuses that too)")]
    PeerAsnAndDynamic,
    #[error("dynamicASN: internal is written as peerASN: {asn}, the same AS as myASN")]
    DynamicInternal { asn: u32 },
    #[error(
        "dynamicASN: {mode} cannot be converted: ferrolb needs the peer's AS number; set \
         peerASN in the input"
    )]
    DynamicAsn { mode: String },
    #[error(
        "BFD profile {profile:?} not carried over: ferrolb has no BFD; a dead session is \
         noticed when the hold time runs out"
    )]
    Bfd { profile: String },
    #[error(
        "VRF {vrf:?} not carried over: ferrolb opens sessions from the node's main routing \
         table; the peer must be reachable there"
    )]
    Vrf { vrf: String },
    #[error(
        "not carried over: ferrolb negotiates IPv4 and IPv6 on every session (MP-BGP) and \
         sends each route family the peer accepts"
    )]
    AddressFamilies,
    #[error("both password and passwordSecret are set (MetalLB refuses that too)")]
    PasswordAndSecret,
    #[error("the password moves to the generated Secret {namespace}/{name} (key password)")]
    PasswordToSecret { namespace: String, name: String },
    #[error(
        "Secret {from_namespace}/{name} is copied to {namespace}/{name}, where ferrolb's \
         speaker reads it"
    )]
    SecretCopied {
        from_namespace: String,
        name: String,
        namespace: String,
    },
    #[error(
        "Secret {from_namespace}/{name} is not in the input: the peer now refers to \
         {namespace}/{name}; copy it there (kubectl get secret -n {from_namespace} {name} -o \
         yaml, change the namespace, apply) or pass the Secret to convert with the other \
         manifests"
    )]
    SecretNotInInput {
        from_namespace: String,
        name: String,
        namespace: String,
    },
    #[error("Secret {namespace}/{name} has no key \"password\", the one MetalLB reads")]
    SecretWithoutPassword { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} would be written twice with different contents (a \
         generated password Secret and a copied one share the name)"
    )]
    SecretConflict { namespace: String, name: String },
    #[error("{value:?} is not a duration (Go's form, such as 90s, 1m30s or 500ms)")]
    NotADuration { value: String },
    #[error("{value:?} is written as {written}: ferrolb counts BGP timers in whole seconds")]
    DurationRounded { value: String, written: String },
    #[error(
        "holdTime is written as {written}, three times keepaliveTime, which is what MetalLB \
         used when only keepaliveTime was set"
    )]
    HoldFromKeepalive { written: String },

    // --- BGPAdvertisement
    #[error("community alias {alias:?} is written as its value {value}")]
    CommunityAlias { alias: String, value: String },
    #[error(
        "{value:?} is neither a community (A:B, large:A:B:C) nor an alias defined by a \
         Community object in the input"
    )]
    UnknownCommunity { value: String },
    #[error(
        "community alias {alias:?} is defined twice (also in Community {other}); MetalLB \
         refuses that too"
    )]
    DuplicateAlias { alias: String, other: String },
    #[error("community alias {alias:?} has the value {value:?}, which is not a community")]
    BadAlias { alias: String, value: String },

    // --- references between objects
    #[error(
        "names {kind} {name:?}, which is not in the input: make sure ferrolb has one of that \
         name"
    )]
    UnknownReference { kind: &'static str, name: String },

    // --- the output, checked by ferrolb_api
    #[error("{0}")]
    Invalid(InvalidField),
    #[error("{0}")]
    Selector(SelectorError),
    #[error("{count} entries, more than the {max} ferrolb accepts in one object")]
    TooMany { count: usize, max: u32 },
}

impl Reason {
    pub fn severity(&self) -> Severity {
        use Reason::*;
        match self {
            LeftOut { why } => why.severity(),
            CidrHostBits { .. }
            | PriorityUnset { .. }
            | DynamicInternal { .. }
            | PasswordToSecret { .. }
            | SecretCopied { .. }
            | DurationRounded { .. }
            | HoldFromKeepalive { .. }
            | CommunityAlias { .. }
            | NotMetalLb { .. }
            | AddressFamilies
            | AllocationIgnored => Severity::Note,
            SeveralNamespaces { .. }
            | UnknownField
            | PriorityNegative { .. }
            | PriorityTooLarge { .. }
            | AllocationSelectsNothing
            | Bfd { .. }
            | Vrf { .. }
            | SecretNotInInput { .. }
            | UnknownReference { .. } => Severity::Warning,
            Yaml { .. }
            | NotAnObject
            | UnsupportedVersion { .. }
            | Malformed { .. }
            | NameCollision { .. }
            | NoAddresses
            | Address(_)
            | MissingPeerAddress
            | Unnumbered { .. }
            | MissingPeerAsn
            | PeerAsnAndDynamic
            | DynamicAsn { .. }
            | PasswordAndSecret
            | SecretWithoutPassword { .. }
            | SecretConflict { .. }
            | NotADuration { .. }
            | UnknownCommunity { .. }
            | DuplicateAlias { .. }
            | BadAlias { .. }
            | Invalid(_)
            | Selector(_)
            | TooMany { .. } => Severity::Error,
        }
    }
}

/// MetalLB kinds (and other objects) convert reads but does not turn into ferrolb objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindLeftOut {
    /// BFDProfile: ferrolb has no BFD.
    BfdProfile,
    /// The pre-0.13 AddressPool kind.
    AddressPool,
    /// MetalLB's status kinds, written by MetalLB itself.
    Status,
    /// MetalLB kinds for features ferrolb does not have (e.g. OSPF, FRR configuration).
    NoEquivalent,
    /// A Secret no BGPPeer in the input refers to.
    UnreferencedSecret,
}

impl KindLeftOut {
    fn severity(self) -> Severity {
        match self {
            // MetalLB's own bookkeeping and Secrets nothing uses change nothing.
            KindLeftOut::Status | KindLeftOut::UnreferencedSecret => Severity::Note,
            KindLeftOut::BfdProfile | KindLeftOut::NoEquivalent => Severity::Warning,
            // Its pools would be missing: Services would lose their addresses.
            KindLeftOut::AddressPool => Severity::Error,
        }
    }
}

impl fmt::Display for KindLeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KindLeftOut::BfdProfile => "ferrolb has no BFD",
            KindLeftOut::AddressPool => {
                "MetalLB's deprecated AddressPool kind is not read: move it to IPAddressPool and \
                 L2Advertisement or BGPAdvertisement with MetalLB first"
            }
            KindLeftOut::Status => "status written by MetalLB; ferrolb writes its own",
            KindLeftOut::NoEquivalent => "ferrolb has no equivalent of this kind",
            KindLeftOut::UnreferencedSecret => "no BGPPeer in the input refers to this Secret",
        })
    }
}
