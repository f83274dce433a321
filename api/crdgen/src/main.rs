//! Writes `crds/<kind>.yaml` for every ferrolb kind, removing stale files.

use std::path::PathBuf;

use anyhow::Context;

/// Usage: `ferrolb-crdgen [DIR]` (default: the repository's `crds/`).
fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let files = ferrolb_crdgen::render().context("rendering the CRDs")?;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let stale = path.extension().is_some_and(|e| e == "yaml")
            && !files
                .iter()
                .any(|f| path.file_name() == Some(f.name.as_ref()));
        if stale {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    for file in &files {
        let path = dir.join(&file.name);
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
