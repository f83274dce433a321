//! ferrolb-speaker: makes the addresses assigned to LoadBalancer Services reachable from this
//! node, by ARP/NDP (L2 mode) or BGP.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Parser, ValueEnum};

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

    /// Serve only Services with this spec.loadBalancerClass. Unset: Services without a class.
    #[arg(long, env = "FERROLB_LOAD_BALANCER_CLASS", value_parser = NonEmptyStringValueParser::new())]
    load_balancer_class: Option<String>,

    /// Speaker liveness from a SWIM membership among the speakers (on), or from Node
    /// readiness (off: failover then waits for the node-lifecycle controller, tens of seconds).
    #[arg(long, env = "FERROLB_MEMBERSHIP", value_enum, default_value_t = OnOff::On)]
    membership: OnOff,

    /// UDP port of the membership, on every node.
    #[arg(long, env = "FERROLB_MEMBERSHIP_PORT", default_value_t = 7946)]
    membership_port: u16,

    /// The address other speakers reach this one at (the downward API's status.podIP, which
    /// is the node's with hostNetwork). Unset: the Node's first InternalIP.
    #[arg(long, env = "POD_IP")]
    membership_advertise_ip: Option<IpAddr>,

    /// The Secret whose data key "key" holds the membership's shared HMAC key.
    #[arg(
        long,
        env = "FERROLB_MEMBERSHIP_SECRET",
        default_value = "ferrolb-membership"
    )]
    membership_secret: String,

    /// The namespace of that Secret (the speaker's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
    membership_secret_namespace: String,

    /// How long a starting speaker waits to hear from every Ready node before it announces
    /// (a duration such as 3s).
    #[arg(long, env = "FERROLB_MEMBERSHIP_JOIN_TIMEOUT", default_value = "3s", value_parser = duration)]
    membership_join_timeout: Duration,

    /// Repeat gratuitous ARP / unsolicited neighbour advertisements for owned addresses this
    /// often (a duration such as 30s), for switches whose MAC tables forget quiet hosts.
    /// Unset: only when ownership starts.
    #[arg(long, env = "FERROLB_L2_REANNOUNCE_INTERVAL", value_parser = duration)]
    l2_reannounce_interval: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// Durations as the CRDs write them (ferrolb-api's parser: 90s, 3m, 1h30m), at least 1s.
fn duration(text: &str) -> Result<Duration, String> {
    match ferrolb_api::validate::parse_duration(text) {
        Some(d) if d >= Duration::from_secs(1) => Ok(d),
        Some(_) => Err("must be at least 1s".into()),
        None => Err("not a duration in whole seconds such as 30s, 3m or 1h30m".into()),
    }
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
        load_balancer_class: cli.load_balancer_class,
        membership: (cli.membership == OnOff::On).then_some(
            ferrolb_speaker::app::MembershipSettings {
                port: cli.membership_port,
                advertise_ip: cli.membership_advertise_ip,
                secret_namespace: cli.membership_secret_namespace,
                secret_name: cli.membership_secret,
                join_timeout: cli.membership_join_timeout,
            },
        ),
        l2_reannounce: cli.l2_reannounce_interval,
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
