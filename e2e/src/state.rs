//! Where the lab keeps things (`.lab/` in the repository) and the machine-wide lock.
//!
//! Namespaces and the management address are machine-wide, while `.lab/` belongs to one
//! checkout. So one lab runs per machine: a lock file under /run serialises every `lab up`,
//! `lab down` and test run, and an owner file names the `.lab/` directory of the running lab,
//! so a lab started from another checkout is torn down (by its own recorded pids) first.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::procs::{ProcId, ProcSpec};
use crate::topology::{NodeId, RouterKind, Topology};

/// Machine-wide lab coordination files.
pub const RUN_DIR: &str = "/run/ferrolb-lab";

/// The files of one lab, under `<repo>/.lab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub repo: PathBuf,
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(repo: impl Into<PathBuf>) -> Self {
        let repo = repo.into();
        let dir = repo.join(".lab");
        Paths { repo, dir }
    }
    /// The repository this crate was built from.
    pub fn from_build() -> Self {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        Paths::new(manifest.parent().unwrap_or(manifest))
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
    /// The kubeconfig for processes inside node namespaces (API server via the forwarder).
    pub fn node_kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig-node")
    }
    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn etcd_data(&self) -> PathBuf {
        self.dir.join("etcd")
    }
    pub fn bird_dir(&self) -> PathBuf {
        self.dir.join("bird")
    }
    pub fn frr_dir(&self) -> PathBuf {
        self.dir.join("frr")
    }
    /// BIRD's control socket for a node (`None`: the router).
    pub fn bird_socket(&self, node: Option<NodeId>) -> PathBuf {
        self.bird_dir().join(match node {
            Some(n) => format!("{}.ctl", n.name()),
            None => "router.ctl".to_string(),
        })
    }
    /// Routes the lab injects into a node's BIRD (`lab inject`, tests), included by its config.
    pub fn bird_injected(&self, node: NodeId) -> PathBuf {
        self.bird_dir()
            .join(format!("{}-injected.conf", node.name()))
    }
    /// The node BIRD configuration users copy; the lab includes it as it is.
    pub fn bird_node_template(&self) -> PathBuf {
        self.repo.join("examples/lab/bird/node.conf")
    }
    pub fn log(&self, part: &Part) -> PathBuf {
        self.logs().join(format!("{part}.log"))
    }
}

/// A process of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Etcd,
    Apiserver,
    /// The forwarder that lets nodes reach the API server.
    ApiProxy,
    ControllerManager,
    /// BIRD or FRR in flb-router (FRR is two processes: zebra and bgpd).
    Router,
    RouterBgpd,
    Bird(NodeId),
    /// The kubelet's and kube-proxy's part for one node.
    Agent(NodeId),
    Speaker(NodeId),
    /// A ferrolb-controller replica, 1 or 2 (one leads, the other stands by).
    Controller(u8),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Etcd => f.write_str("etcd"),
            Part::Apiserver => f.write_str("apiserver"),
            Part::ApiProxy => f.write_str("apiproxy"),
            Part::ControllerManager => f.write_str("controller-manager"),
            Part::Router => f.write_str("router"),
            Part::RouterBgpd => f.write_str("router-bgpd"),
            Part::Bird(n) => write!(f, "bird-{n}"),
            Part::Agent(n) => write!(f, "agent-{n}"),
            Part::Speaker(n) => write!(f, "speaker-{n}"),
            Part::Controller(r) => write!(f, "controller-{r}"),
        }
    }
}

impl FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let per_node = |rest: &str, make: fn(NodeId) -> Part| rest.parse::<NodeId>().map(make);
        match s {
            "etcd" => Ok(Part::Etcd),
            "apiserver" => Ok(Part::Apiserver),
            "apiproxy" => Ok(Part::ApiProxy),
            "controller-manager" => Ok(Part::ControllerManager),
            "router" => Ok(Part::Router),
            "router-bgpd" => Ok(Part::RouterBgpd),
            _ => {
                if let Some(rest) = s.strip_prefix("bird-") {
                    per_node(rest, Part::Bird)
                } else if let Some(rest) = s.strip_prefix("agent-") {
                    per_node(rest, Part::Agent)
                } else if let Some(rest) = s.strip_prefix("controller-") {
                    match rest.parse::<u8>() {
                        Ok(r) if (1..=CONTROLLER_REPLICAS).contains(&r) => Ok(Part::Controller(r)),
                        _ => Err(format!(
                            "{s:?} is not a lab process (controller-1 or controller-2)"
                        )),
                    }
                } else if let Some(rest) = s.strip_prefix("speaker-") {
                    per_node(rest, Part::Speaker)
                } else {
                    Err(format!("{s:?} is not a lab process"))
                }
            }
        }
    }
}

impl Serialize for Part {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A process the lab started, with what it takes to start it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proc {
    pub spec: ProcSpec,
    /// `None` while it is stopped on purpose (`lab kill`).
    pub id: Option<ProcId>,
}

/// The lab's ports on the root namespace's loopback. Picked free at every `lab up`: a fixed
/// port may be anybody's, and an API server would silently use a stranger's etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub controller_manager: u16,
    /// /healthz, /readyz and /metrics of each controller replica.
    pub controller_metrics: [u16; CONTROLLER_REPLICAS as usize],
}

/// How many ferrolb-controller processes the lab runs (as a Deployment's 2 replicas would).
pub const CONTROLLER_REPLICAS: u8 = 2;

impl Ports {
    /// Distinct ports that are free now (the kernel hands them out; they are released at
    /// once and taken by the lab's processes a moment later).
    pub fn pick() -> Result<Ports> {
        let listeners = (0..4 + usize::from(CONTROLLER_REPLICAS))
            .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
            .collect::<std::io::Result<Vec<_>>>()
            .and_then(|ls| {
                ls.iter()
                    .map(|l| Ok(l.local_addr()?.port()))
                    .collect::<std::io::Result<Vec<u16>>>()
            })
            .map_err(|source| LabError::Lock {
                path: "127.0.0.1 (picking free ports)".into(),
                source,
            })?;
        Ok(Ports {
            etcd_client: listeners[0],
            etcd_peer: listeners[1],
            apiserver: listeners[2],
            controller_manager: listeners[3],
            controller_metrics: [listeners[4], listeners[5]],
        })
    }
}

/// What `lab up` built; read back by every later command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub nodes: u8,
    pub router: RouterKind,
    pub repo: PathBuf,
    pub bin_dir: PathBuf,
    pub k8s_dir: PathBuf,
    pub ports: Ports,
    pub procs: BTreeMap<Part, Proc>,
    /// Nodes taken down with `lab kill node`.
    #[serde(default)]
    pub killed_nodes: Vec<u8>,
    /// The routing daemon of each node (`lab up --node-daemons`).
    #[serde(default)]
    pub node_daemons: crate::nodepeer::NodeDaemons,
}

impl State {
    pub fn topology(&self) -> Topology {
        Topology {
            nodes: self.nodes,
            router: self.router,
        }
    }

    pub fn load(paths: &Paths) -> Result<State> {
        let path = paths.state();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LabError::NoLab { path });
            }
            Err(source) => return Err(LabError::ReadFile { path, source }),
        };
        serde_json::from_str(&text).map_err(|source| LabError::ParseState { path, source })
    }

    /// Written atomically (rename), so a reader never sees half a file.
    pub fn save(&self, paths: &Paths) -> Result<()> {
        let path = paths.state();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|source| LabError::ParseState {
            path: path.clone(),
            source,
        })?;
        write_file(&tmp, &text)?;
        std::fs::rename(&tmp, &path).map_err(|source| LabError::WriteFile { path, source })
    }
}

pub fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LabError::WriteFile {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| LabError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}

/// The machine-wide lab lock, held while a lab is being built, torn down, or used by a test
/// binary. Released when dropped or when the holding process exits.
#[derive(Debug)]
pub struct MachineLock {
    _file: File,
}

impl MachineLock {
    /// Waits for the lock, telling `waiting` once who holds it.
    pub fn acquire(waiting: impl FnOnce(&str)) -> Result<MachineLock> {
        let dir = Path::new(RUN_DIR);
        std::fs::create_dir_all(dir).map_err(|source| LabError::Lock {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| LabError::Lock {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(dir.join("holder")).unwrap_or_default();
                waiting(holder.trim());
                file.lock().map_err(|source| LabError::Lock {
                    path: path.clone(),
                    source,
                })?;
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(LabError::Lock { path, source });
            }
        }
        let holder = format!(
            "pid {} ({})",
            std::process::id(),
            crate::procs::cmdline(std::process::id())
        );
        // Only informs waiters; failing to write it does not matter.
        let _ = File::create(dir.join("holder")).and_then(|mut f| f.write_all(holder.as_bytes()));
        Ok(MachineLock { _file: file })
    }
}

/// The `.lab/` directory of the lab that currently owns the machine's lab namespaces.
pub fn owner() -> Option<PathBuf> {
    let text = std::fs::read_to_string(Path::new(RUN_DIR).join("owner")).ok()?;
    let p = PathBuf::from(text.trim());
    (!p.as_os_str().is_empty()).then_some(p)
}

pub fn set_owner(dir: Option<&Path>) -> Result<()> {
    let path = Path::new(RUN_DIR).join("owner");
    match dir {
        Some(d) => write_file(&path, &d.display().to_string()),
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LabError::WriteFile { path, source }),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn part_names_round_trip() {
        for p in [
            Part::Etcd,
            Part::Apiserver,
            Part::ApiProxy,
            Part::ControllerManager,
            Part::Router,
            Part::RouterBgpd,
            Part::Controller(1),
            Part::Controller(2),
            Part::Bird(NodeId(3)),
            Part::Agent(NodeId(1)),
            Part::Speaker(NodeId(16)),
        ] {
            assert_eq!(p.to_string().parse::<Part>(), Ok(p));
        }
        assert!("speaker-router".parse::<Part>().is_err());
        assert!("controller-3".parse::<Part>().is_err());
    }
}
