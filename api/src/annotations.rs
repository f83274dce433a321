//! Service annotations ferrolb reads and writes, with the MetalLB spellings it also honours.
//!
//! A lookup reports which spelling it found, so that the controller can emit a
//! `DeprecatedAnnotation` Event naming the ferrolb.io key when a MetalLB one was used. When
//! several spellings are present, the ferrolb.io one wins, then `metallb.io`, then
//! `metallb.universe.tf`.

use std::collections::BTreeMap;

/// The reason of the Event the controller emits when a Service uses a MetalLB spelling.
pub const DEPRECATED_ANNOTATION_REASON: &str = "DeprecatedAnnotation";

/// An annotation ferrolb understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceAnnotation {
    /// `ferrolb.io/loadBalancerIPs`: the addresses the Service asks for, comma-separated, at
    /// most one per family.
    LoadBalancerIPs,
    /// `ferrolb.io/address-pool`: the name of the pool to allocate from.
    AddressPool,
    /// `ferrolb.io/allow-shared-ip`: a sharing key; Services with the same key may share an
    /// address when their ports do not collide.
    AllowSharedIp,
    /// `ferrolb.io/ip-allocated-from-pool`: written by the controller, the pool(s) the
    /// Service's addresses came from.
    IpAllocatedFromPool,
}

/// Which spelling of an annotation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Spelling {
    /// `ferrolb.io/...`
    Ferrolb,
    /// `metallb.io/...` (MetalLB 0.14 and later).
    MetalLb,
    /// `metallb.universe.tf/...` (older MetalLB).
    MetalLbUniverse,
}

impl Spelling {
    /// All spellings, in order of precedence.
    pub const ALL: [Self; 3] = [Self::Ferrolb, Self::MetalLb, Self::MetalLbUniverse];

    /// The annotation key prefix, including the slash.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Ferrolb => "ferrolb.io/",
            Self::MetalLb => "metallb.io/",
            Self::MetalLbUniverse => "metallb.universe.tf/",
        }
    }

    /// Whether this spelling is an alias kept for migration from MetalLB.
    pub const fn is_deprecated(self) -> bool {
        !matches!(self, Self::Ferrolb)
    }
}

impl ServiceAnnotation {
    /// Every annotation.
    pub const ALL: [Self; 4] = [
        Self::LoadBalancerIPs,
        Self::AddressPool,
        Self::AllowSharedIp,
        Self::IpAllocatedFromPool,
    ];

    /// The part after the prefix, shared by all spellings.
    pub const fn name(self) -> &'static str {
        match self {
            Self::LoadBalancerIPs => "loadBalancerIPs",
            Self::AddressPool => "address-pool",
            Self::AllowSharedIp => "allow-shared-ip",
            Self::IpAllocatedFromPool => "ip-allocated-from-pool",
        }
    }

    /// The annotation key in the given spelling.
    pub const fn key(self, spelling: Spelling) -> &'static str {
        use ServiceAnnotation::*;
        use Spelling::*;
        match (self, spelling) {
            (LoadBalancerIPs, Ferrolb) => "ferrolb.io/loadBalancerIPs",
            (LoadBalancerIPs, MetalLb) => "metallb.io/loadBalancerIPs",
            (LoadBalancerIPs, MetalLbUniverse) => "metallb.universe.tf/loadBalancerIPs",
            (AddressPool, Ferrolb) => "ferrolb.io/address-pool",
            (AddressPool, MetalLb) => "metallb.io/address-pool",
            (AddressPool, MetalLbUniverse) => "metallb.universe.tf/address-pool",
            (AllowSharedIp, Ferrolb) => "ferrolb.io/allow-shared-ip",
            (AllowSharedIp, MetalLb) => "metallb.io/allow-shared-ip",
            (AllowSharedIp, MetalLbUniverse) => "metallb.universe.tf/allow-shared-ip",
            (IpAllocatedFromPool, Ferrolb) => "ferrolb.io/ip-allocated-from-pool",
            (IpAllocatedFromPool, MetalLb) => "metallb.io/ip-allocated-from-pool",
            (IpAllocatedFromPool, MetalLbUniverse) => "metallb.universe.tf/ip-allocated-from-pool",
        }
    }

    /// The ferrolb.io key, the one ferrolb writes and documents.
    pub const fn ferrolb_key(self) -> &'static str {
        self.key(Spelling::Ferrolb)
    }

    /// Looks the annotation up in an object's annotations, in order of precedence.
    pub fn lookup(self, annotations: &BTreeMap<String, String>) -> Option<Found<'_>> {
        Spelling::ALL.into_iter().find_map(|spelling| {
            annotations.get(self.key(spelling)).map(|value| Found {
                annotation: self,
                spelling,
                value: value.as_str(),
            })
        })
    }

    /// Looks the annotation up in optional annotations (as in `ObjectMeta::annotations`).
    pub fn lookup_in(self, annotations: Option<&BTreeMap<String, String>>) -> Option<Found<'_>> {
        annotations.and_then(|a| self.lookup(a))
    }
}

impl std::fmt::Display for ServiceAnnotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.ferrolb_key())
    }
}

/// An annotation found on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    /// Which annotation.
    pub annotation: ServiceAnnotation,
    /// Under which spelling it was found.
    pub spelling: Spelling,
    /// Its value, untrimmed.
    pub value: &'a str,
}

impl Found<'_> {
    /// The key that was found.
    pub fn key(&self) -> &'static str {
        self.annotation.key(self.spelling)
    }

    /// For a MetalLB spelling, the message of the `DeprecatedAnnotation` Event; `None` for
    /// the ferrolb.io key.
    pub fn deprecation_message(&self) -> Option<String> {
        self.spelling.is_deprecated().then(|| {
            format!(
                "annotation {} is honoured for migration from MetalLB; use {} instead",
                self.key(),
                self.annotation.ferrolb_key()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn keys_are_prefix_plus_name_for_every_spelling() {
        for annotation in ServiceAnnotation::ALL {
            for spelling in Spelling::ALL {
                assert_eq!(
                    annotation.key(spelling),
                    format!("{}{}", spelling.prefix(), annotation.name())
                );
            }
        }
    }

    #[test]
    fn ferrolb_spelling_wins_over_aliases() {
        let a = annotations(&[
            ("metallb.universe.tf/address-pool", "old"),
            ("metallb.io/address-pool", "newer"),
            ("ferrolb.io/address-pool", "ours"),
        ]);
        let found = ServiceAnnotation::AddressPool.lookup(&a).unwrap();
        assert_eq!(found.spelling, Spelling::Ferrolb);
        assert_eq!(found.value, "ours");
        assert_eq!(found.deprecation_message(), None);
    }

    #[test]
    fn metallb_io_wins_over_universe() {
        let a = annotations(&[
            ("metallb.universe.tf/allow-shared-ip", "old"),
            ("metallb.io/allow-shared-ip", "key"),
        ]);
        let found = ServiceAnnotation::AllowSharedIp.lookup(&a).unwrap();
        assert_eq!(found.spelling, Spelling::MetalLb);
        assert_eq!(found.key(), "metallb.io/allow-shared-ip");
    }

    #[test]
    fn alias_lookup_names_the_ferrolb_key_in_its_event_message() {
        let a = annotations(&[("metallb.universe.tf/loadBalancerIPs", "192.0.2.10")]);
        let found = ServiceAnnotation::LoadBalancerIPs.lookup(&a).unwrap();
        assert_eq!(found.spelling, Spelling::MetalLbUniverse);
        assert_eq!(found.value, "192.0.2.10");
        let message = found.deprecation_message().unwrap();
        assert!(
            message.contains("metallb.universe.tf/loadBalancerIPs"),
            "{message}"
        );
        assert!(
            message.contains("use ferrolb.io/loadBalancerIPs"),
            "{message}"
        );
    }

    #[test]
    fn absent_annotation_is_none() {
        let a = annotations(&[("example.com/other", "x")]);
        assert_eq!(ServiceAnnotation::AddressPool.lookup(&a), None);
        assert_eq!(ServiceAnnotation::AddressPool.lookup_in(None), None);
    }
}
