//! Starts the real ferrolb-controller binary, probes its endpoints and stops it with SIGTERM.
#![allow(clippy::unwrap_used)] // test helpers may unwrap (clippy.toml covers only #[test] fns)

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrolb_runtime::probe;
use rustix::process::{Pid, Signal, kill_process};

const DEADLINE: Duration = Duration::from_secs(30);

/// The running program; killed if the test fails before it exits.
struct Program {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Program {
    fn start(mut command: Command) -> Self {
        let mut child = command
            .env_remove("KUBECONFIG")
            .env_remove("FERROLB_METRICS_ADDR")
            .env_remove("FERROLB_LOG_LEVEL")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The first JSON log line whose message is `message`.
    fn wait_for_log(&self, message: &str) -> serde_json::Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no log line {message:?} within {DEADLINE:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the program closed its output before logging {message:?}")
                }
            };
            let entry: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            if entry["message"] == message {
                return entry;
            }
        }
    }

    fn terminate(&mut self) -> ExitStatus {
        kill_process(Pid::from_child(&self.child), Signal::TERM).unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {DEADLINE:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A kubeconfig for a server that never answers (nothing listens on port 9).
fn kubeconfig() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("controller.kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n\
         clusters:\n- name: t\n  cluster:\n    server: http://127.0.0.1:9\n\
         contexts:\n- name: t\n  context:\n    cluster: t\n    user: t\n\
         users:\n- name: t\n  user: {}\n",
    )
    .unwrap();
    path
}

#[tokio::test]
async fn serves_health_and_exits_cleanly_on_sigterm_without_an_api_server() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"));
    command
        .args(["--metrics-addr", "127.0.0.1:0", "--kubeconfig"])
        .arg(kubeconfig());
    let mut program = Program::start(command);

    let serving = program.wait_for_log("serving /healthz, /readyz and /metrics");
    let addr: SocketAddr = serving["addr"].as_str().unwrap().parse().unwrap();

    let health = probe::get(addr, "/healthz").await.unwrap();
    assert_eq!(health.status, 200);
    // Ready means the Lease could be read: with no API server, never.
    program.wait_for_log("reading the Lease failed");
    assert_eq!(probe::get(addr, "/readyz").await.unwrap().status, 503);
    let metrics = probe::get(addr, "/metrics").await.unwrap();
    for line in [
        r#"ferrolb_build_info{program="controller","#,
        "ferrolb_leader 0",
    ] {
        assert!(metrics.body.contains(line), "{line}: {}", metrics.body);
    }

    let status = program.terminate();
    assert!(status.success(), "exit status {status}");
    program.wait_for_log("stopped");
}

#[test]
fn lease_timing_that_would_let_two_leaders_write_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(["--metrics-addr", "127.0.0.1:0", "--kubeconfig"])
        .arg(kubeconfig())
        .args(["--lease-duration", "10s", "--renew-deadline", "10s"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("must be shorter than the lease duration"),
        "{stdout}"
    );
}

#[test]
fn a_bad_duration_is_refused_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(["--retry-period", "soon"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"soon\" is not a duration such as 250ms, 15s, 5m or 1h"),
        "{stderr}"
    );
}

#[test]
fn a_bad_log_level_is_refused_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(["--log-level", "ferrolb=loud"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid log level \"ferrolb=loud\""),
        "{stderr}"
    );
}
