//! Fails when the Helm chart's CRDs (charts/ferrolb/crds/) differ from what `ferrolb-crdgen`
//! writes now: `make crds` writes both directories, so a chart never installs other CRDs than
//! the repository's crds/.
#![allow(clippy::unwrap_used)] // test helpers may unwrap (clippy.toml covers only #[test] fns)

use std::collections::BTreeMap;
use std::path::PathBuf;

#[test]
fn chart_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/ferrolb/crds");
    let mut in_chart: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        in_chart.insert(name, std::fs::read_to_string(&path).unwrap());
    }
    let generated: BTreeMap<String, String> = ferrolb_crdgen::render()
        .unwrap()
        .into_iter()
        .map(|f| (f.name, f.contents))
        .collect();
    assert_eq!(
        in_chart.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "charts/ferrolb/crds/ holds other files than the API's kinds; run `make crds`"
    );
    for (name, contents) in &generated {
        assert!(
            in_chart[name] == *contents,
            "charts/ferrolb/crds/{name} is stale; run `make crds` and commit the result"
        );
    }
}
