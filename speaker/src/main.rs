//! ferrolb-speaker: makes the addresses assigned to LoadBalancer Services reachable from this
//! node, by ARP/NDP (L2 mode) or BGP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clap::builder::NonEmptyStringValueParser;

/// Makes LoadBalancer Service addresses reachable from this node (L2 or BGP).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The name of the Kubernetes Node this speaker runs on (the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME", value_parser = NonEmptyStringValueParser::new())]
    node_name: String,

    /// Address of the /healthz, /readyz and /metrics endpoints (the speaker uses the host's
    /// network, so pick a port free on every node).
    #[arg(long, env = "FERROLB_METRICS_ADDR", default_value = "0.0.0.0:9402")]
    metrics_addr: SocketAddr,

    /// Log level (error, warn, info, debug, trace) or directives (ferrolb=debug,kube=info).
    #[arg(long, env = "FERROLB_LOG_LEVEL", default_value = "info")]
    log_level: String,

    /// Kubeconfig file. Unset: the in-cluster service account, else ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = ferrolb_runtime::logging::init(&cli.log_level) {
        eprintln!("ferrolb-speaker: {:#}", anyhow::Error::from(e));
        return ExitCode::FAILURE;
    }
    let config = ferrolb_speaker::Config {
        node_name: cli.node_name,
        metrics_addr: cli.metrics_addr,
        kubeconfig: cli.kubeconfig,
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| Ok(rt.block_on(ferrolb_speaker::run(config))?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}
