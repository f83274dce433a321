//! `ferrolb-controller convert` as a user runs it: the real binary on MetalLB manifests written
//! for these tests (tests/fixtures/metallb/), its stdout read back into ferrolb's types and
//! checked against the CRDs' CEL rules, its stderr and exit status.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ferrolb_api::{BGPAdvertisement, BGPPeer, IPAddressPool, L2Advertisement};
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metallb")
        .join(name)
}

fn convert(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .arg("convert")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Deserializes every document into its ferrolb type, serializes it back and compares, and
/// runs the CRD's CEL rules on it.
fn check_round_trip_and_cel(doc: &Value) {
    fn round_trip<T>(doc: &Value)
    where
        T: serde::de::DeserializeOwned + serde::Serialize,
    {
        let typed: T = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(&serde_json::to_value(&typed).unwrap(), doc);
    }
    let kind = doc["kind"].as_str().unwrap();
    match kind {
        "Secret" => return round_trip::<Secret>(doc),
        "IPAddressPool" => round_trip::<IPAddressPool>(doc),
        "BGPPeer" => round_trip::<BGPPeer>(doc),
        "BGPAdvertisement" => round_trip::<BGPAdvertisement>(doc),
        "L2Advertisement" => round_trip::<L2Advertisement>(doc),
        other => panic!("unexpected kind {other}"),
    }
    let crd = ferrolb_api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref(),
    )
    .unwrap();
    if let Err(e) = kube_cel::Validator::new().validate(&schema, doc, None) {
        panic!("{kind} refused by CEL: {e}");
    }
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn metallb_l2_and_bgp_configuration_converts() {
    let out = convert(
        &[
            fixture("l2.yaml").to_str().unwrap(),
            fixture("bgp.yaml").to_str().unwrap(),
        ],
        None,
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");

    let docs = documents(&stdout);
    for doc in &docs {
        check_round_trip_and_cel(doc);
    }
    let names: Vec<(String, String)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("Secret", "bgp-auth"),
        ("Secret", "rack9-tor-bgp-password"),
        ("IPAddressPool", "office"),
        ("IPAddressPool", "web"),
        ("IPAddressPool", "shared"),
        ("IPAddressPool", "general"),
        ("BGPPeer", "node-bird"),
        ("BGPPeer", "rack9-tor"),
        ("BGPAdvertisement", "to-fabric"),
        ("L2Advertisement", "office"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
        .collect();
    assert_eq!(names, expect);

    assert_eq!(
        find(&docs, "IPAddressPool", "office")["spec"],
        json!({
            "addresses": ["192.0.2.200-192.0.2.209", "2001:db8:2::200-2001:db8:2::20f"],
            "autoAssign": false, "avoidBuggyIPs": false
        })
    );
    assert_eq!(
        find(&docs, "IPAddressPool", "web")["spec"]["serviceAllocation"],
        json!({"priority": 1, "namespaceSelectors": [{"matchLabels": {"team": "web"}}]})
    );
    assert_eq!(
        find(&docs, "IPAddressPool", "shared")["spec"]["serviceAllocation"]["priority"],
        i32::MAX
    );
    assert_eq!(
        find(&docs, "IPAddressPool", "web")["metadata"],
        json!({"name": "web", "labels": {"advertise": "bgp"}})
    );
    assert_eq!(
        find(&docs, "BGPAdvertisement", "to-fabric")["spec"],
        json!({
            "ipAddressPoolSelectors": [{"matchLabels": {"advertise": "bgp"}}],
            "peers": ["node-bird"],
            "aggregationLength": 32, "aggregationLengthV6": 128, "localPref": 200,
            "communities": ["64512:100", "large:64512:1:2"]
        })
    );
    let peer = &find(&docs, "BGPPeer", "node-bird")["spec"];
    assert_eq!(
        peer["passwordSecret"],
        json!({"name": "bgp-auth", "namespace": "ferrolb-system", "key": "password"})
    );
    assert_eq!(
        (&peer["holdTime"], &peer["keepaliveTime"]),
        (&json!("9s"), &json!("3s"))
    );
    let secret: Secret = serde_json::from_value(find(&docs, "Secret", "bgp-auth").clone()).unwrap();
    assert_eq!(secret.metadata.namespace.as_deref(), Some("ferrolb-system"));
    assert_eq!(secret.data.unwrap()["password"].0, b"ferrolb-lab-md5");
    assert_eq!(
        find(&docs, "L2Advertisement", "office")["spec"],
        json!({
            "ipAddressPools": ["office"],
            "nodeSelectors": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node2", "node3"]}
            ]}],
            "interfaces": ["eth0"]
        })
    );

    for line in [
        "note: IPAddressPool metallb-system/shared: spec.serviceAllocation.priority: priority 0 (unset) is written as 2147483647",
        "note: BGPAdvertisement metallb-system/to-fabric: spec.communities[0]: community alias \"web-routes\" is written as its value 64512:100",
        "note: BGPPeer metallb-system/node-bird: spec.passwordSecret: Secret metallb-system/bgp-auth is copied to ferrolb-system/bgp-auth",
        "note: BGPPeer metallb-system/rack9-tor: spec.password: the password moves to the generated Secret ferrolb-system/rack9-tor-bgp-password",
        "warning: BGPPeer metallb-system/rack9-tor: spec.bfdProfile: BFD profile \"fast\" not carried over",
        "warning: BFDProfile metallb-system/fast: left out: ferrolb has no BFD",
        "convert: wrote 10 object(s) (2 Secret, 4 IPAddressPool, 2 BGPPeer, 1 BGPAdvertisement, 1 L2Advertisement); 2 warning(s), 4 note(s)",
        "convert: ferrolb's speaker reads only the password Secrets its Helm value bgp.passwordSecrets lists, in namespace ferrolb-system: set it to [\"bgp-auth\", \"rack9-tor-bgp-password\"]",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(line)),
            "stderr lacks {line:?}:\n{stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), 8, "{stderr}");
}

#[test]
fn reads_standard_input_and_the_secret_namespace_option() {
    let text = std::fs::read(fixture("bgp.yaml")).unwrap();
    let out = convert(&["--secret-namespace", "lb"], Some(&text));
    assert!(out.status.success());
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        find(&docs, "BGPPeer", "node-bird")["spec"]["passwordSecret"]["namespace"],
        "lb"
    );
    assert_eq!(
        find(&docs, "Secret", "bgp-auth")["metadata"]["namespace"],
        "lb"
    );
}

#[test]
fn unconvertible_input_writes_nothing_and_exits_1() {
    let out = convert(&[fixture("unconvertible.yaml").to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        "error: BGPPeer metallb-system/discovered: spec.dynamicASN: dynamicASN: external cannot be converted: ferrolb needs the peer's AS number; set peerASN in the input\n\
         error: BGPAdvertisement metallb-system/gold: spec.communities[0]: \"gold-customers\" is neither a community (A:B, large:A:B:C) nor an alias defined by a Community object in the input\n\
         convert: 2 error(s), 0 warning(s): nothing written\n"
    );
}

#[test]
fn unreadable_input_exits_2_naming_the_file() {
    let out = convert(&["/nonexistent/metallb.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("convert: reading /nonexistent/metallb.yaml: No such file"),
        "{stderr}"
    );
}

#[test]
fn help_explains_the_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(["convert", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for words in [
        "MetalLB",
        "--secret-namespace",
        "--metallb-namespace",
        "kubectl get",
    ] {
        assert!(help.contains(words), "{words}: {help}");
    }
}
