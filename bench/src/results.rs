//! What one `make bench` run leaves: `bench/results/<UTC timestamp>.json`.
//!
//! Everything the report and the plots show is computed from this file alone (`bench render`
//! redraws them from it), so the raw samples and the report cannot disagree.

use std::collections::BTreeMap;
use std::path::Path;

use ferrolb_e2e::benchjson::Record;
use serde::{Deserialize, Serialize};

use crate::error::BenchError;

/// The version of this file's layout.
pub const SCHEMA: u32 = 1;

/// One run of `bench run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema: u32,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: String,
    /// Wall time of the whole run, builds included.
    pub duration_s: f64,
    /// Wall time of the builds alone (cargo build/test --no-run before any program ran).
    pub build_s: f64,
    /// `smoke` or `full` (FERROLB_BENCH_SIZE given to every program).
    pub size: String,
    /// The cargo profile of ferrolb's binaries and the benchmark programs.
    pub profile: String,
    pub machine: Machine,
    /// Component → version string (git commit, rustc, Kubernetes, etcd, BIRD, FRR, GoBGP).
    pub versions: BTreeMap<String, String>,
    /// Every program run, in the order run (a program repeated appears once per repeat).
    pub programs: Vec<ProgramRun>,
}

/// Facts about the machine the figures come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub debian: String,
    /// The 1-minute load average when the run started and when it ended: other work on the
    /// machine (builds of other checkouts) shows here and in the figures.
    pub load_start: f64,
    pub load_end: f64,
}

/// How a benchmark program is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramKind {
    /// A criterion bench (`cargo bench -p <package> --bench <name>`).
    Criterion,
    /// An e2e test binary of ignored benchmark tests (`cargo test -p ferrolb-e2e --test <name>`).
    E2e,
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    /// Non-zero exit (a failed benchmark test, a build error…); its figures are still kept.
    Failed {
        status: String,
    },
    /// Killed at the program's deadline.
    TimedOut {
        after_s: f64,
    },
    /// Could not be started at all.
    NotStarted {
        reason: String,
    },
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Passed)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Passed => f.write_str("passed"),
            Outcome::Failed { status } => write!(f, "failed ({status})"),
            Outcome::TimedOut { after_s } => write!(f, "killed after {after_s:.0} s"),
            Outcome::NotStarted { reason } => write!(f, "not started: {reason}"),
        }
    }
}

/// One run of one program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramRun {
    pub name: String,
    pub kind: ProgramKind,
    /// 1-based repeat number.
    pub repeat: u32,
    pub outcome: Outcome,
    pub duration_s: f64,
    /// Its whole output (not committed: under target/).
    pub log: String,
    pub records: Vec<Record>,
    /// Lines of its FERROLB_BENCH_OUT that were not records, or figures that could not be
    /// read: each names what was wrong.
    pub problems: Vec<String>,
}

impl Results {
    pub fn read(path: &Path) -> Result<Results, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| BenchError::ParseResults {
            path: path.to_owned(),
            source,
        })
    }

    pub fn write(&self, path: &Path) -> Result<(), BenchError> {
        let text = serde_json::to_string_pretty(self).map_err(|source| BenchError::Encode {
            what: "the results".into(),
            source,
        })?;
        crate::error::write_file(path, text.as_bytes())
    }
}
