//! The ferrolb.io API: CRD types, annotation names, condition types and pure validation of
//! what the CRDs' CEL rules cannot check. No I/O.
//!
//! Group `ferrolb.io`, version `v1alpha1`. The configuration kinds ([`IPAddressPool`],
//! [`L2Advertisement`], [`BGPPeer`], [`BGPAdvertisement`]) are cluster-scoped; the status kinds
//! ([`ServiceL2Status`], [`ServiceBGPStatus`]) live in their Service's namespace. Field names
//! follow MetalLB's `metallb.io/v1beta1` so that migrating is mechanical.
//!
//! Addresses are kept as strings in the types (a CRD schema needs a typed `string`, not the
//! type-less `oneOf` schemars emits for `IpNet`); [`addr`] parses them and [`validate`] checks
//! the other fields, so the controller, the speaker and `convert` accept exactly the same input.

pub mod addr;
pub mod annotations;
pub mod bgp;
pub mod conditions;
pub mod l2;
pub mod pool;
pub mod rules;
pub mod selector;
pub mod service_status;
pub mod validate;

pub use bgp::{BGPAdvertisement, BGPAdvertisementSpec, BGPPeer, BGPPeerSpec, PasswordSecret};
pub use conditions::ConfigStatus;
pub use l2::{L2Advertisement, L2AdvertisementSpec};
pub use pool::{IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, ServiceAllocation};
pub use service_status::{
    BgpAnnouncement, InterfaceInfo, L2Announcement, ServiceBGPStatus, ServiceBGPStatusSpec,
    ServiceL2Status, ServiceL2StatusSpec,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every ferrolb kind.
pub const GROUP: &str = "ferrolb.io";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The `kubectl get <category>` name that lists every ferrolb kind.
pub const CATEGORY: &str = "ferrolb";

/// Every CustomResourceDefinition of the API, in a fixed order (configuration kinds first).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        IPAddressPool::crd(),
        L2Advertisement::crd(),
        BGPPeer::crd(),
        BGPAdvertisement::crd(),
        ServiceL2Status::crd(),
        ServiceBGPStatus::crd(),
    ]
}
