//! Machine facts and versions of what the figures depend on, for the results file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::results::Machine;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The value of the first `key: value` line of a /proc file.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix(':'))
        .map(str::trim)
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    read("/proc/loadavg")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

pub fn machine() -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    let mem_kib: f64 = field(&meminfo, "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpu: field(&cpuinfo, "model name")
            .unwrap_or("unknown")
            .to_owned(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib: mem_kib / 1024.0 / 1024.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        debian: {
            let v = read("/etc/debian_version");
            if v.trim().is_empty() {
                "none".into()
            } else {
                v.trim().to_owned()
            }
        },
        load_start: load_average(),
        load_end: f64::NAN,
    }
}

/// The first non-empty line a command prints (stdout, else stderr), or why there is none.
fn first_line(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("printed nothing")
                .to_owned()
        }
        Err(e) => format!("unknown ({program}: {e})"),
    }
}

/// The last word of a version line ("BIRD version 2.0.12" → "2.0.12").
fn last_word(line: String) -> String {
    if line.starts_with("unknown") {
        return line;
    }
    line.split_whitespace()
        .last()
        .map(str::to_owned)
        .unwrap_or(line)
}

/// Versions of ferrolb (git commit) and of everything in the lab.
pub fn versions(root: &Path, k8s_dir: Option<&Path>) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let root_s = root.to_string_lossy();
    let commit = first_line("git", &["-C", &root_s, "rev-parse", "--short=12", "HEAD"]);
    let dirty = Command::new("git")
        .args([
            "-C",
            &root_s,
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    v.insert(
        "commit".into(),
        if dirty {
            format!("{commit} (with uncommitted changes)")
        } else {
            commit
        },
    );
    let rustc = first_line("rustc", &["--version"]);
    v.insert(
        "rustc".into(),
        rustc
            .strip_prefix("rustc ")
            .map(str::to_owned)
            .unwrap_or(rustc),
    );
    if let Some(dir) = k8s_dir {
        let api = dir.join("kube-apiserver");
        let etcd = dir.join("etcd");
        v.insert(
            "Kubernetes".into(),
            last_word(first_line(&api.to_string_lossy(), &["--version"])),
        );
        v.insert(
            "etcd".into(),
            last_word(first_line(&etcd.to_string_lossy(), &["--version"])),
        );
    }
    v.insert("BIRD".into(), last_word(first_line("bird", &["--version"])));
    v.insert(
        "FRR".into(),
        last_word(first_line("/usr/lib/frr/bgpd", &["--version"])),
    );
    v.insert(
        "GoBGP".into(),
        last_word(first_line("gobgpd", &["--version"])),
    );
    v
}

/// Where the lab's Kubernetes binaries are (the build script prints it; quick when cached).
pub fn k8s_dir(root: &Path) -> Option<std::path::PathBuf> {
    let out = Command::new("bash")
        .arg(root.join("e2e/scripts/build-k8s.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .trim()
        .to_owned();
    let dir = std::path::PathBuf::from(dir);
    dir.join("kube-apiserver").is_file().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read() {
        let t = "processor\t: 0\nmodel name\t: AMD EPYC\nMemTotal:       24000000 kB\n";
        assert_eq!(field(t, "model name"), Some("AMD EPYC"));
        assert_eq!(field(t, "MemTotal"), Some("24000000 kB"));
        assert_eq!(field(t, "flags"), None);
    }

    #[test]
    fn this_machine_has_facts() {
        let m = machine();
        assert!(m.cores >= 1);
        assert!(m.memory_gib > 0.1);
        assert!(!m.kernel.is_empty());
        assert!(m.load_start >= 0.0);
    }

    #[test]
    fn version_words() {
        assert_eq!(last_word("BIRD version 2.0.12".into()), "2.0.12");
        assert_eq!(
            last_word("unknown (x: not found)".into()),
            "unknown (x: not found)"
        );
    }
}
