use std::path::PathBuf;

/// What went wrong while building, running or tearing down the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "the lab needs root (it creates network namespaces and runs BIRD); run it as root (e.g. `sudo make lab`, `sudo make test`)"
    )]
    NotRoot,
    #[error("cannot start `{command}`")]
    SpawnCommand {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot read {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a lab state file")]
    ParseState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no lab is running here (no {}); start one with `lab up`", path.display())]
    NoLab { path: PathBuf },
    #[error("timed out after {seconds} s waiting for {what}{}", last.as_deref().map(|l| format!("; last seen: {l}")).unwrap_or_default())]
    Timeout {
        what: String,
        seconds: u64,
        last: Option<String>,
    },
    #[error("{what} is missing: {hint}")]
    Missing { what: String, hint: String },
    #[error("{0}")]
    Usage(String),
    #[error("kubernetes request failed: {what}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot load the lab kubeconfig {}", path.display())]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("unexpected output from `{command}`: {detail}")]
    ParseOutput { command: String, detail: String },
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;
