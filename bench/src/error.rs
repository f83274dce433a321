use std::path::{Path, PathBuf};

/// What can go wrong while running the benchmarks or writing what they found.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a results file of `bench run`", path.display())]
    ParseResults {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode {what} as JSON")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status})")]
    CommandFailed { command: String, status: String },
    #[error("cannot draw {plot}: {message}")]
    Draw { plot: String, message: String },
    #[error("no benchmark program is named {name:?}; there are: {known}")]
    UnknownProgram { name: String, known: String },
}

/// Writes a file, creating its directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    let err = |source| BenchError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, bytes).map_err(err)
}
