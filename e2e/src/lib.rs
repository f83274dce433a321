//! The lab: a real Kubernetes control plane and a routed network of namespaces on one machine,
//! with ferrolb running in it; and the harness the end-to-end tests drive it with.
//!
//! The `lab` binary (src/bin/lab.rs) is the command line; `Lab` (harness) is the tests' API.
//! See design.md, "The lab", and `topology` for the network.

pub mod agent;
pub mod apiproxy;
pub mod benchjson;
pub mod chart;
pub mod cmd;
pub mod controlplane;
pub mod demo;
pub mod error;
pub mod harness;
pub mod lab;
pub mod net;
pub mod nodepeer;
pub mod pki;
pub mod procs;
pub mod routing;
pub mod state;
pub mod topology;
pub mod wait;

pub use error::{LabError, Result};
pub use harness::{Exclusive, Guard, Lab, LabConfig, Shared, TestNamespace, lb_service, pod_ready};
pub use lab::Target;
pub use routing::{Family, Neighbour, Route, Session};
pub use topology::{NodeId, RouterKind, Topology};
pub use wait::{holds, poll};
