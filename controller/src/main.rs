//! ferrolb-controller: assigns addresses from IPAddressPools to LoadBalancer Services.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferrolb_controller::leader::LeaseConfig;

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

    /// Namespace of the leader election Lease (in a cluster: the controller's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
    lease_namespace: String,

    /// Name of the leader election Lease.
    #[arg(long, env = "FERROLB_LEASE_NAME", default_value = "ferrolb-controller")]
    lease_name: String,

    /// This replica's name in the Lease (a random suffix is added per process). Unset: the
    /// host name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// How long the Lease holds without renewal; a standby takes over after it.
    #[arg(long, env = "FERROLB_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    lease_duration: Duration,

    /// How long the leader keeps trying to renew before it stops writing (shorter than the
    /// lease duration).
    #[arg(long, env = "FERROLB_RENEW_DEADLINE", default_value = "10s", value_parser = duration)]
    renew_deadline: Duration,

    /// How often the leader renews and a standby looks (shorter than the renew deadline).
    #[arg(long, env = "FERROLB_RETRY_PERIOD", default_value = "2s", value_parser = duration)]
    retry_period: Duration,

    /// API requests per second this replica may send (0: no limit). Watches are not counted.
    #[arg(long, env = "FERROLB_KUBE_API_QPS", default_value_t = 1000.0)]
    kube_api_qps: f64,

    /// Requests that may be sent at once above the per-second rate.
    #[arg(long, env = "FERROLB_KUBE_API_BURST", default_value_t = 2000)]
    kube_api_burst: u32,

    /// Services reconciled at once (each is at most three requests: status, annotation, Event).
    #[arg(long, env = "FERROLB_CONCURRENCY", default_value_t = 64)]
    concurrency: u16,

    /// How long a freed address is avoided while others are free (clients and caches may
    /// still point at it).
    #[arg(long, env = "FERROLB_REUSE_DELAY", default_value = "5m", value_parser = duration)]
    reuse_delay: Duration,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Convert(ferrolb_controller::migrate::ConvertArgs),
}

/// `250ms`, `15s`, `5m`, `1h`, or a number of seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 250ms, 15s, 5m or 1h"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is not a usable duration"))
}

/// A `holderIdentity` unique to this process: a restarted replica does not pass for the
/// one that held the Lease before it.
fn identity(base: Option<String>) -> String {
    let base = base.filter(|b| !b.trim().is_empty()).unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "ferrolb-controller".into())
    });
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{base}_{:08x}", h.finish() as u32)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Convert(args)) = &cli.command {
        return ferrolb_controller::migrate::cli::main(args);
    }
    if let Err(e) = ferrolb_runtime::logging::init(&cli.log_level) {
        eprintln!("ferrolb-controller: {:#}", anyhow::Error::from(e));
        return ExitCode::FAILURE;
    }
    let config = ferrolb_controller::Config {
        metrics_addr: cli.metrics_addr,
        kubeconfig: cli.kubeconfig,
        load_balancer_class: cli.load_balancer_class,
        lease: LeaseConfig {
            namespace: cli.lease_namespace,
            name: cli.lease_name,
            identity: identity(cli.identity),
            lease_duration: cli.lease_duration,
            renew_deadline: cli.renew_deadline,
            retry_period: cli.retry_period,
        },
        kube_api_qps: cli.kube_api_qps,
        kube_api_burst: cli.kube_api_burst,
        concurrency: cli.concurrency,
        reuse_delay: cli.reuse_delay,
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
