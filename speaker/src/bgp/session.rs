//! The task running one BGP session: feeds the state machine with socket data, timer
//! expiries and route changes, and carries out its actions.
//!
//! ```text
//!  BgpSpeaker ── routes (watch) ──┐
//!             ── stop (mpsc) ─────┤
//!                                 ▼
//!   TCP read half ──bytes──► session task ──► Fsm::handle ──► actions
//!   timers (deadlines) ─────►     │                              │
//!                                 │◄─────────────────────────────┘
//!                                 ├── encoded messages ──► writer task ──► TCP write half
//!                                 └── status (watch) / metrics
//! ```
//!
//! The writer is its own task so that a peer that stops reading cannot stall timers or
//! route changes; the hold timer catches such a peer.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::config::{PeerConfig, PeerKey};
use super::fsm::{Action, Event, Fsm, Jitter, Negotiated, SessionError, State, StopMode, Timer};
use super::metrics::PeerMetrics;
use super::route::RouteSet;
use super::wire::{Message, WireContext, frame_length};

/// What a session reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub state: State,
    /// When the session last reached Established, while it is.
    pub established_since: Option<SystemTime>,
    pub last_error: Option<SessionError>,
    /// The last error of the BGP exchange itself (see [`super::fsm::Fsm::last_protocol_error`]):
    /// when later attempts fail only at the TCP level, usually their cause.
    pub last_protocol_error: Option<SessionError>,
    /// Prefixes the peer has from us now.
    pub announced_prefixes: usize,
    pub negotiated: Option<Negotiated>,
    /// Failed sessions and connection attempts since the peer was configured.
    pub resets: u64,
    pub updates_sent: u64,
    /// Identifies the session task writing this entry (a restarted session gets a new
    /// one, so a stopping task never overwrites its successor's status).
    pub(crate) session_id: u64,
}

impl PeerStatus {
    pub(crate) fn new(session_id: u64) -> Self {
        Self {
            state: State::Idle,
            established_since: None,
            last_error: None,
            last_protocol_error: None,
            announced_prefixes: 0,
            negotiated: None,
            resets: 0,
            updates_sent: 0,
            session_id,
        }
    }

    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    pub fn uptime(&self) -> Option<Duration> {
        self.established_since
            .and_then(|t| SystemTime::now().duration_since(t).ok())
    }
}

pub(crate) type StatusMap = BTreeMap<PeerKey, PeerStatus>;

/// Commands from the speaker.
#[derive(Debug)]
pub(crate) enum Control {
    Stop(StopMode),
}

/// What a session task needs.
#[derive(Debug)]
pub(crate) struct SessionArgs {
    pub config: Arc<PeerConfig>,
    pub routes: watch::Receiver<Arc<RouteSet>>,
    pub control: mpsc::Receiver<Control>,
    pub status: watch::Sender<StatusMap>,
    pub session_id: u64,
    pub metrics: Option<PeerMetrics>,
    pub jitter: Box<dyn Jitter>,
    /// The session this one replaces, done once its connection is closed: dialling
    /// before then could look like a restart to the peer.
    pub after: Option<futures::future::Shared<futures::future::BoxFuture<'static, ()>>>,
}

/// How long a new session waits for the old connection to close before dialling anyway.
const REPLACED_CLOSE_WAIT: Duration = Duration::from_secs(5);

type Connecting = Pin<Box<dyn Future<Output = Result<TcpStream, SessionError>> + Send>>;

/// An open connection: the read half and buffer here, the write half in its own task.
struct Connection {
    reader: OwnedReadHalf,
    buf: Vec<u8>,
    /// Set after a header error: the stream cannot be resynchronised.
    broken: bool,
    writer: mpsc::UnboundedSender<Vec<u8>>,
    writer_task: tokio::task::JoinHandle<()>,
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            reader,
            buf: Vec::with_capacity(8192),
            broken: false,
            writer: tx,
            writer_task: tokio::spawn(write_loop(writer, rx)),
        }
    }

    /// The next whole message already read, if any.
    fn next_buffered(&mut self, wire: WireContext) -> Option<Event> {
        if self.broken {
            return None;
        }
        match frame_length(&self.buf) {
            Ok(None) => None,
            Ok(Some(n)) => {
                let event = match Message::decode(&self.buf[..n], wire) {
                    Ok(m) => Event::Message(m),
                    Err(e) => Event::MessageError(e),
                };
                self.buf.drain(..n);
                Some(event)
            }
            Err(e) => {
                self.broken = true;
                Some(Event::MessageError(e))
            }
        }
    }

    /// Reads more bytes; an event only when the connection ends.
    async fn read(&mut self) -> Option<Event> {
        if self.broken {
            return std::future::pending::<Option<Event>>().await;
        }
        match self.reader.read_buf(&mut self.buf).await {
            Ok(0) => Some(Event::TcpFailed(SessionError::ConnectionClosed)),
            Ok(_) => None,
            Err(e) => Some(Event::TcpFailed(SessionError::ConnectionError {
                message: e.to_string(),
            })),
        }
    }

    /// Closes gracefully: the writer sends what is queued, then FIN; the read half is
    /// drained until the peer closes too (closing with unread data would reset the
    /// connection and could lose a NOTIFICATION still in the send buffer). The returned
    /// task ends when that is done.
    fn close(self) -> tokio::task::JoinHandle<()> {
        let Connection {
            mut reader,
            writer,
            writer_task,
            ..
        } = self;
        drop(writer);
        tokio::spawn(async move {
            let _ = writer_task.await;
            let mut sink = [0u8; 4096];
            let drain = async {
                while let Ok(n) = reader.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
        })
    }
}

async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Opens the TCP connection: MD5 key, TTL and source address are set before connect.
async fn dial(config: Arc<PeerConfig>) -> Result<TcpStream, SessionError> {
    let fail = |what: &str, e: io::Error| SessionError::ConnectFailed {
        message: format!("{what}: {e}"),
    };
    let peer = config.peer.socket_addr();
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| fail("creating socket", e))?;
    if let Some(password) = &config.password {
        crate::sys::md5::set_tcp_md5_key(&socket, peer.ip(), password.as_bytes())
            .map_err(|e| fail("setting TCP MD5 key", e))?;
    }
    if let Some(ttl) = config.ttl() {
        let s = socket2::SockRef::from(&socket);
        match peer {
            SocketAddr::V4(_) => s.set_ttl_v4(ttl),
            SocketAddr::V6(_) => s.set_unicast_hops_v6(ttl),
        }
        .map_err(|e| fail("setting TTL", e))?;
    }
    socket
        .set_nodelay(true)
        .map_err(|e| fail("setting TCP_NODELAY", e))?;
    if let Some(source) = config.source_address {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| fail("binding the source address", e))?;
    }
    socket
        .connect(peer)
        .await
        .map_err(|e| fail("connecting", e))
}

/// Runs one session until it is stopped (or the speaker is dropped).
pub(crate) async fn run(args: SessionArgs) {
    let SessionArgs {
        config,
        mut routes,
        mut control,
        status,
        session_id,
        metrics,
        jitter,
        after,
    } = args;
    if let Some(old) = after {
        let _ = tokio::time::timeout(REPLACED_CLOSE_WAIT, old).await;
    }
    let peer = config.peer;
    let mut fsm = Fsm::new(Arc::clone(&config), jitter);
    let mut driver = Driver {
        peer,
        config: Arc::clone(&config),
        conn: None,
        connecting: None,
        timers: BTreeMap::new(),
        status,
        session_id,
        metrics,
        established_since: None,
        resets: 0,
        updates_sent: 0,
        stopped: false,
        closing: Vec::new(),
    };
    let initial = routes.borrow_and_update().clone();
    driver.step(&mut fsm, Event::SetRoutes(initial));
    driver.step(&mut fsm, Event::Start);

    loop {
        if driver.stopped {
            break;
        }
        let wire = fsm.wire();
        if let Some(event) = driver.conn.as_mut().and_then(|c| c.next_buffered(wire)) {
            driver.step(&mut fsm, event);
            continue;
        }
        let next_timer = driver
            .timers
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(t, at)| (*t, *at));
        let wake = {
            let connecting = &mut driver.connecting;
            let conn = &mut driver.conn;
            // Biased, control first: the speaker drops a session's route sender right after
            // sending it Stop, and a closed route channel means "stop silently" — picked at
            // random, a Cease to a removed peer could become a silent close, and the peer
            // would keep our routes for the whole graceful-restart time. Timers before the
            // socket: a peer that floods us must not starve our keepalives.
            tokio::select! {
                biased;
                command = control.recv() => Wake::Control(command),
                () = sleep_until(next_timer.map(|(_, at)| at)) => match next_timer {
                    Some((timer, _)) => Wake::Timer(timer),
                    None => continue,
                },
                changed = routes.changed() => Wake::Routes(changed.is_ok()),
                result = async {
                    match connecting.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                } => Wake::Connected(result),
                event = async {
                    match conn.as_mut() {
                        Some(c) => c.read().await,
                        None => std::future::pending().await,
                    }
                } => Wake::Read(event),
            }
        };
        let event = match wake {
            Wake::Routes(true) => Event::SetRoutes(routes.borrow_and_update().clone()),
            // The speaker is gone without stopping us: leave the peer our routes.
            Wake::Routes(false) | Wake::Control(None) => Event::Stop(StopMode::Silent),
            Wake::Control(Some(Control::Stop(mode))) => Event::Stop(mode),
            Wake::Connected(result) => {
                driver.connecting = None;
                match result {
                    Ok(stream) => {
                        driver.conn = Some(Connection::new(stream));
                        Event::TcpConnected
                    }
                    Err(e) => Event::TcpFailed(e),
                }
            }
            Wake::Read(Some(event)) => event,
            Wake::Read(None) => continue,
            Wake::Timer(timer) => {
                driver.timers.remove(&timer);
                match timer {
                    Timer::ConnectRetry => Event::ConnectRetryTimerExpires,
                    Timer::Hold => Event::HoldTimerExpires,
                    Timer::Keepalive => Event::KeepaliveTimerExpires,
                    Timer::IdleHold => Event::IdleHoldTimerExpires,
                }
            }
        };
        let stop = matches!(event, Event::Stop(_));
        driver.step(&mut fsm, event);
        if stop {
            driver.stopped = true;
        }
    }
    if let Some(conn) = driver.conn.take() {
        driver.closing.push(conn.close());
    }
    // Bounded: a peer that stops reading must not hold the speaker's shutdown.
    let closed = futures::future::join_all(std::mem::take(&mut driver.closing));
    let _ = tokio::time::timeout(REPLACED_CLOSE_WAIT, closed).await;
    driver.publish(&fsm);
    if let Some(m) = &driver.metrics {
        m.set_up(false);
    }
    info!(%peer, "bgp session stopped");
}

/// What woke the session loop.
enum Wake {
    /// New routes (`false`: the speaker dropped its sender).
    Routes(bool),
    Control(Option<Control>),
    Connected(Result<TcpStream, SessionError>),
    Read(Option<Event>),
    Timer(Timer),
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Driver {
    peer: PeerKey,
    config: Arc<PeerConfig>,
    conn: Option<Connection>,
    connecting: Option<Connecting>,
    timers: BTreeMap<Timer, Instant>,
    status: watch::Sender<StatusMap>,
    session_id: u64,
    metrics: Option<PeerMetrics>,
    established_since: Option<SystemTime>,
    resets: u64,
    updates_sent: u64,
    stopped: bool,
    /// Connections being closed.
    closing: Vec<tokio::task::JoinHandle<()>>,
}

impl Driver {
    fn step(&mut self, fsm: &mut Fsm, event: Event) {
        let before = fsm.state();
        if !matches!(
            event,
            Event::Message(Message::Keepalive(_)) | Event::KeepaliveTimerExpires
        ) {
            debug!(peer = %self.peer, state = %before, event = ?EventSummary(&event), "bgp event");
        }
        let actions = fsm.handle(event);
        let wire = fsm.wire();
        let mut batch = Vec::new();
        let mut updates = 0u64;
        for action in actions {
            match action {
                Action::Connect => {
                    self.connecting = Some(Box::pin(dial(Arc::clone(&self.config))));
                }
                Action::Send(message) => {
                    if matches!(message, Message::Update(_)) {
                        updates += 1;
                    }
                    if let Message::Notification(n) = &message {
                        warn!(peer = %self.peer, notification = %n, "sending NOTIFICATION");
                    }
                    if let Err(e) = message.encode(wire, &mut batch) {
                        // The packer keeps every UPDATE within bounds; an encoding failure
                        // is a bug, reported rather than sent malformed.
                        warn!(peer = %self.peer, error = %e, "message not sent");
                    }
                }
                Action::Close => {
                    self.flush(&mut batch);
                    self.connecting = None;
                    if let Some(conn) = self.conn.take() {
                        // Awaited only when the session ends (a replacing session waits
                        // for it); meanwhile the session goes on.
                        self.closing.retain(|c| !c.is_finished());
                        self.closing.push(conn.close());
                    }
                }
                Action::StartTimer(t, d) => {
                    self.timers.insert(t, Instant::now() + d);
                }
                Action::StopTimer(t) => {
                    self.timers.remove(&t);
                }
                Action::Established => {
                    self.established_since = Some(SystemTime::now());
                    let n = fsm.negotiated();
                    info!(
                        peer = %self.peer,
                        peer_as = n.map(|n| n.peer_as),
                        peer_id = %n.map(|n| n.peer_id.to_string()).unwrap_or_default(),
                        hold_time = n.map(|n| n.hold_time),
                        families = ?n.map(|n| &n.families),
                        graceful_restart = n.is_some_and(|n| n.peer_graceful_restart.is_some()),
                        "bgp session established"
                    );
                }
                Action::Down(error) => {
                    self.established_since = None;
                    self.resets += 1;
                    let reason = error.reason();
                    // A wrong TCP MD5 password shows only as a connect that times out
                    // (the peer's kernel drops unsigned or badly signed segments).
                    let md5 = self.config.password.is_some();
                    // A transport failure after the peer refused us is most likely the
                    // same refusal again: name it, so the log line alone explains.
                    let cause = fsm
                        .last_protocol_error()
                        .filter(|_| error.is_transport())
                        .map(ToString::to_string);
                    let retry_in = self
                        .timers
                        .get(&Timer::IdleHold)
                        .or_else(|| self.timers.get(&Timer::ConnectRetry))
                        .map(|at| at.saturating_duration_since(Instant::now()));
                    warn!(peer = %self.peer, reason = reason.as_str(), error = %error, cause, retry_in = ?retry_in, tcp_md5 = md5, "bgp session down; retrying after backoff");
                    if let Some(m) = &self.metrics {
                        m.reset(reason);
                    }
                }
                Action::Ignored(error) => {
                    warn!(peer = %self.peer, error = %error, handling = ?error.handling(), "ignoring malformed UPDATE content (RFC 7606)");
                }
            }
        }
        self.flush(&mut batch);
        self.updates_sent += updates;
        if let Some(m) = &self.metrics {
            m.updates_sent(updates);
            m.set_up(fsm.state() == State::Established);
            m.set_announced(fsm.announced().len());
        }
        if fsm.state() != before {
            debug!(peer = %self.peer, from = %before, to = %fsm.state(), "bgp state change");
        }
        self.publish(fsm);
    }

    fn flush(&mut self, batch: &mut Vec<u8>) {
        if batch.is_empty() {
            return;
        }
        let bytes = std::mem::take(batch);
        if let Some(conn) = &self.conn {
            // A failed send means the writer saw the connection break; the read side
            // reports that as an event.
            let _ = conn.writer.send(bytes);
        }
    }

    fn publish(&self, fsm: &Fsm) {
        let state = fsm.state();
        let next = PeerStatus {
            state,
            established_since: if state == State::Established {
                self.established_since
            } else {
                None
            },
            last_error: fsm.last_error().cloned(),
            last_protocol_error: fsm.last_protocol_error().cloned(),
            announced_prefixes: fsm.announced().len(),
            negotiated: fsm.negotiated().cloned(),
            resets: self.resets,
            updates_sent: self.updates_sent,
            session_id: self.session_id,
        };
        self.status
            .send_if_modified(|map| match map.get_mut(&self.peer) {
                Some(current) if current.session_id == self.session_id && *current != next => {
                    *current = next;
                    true
                }
                _ => false,
            });
    }
}

/// Events in logs without 10,000 prefixes in them.
struct EventSummary<'a>(&'a Event);

impl std::fmt::Debug for EventSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Event::SetRoutes(r) => write!(f, "SetRoutes({} routes)", r.len()),
            Event::Message(Message::Update(u)) => write!(
                f,
                "Update({} withdrawn, {} attributes, {} nlri)",
                u.withdrawn.len(),
                u.attributes.len(),
                u.nlri.len()
            ),
            Event::MessageError(e) => write!(f, "MessageError({e})"),
            other => write!(f, "{other:?}"),
        }
    }
}
