//! The allocator's criterion benchmark as records: criterion's saved samples
//! (`$CRITERION_HOME/<group>/<function>/<value>/new/{benchmark,sample}.json`) and the figures
//! the bench prints before criterion runs (bytes per held address).

use std::path::{Path, PathBuf};

use ferrolb_e2e::benchjson::{self, Record, Stat};
use serde::Deserialize;

/// The scenario name of every allocator record.
pub const SCENARIO: &str = "allocator";

/// Issue 4's targets.
const ASSIGN_P50_US_AT_100K: f64 = 5.0;
const LOAD_100K_MS: f64 = 500.0;
const BYTES_PER_ADDRESS: f64 = 200.0;

#[derive(Debug, Deserialize)]
struct BenchmarkId {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SavedSample {
    iters: Vec<f64>,
    times: Vec<f64>,
}

/// Every `new/benchmark.json` under `dir`.
fn benchmark_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            let id = p.join("new").join("benchmark.json");
            if p.file_name().is_some_and(|n| n != "new" && n != "base") && id.is_file() {
                out.push(id);
            }
            benchmark_files(&p, out);
        }
    }
}

/// Records of every benchmark criterion saved under `home`, and what could not be read.
pub fn records(home: &Path) -> (Vec<Record>, Vec<String>) {
    let mut files = Vec::new();
    benchmark_files(home, &mut files);
    let mut records = Vec::new();
    let mut problems = Vec::new();
    if files.is_empty() {
        problems.push(format!(
            "criterion saved no sample under {}",
            home.display()
        ));
    }
    for f in files {
        match read_one(&f) {
            Ok(r) => records.push(r),
            Err(e) => problems.push(e),
        }
    }
    records.extend(growth(&records));
    (records, problems)
}

fn read_one(id_file: &Path) -> Result<Record, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let id: BenchmarkId =
        serde_json::from_str(&read(id_file)?).map_err(|e| format!("{}: {e}", id_file.display()))?;
    let sample_file = id_file.with_file_name("sample.json");
    let sample: SavedSample = serde_json::from_str(&read(&sample_file)?)
        .map_err(|e| format!("{}: {e}", sample_file.display()))?;
    let size: u64 = id
        .value_str
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let function = id.function_id.unwrap_or_default();
    // Each criterion sample is a batch: its mean time per iteration is one sample here.
    let per_iter_ns: Vec<f64> = sample
        .iters
        .iter()
        .zip(&sample.times)
        .filter(|(i, _)| **i > 0.0)
        .map(|(i, t)| t / i)
        .collect();
    Ok(record_for(&id.group_id, &function, size, &per_iter_ns))
}

/// One criterion benchmark as a record, with issue 4's target where it names one.
pub fn record_for(group: &str, function: &str, size: u64, per_iter_ns: &[f64]) -> Record {
    let (measure, unit, scale) = match group {
        "assign_with_n_held" => (format!("assign ({function})"), "µs", 1e-3),
        "release_with_n_held" => (format!("release ({function})"), "µs", 1e-3),
        "load" => (
            format!("load of {size} assignments ({function})"),
            "ms",
            1e-6,
        ),
        other => (format!("{other} ({function})"), "µs", 1e-3),
    };
    let samples = per_iter_ns.iter().map(|v| v * scale).collect();
    let r = Record::new(SCENARIO, measure, unit, size, samples);
    match group {
        "assign_with_n_held" if size == 100_000 => r.target(Stat::P50, ASSIGN_P50_US_AT_100K),
        "load" if size == 100_000 => r.target(Stat::P50, LOAD_100K_MS),
        _ => r,
    }
}

/// The growth of assign time from 1k to 100k held, against logarithmic growth
/// (log 100k / log 1k = 5/3): a balanced search may grow that much, no more.
fn growth(records: &[Record]) -> Vec<Record> {
    let bound = (100_000f64).ln() / (1_000f64).ln();
    let mut out = Vec::new();
    for big in records
        .iter()
        .filter(|r| r.size == 100_000 && r.measure.starts_with("assign ("))
    {
        let Some(small) = records
            .iter()
            .find(|r| r.size == 1_000 && r.measure == big.measure)
        else {
            continue;
        };
        if let (Some(b), Some(s)) = (benchjson::p50(&big.samples), benchjson::p50(&small.samples))
            && s > 0.0
        {
            let world = big.measure.trim_start_matches("assign ");
            out.push(
                Record::new(
                    SCENARIO,
                    format!("assign time growth 1k → 100k held {world}, p50 ratio"),
                    "×",
                    100_000,
                    vec![b / s],
                )
                .target(Stat::Worst, (bound * 1000.0).round() / 1000.0),
            );
        }
    }
    out
}

/// The bytes-per-held-address figures the allocator bench prints, e.g.
/// `ipv4-100-pools-/12   n= 10000  memory:   61.2 bytes per held address (RSS growth)`.
pub fn memory_records(log: &str) -> (Vec<Record>, Vec<String>) {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for line in log.lines() {
        let Some((head, rest)) = line.split_once("memory:") else {
            continue;
        };
        let world = head.split_whitespace().next().unwrap_or("?");
        let n: Option<u64> = head
            .split_once("n=")
            .and_then(|(_, n)| n.trim().parse().ok());
        let value: Option<f64> = if rest.contains("bytes per held address") {
            rest.split_whitespace().next().and_then(|v| v.parse().ok())
        } else {
            None
        };
        match (n, value) {
            (Some(n), Some(v)) => {
                let r = Record::new(
                    SCENARIO,
                    format!("bytes per held address, RSS growth ({world})"),
                    "B",
                    n,
                    vec![v],
                );
                records.push(if n == 100_000 {
                    r.target(Stat::Worst, BYTES_PER_ADDRESS)
                } else {
                    r
                });
            }
            _ => problems.push(format!("allocator memory figure not read: {}", line.trim())),
        }
    }
    (records, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_samples_become_per_iteration_records() {
        let dir = std::env::temp_dir().join(format!("flb-bench-crit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let write = |group: &str, function: &str, value: &str, iters: &[f64], times: &[f64]| {
            let d = dir
                .join(group)
                .join(function.replace('/', "_"))
                .join(value)
                .join("new");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("benchmark.json"),
                serde_json::json!({"group_id": group, "function_id": function, "value_str": value,
                    "throughput": null, "full_id": "x", "directory_name": "x", "title": "x"})
                .to_string(),
            )
            .unwrap();
            std::fs::write(
                d.join("sample.json"),
                serde_json::json!({"sampling_mode": "Linear", "iters": iters, "times": times})
                    .to_string(),
            )
            .unwrap();
            // criterion also keeps a `base` copy; it must not be read twice.
            let base = d.parent().unwrap().join("base");
            std::fs::create_dir_all(&base).unwrap();
            std::fs::copy(d.join("benchmark.json"), base.join("benchmark.json")).unwrap();
        };
        write(
            "assign_with_n_held",
            "ipv4-100-pools-/12",
            "1000",
            &[10.0, 20.0],
            &[10_000.0, 30_000.0],
        );
        write(
            "assign_with_n_held",
            "ipv4-100-pools-/12",
            "100000",
            &[10.0],
            &[40_000.0],
        );
        write("load", "ipv6-one-/64", "100000", &[1.0, 1.0], &[3e8, 4e8]);
        let (records, problems) = records(&dir);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(records.len(), 4);
        let a1k = &records[0];
        assert_eq!(a1k.measure, "assign (ipv4-100-pools-/12)");
        assert_eq!((a1k.unit.as_str(), a1k.size), ("µs", 1000));
        assert_eq!(a1k.samples, vec![1.0, 1.5]);
        assert!(a1k.targets.is_empty());
        assert_eq!(records[1].samples, vec![4.0]);
        assert_eq!(records[1].targets[0].value, 5.0);
        assert_eq!(
            records[2].measure,
            "load of 100000 assignments (ipv6-one-/64)"
        );
        assert_eq!(records[2].samples, vec![300.0, 400.0]);
        assert_eq!(records[2].verdict(), Some(true));
        let g = &records[3];
        assert_eq!(
            g.measure,
            "assign time growth 1k → 100k held (ipv4-100-pools-/12), p50 ratio"
        );
        assert_eq!(g.samples, vec![4.0]);
        assert_eq!(g.targets[0].value, 1.667);
        assert_eq!(g.verdict(), Some(false));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_criterion_home_is_a_problem_not_a_silence() {
        let (r, p) = records(Path::new("/nonexistent-flb-criterion"));
        assert!(r.is_empty());
        assert!(p[0].contains("criterion saved no sample"), "{p:?}");
    }

    #[test]
    fn printed_memory_figures_are_read() {
        let log = "== ferrolb allocator figures ==\n\
            ipv4-100-pools-/12   n=  1000  fill:   1.000 µs/alloc  release all:   0.500 µs/release\n\
            ipv4-100-pools-/12   n=  1000  memory:  123.5 bytes per held address (RSS growth)\n\
            ipv6-one-/64         n=100000  memory:   61.0 bytes per held address (RSS growth)\n\
            ipv6-one-/64         n= 10000  memory: could not be measured\n";
        let (records, problems) = memory_records(log);
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].measure,
            "bytes per held address, RSS growth (ipv4-100-pools-/12)"
        );
        assert_eq!((records[0].size, records[0].samples[0]), (1000, 123.5));
        assert!(records[0].targets.is_empty());
        assert_eq!(records[1].verdict(), Some(true));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("could not be measured"));
    }
}
