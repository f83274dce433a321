//! Running the machine's tools (ip, sysctl, birdc, vtysh, kubectl, openssl) and reporting their
//! failures with the command line and its stderr.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::error::{LabError, Result};

/// A command line as the user would type it, for messages.
pub fn display(program: &OsStr, args: &[&OsStr]) -> String {
    let mut s = program.to_string_lossy().into_owned();
    for a in args {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            s.push('\'');
            s.push_str(&a.replace('\'', "'\\''"));
            s.push('\'');
        } else {
            s.push_str(&a);
        }
    }
    s
}

fn describe(cmd: &Command) -> String {
    let args: Vec<&OsStr> = cmd.get_args().collect();
    display(cmd.get_program(), &args)
}

/// Runs to completion; stdout on success, an error with stderr otherwise.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs to completion and returns the whole output, failing on a non-zero exit.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let out = output_any(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(cmd, &out))
    }
}

/// Runs to completion and returns the output whatever the exit status.
pub fn output_any(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::SpawnCommand {
            command: describe(cmd),
            source,
        })
}

/// Runs with `input` on stdin (used for `ip -batch -`).
pub fn run_with_input(cmd: &mut Command, input: &str) -> Result<String> {
    let command = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::SpawnCommand {
            command: command.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means the command exited early; its status says why.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| LabError::SpawnCommand { command, source })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(failed(cmd, &out))
    }
}

fn failed(cmd: &Command, out: &Output) -> LabError {
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    LabError::CommandFailed {
        command: describe(cmd),
        status: out.status.to_string(),
        stderr,
    }
}

/// `ip netns exec <ns> <program>`: a command inside a lab namespace.
pub fn in_netns(netns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns]).arg(program);
    cmd
}

/// Whether a program is on PATH (or an existing path).
pub fn have_program(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let args: Vec<&OsStr> = ["-c", "show route", "it's"]
            .iter()
            .map(OsStr::new)
            .collect();
        assert_eq!(
            display(OsStr::new("birdc"), &args),
            "birdc -c 'show route' 'it'\\''s'"
        );
    }
}
