//! The benchmark contract: how a benchmark program says how big to run and where its figures go.
//!
//! Every benchmark program (the ignored tests in `e2e/tests/*_bench.rs`, run with
//! `--ignored --nocapture --test-threads 1`) prints its figures for a person and, when
//! `FERROLB_BENCH_OUT` names a file, appends one JSON object per measure to it, one per line:
//!
//! ```text
//! {"scenario":"l2_failover","measure":"kill to client neighbour entry moved","unit":"ms",
//!  "samples":[812.0,790.5,...],"target":{"stat":"p50","value":1000.0},"size":20}
//! ```
//!
//! `target` is `null` when the measure has none; a measure with several targets carries
//! `"targets":[...]` instead (both forms are read back). A target is an upper bound: it is met
//! when the named statistic of the samples is at most `value`. `size` is the size of the
//! scenario (Services, kills, routes…); a measure taken at several sizes is one line per size,
//! which is how `make bench` draws a figure against size (memory against Services).
//!
//! `FERROLB_BENCH_SIZE=smoke` asks for a tiny run (a few samples, ~10 Services) so that
//! `make bench-smoke` keeps every scenario compiling and running in seconds; unset or `full`
//! is the real size.
//!
//! Percentiles use the nearest-rank method on the sorted samples: the p-th percentile of n
//! samples is the sample of rank ⌈p/100 · n⌉ (1-based), so it is always a measured value, never
//! an interpolation. p50 of 200 samples is the 100th smallest, p99 the 198th; with fewer than
//! 100 samples p99 is the worst. `worst` is the largest sample (every measure here is "lower is
//! better").
//!
//! ```no_run
//! use ferrolb_e2e::benchjson::{self, Record, Stat};
//! let n = benchjson::size().pick(5, 200);
//! let samples: Vec<f64> = (0..n).map(|i| i as f64).collect();
//! let r = Record::new("controller_idle", "Service created to status written", "ms", n, samples)
//!     .target(Stat::P99, 100.0);
//! println!("{r}");
//! benchjson::record(&r).unwrap();
//! ```

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The environment variable naming the file figures are appended to.
pub const OUT_ENV: &str = "FERROLB_BENCH_OUT";
/// The environment variable choosing the size of a run (`smoke` or `full`).
pub const SIZE_ENV: &str = "FERROLB_BENCH_SIZE";

/// How big a benchmark run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchSize {
    /// A few samples, ~10 Services: proves the scenario runs, in seconds.
    Smoke,
    /// The sizes the issues name.
    Full,
}

impl BenchSize {
    /// `smoke` at smoke size, `full` at full size.
    pub fn pick<T>(self, smoke: T, full: T) -> T {
        match self {
            BenchSize::Smoke => smoke,
            BenchSize::Full => full,
        }
    }

    /// The value `FERROLB_BENCH_SIZE` takes for this size.
    pub fn as_str(self) -> &'static str {
        match self {
            BenchSize::Smoke => "smoke",
            BenchSize::Full => "full",
        }
    }
}

/// An unknown `FERROLB_BENCH_SIZE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SIZE_ENV}={0:?} is not a benchmark size; use `smoke` or `full` (or leave it unset)")]
pub struct UnknownSize(pub String);

/// Reads a size as `FERROLB_BENCH_SIZE` spells it: unset or empty or `full` is `Full`.
pub fn parse_size(value: Option<&str>) -> Result<BenchSize, UnknownSize> {
    match value.map(str::trim) {
        None | Some("") | Some("full") => Ok(BenchSize::Full),
        Some("smoke") => Ok(BenchSize::Smoke),
        Some(other) => Err(UnknownSize(other.to_owned())),
    }
}

/// The size this run asks for, from `FERROLB_BENCH_SIZE`.
///
/// # Panics
/// On a value other than `smoke`/`full`, with a message that says so: a mistyped `smoke`
/// must not silently start a twenty-minute run.
pub fn size() -> BenchSize {
    let value = std::env::var(SIZE_ENV).ok();
    match parse_size(value.as_deref()) {
        Ok(size) => size,
        Err(e) => panic!("{e}"),
    }
}

/// The statistic a target bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    P50,
    P90,
    P99,
    /// The largest sample. `max` is read as `worst`.
    #[serde(alias = "max")]
    Worst,
    Mean,
}

impl Stat {
    /// This statistic of `samples` (`None` when there are none).
    pub fn of(self, samples: &[f64]) -> Option<f64> {
        match self {
            Stat::P50 => percentile(samples, 50.0),
            Stat::P90 => percentile(samples, 90.0),
            Stat::P99 => percentile(samples, 99.0),
            Stat::Worst => worst(samples),
            Stat::Mean => mean(samples),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P99 => "p99",
            Stat::Worst => "worst",
            Stat::Mean => "mean",
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An upper bound on one statistic: met when `stat(samples) <= value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub stat: Stat,
    pub value: f64,
}

impl Target {
    /// Whether `samples` meet the target (`None` without samples).
    pub fn met_by(&self, samples: &[f64]) -> Option<bool> {
        self.stat.of(samples).map(|v| v <= self.value)
    }
}

/// One measure of one scenario at one size: a line of `FERROLB_BENCH_OUT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RecordWire", into = "RecordWire")]
pub struct Record {
    /// Which benchmark, e.g. `l2_failover` (snake case, stable across runs).
    pub scenario: String,
    /// What is measured, from which event to which, e.g. "kill to client neighbour entry moved".
    pub measure: String,
    /// The unit of the samples as printed in the report: `ms`, `us`, `s`, `MiB`, `%`…
    pub unit: String,
    /// Every measured value, in the order measured (the failover timeline plots this order).
    pub samples: Vec<f64>,
    /// Upper bounds the samples should meet; empty when the issue names none.
    pub targets: Vec<Target>,
    /// The size of the scenario (Services, kills, routes…).
    pub size: u64,
}

impl Record {
    pub fn new(
        scenario: impl Into<String>,
        measure: impl Into<String>,
        unit: impl Into<String>,
        size: u64,
        samples: Vec<f64>,
    ) -> Record {
        Record {
            scenario: scenario.into(),
            measure: measure.into(),
            unit: unit.into(),
            samples,
            targets: Vec::new(),
            size,
        }
    }

    /// Adds a target: `stat` of the samples at most `value`.
    pub fn target(mut self, stat: Stat, value: f64) -> Record {
        self.targets.push(Target { stat, value });
        self
    }

    /// Whether every target is met: `None` without targets or without samples.
    pub fn verdict(&self) -> Option<bool> {
        let mut all = None;
        for t in &self.targets {
            let met = t.met_by(&self.samples)?;
            all = Some(all.unwrap_or(true) && met);
        }
        all
    }

    /// The record as one JSON line (no trailing newline).
    pub fn to_line(&self) -> String {
        // Serialising plain strings, numbers and enums cannot fail; non-finite samples become
        // `null`, which `from_line` then refuses with a message naming the line.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Reads one line written by `to_line` (or by hand per the contract).
    pub fn from_line(line: &str) -> Result<Record, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// One line for a person: scenario, measure, count, p50/p99/worst and the targets.
impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = &self.unit;
        let show = |v: Option<f64>| v.map(format_value).unwrap_or_else(|| "-".to_owned());
        write!(
            f,
            "{} / {} (size {}): n={} p50={} p99={} worst={} {u}",
            self.scenario,
            self.measure,
            self.size,
            self.samples.len(),
            show(percentile(&self.samples, 50.0)),
            show(percentile(&self.samples, 99.0)),
            show(worst(&self.samples)),
        )?;
        for t in &self.targets {
            let verdict = match t.met_by(&self.samples) {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "no samples",
            };
            write!(
                f,
                "; target {} <= {} {u}: {verdict}",
                t.stat,
                format_value(t.value)
            )?;
        }
        Ok(())
    }
}

/// A value with as many digits as it needs: 3 significant digits, no exponent.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        // Enough decimals for three significant digits.
        let decimals = (2 - a.log10().floor() as i32).clamp(3, 9) as usize;
        format!("{v:.decimals$}")
    }
}

/// The JSON shape: `target` (one or null) or `targets` (several).
#[derive(Serialize, Deserialize)]
struct RecordWire {
    scenario: String,
    measure: String,
    unit: String,
    samples: Vec<f64>,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    targets: Vec<Target>,
    size: u64,
}

impl From<RecordWire> for Record {
    fn from(w: RecordWire) -> Record {
        let mut targets = w.targets;
        if let Some(t) = w.target
            && !targets.contains(&t)
        {
            targets.insert(0, t);
        }
        Record {
            scenario: w.scenario,
            measure: w.measure,
            unit: w.unit,
            samples: w.samples,
            targets,
            size: w.size,
        }
    }
}

impl From<Record> for RecordWire {
    fn from(r: Record) -> RecordWire {
        let (target, targets) = if r.targets.len() <= 1 {
            (r.targets.first().copied(), Vec::new())
        } else {
            (None, r.targets)
        };
        RecordWire {
            scenario: r.scenario,
            measure: r.measure,
            unit: r.unit,
            samples: r.samples,
            target,
            targets,
            size: r.size,
        }
    }
}

/// Why a record could not be appended.
#[derive(Debug, thiserror::Error)]
#[error("cannot append a benchmark record to {}", path.display())]
pub struct RecordError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Appends `record` as one line to the file `FERROLB_BENCH_OUT` names; does nothing when it is
/// unset. The line is written with one `write` on a file opened for appending, so lines from
/// processes that append to the same file do not interleave.
pub fn record(record: &Record) -> Result<(), RecordError> {
    match std::env::var_os(OUT_ENV) {
        Some(path) if !path.is_empty() => append(&PathBuf::from(path), record),
        _ => Ok(()),
    }
}

/// Appends `record` as one line to `path`.
pub fn append(path: &std::path::Path, record: &Record) -> Result<(), RecordError> {
    let err = |source| RecordError {
        path: path.to_owned(),
        source,
    };
    let mut line = record.to_line();
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    file.write_all(line.as_bytes()).map_err(err)
}

/// The samples sorted ascending (total order, so a stray NaN sorts last instead of panicking).
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of `samples`: the sample of rank
/// ⌈p/100 · n⌉ in ascending order. `None` without samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let s = sorted(samples);
    Some(s[rank(s.len(), p) - 1])
}

/// The 1-based nearest rank of the `p`-th percentile among `n` samples (n ≥ 1).
pub fn rank(n: usize, p: f64) -> usize {
    // Round before ceil so that 0.99 * 200 = 198.00000000000003 is rank 198, not 199.
    let exact = (p / 100.0 * n as f64 * 1e9).round() / 1e9;
    (exact.ceil() as usize).clamp(1, n)
}

/// The median by nearest rank (the lower middle sample for an even count).
pub fn p50(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// The 99th percentile by nearest rank.
pub fn p99(samples: &[f64]) -> Option<f64> {
    percentile(samples, 99.0)
}

/// The largest sample.
pub fn worst(samples: &[f64]) -> Option<f64> {
    samples.iter().copied().max_by(f64::total_cmp)
}

/// The arithmetic mean.
pub fn mean(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        None
    } else {
        Some(samples.iter().sum::<f64>() / samples.len() as f64)
    }
}

/// Peak resident set size of process `pid` in MiB: `VmHWM` of `/proc/<pid>/status`, the
/// kernel's high-water mark of resident memory since the process started (or since it was last
/// reset by writing 5 to `/proc/<pid>/clear_refs`).
pub fn peak_rss_mib(pid: u32) -> std::io::Result<f64> {
    proc_status_kib(pid, "VmHWM").map(|kib| kib as f64 / 1024.0)
}

/// Current resident set size of process `pid` in MiB (`VmRSS`).
pub fn rss_mib(pid: u32) -> std::io::Result<f64> {
    proc_status_kib(pid, "VmRSS").map(|kib| kib as f64 / 1024.0)
}

/// CPU time (user + system) process `pid` has used so far, in seconds: `utime` and `stime` of
/// `/proc/<pid>/stat`, counted in USER_HZ ticks, which Linux fixes at 100 per second for
/// user space whatever the kernel's own tick rate.
pub fn cpu_seconds(pid: u32) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    cpu_seconds_of_stat(&stat).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat has no utime and stime"),
        )
    })
}

fn cpu_seconds_of_stat(stat: &str) -> Option<f64> {
    // After the command in parentheses (which may hold spaces and parentheses itself) come
    // the state (field 3) and the numbers; utime is field 14, stime 15.
    let f: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Prints `record` (a `FIGURE` line, for a person reading the output) and appends it to the
/// file `FERROLB_BENCH_OUT` names (for the runner): what every benchmark program does with a
/// figure.
pub fn emit(record: &Record) -> Result<(), RecordError> {
    println!("FIGURE {record}");
    self::record(record)
}

/// A `kB` field of `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, field: &str) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .filter_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .find_map(|rest| rest.trim().strip_suffix("kB")?.trim().parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("/proc/{pid}/status has no {field} in kB"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_utime_and_stime_after_the_command() {
        // A command holding a space and a parenthesis; utime 250, stime 50 ticks.
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 4 0 99";
        assert_eq!(cpu_seconds_of_stat(stat), Some(3.0));
        assert_eq!(cpu_seconds_of_stat("42 (x) S 1"), None);
        let own = cpu_seconds(std::process::id()).unwrap();
        assert!(own >= 0.0);
    }

    #[test]
    fn size_reads_smoke_full_and_unset() {
        assert_eq!(parse_size(None), Ok(BenchSize::Full));
        assert_eq!(parse_size(Some("")), Ok(BenchSize::Full));
        assert_eq!(parse_size(Some("full")), Ok(BenchSize::Full));
        assert_eq!(parse_size(Some("smoke")), Ok(BenchSize::Smoke));
        assert_eq!(parse_size(Some(" smoke\n")), Ok(BenchSize::Smoke));
    }

    #[test]
    fn size_refuses_unknown_values_naming_them() {
        let e = parse_size(Some("smoek")).unwrap_err();
        assert_eq!(e, UnknownSize("smoek".into()));
        let msg = e.to_string();
        assert!(msg.contains("FERROLB_BENCH_SIZE=\"smoek\""), "{msg}");
        assert!(msg.contains("smoke") && msg.contains("full"), "{msg}");
    }

    #[test]
    fn pick_chooses_by_size() {
        assert_eq!(BenchSize::Smoke.pick(10, 10_000), 10);
        assert_eq!(BenchSize::Full.pick(10, 10_000), 10_000);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        assert_eq!(p50(&s), Some(100.0));
        assert_eq!(p99(&s), Some(198.0));
        assert_eq!(percentile(&s, 100.0), Some(200.0));
        assert_eq!(worst(&s), Some(200.0));
        let s: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(p50(&s), Some(10.0));
        assert_eq!(p99(&s), Some(20.0), "under 100 samples p99 is the worst");
        assert_eq!(percentile(&s, 90.0), Some(18.0));
        assert_eq!(p50(&[7.0]), Some(7.0));
        assert_eq!(p99(&[7.0]), Some(7.0));
        assert_eq!(p50(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(p50(&[]), None);
        assert_eq!(worst(&[]), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
    }

    #[test]
    fn rank_is_not_fooled_by_float_error() {
        // 0.99 * 200 and 0.29 * 100 are not exact in binary.
        assert_eq!(rank(200, 99.0), 198);
        assert_eq!(rank(100, 29.0), 29);
        assert_eq!(rank(3, 50.0), 2);
        assert_eq!(rank(1, 1.0), 1);
        assert_eq!(rank(10, 0.0), 1);
    }

    #[test]
    fn nan_does_not_panic_and_sorts_last() {
        let s = [2.0, f64::NAN, 1.0];
        assert_eq!(p50(&s), Some(2.0));
        assert!(worst(&s).is_some_and(f64::is_nan));
    }

    #[test]
    fn one_target_is_written_as_target_and_none_as_null() {
        let r = Record::new("l2_failover", "kill to move", "ms", 20, vec![800.0, 900.0])
            .target(Stat::P50, 1000.0);
        let v: serde_json::Value = serde_json::from_str(&r.to_line()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"scenario":"l2_failover","measure":"kill to move","unit":"ms",
                "samples":[800.0,900.0],"target":{"stat":"p50","value":1000.0},"size":20})
        );
        let r = Record::new("x", "y", "MiB", 1, vec![1.0]);
        let v: serde_json::Value = serde_json::from_str(&r.to_line()).unwrap();
        assert_eq!(v["target"], serde_json::Value::Null);
        assert!(v.get("targets").is_none());
    }

    #[test]
    fn several_targets_are_written_as_targets_and_read_back() {
        let r = Record::new("l2_failover", "kill to move", "ms", 20, vec![800.0])
            .target(Stat::P50, 1000.0)
            .target(Stat::Worst, 2000.0);
        let line = r.to_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["target"], serde_json::Value::Null);
        assert_eq!(v["targets"][1]["stat"], "worst");
        assert_eq!(Record::from_line(&line).unwrap(), r);
    }

    #[test]
    fn hand_written_lines_of_the_contract_are_read() {
        let r = Record::from_line(
            r#"{"scenario":"s","measure":"m","unit":"ms","samples":[1,2,3],"target":{"stat":"max","value":5},"size":3}"#,
        )
        .unwrap();
        assert_eq!(
            r.targets,
            vec![Target {
                stat: Stat::Worst,
                value: 5.0
            }]
        );
        assert_eq!(r.samples, vec![1.0, 2.0, 3.0]);
        let r = Record::from_line(
            r#"{"scenario":"s","measure":"m","unit":"ms","samples":[],"target":null,"size":0}"#,
        )
        .unwrap();
        assert!(r.targets.is_empty());
        let r = Record::from_line(
            r#"{"scenario":"s","measure":"m","unit":"ms","samples":[],"size":0,"extra":1}"#,
        )
        .unwrap();
        assert!(
            r.targets.is_empty(),
            "target may be left out; unknown keys are ignored"
        );
        assert!(Record::from_line(r#"{"scenario":"s"}"#).is_err());
        assert!(
            Record::from_line(
                r#"{"scenario":"s","measure":"m","unit":"ms","samples":[],"target":{"stat":"p42","value":1},"size":0}"#
            )
            .is_err()
        );
    }

    #[test]
    fn verdict_needs_every_target() {
        let r = Record::new("s", "m", "ms", 3, vec![100.0, 200.0, 3000.0]);
        assert_eq!(r.verdict(), None);
        let r = r.target(Stat::P50, 250.0);
        assert_eq!(r.verdict(), Some(true));
        let r = r.target(Stat::Worst, 2000.0);
        assert_eq!(r.verdict(), Some(false));
        let empty = Record::new("s", "m", "ms", 0, vec![]).target(Stat::P50, 1.0);
        assert_eq!(empty.verdict(), None);
    }

    #[test]
    fn display_shows_figures_and_verdicts() {
        let r = Record::new("l2_failover", "kill to move", "ms", 20, vec![800.0, 2500.0])
            .target(Stat::P50, 1000.0)
            .target(Stat::Worst, 2000.0);
        assert_eq!(
            r.to_string(),
            "l2_failover / kill to move (size 20): n=2 p50=800 p99=2500 worst=2500 ms; \
             target p50 <= 1000 ms: met; target worst <= 2000 ms: MISSED"
        );
    }

    #[test]
    fn values_are_formatted_to_three_digits() {
        assert_eq!(format_value(1234.4), "1234");
        assert_eq!(format_value(12.34), "12.3");
        assert_eq!(format_value(1.234), "1.23");
        assert_eq!(format_value(0.1234), "0.123");
        assert_eq!(format_value(0.001234), "0.00123");
        assert_eq!(format_value(0.0), "0");
    }

    #[test]
    fn append_writes_one_line_per_record() {
        let dir = std::env::temp_dir().join(format!("flb-benchjson-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        let _ = std::fs::remove_file(&path);
        let a = Record::new("a", "m", "ms", 1, vec![1.0]);
        let b = Record::new("b", "m", "ms", 1, vec![2.0]).target(Stat::P99, 3.0);
        append(&path, &a).unwrap();
        append(&path, &b).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Record> = text
            .lines()
            .map(|l| Record::from_line(l).unwrap())
            .collect();
        assert_eq!(lines, vec![a, b]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn append_to_a_missing_directory_names_the_file() {
        let path = std::path::Path::new("/nonexistent-flb-dir/out.jsonl");
        let e = append(path, &Record::new("a", "m", "ms", 1, vec![])).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent-flb-dir/out.jsonl"),
            "{e}"
        );
    }

    #[test]
    fn rss_of_this_process_is_read() {
        let pid = std::process::id();
        // The current size first: other tests run on other threads of this process, and the
        // peak, read after, can only have grown since.
        let now = rss_mib(pid).unwrap();
        let peak = peak_rss_mib(pid).unwrap();
        assert!(now > 0.1 && peak >= now, "peak {peak} MiB, now {now} MiB");
        assert!(peak_rss_mib(u32::MAX).is_err());
    }
}
