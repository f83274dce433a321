//! Fails when `crds/` differs from what `ferrolb-crdgen` writes now (run `make crds`).
#![allow(clippy::unwrap_used)] // test helpers may unwrap (clippy.toml covers only #[test] fns)

use std::collections::BTreeMap;
use std::path::PathBuf;

#[test]
fn checked_in_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    let mut on_disk: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            on_disk.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let generated: BTreeMap<String, String> = ferrolb_crdgen::render()
        .unwrap()
        .into_iter()
        .map(|f| (f.name, f.contents))
        .collect();

    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&on_disk),
        names(&generated),
        "crds/ holds other files than the API's kinds; run `make crds`"
    );
    for (name, contents) in &generated {
        assert!(
            on_disk[name] == *contents,
            "crds/{name} is stale; run `make crds` and commit the result"
        );
    }
}

#[test]
fn six_kinds_of_one_group_and_version() {
    let files = ferrolb_crdgen::render().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ipaddresspool.yaml",
            "l2advertisement.yaml",
            "bgppeer.yaml",
            "bgpadvertisement.yaml",
            "servicel2status.yaml",
            "servicebgpstatus.yaml",
        ]
    );
    for crd in ferrolb_api::crds() {
        assert_eq!(crd.spec.group, "ferrolb.io");
        let versions: Vec<&str> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(versions, ["v1alpha1"]);
    }
}
