//! etcd, kube-apiserver and kube-controller-manager: how each is started, and how the lab
//! knows it is ready.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cmd;
use crate::error::{LabError, Result};
use crate::pki::Pki;
use crate::procs::ProcSpec;
use crate::state::{Part, Paths, Ports};
use crate::topology::{API_ADDR4, CLUSTER_IPS4, CLUSTER_IPS6};
use crate::wait::poll_blocking;

/// The controllers the lab runs: EndpointSlices from Pods; node health from Leases (and Pods
/// marked not ready on a dead node); owner-reference garbage collection (status objects owned
/// by Services); and the housekeeping namespaces and Pods need (a default ServiceAccount,
/// namespace deletion, pods on deleted nodes, aggregated ClusterRoles). No nodeipam, no
/// taint-based eviction: a killed node keeps its Pods, NotReady, until it returns.
pub const CONTROLLERS: &[&str] = &[
    "endpointslice-controller",
    "node-lifecycle-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "namespace-controller",
    "pod-garbage-collector-controller",
    "clusterrole-aggregation-controller",
];

pub fn etcd(k8s_dir: &Path, paths: &Paths, ports: &Ports) -> ProcSpec {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    ProcSpec {
        netns: None,
        program: k8s_dir.join("etcd"),
        args: vec![
            "--name=lab".into(),
            format!("--data-dir={}", paths.etcd_data().display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=lab={peer}"),
            // The lab is thrown away after use; fsync only costs time.
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ],
        env: vec![],
        log: paths.log(&Part::Etcd),
    }
}

pub fn apiserver(k8s_dir: &Path, paths: &Paths, pki: &Pki, ports: &Ports) -> ProcSpec {
    let p = |p: &PathBuf| p.display().to_string();
    ProcSpec {
        netns: None,
        program: k8s_dir.join("kube-apiserver"),
        args: vec![
            format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
            // Loopback only; nodes come in through `lab apiproxy` at API_ADDR4, which is
            // what the `kubernetes` Service's endpoints name.
            "--bind-address=127.0.0.1".into(),
            format!("--advertise-address={API_ADDR4}"),
            format!("--secure-port={}", ports.apiserver),
            format!("--tls-cert-file={}", p(&pki.apiserver_cert)),
            format!("--tls-private-key-file={}", p(&pki.apiserver_key)),
            format!("--client-ca-file={}", p(&pki.ca_cert)),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p(&pki.sa_pub)),
            format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
            // Dual-stack, so RequireDualStack Services are accepted.
            format!("--service-cluster-ip-range={CLUSTER_IPS4},{CLUSTER_IPS6}"),
            "--profiling=false".into(),
            "--v=1".into(),
        ],
        env: vec![],
        log: paths.log(&Part::Apiserver),
    }
}

pub fn controller_manager(k8s_dir: &Path, paths: &Paths, ports: &Ports) -> ProcSpec {
    ProcSpec {
        netns: None,
        program: k8s_dir.join("kube-controller-manager"),
        args: vec![
            format!("--kubeconfig={}", paths.kubeconfig().display()),
            format!("--controllers={}", CONTROLLERS.join(",")),
            // Node health: checked every second, a node silent for 5 s is NotReady.
            "--node-monitor-period=1s".into(),
            "--node-monitor-grace-period=5s".into(),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.controller_manager),
            // Defaults of 20 QPS would make 10,000-Service benchmarks measure this instead.
            "--kube-api-qps=500".into(),
            "--kube-api-burst=1000".into(),
            "--concurrent-service-endpoint-syncs=10".into(),
            "--v=1".into(),
        ],
        env: vec![],
        log: paths.log(&Part::ControllerManager),
    }
}

/// `kubectl --kubeconfig .lab/kubeconfig …`
pub fn kubectl(k8s_dir: &Path, paths: &Paths) -> Command {
    let mut c = Command::new(k8s_dir.join("kubectl"));
    c.arg("--kubeconfig").arg(paths.kubeconfig());
    c
}

/// Waits until the API server answers /readyz with "ok".
pub fn wait_apiserver_ready(k8s_dir: &Path, paths: &Paths, within: Duration) -> Result<()> {
    poll_blocking("the API server's /readyz", within, || {
        let out = cmd::output_any(kubectl(k8s_dir, paths).args(["get", "--raw=/readyz"]))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(if out.status.success() && text == "ok" {
            Ok(())
        } else {
            Err(format!(
                "{} {}",
                text,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
    })
}

/// Waits until the ServiceAccount controller made `default` in the default namespace
/// (Pods are refused until then) and every node is Ready.
pub fn wait_cluster_ready(
    k8s_dir: &Path,
    paths: &Paths,
    nodes: u8,
    within: Duration,
) -> Result<()> {
    poll_blocking("the default ServiceAccount", within, || {
        let out = cmd::output_any(kubectl(k8s_dir, paths).args([
            "get",
            "serviceaccount",
            "default",
            "-o",
            "name",
        ]))?;
        Ok(if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        })
    })?;
    poll_blocking(&format!("{nodes} Ready nodes"), within, || {
        let out = cmd::run(kubectl(k8s_dir, paths).args([
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        ]))?;
        let ready = out.lines().filter(|l| l.ends_with("=True")).count();
        Ok(if ready == usize::from(nodes) {
            Ok(())
        } else {
            Err(out.lines().collect::<Vec<_>>().join(" "))
        })
    })
}

/// Raises a clear error when a control-plane binary is missing.
pub fn check_binaries(k8s_dir: &Path) -> Result<()> {
    for b in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kubectl",
    ] {
        if !k8s_dir.join(b).is_file() {
            return Err(LabError::Missing {
                what: k8s_dir.join(b).display().to_string(),
                hint: "build it with e2e/scripts/build-k8s.sh".into(),
            });
        }
    }
    Ok(())
}
