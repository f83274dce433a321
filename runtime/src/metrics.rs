//! The metrics registry each program builds and hands to the server.

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// A registry whose metrics are named `ferrolb_*`, holding `ferrolb_build_info` with the
/// program and its version as labels.
pub fn registry(program: &'static str, version: &'static str) -> Registry {
    let mut registry = Registry::with_prefix("ferrolb");
    registry.register(
        "build",
        "The running program and its version",
        Info::new(vec![("program", program), ("version", version)]),
    );
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_names_program_and_version() {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry("speaker", "1.2.3"))
            .unwrap();
        assert!(
            text.contains(r#"ferrolb_build_info{program="speaker",version="1.2.3"} 1"#),
            "{text}"
        );
    }
}
