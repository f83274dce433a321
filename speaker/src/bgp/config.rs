//! Configuration of one BGP session.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Identifies a peer: the address and port dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey {
    pub address: IpAddr,
    pub port: u16,
}

impl PeerKey {
    pub fn new(address: IpAddr, port: u16) -> Self {
        Self { address, port }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.socket_addr().fmt(f)
    }
}

/// A TCP MD5 key (RFC 2385). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Everything needed to run a session with one peer. Changing any field of a running
/// peer restarts its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub peer: PeerKey,
    pub local_as: u32,
    pub peer_as: u32,
    pub router_id: Ipv4Addr,
    /// Hold time offered in OPEN; the session uses the smaller of both sides'. Zero
    /// disables keepalives and the hold timer.
    pub hold_time: Duration,
    /// Interval between KEEPALIVEs; at most a third of the negotiated hold time.
    /// `None`: a third of it.
    pub keepalive_time: Option<Duration>,
    /// Delay before the first reconnection after a failure; doubles with every further
    /// failure up to `connect_retry_max`, each time shortened by up to a quarter at random
    /// so that many speakers do not reconnect in step.
    pub connect_retry: Duration,
    pub connect_retry_max: Duration,
    /// How long one TCP connect may take.
    pub connect_timeout: Duration,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<Password>,
    /// Graceful restart (RFC 4724): how long the peer should keep our routes after the
    /// session is lost. `None` disables it.
    pub graceful_restart: Option<Duration>,
    /// Local address to dial from.
    pub source_address: Option<IpAddr>,
    /// TTL of outgoing packets for eBGP beyond the directly connected network. `None`:
    /// 1 for eBGP (directly connected), the system default for iBGP.
    pub ebgp_multihop: Option<u8>,
}

impl PeerConfig {
    /// A configuration with the usual timers: hold 90 s, retry after 5 s up to 2 min,
    /// connect timeout 10 s, graceful restart off.
    pub fn new(peer: PeerKey, local_as: u32, peer_as: u32, router_id: Ipv4Addr) -> Self {
        Self {
            peer,
            local_as,
            peer_as,
            router_id,
            hold_time: Duration::from_secs(90),
            keepalive_time: None,
            connect_retry: Duration::from_secs(5),
            connect_retry_max: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            password: None,
            graceful_restart: None,
            source_address: None,
            ebgp_multihop: None,
        }
    }

    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.peer_as
    }

    /// The TTL to send with, `None` for the system default.
    pub fn ttl(&self) -> Option<u32> {
        match (self.is_ebgp(), self.ebgp_multihop) {
            (_, Some(hops)) => Some(u32::from(hops)),
            (true, None) => Some(1),
            (false, None) => None,
        }
    }

    /// Hold time in whole seconds as sent in OPEN (values of 1 and 2 s are raised to 3,
    /// the smallest RFC 4271 allows).
    pub fn hold_time_secs(&self) -> u16 {
        match self.hold_time.as_secs().min(u64::from(u16::MAX)) as u16 {
            0 => 0,
            s => s.max(3),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ttl_follows_session_type_and_multihop() {
        let peer = PeerKey::new("192.0.2.1".parse().unwrap(), 179);
        let mut c = PeerConfig::new(peer, 65001, 65000, "192.0.2.2".parse().unwrap());
        assert_eq!(c.ttl(), Some(1));
        c.ebgp_multihop = Some(2);
        assert_eq!(c.ttl(), Some(2));
        c.peer_as = 65001;
        c.ebgp_multihop = None;
        assert_eq!(c.ttl(), None);
    }

    #[test]
    fn hold_time_is_zero_or_at_least_three() {
        let peer = PeerKey::new("192.0.2.1".parse().unwrap(), 179);
        let mut c = PeerConfig::new(peer, 65001, 65000, "192.0.2.2".parse().unwrap());
        for (secs, want) in [(0, 0), (1, 3), (2, 3), (90, 90), (1_000_000, u16::MAX)] {
            c.hold_time = Duration::from_secs(secs);
            assert_eq!(c.hold_time_secs(), want);
        }
    }

    #[test]
    fn password_is_never_printed() {
        let p = Password::new("hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
