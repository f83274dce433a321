//! Harness for the BGP tests: a speaker namespace and a peer namespace joined by a veth
//! pair (names `flb-bgpt-*`, removed on drop even when a test fails), a real peer daemon
//! (BIRD, FRR's bgpd or GoBGP) in the peer namespace with its files in a temporary
//! directory, and a ferrolb speaker on a thread inside the speaker namespace.
//!
//! ```text
//!  flb-bgpt-…-s                         flb-bgpt-…-p
//!  ferrolb speaker  eth0 ───── veth ───── eth0  bird / bgpd / gobgpd
//!  192.0.2.2/24, 2001:db8::2/64           192.0.2.1/24, 2001:db8::1/64
//! ```
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ferrolb_speaker::bgp::wire::{Community, LargeCommunity};
use ferrolb_speaker::bgp::{
    BgpMetrics, BgpSpeaker, PeerConfig, PeerKey, PeerStatus, RouteAttrs, RouteSet, Shutdown,
};
use ferrolb_speaker::sys::packet::enter_network_namespace;
use ipnet::IpNet;
use tokio::sync::{oneshot, watch};

pub const SPEAKER_V4: &str = "192.0.2.2";
pub const SPEAKER_V6: &str = "2001:db8::2";
pub const PEER_V4: &str = "192.0.2.1";
pub const PEER_AS: u32 = 65000;
pub const SPEAKER_AS: u32 = 65001;

/// Fails the test with a clear message unless running as root.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        uid, "0",
        "the BGP interop tests create network namespaces and run BIRD/FRR/GoBGP: run them as root (effective uid is {uid})"
    );
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd} {args:?}: {e}"))
}

pub fn must(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace that exists for the lifetime of this value.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        must("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        must("ip", &full)
    }

    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str(), cmd];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    pub fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, cmd]);
        c
    }

    pub fn file(&self) -> File {
        File::open(format!("/run/netns/{}", self.name)).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).output();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("flb-bgpt-{}", unique()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The two namespaces and the link between them.
#[derive(Debug)]
pub struct Lab {
    pub speaker: Netns,
    pub peer: Netns,
    pub dir: TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        require_root();
        let id = unique();
        let speaker = Netns::new(format!("flb-bgpt-{id}-s"));
        let peer = Netns::new(format!("flb-bgpt-{id}-p"));
        must(
            "ip",
            &[
                "link",
                "add",
                "eth0",
                "netns",
                &speaker.name,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &peer.name,
            ],
        );
        for (ns, n) in [(&speaker, 2), (&peer, 1)] {
            ns.ip(&["addr", "add", &format!("192.0.2.{n}/24"), "dev", "eth0"]);
            ns.ip(&[
                "addr",
                "add",
                &format!("2001:db8::{n}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            ns.ip(&["link", "set", "eth0", "up"]);
        }
        Lab {
            speaker,
            peer,
            dir: TempDir::new(),
        }
    }

    /// A speaker running on its own thread and runtime inside the speaker namespace.
    pub fn start_speaker(&self, metrics: Option<BgpMetrics>) -> SpeakerHost {
        SpeakerHost::start(&self.speaker, metrics)
    }
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `cond` holds, panicking with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    assert!(
        poll(timeout, || cond().then_some(())).is_some(),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// A [`BgpSpeaker`] whose runtime lives on a thread inside a namespace, so that every
/// socket it opens is there. Dropping the host (or [`SpeakerHost::kill`]) drops the
/// runtime with all sessions: connections close without NOTIFICATION, as when the
/// process dies.
#[derive(Debug)]
pub struct SpeakerHost {
    speaker: Option<BgpSpeaker>,
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SpeakerHost {
    pub fn start(ns: &Netns, metrics: Option<BgpMetrics>) -> SpeakerHost {
        let file = ns.file();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            enter_network_namespace(&file).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            handle_tx.send(rt.handle().clone()).unwrap();
            rt.block_on(async {
                let _ = stop_rx.await;
            });
            // Dropping the runtime drops every session task and closes its socket.
        });
        let handle = handle_rx.recv().unwrap();
        let speaker = {
            let _guard = handle.enter();
            BgpSpeaker::new(metrics)
        };
        SpeakerHost {
            speaker: Some(speaker),
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn with<T>(&mut self, f: impl FnOnce(&mut BgpSpeaker) -> T) -> T {
        let _guard = self.handle.enter();
        f(self.speaker.as_mut().unwrap())
    }

    pub fn set_peers(&mut self, peers: Vec<PeerConfig>) {
        self.with(|s| s.set_peers(peers));
    }

    pub fn set_routes(&mut self, peer: PeerKey, routes: RouteSet) {
        self.with(|s| s.set_routes(peer, routes));
    }

    pub fn status(&self) -> watch::Receiver<BTreeMap<PeerKey, PeerStatus>> {
        self.speaker.as_ref().unwrap().status()
    }

    pub fn peer_status(&self, peer: PeerKey) -> Option<PeerStatus> {
        self.status().borrow().get(&peer).cloned()
    }

    /// Stops the process-like way: the runtime goes away mid-session.
    pub fn kill(mut self) {
        self.stop_runtime();
    }

    /// A clean shutdown through the speaker's API.
    pub fn shutdown(mut self, how: Shutdown) {
        if let Some(s) = self.speaker.take() {
            let (tx, rx) = std::sync::mpsc::channel();
            self.handle.spawn(async move {
                s.shutdown(how).await;
                let _ = tx.send(());
            });
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        self.stop_runtime();
    }

    fn stop_runtime(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        // The speaker's handles point into the dropped runtime; drop them only now.
        self.speaker.take();
    }
}

impl Drop for SpeakerHost {
    fn drop(&mut self) {
        self.stop_runtime();
    }
}

/// Which real BGP implementation plays the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    Bird,
    Frr,
    Gobgp,
}

/// How the peer daemon is configured.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    pub kind: PeerKind,
    pub local_as: u32,
    /// The AS the daemon expects from the speaker.
    pub speaker_as: u32,
    pub password: Option<String>,
    pub graceful_restart: bool,
    pub hold_time: u16,
    /// The session runs over IPv6 (2001:db8::2 to 2001:db8::1); BIRD only.
    pub ipv6_transport: bool,
}

impl PeerOptions {
    pub fn new(kind: PeerKind) -> Self {
        Self {
            kind,
            local_as: PEER_AS,
            speaker_as: SPEAKER_AS,
            password: None,
            graceful_restart: true,
            hold_time: 90,
            ipv6_transport: false,
        }
    }
}

/// A route as the peer shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenRoute {
    pub next_hop: String,
    pub communities: BTreeSet<String>,
    pub large_communities: BTreeSet<String>,
    pub local_pref: Option<u32>,
}

/// A peer daemon in the lab's peer namespace; killed on drop.
#[derive(Debug)]
pub struct PeerDaemon {
    pub opts: PeerOptions,
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl PeerDaemon {
    pub fn start(lab: &Lab, opts: PeerOptions) -> PeerDaemon {
        let dir = lab
            .dir
            .path()
            .join(format!("{:?}", opts.kind).to_lowercase());
        std::fs::create_dir_all(&dir).unwrap();
        let log = File::create(dir.join("daemon.log")).unwrap();
        let mut cmd = lab.peer.command(match opts.kind {
            PeerKind::Bird => "bird",
            PeerKind::Frr => "/usr/lib/frr/bgpd",
            PeerKind::Gobgp => "gobgpd",
        });
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        match opts.kind {
            PeerKind::Bird => {
                std::fs::write(dir.join("bird.conf"), bird_config(&opts)).unwrap();
                cmd.args([
                    "-f",
                    "-c",
                    &d("bird.conf"),
                    "-s",
                    &d("bird.ctl"),
                    "-P",
                    &d("bird.pid"),
                ]);
            }
            PeerKind::Frr => {
                std::fs::write(dir.join("bgpd.conf"), frr_config(&opts)).unwrap();
                cmd.args([
                    "-f",
                    &d("bgpd.conf"),
                    "-i",
                    &d("bgpd.pid"),
                    "-z",
                    &d("zserv.api"),
                    "-Z",
                    "-n",
                    "-S",
                    "-u",
                    "root",
                    "-g",
                    "root",
                    "--vty_socket",
                    &d(""),
                    "-P",
                    "0",
                    "--log",
                    "stdout",
                ]);
            }
            PeerKind::Gobgp => {
                std::fs::write(dir.join("gobgpd.toml"), gobgp_config(&opts)).unwrap();
                cmd.args([
                    "-f",
                    &d("gobgpd.toml"),
                    "-t",
                    "toml",
                    "--api-hosts",
                    "127.0.0.1:50051",
                    "--pprof-disable",
                ]);
            }
        }
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let daemon = PeerDaemon {
            ns: lab.peer.name.clone(),
            dir,
            child: Some(child),
            opts,
        };
        wait_for(
            &format!("{:?} to answer its control socket", daemon.opts.kind),
            Duration::from_secs(10),
            || daemon.ready(),
        );
        daemon
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let d = |f: &str| self.dir.join(f).to_string_lossy().into_owned();
        let (cmd, mut full): (&str, Vec<String>) = match self.opts.kind {
            PeerKind::Bird => ("birdc", vec!["-s".into(), d("bird.ctl")]),
            PeerKind::Frr => (
                "vtysh",
                vec![
                    "--vty_socket".into(),
                    d(""),
                    "-d".into(),
                    "bgpd".into(),
                    "-c".into(),
                ],
            ),
            PeerKind::Gobgp => (
                "gobgp",
                vec!["-u".into(), "127.0.0.1".into(), "-p".into(), "50051".into()],
            ),
        };
        if self.opts.kind == PeerKind::Frr {
            full.push(args.join(" "));
        } else {
            full.extend(args.iter().map(|s| s.to_string()));
        }
        let mut all = vec![
            "netns".to_string(),
            "exec".into(),
            self.ns.clone(),
            cmd.into(),
        ];
        all.extend(full);
        let out = Command::new("ip").args(&all).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn ready(&self) -> bool {
        match self.opts.kind {
            PeerKind::Bird => self
                .cli(&["show", "status"])
                .is_some_and(|s| s.contains("Daemon is up")),
            PeerKind::Frr => self.cli(&["show", "bgp", "summary", "json"]).is_some(),
            PeerKind::Gobgp => self.cli(&["neighbor"]).is_some(),
        }
    }

    /// The daemon's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Whether the daemon sees the session with the speaker as Established.
    pub fn established(&self) -> bool {
        match self.opts.kind {
            PeerKind::Bird => self
                .cli(&["show", "protocols", "speaker"])
                .is_some_and(|s| s.contains("Established")),
            PeerKind::Frr => self
                .cli(&["show", "bgp", "neighbors", "192.0.2.2", "json"])
                .is_some_and(|s| s.contains("\"bgpState\":\"Established\"")),
            PeerKind::Gobgp => self
                .cli(&["neighbor", "192.0.2.2", "-j"])
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .is_some_and(|v| v["state"]["session_state"] == 6),
        }
    }

    /// Whether the daemon has received a NOTIFICATION from the speaker (BIRD only keeps
    /// the last error, so for it: whether that is one).
    pub fn got_notification(&self) -> bool {
        match self.opts.kind {
            PeerKind::Bird => self
                .cli(&["show", "protocols", "all", "speaker"])
                .is_some_and(|s| {
                    s.lines()
                        .any(|l| l.trim().starts_with("Last error:") && l.contains("Received:"))
                }),
            PeerKind::Frr => self
                .cli(&["show", "bgp", "neighbors", "192.0.2.2", "json"])
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .is_some_and(|v| {
                    v["192.0.2.2"]["messageStats"]["notificationsRecv"]
                        .as_u64()
                        .is_some_and(|n| n > 0)
                }),
            PeerKind::Gobgp => self
                .cli(&["neighbor", "192.0.2.2", "-j"])
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .is_some_and(|v| {
                    v["state"]["messages"]["received"]["notification"]
                        .as_u64()
                        .is_some_and(|n| n > 0)
                }),
        }
    }

    /// Routes the daemon holds from the speaker, by prefix.
    pub fn routes(&self) -> BTreeMap<IpNet, SeenRoute> {
        match self.opts.kind {
            PeerKind::Bird => self.bird_routes(),
            PeerKind::Frr => self.frr_routes(),
            PeerKind::Gobgp => self.gobgp_routes(),
        }
    }

    fn bird_routes(&self) -> BTreeMap<IpNet, SeenRoute> {
        let mut out = BTreeMap::new();
        let Some(text) = self.cli(&["show", "route", "all", "protocol", "speaker"]) else {
            return out;
        };
        let mut current: Option<(IpNet, SeenRoute)> = None;
        for line in text.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if !line.starts_with(char::is_whitespace) {
                if let Ok(net) = first.parse::<IpNet>() {
                    if let Some((n, r)) = current.take() {
                        out.insert(n, r);
                    }
                    current = Some((net, SeenRoute::default()));
                }
                continue;
            }
            let Some((_, route)) = current.as_mut() else {
                continue;
            };
            let line = line.trim();
            if let Some(v) = line.strip_prefix("BGP.next_hop:") {
                route.next_hop = v.split_whitespace().next().unwrap_or("").to_owned();
            } else if let Some(v) = line.strip_prefix("BGP.local_pref:") {
                route.local_pref = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("BGP.community:") {
                route.communities = bird_tuples(v);
            } else if let Some(v) = line.strip_prefix("BGP.large_community:") {
                route.large_communities = bird_tuples(v);
            }
        }
        if let Some((n, r)) = current.take() {
            out.insert(n, r);
        }
        out
    }

    fn frr_routes(&self) -> BTreeMap<IpNet, SeenRoute> {
        let mut out = BTreeMap::new();
        for family in ["ipv4", "ipv6"] {
            let Some(v) = self
                .cli(&["show", "bgp", family, "unicast", "json"])
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            else {
                continue;
            };
            let Some(routes) = v["routes"].as_object() else {
                continue;
            };
            for prefix in routes.keys() {
                let Ok(net) = prefix.parse::<IpNet>() else {
                    continue;
                };
                let Some(detail) = self
                    .cli(&["show", "bgp", family, "unicast", prefix, "json"])
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                else {
                    continue;
                };
                let path = &detail["paths"][0];
                let words = |v: &serde_json::Value| -> BTreeSet<String> {
                    v["string"]
                        .as_str()
                        .unwrap_or("")
                        .split_whitespace()
                        .map(|w| match w {
                            // FRR prints the well-known communities by name.
                            "no-export" => "65535:65281".to_owned(),
                            "no-advertise" => "65535:65282".to_owned(),
                            "local-AS" => "65535:65283".to_owned(),
                            other => other.to_owned(),
                        })
                        .collect()
                };
                out.insert(
                    net,
                    SeenRoute {
                        next_hop: path["nexthops"][0]["ip"].as_str().unwrap_or("").to_owned(),
                        communities: words(&path["community"]),
                        large_communities: words(&path["largeCommunity"]),
                        local_pref: path["locPrf"].as_u64().map(|v| v as u32),
                    },
                );
            }
        }
        out
    }

    fn gobgp_routes(&self) -> BTreeMap<IpNet, SeenRoute> {
        let mut out = BTreeMap::new();
        for family in ["ipv4", "ipv6"] {
            let Some(v) = self
                .cli(&["global", "rib", "-a", family, "-j"])
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            else {
                continue;
            };
            let Some(map) = v.as_object() else { continue };
            for (prefix, paths) in map {
                let Ok(net) = prefix.parse::<IpNet>() else {
                    continue;
                };
                let mut route = SeenRoute::default();
                for attr in paths[0]["attrs"].as_array().into_iter().flatten() {
                    match attr["type"].as_u64() {
                        Some(3) | Some(14) => {
                            route.next_hop = attr["nexthop"].as_str().unwrap_or("").to_owned()
                        }
                        Some(5) => route.local_pref = attr["value"].as_u64().map(|v| v as u32),
                        Some(8) => {
                            route.communities = attr["communities"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|c| c.as_u64())
                                .map(|c| Community(c as u32).to_string())
                                .collect()
                        }
                        Some(32) => {
                            route.large_communities = attr["value"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|c| {
                                    LargeCommunity::new(
                                        c["ASN"].as_u64().unwrap_or(0) as u32,
                                        c["LocalData1"].as_u64().unwrap_or(0) as u32,
                                        c["LocalData2"].as_u64().unwrap_or(0) as u32,
                                    )
                                    .to_string()
                                })
                                .collect()
                        }
                        _ => {}
                    }
                }
                out.insert(net, route);
            }
        }
        out
    }

    /// Number of routes the daemon holds from the speaker (cheaper than `routes`).
    pub fn route_count(&self) -> usize {
        match self.opts.kind {
            PeerKind::Bird => self
                .cli(&["show", "route", "count", "protocol", "speaker"])
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.contains("routes for"))
                        .and_then(|l| l.split_whitespace().next())
                        .and_then(|n| n.parse().ok())
                })
                .unwrap_or(0),
            _ => self.routes().len(),
        }
    }

    /// Kills the daemon now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PeerDaemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- {:?} log ----\n{}", self.opts.kind, self.log());
        }
    }
}

/// `(64512,1) (65535,65282)` → {"64512:1", "65535:65282"}; also for large communities.
fn bird_tuples(s: &str) -> BTreeSet<String> {
    s.split(')')
        .filter_map(|t| t.split('(').nth(1))
        .map(|t| t.split(',').map(str::trim).collect::<Vec<_>>().join(":"))
        .filter(|t| !t.is_empty())
        .collect()
}

fn bird_config(o: &PeerOptions) -> String {
    let password = o
        .password
        .as_ref()
        .map(|p| format!("password \"{p}\";"))
        .unwrap_or_default();
    let gr = if o.graceful_restart { "on" } else { "off" };
    let (local_addr, neighbor) = if o.ipv6_transport {
        ("2001:db8::1", SPEAKER_V6)
    } else {
        (PEER_V4, SPEAKER_V4)
    };
    format!(
        r#"log stderr all;
router id {PEER_V4};
protocol device {{}}
protocol direct {{ ipv4; ipv6; }}
protocol bgp speaker {{
  local {local_addr} as {local};
  neighbor {neighbor} as {remote};
  passive on;
  hold time {hold};
  graceful restart {gr};
  {password}
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}
"#,
        local = o.local_as,
        remote = o.speaker_as,
        hold = o.hold_time.max(3),
    )
}

fn frr_config(o: &PeerOptions) -> String {
    let password = o
        .password
        .as_ref()
        .map(|p| format!(" neighbor 192.0.2.2 password {p}\n"))
        .unwrap_or_default();
    let gr = if o.graceful_restart {
        " bgp graceful-restart\n"
    } else {
        " bgp graceful-restart-disable\n"
    };
    format!(
        "frr defaults traditional\nhostname peer\nrouter bgp {local}\n bgp router-id {PEER_V4}\n no bgp ebgp-requires-policy\n{gr} neighbor 192.0.2.2 remote-as {remote}\n neighbor 192.0.2.2 passive\n neighbor 192.0.2.2 timers {ka} {hold}\n{password} address-family ipv4 unicast\n  neighbor 192.0.2.2 activate\n exit-address-family\n address-family ipv6 unicast\n  neighbor 192.0.2.2 activate\n exit-address-family\n",
        local = o.local_as,
        remote = o.speaker_as,
        ka = (o.hold_time / 3).max(1),
        hold = o.hold_time.max(3),
    )
}

fn gobgp_config(o: &PeerOptions) -> String {
    let password = o
        .password
        .as_ref()
        .map(|p| format!("    auth-password = \"{p}\"\n"))
        .unwrap_or_default();
    let gr = o.graceful_restart;
    let mut s = format!(
        "[global.config]\n  as = {local}\n  router-id = \"{PEER_V4}\"\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"192.0.2.2\"\n    peer-as = {remote}\n{password}  [neighbors.timers.config]\n    hold-time = {hold}\n    keepalive-interval = {ka}\n  [neighbors.transport.config]\n    passive-mode = true\n",
        local = o.local_as,
        remote = o.speaker_as,
        hold = o.hold_time.max(3),
        ka = (o.hold_time / 3).max(1),
    );
    if gr {
        s.push_str(
            "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 120\n",
        );
    }
    for family in ["ipv4-unicast", "ipv6-unicast"] {
        s.push_str(&format!(
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
        ));
        if gr {
            s.push_str(
                "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n",
            );
        }
    }
    s
}

/// The speaker's session config for the lab's peer.
pub fn peer_config(opts: &PeerOptions) -> PeerConfig {
    let mut c = PeerConfig::new(
        PeerKey::new(PEER_V4.parse().unwrap(), 179),
        opts.speaker_as,
        opts.local_as,
        SPEAKER_V4.parse().unwrap(),
    );
    c.connect_retry = Duration::from_millis(500);
    c.connect_retry_max = Duration::from_secs(4);
    c.connect_timeout = Duration::from_secs(3);
    c.source_address = Some(SPEAKER_V4.parse().unwrap());
    if opts.ipv6_transport {
        c.peer = PeerKey::new("2001:db8::1".parse().unwrap(), 179);
        c.source_address = Some(SPEAKER_V6.parse().unwrap());
    }
    c
}

/// Routes with the lab's next hops; `tag` adds communities and local preference.
pub fn routes(prefixes: &[&str], tagged: bool) -> RouteSet {
    let mut v4 = RouteAttrs::new(SPEAKER_V4.parse().unwrap());
    let mut v6 = RouteAttrs::new(SPEAKER_V6.parse().unwrap());
    if tagged {
        for a in [&mut v4, &mut v6] {
            a.communities = ["64512:1", "65535:65281"]
                .iter()
                .map(|c| c.parse().unwrap())
                .collect();
            a.large_communities = [LargeCommunity::new(64512, 1, 2)].into_iter().collect();
            a.local_pref = Some(200);
        }
    }
    let (v4, v6) = (Arc::new(v4), Arc::new(v6));
    let mut set = RouteSet::new();
    for p in prefixes {
        let net: IpNet = p.parse().unwrap();
        let attrs = if net.addr().is_ipv4() { &v4 } else { &v6 };
        set.insert(net, Arc::clone(attrs)).unwrap();
    }
    set
}

/// Waits until the daemon holds exactly `want` (by prefix).
pub fn wait_for_prefixes(
    daemon: &PeerDaemon,
    want: &[&str],
    timeout: Duration,
) -> BTreeMap<IpNet, SeenRoute> {
    let want: BTreeSet<IpNet> = want.iter().map(|p| p.parse().unwrap()).collect();
    let mut last = BTreeMap::new();
    let found = poll(timeout, || {
        last = daemon.routes();
        (last.keys().copied().collect::<BTreeSet<_>>() == want).then(|| last.clone())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{:?} did not get to hold exactly {want:?} within {timeout:?}; it holds {last:?}",
            daemon.opts.kind
        )
    })
}
