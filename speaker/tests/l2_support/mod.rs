//! Shared harness for the L2 and membership tests: private network namespaces (named
//! `flb-l2t-*`, removed on drop even when a test fails), and running speaker pieces inside a
//! namespace on a thread that entered it with setns.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_speaker::sys::packet::enter_network_namespace;

/// Fails the test with a clear message unless running as root (namespaces and raw sockets
/// need CAP_SYS_ADMIN and CAP_NET_RAW).
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        uid, "0",
        "these tests create network namespaces and raw sockets: run them as root (effective uid is {uid})"
    );
}

/// Runs a command, panicking with its output if it cannot be started.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd} {args:?}: {e}"))
}

/// Runs a command that must succeed.
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

/// A network namespace that exists for the lifetime of this value.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        require_root();
        let name = format!(
            "flb-l2t-{}-{}-{tag}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        must("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> <args>`, must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        must("ip", &full)
    }

    /// `ip netns exec <ns> <cmd> <args>`.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str(), cmd];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    pub fn file(&self) -> File {
        File::open(format!("/run/netns/{}", self.name)).unwrap()
    }

    /// Runs `f` on a new thread inside this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let file = self.file();
        std::thread::spawn(move || {
            enter_network_namespace(&file).unwrap();
            f()
        })
    }

    /// The MAC of `dev` in this namespace.
    pub fn mac(&self, dev: &str) -> String {
        let out = self.ip(&["-br", "link", "show", "dev", dev]);
        out.split_whitespace().nth(2).unwrap_or_default().to_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill anything still running inside, then remove the namespace.
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

/// Polls `f` every few milliseconds until it returns `Some` or `timeout` passes.
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

/// A segment: a switch namespace with bridge `br0`, and hosts attached by veth pairs, each
/// host's end named `eth0`. Hosts get 192.0.2.<n>/24 and 2001:db8::<n>/64 and MAC
/// 02:00:5e:10:00:<n>.
#[derive(Debug)]
pub struct Segment {
    pub hosts: Vec<Netns>,
    pub switch: Netns,
}

impl Segment {
    pub fn new(host_numbers: &[u8]) -> Segment {
        let switch = Netns::new("sw");
        // When br_netfilter is loaded, bridged frames pass through ip(6)tables hooks that
        // validate and drop malformed IP packets; a real switch does not. Make br0 plain.
        for table in ["arptables", "iptables", "ip6tables"] {
            let _ = switch.exec(
                "sysctl",
                &["-qw", &format!("net.bridge.bridge-nf-call-{table}=0")],
            );
        }
        switch.ip(&["link", "add", "br0", "type", "bridge"]);
        switch.ip(&["link", "set", "br0", "up"]);
        let mut hosts = Vec::new();
        for &n in host_numbers {
            let host = Netns::new(&format!("h{n}"));
            let port = format!("p{n}");
            must(
                "ip",
                &[
                    "link",
                    "add",
                    "eth0",
                    "netns",
                    &host.name,
                    "address",
                    &format!("02:00:5e:10:00:{n:02x}"),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &port,
                    "netns",
                    &switch.name,
                ],
            );
            switch.ip(&["link", "set", &port, "master", "br0"]);
            switch.ip(&["link", "set", &port, "up"]);
            host.ip(&["addr", "add", &format!("192.0.2.{n}/24"), "dev", "eth0"]);
            host.ip(&[
                "addr",
                "add",
                &format!("2001:db8::{n:x}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            host.ip(&["link", "set", "eth0", "up"]);
            hosts.push(host);
        }
        Segment { hosts, switch }
    }
}

/// The lladdr of `addr` in `ns`'s neighbour table on eth0, if it has a usable entry.
pub fn neighbour(ns: &Netns, addr: &str) -> Option<String> {
    let out = ns.exec("ip", &["neigh", "show", addr, "dev", "eth0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "lladdr" {
            return words.next().map(str::to_owned);
        }
    }
    None
}

/// Makes `ns`'s kernel resolve `addr` the ordinary way: send it one ping (nobody answers
/// the echo; the point is the ARP / neighbour solicitation before it).
pub fn provoke_resolution(ns: &Netns, addr: &str) {
    let fam = if addr.contains(':') { "-6" } else { "-4" };
    let _ = ns.exec("ping", &[fam, "-c1", "-W0.2", "-I", "eth0", addr]);
}

/// An [`L2Announcer`] running on its own thread (current-thread tokio runtime) inside a
/// namespace, driven from the test through a channel.
pub mod responder {
    use std::collections::BTreeMap;
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use ferrolb_speaker::l2::{AnnouncerConfig, InterfaceName, L2Announcer, L2Metrics, LinkTable};
    use tokio::sync::{mpsc, oneshot};

    use super::Netns;

    type Reply = oneshot::Sender<Vec<String>>;
    type Command = (BTreeMap<IpAddr, Vec<InterfaceName>>, Reply);

    #[derive(Debug)]
    pub struct NsResponder {
        tx: Option<mpsc::UnboundedSender<Command>>,
        thread: Option<JoinHandle<()>>,
        pub metrics: L2Metrics,
    }

    impl NsResponder {
        pub fn start(ns: &Netns, config: AnnouncerConfig) -> NsResponder {
            let metrics = L2Metrics::default();
            let m = metrics.clone();
            let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
            let thread = ns.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let links = Arc::new(LinkTable::scan().unwrap());
                    let mut announcer = L2Announcer::new(config, m, links);
                    while let Some((owned, reply)) = rx.recv().await {
                        announcer.set_links(Arc::new(LinkTable::scan().unwrap()));
                        let errors = announcer.set_owned(&owned);
                        let _ = reply.send(errors.iter().map(|e| e.to_string()).collect());
                    }
                });
            });
            NsResponder {
                tx: Some(tx),
                thread: Some(thread),
                metrics,
            }
        }

        /// Sets the owned addresses (all on eth0) and waits until the announcer applied them.
        pub fn own(&self, addrs: &[&str]) {
            let owned = addrs
                .iter()
                .map(|a| (a.parse().unwrap(), vec![InterfaceName::from("eth0")]))
                .collect();
            let (reply, rx) = oneshot::channel();
            self.tx.as_ref().unwrap().send((owned, reply)).unwrap();
            let errors = rx.blocking_recv().unwrap();
            assert!(errors.is_empty(), "announcer errors: {errors:?}");
        }
    }

    impl Drop for NsResponder {
        fn drop(&mut self) {
            self.tx.take();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A [`Membership`] running on its own thread inside a namespace.
pub mod member {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;
    use std::thread::JoinHandle;

    use ferrolb_speaker::membership::{
        LiveMembers, Membership, MembershipConfig, MembershipMetrics, NodeName, ProbeTiming,
    };
    use tokio::sync::{oneshot, watch};

    use super::Netns;

    #[derive(Debug)]
    pub enum Stop {
        /// Leave cleanly (as on SIGTERM).
        Leave,
        /// Vanish without a word (as a crash or power loss).
        Kill,
    }

    #[derive(Debug)]
    pub struct NsMember {
        pub node: String,
        pub addr: SocketAddr,
        pub metrics: MembershipMetrics,
        pub members: watch::Receiver<LiveMembers>,
        stop: Option<oneshot::Sender<Stop>>,
        thread: Option<JoinHandle<()>>,
    }

    impl NsMember {
        pub fn start(
            ns: &Netns,
            node: &str,
            addr: SocketAddr,
            key: &[u8],
            peers: &[SocketAddr],
            timing: ProbeTiming,
        ) -> NsMember {
            let metrics = MembershipMetrics::default();
            let config = MembershipConfig {
                node: NodeName::new(node).unwrap(),
                bind: addr,
                advertise: addr,
                key: key.to_vec(),
                timing,
            };
            let peers: BTreeSet<SocketAddr> = peers.iter().copied().collect();
            let (stop_tx, stop_rx) = oneshot::channel::<Stop>();
            let (members_tx, members_rx) = std::sync::mpsc::channel();
            let m = metrics.clone();
            let thread = ns.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let membership = Membership::start(config, m).await.unwrap();
                    membership.set_peers(peers);
                    members_tx.send(membership.members()).unwrap();
                    match stop_rx.await {
                        Ok(Stop::Leave) => membership.leave().await,
                        Ok(Stop::Kill) | Err(_) => drop(membership),
                    }
                });
            });
            let members = members_rx.recv().unwrap();
            NsMember {
                node: node.to_owned(),
                addr,
                metrics,
                members,
                stop: Some(stop_tx),
                thread: Some(thread),
            }
        }

        pub fn stop(&mut self, how: Stop) {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(how);
            }
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }

        /// The node names this member currently sees as live.
        pub fn sees(&self) -> Vec<String> {
            self.members
                .borrow()
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect()
        }
    }

    impl Drop for NsMember {
        fn drop(&mut self) {
            self.stop(Stop::Kill);
        }
    }
}
