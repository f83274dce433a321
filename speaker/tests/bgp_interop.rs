//! The speaker against real BGP implementations (BIRD 2, FRR's bgpd, GoBGP), each in its
//! own network namespace. Run as root.
#![allow(clippy::unwrap_used)]

mod bgp_support;

use std::time::{Duration, Instant};

use bgp_support::*;
use ferrolb_speaker::bgp::{SessionError, Shutdown, State};

const SETUP: Duration = Duration::from_secs(20);
const ROUTES: &[&str] = &["198.51.100.10/32", "198.51.100.11/32", "2001:db8:1::10/128"];

fn established(host: &SpeakerHost, daemon: &PeerDaemon, key: ferrolb_speaker::bgp::PeerKey) {
    wait_for("the speaker's session to be Established", SETUP, || {
        host.peer_status(key).is_some_and(|s| s.is_established())
    });
    wait_for("the peer to see the session Established", SETUP, || {
        daemon.established()
    });
}

fn announce_change_withdraw(kind: PeerKind) {
    let lab = Lab::new();
    let opts = PeerOptions::new(kind);
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let mut host = lab.start_speaker(None);
    let config = peer_config(&opts);
    let key = config.peer;
    host.set_routes(key, routes(ROUTES, true));
    host.set_peers(vec![config]);
    established(&host, &daemon, key);

    let seen = wait_for_prefixes(&daemon, ROUTES, SETUP);
    for (prefix, route) in &seen {
        let want_nh = if prefix.addr().is_ipv4() {
            SPEAKER_V4
        } else {
            SPEAKER_V6
        };
        assert_eq!(route.next_hop, want_nh, "{kind:?} next hop of {prefix}");
        assert_eq!(
            route.communities,
            ["64512:1", "65535:65281"].map(String::from).into(),
            "{kind:?} communities of {prefix}"
        );
        assert_eq!(
            route.large_communities,
            ["64512:1:2"].map(String::from).into(),
            "{kind:?} large communities of {prefix}"
        );
        // eBGP: our LOCAL_PREF is not sent.
        assert_ne!(
            route.local_pref,
            Some(200),
            "{kind:?} got LOCAL_PREF over eBGP"
        );
    }
    let status = host.peer_status(key).unwrap();
    assert_eq!(status.announced_prefixes, 3);
    let n = status.negotiated.unwrap();
    assert_eq!(n.peer_as, PEER_AS);
    assert_eq!(n.families.len(), 2);

    // Withdraw two routes and drop the communities of the third: re-announced.
    host.set_routes(key, routes(&["198.51.100.11/32"], false));
    let deadline = Instant::now() + SETUP;
    let seen = loop {
        let seen = wait_for_prefixes(&daemon, &["198.51.100.11/32"], SETUP);
        if seen.values().all(|r| r.communities.is_empty()) || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let route = seen.values().next().unwrap();
    assert!(
        route.communities.is_empty(),
        "{kind:?} kept old attributes: {route:?}"
    );
    assert!(route.large_communities.is_empty());
    assert_eq!(host.peer_status(key).unwrap().announced_prefixes, 1);

    // Clean shutdown for good: the peer withdraws everything at once, told by a Cease.
    host.shutdown(Shutdown::Withdraw);
    wait_for_prefixes(&daemon, &[], SETUP);
    wait_for("the peer to have the Cease", SETUP, || {
        daemon.got_notification()
    });
}

/// A BGPPeer removed: a Cease, so that the peer drops our routes at once even with
/// graceful restart negotiated (a silent close would have it keep them for the restart
/// time, two minutes).
fn removed_peer_withdraws_at_once_despite_graceful_restart(kind: PeerKind) {
    let lab = Lab::new();
    let opts = PeerOptions::new(kind);
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let mut config = peer_config(&opts);
    config.graceful_restart = Some(Duration::from_secs(120));
    let key = config.peer;
    let mut host = lab.start_speaker(None);
    host.set_routes(key, routes(ROUTES, false));
    host.set_peers(vec![config]);
    established(&host, &daemon, key);
    wait_for_prefixes(&daemon, ROUTES, SETUP);
    host.set_peers(vec![]);
    wait_for_prefixes(&daemon, &[], Duration::from_secs(5));
    assert!(daemon.got_notification(), "{kind:?} got no Cease");
}

fn ibgp_local_pref(kind: PeerKind) {
    let lab = Lab::new();
    let mut opts = PeerOptions::new(kind);
    opts.local_as = SPEAKER_AS;
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let mut host = lab.start_speaker(None);
    let config = peer_config(&opts);
    let key = config.peer;
    host.set_routes(key, routes(ROUTES, true));
    host.set_peers(vec![config]);
    established(&host, &daemon, key);
    let seen = wait_for_prefixes(&daemon, ROUTES, SETUP);
    for (prefix, route) in &seen {
        assert_eq!(
            route.local_pref,
            Some(200),
            "{kind:?} LOCAL_PREF of {prefix}"
        );
    }
}

/// Kills the speaker mid-session and starts a new one. With graceful restart the peer
/// must keep the routes the whole time, and after the new session's End-of-RIB drop the
/// one route the new speaker no longer announces.
fn graceful_restart(kind: PeerKind) {
    let lab = Lab::new();
    let opts = PeerOptions::new(kind);
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let mut config = peer_config(&opts);
    config.graceful_restart = Some(Duration::from_secs(120));
    let key = config.peer;
    let mut host = lab.start_speaker(None);
    host.set_routes(key, routes(ROUTES, false));
    host.set_peers(vec![config.clone()]);
    established(&host, &daemon, key);
    assert!(
        host.peer_status(key)
            .unwrap()
            .negotiated
            .unwrap()
            .peer_graceful_restart
            .is_some(),
        "{kind:?} did not advertise graceful restart"
    );
    wait_for_prefixes(&daemon, ROUTES, SETUP);

    host.kill();
    let check = |want: &[&str], when: &str| {
        let held = daemon.routes();
        for p in want {
            assert!(
                held.contains_key(&p.parse().unwrap()),
                "{kind:?} dropped {p} {when}; holds {held:?}"
            );
        }
        held
    };
    // The peer notices the session is gone, and keeps the routes for a while.
    wait_for("the peer to notice the lost session", SETUP, || {
        check(ROUTES, "while noticing the lost session");
        !daemon.established()
    });
    let gap = Instant::now() + Duration::from_secs(2);
    while Instant::now() < gap {
        check(ROUTES, "while the speaker was down");
    }
    // The new process announces one route fewer.
    let mut host = lab.start_speaker(None);
    host.set_routes(key, routes(&ROUTES[1..], false));
    host.set_peers(vec![config]);
    let deadline = Instant::now() + SETUP;
    while !host.peer_status(key).is_some_and(|s| s.is_established()) {
        assert!(Instant::now() < deadline, "new session did not come up");
        check(&ROUTES[1..], "while the new session came up");
    }
    // After End-of-RIB the peer purges what was not re-announced, and nothing else.
    loop {
        let held = check(&ROUTES[1..], "after the restart");
        if !held.contains_key(&ROUTES[0].parse().unwrap()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{kind:?} kept the stale {} after End-of-RIB",
            ROUTES[0]
        );
    }
    wait_for_prefixes(&daemon, &ROUTES[1..], SETUP);
}

/// Without graceful restart a killed speaker's routes go, and come back with it.
fn no_graceful_restart(kind: PeerKind) {
    let lab = Lab::new();
    let opts = PeerOptions::new(kind);
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let config = peer_config(&opts);
    let key = config.peer;
    let mut host = lab.start_speaker(None);
    host.set_routes(key, routes(ROUTES, false));
    host.set_peers(vec![config.clone()]);
    established(&host, &daemon, key);
    wait_for_prefixes(&daemon, ROUTES, SETUP);
    host.kill();
    wait_for_prefixes(&daemon, &[], SETUP);
    let mut host = lab.start_speaker(None);
    host.set_routes(key, routes(ROUTES, false));
    host.set_peers(vec![config]);
    wait_for_prefixes(&daemon, ROUTES, SETUP);
}

/// Changing a peer's configuration restarts its session; with graceful restart the peer
/// must keep the routes while that happens, or every BGPPeer edit would withdraw every
/// Service for a moment.
fn config_change_keeps_routes_with_graceful_restart(kind: PeerKind) {
    let lab = Lab::new();
    let opts = PeerOptions::new(kind);
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let mut config = peer_config(&opts);
    config.graceful_restart = Some(Duration::from_secs(120));
    let key = config.peer;
    let mut host = lab.start_speaker(None);
    host.set_routes(key, routes(ROUTES, false));
    host.set_peers(vec![config.clone()]);
    established(&host, &daemon, key);
    wait_for_prefixes(&daemon, ROUTES, SETUP);

    config.hold_time = Duration::from_secs(60);
    host.set_peers(vec![config]);
    // The status entry is the new session's from here on.
    assert!(!host.peer_status(key).unwrap().is_established());
    let deadline = Instant::now() + SETUP;
    let mut checks = 0;
    while !host.peer_status(key).is_some_and(|s| s.is_established()) {
        assert!(Instant::now() < deadline, "the new session did not come up");
        let held = daemon.routes();
        assert_eq!(
            held.len(),
            ROUTES.len(),
            "{kind:?} dropped routes: {held:?}"
        );
        checks += 1;
    }
    assert!(checks > 0);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let held = daemon.routes();
        assert_eq!(
            held.len(),
            ROUTES.len(),
            "{kind:?} dropped routes: {held:?}"
        );
    }
    assert_eq!(
        host.peer_status(key).unwrap().negotiated.unwrap().hold_time,
        60.min(opts.hold_time)
    );
    // What makes the difference (the new session comes up within milliseconds either way,
    // too fast to see routes missing): the old session was closed without a Cease, which
    // would have made the peer drop the routes.
    assert!(
        !daemon.got_notification(),
        "{kind:?} was sent a NOTIFICATION for a configuration change with graceful restart"
    );
}

fn md5(kind: PeerKind) {
    let lab = Lab::new();
    let mut opts = PeerOptions::new(kind);
    opts.password = Some("flb-s3cret".into());
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let mut host = lab.start_speaker(None);

    // Wrong password: the peer's kernel drops our SYNs; we report and back off.
    let mut config = peer_config(&opts);
    config.password = Some(ferrolb_speaker::bgp::Password::new("wrong"));
    config.connect_timeout = Duration::from_secs(1);
    let key = config.peer;
    host.set_routes(key, routes(ROUTES, false));
    host.set_peers(vec![config.clone()]);
    wait_for("a failed connect with the wrong password", SETUP, || {
        host.peer_status(key).is_some_and(|s| s.resets >= 2)
    });
    let status = host.peer_status(key).unwrap();
    assert_ne!(status.state, State::Established);
    assert!(
        matches!(
            status.last_error,
            Some(
                SessionError::ConnectTimeout
                    | SessionError::ConnectFailed { .. }
                    | SessionError::ConnectionClosed
                    | SessionError::ConnectionError { .. }
            )
        ),
        "{:?}",
        status.last_error
    );
    assert!(!daemon.established());

    // The right one: Established, routes arrive (changing the config restarts the session).
    config.password = opts
        .password
        .clone()
        .map(ferrolb_speaker::bgp::Password::new);
    host.set_peers(vec![config]);
    established(&host, &daemon, key);
    wait_for_prefixes(&daemon, ROUTES, SETUP);
}

/// The session itself over IPv6, still carrying both families.
#[test]
fn bird_over_ipv6_transport() {
    let lab = Lab::new();
    let mut opts = PeerOptions::new(PeerKind::Bird);
    opts.ipv6_transport = true;
    let daemon = PeerDaemon::start(&lab, opts.clone());
    let mut host = lab.start_speaker(None);
    let config = peer_config(&opts);
    let key = config.peer;
    host.set_routes(key, routes(ROUTES, true));
    host.set_peers(vec![config]);
    established(&host, &daemon, key);
    let seen = wait_for_prefixes(&daemon, ROUTES, SETUP);
    assert_eq!(
        seen[&"2001:db8:1::10/128".parse().unwrap()].next_hop,
        SPEAKER_V6
    );
    assert_eq!(
        seen[&"198.51.100.10/32".parse().unwrap()].next_hop,
        SPEAKER_V4
    );
}

macro_rules! per_peer {
    ($($name:ident),*) => {
        mod bird { use super::*; $(#[test] fn $name() { super::$name(PeerKind::Bird) })* }
        mod frr { use super::*; $(#[test] fn $name() { super::$name(PeerKind::Frr) })* }
        mod gobgp { use super::*; $(#[test] fn $name() { super::$name(PeerKind::Gobgp) })* }
    };
}

per_peer!(
    announce_change_withdraw,
    ibgp_local_pref,
    graceful_restart,
    no_graceful_restart,
    config_change_keeps_routes_with_graceful_restart,
    removed_peer_withdraws_at_once_despite_graceful_restart,
    md5
);
