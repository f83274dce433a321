//! Every ferrolb object in examples/ parses into the Rust types, passes the CRDs' CEL rules
//! and the checks of `ferrolb_api::validate` and `addr`. (The lab also applies them to a real
//! API server.)
#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::path::{Path, PathBuf};

use ferrolb_api::{BGPAdvertisement, BGPPeer, IPAddressPool, L2Advertisement, validate};
use serde::Deserialize;
use serde_json::Value;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn schema(kind: &str) -> Value {
    let crd = ferrolb_api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref(),
    )
    .unwrap()
}

#[test]
fn examples_are_valid() {
    let mut files = Vec::new();
    yaml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
        &mut files,
    );
    files.sort();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let object = Value::deserialize(doc).unwrap();
            if object["apiVersion"] != "ferrolb.io/v1alpha1" {
                continue;
            }
            let kind = object["kind"].as_str().unwrap().to_owned();
            let name = format!("{} {kind}/{}", file.display(), object["metadata"]["name"]);
            if let Err(errors) = kube_cel::Validator::new().validate(&schema(&kind), &object, None)
            {
                panic!("{name}: refused by CEL: {errors}");
            }
            let problems = match kind.as_str() {
                "IPAddressPool" => {
                    let pool: IPAddressPool = serde_json::from_value(object).unwrap();
                    ferrolb_api::addr::AddressRanges::parse(&pool.spec.addresses)
                        .err()
                        .map(|e| e.to_string())
                }
                "BGPPeer" => {
                    let peer: BGPPeer = serde_json::from_value(object).unwrap();
                    validate::bgp_peer(&peer.spec)
                        .err()
                        .map(|e| format!("{e:?}"))
                }
                "BGPAdvertisement" => {
                    let adv: BGPAdvertisement = serde_json::from_value(object).unwrap();
                    validate::bgp_advertisement(&adv.spec)
                        .err()
                        .map(|e| format!("{e:?}"))
                }
                "L2Advertisement" => {
                    let adv: L2Advertisement = serde_json::from_value(object).unwrap();
                    validate::l2_advertisement(&adv.spec)
                        .err()
                        .map(|e| format!("{e:?}"))
                }
                other => panic!("{name}: no check for kind {other}"),
            };
            assert_eq!(problems, None, "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} ferrolb objects in examples/");
}
