//! The BGP finite state machine (RFC 4271 §8) of one session, without I/O.
//!
//! [`Fsm::handle`] takes an [`Event`] and returns [`Action`]s for the driver to carry
//! out: dial, send, close, start or stop a timer. Every transition is one arm of a
//! `(state, event)` match. ferrolb only dials out (it never listens on port 179), so
//! there are no connection collisions and Active means "waiting to dial again".
//!
//! The machine also owns the routes: the desired set given by the speaker and what the
//! peer was sent (Adj-RIB-Out). On reaching Established it sends the whole desired set
//! and an End-of-RIB per family; afterwards only differences.
//!
//! Failures back off: the n-th failure in a row waits `connect_retry * 2^(n-1)`, capped
//! at `connect_retry_max`, times a jitter factor in [0.75, 1]. A session counts as
//! healthy, resetting the count, once the peer sends a KEEPALIVE or UPDATE after
//! Established — not merely on reaching it, so that a peer that accepts the session and
//! then kills it every time still backs off.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use super::config::PeerConfig;
use super::pack::{self, PackContext};
use super::route::{self, RouteSet};
use super::wire::{
    AS_TRANS, AfiSafi, Capability, CeaseSubcode, DecodeError, ErrorCode, ErrorHandling, Family,
    FsmSubcode, GracefulRestartCap, GracefulRestartFamily, Keepalive, Message, MessageType,
    Notification, Open, OpenSubcode, Update, WireContext,
};

/// Session states (RFC 4271 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The timers the driver runs for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// In Connect: the TCP connect timeout. In Active: the wait before dialling again.
    ConnectRetry,
    Hold,
    Keepalive,
    /// In Idle after a failure: the backoff before starting again.
    IdleHold,
}

impl Timer {
    pub const ALL: [Timer; 4] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::IdleHold,
    ];
}

/// Hold time while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
pub const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);

/// How a session is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Send a Cease NOTIFICATION: the peer withdraws our routes at once.
    Notify(CeaseSubcode),
    /// Close the connection without NOTIFICATION. With graceful restart negotiated the
    /// peer keeps our routes for the restart time.
    Silent,
    /// The session will be back (this speaker restarts, or the session does with a new
    /// configuration): `Silent` when graceful restart was negotiated, so the peer keeps our
    /// routes until the new session has re-sent them; otherwise a Cease with this subcode —
    /// the peer drops our routes either way, and so learns why instead of seeing a bare
    /// connection close.
    Restart(CeaseSubcode),
}

/// Inputs to the machine (RFC 4271 §8.1 names in brackets).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// [ManualStart]
    Start,
    /// [ManualStop]
    Stop(StopMode),
    /// [ConnectRetryTimer_Expires]
    ConnectRetryTimerExpires,
    /// [HoldTimer_Expires]
    HoldTimerExpires,
    /// [KeepaliveTimer_Expires]
    KeepaliveTimerExpires,
    /// [IdleHoldTimer_Expires]
    IdleHoldTimerExpires,
    /// [TcpConnectionConfirmed]: our connect completed.
    TcpConnected,
    /// [TcpConnectionFails]: the connect failed or the connection broke.
    TcpFailed(SessionError),
    /// A whole, valid message [BGPOpen, KeepAliveMsg, UpdateMsg, NotifMsg, ...].
    Message(Message),
    /// A message that could not be decoded [BGPHeaderErr, BGPOpenMsgErr, UpdateMsgErr].
    MessageError(DecodeError),
    /// The speaker wants a different set of routes announced.
    SetRoutes(Arc<RouteSet>),
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    Send(Message),
    /// Close the connection (after sending what is queued), or abandon a connect.
    Close,
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    /// The session reached Established.
    Established,
    /// The session (or an attempt at one) failed; the machine waits and tries again.
    Down(SessionError),
    /// A received error that RFC 7606 lets the session survive.
    Ignored(DecodeError),
}

/// Why a session went down. Every variant names what failed; the reason label for
/// metrics is [`SessionError::reason`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("tcp connect failed: {message}")]
    ConnectFailed { message: String },
    #[error("tcp connect timed out")]
    ConnectTimeout,
    #[error("connection closed by the peer without NOTIFICATION")]
    ConnectionClosed,
    #[error("connection failed: {message}")]
    ConnectionError { message: String },
    #[error("hold timer expired: nothing received for {hold_time} s")]
    HoldTimerExpired { hold_time: u64 },
    #[error("peer sent NOTIFICATION: {0}")]
    PeerNotification(Notification),
    #[error("peer AS {received} is not the configured {expected}")]
    BadPeerAs { expected: u32, received: u32 },
    #[error("peer proposed hold time {hold_time} s, below the minimum of 3 s")]
    UnacceptableHoldTime { hold_time: u16 },
    #[error("peer BGP identifier {id} is invalid (zero, or ours on an iBGP session)")]
    BadBgpIdentifier { id: Ipv4Addr },
    #[error("peer supports neither IPv4 nor IPv6 unicast")]
    NoCommonFamily,
    #[error("malformed message from peer ({error}); sent NOTIFICATION: {}", error.notification())]
    Malformed { error: DecodeError },
    #[error("unexpected {message:?} message in state {state}")]
    UnexpectedMessage { state: State, message: MessageType },
    #[error("stopped locally")]
    Stopped,
}

/// Label values for `ferrolb_bgp_session_resets_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResetReason {
    ConnectFailed,
    ConnectionClosed,
    HoldTimerExpired,
    NotificationReceived,
    OpenRejected,
    MalformedMessage,
    UnexpectedMessage,
    Stopped,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::ConnectFailed => "connect_failed",
            ResetReason::ConnectionClosed => "connection_closed",
            ResetReason::HoldTimerExpired => "hold_timer_expired",
            ResetReason::NotificationReceived => "notification_received",
            ResetReason::OpenRejected => "open_rejected",
            ResetReason::MalformedMessage => "malformed_message",
            ResetReason::UnexpectedMessage => "unexpected_message",
            ResetReason::Stopped => "stopped",
        }
    }
}

impl SessionError {
    /// Whether the error is the TCP connection's (connect failed, closed, broken) rather
    /// than something either side said or failed to say in BGP.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            SessionError::ConnectFailed { .. }
                | SessionError::ConnectTimeout
                | SessionError::ConnectionClosed
                | SessionError::ConnectionError { .. }
        )
    }

    pub fn reason(&self) -> ResetReason {
        use SessionError::*;
        match self {
            ConnectFailed { .. } | ConnectTimeout => ResetReason::ConnectFailed,
            ConnectionClosed | ConnectionError { .. } => ResetReason::ConnectionClosed,
            HoldTimerExpired { .. } => ResetReason::HoldTimerExpired,
            PeerNotification(_) => ResetReason::NotificationReceived,
            BadPeerAs { .. }
            | UnacceptableHoldTime { .. }
            | BadBgpIdentifier { .. }
            | NoCommonFamily => ResetReason::OpenRejected,
            Malformed { .. } => ResetReason::MalformedMessage,
            UnexpectedMessage { .. } => ResetReason::UnexpectedMessage,
            Stopped => ResetReason::Stopped,
        }
    }
}

/// Randomness for backoff, injected so that tests are deterministic.
pub trait Jitter: Send + fmt::Debug {
    /// A factor in [0.75, 1.0].
    fn factor(&mut self) -> f64;
}

/// A small seeded generator (SplitMix64); plenty for spreading reconnects.
#[derive(Debug, Clone)]
pub struct SeededJitter(u64);

impl SeededJitter {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Jitter for SeededJitter {
    fn factor(&mut self) -> f64 {
        0.75 + 0.25 * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// No randomness: always the full delay.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJitter;

impl Jitter for NoJitter {
    fn factor(&mut self) -> f64 {
        1.0
    }
}

/// What both sides agreed in their OPENs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_id: Ipv4Addr,
    pub peer_as: u32,
    /// Seconds; zero means no hold timer and no keepalives.
    pub hold_time: u16,
    pub keepalive: Duration,
    pub families: BTreeSet<Family>,
    pub four_octet_as: bool,
    pub route_refresh: bool,
    /// The peer's graceful restart capability, if it sent one (it then keeps our routes
    /// across a restart of ours when we also advertised it).
    pub peer_graceful_restart: Option<GracefulRestartCap>,
}

impl Negotiated {
    pub fn wire(&self) -> WireContext {
        WireContext {
            four_octet_as: self.four_octet_as,
        }
    }
}

/// One session's state machine.
#[derive(Debug)]
pub struct Fsm {
    config: Arc<PeerConfig>,
    state: State,
    negotiated: Option<Negotiated>,
    desired: Arc<RouteSet>,
    /// What the peer was sent in this session (Adj-RIB-Out).
    sent: RouteSet,
    failures: u32,
    /// True until the first session reaches Established: the R bit of graceful restart
    /// ("this speaker has restarted"), since every process start is a restart to the peer.
    restarting: bool,
    last_error: Option<SessionError>,
    /// The last error of the BGP exchange itself, kept while later attempts fail at the TCP
    /// level only (see [`Fsm::last_protocol_error`]).
    last_protocol_error: Option<SessionError>,
    jitter: Box<dyn Jitter>,
}

impl Fsm {
    pub fn new(config: Arc<PeerConfig>, jitter: Box<dyn Jitter>) -> Self {
        Self {
            config,
            state: State::Idle,
            negotiated: None,
            desired: Arc::new(RouteSet::new()),
            sent: RouteSet::new(),
            failures: 0,
            restarting: true,
            last_error: None,
            last_protocol_error: None,
            jitter,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Encoding context for messages to send now.
    pub fn wire(&self) -> WireContext {
        self.negotiated
            .as_ref()
            .map(Negotiated::wire)
            .unwrap_or_default()
    }

    /// Routes the peer currently has from us.
    pub fn announced(&self) -> &RouteSet {
        &self.sent
    }

    pub fn last_error(&self) -> Option<&SessionError> {
        self.last_error.as_ref()
    }

    /// The last error in the BGP exchange itself (OPEN refused either way, NOTIFICATION,
    /// malformed message, hold timer), kept until the peer's OPEN is accepted again. A peer
    /// that refused our OPEN often refuses the next connections outright (BIRD waits out
    /// its error delay), so the latest error alone would hide the cause behind "connection
    /// closed".
    pub fn last_protocol_error(&self) -> Option<&SessionError> {
        self.last_protocol_error.as_ref()
    }

    /// Whether both sides announced graceful restart in this session.
    fn graceful_restart_negotiated(&self) -> bool {
        self.config.graceful_restart.is_some()
            && self
                .negotiated
                .as_ref()
                .is_some_and(|n| n.peer_graceful_restart.is_some())
    }

    /// Failures since the session was last healthy.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Feeds one event; returns what to do.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        use Event as E;
        use State as S;
        let mut out = Vec::new();
        let state = self.state;
        match (state, event) {
            // Routes are kept in every state; only Established sends them.
            (S::Established, E::SetRoutes(routes)) => {
                self.desired = routes;
                self.sync(&mut out);
            }
            (_, E::SetRoutes(routes)) => self.desired = routes,

            (S::Idle, E::Start | E::IdleHoldTimerExpires) => self.dial(&mut out),
            (S::Idle, E::Stop(_)) => out.push(Action::StopTimer(Timer::IdleHold)),
            (S::Idle, _) => {}

            (S::Connect, E::TcpConnected) => {
                out.push(Action::StopTimer(Timer::ConnectRetry));
                out.push(Action::Send(Message::Open(self.open())));
                out.push(Action::StartTimer(Timer::Hold, LARGE_HOLD_TIME));
                self.state = S::OpenSent;
            }
            (S::Connect, E::TcpFailed(error)) => self.connect_failed(error, &mut out),
            (S::Connect, E::ConnectRetryTimerExpires) => {
                self.connect_failed(SessionError::ConnectTimeout, &mut out)
            }
            (S::Connect | S::Active, E::Stop(_)) => {
                out.push(Action::StopTimer(Timer::ConnectRetry));
                out.push(Action::Close);
                self.state = S::Idle;
            }
            (S::Connect, _) => {}

            (S::Active, E::ConnectRetryTimerExpires) => self.dial(&mut out),
            (S::Active, _) => {}

            (S::OpenSent, E::Message(Message::Open(open))) => match self.check_open(&open) {
                Ok(negotiated) => {
                    self.last_protocol_error = None;
                    out.push(Action::Send(Message::Keepalive(Keepalive)));
                    self.start_session_timers(&negotiated, &mut out);
                    self.negotiated = Some(negotiated);
                    self.state = S::OpenConfirm;
                }
                Err((error, notification)) => self.fail(error, Some(notification), &mut out),
            },
            (S::OpenConfirm, E::Message(Message::Keepalive(_))) => {
                self.restart_hold_timer(&mut out);
                self.state = S::Established;
                self.restarting = false;
                out.push(Action::Established);
                self.sync(&mut out);
                self.send_end_of_rib(&mut out);
            }
            (S::Established, E::Message(Message::Keepalive(_) | Message::Update(_))) => {
                self.failures = 0;
                self.restart_hold_timer(&mut out);
            }
            (S::Established, E::Message(Message::RouteRefresh(rr))) => {
                self.restart_hold_timer(&mut out);
                self.refresh(rr.afi_safi, &mut out);
            }
            (S::Established, E::MessageError(e)) if e.handling() != ErrorHandling::SessionReset => {
                self.restart_hold_timer(&mut out);
                out.push(Action::Ignored(e));
            }

            (
                S::OpenSent | S::OpenConfirm | S::Established,
                E::Message(Message::Notification(n)),
            ) => self.fail(SessionError::PeerNotification(n), None, &mut out),
            (S::OpenSent | S::OpenConfirm | S::Established, E::Message(m)) => {
                let subcode = match state {
                    S::OpenSent => FsmSubcode::UnexpectedMessageInOpenSent,
                    S::OpenConfirm => FsmSubcode::UnexpectedMessageInOpenConfirm,
                    _ => FsmSubcode::UnexpectedMessageInEstablished,
                };
                let error = SessionError::UnexpectedMessage {
                    state,
                    message: m.message_type(),
                };
                let n = Notification::new(ErrorCode::FiniteStateMachine(subcode));
                self.fail(error, Some(n), &mut out);
            }
            (S::OpenSent | S::OpenConfirm | S::Established, E::MessageError(error)) => {
                let n = error.notification();
                self.fail(SessionError::Malformed { error }, Some(n), &mut out)
            }
            (S::OpenSent | S::OpenConfirm | S::Established, E::HoldTimerExpires) => {
                let hold_time = match state {
                    S::OpenSent => LARGE_HOLD_TIME.as_secs(),
                    _ => self
                        .negotiated
                        .as_ref()
                        .map_or(0, |n| u64::from(n.hold_time)),
                };
                let n = Notification::new(ErrorCode::HoldTimerExpired);
                self.fail(
                    SessionError::HoldTimerExpired { hold_time },
                    Some(n),
                    &mut out,
                )
            }
            (S::OpenConfirm | S::Established, E::KeepaliveTimerExpires) => {
                out.push(Action::Send(Message::Keepalive(Keepalive)));
                if let Some(n) = &self.negotiated {
                    out.push(Action::StartTimer(Timer::Keepalive, n.keepalive));
                }
            }
            (S::OpenSent | S::OpenConfirm | S::Established, E::TcpFailed(error)) => {
                self.fail(error, None, &mut out)
            }
            (S::OpenSent | S::OpenConfirm | S::Established, E::Stop(mode)) => {
                let cease = match mode {
                    StopMode::Notify(subcode) => Some(subcode),
                    StopMode::Silent => None,
                    StopMode::Restart(_) if self.graceful_restart_negotiated() => None,
                    StopMode::Restart(subcode) => Some(subcode),
                };
                if let Some(subcode) = cease {
                    out.push(Action::Send(Message::Notification(Notification::new(
                        ErrorCode::Cease(subcode),
                    ))));
                }
                self.stop_session_timers(&mut out);
                out.push(Action::Close);
                self.sent = RouteSet::new();
                self.negotiated = None;
                self.state = S::Idle;
            }
            (S::OpenSent | S::OpenConfirm | S::Established, _) => {}
        }
        out
    }

    fn dial(&mut self, out: &mut Vec<Action>) {
        out.push(Action::Connect);
        out.push(Action::StartTimer(
            Timer::ConnectRetry,
            self.config.connect_timeout,
        ));
        self.state = State::Connect;
    }

    fn backoff(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let base = self.config.connect_retry;
        let doubled = base.saturating_mul(1u32 << (self.failures - 1).min(20));
        let capped = doubled.min(self.config.connect_retry_max.max(base));
        capped.mul_f64(self.jitter.factor().clamp(0.0, 1.0))
    }

    fn connect_failed(&mut self, error: SessionError, out: &mut Vec<Action>) {
        out.push(Action::Close);
        let delay = self.backoff();
        out.push(Action::StartTimer(Timer::ConnectRetry, delay));
        out.push(Action::Down(error.clone()));
        self.last_error = Some(error);
        self.state = State::Active;
    }

    /// Drops the session: NOTIFICATION if any, close, wait out the backoff in Idle.
    fn fail(&mut self, error: SessionError, notify: Option<Notification>, out: &mut Vec<Action>) {
        if let Some(n) = notify {
            out.push(Action::Send(Message::Notification(n)));
        }
        self.stop_session_timers(out);
        out.push(Action::Close);
        let delay = self.backoff();
        out.push(Action::StartTimer(Timer::IdleHold, delay));
        out.push(Action::Down(error.clone()));
        if !error.is_transport() {
            self.last_protocol_error = Some(error.clone());
        }
        self.last_error = Some(error);
        self.sent = RouteSet::new();
        self.negotiated = None;
        self.state = State::Idle;
    }

    fn stop_session_timers(&self, out: &mut Vec<Action>) {
        out.push(Action::StopTimer(Timer::Hold));
        out.push(Action::StopTimer(Timer::Keepalive));
    }

    fn start_session_timers(&self, n: &Negotiated, out: &mut Vec<Action>) {
        if n.hold_time == 0 {
            self.stop_session_timers(out);
        } else {
            out.push(Action::StartTimer(
                Timer::Hold,
                Duration::from_secs(u64::from(n.hold_time)),
            ));
            out.push(Action::StartTimer(Timer::Keepalive, n.keepalive));
        }
    }

    fn restart_hold_timer(&self, out: &mut Vec<Action>) {
        if let Some(n) = &self.negotiated
            && n.hold_time != 0
        {
            out.push(Action::StartTimer(
                Timer::Hold,
                Duration::from_secs(u64::from(n.hold_time)),
            ));
        }
    }

    /// Our OPEN.
    pub fn open(&self) -> Open {
        let c = &self.config;
        let mut capabilities = vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
        ];
        if let Some(restart_time) = c.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestartCap {
                restart_state: self.restarting,
                notification: false,
                restart_time: restart_time.as_secs().min(0x0fff) as u16,
                // Forwarding is the kernel's (kube-proxy's) and survives a speaker
                // restart, so the forwarding state is always preserved.
                families: [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
                    .into_iter()
                    .map(|afi_safi| GracefulRestartFamily {
                        afi_safi,
                        forwarding_preserved: true,
                    })
                    .collect(),
            }));
        }
        capabilities.push(Capability::FourOctetAs(c.local_as));
        Open {
            my_as: u16::try_from(c.local_as).unwrap_or(AS_TRANS),
            hold_time: c.hold_time_secs(),
            bgp_id: c.router_id,
            capabilities,
        }
    }

    fn check_open(&self, open: &Open) -> Result<Negotiated, (SessionError, Notification)> {
        let c = &self.config;
        let reject = |error: SessionError, subcode: OpenSubcode| {
            (error, Notification::new(ErrorCode::Open(subcode)))
        };
        if open.asn() != c.peer_as {
            return Err(reject(
                SessionError::BadPeerAs {
                    expected: c.peer_as,
                    received: open.asn(),
                },
                OpenSubcode::BadPeerAs,
            ));
        }
        if matches!(open.hold_time, 1 | 2) {
            return Err(reject(
                SessionError::UnacceptableHoldTime {
                    hold_time: open.hold_time,
                },
                OpenSubcode::UnacceptableHoldTime,
            ));
        }
        if open.bgp_id.is_unspecified() || (!c.is_ebgp() && open.bgp_id == c.router_id) {
            return Err(reject(
                SessionError::BadBgpIdentifier { id: open.bgp_id },
                OpenSubcode::BadBgpIdentifier,
            ));
        }
        let families: BTreeSet<Family> = Family::ALL
            .into_iter()
            .filter(|f| open.supports_family(*f))
            .collect();
        if families.is_empty() {
            return Err(reject(
                SessionError::NoCommonFamily,
                OpenSubcode::UnsupportedCapability,
            ));
        }
        let hold_time = c.hold_time_secs().min(open.hold_time);
        let third = Duration::from_secs(u64::from(hold_time / 3).max(1));
        let keepalive = c.keepalive_time.map_or(third, |k| k.min(third));
        Ok(Negotiated {
            peer_id: open.bgp_id,
            peer_as: open.asn(),
            hold_time,
            keepalive: keepalive.max(Duration::from_secs(1)),
            families,
            four_octet_as: open.supports_four_octet_as(),
            route_refresh: open.supports_route_refresh(),
            peer_graceful_restart: open.graceful_restart().cloned(),
        })
    }

    fn pack_context(&self, n: &Negotiated) -> PackContext {
        PackContext {
            local_as: self.config.local_as,
            ebgp: self.config.is_ebgp(),
            wire: n.wire(),
        }
    }

    /// Sends what differs between the peer's routes and the desired ones.
    fn sync(&mut self, out: &mut Vec<Action>) {
        let Some(n) = &self.negotiated else {
            return;
        };
        let diff = route::diff(&self.sent, &self.desired, &n.families);
        if diff.is_empty() {
            return;
        }
        let ctx = self.pack_context(n);
        for u in pack::withdrawals(diff.withdraw.iter()) {
            out.push(Action::Send(Message::Update(u)));
        }
        for u in pack::announcements(diff.announce.iter().map(|(p, a)| (p, a)), &ctx) {
            out.push(Action::Send(Message::Update(u)));
        }
        for p in &diff.withdraw {
            self.sent.remove(p);
        }
        for (p, a) in diff.announce {
            self.sent.insert_unchecked(p, a);
        }
    }

    fn send_end_of_rib(&self, out: &mut Vec<Action>) {
        if let Some(n) = &self.negotiated {
            for f in &n.families {
                out.push(Action::Send(Message::Update(Update::end_of_rib(*f))));
            }
        }
    }

    /// Answers a ROUTE-REFRESH by sending that family's routes again.
    fn refresh(&mut self, afi_safi: AfiSafi, out: &mut Vec<Action>) {
        let Some(n) = &self.negotiated else {
            return;
        };
        let Some(family) = afi_safi.family().filter(|f| n.families.contains(f)) else {
            return;
        };
        let ctx = self.pack_context(n);
        for u in pack::announcements(self.sent.family(family), &ctx) {
            out.push(Action::Send(Message::Update(u)));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
