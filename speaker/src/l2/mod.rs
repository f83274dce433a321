//! L2 mode: the owner of an address answers ARP (IPv4) and neighbour solicitations (IPv6)
//! for it, and announces itself with gratuitous ARP / unsolicited neighbour advertisements
//! when it becomes the owner.
//!
//! - [`frame`], [`arp`], [`ndp`]: the protocol types, pure, never panicking on input;
//! - [`responder`]: the pure decision "this frame arrived, what do we send";
//! - [`interfaces`]: which interfaces an address goes on, and a live interface table;
//! - [`announcer`]: the tokio driver, one task and one AF_PACKET socket per interface;
//! - [`metrics`]: its counters.
//!
//! How the speaker core drives it (owner election in [`crate::election`], liveness from
//! [`crate::membership`]):
//!
//! ```text
//! let mut links = interfaces::watch_links()?;          // watch::Receiver<Arc<LinkTable>>
//! let metrics = L2Metrics::register(&mut registry);    // registry prefixed "ferrolb"
//! let mut l2 = L2Announcer::new(AnnouncerConfig::default(), metrics, links.borrow().clone());
//! whenever the announcements or `links` change:
//!     let table = links.borrow_and_update().clone();
//!     let owned: BTreeMap<IpAddr, Vec<InterfaceName>> = addresses this node owns
//!         (election::owner(ip, eligible live nodes) == this node)
//!         .map(|ip| (ip, table.select(ip, &advertisement_interfaces))).collect();
//!     l2.set_links(table);                             // restarts tasks whose link changed
//!     for e in l2.set_owned(&owned) { warn!(%e) }      // interfaces that could not be served
//!     l2.serving()                                     // what is answered where: ServiceL2Status
//! ```
//!
//! Both calls are synchronous and cheap when nothing changed (a diff per interface); they
//! must run inside the tokio runtime, on a thread in the node's network namespace.

pub mod announcer;
pub mod arp;
pub mod frame;
pub mod interfaces;
pub mod metrics;
pub mod ndp;
pub mod responder;

pub use announcer::{AnnouncerConfig, L2Announcer, L2Error};
pub use frame::{MacAddr, ParseError};
pub use interfaces::{InterfaceName, Link, LinkTable};
pub use metrics::L2Metrics;
