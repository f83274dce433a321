//! The lab's life cycle: up, down, status, kill, restart, logs. Synchronous: it runs tools and
//! waits on them; the only async part is the agent, which runs as its own process.
//!
//! Start order (`up`): network → certificates → etcd → API server → controller-manager →
//! routing daemons → agents (Nodes Ready) → the chart's ServiceAccounts, RBAC and membership
//! key, a token kubeconfig per program → speakers and controller. The state file is saved
//! after every process started, so a failure half-way leaves nothing `down` cannot find.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::chart;
use crate::cmd;
use crate::controlplane as cp;
use crate::error::{LabError, Result};
use crate::net;
use crate::nodepeer::{self, NodeDaemons};
use crate::pki;
use crate::procs::{self, ProcSpec};
use crate::routing;
use crate::state::{self, CONTROLLER_REPLICAS, MachineLock, Part, Paths, Ports, Proc, State};
use crate::topology::{self as t, NodeId, RouterKind, Topology};

/// How long a stopping process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// etcd and the API server are killed outright: their state is thrown away with the lab, and
/// the API server's graceful shutdown drains watches for up to a minute.
fn grace(part: Part) -> Duration {
    match part {
        Part::Etcd | Part::Apiserver => Duration::ZERO,
        _ => STOP_GRACE,
    }
}

/// Stops processes of the lab, each with its grace (zero ones first: no waiting on them).
fn stop_parts(ids: &[(Part, procs::ProcId)]) {
    let (now, gently): (Vec<_>, Vec<_>) = ids.iter().partition(|(p, _)| grace(*p).is_zero());
    procs::stop_all(
        &now.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        Duration::ZERO,
    );
    procs::stop_all(
        &gently.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        STOP_GRACE,
    );
}

/// Everything `lab up` needs to know.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub nodes: u8,
    pub router: RouterKind,
    /// The routing daemon of each node (BIRD unless named otherwise).
    pub node_daemons: NodeDaemons,
    /// Where ferrolb-controller, ferrolb-speaker and lab are (cargo's target/<profile>/).
    pub bin_dir: PathBuf,
    /// The Kubernetes binaries; `None` runs e2e/scripts/build-k8s.sh to find (or build) them.
    pub k8s_dir: Option<PathBuf>,
}

/// Fails with `NotRoot` unless the effective user is root.
pub fn require_root() -> Result<()> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(|source| LabError::ReadFile {
            path: "/proc/self/status".into(),
            source,
        })?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or("");
    if euid == "0" {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// The directory of the Kubernetes binaries, building them on first use (about 15 minutes).
pub fn k8s_dir(paths: &Paths) -> Result<PathBuf> {
    let script = paths.repo.join("e2e/scripts/build-k8s.sh");
    // Quiet when the binaries are cached; while building, the script reports its progress.
    let out = cmd::output(
        Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit()),
    )?;
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    Ok(PathBuf::from(dir))
}

fn check_tools(topo: &Topology, daemons: &NodeDaemons, bin_dir: &Path) -> Result<()> {
    let mut need = vec!["ip", "sysctl", "bird", "birdc", "openssl", "kill", "curl"];
    if topo.router == RouterKind::Frr {
        need.extend(["/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh"]);
    }
    for (_, d) in daemons.others() {
        need.extend(nodepeer::tools(d));
    }
    for tool in need {
        if !cmd::have_program(tool) {
            return Err(LabError::Missing {
                what: tool.to_string(),
                hint: "install the lab's Debian packages: bash e2e/scripts/install-packages.sh (as root)".into(),
            });
        }
    }
    for bin in ["ferrolb-controller", "ferrolb-speaker", "lab"] {
        if !bin_dir.join(bin).is_file() {
            return Err(LabError::Missing {
                what: bin_dir.join(bin).display().to_string(),
                hint: "build the workspace's binaries first: cargo build --bins".into(),
            });
        }
    }
    Ok(())
}

fn speaker_spec(paths: &Paths, bin_dir: &Path, n: NodeId) -> ProcSpec {
    ProcSpec {
        netns: Some(n.netns()),
        program: bin_dir.join("ferrolb-speaker"),
        args: vec![],
        env: vec![
            ("NODE_NAME".into(), n.name()),
            // The token of the chart's speaker ServiceAccount (chart::install_identities).
            (
                "KUBECONFIG".into(),
                chart::speaker_kubeconfig(paths).display().to_string(),
            ),
            ("POD_NAMESPACE".into(), chart::NAMESPACE.into()),
        ],
        log: paths.log(&Part::Speaker(n)),
    }
}

/// The namespace and Secret the speakers read their membership key from (the chart's, for
/// release `ferrolb`: chart::install_identities applies it).
pub const FERROLB_NAMESPACE: &str = chart::NAMESPACE;
pub const MEMBERSHIP_SECRET: &str = "ferrolb-membership";

/// The controller replicas' leader election timing (the controller's defaults).
pub const CONTROLLER_LEASE_DURATION: Duration = Duration::from_secs(15);
pub const CONTROLLER_RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const CONTROLLER_RETRY_PERIOD: Duration = Duration::from_secs(2);

fn controller_spec(paths: &Paths, bin_dir: &Path, replica: u8, metrics_port: u16) -> ProcSpec {
    ProcSpec {
        netns: None,
        program: bin_dir.join("ferrolb-controller"),
        args: vec![],
        env: vec![
            // As a Deployment's downward API would set it: the holder of the Lease names the
            // replica (tests find the leader by it).
            ("POD_NAME".into(), format!("controller-{replica}")),
            // Leader election timing written out, so that failover tests know what to expect.
            (
                "FERROLB_LEASE_DURATION".into(),
                format!("{}ms", CONTROLLER_LEASE_DURATION.as_millis()),
            ),
            (
                "FERROLB_RENEW_DEADLINE".into(),
                format!("{}ms", CONTROLLER_RENEW_DEADLINE.as_millis()),
            ),
            (
                "FERROLB_RETRY_PERIOD".into(),
                format!("{}ms", CONTROLLER_RETRY_PERIOD.as_millis()),
            ),
            // The token of the chart's controller ServiceAccount (chart::install_identities).
            (
                "KUBECONFIG".into(),
                chart::controller_kubeconfig(paths).display().to_string(),
            ),
            // The Lease's namespace, where the chart's Role lets it lead.
            ("POD_NAMESPACE".into(), chart::NAMESPACE.into()),
            // The root namespace is the machine's own: health and metrics on loopback only.
            (
                "FERROLB_METRICS_ADDR".into(),
                format!("127.0.0.1:{metrics_port}"),
            ),
        ],
        log: paths.log(&Part::Controller(replica)),
    }
}

fn agent_spec(paths: &Paths, bin_dir: &Path, n: NodeId) -> ProcSpec {
    ProcSpec {
        netns: Some(n.netns()),
        program: bin_dir.join("lab"),
        args: vec![
            "agent".into(),
            "--node".into(),
            n.name(),
            "--kubeconfig".into(),
            paths.node_kubeconfig().display().to_string(),
        ],
        env: vec![("RUST_LOG".into(), "info".into())],
        log: paths.log(&Part::Agent(n)),
    }
}

fn apiproxy_spec(paths: &Paths, bin_dir: &Path, apiserver_port: u16) -> ProcSpec {
    ProcSpec {
        netns: None,
        program: bin_dir.join("lab"),
        args: vec![
            "apiproxy".into(),
            "--netns".into(),
            t::ROUTER_NS.into(),
            "--listen".into(),
            format!("{}:{}", t::API_ADDR4, t::APISERVER_PORT),
            "--connect".into(),
            format!("127.0.0.1:{apiserver_port}"),
        ],
        env: vec![("RUST_LOG".into(), "info".into())],
        log: paths.log(&Part::ApiProxy),
    }
}

fn start(state: &mut State, paths: &Paths, part: Part, spec: ProcSpec) -> Result<()> {
    let id = procs::spawn(&spec)?;
    state.procs.insert(part, Proc { spec, id: Some(id) });
    state.save(paths)
}

/// Fails with the log's end when a process died right after starting.
fn check_running(state: &State, part: Part) -> Result<()> {
    let Some(p) = state.procs.get(&part) else {
        return Ok(());
    };
    if p.id.is_some_and(procs::alive) {
        return Ok(());
    }
    Err(LabError::CommandFailed {
        command: format!("{part} ({})", p.spec.program.display()),
        status: "exited".into(),
        stderr: format!(
            "last lines of {}:\n{}",
            p.spec.log.display(),
            procs::log_tail(&p.spec.log, 15)
        ),
    })
}

/// Builds and starts a whole lab. Takes the machine lock for the duration; any lab already
/// there (from this checkout or another) is torn down first.
pub fn up(paths: &Paths, opts: &UpOptions, progress: &mut dyn FnMut(&str)) -> Result<State> {
    require_root()?;
    let _lock = MachineLock::acquire(|holder| {
        progress(&format!("waiting for the lab lock (held by {holder})"))
    })?;
    up_locked(paths, opts, progress)
}

/// `up` for a caller that already holds the machine lock (the test harness's guard).
pub fn up_locked(paths: &Paths, opts: &UpOptions, progress: &mut dyn FnMut(&str)) -> Result<State> {
    let topo = Topology::new(opts.nodes, opts.router).map_err(LabError::Usage)?;
    check_tools(&topo, &opts.node_daemons, &opts.bin_dir)?;
    routing::check_template(&paths.bird_node_template())?;
    let k8s_dir = match &opts.k8s_dir {
        Some(d) => d.clone(),
        None => k8s_dir(paths)?,
    };
    cp::check_binaries(&k8s_dir)?;
    let helm = chart::helm(paths)?;

    clean_leftovers(paths, progress)?;
    std::fs::create_dir_all(&paths.dir).map_err(|source| LabError::WriteFile {
        path: paths.dir.clone(),
        source,
    })?;
    state::set_owner(Some(&paths.dir))?;
    let ports = Ports::pick()?;
    let mut st = State {
        nodes: topo.nodes,
        router: topo.router,
        repo: paths.repo.clone(),
        bin_dir: opts.bin_dir.clone(),
        k8s_dir: k8s_dir.clone(),
        ports,
        procs: Default::default(),
        killed_nodes: vec![],
        node_daemons: opts.node_daemons,
    };
    st.save(paths)?;

    progress(&format!(
        "network: {} nodes, router {} ",
        topo.nodes, topo.router
    ));
    net::create(&topo)?;
    let pki = pki::create(paths, ports.apiserver)?;
    routing::write_configs(paths, &topo)?;
    for n in topo.node_ids() {
        nodepeer::write_config(paths, n, opts.node_daemons.get(n))?;
    }

    progress("control plane: etcd, kube-apiserver, kube-controller-manager");
    start(
        &mut st,
        paths,
        Part::Etcd,
        cp::etcd(&k8s_dir, paths, &ports),
    )?;
    start(
        &mut st,
        paths,
        Part::Apiserver,
        cp::apiserver(&k8s_dir, paths, &pki, &ports),
    )?;
    cp::wait_apiserver_ready(&k8s_dir, paths, Duration::from_secs(90)).or_else(|e| {
        check_running(&st, Part::Etcd)
            .and(check_running(&st, Part::Apiserver))
            .and(Err(e))
    })?;
    // Ready could also mean an API server on someone else's etcd: ours must be running.
    check_running(&st, Part::Etcd)?;
    start(
        &mut st,
        paths,
        Part::ApiProxy,
        apiproxy_spec(paths, &opts.bin_dir, ports.apiserver),
    )?;
    start(
        &mut st,
        paths,
        Part::ControllerManager,
        cp::controller_manager(&k8s_dir, paths, &ports),
    )?;
    // A refused CRD must not hide the rest of the lab: the tests that need it fail and say
    // why, every other test still runs.
    match crate::demo::install_crds(paths, &st) {
        Ok(Some(n)) => progress(&format!("installed ferrolb's {n} CRDs from crds/")),
        Ok(None) => progress("no CRDs in crds/ yet (issue 2): ferrolb's kinds are not installed"),
        Err(e) => progress(&format!(
            "WARNING: the API server refused ferrolb's CRDs: {e}"
        )),
    }

    progress("routing: BIRD on every node, the router's BGP");
    start_router(&mut st, paths)?;
    for n in topo.node_ids() {
        let spec = nodepeer::spec(paths, n, opts.node_daemons.get(n))
            .unwrap_or_else(|| routing::bird_spec(paths, Some(n)));
        start(&mut st, paths, Part::Bird(n), spec)?;
    }

    progress("nodes: agents (kubelet and kube-proxy view)");
    for n in topo.node_ids() {
        start(
            &mut st,
            paths,
            Part::Agent(n),
            agent_spec(paths, &opts.bin_dir, n),
        )?;
    }
    cp::wait_cluster_ready(&k8s_dir, paths, topo.nodes, Duration::from_secs(60)).or_else(|e| {
        topo.node_ids()
            .try_for_each(|n| check_running(&st, Part::Agent(n)))
            .and(check_running(&st, Part::ControllerManager))
            .and(check_running(&st, Part::ApiProxy))
            .and(Err(e))
    })?;

    progress(
        "ferrolb: controller and a speaker per node, with the chart's ServiceAccounts and RBAC",
    );
    chart::install_identities(paths, &st, &helm)?;
    for n in topo.node_ids() {
        start(
            &mut st,
            paths,
            Part::Speaker(n),
            speaker_spec(paths, &opts.bin_dir, n),
        )?;
    }
    for (replica, port) in (1..=CONTROLLER_REPLICAS).zip(ports.controller_metrics) {
        start(
            &mut st,
            paths,
            Part::Controller(replica),
            controller_spec(paths, &opts.bin_dir, replica, port),
        )?;
    }
    for (replica, port) in (1..=CONTROLLER_REPLICAS).zip(ports.controller_metrics) {
        let health = format!("http://127.0.0.1:{port}/healthz");
        wait_healthy(&st, Part::Controller(replica), None, &health)?;
    }
    for n in topo.node_ids() {
        wait_healthy(&st, Part::Speaker(n), Some(&n.netns()), SPEAKER_HEALTH)?;
    }

    wait_sessions(
        paths,
        &topo,
        topo.node_ids().collect(),
        Duration::from_secs(60),
    )?;
    Ok(st)
}

/// Where the speakers answer /healthz (their default port, in their own namespaces); the
/// controller's is on a picked loopback port (`controller_spec`).
const SPEAKER_HEALTH: &str = "http://127.0.0.1:9402/healthz";

/// Waits until a process answers its health endpoint; fails with its log if it exits.
fn wait_healthy(st: &State, part: Part, netns: Option<&str>, url: &str) -> Result<()> {
    crate::wait::poll_blocking(
        &format!("{part} to answer {url}"),
        Duration::from_secs(30),
        || {
            check_running(st, part)?;
            let mut c = match netns {
                Some(ns) => cmd::in_netns(ns, "curl"),
                None => Command::new("curl"),
            };
            let out = cmd::output_any(c.args([
                "-sS",
                "--max-time",
                "1",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ]))?;
            let code = String::from_utf8_lossy(&out.stdout).into_owned();
            Ok(if code == "200" {
                Ok(())
            } else {
                Err(format!(
                    "HTTP {code} {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            })
        },
    )
}

fn start_router(st: &mut State, paths: &Paths) -> Result<()> {
    match st.router {
        RouterKind::Bird => start(st, paths, Part::Router, routing::bird_spec(paths, None)),
        RouterKind::Frr => {
            let [zebra, bgpd] = routing::frr_specs(paths);
            start(st, paths, zebra.0, zebra.1)?;
            // bgpd installs routes through zebra's socket, so zebra must listen first.
            let sock = paths.frr_dir().join("zserv.api");
            crate::wait::poll_blocking("FRR zebra's socket", Duration::from_secs(20), || {
                Ok(if sock.exists() {
                    Ok(())
                } else {
                    Err("no socket yet".into())
                })
            })?;
            start(st, paths, bgpd.0, bgpd.1)
        }
    }
}

/// Waits until the router's sessions (both families) to `nodes` are Established.
pub fn wait_sessions(
    paths: &Paths,
    topo: &Topology,
    nodes: Vec<NodeId>,
    within: Duration,
) -> Result<()> {
    crate::wait::poll_blocking("the router's BGP sessions to every node", within, || {
        let sessions = match routing::router_sessions(paths, topo) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let mut down = Vec::new();
        for n in &nodes {
            for f in [routing::Family::V4, routing::Family::V6] {
                match sessions.iter().find(|s| s.node == *n && s.family == f) {
                    Some(s) if s.established() => {}
                    Some(s) => down.push(format!("{n} {f:?}: {}", s.state)),
                    None => down.push(format!("{n} {f:?}: missing")),
                }
            }
        }
        Ok(if down.is_empty() {
            Ok(())
        } else {
            Err(down.join(", "))
        })
    })
}

fn clean_leftovers(paths: &Paths, progress: &mut dyn FnMut(&str)) -> Result<()> {
    if let Some(other) = state::owner()
        && other != paths.dir
        && other.join("state.json").is_file()
    {
        progress(&format!(
            "removing the lab started from {}",
            other.display()
        ));
        let other_paths = Paths {
            repo: other.parent().map(Path::to_path_buf).unwrap_or_default(),
            dir: other,
        };
        down_locked(&other_paths)?;
    }
    let report = down_locked(paths)?;
    if !report.is_empty() {
        progress(&format!(
            "removed leftovers of an earlier lab: {}",
            report.summary()
        ));
    }
    Ok(())
}

/// What `down` removed, and what it found but left alone.
#[derive(Debug, Default)]
pub struct DownReport {
    pub stopped: Vec<String>,
    pub namespaces: Vec<String>,
    /// Processes in lab namespaces that the lab did not record: reported, never killed.
    pub strays: Vec<String>,
}

impl DownReport {
    pub fn is_empty(&self) -> bool {
        self.stopped.is_empty() && self.namespaces.is_empty() && self.strays.is_empty()
    }
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} processes stopped, {} namespaces removed",
            self.stopped.len(),
            self.namespaces.len()
        );
        if !self.strays.is_empty() {
            s.push_str(&format!(
                "; processes the lab did not start are still in its namespaces (not killed): {}",
                self.strays.join("; ")
            ));
        }
        s
    }
}

/// Tears the lab down: every recorded process, every lab namespace, `.lab/`. Idempotent.
pub fn down(paths: &Paths) -> Result<DownReport> {
    require_root()?;
    let _lock = MachineLock::acquire(|holder| {
        eprintln!("lab: waiting for the lab lock (held by {holder})");
    })?;
    down_locked(paths)
}

/// `down` for a caller that already holds the machine lock.
pub fn down_locked(paths: &Paths) -> Result<DownReport> {
    let mut report = DownReport::default();
    match State::load(paths) {
        Ok(st) => {
            // Clients first, the control plane last, so nobody logs errors about it going.
            let mut ids: Vec<(Part, procs::ProcId)> = st
                .procs
                .iter()
                .filter_map(|(part, p)| Some((*part, p.id?)))
                .collect();
            ids.sort_by_key(|(part, _)| std::cmp::Reverse(*part));
            let (control, rest): (Vec<_>, Vec<_>) = ids
                .into_iter()
                .partition(|(p, _)| matches!(p, Part::Etcd | Part::Apiserver));
            for group in [rest, control] {
                let alive: Vec<_> = group
                    .into_iter()
                    .filter(|(_, id)| procs::alive(*id))
                    .collect();
                stop_parts(&alive);
                report
                    .stopped
                    .extend(alive.iter().map(|(p, _)| p.to_string()));
            }
        }
        Err(LabError::NoLab { .. }) => {}
        // A state file we cannot read: the namespaces still go, strays are reported below.
        Err(e) => eprintln!("lab: {e}; removing the network anyway"),
    }
    for ns in net::existing_namespaces()? {
        if t::is_lab_namespace(&ns) {
            for pid in procs::pids_in_netns(&ns) {
                report
                    .strays
                    .push(format!("{pid} in {ns}: {}", procs::cmdline(pid)));
            }
        }
    }
    report.namespaces = net::remove()?;
    if paths.dir.exists() {
        std::fs::remove_dir_all(&paths.dir).map_err(|source| LabError::WriteFile {
            path: paths.dir.clone(),
            source,
        })?;
    }
    if state::owner().as_deref() == Some(paths.dir.as_path()) {
        state::set_owner(None)?;
    }
    Ok(report)
}

/// What `lab kill` / `lab restart` act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One controller replica, or (`None`) all of them.
    Controller(Option<u8>),
    Speaker(NodeId),
    Bird(NodeId),
    /// Agent, speaker and BIRD stopped, links down: a dead machine.
    Node(NodeId),
    Apiserver,
    ControllerManager,
    Etcd,
    Router,
}

impl Target {
    /// Parses `controller` (every replica), `controller 2`, `speaker node2`, `node node2`, …
    pub fn parse(component: &str, node: Option<&str>) -> Result<Target> {
        let node_arg = || -> Result<NodeId> {
            node.ok_or_else(|| {
                LabError::Usage(format!(
                    "`{component}` needs a node, e.g. `{component} node2`"
                ))
            })?
            .parse()
            .map_err(LabError::Usage)
        };
        let no_node = |t: Target| match node {
            Some(n) => Err(LabError::Usage(format!(
                "`{component}` takes no node (got {n})"
            ))),
            None => Ok(t),
        };
        match component {
            "controller" => match node {
                None => Ok(Target::Controller(None)),
                Some(r) => match r.parse::<u8>() {
                    Ok(r) if (1..=CONTROLLER_REPLICAS).contains(&r) => {
                        Ok(Target::Controller(Some(r)))
                    }
                    _ => Err(LabError::Usage(format!(
                        "the lab runs controller replicas 1..{CONTROLLER_REPLICAS}; there is no {r:?}"
                    ))),
                },
            },
            "apiserver" => no_node(Target::Apiserver),
            "controller-manager" => no_node(Target::ControllerManager),
            "etcd" => no_node(Target::Etcd),
            "router" => no_node(Target::Router),
            "speaker" => Ok(Target::Speaker(node_arg()?)),
            "bird" => Ok(Target::Bird(node_arg()?)),
            "node" => Ok(Target::Node(node_arg()?)),
            other => Err(LabError::Usage(format!(
                "unknown component {other:?}: expected controller, speaker, bird, node, apiserver, controller-manager, etcd or router"
            ))),
        }
    }

    fn parts(self) -> Vec<Part> {
        match self {
            Target::Controller(Some(r)) => vec![Part::Controller(r)],
            Target::Controller(None) => (1..=CONTROLLER_REPLICAS).map(Part::Controller).collect(),
            Target::Speaker(n) => vec![Part::Speaker(n)],
            Target::Bird(n) => vec![Part::Bird(n)],
            Target::Node(n) => vec![Part::Speaker(n), Part::Agent(n), Part::Bird(n)],
            Target::Apiserver => vec![Part::Apiserver],
            Target::ControllerManager => vec![Part::ControllerManager],
            Target::Etcd => vec![Part::Etcd],
            Target::Router => vec![Part::RouterBgpd, Part::Router],
        }
    }

    fn node(self) -> Option<NodeId> {
        match self {
            Target::Speaker(n) | Target::Bird(n) | Target::Node(n) => Some(n),
            _ => None,
        }
    }
}

fn check_target(st: &State, target: Target) -> Result<()> {
    match target.node() {
        Some(n) if !st.topology().has_node(n) => Err(LabError::Usage(format!(
            "the lab has nodes node1..node{}; there is no {n}",
            st.nodes
        ))),
        _ => Ok(()),
    }
}

/// Stops a part of the running lab (by its recorded pid).
pub fn kill(paths: &Paths, target: Target) -> Result<()> {
    require_root()?;
    let mut st = State::load(paths)?;
    check_target(&st, target)?;
    let ids: Vec<_> = target
        .parts()
        .into_iter()
        .filter_map(|p| Some((p, st.procs.get_mut(&p)?.id.take()?)))
        .collect();
    if let Target::Node(n) = target {
        // A machine that dies says no goodbye: the links go first, then its processes are
        // killed outright (no BGP Cease, no last status update). The router notices by its
        // hold timer, Kubernetes by the missing Lease renewals.
        net::node_down(n)?;
        procs::stop_all(
            &ids.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
            Duration::ZERO,
        );
        if !st.killed_nodes.contains(&n.0) {
            st.killed_nodes.push(n.0);
        }
    } else {
        stop_parts(&ids);
    }
    st.save(paths)
}

/// Starts `target` again if it is down (`kill`ed, or a killed node), and leaves it alone if
/// it runs: for guards that put the lab back after a test that may have failed half-way.
/// Restarting a part the test already brought back would only take it away again.
pub fn restore(paths: &Paths, target: Target) -> Result<()> {
    let st = State::load(paths)?;
    check_target(&st, target)?;
    let node_killed = matches!(target, Target::Node(n) if st.killed_nodes.contains(&n.0));
    let part_down = target
        .parts()
        .iter()
        .any(|p| st.procs.get(p).is_some_and(|proc| proc.id.is_none()));
    if node_killed || part_down {
        restart(paths, target)
    } else {
        Ok(())
    }
}

/// Starts a part again (after `kill`, or stops and starts it if it runs).
pub fn restart(paths: &Paths, target: Target) -> Result<()> {
    require_root()?;
    let mut st = State::load(paths)?;
    check_target(&st, target)?;
    let parts = target.parts();
    let running: Vec<_> = parts
        .iter()
        .filter_map(|p| Some((*p, st.procs.get_mut(p)?.id.take()?)))
        .collect();
    stop_parts(&running);
    if let Target::Node(n) = target {
        net::node_up(n)?;
        st.killed_nodes.retain(|&k| k != n.0);
    }
    // Start in dependency order: BIRD before the speaker that talks to it, zebra before bgpd.
    let mut order = parts;
    order.sort();
    for part in order {
        let Some(spec) = st.procs.get(&part).map(|p| p.spec.clone()) else {
            continue;
        };
        start(&mut st, paths, part, spec)?;
        if part == Part::Apiserver {
            cp::wait_apiserver_ready(&st.k8s_dir, paths, Duration::from_secs(90))?;
        }
    }
    st.save(paths)
}

/// The log file of a component: `controller` (replica 1, or the replica given), `apiserver`, `controller-manager`, `etcd`,
/// `router`, `router-bgpd` (FRR), or `speaker`, `bird`, `agent` (alias `node`) with a node.
pub fn log_path(paths: &Paths, component: &str, node: Option<&str>) -> Result<PathBuf> {
    let node_id = || -> Result<NodeId> {
        node.ok_or_else(|| LabError::Usage(format!("`logs {component}` needs a node, e.g. node2")))?
            .parse()
            .map_err(LabError::Usage)
    };
    let part = match component {
        "controller" => match Target::parse(component, node)? {
            Target::Controller(Some(r)) => Part::Controller(r),
            _ => Part::Controller(1),
        },
        "speaker" => Part::Speaker(node_id()?),
        "bird" => Part::Bird(node_id()?),
        "agent" | "node" => Part::Agent(node_id()?),
        other => other.parse::<Part>().map_err(|_| {
            LabError::Usage(format!(
                "no logs for {other:?}: expected controller, apiserver, controller-manager, etcd, router, router-bgpd, or speaker/bird/agent with a node"
            ))
        })?,
    };
    Ok(paths.log(&part))
}

/// One line per process and node, for `lab status`.
pub fn status(paths: &Paths) -> Result<String> {
    let st = State::load(paths)?;
    let topo = st.topology();
    let mut out = format!(
        "lab in {} — {} nodes, router {}\nkubeconfig: {}\n\n{:<22} {:>8} {:>10}  state\n",
        paths.dir.display(),
        st.nodes,
        st.router,
        paths.kubeconfig().display(),
        "process",
        "pid",
        "rss MiB"
    );
    let mut control_plane_kib = 0;
    for (part, p) in &st.procs {
        let (pid, rss, state) = match p.id {
            Some(id) if procs::alive(id) => {
                let kib = procs::rss_kib(id).unwrap_or(0);
                if matches!(part, Part::Etcd | Part::Apiserver | Part::ControllerManager) {
                    control_plane_kib += kib;
                }
                (
                    id.pid.to_string(),
                    format!("{:.1}", kib as f64 / 1024.0),
                    "running",
                )
            }
            Some(id) => (id.pid.to_string(), "-".into(), "exited (see lab logs)"),
            None => ("-".into(), "-".into(), "stopped (lab kill)"),
        };
        out.push_str(&format!(
            "{:<22} {pid:>8} {rss:>10}  {state}\n",
            part.to_string()
        ));
    }
    out.push_str(&format!(
        "\ncontrol plane (etcd + apiserver + controller-manager) RSS: {:.1} MiB\n",
        control_plane_kib as f64 / 1024.0
    ));
    if !st.killed_nodes.is_empty() {
        out.push_str(&format!("killed nodes: {:?}\n", st.killed_nodes));
    }
    match routing::router_sessions(paths, &topo) {
        Ok(sessions) => {
            out.push_str("router BGP sessions:");
            for s in sessions {
                out.push_str(&format!(" {}/{:?}={}", s.node, s.family, s.state));
            }
            out.push('\n');
        }
        Err(e) => out.push_str(&format!("router BGP sessions: unavailable ({e})\n")),
    }
    if let Ok(nodes) =
        cmd::run(cp::kubectl(&st.k8s_dir, paths).args(["get", "nodes", "-o", "wide"]))
    {
        out.push('\n');
        out.push_str(&nodes);
    }
    Ok(out)
}
