//! Reading manifests: multi-document YAML (or JSON) into one JSON value per object, with
//! `kubectl get -o yaml`'s `List` objects opened up.

use serde::Deserialize;
use serde_json::Value;

use super::finding::{Finding, Reason, Subject};

/// One object of the input and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// A file name, or `<stdin>`.
    pub source: String,
    /// The document's number in its source, from 1 (the items of a List share their List's).
    pub number: usize,
    pub value: Value,
}

impl Document {
    pub fn subject(&self) -> Subject {
        Subject {
            source: self.source.clone(),
            document: self.number,
            object: None,
        }
    }
}

/// Splits `text` into its objects. Empty documents are skipped; a YAML error ends the source
/// (the documents after it cannot be told apart reliably) with an error finding.
pub fn read(source: &str, text: &str) -> (Vec<Document>, Vec<Finding>) {
    let mut documents = Vec::new();
    let mut findings = Vec::new();
    for (i, yaml) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let number = i + 1;
        match Value::deserialize(yaml) {
            Ok(Value::Null) => {}
            Ok(value) => open_lists(source, number, value, &mut documents),
            Err(e) => {
                findings.push(Finding {
                    subject: Subject {
                        source: source.to_owned(),
                        document: number,
                        object: None,
                    },
                    field: String::new(),
                    reason: Reason::Yaml {
                        message: e.to_string(),
                    },
                });
                break;
            }
        }
    }
    (documents, findings)
}

/// `kind: List` (and typed lists such as `IPAddressPoolList`) hold their objects in `items`;
/// a typed list's items may lack `apiVersion` and `kind`, which the list implies.
fn open_lists(source: &str, number: usize, value: Value, out: &mut Vec<Document>) {
    let list_kind = value
        .get("kind")
        .and_then(Value::as_str)
        .and_then(|k| k.strip_suffix("List"))
        .map(str::to_owned);
    let items = value.get("items").and_then(Value::as_array);
    match (list_kind, items) {
        (Some(item_kind), Some(items)) => {
            let api_version = value.get("apiVersion").cloned();
            for item in items {
                let mut item = item.clone();
                if let Some(object) = item.as_object_mut()
                    && !item_kind.is_empty()
                {
                    if !object.contains_key("kind") {
                        object.insert("kind".into(), Value::String(item_kind.clone()));
                    }
                    if let Some(api_version) = &api_version
                        && !object.contains_key("apiVersion")
                    {
                        object.insert("apiVersion".into(), api_version.clone());
                    }
                }
                open_lists(source, number, item, out);
            }
        }
        _ => out.push(Document {
            source: source.to_owned(),
            number,
            value,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_are_numbered_and_empty_ones_skipped() {
        let (docs, findings) = read(
            "f.yaml",
            "---\n# only a comment\n---\na: 1\n---\n---\nb: 2\n",
        );
        assert!(findings.is_empty());
        let numbered: Vec<_> = docs.iter().map(|d| (d.number, d.value.clone())).collect();
        assert_eq!(numbered, [(2, json!({"a": 1})), (4, json!({"b": 2}))]);
    }

    #[test]
    fn json_reads_too() {
        let (docs, _) = read("f.json", r#"{"kind": "X", "spec": {"n": [1, 2]}}"#);
        assert_eq!(docs[0].value, json!({"kind": "X", "spec": {"n": [1, 2]}}));
    }

    #[test]
    fn lists_are_opened_and_typed_list_items_get_their_kind() {
        let text = r#"
apiVersion: v1
kind: List
items:
  - {apiVersion: metallb.io/v1beta1, kind: IPAddressPool, metadata: {name: a}}
  - apiVersion: metallb.io/v1beta1
    kind: IPAddressPoolList
    items:
      - metadata: {name: b}
"#;
        let (docs, findings) = read("-", text);
        assert!(findings.is_empty());
        let kinds: Vec<_> = docs
            .iter()
            .map(|d| {
                (
                    d.value["apiVersion"].as_str().unwrap(),
                    d.value["kind"].as_str().unwrap(),
                    d.value["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("metallb.io/v1beta1", "IPAddressPool", "a"),
                ("metallb.io/v1beta1", "IPAddressPool", "b")
            ]
        );
    }

    #[test]
    fn a_yaml_error_is_reported_with_its_document_and_ends_the_source() {
        let (docs, findings) = read("bad.yaml", "a: 1\n---\nb: [1, 2\n---\nc: 3\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject.document, 2);
        assert!(matches!(findings[0].reason, Reason::Yaml { .. }));
        assert!(
            findings[0]
                .to_string()
                .starts_with("error: bad.yaml document 2: not YAML: "),
            "{}",
            findings[0]
        );
    }
}
