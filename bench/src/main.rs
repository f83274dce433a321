//! `bench`: `make bench` and `make bench-smoke` (see lib.rs and bench/README.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ferrolb_bench::{results::Results, run};
use ferrolb_e2e::benchjson::{BenchSize, parse_size};

#[derive(Parser)]
#[command(about = "Runs ferrolb's benchmarks and writes the results, REPORT.md and plots")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build, run every benchmark program, write results/<UTC>.json, REPORT.md and plots/.
    Run {
        /// `full` (the issues' sizes) or `smoke` (tiny: proves every scenario still runs).
        #[arg(long, env = "FERROLB_BENCH_SIZE", default_value = "full")]
        size: String,
        /// Build and run release binaries (the figures `make bench` reports).
        #[arg(long)]
        release: bool,
        /// Runs of each program; their samples are merged, the report shows each run's p50.
        #[arg(long, default_value_t = 1)]
        repeats: u32,
        /// Only these programs (repeatable), e.g. `--only system_bench`.
        #[arg(long)]
        only: Vec<String>,
        /// Where results/, REPORT.md and plots/ go.
        #[arg(long, default_value = "bench")]
        out: PathBuf,
        /// Skip the build step (binaries are already built for this profile).
        #[arg(long)]
        no_build: bool,
        /// Deadline of one program run, in minutes (the 10k-Service steps take 5 to 10 minutes
        /// on the 2-core lab machine).
        #[arg(long, default_value_t = 30)]
        timeout_min: u64,
    },
    /// Redraw REPORT.md and plots/ from a results file.
    Render {
        results: PathBuf,
        #[arg(long, default_value = "bench")]
        out: PathBuf,
    },
    /// List the benchmark programs of this checkout.
    List,
}

/// The repository root: this crate's parent directory.
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = root();
    match cli.command {
        Cmd::List => {
            for p in run::programs(&root) {
                println!("{} ({:?})", p.name, p.kind);
            }
        }
        Cmd::Render { results, out } => {
            let r = Results::read(&results)?;
            ferrolb_bench::render(&r, &out, &results)?;
            println!(
                "wrote {} and {}",
                out.join("REPORT.md").display(),
                out.join("plots").display()
            );
        }
        Cmd::Run {
            size,
            release,
            repeats,
            only,
            out,
            no_build,
            timeout_min,
        } => {
            let size: BenchSize = parse_size(Some(&size))?;
            if repeats == 0 {
                bail!("--repeats must be at least 1");
            }
            let mut programs = run::programs(&root);
            for name in &only {
                if !programs.iter().any(|p| &p.name == name) {
                    let known: Vec<String> = programs.iter().map(|p| p.name.clone()).collect();
                    return Err(ferrolb_bench::BenchError::UnknownProgram {
                        name: name.clone(),
                        known: known.join(", "),
                    }
                    .into());
                }
            }
            if !only.is_empty() {
                programs.retain(|p| only.contains(&p.name));
            }
            let target_dir = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            let stamp = jiff::Timestamp::now()
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string();
            let opts = run::Options {
                root: root.clone(),
                logs: target_dir.join("bench-logs").join(stamp),
                target_dir,
                size,
                release,
                repeats,
                build: !no_build,
                timeout: Duration::from_secs(timeout_min * 60),
            };
            let out = if out.is_absolute() {
                out
            } else {
                root.join(out)
            };
            let (results, path) = ferrolb_bench::run_all(&opts, &programs, &out)
                .context("the benchmark run did not complete")?;
            println!(
                "bench: wrote {}, {} and {} in {:.0} s",
                path.display(),
                out.join("REPORT.md").display(),
                out.join("plots").display(),
                results.duration_s
            );
            let failed = ferrolb_bench::failures(&results);
            if !failed.is_empty() {
                bail!(
                    "{} benchmark problem(s) (the report lists them too):\n  {}",
                    failed.len(),
                    failed.join("\n  ")
                );
            }
        }
    }
    Ok(())
}
