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
//! How the speaker core drives it (owner election in [`crate::election`]):
//!
//! ```text
//! let links = interfaces::watch_links()?;              // live LinkTable
//! let mut l2 = L2Announcer::new(config, L2Metrics::register(&mut registry), links.borrow().clone());
//! on every change of (announcements, links):
//!     owned = { ip → links.select(ip, &advertisement.interfaces) : ip this node owns }
//!     l2.set_links(links.borrow().clone()); l2.set_owned(&owned);
//! ```

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
