//! `lab`: the ferrolb lab on this machine. See `lab --help`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferrolb_e2e::agent::{self, AgentConfig};
use ferrolb_e2e::lab::{self, Target, UpOptions};
use ferrolb_e2e::nodepeer::NodeDaemons;
use ferrolb_e2e::state::{MachineLock, Paths};
use ferrolb_e2e::topology::{NodeId, RouterKind};
use ferrolb_e2e::{demo, harness, routing};

/// A real Kubernetes control plane and a routed network of namespaces, with ferrolb in it.
#[derive(Parser, Debug)]
#[command(name = "lab", version)]
struct Cli {
    /// The ferrolb checkout whose .lab/ holds the lab's state.
    #[arg(long, env = "FERROLB_REPO", global = true)]
    repo: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build and start a lab (an existing one is removed first).
    Up {
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        #[arg(long, default_value = "bird")]
        router: RouterKind,
        /// Run FRR's bgpd or GoBGP instead of BIRD on some nodes, in the same role:
        /// `node2=frr,node3=gobgp`.
        #[arg(long, default_value = "")]
        node_daemons: NodeDaemons,
        /// Kubernetes binaries (default: built or found by e2e/scripts/build-k8s.sh).
        #[arg(long, env = "FERROLB_K8S_DIR")]
        k8s_dir: Option<PathBuf>,
    },
    /// Stop every process the lab started, remove its namespaces and .lab/.
    Down,
    /// Processes, memory, BGP sessions and nodes.
    Status,
    /// Stop a part: controller (both replicas) or controller 1|2, speaker NODE, bird NODE,
    /// node NODE, apiserver, controller-manager, etcd, router.
    Kill {
        component: String,
        node: Option<String>,
    },
    /// Start a part again (after kill, or stop and start).
    Restart {
        component: String,
        node: Option<String>,
    },
    /// Print a part's log: controller [1|2], apiserver, controller-manager, etcd, router,
    /// router-bgpd, or speaker/bird/agent NODE.
    Logs {
        component: String,
        node: Option<String>,
        /// Print the log file's path instead.
        #[arg(long)]
        path: bool,
    },
    /// Replace the static routes injected into a node's BIRD (none: remove them).
    Inject {
        node: NodeId,
        routes: Vec<ipnet::IpNet>,
    },
    /// Apply examples/lab/ and show what works (the end of `make lab`).
    Demo,
    /// Run the kubelet's and kube-proxy's part for one node (started by `up`).
    #[command(hide = true)]
    Agent {
        #[arg(long)]
        node: NodeId,
        #[arg(long)]
        kubeconfig: PathBuf,
    },
    /// Forward connections accepted in a lab namespace to the API server (started by `up`).
    #[command(hide = true)]
    Apiproxy {
        #[arg(long)]
        netns: String,
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        connect: std::net::SocketAddr,
    },
    /// Hold the lab lock, bring a lab up, print "ready", and tear it down when stdin closes
    /// (the e2e harness's guard).
    #[command(hide = true)]
    Hold {
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        #[arg(long, default_value = "bird")]
        router: RouterKind,
        #[arg(long, default_value = "")]
        node_daemons: NodeDaemons,
    },
}

fn main() -> std::process::ExitCode {
    // The message is for a person at a terminal: no backtrace, whatever RUST_BACKTRACE says.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let paths = cli.repo.map(Paths::new).unwrap_or_else(Paths::from_build);
    let started = std::time::Instant::now();
    let mut progress =
        |msg: &str| eprintln!("lab: [{:5.1} s] {msg}", started.elapsed().as_secs_f64());
    match cli.command {
        Cmd::Up {
            nodes,
            router,
            node_daemons,
            k8s_dir,
        } => {
            let started = std::time::Instant::now();
            let opts = UpOptions {
                nodes,
                router,
                node_daemons,
                bin_dir: harness::bin_dir(),
                k8s_dir,
            };
            lab::up(&paths, &opts, &mut progress)
                .context("lab up failed; `lab down` removes what was started")?;
            eprintln!(
                "lab: up in {:.1} s; kubectl --kubeconfig {} get nodes",
                started.elapsed().as_secs_f64(),
                paths.kubeconfig().display()
            );
        }
        Cmd::Down => {
            let report = lab::down(&paths)?;
            eprintln!("lab: down: {}", report.summary());
        }
        Cmd::Status => print!("{}", lab::status(&paths)?),
        Cmd::Kill { component, node } => {
            lab::kill(&paths, Target::parse(&component, node.as_deref())?)?
        }
        Cmd::Restart { component, node } => {
            lab::restart(&paths, Target::parse(&component, node.as_deref())?)?
        }
        Cmd::Logs {
            component,
            node,
            path,
        } => {
            let file = lab::log_path(&paths, &component, node.as_deref())?;
            if path {
                println!("{}", file.display());
            } else {
                let text =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                std::io::stdout().write_all(&text)?;
            }
        }
        Cmd::Inject { node, routes } => routing::inject(&paths, node, &routes)?,
        Cmd::Demo => demo::run(&paths)?,
        Cmd::Agent { node, kubeconfig } => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_ansi(false)
                .init();
            tokio::runtime::Runtime::new()?
                .block_on(agent::run(AgentConfig { node, kubeconfig }))?;
        }
        Cmd::Apiproxy {
            netns,
            listen,
            connect,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_ansi(false)
                .init();
            tokio::runtime::Runtime::new()?
                .block_on(ferrolb_e2e::apiproxy::run(&netns, listen, connect))?;
        }
        Cmd::Hold {
            nodes,
            router,
            node_daemons,
        } => hold(&paths, nodes, router, node_daemons)?,
    }
    Ok(())
}

fn hold(
    paths: &Paths,
    nodes: u8,
    router: RouterKind,
    node_daemons: NodeDaemons,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut progress = |msg: &str| {
        eprintln!(
            "lab hold: [{:5.1} s] {msg}",
            started.elapsed().as_secs_f64()
        )
    };
    lab::require_root()?;
    let _lock = MachineLock::acquire(|holder| {
        progress(&format!("waiting for the lab lock (held by {holder})"))
    })?;
    let opts = UpOptions {
        nodes,
        router,
        node_daemons,
        bin_dir: harness::bin_dir(),
        k8s_dir: None,
    };
    let mut stdout = std::io::stdout();
    if let Err(e) = lab::up_locked(paths, &opts, &mut progress) {
        let cleanup = lab::down_locked(paths);
        writeln!(stdout, "error: {:#}", anyhow::Error::from(e))?;
        cleanup?;
        std::process::exit(1);
    }
    progress(&format!(
        "lab up in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    // Blocks until the test binary exits (or closes its end).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let report = lab::down_locked(paths)?;
    progress(&format!("lab down: {}", report.summary()));
    Ok(())
}
