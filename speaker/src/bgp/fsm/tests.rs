use std::net::IpAddr;

use ipnet::IpNet;

use super::*;
use crate::bgp::config::PeerKey;
use crate::bgp::route::RouteAttrs;
use crate::bgp::wire::{Community, PathAttribute, RouteRefresh, UpdateSubcode};

fn config() -> PeerConfig {
    PeerConfig::new(
        PeerKey::new("192.0.2.1".parse().unwrap(), 179),
        65001,
        65000,
        "192.0.2.2".parse().unwrap(),
    )
}

fn fsm_with(config: PeerConfig) -> Fsm {
    Fsm::new(Arc::new(config), Box::new(NoJitter))
}

fn peer_open(asn: u32, hold: u16, families: &[AfiSafi], gr: bool) -> Message {
    let mut capabilities: Vec<Capability> = families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    capabilities.push(Capability::FourOctetAs(asn));
    capabilities.push(Capability::RouteRefresh);
    if gr {
        capabilities.push(Capability::GracefulRestart(GracefulRestartCap {
            restart_state: false,
            notification: false,
            restart_time: 120,
            families: vec![],
        }));
    }
    Message::Open(Open {
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: hold,
        bgp_id: "192.0.2.1".parse().unwrap(),
        capabilities,
    })
}

fn both() -> [AfiSafi; 2] {
    [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
}

fn sent(actions: &[Action]) -> Vec<&Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn notification(actions: &[Action]) -> Option<(u8, u8)> {
    sent(actions).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some(n.error.to_codes()),
        _ => None,
    })
}

fn down(actions: &[Action]) -> Option<&SessionError> {
    actions.iter().find_map(|a| match a {
        Action::Down(e) => Some(e),
        _ => None,
    })
}

fn timer(actions: &[Action], t: Timer) -> Option<Duration> {
    actions.iter().rev().find_map(|a| match a {
        Action::StartTimer(x, d) if *x == t => Some(*d),
        _ => None,
    })
}

fn routes(entries: &[(&str, &str)]) -> Arc<RouteSet> {
    let mut set = RouteSet::new();
    for (p, nh) in entries {
        let attrs = RouteAttrs {
            communities: [Community::new(64512, 1)].into_iter().collect(),
            ..RouteAttrs::new(nh.parse::<IpAddr>().unwrap())
        };
        set.insert(p.parse::<IpNet>().unwrap(), Arc::new(attrs))
            .unwrap();
    }
    Arc::new(set)
}

/// Drives a fresh machine to Established; returns the actions of the last step.
fn establish(fsm: &mut Fsm, open: Message) -> Vec<Action> {
    assert_eq!(
        fsm.handle(Event::Start),
        vec![
            Action::Connect,
            Action::StartTimer(Timer::ConnectRetry, Duration::from_secs(10))
        ]
    );
    assert_eq!(fsm.state(), State::Connect);
    let a = fsm.handle(Event::TcpConnected);
    assert!(matches!(sent(&a)[..], [Message::Open(_)]));
    assert_eq!(timer(&a, Timer::Hold), Some(LARGE_HOLD_TIME));
    assert_eq!(fsm.state(), State::OpenSent);
    let a = fsm.handle(Event::Message(open));
    assert_eq!(sent(&a), vec![&Message::Keepalive(Keepalive)]);
    assert_eq!(fsm.state(), State::OpenConfirm);
    let a = fsm.handle(Event::Message(Message::Keepalive(Keepalive)));
    assert_eq!(fsm.state(), State::Established);
    assert!(a.contains(&Action::Established));
    a
}

#[test]
fn reaches_established_and_sends_routes_then_end_of_rib() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::SetRoutes(routes(&[
        ("198.51.100.10/32", "192.0.2.2"),
        ("198.51.100.11/32", "192.0.2.2"),
        ("2001:db8:1::10/128", "2001:db8::2"),
    ])));
    let a = establish(&mut fsm, peer_open(65000, 90, &both(), false));
    let msgs = sent(&a);
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    let Message::Update(v4) = msgs[0] else {
        panic!()
    };
    assert_eq!(v4.nlri.len(), 2);
    assert!(
        v4.attributes
            .contains(&PathAttribute::Communities(vec![Community::new(64512, 1)]))
    );
    let Message::Update(v6) = msgs[1] else {
        panic!()
    };
    assert!(matches!(
        v6.attributes.last(),
        Some(PathAttribute::MpReach(_))
    ));
    assert_eq!(
        msgs[2],
        &Message::Update(Update::end_of_rib(Family::Ipv4Unicast))
    );
    assert_eq!(
        msgs[3],
        &Message::Update(Update::end_of_rib(Family::Ipv6Unicast))
    );
    assert_eq!(fsm.announced().len(), 3);
    let n = fsm.negotiated().unwrap();
    assert_eq!(n.hold_time, 90);
    assert_eq!(n.keepalive, Duration::from_secs(30));
}

#[test]
fn open_carries_capabilities() {
    let mut c = config();
    c.local_as = 4_200_000_000;
    c.graceful_restart = Some(Duration::from_secs(120));
    let open = fsm_with(c).open();
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.asn(), 4_200_000_000);
    assert_eq!(open.hold_time, 90);
    assert!(open.supports_route_refresh());
    assert!(open.supports_family(Family::Ipv6Unicast));
    let gr = open.graceful_restart().unwrap();
    assert!(gr.restart_state);
    assert_eq!(gr.restart_time, 120);
    assert!(gr.families.iter().all(|f| f.forwarding_preserved));
}

#[test]
fn restart_bit_only_until_first_established() {
    let mut c = config();
    c.graceful_restart = Some(Duration::from_secs(120));
    let mut fsm = fsm_with(c);
    establish(&mut fsm, peer_open(65000, 90, &both(), true));
    fsm.handle(Event::TcpFailed(SessionError::ConnectionClosed));
    assert!(!fsm.open().graceful_restart().unwrap().restart_state);
}

#[test]
fn only_negotiated_families_are_announced() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::SetRoutes(routes(&[
        ("198.51.100.10/32", "192.0.2.2"),
        ("2001:db8:1::10/128", "2001:db8::2"),
    ])));
    // No multiprotocol capability at all: IPv4 unicast only.
    let a = establish(&mut fsm, peer_open(65000, 90, &[], false));
    let msgs = sent(&a);
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        msgs[1],
        &Message::Update(Update::end_of_rib(Family::Ipv4Unicast))
    );
    assert_eq!(fsm.announced().len(), 1);
}

#[test]
fn route_changes_send_only_the_difference() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::SetRoutes(routes(&[
        ("198.51.100.10/32", "192.0.2.2"),
        ("198.51.100.11/32", "192.0.2.2"),
    ])));
    establish(&mut fsm, peer_open(65000, 90, &both(), false));
    let a = fsm.handle(Event::SetRoutes(routes(&[
        ("198.51.100.11/32", "192.0.2.2"),
        ("198.51.100.12/32", "192.0.2.2"),
    ])));
    let msgs = sent(&a);
    assert_eq!(msgs.len(), 2);
    let Message::Update(w) = msgs[0] else {
        panic!()
    };
    assert_eq!(w.withdrawn, vec!["198.51.100.10/32".parse().unwrap()]);
    let Message::Update(u) = msgs[1] else {
        panic!()
    };
    assert_eq!(u.nlri, vec!["198.51.100.12/32".parse().unwrap()]);
    // Same set again: nothing to send.
    let a = fsm.handle(Event::SetRoutes(routes(&[
        ("198.51.100.11/32", "192.0.2.2"),
        ("198.51.100.12/32", "192.0.2.2"),
    ])));
    assert!(sent(&a).is_empty());
    // A new next hop re-announces.
    let a = fsm.handle(Event::SetRoutes(routes(&[
        ("198.51.100.11/32", "192.0.2.3"),
        ("198.51.100.12/32", "192.0.2.2"),
    ])));
    let msgs = sent(&a);
    assert_eq!(msgs.len(), 1);
    let Message::Update(u) = msgs[0] else {
        panic!()
    };
    assert!(
        u.attributes
            .contains(&PathAttribute::NextHop("192.0.2.3".parse().unwrap()))
    );
}

#[test]
fn route_refresh_resends_the_family() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::SetRoutes(routes(&[
        ("198.51.100.10/32", "192.0.2.2"),
        ("2001:db8:1::10/128", "2001:db8::2"),
    ])));
    establish(&mut fsm, peer_open(65000, 90, &both(), false));
    let a = fsm.handle(Event::Message(Message::RouteRefresh(RouteRefresh {
        afi_safi: AfiSafi::IPV6_UNICAST,
        subtype: 0,
    })));
    let msgs = sent(&a);
    assert_eq!(msgs.len(), 1);
    let Message::Update(u) = msgs[0] else {
        panic!()
    };
    assert!(matches!(
        u.attributes.last(),
        Some(PathAttribute::MpReach(_))
    ));
}

#[test]
fn wrong_peer_as_is_refused_with_notification_and_backoff() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected);
    let a = fsm.handle(Event::Message(peer_open(65099, 90, &both(), false)));
    assert_eq!(notification(&a), Some((2, 2)));
    assert!(a.contains(&Action::Close));
    assert_eq!(
        down(&a),
        Some(&SessionError::BadPeerAs {
            expected: 65000,
            received: 65099
        })
    );
    assert_eq!(down(&a).unwrap().reason(), ResetReason::OpenRejected);
    assert_eq!(timer(&a, Timer::IdleHold), Some(Duration::from_secs(5)));
    assert_eq!(fsm.state(), State::Idle);
    let a = fsm.handle(Event::IdleHoldTimerExpires);
    assert!(a.contains(&Action::Connect));
}

#[test]
fn bad_hold_time_and_identifier_are_refused() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected);
    let a = fsm.handle(Event::Message(peer_open(65000, 2, &both(), false)));
    assert_eq!(notification(&a), Some((2, 6)));

    let mut c = config();
    c.peer_as = 65001; // iBGP
    let mut fsm = fsm_with(c);
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected);
    let Message::Open(mut open) = peer_open(65001, 90, &both(), false) else {
        panic!()
    };
    open.bgp_id = "192.0.2.2".parse().unwrap(); // our own identifier
    let a = fsm.handle(Event::Message(Message::Open(open)));
    assert_eq!(notification(&a), Some((2, 3)));
}

#[test]
fn hold_time_zero_runs_no_timers_and_smaller_hold_wins() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected);
    let a = fsm.handle(Event::Message(peer_open(65000, 0, &both(), false)));
    assert_eq!(timer(&a, Timer::Hold), None);
    assert_eq!(timer(&a, Timer::Keepalive), None);
    assert!(a.contains(&Action::StopTimer(Timer::Hold)));

    let mut c = config();
    c.keepalive_time = Some(Duration::from_secs(3));
    let mut fsm = fsm_with(c);
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected);
    let a = fsm.handle(Event::Message(peer_open(65000, 30, &both(), false)));
    assert_eq!(timer(&a, Timer::Hold), Some(Duration::from_secs(30)));
    assert_eq!(timer(&a, Timer::Keepalive), Some(Duration::from_secs(3)));
}

#[test]
fn keepalives_and_hold_timer_in_established() {
    let mut fsm = fsm_with(config());
    establish(&mut fsm, peer_open(65000, 9, &both(), false));
    let a = fsm.handle(Event::KeepaliveTimerExpires);
    assert_eq!(sent(&a), vec![&Message::Keepalive(Keepalive)]);
    assert_eq!(timer(&a, Timer::Keepalive), Some(Duration::from_secs(3)));
    let a = fsm.handle(Event::Message(Message::Keepalive(Keepalive)));
    assert_eq!(timer(&a, Timer::Hold), Some(Duration::from_secs(9)));
    let a = fsm.handle(Event::HoldTimerExpires);
    assert_eq!(notification(&a), Some((4, 0)));
    assert_eq!(down(&a).unwrap().reason(), ResetReason::HoldTimerExpired);
    assert_eq!(fsm.state(), State::Idle);
    assert!(fsm.announced().is_empty());
}

#[test]
fn connect_failures_back_off_exponentially_up_to_the_cap() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::Start);
    let mut delays = Vec::new();
    for _ in 0..7 {
        let a = fsm.handle(Event::TcpFailed(SessionError::ConnectFailed {
            message: "connection refused".into(),
        }));
        assert_eq!(fsm.state(), State::Active);
        delays.push(timer(&a, Timer::ConnectRetry).unwrap().as_secs());
        let a = fsm.handle(Event::ConnectRetryTimerExpires);
        assert!(a.contains(&Action::Connect));
    }
    assert_eq!(delays, vec![5, 10, 20, 40, 80, 120, 120]);
    // A connect that takes too long counts as a failure too.
    let a = fsm.handle(Event::ConnectRetryTimerExpires);
    assert_eq!(down(&a), Some(&SessionError::ConnectTimeout));
}

#[test]
fn backoff_is_jittered_within_a_quarter() {
    let mut fsm = Fsm::new(Arc::new(config()), Box::new(SeededJitter::new(7)));
    fsm.handle(Event::Start);
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let a = fsm.handle(Event::TcpFailed(SessionError::ConnectionClosed));
        let d = timer(&a, Timer::ConnectRetry).unwrap();
        assert!(d >= Duration::from_secs(90) || fsm.failures() < 6);
        assert!(d <= Duration::from_secs(120));
        seen.insert(d);
        fsm.handle(Event::ConnectRetryTimerExpires);
    }
    assert!(seen.len() > 10, "jitter should vary the delays: {seen:?}");
}

#[test]
fn failures_reset_only_once_the_session_proves_healthy() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpFailed(SessionError::ConnectionClosed));
    fsm.handle(Event::ConnectRetryTimerExpires);
    fsm.handle(Event::TcpConnected);
    fsm.handle(Event::Message(peer_open(65000, 90, &both(), false)));
    fsm.handle(Event::Message(Message::Keepalive(Keepalive)));
    assert_eq!(fsm.failures(), 1);
    // A peer that drops every session right after Established keeps backing off.
    let a = fsm.handle(Event::TcpFailed(SessionError::ConnectionClosed));
    assert_eq!(timer(&a, Timer::IdleHold), Some(Duration::from_secs(10)));
    fsm.handle(Event::IdleHoldTimerExpires);
    fsm.handle(Event::TcpConnected);
    fsm.handle(Event::Message(peer_open(65000, 90, &both(), false)));
    fsm.handle(Event::Message(Message::Keepalive(Keepalive)));
    fsm.handle(Event::Message(Message::Keepalive(Keepalive)));
    assert_eq!(fsm.failures(), 0);
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected);
    let a = fsm.handle(Event::Message(Message::Keepalive(Keepalive)));
    assert_eq!(notification(&a), Some((5, 1)));
    assert_eq!(down(&a).unwrap().reason(), ResetReason::UnexpectedMessage);

    let mut fsm = fsm_with(config());
    establish(&mut fsm, peer_open(65000, 90, &both(), false));
    let a = fsm.handle(Event::Message(peer_open(65000, 90, &both(), false)));
    assert_eq!(notification(&a), Some((5, 3)));
}

#[test]
fn malformed_updates_follow_rfc7606() {
    let mut fsm = fsm_with(config());
    establish(&mut fsm, peer_open(65000, 90, &both(), false));
    let soft = DecodeError::InvalidOrigin {
        attribute: vec![0x40, 1, 1, 5],
    };
    let a = fsm.handle(Event::MessageError(soft.clone()));
    assert_eq!(a.last(), Some(&Action::Ignored(soft)));
    assert_eq!(fsm.state(), State::Established);
    let hard = DecodeError::MalformedAttributeList { what: "test" };
    let a = fsm.handle(Event::MessageError(hard));
    assert_eq!(
        notification(&a),
        Some((3, u8::from(UpdateSubcode::MalformedAttributeList)))
    );
    assert_eq!(down(&a).unwrap().reason(), ResetReason::MalformedMessage);
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn peer_notification_is_not_answered() {
    let mut fsm = fsm_with(config());
    establish(&mut fsm, peer_open(65000, 90, &both(), false));
    let n = Notification::new(ErrorCode::Cease(CeaseSubcode::AdministrativeReset));
    let a = fsm.handle(Event::Message(Message::Notification(n.clone())));
    assert!(sent(&a).is_empty());
    assert_eq!(down(&a), Some(&SessionError::PeerNotification(n)));
    assert_eq!(
        fsm.last_error().unwrap().to_string(),
        "peer sent NOTIFICATION: cease: administrative reset"
    );
}

#[test]
fn stopping_notifies_or_closes_silently() {
    let mut fsm = fsm_with(config());
    establish(&mut fsm, peer_open(65000, 90, &both(), false));
    let a = fsm.handle(Event::Stop(StopMode::Notify(
        CeaseSubcode::PeerDeconfigured,
    )));
    assert_eq!(notification(&a), Some((6, 3)));
    assert_eq!(fsm.state(), State::Idle);
    assert!(
        timer(&a, Timer::IdleHold).is_none(),
        "a stopped session stays down"
    );

    let mut fsm = fsm_with(config());
    establish(&mut fsm, peer_open(65000, 90, &both(), true));
    let a = fsm.handle(Event::Stop(StopMode::Silent));
    assert!(sent(&a).is_empty());
    assert!(a.contains(&Action::Close));
}

#[test]
fn stopping_for_a_restart_is_silent_only_with_graceful_restart_negotiated() {
    let mut gr = config();
    gr.graceful_restart = Some(Duration::from_secs(120));

    // Both sides announced it: the peer keeps our routes, so no NOTIFICATION.
    let mut fsm = fsm_with(gr.clone());
    establish(&mut fsm, peer_open(65000, 90, &both(), true));
    let a = fsm.handle(Event::Stop(StopMode::Restart(
        CeaseSubcode::AdministrativeReset,
    )));
    assert!(sent(&a).is_empty(), "{a:?}");
    assert!(a.contains(&Action::Close));

    // The peer did not: it drops our routes anyway, and is told why.
    let mut fsm = fsm_with(gr);
    establish(&mut fsm, peer_open(65000, 90, &both(), false));
    let a = fsm.handle(Event::Stop(StopMode::Restart(
        CeaseSubcode::AdministrativeReset,
    )));
    assert_eq!(notification(&a), Some((6, 4)));

    // Off on our side.
    let mut fsm = fsm_with(config());
    establish(&mut fsm, peer_open(65000, 90, &both(), true));
    let a = fsm.handle(Event::Stop(StopMode::Restart(
        CeaseSubcode::AdministrativeReset,
    )));
    assert_eq!(notification(&a), Some((6, 4)));
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn a_refused_open_stays_the_protocol_error_through_later_connection_failures() {
    let mut fsm = fsm_with(config());
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected);
    let a = fsm.handle(Event::Message(peer_open(65099, 90, &both(), false)));
    assert_eq!(notification(&a), Some((2, 2)));
    let wrong_as = SessionError::BadPeerAs {
        expected: 65000,
        received: 65099,
    };
    assert_eq!(fsm.last_protocol_error(), Some(&wrong_as));

    // The peer now closes every connection at once (as BIRD does after an error).
    fsm.handle(Event::IdleHoldTimerExpires);
    fsm.handle(Event::TcpConnected);
    let a = fsm.handle(Event::TcpFailed(SessionError::ConnectionClosed));
    assert_eq!(down(&a), Some(&SessionError::ConnectionClosed));
    assert_eq!(fsm.last_error(), Some(&SessionError::ConnectionClosed));
    assert_eq!(fsm.last_protocol_error(), Some(&wrong_as));
    // Or refuses it.
    fsm.handle(Event::IdleHoldTimerExpires);
    fsm.handle(Event::TcpFailed(SessionError::ConnectFailed {
        message: "connection refused".into(),
    }));
    assert_eq!(fsm.last_protocol_error(), Some(&wrong_as));

    // Fixed on the peer's side: its OPEN is accepted and the old error is history.
    fsm.handle(Event::ConnectRetryTimerExpires);
    fsm.handle(Event::TcpConnected);
    fsm.handle(Event::Message(peer_open(65000, 90, &both(), false)));
    assert_eq!(fsm.state(), State::OpenConfirm);
    assert_eq!(fsm.last_protocol_error(), None);
}
