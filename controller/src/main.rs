//! ferrolb-controller: assigns addresses from IPAddressPools to LoadBalancer Services.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Assigns addresses from ferrolb.io IPAddressPools to Services of type LoadBalancer.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, env = "FERROLB_METRICS_ADDR", default_value = "0.0.0.0:9401")]
    metrics_addr: SocketAddr,

    /// Log level (error, warn, info, debug, trace) or directives (ferrolb=debug,kube=info).
    #[arg(long, env = "FERROLB_LOG_LEVEL", default_value = "info")]
    log_level: String,

    /// Kubeconfig file. Unset: the in-cluster service account, else ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,

    /// Serve only Services with this spec.loadBalancerClass. Unset: Services without a class.
    #[arg(long, env = "FERROLB_LOAD_BALANCER_CLASS")]
    load_balancer_class: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = ferrolb_runtime::logging::init(&cli.log_level) {
        eprintln!("ferrolb-controller: {:#}", anyhow::Error::from(e));
        return ExitCode::FAILURE;
    }
    let config = ferrolb_controller::Config {
        metrics_addr: cli.metrics_addr,
        kubeconfig: cli.kubeconfig,
        load_balancer_class: cli.load_balancer_class,
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| Ok(rt.block_on(ferrolb_controller::run(config))?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}
