//! The e2e tests' handle on the lab.
//!
//! One lab per test binary: the first `Lab::shared()` starts a guard process (`lab hold`)
//! that takes the machine-wide lab lock, builds the lab, and tears it down when the test binary
//! exits, however it exits (the guard sees its stdin close). Two test binaries therefore never
//! share or fight over the lab's namespaces: the second waits for the lock.
//!
//! Tests in one binary run in parallel and share the lab. A test that breaks parts of it
//! (kills a node, stops the API server) takes `Lab::exclusive()` instead, so that no other test
//! runs meanwhile, and puts back what it broke.
//!
//! ```no_run
//! # async fn t() -> Result<(), Box<dyn std::error::Error>> {
//! let lab = ferrolb_e2e::Lab::shared().await;
//! let ns = lab.namespace("demo").await?;
//! lab.create_ready_pod(&ns.name, "web-1", "node2", &[("app", "web")]).await?;
//! # Ok(()) }
//! ```

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::{OnceCell, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::agent;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::lab::{self, Target};
use crate::nodepeer::NodeDaemons;
use crate::routing::{self, Neighbour, Route, Session};
use crate::state::{Paths, State};
use crate::topology::{NodeId, RouterKind, Topology};
use crate::wait;

/// Which lab a test binary wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabConfig {
    pub nodes: u8,
    pub router: RouterKind,
    /// The nodes' routing daemons (`NodeDaemons::BIRD`: BIRD everywhere).
    pub node_daemons: NodeDaemons,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            nodes: 3,
            router: RouterKind::Bird,
            node_daemons: NodeDaemons::BIRD,
        }
    }
}

/// A running lab.
#[derive(Debug)]
pub struct Lab {
    pub paths: Paths,
    pub config: LabConfig,
    k8s_dir: PathBuf,
    /// Read: an ordinary test. Write: a test that breaks parts of the lab.
    turn: RwLock<()>,
}

static SHARED: OnceCell<std::result::Result<Lab, String>> = OnceCell::const_new();
/// The guard's stdin: open as long as this process lives; its closing tears the lab down.
static GUARD_STDIN: Mutex<Option<ChildStdin>> = Mutex::new(None);

/// A test's share of the lab (see the module comment).
#[derive(Debug)]
pub struct Shared {
    lab: &'static Lab,
    _turn: RwLockReadGuard<'static, ()>,
}

impl Deref for Shared {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        self.lab
    }
}

/// The lab for one test alone.
#[derive(Debug)]
pub struct Exclusive {
    lab: &'static Lab,
    _turn: RwLockWriteGuard<'static, ()>,
}

impl Deref for Exclusive {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        self.lab
    }
}

/// The directory of cargo's build output that holds this test binary, `lab` and ferrolb's
/// binaries (target/<profile>/).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/<profile>/deps.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// A lab guard process (`lab hold`): the lab lives as long as it does.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guard {
    /// Starts a guard and waits until its lab is up.
    pub fn start(config: LabConfig) -> Result<Guard> {
        lab::require_root()?;
        let program = bin_dir().join("lab");
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(&program)
            // Its own process group: a Ctrl-C stops the tests, and the guard then tears down.
            .process_group(0)
            .args([
                "hold",
                "--nodes",
                &config.nodes.to_string(),
                "--router",
                &config.router.to_string(),
                "--node-daemons",
                &config.node_daemons.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| LabError::SpawnCommand {
                command: format!("{} hold", program.display()),
                source,
            })?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            // Read errors show up as an empty line, handled below.
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() == "ready" {
            Ok(Guard { child, stdin })
        } else {
            let _ = child.wait();
            Err(LabError::CommandFailed {
                command: format!("{} hold", program.display()),
                status: "no lab".into(),
                stderr: line.trim().to_string(),
            })
        }
    }

    /// Tears the lab down (the guard runs `down` when its stdin closes) and waits for it.
    pub fn shutdown(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|source| LabError::SpawnCommand {
            command: "lab hold".into(),
            source,
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(LabError::CommandFailed {
                command: "lab hold (teardown)".into(),
                status: status.to_string(),
                stderr: "see the output above".into(),
            })
        }
    }

    /// Kills the guard without letting it tear down: leaves a lab behind, as a crash would.
    pub fn abandon(mut self) -> Result<()> {
        let _ = self.child.kill();
        self.child
            .wait()
            .map(drop)
            .map_err(|source| LabError::SpawnCommand {
                command: "lab hold".into(),
                source,
            })
    }
}

impl Lab {
    /// The default lab (3 nodes, BIRD router), shared by the tests of this binary.
    /// Panics with the reason when the lab cannot run (not root, missing tools, …): e2e tests
    /// fail then, they are never skipped.
    pub async fn shared() -> Shared {
        Self::shared_with(LabConfig::default()).await
    }

    /// Like `shared`, with a chosen lab; every test of one binary must ask for the same one.
    pub async fn shared_with(config: LabConfig) -> Shared {
        let lab = Self::get(config).await;
        Shared {
            lab,
            _turn: lab.turn.read().await,
        }
    }

    /// The lab for this test alone: waits for the other tests of this binary to finish with
    /// it and keeps them out until dropped.
    pub async fn exclusive() -> Exclusive {
        Self::exclusive_with(LabConfig::default()).await
    }

    pub async fn exclusive_with(config: LabConfig) -> Exclusive {
        let lab = Self::get(config).await;
        Exclusive {
            lab,
            _turn: lab.turn.write().await,
        }
    }

    async fn get(config: LabConfig) -> &'static Lab {
        let lab = SHARED
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || Self::start(config))
                    .await
                    .unwrap_or_else(|e| Err(format!("starting the lab panicked: {e}")))
            })
            .await;
        match lab {
            Ok(lab) if lab.config == config => lab,
            Ok(lab) => panic!(
                "this test binary's tests ask for different labs ({:?} and {config:?}); use one per binary",
                lab.config
            ),
            Err(e) => panic!("the lab is not available: {e}"),
        }
    }

    fn start(config: LabConfig) -> std::result::Result<Lab, String> {
        let guard = Guard::start(config).map_err(|e| e.to_string())?;
        let paths = Paths::from_build();
        let state = State::load(&paths).map_err(|e| e.to_string())?;
        // Kept open until the process exits; the guard then tears the lab down.
        let mut slot = GUARD_STDIN.lock().unwrap_or_else(|p| p.into_inner());
        *slot = guard.stdin;
        // Dropping a Child neither kills nor waits for it: the guard lives on.
        drop(guard.child);
        Ok(Lab {
            paths,
            config,
            k8s_dir: state.k8s_dir,
            turn: RwLock::new(()),
        })
    }

    pub fn topology(&self) -> Topology {
        Topology {
            nodes: self.config.nodes,
            router: self.config.router,
        }
    }

    pub fn nodes(&self) -> Vec<NodeId> {
        self.topology().node_ids().collect()
    }

    /// A new client of the lab's API server (admin). One per test: a client belongs to the
    /// runtime that made it.
    pub async fn client(&self) -> Client {
        agent::client(&self.paths.kubeconfig())
            .await
            .unwrap_or_else(|e| panic!("lab kubeconfig: {e}"))
    }

    /// `kubectl --kubeconfig .lab/kubeconfig <args>`, stdout on success.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_input(args, None).await
    }

    /// `kubectl --kubeconfig .lab/kubeconfig <args>` with `input` on stdin.
    pub async fn kubectl_input(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let mut c = crate::controlplane::kubectl(&self.k8s_dir, &self.paths);
        c.args(args);
        let input = input.map(str::to_string);
        blocking(move || match input {
            Some(i) => cmd::run_with_input(&mut c, &i),
            None => cmd::run(&mut c),
        })
        .await
    }

    /// `kubectl apply -f -` of (multi-document) YAML.
    pub async fn apply_yaml(&self, yaml: &str) -> Result<String> {
        self.kubectl_input(&["apply", "-f", "-"], Some(yaml)).await
    }

    /// A server-side dry run of creating `yaml`: `Ok` if the API server would accept it,
    /// `Err` with its message otherwise.
    pub async fn dry_run(&self, yaml: &str) -> std::result::Result<String, String> {
        self.kubectl_input(&["create", "--dry-run=server", "-f", "-"], Some(yaml))
            .await
            .map_err(|e| match e {
                LabError::CommandFailed { stderr, .. } => stderr,
                other => other.to_string(),
            })
    }

    /// A fresh namespace `<prefix>-<n>`, deleted when the returned value is dropped.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        let api: Api<Namespace> = Api::all(self.client().await);
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"generateName": format!("{prefix}-")}
        }))
        .map_err(|e| LabError::Usage(e.to_string()))?;
        let created = api
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|source| LabError::Kube {
                what: "create namespace".into(),
                source,
            })?;
        let name = created.metadata.name.unwrap_or_default();
        // Pods need the default ServiceAccount, which the controller-manager makes.
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(self.client().await, &name);
        wait::poll(
            "the namespace's default ServiceAccount",
            Duration::from_secs(30),
            || {
                let sas = sas.clone();
                async move { sas.get("default").await }
            },
        )
        .await?;
        Ok(TestNamespace {
            name,
            kubectl: self.k8s_dir.join("kubectl"),
            kubeconfig: self.paths.kubeconfig(),
        })
    }

    /// Creates a Service (e.g. from `lb_service`).
    pub async fn create_service(&self, ns: &str, svc: &Service) -> Result<Service> {
        let api: Api<Service> = Api::namespaced(self.client().await, ns);
        api.create(&PostParams::default(), svc)
            .await
            .map_err(|source| LabError::Kube {
                what: format!(
                    "create service {ns}/{}",
                    svc.metadata.name.as_deref().unwrap_or("")
                ),
                source,
            })
    }

    /// Creates a Pod on `node` and waits until the lab's agent reports it Ready with an IP.
    pub async fn create_ready_pod(
        &self,
        ns: &str,
        name: &str,
        node: &str,
        labels: &[(&str, &str)],
    ) -> Result<Pod> {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "app", "image": "lab.invalid/app"}],
                // Not evicted from a dead node while a test waits on it.
                "tolerations": [{"operator": "Exists"}],
            }
        }))
        .map_err(|e| LabError::Usage(e.to_string()))?;
        let api: Api<Pod> = Api::namespaced(self.client().await, ns);
        api.create(&PostParams::default(), &pod)
            .await
            .map_err(|source| LabError::Kube {
                what: format!("create pod {ns}/{name}"),
                source,
            })?;
        wait::poll(
            &format!("pod {ns}/{name} Ready on {node}"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                async move {
                    let p = api.get(name).await.map_err(|e| e.to_string())?;
                    if pod_ready(&p) && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
                    {
                        Ok(p)
                    } else {
                        Err(format!("status {:?}", p.status.map(|s| s.conditions)))
                    }
                }
            },
        )
        .await
    }

    /// Runs a command inside a lab namespace (`flb-node1`, `flb-client`, …).
    pub async fn exec(&self, netns: &str, argv: &[&str]) -> Result<Output> {
        let netns = netns.to_string();
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        blocking(move || {
            let mut c = cmd::in_netns(&netns, &argv[0]);
            c.args(&argv[1..]);
            cmd::output_any(&mut c)
        })
        .await
    }

    /// An HTTP GET from a namespace; the body (a lab node answers with its name).
    pub async fn http_get(&self, netns: &str, ip: IpAddr, port: u16) -> Result<String> {
        let url = match ip {
            IpAddr::V4(a) => format!("http://{a}:{port}/"),
            IpAddr::V6(a) => format!("http://[{a}]:{port}/"),
        };
        let out = self
            .exec(netns, &["curl", "-sS", "--max-time", "2", &url])
            .await?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(LabError::CommandFailed {
                command: format!("curl {url} in {netns}"),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// The router's kernel routes, both families.
    pub async fn router_routes(&self) -> Result<Vec<Route>> {
        blocking(|| routing::routes(crate::topology::ROUTER_NS)).await
    }

    /// The router's route to exactly `dst`, if any.
    pub async fn router_route(&self, dst: IpNet) -> Result<Option<Route>> {
        Ok(self
            .router_routes()
            .await?
            .into_iter()
            .find(|r| r.dst == dst))
    }

    /// The nodes a route points at (its next hops mapped to nodes).
    pub fn next_hop_nodes(&self, route: &Route) -> Vec<NodeId> {
        let topo = self.topology();
        let mut nodes: Vec<NodeId> = route
            .next_hops
            .iter()
            .filter_map(|ip| routing::node_by_addr(&topo, *ip))
            .collect();
        nodes.sort();
        nodes
    }

    /// A namespace's neighbour (ARP/NDP) table.
    pub async fn neighbours(&self, netns: &str) -> Result<Vec<Neighbour>> {
        let netns = netns.to_string();
        blocking(move || routing::neighbours(&netns)).await
    }

    /// The router's BGP sessions to the nodes.
    pub async fn router_sessions(&self) -> Result<Vec<Session>> {
        let paths = self.paths.clone();
        let topo = self.topology();
        blocking(move || routing::router_sessions(&paths, &topo)).await
    }

    /// Replaces the static routes injected into a node's BIRD (an empty list removes them).
    pub async fn inject_routes(&self, node: NodeId, routes: &[IpNet]) -> Result<()> {
        let paths = self.paths.clone();
        let routes = routes.to_vec();
        blocking(move || routing::inject(&paths, node, &routes)).await
    }

    /// `lab kill …`
    pub async fn kill(&self, target: Target) -> Result<()> {
        let paths = self.paths.clone();
        blocking(move || lab::kill(&paths, target)).await
    }

    /// `lab restart …`
    pub async fn restart(&self, target: Target) -> Result<()> {
        let paths = self.paths.clone();
        blocking(move || lab::restart(&paths, target)).await
    }

    /// Waits for the router's sessions to these nodes to be Established again.
    pub async fn wait_sessions(&self, nodes: &[NodeId], within: Duration) -> Result<()> {
        let paths = self.paths.clone();
        let topo = self.topology();
        let nodes = nodes.to_vec();
        blocking(move || lab::wait_sessions(&paths, &topo, nodes, within)).await
    }

    /// The MAC address of a node's segment interface.
    pub async fn node_mac(&self, node: NodeId) -> Result<String> {
        blocking(move || routing::mac_of(&node.netns(), "eth0")).await
    }
}

/// A namespace made for one test; deleted (without waiting) when dropped.
#[derive(Debug)]
pub struct TestNamespace {
    pub name: String,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Deref for TestNamespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

/// A LoadBalancer Service named `name`, selecting Pods labelled `app: <name>`, port 80.
pub fn lb_service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        }
    }))
    .expect("a Service built from constants deserialises")
}

/// Whether a Pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(LabError::Usage(format!("blocking task failed: {e}"))))
}
