//! ferrolb's API against the real API server: every CRD is accepted, every CEL rule in crds/
//! rejects a violating object with a message naming the field, every example is accepted.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ferrolb_e2e::Lab;
use serde::Deserialize;
use serde_yaml::Value;

fn repo() -> PathBuf {
    ferrolb_e2e::state::Paths::from_build().repo
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A CEL rule of a CRD: the kind, where it sits in the schema, and its fixed message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    kind: String,
    path: String,
    message: String,
}

fn collect(node: &Value, kind: &str, path: &str, out: &mut Vec<Rule>) {
    let Some(map) = node.as_mapping() else { return };
    if let Some(rules) = map
        .get("x-kubernetes-validations")
        .and_then(Value::as_sequence)
    {
        for r in rules {
            out.push(Rule {
                kind: kind.into(),
                path: path.into(),
                message: r
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            });
        }
    }
    if let Some(props) = map.get("properties").and_then(Value::as_mapping) {
        for (k, v) in props {
            collect(
                v,
                kind,
                &format!("{path}.{}", k.as_str().unwrap_or("?")),
                out,
            );
        }
    }
    if let Some(items) = map.get("items") {
        collect(items, kind, &format!("{path}[]"), out);
    }
}

fn rules_in_crds() -> Vec<Rule> {
    let mut out = Vec::new();
    for f in yaml_files(&repo().join("crds")) {
        let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        for v in crd["spec"]["versions"].as_sequence().unwrap() {
            collect(&v["schema"]["openAPIV3Schema"], &kind, "", &mut out);
        }
    }
    out
}

/// An object that breaks one rule, and what the API server must say about it.
struct Case {
    kind: &'static str,
    /// The rule it breaks: its schema path and fixed message, as in crds/.
    rule_path: &'static str,
    rule_message: &'static str,
    spec: &'static str,
    /// The field the error must name, and a piece of the message it must carry.
    field: &'static str,
    says: &'static str,
}

const DURATION: &str = "must be a duration in whole seconds such as 90s, 3m or 1m30s";
const ADDRESS: &str =
    "must be a CIDR (198.51.100.0/24), a range (198.51.100.10-198.51.100.20) or a single address";

fn cases() -> Vec<Case> {
    vec![
        Case {
            kind: "IPAddressPool",
            rule_path: ".spec.addresses[]",
            rule_message: ADDRESS,
            spec: "addresses: [\"198.51.100.0/24\", \"not-an-address\"]",
            field: "spec.addresses[1]",
            says: "\"not-an-address\" is not a CIDR",
        },
        Case {
            kind: "IPAddressPool",
            rule_path: ".spec.addresses[]",
            rule_message: ADDRESS,
            spec: "addresses: [\"198.51.100.0-198.51.100.5-198.51.100.9\"]",
            field: "spec.addresses[0]",
            says: "is not a CIDR",
        },
        Case {
            kind: "IPAddressPool",
            rule_path: ".spec.addresses[]",
            rule_message: "prefix length is longer than the address (at most 32 for IPv4, 128 for IPv6)",
            spec: "addresses: [\"198.51.100.0/33\"]",
            field: "spec.addresses[0]",
            says: "prefix length 33 is longer than an IPv4 address",
        },
        Case {
            kind: "IPAddressPool",
            rule_path: ".spec.addresses[]",
            rule_message: "prefix length is longer than the address (at most 32 for IPv4, 128 for IPv6)",
            spec: "addresses: [\"2001:db8::/129\"]",
            field: "spec.addresses[0]",
            says: "prefix length 129 is longer than an IPv6 address",
        },
        Case {
            kind: "IPAddressPool",
            rule_path: ".spec.addresses[]",
            rule_message: "a range must not mix IPv4 and IPv6",
            spec: "addresses: [\"198.51.100.10-2001:db8::10\"]",
            field: "spec.addresses[0]",
            says: "mixes IPv4 and IPv6",
        },
        Case {
            kind: "IPAddressPool",
            rule_path: ".spec.addresses[]",
            rule_message: "the range ends before it starts",
            spec: "addresses: [\"198.51.100.20-198.51.100.10\"]",
            field: "spec.addresses[0]",
            says: "the range ends before it starts",
        },
        Case {
            kind: "BGPAdvertisement",
            rule_path: ".spec.aggregationLength",
            rule_message: "an IPv4 aggregation length is between 1 and 32",
            spec: "aggregationLength: 33",
            field: "spec.aggregationLength",
            says: "33 is out of range",
        },
        Case {
            kind: "BGPAdvertisement",
            rule_path: ".spec.aggregationLengthV6",
            rule_message: "an IPv6 aggregation length is between 1 and 128",
            spec: "aggregationLengthV6: 129",
            field: "spec.aggregationLengthV6",
            says: "129 is out of range",
        },
        Case {
            kind: "BGPAdvertisement",
            rule_path: ".spec.communities[]",
            rule_message: "a community is A:B with each part 0-65535, or large:A:B:C with each part 0-4294967295",
            spec: "communities: [\"65535:65282\", \"65536:1\"]",
            field: "spec.communities[1]",
            says: "\"65536:1\" is not a community",
        },
        Case {
            kind: "BGPAdvertisement",
            rule_path: ".spec.communities[]",
            rule_message: "a community is A:B with each part 0-65535, or large:A:B:C with each part 0-4294967295",
            spec: "communities: [\"large:1:2:4294967296\"]",
            field: "spec.communities[0]",
            says: "is not a community",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.peerAddress",
            rule_message: "must be an IP address",
            spec: "peerAddress: router.example\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.peerAddress",
            says: "\"router.example\" is not an IP address",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.sourceAddress",
            rule_message: "must be an IP address",
            spec: "sourceAddress: eth0\n  peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.sourceAddress",
            says: "\"eth0\" is not an IP address",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.peerASN",
            rule_message: "AS number 0 is reserved (RFC 7607) and cannot be used",
            spec: "peerAddress: 192.0.2.1\n  peerASN: 0\n  myASN: 64700",
            field: "spec.peerASN",
            says: "AS number 0 is reserved",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.myASN",
            rule_message: "AS number 0 is reserved (RFC 7607) and cannot be used",
            spec: "peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 0",
            field: "spec.myASN",
            says: "AS number 0 is reserved",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.routerID",
            rule_message: "must be written as an IPv4 address such as 192.0.2.1",
            spec: "routerID: 2001:db8::1\n  peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.routerID",
            says: "\"2001:db8::1\" is not a router ID",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.holdTime",
            rule_message: DURATION,
            spec: "holdTime: ninety\n  peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.holdTime",
            says: "\"ninety\" is not a duration",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.holdTime",
            rule_message: "a hold time is 0s (no keepalives) or between 3s and 65535s",
            spec: "holdTime: 2s\n  peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.holdTime",
            says: "\"2s\" is out of range",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.keepaliveTime",
            rule_message: DURATION,
            spec: "keepaliveTime: 1.5s\n  peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.keepaliveTime",
            says: "\"1.5s\" is not a duration",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.connectTime",
            rule_message: DURATION,
            spec: "connectTime: \"10\"\n  peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.connectTime",
            says: "\"10\" is not a duration",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec.connectTime",
            rule_message: "a connect time is between 1s and 65535s",
            spec: "connectTime: 0s\n  peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.connectTime",
            says: "\"0s\" is out of range",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec",
            rule_message: "keepaliveTime must be shorter than holdTime, or 0s when holdTime is 0s",
            spec: "holdTime: 30s\n  keepaliveTime: 30s\n  peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.keepaliveTime",
            says: "keepaliveTime 30s must be shorter than holdTime 30s",
        },
        Case {
            kind: "BGPPeer",
            rule_path: ".spec",
            rule_message: "keepaliveTime must be shorter than holdTime, or 0s when holdTime is 0s",
            spec: "holdTime: 0s\n  keepaliveTime: 10s\n  peerAddress: 192.0.2.1\n  peerASN: 64512\n  myASN: 64700",
            field: "spec.keepaliveTime",
            says: "keepaliveTime 10s must be 0s when holdTime is 0s",
        },
        Case {
            kind: "L2Advertisement",
            rule_path: ".spec.interfaces[]",
            rule_message: "must be a network interface name: 1 to 15 letters, digits, '_', '.' or '-'",
            spec: "interfaces: [eth0, \"eth0:1\"]",
            field: "spec.interfaces[1]",
            says: "\"eth0:1\" is not a network interface name",
        },
        Case {
            kind: "L2Advertisement",
            rule_path: ".spec.interfaces[]",
            rule_message: "must be a network interface name: 1 to 15 letters, digits, '_', '.' or '-'",
            spec: "interfaces: [\"..\"]",
            field: "spec.interfaces[0]",
            says: "is not a network interface name",
        },
    ]
}

#[test]
fn every_rule_in_crds_has_a_violating_case() {
    let covered: BTreeSet<Rule> = cases()
        .iter()
        .map(|c| Rule {
            kind: c.kind.into(),
            path: c.rule_path.into(),
            message: c.rule_message.into(),
        })
        .collect();
    let rules = rules_in_crds();
    assert!(!rules.is_empty(), "crds/ holds CEL rules");
    let missing: Vec<&Rule> = rules.iter().filter(|r| !covered.contains(r)).collect();
    assert!(
        missing.is_empty(),
        "CEL rules without a case in e2e/tests/crds.rs: {missing:#?}"
    );
    let stale: Vec<&Rule> = covered.iter().filter(|c| !rules.contains(c)).collect();
    assert!(
        stale.is_empty(),
        "cases for rules no longer in crds/: {stale:#?}"
    );
}

#[tokio::test]
async fn the_api_server_accepts_every_crd() {
    let lab = Lab::shared().await;
    let mut refused = Vec::new();
    for f in yaml_files(&repo().join("crds")) {
        let yaml = std::fs::read_to_string(&f).unwrap();
        let name = serde_yaml::from_str::<Value>(&yaml).unwrap()["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        // Installed by `lab up`; if it is not there, ask the API server why.
        if lab
            .kubectl(&["get", "crd", &name, "-o", "name"])
            .await
            .is_err()
        {
            let why = lab
                .dry_run(&yaml)
                .await
                .err()
                .unwrap_or_else(|| "accepted now".into());
            refused.push(format!("{}: {why}", f.display()));
        }
    }
    assert!(
        refused.is_empty(),
        "the API server refuses these CRDs:\n{}",
        refused.join("\n")
    );
}

#[tokio::test]
async fn every_cel_rule_rejects_with_the_field_named() {
    let lab = Lab::shared().await;
    let mut failures = Vec::new();
    for (i, c) in cases().iter().enumerate() {
        let yaml = format!(
            "apiVersion: ferrolb.io/v1alpha1\nkind: {}\nmetadata:\n  name: cel-case-{i}\nspec:\n  {}\n",
            c.kind, c.spec
        );
        match lab.dry_run(&yaml).await {
            Ok(out) => failures.push(format!(
                "case {i} ({} {}) was accepted: {out}",
                c.kind, c.spec
            )),
            Err(msg) if msg.contains(c.field) && msg.contains(c.says) => {}
            Err(msg) => failures.push(format!(
                "case {i} ({} {}): expected {:?} naming {:?}, got: {msg}",
                c.kind, c.spec, c.says, c.field
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn every_example_is_accepted_by_the_api_server() {
    let lab = Lab::shared().await;
    let files = yaml_files(&repo().join("examples"));
    assert!(!files.is_empty(), "examples/ holds manifests");
    let mut refused = Vec::new();
    for f in files {
        let yaml = std::fs::read_to_string(&f).unwrap();
        // Namespaces the example expects to exist (a user would have them).
        for doc in serde_yaml::Deserializer::from_str(&yaml) {
            let Ok(v) = Value::deserialize(doc) else {
                continue;
            };
            if let Some(ns) = v["metadata"]["namespace"].as_str() {
                let _ = lab.kubectl(&["create", "namespace", ns]).await;
            }
        }
        let out = lab
            .kubectl(&["apply", "--dry-run=server", "-f", &f.display().to_string()])
            .await;
        if let Err(e) = out {
            refused.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(
        refused.is_empty(),
        "examples the API server refuses:\n{}",
        refused.join("\n")
    );
}
