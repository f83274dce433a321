//! `make bench`: runs every benchmark of ferrolb (the allocator's criterion bench and the
//! e2e `*_bench` programs in the lab), and writes what they measured three ways: the raw
//! results (`bench/results/<UTC>.json`), a report (`bench/REPORT.md`) and plots
//! (`bench/plots/*.png`). bench/README.md says how each figure is measured.
//!
//! The programs follow the contract of `ferrolb_e2e::benchjson`: one JSON record per measure,
//! appended to the file FERROLB_BENCH_OUT names.

pub mod criterion;
pub mod error;
pub mod facts;
pub mod plots;
pub mod report;
pub mod results;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use error::BenchError;
use results::Results;

/// Runs `programs` per `opts` and writes the results file under `out/results/`, then the
/// report and plots into `out`. Returns the results and where they were written.
pub fn run_all(
    opts: &run::Options,
    programs: &[run::Program],
    out: &Path,
) -> Result<(Results, PathBuf), BenchError> {
    let started_at = jiff::Timestamp::now();
    let started = Instant::now();
    let mut machine = facts::machine();
    let k8s = facts::k8s_dir(&opts.root);
    let versions = facts::versions(&opts.root, k8s.as_deref());
    if opts.build {
        run::build(opts, programs)?;
    }
    let build_s = started.elapsed().as_secs_f64();
    let mut runs = Vec::new();
    for repeat in 1..=opts.repeats {
        for p in programs {
            runs.push(run::run_program(opts, p, repeat));
        }
    }
    machine.load_end = facts::load_average();
    let results = Results {
        schema: results::SCHEMA,
        started: started_at.to_string(),
        finished: jiff::Timestamp::now().to_string(),
        duration_s: started.elapsed().as_secs_f64(),
        build_s,
        size: opts.size.as_str().to_owned(),
        profile: opts.profile().to_owned(),
        machine,
        versions,
        programs: runs,
    };
    let name = format!("{}.json", started_at.strftime("%Y%m%dT%H%M%SZ"));
    let path = out.join("results").join(name);
    results.write(&path)?;
    render(&results, out, &path)?;
    Ok((results, path))
}

/// What went wrong in a run, one line each: programs that failed, were killed or wrote no
/// figure, and lines that were not records. Empty when every program did its job (missed
/// targets are figures, not failures).
pub fn failures(results: &Results) -> Vec<String> {
    let mut out = Vec::new();
    for p in &results.programs {
        if !p.outcome.passed() {
            out.push(format!(
                "{} (repeat {}) {}: see {}",
                p.name, p.repeat, p.outcome, p.log
            ));
        } else if p.records.is_empty() {
            out.push(format!(
                "{} (repeat {}) wrote no figure: see {}",
                p.name, p.repeat, p.log
            ));
        }
        for problem in &p.problems {
            out.push(format!("{}: {problem}", p.name));
        }
    }
    out
}

/// Writes `out/REPORT.md` and `out/plots/` from `results` (stored at `results_path`).
pub fn render(results: &Results, out: &Path, results_path: &Path) -> Result<(), BenchError> {
    let rows = report::rows(results);
    let plot_dir = out.join("plots");
    // Plots of an earlier run that this one does not draw would contradict the report.
    if let Ok(old) = std::fs::read_dir(&plot_dir) {
        for f in old.filter_map(Result::ok) {
            if f.path().extension().is_some_and(|e| e == "png") {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
    let plots = plots::draw_all(&rows, &plot_dir)?;
    let rel = results_path
        .strip_prefix(out)
        .unwrap_or(results_path)
        .display()
        .to_string();
    let md = report::markdown(results, &rows, &plots, &rel);
    error::write_file(&out.join("REPORT.md"), md.as_bytes())
}
