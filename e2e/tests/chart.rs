//! The Helm chart against the lab's real API server: the lab's controller and speakers run as
//! the chart's ServiceAccounts (so every e2e test proves the chart's RBAC suffices), the
//! refusals the chart promises hold for real requests, `helm template` output passes a
//! server-side dry run, and `helm install`, `upgrade` and `uninstall` do what they should.
//!
//! The lab has no container runtime: installed workloads never start, so the install test
//! checks the objects, the RBAC and the CRDs.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ferrolb_e2e::chart::{self, CONTROLLER_ACCOUNT, NAMESPACE, SPEAKER_ACCOUNT};
use ferrolb_e2e::state::{CONTROLLER_REPLICAS, Part, State};
use ferrolb_e2e::{Lab, cmd, poll};

fn state(lab: &Lab) -> State {
    State::load(&lab.paths).unwrap()
}

/// kubectl with the given kubeconfig (not the lab's admin one). The speakers' kubeconfig
/// reaches the API server as they do, from a node's namespace.
fn kubectl_as(lab: &Lab, kubeconfig: &Path, args: &[&str]) -> Output {
    let program = state(lab).k8s_dir.join("kubectl");
    let mut c = if kubeconfig == chart::speaker_kubeconfig(&lab.paths) {
        cmd::in_netns(&lab.nodes()[0].netns(), &program)
    } else {
        Command::new(&program)
    };
    c.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
    .trim()
    .to_string()
}

/// `kubectl auth can-i VERB RESOURCE …` as this identity: true for "yes".
fn can_i(lab: &Lab, kubeconfig: &Path, args: &[&str]) -> bool {
    let mut a = vec!["auth", "can-i"];
    a.extend(args);
    let o = kubectl_as(lab, kubeconfig, &a);
    match String::from_utf8_lossy(&o.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!("auth can-i {args:?}: {other} {}", text(&o)),
    }
}

fn controller(lab: &Lab) -> PathBuf {
    chart::controller_kubeconfig(&lab.paths)
}

fn speaker(lab: &Lab) -> PathBuf {
    chart::speaker_kubeconfig(&lab.paths)
}

fn helm(lab: &Lab) -> PathBuf {
    chart::helm(&lab.paths).unwrap()
}

/// `helm ARGS… --kubeconfig <admin>`.
fn helm_run(lab: &Lab, args: &[&str]) -> Output {
    Command::new(helm(lab))
        .args(args)
        .arg("--kubeconfig")
        .arg(lab.paths.kubeconfig())
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_lab_runs_ferrolb_as_the_charts_service_accounts() {
    let lab = Lab::shared().await;
    for (kubeconfig, account) in [
        (controller(&lab), CONTROLLER_ACCOUNT),
        (speaker(&lab), SPEAKER_ACCOUNT),
    ] {
        let o = kubectl_as(
            &lab,
            &kubeconfig,
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
        );
        assert_eq!(
            text(&o),
            format!("system:serviceaccount:{NAMESPACE}:{account}")
        );
        let file = std::fs::read_to_string(&kubeconfig).unwrap();
        assert!(file.contains("token: "), "a token kubeconfig");
        assert!(!file.contains("client-key"), "no admin certificate in it");
    }
    // The processes are started with those kubeconfigs.
    let st = state(&lab);
    let kubeconfig_of = |part: Part| -> String {
        st.procs[&part]
            .spec
            .env
            .iter()
            .find(|(k, _)| k == "KUBECONFIG")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    for replica in 1..=CONTROLLER_REPLICAS {
        assert_eq!(
            kubeconfig_of(Part::Controller(replica)),
            controller(&lab).display().to_string()
        );
    }
    for n in lab.nodes() {
        assert_eq!(
            kubeconfig_of(Part::Speaker(n)),
            speaker(&lab).display().to_string()
        );
    }
}

#[tokio::test]
async fn the_controller_cannot_read_secrets() {
    let lab = Lab::shared().await;
    let c = controller(&lab);
    for args in [
        &["get", "secrets", "--all-namespaces"][..],
        &["list", "secrets", "--all-namespaces"],
        &["watch", "secrets", "--all-namespaces"],
        &["get", "secrets", "-n", NAMESPACE],
        &["get", "secret/ferrolb-membership", "-n", NAMESPACE],
        // Nor write Services other than by patch.
        &["create", "services", "-n", "default"],
        &["update", "services", "-n", "default"],
        &["delete", "services", "-n", "default"],
    ] {
        assert!(!can_i(&lab, &c, args), "controller must not {args:?}");
    }
    // What it needs, it has.
    for args in [
        &["patch", "services", "--subresource=status", "-n", "default"][..],
        &["patch", "services", "-n", "default"],
        &["watch", "services", "--all-namespaces"],
        &["create", "leases.coordination.k8s.io", "-n", NAMESPACE],
        &[
            "update",
            "leases.coordination.k8s.io/ferrolb-controller",
            "-n",
            NAMESPACE,
        ],
        &["patch", "ipaddresspools.ferrolb.io", "--subresource=status"],
        &["create", "events.events.k8s.io", "-n", "default"],
    ] {
        assert!(can_i(&lab, &c, args), "controller may {args:?}");
    }
    // A real request is refused, and says so.
    let o = kubectl_as(&lab, &c, &["get", "secrets", "-n", NAMESPACE]);
    assert!(!o.status.success());
    assert!(text(&o).contains("Forbidden"), "{}", text(&o));
}

#[tokio::test]
async fn the_speaker_cannot_write_services_and_reads_only_named_secrets() {
    let lab = Lab::shared().await;
    let s = speaker(&lab);
    for args in [
        &["create", "services", "-n", "default"][..],
        &["update", "services", "-n", "default"],
        &["patch", "services", "-n", "default"],
        &["delete", "services", "-n", "default"],
        &[
            "update",
            "services",
            "--subresource=status",
            "-n",
            "default",
        ],
        &["patch", "services", "--subresource=status", "-n", "default"],
        &["list", "secrets", "-n", NAMESPACE],
        &["get", "secrets", "--all-namespaces"],
        &["get", "secret/not-a-peer-password", "-n", NAMESPACE],
    ] {
        assert!(!can_i(&lab, &s, args), "speaker must not {args:?}");
    }
    for args in [
        &["watch", "services", "--all-namespaces"][..],
        &[
            "watch",
            "endpointslices.discovery.k8s.io",
            "--all-namespaces",
        ],
        &["watch", "nodes"],
        &["create", "servicel2statuses.ferrolb.io", "-n", "default"],
        &[
            "patch",
            "servicebgpstatuses.ferrolb.io",
            "--subresource=status",
            "-n",
            "default",
        ],
        &["get", "secret/ferrolb-membership", "-n", NAMESPACE],
        &[
            "get",
            &format!("secret/{}", chart::PASSWORD_SECRETS[0]),
            "-n",
            NAMESPACE,
        ],
    ] {
        assert!(can_i(&lab, &s, args), "speaker may {args:?}");
    }

    // Real requests. A Service to try to write.
    let ns = lab.namespace("chart-rbac").await.unwrap();
    lab.create_service(&ns, &ferrolb_e2e::lb_service("web"))
        .await
        .unwrap();
    let o = kubectl_as(
        &lab,
        &s,
        &["annotate", "service", "web", "-n", &ns, "x.example/y=z"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Forbidden"), "{}", text(&o));
    let o = kubectl_as(&lab, &s, &["get", "service", "web", "-n", &ns]);
    assert!(o.status.success(), "{}", text(&o));

    // The membership key by name, by a name-selected list (how a watch of one Secret asks),
    // but not a whole-namespace list, and no other Secret even when it exists.
    let o = kubectl_as(
        &lab,
        &s,
        &["get", "secret", "ferrolb-membership", "-n", NAMESPACE],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = kubectl_as(
        &lab,
        &s,
        &[
            "get",
            "secrets",
            "-n",
            NAMESPACE,
            "--field-selector",
            "metadata.name=ferrolb-membership",
            "-o",
            "name",
        ],
    );
    assert_eq!(text(&o), "secret/ferrolb-membership");
    let o = kubectl_as(&lab, &s, &["get", "secrets", "-n", NAMESPACE]);
    assert!(text(&o).contains("Forbidden"), "{}", text(&o));
    lab.kubectl(&[
        "create",
        "secret",
        "generic",
        "unrelated",
        "-n",
        &ns,
        "--from-literal=x=y",
    ])
    .await
    .unwrap();
    let o = kubectl_as(&lab, &s, &["get", "secret", "unrelated", "-n", &ns]);
    assert!(text(&o).contains("Forbidden"), "{}", text(&o));
}

/// Every object of a rendered chart, as `kind/name`.
fn object_names(yaml: &str) -> BTreeSet<String> {
    chart::documents(yaml)
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap().to_lowercase(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn template_output_passes_a_server_side_dry_run() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("chart-dry").await.unwrap();
    for (release, sets) in [
        ("dry-default", &[][..]),
        (
            "dry-other",
            &[
                "l2.enabled=false",
                "membership.enabled=false",
                "bgp.passwordSecrets={a,b}",
                "loadBalancerClass=example.org/lb",
            ],
        ),
    ] {
        let mut args = vec!["--include-crds"];
        for s in sets {
            args.extend(["--set", *s]);
        }
        let yaml = chart::template(&helm(&lab), &lab.paths, release, &ns, &args).unwrap();
        let out = lab
            .kubectl_input(
                &["apply", "--server-side", "--dry-run=server", "-f", "-"],
                Some(&yaml),
            )
            .await
            .unwrap_or_else(|e| panic!("{release}: the API server refused the chart: {e}"));
        // Every object was sent and accepted (kubectl prints one line each).
        for object in object_names(&yaml) {
            let kind = object.split('/').next().unwrap();
            let name = object.split('/').nth(1).unwrap();
            assert!(
                out.lines().any(|l| l.contains(name)
                    && l.to_lowercase().contains(kind)
                    && l.contains("(server dry run)")),
                "{release}: {object} in {out}"
            );
        }
    }
    // And it would have refused a broken one: the dry run is a real check.
    let yaml = chart::template(&helm(&lab), &lab.paths, "dry-broken", &ns, &[]).unwrap();
    let broken = yaml.replacen("kind: Deployment", "kind: Deployment\nbogus: 1", 1);
    let e = lab
        .kubectl_input(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--validate=strict",
                "-f",
                "-",
            ],
            Some(&broken),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
}

fn json(lab: &Lab, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["get"];
    a.extend(args);
    a.extend(["-o", "json"]);
    let o = Command::new(state(lab).k8s_dir.join("kubectl"))
        .arg("--kubeconfig")
        .arg(lab.paths.kubeconfig())
        .args(&a)
        .output()
        .unwrap();
    assert!(o.status.success(), "kubectl {a:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn exists(lab: &Lab, args: &[&str]) -> bool {
    let mut a = vec!["get"];
    a.extend(args);
    a.extend(["-o", "name"]);
    let o = Command::new(state(lab).k8s_dir.join("kubectl"))
        .arg("--kubeconfig")
        .arg(lab.paths.kubeconfig())
        .args(&a)
        .output()
        .unwrap();
    if o.status.success() {
        true
    } else if text(&o).contains("NotFound") {
        false
    } else {
        panic!("kubectl {a:?}: {}", text(&o))
    }
}

fn membership_key(lab: &Lab, ns: &str, name: &str) -> Vec<u8> {
    let s = json(lab, &["secret", name, "-n", ns]);
    serde_json::from_value::<k8s_openapi::ByteString>(s["data"]["key"].clone())
        .unwrap()
        .0
}

fn env_value(workload: &serde_json::Value, name: &str) -> Option<String> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_string)
}

/// The same JSON with every number as a float: the API server writes `0` where the YAML
/// file says `0.0`.
fn numbers_as_floats(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Number(n) => n.as_f64().map_or(J::Number(n), J::from),
        J::Array(a) => J::Array(a.into_iter().map(numbers_as_floats).collect()),
        J::Object(o) => J::Object(
            o.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("chart-install").await.unwrap();
    let (release, full) = ("flbtest", "flbtest-ferrolb");
    let dir = chart::dir(&lab.paths).display().to_string();

    // The lab already serves ferrolb's CRDs (as a cluster being upgraded to the chart would):
    // the install must take them as they are.
    let o = helm_run(
        &lab,
        &[
            "install",
            release,
            &dir,
            "-n",
            &ns,
            "--set",
            "bgp.passwordSecrets={peer-pw}",
        ],
    );
    assert!(o.status.success(), "helm install: {}", text(&o));
    assert!(
        text(&o).contains("Nothing is assigned until an IPAddressPool exists"),
        "the notes tell the next step: {}",
        text(&o)
    );

    // The objects.
    let d = json(
        &lab,
        &["deployment", &format!("{full}-controller"), "-n", &ns],
    );
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        format!("{full}-controller")
    );
    assert_eq!(
        env_value(&d, "FERROLB_LEASE_NAME").as_deref(),
        Some(format!("{full}-controller").as_str())
    );
    let ds = json(&lab, &["daemonset", &format!("{full}-speaker"), "-n", &ns]);
    assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], true);
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_RAW"])
    );
    for object in [
        format!("poddisruptionbudget/{full}-controller"),
        format!("service/{full}-controller-metrics"),
        format!("service/{full}-speaker-metrics"),
        format!("serviceaccount/{full}-controller"),
        format!("serviceaccount/{full}-speaker"),
        format!("role/{full}-controller"),
        format!("role/{full}-speaker-secrets"),
        format!("rolebinding/{full}-controller"),
        format!("rolebinding/{full}-speaker-secrets"),
    ] {
        assert!(exists(&lab, &[&object, "-n", &ns]), "{object}");
    }
    for object in [
        format!("clusterrole/{full}-controller"),
        format!("clusterrole/{full}-speaker"),
        format!("clusterrolebinding/{full}-controller"),
        format!("clusterrolebinding/{full}-speaker"),
    ] {
        assert!(exists(&lab, &[&object]), "{object}");
    }

    // The installed RBAC, asked of the API server for the release's ServiceAccounts.
    let admin = lab.paths.kubeconfig();
    let sa = |name: &str| format!("--as=system:serviceaccount:{}:{full}-{name}", ns.name);
    let (as_controller, as_speaker) = (sa("controller"), sa("speaker"));
    let secret = format!("secret/{full}-membership");
    assert!(!can_i(
        &lab,
        &admin,
        &[&as_controller, "get", "secrets", "-A"]
    ));
    assert!(!can_i(
        &lab,
        &admin,
        &[&as_controller, "get", &secret, "-n", &ns]
    ));
    assert!(can_i(
        &lab,
        &admin,
        &[
            &as_controller,
            "patch",
            "services",
            "--subresource=status",
            "-A"
        ]
    ));
    assert!(!can_i(
        &lab,
        &admin,
        &[&as_speaker, "patch", "services", "-A"]
    ));
    assert!(!can_i(
        &lab,
        &admin,
        &[
            &as_speaker,
            "patch",
            "services",
            "--subresource=status",
            "-A"
        ]
    ));
    assert!(can_i(
        &lab,
        &admin,
        &[&as_speaker, "get", &secret, "-n", &ns]
    ));
    assert!(can_i(
        &lab,
        &admin,
        &[&as_speaker, "get", "secret/peer-pw", "-n", &ns]
    ));
    assert!(!can_i(
        &lab,
        &admin,
        &[&as_speaker, "get", "secret/other", "-n", &ns]
    ));

    // The CRDs served are the chart's, and established.
    let crd_dir = chart::dir(&lab.paths).join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&crd_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "{files:?}");
    for f in files {
        let want: serde_json::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let name = want["metadata"]["name"].as_str().unwrap();
        let got = json(&lab, &["crd", name]);
        // The API server adds listKind to the names.
        let mut names = got["spec"]["names"].clone();
        names.as_object_mut().unwrap().remove("listKind");
        assert_eq!(names, want["spec"]["names"], "{name}");
        assert_eq!(got["spec"]["scope"], want["spec"]["scope"], "{name}");
        let schemas = |v: &serde_json::Value| -> Vec<serde_json::Value> {
            v["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| numbers_as_floats(v["schema"].clone()))
                .collect()
        };
        assert_eq!(schemas(&got), schemas(&want), "{name}: the chart's schema");
        let established = got["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        assert!(established, "{name} established");
    }

    // An upgrade keeps the membership key (speakers of both versions keep talking) and
    // applies the new values.
    let key = membership_key(&lab, &ns, &format!("{full}-membership"));
    assert_eq!(key.len(), 32);
    let o = helm_run(
        &lab,
        &[
            "upgrade",
            release,
            &dir,
            "-n",
            &ns,
            "--reuse-values",
            "--set",
            "logLevel=debug",
        ],
    );
    assert!(o.status.success(), "helm upgrade: {}", text(&o));
    assert_eq!(
        membership_key(&lab, &ns, &format!("{full}-membership")),
        key
    );
    let d = json(
        &lab,
        &["deployment", &format!("{full}-controller"), "-n", &ns],
    );
    assert_eq!(env_value(&d, "FERROLB_LOG_LEVEL").as_deref(), Some("debug"));

    // Uninstalling removes the cluster-wide objects too, and leaves the CRDs (and with them
    // every pool and Service status) alone, as Helm does for a chart's crds/.
    let o = helm_run(&lab, &["uninstall", release, "-n", &ns, "--wait"]);
    assert!(o.status.success(), "helm uninstall: {}", text(&o));
    poll(
        "the release's ClusterRoles to go",
        Duration::from_secs(30),
        || async {
            let left: Vec<_> = ["controller", "speaker"]
                .iter()
                .filter(|c| exists(&lab, &[&format!("clusterrole/{full}-{c}")]))
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    )
    .await
    .unwrap();
    assert!(exists(&lab, &["crd/ipaddresspools.ferrolb.io"]));
}

/// The metric names a PrometheusRule expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("ferrolb_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn the_alerts_read_metrics_the_programs_export() {
    let lab = Lab::shared().await;
    let yaml = chart::template(
        &helm(&lab),
        &lab.paths,
        "ferrolb",
        NAMESPACE,
        &["--set", "metrics.prometheusRule.enabled=true"],
    )
    .unwrap();
    let docs = chart::documents(&yaml).unwrap();
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").unwrap();
    let mut wanted = BTreeSet::new();
    for r in rule["spec"]["groups"][0]["rules"].as_sequence().unwrap() {
        wanted.extend(metric_names(r["expr"].as_str().unwrap()));
    }
    assert!(wanted.len() >= 3, "{wanted:?}");

    // Pools and a BGP peer, so that the pool and session families have series (a family
    // without a series is not exported at all).
    apply_lab_config(&lab).await;
    let st = state(&lab);
    let node = lab.nodes()[0];
    let exported = poll(
        "the rule's metrics at the controller's and a speaker's /metrics",
        Duration::from_secs(30),
        || async {
            // Every replica: only the leader has series of some families.
            let mut outputs = Vec::new();
            for port in st.ports.controller_metrics {
                outputs.push(
                    Command::new("curl")
                        .args(["-sS", "--max-time", "5"])
                        .arg(format!("http://127.0.0.1:{port}/metrics"))
                        .output()
                        .map_err(|e| e.to_string())?,
                );
            }
            let speaker_metrics = lab
                .exec(
                    &node.netns(),
                    &["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9402/metrics"],
                )
                .await
                .map_err(|e| e.to_string())?;
            // # TYPE lines name every exported family.
            let mut exported = BTreeSet::new();
            outputs.push(speaker_metrics);
            for out in outputs {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some(rest) = line.strip_prefix("# TYPE ") {
                        exported.insert(rest.split_whitespace().next().unwrap_or("").to_string());
                    }
                }
            }
            let missing: Vec<_> = wanted.difference(&exported).collect();
            if missing.is_empty() {
                Ok(exported)
            } else {
                Err(format!(
                    "the PrometheusRule reads {missing:?}, which neither program exports; they export {exported:?}"
                ))
            }
        },
    )
    .await
    .unwrap();

    // docs/metrics.md lists every family the programs export.
    let documented = chart::documented_metric_families(&lab.paths).unwrap();
    let undocumented: Vec<_> = exported
        .iter()
        .filter(|m| m.starts_with("ferrolb_") && !documented.contains(*m))
        .collect();
    assert!(
        undocumented.is_empty(),
        "exported but not in docs/metrics.md: {undocumented:?}"
    );
}

/// examples/lab/ferrolb.yaml: the lab's pools, BGP peer and advertisements (what `make lab`
/// applies). Idempotent, so tests of this binary may each apply it.
async fn apply_lab_config(lab: &Lab) {
    let yaml = std::fs::read_to_string(lab.paths.repo.join("examples/lab/ferrolb.yaml")).unwrap();
    lab.apply_yaml(&yaml).await.unwrap();
}

fn lines_mentioning_forbidden(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn ferrolb_does_its_work_with_the_charts_rights() {
    let lab = Lab::shared().await;
    apply_lab_config(&lab).await;
    let ns = lab.namespace("chart-work").await.unwrap();
    let demo = std::fs::read_to_string(lab.paths.repo.join("examples/lab/demo.yaml")).unwrap();
    lab.kubectl_input(&["apply", "-n", &ns, "-f", "-"], Some(&demo))
        .await
        .unwrap();

    // The controller assigned addresses (watches, status and annotation patches, Events) …
    let address = |svc: &'static str| {
        let lab = &lab;
        let ns = ns.name.clone();
        async move {
            let out = lab
                .kubectl(&[
                    "get",
                    "service",
                    svc,
                    "-n",
                    &ns,
                    "-o",
                    "jsonpath={.status.loadBalancer.ingress[0].ip}",
                ])
                .await
                .map_err(|e| e.to_string())?;
            out.trim()
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("{svc}: no address yet ({out:?})"))
        }
    };
    let bgp_ip = poll("demo-bgp's address", Duration::from_secs(30), || {
        address("demo-bgp")
    })
    .await
    .unwrap();
    poll("demo-l2's address", Duration::from_secs(30), || {
        address("demo-l2")
    })
    .await
    .unwrap();

    // … the speakers announce them and say so in their status objects …
    for kind in ["servicebgpstatuses", "servicel2statuses"] {
        poll(
            &format!("{kind} in {}", ns.name),
            Duration::from_secs(30),
            || async {
                let out = lab
                    .kubectl(&["get", kind, "-n", &ns, "-o", "name"])
                    .await
                    .map_err(|e| e.to_string())?;
                if out.trim().is_empty() {
                    Err("none yet".to_string())
                } else {
                    Ok(())
                }
            },
        )
        .await
        .unwrap();
    }
    let host = ipnet::IpNet::from(bgp_ip);
    // The lab's own routing first, so that a missing route below is ferrolb's doing.
    lab.wait_sessions(&lab.nodes(), Duration::from_secs(60))
        .await
        .unwrap();
    poll(
        &format!("the router's route to {host}"),
        Duration::from_secs(30),
        || async {
            match lab.router_route(host).await.map_err(|e| e.to_string())? {
                Some(r) => Ok(r),
                None => Err("no route yet".to_string()),
            }
        },
    )
    .await
    .unwrap();

    // … and none of them was refused anything on the way.
    let mut refused = Vec::new();
    for replica in 1..=CONTROLLER_REPLICAS {
        refused.extend(lines_mentioning_forbidden(
            &lab.paths.log(&Part::Controller(replica)),
        ));
    }
    for n in lab.nodes() {
        refused.extend(lines_mentioning_forbidden(
            &lab.paths.log(&Part::Speaker(n)),
        ));
    }
    assert!(
        refused.is_empty(),
        "requests the chart's RBAC refused:\n{}",
        refused.join("\n")
    );
}
