//! Peers that misbehave: wrong AS (both ways, against BIRD), and fake peers written here
//! that send garbage, a malformed UPDATE, or stop sending keepalives. Each must give a
//! typed status, a NOTIFICATION, a metric, and a reset with growing backoff; other
//! sessions must not notice. Run as root.
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bgp_support::*;
use ferrolb_speaker::bgp::wire::{
    AfiSafi, Capability, DecodeError, ErrorCode, Keepalive, Message, MessageHeaderSubcode,
    Notification, Open, OpenSubcode, UpdateSubcode, WireContext, frame_length,
};
use ferrolb_speaker::bgp::{BgpMetrics, PeerKey, SessionError, State};
use ferrolb_speaker::sys::packet::enter_network_namespace;

const WIRE: WireContext = WireContext {
    four_octet_as: true,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Answers our OPEN with bytes that are not BGP.
    Garbage,
    /// Completes the handshake, then sends an UPDATE whose withdrawn-routes length runs
    /// past the message.
    MalformedUpdate,
    /// Completes the handshake with the given hold time, then goes silent.
    Silent,
    /// A well-behaved peer sending a KEEPALIVE every second.
    Good,
}

#[derive(Debug)]
enum Seen {
    Accepted(Instant),
    /// A NOTIFICATION from the speaker, and when it came.
    Notification(Notification, Instant),
}

struct FakePeer {
    stop: Arc<AtomicBool>,
    seen: mpsc::Receiver<Seen>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FakePeer {
    fn start(lab: &Lab, port: u16, behaviour: Behaviour, hold_time: u16) -> FakePeer {
        let file = lab.peer.file();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            enter_network_namespace(&file).unwrap();
            let listener = TcpListener::bind((PEER_V4, port)).unwrap();
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = tx.send(Seen::Accepted(Instant::now()));
                        serve(stream, behaviour, hold_time, &stop2, &tx);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        ready_rx.recv().unwrap();
        FakePeer {
            stop,
            seen: rx,
            thread: Some(thread),
        }
    }

    /// Collects what was seen until `n` connections were accepted (and the last one's
    /// NOTIFICATION, if any, arrived) or `timeout` passed.
    fn collect(&self, n: usize, timeout: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while Instant::now() < deadline {
            if let Ok(s) = self.seen.recv_timeout(Duration::from_millis(50)) {
                out.push(s);
            }
            let accepted = out
                .iter()
                .filter(|s| matches!(s, Seen::Accepted(_)))
                .count();
            let notified = out
                .iter()
                .filter(|s| matches!(s, Seen::Notification(..)))
                .count();
            if accepted >= n && notified >= n {
                break;
            }
        }
        out
    }
}

fn peer_open(hold_time: u16) -> Message {
    Message::Open(Open {
        my_as: PEER_AS as u16,
        hold_time,
        bgp_id: PEER_V4.parse().unwrap(),
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::FourOctetAs(PEER_AS),
        ],
    })
}

/// Reads one message; `None` on EOF, error, or stop.
fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool) -> Option<Message> {
    loop {
        if let Ok(Some(n)) = frame_length(buf) {
            let m = Message::decode(&buf[..n], WIRE).ok();
            buf.drain(..n);
            return m;
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return None,
        }
    }
}

fn send(stream: &mut TcpStream, m: Message) {
    let _ = stream.write_all(&m.to_bytes(WIRE).unwrap());
}

fn serve(
    mut stream: TcpStream,
    behaviour: Behaviour,
    hold_time: u16,
    stop: &AtomicBool,
    seen: &mpsc::Sender<Seen>,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = Vec::new();
    let Some(Message::Open(_)) = read_message(&mut stream, &mut buf, stop) else {
        return;
    };
    match behaviour {
        Behaviour::Garbage => {
            let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: ferrolb\r\n\r\n");
        }
        Behaviour::MalformedUpdate | Behaviour::Silent | Behaviour::Good => {
            send(&mut stream, peer_open(hold_time));
            send(&mut stream, Message::Keepalive(Keepalive));
        }
    }
    let mut last_keepalive = Instant::now();
    let mut sent_bad_update = false;
    loop {
        if behaviour == Behaviour::Good && last_keepalive.elapsed() >= Duration::from_secs(1) {
            send(&mut stream, Message::Keepalive(Keepalive));
            last_keepalive = Instant::now();
        }
        match read_message(&mut stream, &mut buf, stop) {
            Some(Message::Notification(n)) => {
                let _ = seen.send(Seen::Notification(n, Instant::now()));
                return;
            }
            Some(Message::Keepalive(_))
                if behaviour == Behaviour::MalformedUpdate && !sent_bad_update =>
            {
                // Withdrawn routes length 5 in an UPDATE that has no room for them.
                let mut bad = vec![0xff; 16];
                bad.extend_from_slice(&[0x00, 0x17, 0x02, 0x00, 0x05, 0x00, 0x00]);
                let _ = stream.write_all(&bad);
                sent_bad_update = true;
            }
            Some(_) => {}
            None => return,
        }
    }
}

fn accept_times(seen: &[Seen]) -> Vec<Instant> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Accepted(t) => Some(*t),
            _ => None,
        })
        .collect()
}

fn notifications(seen: &[Seen]) -> Vec<(u8, u8)> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Notification(n, _) => Some(n.error.to_codes()),
            _ => None,
        })
        .collect()
}

fn fake_config(port: u16) -> ferrolb_speaker::bgp::PeerConfig {
    let mut c = peer_config(&PeerOptions::new(PeerKind::Bird));
    c.peer = PeerKey::new(PEER_V4.parse().unwrap(), port);
    c
}

/// Gaps between reconnections must grow (backoff), allowing for the jitter of ±25 %.
fn assert_backoff(times: &[Instant]) {
    assert!(times.len() >= 3, "only {} connections", times.len());
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(300),
        "reconnected after {:?} without backing off",
        gaps[0]
    );
    assert!(gaps[1] > gaps[0], "backoff did not grow: {gaps:?}");
}

fn metrics_text(registry: &prometheus_client::registry::Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, registry).unwrap();
    s
}

#[test]
fn garbage_is_answered_with_notification_and_backoff() {
    let lab = Lab::new();
    let fake = FakePeer::start(&lab, 179, Behaviour::Garbage, 90);
    let mut registry = prometheus_client::registry::Registry::with_prefix("ferrolb");
    let metrics = BgpMetrics::register(&mut registry);
    let mut host = lab.start_speaker(Some(metrics));
    let config = fake_config(179);
    let key = config.peer;
    host.set_routes(key, routes(&["198.51.100.10/32"], false));
    host.set_peers(vec![config]);
    let seen = fake.collect(3, Duration::from_secs(15));
    assert_eq!(
        notifications(&seen)[..3],
        [(1, u8::from(MessageHeaderSubcode::ConnectionNotSynchronized)); 3]
    );
    assert_backoff(&accept_times(&seen));
    let status = host.peer_status(key).unwrap();
    assert_eq!(
        status.last_error,
        Some(SessionError::Malformed {
            error: DecodeError::ConnectionNotSynchronized
        })
    );
    assert!(status.resets >= 3);
    let text = metrics_text(&registry);
    assert!(
        text.contains(
            r#"ferrolb_bgp_session_resets_total{peer="192.0.2.1:179",reason="malformed_message"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"ferrolb_bgp_session_up{peer="192.0.2.1:179"} 0"#),
        "{text}"
    );
}

#[test]
fn malformed_update_resets_the_session() {
    let lab = Lab::new();
    let fake = FakePeer::start(&lab, 179, Behaviour::MalformedUpdate, 90);
    let mut host = lab.start_speaker(None);
    let config = fake_config(179);
    let key = config.peer;
    host.set_routes(key, routes(&["198.51.100.10/32"], false));
    host.set_peers(vec![config]);
    let seen = fake.collect(3, Duration::from_secs(15));
    assert_eq!(
        notifications(&seen)[..3],
        [(3, u8::from(UpdateSubcode::MalformedAttributeList)); 3]
    );
    assert_backoff(&accept_times(&seen));
    let status = host.peer_status(key).unwrap();
    assert!(
        matches!(
            status.last_error,
            Some(SessionError::Malformed {
                error: DecodeError::MalformedAttributeList { .. }
            })
        ),
        "{:?}",
        status.last_error
    );
}

#[test]
fn silent_peer_runs_out_the_hold_timer() {
    let lab = Lab::new();
    let fake = FakePeer::start(&lab, 179, Behaviour::Silent, 3);
    let mut host = lab.start_speaker(None);
    let config = fake_config(179);
    let key = config.peer;
    host.set_peers(vec![config]);
    let seen = fake.collect(1, Duration::from_secs(15));
    let accepted = accept_times(&seen)[0];
    let (n, at) = seen
        .iter()
        .find_map(|s| match s {
            Seen::Notification(n, at) => Some((n.clone(), *at)),
            _ => None,
        })
        .expect("no NOTIFICATION from the speaker");
    assert_eq!(n.error, ErrorCode::HoldTimerExpired);
    let waited = at - accepted;
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(6),
        "hold timer of 3 s fired after {waited:?}"
    );
    wait_for(
        "the status to show the expiry",
        Duration::from_secs(5),
        || {
            host.peer_status(key).is_some_and(|s| {
                s.last_error == Some(SessionError::HoldTimerExpired { hold_time: 3 })
            })
        },
    );
}

#[test]
fn a_bad_peer_does_not_disturb_a_good_one() {
    let lab = Lab::new();
    let bad = FakePeer::start(&lab, 179, Behaviour::Garbage, 90);
    let _good = FakePeer::start(&lab, 1790, Behaviour::Good, 3);
    let mut host = lab.start_speaker(None);
    let (bad_cfg, good_cfg) = (fake_config(179), fake_config(1790));
    let (bad_key, good_key) = (bad_cfg.peer, good_cfg.peer);
    host.set_routes(good_key, routes(&["198.51.100.10/32"], false));
    host.set_peers(vec![bad_cfg, good_cfg]);
    wait_for("the good session", Duration::from_secs(10), || {
        host.peer_status(good_key)
            .is_some_and(|s| s.is_established())
    });
    let since = Instant::now();
    while host.peer_status(bad_key).is_none_or(|s| s.resets < 3) {
        let good = host.peer_status(good_key).unwrap();
        assert_eq!(
            good.state,
            State::Established,
            "good session disturbed: {good:?}"
        );
        assert!(
            since.elapsed() < Duration::from_secs(15),
            "bad peer not reset 3 times"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stays up past a few of its 3-second hold times too.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let good = host.peer_status(good_key).unwrap();
        assert_eq!(
            good.state,
            State::Established,
            "good session disturbed: {good:?}"
        );
        assert_eq!(good.resets, 0);
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(bad);
}

#[test]
fn wrong_peer_as_is_refused_and_reported() {
    let lab = Lab::new();
    let opts = PeerOptions::new(PeerKind::Bird);
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let mut host = lab.start_speaker(None);
    let mut config = peer_config(&opts);
    config.peer_as = 65099;
    let key = config.peer;
    host.set_peers(vec![config]);
    // BIRD answers later attempts with a reset while it waits out its error delay, so
    // the refusal is looked for among the errors seen, not only the last one.
    let mut errors = Vec::new();
    wait_for("three refused sessions", Duration::from_secs(15), || {
        let s = host.peer_status(key).unwrap();
        assert_ne!(s.state, State::Established);
        if let Some(e) = s.last_error.filter(|e| !errors.contains(e)) {
            errors.push(e);
        }
        s.resets >= 3
    });
    let refused = SessionError::BadPeerAs {
        expected: 65099,
        received: PEER_AS,
    };
    assert!(errors.contains(&refused), "{errors:?}");
    assert_eq!(
        refused.to_string(),
        "peer AS 65000 is not the configured 65099"
    );
    assert!(!daemon.established());
}

#[test]
fn peer_refusing_our_as_is_reported() {
    let lab = Lab::new();
    let mut opts = PeerOptions::new(PeerKind::Bird);
    opts.speaker_as = 65077;
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let mut host = lab.start_speaker(None);
    let mut config = peer_config(&opts);
    config.local_as = SPEAKER_AS;
    let key = config.peer;
    host.set_peers(vec![config]);
    wait_for("the peer's NOTIFICATION", Duration::from_secs(15), || {
        host.peer_status(key).is_some_and(|s| {
            matches!(&s.last_error, Some(SessionError::PeerNotification(n))
                if n.error == ErrorCode::Open(OpenSubcode::BadPeerAs))
        })
    });
    let status = host.peer_status(key).unwrap();
    assert!(
        status
            .last_error
            .unwrap()
            .to_string()
            .starts_with("peer sent NOTIFICATION: OPEN message error: bad peer AS"),
    );
    assert!(!daemon.established());
}
