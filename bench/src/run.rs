//! `bench run`: builds, runs every benchmark program, collects their records.
//!
//! ```text
//!  build (cargo build --bins, cargo test --no-run, cargo bench --no-run)
//!    │
//!    ├─ allocator: cargo bench --bench allocator ──▶ $CRITERION_HOME/**/sample.json + printed bytes/address
//!    ├─ <x>_bench: cargo test --test <x>_bench -- --ignored --nocapture --test-threads 1
//!    │             FERROLB_BENCH_OUT=<logs>/<x>-<repeat>.jsonl ──▶ one record per line
//!    │   (each program × repeats, one after the other: each e2e binary brings up its own lab)
//!    ▼
//!  Results (results/<UTC>.json) ──▶ render: REPORT.md + plots/*.png
//! ```
//!
//! A program's whole output goes to its log under `target/bench-logs/<UTC>/`; the terminal
//! gets its plain lines (JSON log lines are left out) and its records. A program is killed
//! (with every process under it) at its deadline; a failed or killed program keeps whatever
//! figures it wrote, and the report says what failed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrolb_e2e::benchjson::{BenchSize, OUT_ENV, Record, SIZE_ENV};

use crate::error::BenchError;
use crate::results::{Outcome, ProgramKind, ProgramRun};

/// A benchmark program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    pub kind: ProgramKind,
}

/// The criterion bench `make bench` runs: (package, bench target).
pub const CRITERION: (&str, &str) = ("ferrolb-controller", "allocator");

/// Every benchmark program of the checkout: the allocator's criterion bench, then each
/// `e2e/tests/*_bench.rs` in name order.
pub fn programs(root: &Path) -> Vec<Program> {
    let mut out = vec![Program {
        name: CRITERION.1.to_owned(),
        kind: ProgramKind::Criterion,
    }];
    let mut e2e: Vec<String> = std::fs::read_dir(root.join("e2e/tests"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix("_bench.rs").map(|s| format!("{s}_bench"))
                })
                .collect()
        })
        .unwrap_or_default();
    e2e.sort();
    out.extend(e2e.into_iter().map(|name| Program {
        name,
        kind: ProgramKind::E2e,
    }));
    out
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub size: BenchSize,
    /// Release builds (`make bench`) or the dev profile (`make bench-smoke`, reusing
    /// `make test`'s builds).
    pub release: bool,
    pub repeats: u32,
    pub build: bool,
    /// A deadline per program run.
    pub timeout: Duration,
    pub logs: PathBuf,
}

impl Options {
    pub fn profile(&self) -> &'static str {
        if self.release { "release" } else { "dev" }
    }

    fn cargo(&self) -> Command {
        let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.current_dir(&self.root);
        c
    }

    fn profile_args(&self) -> Vec<&'static str> {
        if self.release {
            vec!["--release"]
        } else {
            vec![]
        }
    }

    /// `cargo bench`'s own profile is `bench` (optimised); the smoke run reuses dev builds.
    fn bench_profile_args(&self) -> Vec<&'static str> {
        if self.release {
            vec![]
        } else {
            vec!["--profile", "dev"]
        }
    }

    fn criterion_command(&self, home: &Path) -> Command {
        let mut c = self.cargo();
        c.arg("bench")
            .args(self.bench_profile_args())
            .args(["-p", CRITERION.0, "--bench", CRITERION.1, "--"])
            .env("CRITERION_HOME", home);
        if self.size == BenchSize::Smoke {
            // Criterion stops each benchmark as soon as two batches agree.
            c.arg("--quick");
        }
        c
    }

    fn e2e_command(&self, name: &str) -> Command {
        let mut c = self.cargo();
        c.arg("test")
            .args(self.profile_args())
            .args(["-p", "ferrolb-e2e", "--test", name, "--"])
            .args(["--ignored", "--nocapture", "--test-threads", "1"]);
        c
    }
}

fn show(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Builds everything the programs need, so that no program's time includes a build.
pub fn build(opts: &Options, programs: &[Program]) -> Result<(), BenchError> {
    let mut steps: Vec<Command> = Vec::new();
    let mut bins = opts.cargo();
    bins.arg("build").args(opts.profile_args()).arg("--bins");
    steps.push(bins);
    let tests: Vec<&Program> = programs
        .iter()
        .filter(|p| p.kind == ProgramKind::E2e)
        .collect();
    if !tests.is_empty() {
        let mut t = opts.cargo();
        t.arg("test")
            .args(opts.profile_args())
            .args(["-p", "ferrolb-e2e", "--no-run"]);
        for p in tests {
            t.args(["--test", &p.name]);
        }
        steps.push(t);
    }
    if programs.iter().any(|p| p.kind == ProgramKind::Criterion) {
        let mut b = opts.cargo();
        b.arg("bench").args(opts.bench_profile_args()).args([
            "-p",
            CRITERION.0,
            "--bench",
            CRITERION.1,
            "--no-run",
        ]);
        steps.push(b);
    }
    for mut c in steps {
        let command = show(&c);
        println!("bench: {command}");
        let status = c.status().map_err(|source| BenchError::Spawn {
            command: command.clone(),
            source,
        })?;
        if !status.success() {
            return Err(BenchError::CommandFailed {
                command,
                status: status.to_string(),
            });
        }
    }
    Ok(())
}

/// Runs one program once and collects what it wrote.
pub fn run_program(opts: &Options, program: &Program, repeat: u32) -> ProgramRun {
    let stem = format!("{}-{repeat}", program.name);
    let log = opts.logs.join(format!("{stem}.log"));
    let out_file = opts.logs.join(format!("{stem}.jsonl"));
    let criterion_home = opts.logs.join(format!("{stem}-criterion"));
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_dir_all(&criterion_home);
    let mut cmd = match program.kind {
        ProgramKind::Criterion => opts.criterion_command(&criterion_home),
        ProgramKind::E2e => opts.e2e_command(&program.name),
    };
    cmd.env(OUT_ENV, &out_file)
        .env(SIZE_ENV, opts.size.as_str());
    let started = Instant::now();
    println!(
        "bench: {} (repeat {repeat}): {}\n       log: {}",
        program.name,
        show(&cmd),
        log.display()
    );
    let (outcome, output) = run_logged(cmd, &log, opts.timeout);
    let duration_s = started.elapsed().as_secs_f64();

    let (mut records, mut problems) = match program.kind {
        ProgramKind::Criterion => {
            let (mut r, mut p) = crate::criterion::records(&criterion_home);
            let (mr, mp) = crate::criterion::memory_records(&output);
            r.extend(mr);
            p.extend(mp);
            (r, p)
        }
        ProgramKind::E2e => (Vec::new(), Vec::new()),
    };
    // Every program may also write records itself.
    let (r, p) = read_records(&out_file);
    records.extend(r);
    problems.extend(p);
    if program.kind == ProgramKind::E2e && !out_file.exists() && outcome.passed() {
        problems.push(format!(
            "wrote no {OUT_ENV} file: its figures are only in its log ({})",
            log.display()
        ));
    }
    for r in &records {
        println!("  = {r}");
    }
    for p in &problems {
        println!("  ! {p}");
    }
    println!(
        "bench: {} (repeat {repeat}) {outcome} in {duration_s:.0} s, {} figures",
        program.name,
        records.len()
    );
    ProgramRun {
        name: program.name.clone(),
        kind: program.kind,
        repeat,
        outcome,
        duration_s,
        log: log.display().to_string(),
        records,
        problems,
    }
}

/// The records of a FERROLB_BENCH_OUT file; each line that is not one is a problem.
pub fn read_records(path: &Path) -> (Vec<Record>, Vec<String>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), Vec::new());
    };
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match Record::from_line(line) {
            Ok(r) => records.push(r),
            Err(e) => {
                let shown: String = line.chars().take(160).collect();
                problems.push(format!("line {} is not a record ({e}): {shown}", i + 1));
            }
        }
    }
    (records, problems)
}

/// Runs `cmd` with its output (both streams, in order) into `log` and onto the terminal
/// (without JSON log lines); kills it and everything under it at `timeout`. Returns how it
/// ended and its whole output.
fn run_logged(mut cmd: Command, log: &Path, timeout: Duration) -> (Outcome, String) {
    let spawned = (|| {
        if let Some(d) = log.parent() {
            std::fs::create_dir_all(d)?;
        }
        let file = std::fs::File::create(log)?;
        let (reader, writer) = std::io::pipe()?;
        cmd.stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer);
        let child = cmd.spawn()?;
        // The Command holds our copies of the pipe's write end: without dropping it the
        // reader would never see the end.
        drop(cmd);
        Ok::<_, std::io::Error>((child, reader, file))
    })();
    let (mut child, reader, mut file) = match spawned {
        Ok(x) => x,
        Err(e) => {
            return (
                Outcome::NotStarted {
                    reason: e.to_string(),
                },
                String::new(),
            );
        }
    };

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let timed_out = Arc::new(AtomicBool::new(false));
    let pid = child.id();
    let watchdog = {
        let timed_out = timed_out.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                timed_out.store(true, Ordering::SeqCst);
                println!(
                    "bench: deadline of {} s reached, stopping it",
                    timeout.as_secs()
                );
                signal_tree(pid, "TERM");
                if let Err(mpsc::RecvTimeoutError::Timeout) =
                    done_rx.recv_timeout(Duration::from_secs(15))
                {
                    signal_tree(pid, "KILL");
                }
            }
        })
    };

    let mut output = String::new();
    let mut stdout = std::io::stdout();
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(file, "{line}");
        if !line.trim_start().starts_with('{') {
            let shown: String = line.chars().take(220).collect();
            let _ = writeln!(stdout, "  | {shown}");
        }
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait();
    let _ = done_tx.send(());
    let _ = watchdog.join();
    let outcome = if timed_out.load(Ordering::SeqCst) {
        Outcome::TimedOut {
            after_s: timeout.as_secs_f64(),
        }
    } else {
        match status {
            Ok(s) if s.success() => Outcome::Passed,
            Ok(s) => Outcome::Failed {
                status: s.to_string(),
            },
            Err(e) => Outcome::Failed {
                status: e.to_string(),
            },
        }
    };
    (outcome, output)
}

/// The pids of every process under `pid` (children first found, grandchildren after).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.filter_map(Result::ok) {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if !out.contains(&c) {
                    out.push(c);
                    queue.push(c);
                }
            }
        }
    }
    out
}

/// Sends a signal to `pid` and every process under it, deepest first, by pid (`kill` is
/// given explicit pids: never a name or a whole process group).
fn signal_tree(pid: u32, signal: &str) {
    let mut pids = descendants(pid);
    pids.reverse();
    pids.push(pid);
    let mut c = Command::new("kill");
    c.arg(format!("-{signal}"));
    for p in pids {
        c.arg(p.to_string());
    }
    let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_the_criterion_bench_and_each_e2e_bench_file() {
        let dir = std::env::temp_dir().join(format!("flb-bench-progs-{}", std::process::id()));
        let tests = dir.join("e2e/tests");
        std::fs::create_dir_all(&tests).unwrap();
        for f in [
            "system_bench.rs",
            "controller_bench.rs",
            "controller.rs",
            "notes.md",
        ] {
            std::fs::write(tests.join(f), "").unwrap();
        }
        let names: Vec<String> = programs(&dir).into_iter().map(|p| p.name).collect();
        assert_eq!(names, vec!["allocator", "controller_bench", "system_bench"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn out_files_are_read_line_by_line_with_bad_lines_named() {
        let dir = std::env::temp_dir().join(format!("flb-bench-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x.jsonl");
        let good = Record::new("s", "m", "ms", 1, vec![1.0]).to_line();
        std::fs::write(&f, format!("{good}\n\nnot json\n{good}\n")).unwrap();
        let (r, p) = read_records(&f);
        assert_eq!(r.len(), 2);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("line 3 is not a record"), "{p:?}");
        assert_eq!(read_records(&dir.join("missing")), (vec![], vec![]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_program_is_logged_and_its_status_kept() {
        let dir = std::env::temp_dir().join(format!("flb-bench-log-{}", std::process::id()));
        let log = dir.join("p.log");
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let (outcome, output) = run_logged(c, &log, Duration::from_secs(30));
        assert_eq!(
            outcome,
            Outcome::Failed {
                status: "exit status: 3".into()
            }
        );
        assert!(
            output.contains("out\n") && output.contains("err\n"),
            "{output}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), output);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_program_past_its_deadline_is_killed_with_its_children() {
        let dir = std::env::temp_dir().join(format!("flb-bench-kill-{}", std::process::id()));
        let log = dir.join("p.log");
        let mut c = Command::new("sh");
        // A grandchild holding the pipe open: the run ends only if it is killed too.
        c.args(["-c", "sleep 300 & echo started; wait"]);
        let started = Instant::now();
        let (outcome, output) = run_logged(c, &log, Duration::from_secs(1));
        assert!(matches!(outcome, Outcome::TimedOut { .. }), "{outcome:?}");
        assert!(output.contains("started"));
        assert!(started.elapsed() < Duration::from_secs(20));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
