//! The Helm chart without a cluster: `helm lint`, its values schema, and what the rendered
//! objects grant and run — the RBAC refusals, the workloads' hardening, and that every
//! setting the chart passes is one the binaries read.
//!
//! Needs the helm binary (e2e/scripts/build-helm.sh builds it on first use) and ferrolb's
//! binaries (`cargo build --bins`, as `make e2e` does); no lab.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ferrolb_e2e::chart;
use ferrolb_e2e::state::Paths;
use serde_yaml::Value;

fn paths() -> Paths {
    Paths::from_build()
}

fn helm() -> &'static PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| chart::helm(&paths()).unwrap())
}

/// `helm template ferrolb charts/ferrolb -n ferrolb-system --set SET…`.
fn render(sets: &[&str]) -> Vec<Value> {
    let mut args = Vec::new();
    for s in sets {
        args.extend(["--set", *s]);
    }
    let yaml = chart::template(helm(), &paths(), "ferrolb", "ferrolb-system", &args).unwrap();
    chart::documents(&yaml).unwrap()
}

/// The error helm gives for these values (panics if it renders).
fn refused(sets: &[&str]) -> String {
    let mut args = Vec::new();
    for s in sets {
        args.extend(["--set", *s]);
    }
    match chart::template(helm(), &paths(), "ferrolb", "ferrolb-system", &args) {
        Ok(_) => panic!("helm rendered the chart with {sets:?}"),
        Err(e) => e.to_string(),
    }
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], k: &str, name: &str) -> &'a Value {
    let found: Vec<_> = kind(docs, k)
        .into_iter()
        .filter(|d| d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one {k} {name}");
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// A rule of a (Cluster)Role, flattened.
#[derive(Debug)]
struct Rule {
    groups: Vec<String>,
    resources: Vec<String>,
    names: Vec<String>,
    verbs: Vec<String>,
}

/// Every rule granted to a ServiceAccount through the rendered bindings.
fn rules_of(docs: &[Value], account: &str) -> Vec<Rule> {
    let mut out = Vec::new();
    for b in kind(docs, "ClusterRoleBinding")
        .into_iter()
        .chain(kind(docs, "RoleBinding"))
    {
        let bound = b["subjects"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == account);
        if !bound {
            continue;
        }
        let role = one(
            docs,
            b["roleRef"]["kind"].as_str().unwrap(),
            b["roleRef"]["name"].as_str().unwrap(),
        );
        for r in role["rules"].as_sequence().unwrap() {
            out.push(Rule {
                groups: strings(&r["apiGroups"]),
                resources: strings(&r["resources"]),
                names: strings(&r["resourceNames"]),
                verbs: strings(&r["verbs"]),
            });
        }
    }
    assert!(!out.is_empty(), "{account} is bound to some role");
    out
}

fn no_wildcards(rules: &[Rule]) {
    for r in rules {
        for list in [&r.groups, &r.resources, &r.verbs] {
            assert!(!list.iter().any(|x| x == "*"), "wildcard in {r:?}");
        }
    }
}

/// The verbs `rules` allow on a core-group resource, by any rule.
fn core_verbs(rules: &[Rule], resource: &str) -> BTreeSet<String> {
    rules
        .iter()
        .filter(|r| r.groups.iter().any(|g| g.is_empty()))
        .filter(|r| r.resources.iter().any(|x| x == resource))
        .flat_map(|r| r.verbs.clone())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn lint_passes_and_the_schema_refuses_bad_values() {
    for values in [
        &[][..],
        &["l2.enabled=false,bgp.enabled=false,membership.enabled=false"],
        &["metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true"],
        &[
            "bgp.passwordSecrets={a,b},membership.existingSecret=own,speaker.l2ReannounceInterval=30s",
        ],
    ] {
        let mut c = Command::new(helm());
        c.args(["lint", "--strict"]).arg(chart::dir(&paths()));
        for v in values {
            c.args(["--set", v]);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "helm lint {values:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each refusal names what is wrong.
    for (sets, says) in [
        (&["membership.port=0"][..], "port"),
        (&["controler.replicas=3"], "controler"),
        (&["membership.joinTimeout=3"], "joinTimeout"),
        (
            &["controller.leaderElection.leaseDuration=soon"],
            "leaseDuration",
        ),
        (&["bgp.passwordSecrets={Not_A_Name}"], "passwordSecrets"),
        (&["controller.image.pullPolicy=Sometimes"], "pullPolicy"),
        (
            &["metrics.serviceMonitor.enabled=true,metrics.service.enabled=false"],
            "metrics.service.enabled",
        ),
    ] {
        let e = refused(sets);
        assert!(e.contains(says), "{sets:?} refused, naming {says}: {e}");
    }
}

#[test]
fn the_controller_reads_no_secret_and_only_patches_services() {
    let docs = render(&["bgp.passwordSecrets={pw}"]);
    let rules = rules_of(&docs, "ferrolb-controller");
    no_wildcards(&rules);
    assert!(
        !rules
            .iter()
            .any(|r| r.resources.iter().any(|x| x == "secrets")),
        "no rule names secrets: {rules:?}"
    );
    assert_eq!(
        core_verbs(&rules, "services"),
        set(&["get", "list", "watch", "patch"])
    );
    assert_eq!(core_verbs(&rules, "services/status"), set(&["patch"]));
    // Leader election: update only its own Lease.
    let lease_updates: Vec<_> = rules
        .iter()
        .filter(|r| r.resources.iter().any(|x| x == "leases"))
        .filter(|r| r.verbs.iter().any(|v| v == "update"))
        .collect();
    assert_eq!(lease_updates.len(), 1);
    assert_eq!(lease_updates[0].names, ["ferrolb-controller"]);
    // Its Role lives in the release namespace, not cluster-wide.
    let role = one(&docs, "Role", "ferrolb-controller");
    assert_eq!(role["metadata"]["namespace"], "ferrolb-system");
}

#[test]
fn the_speaker_cannot_write_services_and_reads_only_named_secrets() {
    let docs = render(&["bgp.passwordSecrets={pw-a,pw-b}"]);
    let rules = rules_of(&docs, "ferrolb-speaker");
    no_wildcards(&rules);
    assert_eq!(
        core_verbs(&rules, "services"),
        set(&["get", "list", "watch"])
    );
    assert!(core_verbs(&rules, "services/status").is_empty());
    let secret_rules: Vec<_> = rules
        .iter()
        .filter(|r| r.resources.iter().any(|x| x == "secrets"))
        .collect();
    assert_eq!(secret_rules.len(), 1, "{secret_rules:?}");
    assert_eq!(
        secret_rules[0].names,
        ["ferrolb-membership", "pw-a", "pw-b"],
        "by name only"
    );
    assert_eq!(secret_rules[0].verbs, ["get", "list", "watch"]);
    let role = one(&docs, "Role", "ferrolb-speaker-secrets");
    assert_eq!(role["metadata"]["namespace"], "ferrolb-system");

    // BGP off: the password Secrets go, the membership key stays.
    let docs = render(&["bgp.passwordSecrets={pw-a}", "bgp.enabled=false"]);
    let names: Vec<_> = rules_of(&docs, "ferrolb-speaker")
        .into_iter()
        .filter(|r| r.resources.iter().any(|x| x == "secrets"))
        .flat_map(|r| r.names)
        .collect();
    assert_eq!(names, ["ferrolb-membership"]);

    // Nothing to read: no Secret rule at all (an empty resourceNames would mean every one).
    let docs = render(&["membership.enabled=false"]);
    assert!(
        !rules_of(&docs, "ferrolb-speaker")
            .iter()
            .any(|r| r.resources.iter().any(|x| x == "secrets"))
    );
    assert!(kind(&docs, "Secret").is_empty());
}

fn container(workload: &Value) -> &Value {
    let cs = workload["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    assert_eq!(cs.len(), 1);
    &cs[0]
}

fn env_names(c: &Value) -> Vec<String> {
    c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn env_field(c: &Value, name: &str) -> Value {
    c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no env {name}"))
}

fn probes_on_metrics(c: &Value) {
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for p in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[p]["httpGet"]["port"], "metrics");
    }
    assert!(
        c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "metrics")
    );
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
}

#[test]
fn the_workloads_are_hardened() {
    let docs = render(&[]);
    let d = one(&docs, "Deployment", "ferrolb-controller");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "ferrolb-controller");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = container(d);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"]["add"].is_null());
    probes_on_metrics(c);
    let pdb = one(&docs, "PodDisruptionBudget", "ferrolb-controller");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        env_field(c, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );

    let ds = one(&docs, "DaemonSet", "ferrolb-speaker");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["serviceAccountName"], "ferrolb-speaker");
    assert_eq!(
        pod["tolerations"],
        serde_yaml::from_str::<Value>("[{operator: Exists}]").unwrap()
    );
    let c = container(ds);
    assert_eq!(
        env_field(c, "NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(strings(&sc["capabilities"]["add"]), ["NET_RAW"]);
    probes_on_metrics(c);
    assert!(
        c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "membership"
                && p["containerPort"] == 7946
                && p["protocol"] == "UDP")
    );

    // Without L2 the speaker needs no capability and no root.
    let docs = render(&["l2.enabled=false"]);
    let ds = one(&docs, "DaemonSet", "ferrolb-speaker");
    let c = container(ds);
    assert!(c["securityContext"]["capabilities"]["add"].is_null());
    assert_eq!(
        ds["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
}

/// The environment variable names a binary reads, from its `--help` (clap's `[env: NAME=]`).
fn env_of_binary(name: &str) -> BTreeSet<String> {
    let bin = ferrolb_e2e::harness::bin_dir().join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build the binaries first (cargo build --bins)",
        bin.display()
    );
    let out = Command::new(&bin)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut names = BTreeSet::new();
    for part in help.split("[env: ").skip(1) {
        if let Some((n, _)) = part.split_once('=') {
            names.insert(n.to_string());
        }
    }
    assert!(!names.is_empty(), "{name} --help lists env names: {help}");
    names
}

#[test]
fn the_chart_sets_only_what_the_binaries_read() {
    // Every optional setting on, so every env entry the chart can write is rendered.
    let docs = render(&[
        "loadBalancerClass=example.org/lb",
        "speaker.l2ReannounceInterval=30s",
    ]);
    for (k, name, bin) in [
        ("Deployment", "ferrolb-controller", "ferrolb-controller"),
        ("DaemonSet", "ferrolb-speaker", "ferrolb-speaker"),
    ] {
        let read = env_of_binary(bin);
        let set: BTreeSet<String> = env_names(container(one(&docs, k, name)))
            .into_iter()
            .collect();
        let unknown: Vec<_> = set.difference(&read).collect();
        assert!(
            unknown.is_empty(),
            "the chart sets {unknown:?} for {bin}, which reads only {read:?}"
        );
    }
}

#[test]
fn the_membership_key_is_made_once_per_install_or_taken_from_the_user() {
    let key = |docs: &[Value]| -> Vec<u8> {
        let s = one(docs, "Secret", "ferrolb-membership");
        let b64 = s["data"]["key"].as_str().unwrap();
        serde_json::from_value::<k8s_openapi::ByteString>(serde_json::json!(b64))
            .unwrap()
            .0
    };
    let (a, b) = (key(&render(&[])), key(&render(&[])));
    assert_eq!(a.len(), 32);
    // `helm template` cannot look the old Secret up: each render draws a new key.
    assert_ne!(a, b);

    let docs = render(&["membership.existingSecret=own-key"]);
    assert!(kind(&docs, "Secret").is_empty());
    let c = container(one(&docs, "DaemonSet", "ferrolb-speaker"));
    assert_eq!(
        env_field(c, "FERROLB_MEMBERSHIP_SECRET")["value"],
        "own-key"
    );
    let names: Vec<_> = rules_of(&docs, "ferrolb-speaker")
        .into_iter()
        .flat_map(|r| r.names)
        .collect();
    assert_eq!(names, ["own-key"]);
}

#[test]
fn the_chart_version_follows_the_workspace() {
    let cargo = std::fs::read_to_string(paths().repo.join("Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.strip_prefix("version = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart::dir(&paths()).join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(chart["version"].as_str(), Some(version.as_str()));
    assert_eq!(chart["appVersion"].as_str(), Some(version.as_str()));
}

#[test]
fn each_containerfile_builds_its_binary_into_its_entrypoint() {
    for bin in ["controller", "speaker"] {
        let file = paths().repo.join(bin).join("Containerfile");
        let text = std::fs::read_to_string(&file).unwrap();
        let package = format!("ferrolb-{bin}");
        assert!(
            text.contains(&format!("-p {package} --bin {package}")),
            "{} builds {package}",
            file.display()
        );
        assert!(text.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{package}\"]")));
        assert!(text.contains("--locked"));
        let manifest = std::fs::read_to_string(paths().repo.join(bin).join("Cargo.toml")).unwrap();
        assert!(manifest.contains(&format!("name = \"{package}\"")));
    }
}

/// Runs e2e/scripts/build-promql-check.sh's checker on `exprs`: Ok, or its complaints.
fn promql_check(exprs: &[&str]) -> Result<(), String> {
    let script = paths().repo.join("e2e/scripts/build-promql-check.sh");
    let built = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let checker = String::from_utf8_lossy(&built.stdout).trim().to_string();
    let mut child = Command::new(checker)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), exprs).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[test]
fn the_alerting_rules_are_promql_prometheus_parses() {
    let docs = render(&[
        "metrics.prometheusRule.enabled=true",
        "metrics.serviceMonitor.enabled=true",
    ]);
    let rules = kind(&docs, "PrometheusRule");
    assert_eq!(rules.len(), 1);
    let mut alerts = BTreeSet::new();
    let mut exprs = Vec::new();
    for group in rules[0]["spec"]["groups"].as_sequence().unwrap() {
        for r in group["rules"].as_sequence().unwrap() {
            alerts.insert(r["alert"].as_str().unwrap().to_string());
            exprs.push(r["expr"].as_str().unwrap().to_string());
            assert!(r["for"].is_string(), "{r:?}");
            assert!(r["annotations"]["summary"].is_string(), "{r:?}");
        }
    }
    assert_eq!(
        alerts,
        set(&[
            "FerrolbPoolNearlyExhausted",
            "FerrolbBGPSessionDown",
            "FerrolbServiceWithoutAddress",
            "FerrolbNoSpeakerAlive",
            "FerrolbNoLeader",
        ])
    );
    let exprs: Vec<&str> = exprs.iter().map(String::as_str).collect();
    promql_check(&exprs).unwrap();
    // The checker does refuse broken PromQL.
    let e = promql_check(&["sum(ferrolb_leader"]).unwrap_err();
    assert!(e.contains("expression 0"), "{e}");

    // Without kube-state-metrics the alert that reads its series is left out.
    let docs = render(&[
        "metrics.prometheusRule.enabled=true",
        "metrics.prometheusRule.kubeStateMetrics=false",
    ]);
    let text = serde_yaml::to_string(kind(&docs, "PrometheusRule")[0]).unwrap();
    assert!(!text.contains("kube_service"), "{text}");
}

/// The names passed to `registry.register(` in the programs' sources (test modules left out).
fn registered_metric_families() -> BTreeSet<String> {
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs")
                && !p
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .ends_with("tests.rs")
            {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["controller/src", "speaker/src", "runtime/src"] {
        rust_files(&paths().repo.join(dir), &mut files);
    }
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let mut rest = text;
        while let Some(i) = rest.find("registry.register(") {
            rest = &rest[i + "registry.register(".len()..];
            let start = rest.find('"').unwrap() + 1;
            let end = start + rest[start..].find('"').unwrap();
            out.insert(format!("ferrolb_{}", &rest[start..end]));
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn the_metrics_reference_lists_exactly_the_registered_metrics() {
    let registered = registered_metric_families();
    assert!(registered.len() >= 20, "{registered:?}");
    let documented = chart::documented_metric_families(&paths()).unwrap();
    assert_eq!(
        documented, registered,
        "docs/metrics.md against the registry.register calls in the sources"
    );
}
