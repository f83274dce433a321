//! The lab's long-running processes: started detached, each with its own log file, and
//! remembered by pid *and* start time, so that stopping one never hits a recycled pid.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cmd;
use crate::error::{LabError, Result};

/// How to start a process again (`lab restart` reads this from the state file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSpec {
    /// Network namespace to run in; `None` is the root namespace.
    pub netns: Option<String>,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
}

/// A started process: its pid and the kernel's start time for it (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: u32,
    pub start_time: u64,
}

/// Starts `spec` in the background, detached from the caller: a short-lived `sh` forks it and
/// exits, so the process is nobody's child here (no zombies in a long-running test process)
/// and sits in its own process group (a Ctrl-C in `make lab` does not reach it).
pub fn spawn(spec: &ProcSpec) -> Result<ProcId> {
    if let Some(dir) = spec.log.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LabError::WriteFile {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!"#)
        .arg("sh")
        .arg(&spec.log);
    if let Some(ns) = &spec.netns {
        sh.args(["ip", "netns", "exec", ns]);
    }
    sh.arg(&spec.program).args(&spec.args);
    for (k, v) in &spec.env {
        sh.env(k, v);
    }
    use std::os::unix::process::CommandExt;
    sh.process_group(0);
    let out = cmd::run(&mut sh)?;
    let pid: u32 = out.trim().parse().map_err(|_| LabError::ParseOutput {
        command: format!("spawn {}", spec.program.display()),
        detail: format!("expected a pid, got {out:?}"),
    })?;
    // A process that already exited gets start time 0 and counts as dead from then on.
    let start_time = stat(pid).map(|s| s.start_time).unwrap_or(0);
    Ok(ProcId { pid, start_time })
}

struct Stat {
    state: char,
    start_time: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); start time is field 22.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether the recorded process still runs (not exited, not a zombie, not a recycled pid).
pub fn alive(id: ProcId) -> bool {
    id.start_time != 0
        && stat(id.pid)
            .is_some_and(|s| s.start_time == id.start_time && !matches!(s.state, 'Z' | 'X'))
}

fn signal(id: ProcId, sig: &str) {
    if alive(id) {
        // Failure means it exited in between, which is what we want anyway.
        let _ = cmd::output_any(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(id.pid.to_string()),
        );
    }
}

/// Stops a recorded process: SIGTERM, then SIGKILL if it is still there after `grace`.
/// Returns whether it had to be killed.
pub fn stop(id: ProcId, grace: Duration) -> bool {
    if !alive(id) {
        return false;
    }
    signal(id, "TERM");
    if wait_gone(&[id], grace) {
        return false;
    }
    signal(id, "KILL");
    wait_gone(&[id], Duration::from_secs(5));
    true
}

/// Stops several processes at once (TERM to all, then KILL to the stubborn ones; with no
/// grace at all, KILL straight away).
pub fn stop_all(ids: &[ProcId], grace: Duration) {
    if !grace.is_zero() {
        for &id in ids {
            signal(id, "TERM");
        }
    }
    if !wait_gone(ids, grace) {
        for &id in ids {
            signal(id, "KILL");
        }
        wait_gone(ids, Duration::from_secs(5));
    }
}

fn wait_gone(ids: &[ProcId], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !ids.iter().any(|&id| alive(id)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of a process in KiB, if it runs.
pub fn rss_kib(id: ProcId) -> Option<u64> {
    if !alive(id) {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", id.pid)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Pids of the processes in a network namespace (to report stray ones, never to kill them).
pub fn pids_in_netns(netns: &str) -> Vec<u32> {
    cmd::run(Command::new("ip").args(["netns", "pids", netns]))
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The command line of a pid, for messages.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// The last `lines` lines of a log file (for error messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id();
        let st = stat(me).expect("own stat").start_time;
        assert!(alive(ProcId {
            pid: me,
            start_time: st
        }));
        assert!(!alive(ProcId {
            pid: me,
            start_time: st + 1
        }));
        assert!(!alive(ProcId {
            pid: me,
            start_time: 0
        }));
    }

    #[test]
    fn spawned_process_is_detached_logged_and_stoppable() {
        let dir = std::env::temp_dir().join(format!("ferrolb-procs-{}", std::process::id()));
        let spec = ProcSpec {
            netns: None,
            program: "sh".into(),
            args: vec!["-c".into(), "echo started $GREETING; exec sleep 60".into()],
            env: vec![("GREETING".into(), "hello".into())],
            log: dir.join("sleep.log"),
        };
        let id = spawn(&spec).expect("spawn");
        assert!(alive(id));
        assert!(
            !stop(id, Duration::from_secs(5)),
            "sleep ignores no SIGTERM"
        );
        assert!(!alive(id));
        assert_eq!(log_tail(&spec.log, 1), "started hello");
        std::fs::remove_dir_all(dir).ok();
    }
}
