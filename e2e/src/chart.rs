//! The Helm chart in the lab: Helm itself (built by e2e/scripts/build-helm.sh), rendering
//! charts/ferrolb, and the identities the lab's controller and speakers run with.
//!
//! The lab runs ferrolb's programs as processes, not Pods, but with the rights the chart
//! gives them: `lab up` renders the chart, applies its ServiceAccounts, RBAC and membership
//! Secret into [`NAMESPACE`], asks the TokenRequest API for a token of each ServiceAccount,
//! and writes a kubeconfig per program that holds nothing but that token. Every e2e test
//! therefore also proves that the chart's RBAC is enough for what it exercises.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

use crate::cmd;
use crate::controlplane::kubectl;
use crate::error::{LabError, Result};
use crate::pki::{self, Pki};
use crate::state::{Paths, State, write_file};

/// The release namespace of the lab's ferrolb (the Lease, the membership Secret).
pub const NAMESPACE: &str = "ferrolb-system";
/// The release name the lab renders the chart with.
pub const RELEASE: &str = "ferrolb";
/// The chart's ServiceAccount names for release [`RELEASE`].
pub const CONTROLLER_ACCOUNT: &str = "ferrolb-controller";
pub const SPEAKER_ACCOUNT: &str = "ferrolb-speaker";
/// BGP password Secrets (in [`NAMESPACE`]) the lab's speakers may read: a test that gives a
/// BGPPeer a `passwordSecret` uses one of these names (the chart's `bgp.passwordSecrets`).
pub const PASSWORD_SECRETS: &[&str] = &["bgp-password", "bgp-password-2"];
/// Kinds of the chart that give the programs their identity and rights (its workloads need
/// a container runtime, which the lab does not have).
const IDENTITY_KINDS: &[&str] = &[
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Secret",
];
/// How long the programs' tokens are valid: longer than any lab lives.
const TOKEN_DURATION: &str = "8760h";

/// The chart in the repository.
pub fn dir(paths: &Paths) -> PathBuf {
    paths.repo.join("charts/ferrolb")
}

/// The kubeconfig of the lab's controller (root namespace, API server on loopback).
pub fn controller_kubeconfig(paths: &Paths) -> PathBuf {
    paths.dir.join("kubeconfig-controller")
}

/// The kubeconfig of the lab's speakers (node namespaces, API server through the forwarder).
pub fn speaker_kubeconfig(paths: &Paths) -> PathBuf {
    paths.dir.join("kubeconfig-speaker")
}

/// The helm binary, building it on first use (a few minutes; cached in ~/.cache/ferrolb).
pub fn helm(paths: &Paths) -> Result<PathBuf> {
    let script = paths.repo.join("e2e/scripts/build-helm.sh");
    let out = cmd::output(
        Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit()),
    )?;
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    if Path::new(&path).is_file() {
        Ok(PathBuf::from(path))
    } else {
        Err(LabError::ParseOutput {
            command: script.display().to_string(),
            detail: format!("no helm binary at {path:?}"),
        })
    }
}

/// `helm template RELEASE charts/ferrolb --namespace NS ARGS…`: the rendered manifests.
pub fn template(
    helm: &Path,
    paths: &Paths,
    release: &str,
    namespace: &str,
    args: &[&str],
) -> Result<String> {
    cmd::run(
        Command::new(helm)
            .arg("template")
            .arg(release)
            .arg(dir(paths))
            .args(["--namespace", namespace])
            .args(args),
    )
}

/// The objects of a multi-document YAML stream (empty documents left out).
pub fn documents(yaml: &str) -> Result<Vec<Value>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let v = Value::deserialize(doc).map_err(|e| LabError::ParseOutput {
            command: "helm template".into(),
            detail: e.to_string(),
        })?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// The values the lab renders the chart with.
pub fn lab_values() -> Vec<String> {
    vec![
        "--set".into(),
        format!("bgp.passwordSecrets={{{}}}", PASSWORD_SECRETS.join(",")),
    ]
}

/// Applies the chart's ServiceAccounts, RBAC and membership Secret in [`NAMESPACE`] and writes
/// the controller's and the speakers' token kubeconfigs.
pub fn install_identities(paths: &Paths, st: &State, helm: &Path) -> Result<()> {
    let values = lab_values();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let rendered = template(helm, paths, RELEASE, NAMESPACE, &values)?;
    let mut identity = String::new();
    for doc in documents(&rendered)? {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        if IDENTITY_KINDS.contains(&kind) {
            identity.push_str("---\n");
            identity.push_str(
                &serde_yaml::to_string(&doc).map_err(|e| LabError::ParseOutput {
                    command: "helm template".into(),
                    detail: e.to_string(),
                })?,
            );
        }
    }
    let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n");
    cmd::run_with_input(
        kubectl(&st.k8s_dir, paths).args(["apply", "-f", "-"]),
        &namespace,
    )?;
    cmd::run_with_input(
        kubectl(&st.k8s_dir, paths).args(["apply", "-f", "-"]),
        &identity,
    )?;
    let ca = Pki::at(paths).ca_cert;
    for (account, file, server) in [
        (
            CONTROLLER_ACCOUNT,
            controller_kubeconfig(paths),
            pki::apiserver_url(st.ports.apiserver),
        ),
        (
            SPEAKER_ACCOUNT,
            speaker_kubeconfig(paths),
            pki::apiserver_url_from_nodes(),
        ),
    ] {
        let token = cmd::run(kubectl(&st.k8s_dir, paths).args([
            "create",
            "token",
            account,
            "--namespace",
            NAMESPACE,
            "--duration",
            TOKEN_DURATION,
        ]))?;
        write_file(
            &file,
            &token_kubeconfig(&server, &ca, account, token.trim()),
        )?;
    }
    Ok(())
}

/// A kubeconfig whose only credential is a ServiceAccount token.
fn token_kubeconfig(server: &str, ca: &Path, account: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ferrolb-lab
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {account}
  user:
    token: {token}
contexts:
- name: {account}
  context:
    cluster: ferrolb-lab
    user: {account}
    namespace: {NAMESPACE}
current-context: {account}
",
        ca = ca.display(),
    )
}

/// The metric families docs/metrics.md lists: the backquoted `ferrolb_*` name at the start of
/// each table row, as exposition `# TYPE` lines name them (without a counter's `_total` or
/// an info metric's `_info`).
pub fn documented_metric_families(paths: &Paths) -> Result<std::collections::BTreeSet<String>> {
    let path = paths.repo.join("docs/metrics.md");
    let text = std::fs::read_to_string(&path).map_err(|source| LabError::ReadFile {
        path: path.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("| `ferrolb_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| {
            let family = name
                .strip_suffix("_total")
                .or_else(|| name.strip_suffix("_info"))
                .unwrap_or(name);
            format!("ferrolb_{family}")
        })
        .collect())
}
