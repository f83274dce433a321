//! Label-selector matching with Kubernetes' semantics.
//!
//! Mirrors apimachinery's `LabelSelectorAsSelector` and `Requirement.Matches`:
//!
//! - an empty selector (no `matchLabels`, no `matchExpressions`) matches everything;
//! - `matchLabels` entries and `matchExpressions` are ANDed;
//! - `In`: the key is present and its value is one of the values;
//! - `NotIn`: the key is absent, or present with a value not among the values;
//! - `Exists` / `DoesNotExist`: the key is present / absent;
//! - operators are case-sensitive; `In`/`NotIn` need at least one value, `Exists` and
//!   `DoesNotExist` take none; keys must be qualified names and values label values, as the
//!   API server would check them.
//!
//! An invalid selector is a [`SelectorError`], never a panic and never a silent match or
//! non-match. Compile a selector once ([`Selector::new`]) and match it many times.
//! (A *null* selector, which Kubernetes treats as matching nothing, has no representation
//! here: callers hold `Option<LabelSelector>` and decide what absence means in their API.)

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Something with labels to match against.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

/// A label-selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        })
    }
}

/// Why a label selector is invalid. Each message names the key (and value) at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("label selector key {key:?} is invalid: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("label selector value {value:?} for key {key:?} is invalid: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error(
        "label selector operator {operator:?} for key {key:?} is not one of In, NotIn, \
         Exists, DoesNotExist"
    )]
    UnknownOperator { key: String, operator: String },
    #[error("label selector operator {operator} for key {key:?} needs at least one value")]
    MissingValues { key: String, operator: Operator },
    #[error("label selector operator {operator} for key {key:?} takes no values, got {count}")]
    UnexpectedValues {
        key: String,
        operator: Operator,
        count: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let value = labels.label(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A validated label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches everything (what an empty `LabelSelector` means).
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Validates a `LabelSelector` as the API server would.
    pub fn new(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            validate_key(key)?;
            validate_value(key, value)?;
            requirements.push(Requirement {
                key: key.clone(),
                operator: Operator::In,
                values: vec![value.clone()],
            });
        }
        for expr in selector.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::UnknownOperator {
                        key: expr.key.clone(),
                        operator: other.to_string(),
                    });
                }
            };
            validate_key(&expr.key)?;
            let values = expr.values.clone().unwrap_or_default();
            match operator {
                Operator::In | Operator::NotIn if values.is_empty() => {
                    return Err(SelectorError::MissingValues {
                        key: expr.key.clone(),
                        operator,
                    });
                }
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                    return Err(SelectorError::UnexpectedValues {
                        key: expr.key.clone(),
                        operator,
                        count: values.len(),
                    });
                }
                _ => {}
            }
            for v in &values {
                validate_value(&expr.key, v)?;
            }
            requirements.push(Requirement {
                key: expr.key.clone(),
                operator,
                values,
            });
        }
        Ok(Selector { requirements })
    }

    /// Whether the selector matches everything.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;
    fn try_from(s: &LabelSelector) -> Result<Self, SelectorError> {
        Selector::new(s)
    }
}

/// Validates and matches in one go; prefer [`Selector::new`] when matching many objects.
pub fn matches<L: Labels + ?Sized>(
    selector: &LabelSelector,
    labels: &L,
) -> Result<bool, SelectorError> {
    Ok(Selector::new(selector)?.matches(labels))
}

/// Whether any of the selectors matches (how lists of selectors combine in pools and
/// advertisements). An empty list matches nothing; callers decide what an empty list means.
pub fn any_matches<L: Labels + ?Sized>(selectors: &[Selector], labels: &L) -> bool {
    selectors.iter().any(|s| s.matches(labels))
}

const NAME_MAX: usize = 63;
const PREFIX_MAX: usize = 253;

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a key, and a label value.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A DNS-1123 subdomain: dot-separated labels of `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= PREFIX_MAX
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            match (b.first(), b.last()) {
                (Some(f), Some(l)) => {
                    is_lower_alnum(*f)
                        && is_lower_alnum(*l)
                        && b.iter().all(|c| is_lower_alnum(*c) || *c == b'-')
                }
                _ => false,
            }
        })
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
                         and must start and end with an alphanumeric character";

fn validate_key(key: &str) -> Result<(), SelectorError> {
    let err = |reason: String| {
        Err(SelectorError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return err("prefix part must not be empty".into());
            }
            if !is_dns1123_subdomain(prefix) {
                return err(format!(
                    "prefix part must be a DNS subdomain of at most {PREFIX_MAX} characters: \
                     lowercase alphanumeric characters, '-' or '.', starting and ending with \
                     an alphanumeric character"
                ));
            }
            name
        }
        _ => {
            return err("a key is a name with an optional DNS subdomain prefix and one '/'".into());
        }
    };
    if name.is_empty() {
        return err("name part must not be empty".into());
    }
    if name.len() > NAME_MAX {
        return err(format!("name part must be at most {NAME_MAX} characters"));
    }
    if !is_qualified_name_part(name) {
        return err(format!("name part {NAME_RULE}"));
    }
    Ok(())
}

fn validate_value(key: &str, value: &str) -> Result<(), SelectorError> {
    let err = |reason: String| {
        Err(SelectorError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > NAME_MAX {
        return err(format!(
            "a label value must be at most {NAME_MAX} characters"
        ));
    }
    if !is_qualified_name_part(value) {
        return err(format!("a label value {NAME_RULE}"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn sel(match_labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        }
    }

    fn m(s: &LabelSelector, l: &[(&str, &str)]) -> bool {
        matches(s, &labels(l)).unwrap()
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(m(&LabelSelector::default(), &[]));
        assert!(m(&LabelSelector::default(), &[("a", "b")]));
        let empty_parts = LabelSelector {
            match_labels: Some(BTreeMap::new()),
            match_expressions: Some(vec![]),
        };
        assert!(m(&empty_parts, &[("x", "y")]));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = sel(&[("app", "web"), ("tier", "front")], vec![]);
        assert!(m(&s, &[("app", "web"), ("tier", "front"), ("x", "y")]));
        assert!(!m(&s, &[("app", "web")]));
        assert!(!m(&s, &[("app", "web"), ("tier", "back")]));
    }

    #[test]
    fn in_needs_the_key_with_one_of_the_values() {
        let s = sel(&[], vec![expr("env", "In", Some(&["prod", "staging"]))]);
        assert!(m(&s, &[("env", "prod")]));
        assert!(m(&s, &[("env", "staging")]));
        assert!(!m(&s, &[("env", "dev")]));
        assert!(!m(&s, &[]));
    }

    #[test]
    fn not_in_matches_when_the_key_is_absent() {
        let s = sel(&[], vec![expr("env", "NotIn", Some(&["prod"]))]);
        assert!(m(&s, &[]));
        assert!(m(&s, &[("env", "dev")]));
        assert!(!m(&s, &[("env", "prod")]));
    }

    #[test]
    fn exists_and_does_not_exist_look_at_the_key_only() {
        let e = sel(&[], vec![expr("gpu", "Exists", None)]);
        let d = sel(&[], vec![expr("gpu", "DoesNotExist", Some(&[]))]);
        assert!(m(&e, &[("gpu", "")]));
        assert!(!m(&e, &[]));
        assert!(m(&d, &[]));
        assert!(!m(&d, &[("gpu", "x")]));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let s = sel(
            &[("app", "web")],
            vec![expr("env", "NotIn", Some(&["prod"]))],
        );
        assert!(m(&s, &[("app", "web")]));
        assert!(!m(&s, &[("app", "web"), ("env", "prod")]));
        assert!(!m(&s, &[("env", "dev")]));
    }

    #[test]
    fn unknown_operator_is_an_error() {
        for op in ["in", "Equals", "Gt", ""] {
            let s = sel(&[], vec![expr("env", op, Some(&["1"]))]);
            let e = Selector::new(&s).unwrap_err();
            assert!(
                matches!(e, SelectorError::UnknownOperator { .. }),
                "{op}: {e}"
            );
            assert!(e.to_string().contains("\"env\""));
        }
    }

    #[test]
    fn in_and_not_in_without_values_are_errors() {
        for op in ["In", "NotIn"] {
            for values in [None, Some(&[][..])] {
                let s = sel(&[], vec![expr("env", op, values)]);
                assert!(matches!(
                    Selector::new(&s),
                    Err(SelectorError::MissingValues { .. })
                ));
            }
        }
    }

    #[test]
    fn exists_with_values_is_an_error() {
        let s = sel(&[], vec![expr("env", "Exists", Some(&["x"]))]);
        let e = Selector::new(&s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "label selector operator Exists for key \"env\" takes no values, got 1"
        );
    }

    #[test]
    fn keys_and_values_are_validated_like_the_api_server() {
        let ok_keys = [
            "a",
            "app.kubernetes.io/name",
            "A_b-c.d",
            "example.com/X",
            &"k".repeat(63),
        ];
        for k in ok_keys {
            assert!(Selector::new(&sel(&[(k, "v")], vec![])).is_ok(), "{k}");
        }
        let bad_keys = [
            "",
            "-a",
            "a-",
            "/a",
            "a/",
            "a/b/c",
            "Example.com/a",
            "a b",
            &"k".repeat(64),
            "ex_ample.com/a",
        ];
        for k in bad_keys {
            let e = Selector::new(&sel(&[], vec![expr(k, "Exists", None)])).unwrap_err();
            assert!(matches!(e, SelectorError::InvalidKey { .. }), "{k}: {e}");
        }
        let ok_values = ["", "v", "1.2_3-x", &"v".repeat(63)];
        for v in ok_values {
            assert!(Selector::new(&sel(&[("k", v)], vec![])).is_ok(), "{v}");
        }
        let bad_values = ["-v", "v.", "a b", "a/b", &"v".repeat(64)];
        for v in bad_values {
            let e = Selector::new(&sel(&[], vec![expr("k", "In", Some(&[v]))])).unwrap_err();
            assert!(matches!(e, SelectorError::InvalidValue { .. }), "{v}: {e}");
        }
    }

    #[test]
    fn a_list_of_selectors_matches_when_any_does() {
        let a = Selector::new(&sel(&[("app", "a")], vec![])).unwrap();
        let b = Selector::new(&sel(&[("app", "b")], vec![])).unwrap();
        assert!(any_matches(
            &[a.clone(), b.clone()],
            &labels(&[("app", "b")])
        ));
        assert!(!any_matches(&[a, b], &labels(&[("app", "c")])));
        assert!(!any_matches(&[], &labels(&[])));
    }

    fn small_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map("[abc]", "[xyz]", 0..3)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn match_labels_equals_single_value_in(k in "[abc]", v in "[xyz]", l in small_labels()) {
            let a = sel(&[(&k, &v)], vec![]);
            let b = sel(&[], vec![expr(&k, "In", Some(&[&v]))]);
            prop_assert_eq!(matches(&a, &l).unwrap(), matches(&b, &l).unwrap());
        }

        #[test]
        fn not_in_is_the_negation_of_in(k in "[abc]", vs in prop::collection::vec("[xyz]", 1..3), l in small_labels()) {
            let vs: Vec<&str> = vs.iter().map(String::as_str).collect();
            let i = matches(&sel(&[], vec![expr(&k, "In", Some(&vs))]), &l).unwrap();
            let n = matches(&sel(&[], vec![expr(&k, "NotIn", Some(&vs))]), &l).unwrap();
            prop_assert_eq!(i, !n);
        }

        #[test]
        fn exists_is_the_negation_of_does_not_exist(k in "[abc]", l in small_labels()) {
            let e = matches(&sel(&[], vec![expr(&k, "Exists", None)]), &l).unwrap();
            let d = matches(&sel(&[], vec![expr(&k, "DoesNotExist", None)]), &l).unwrap();
            prop_assert_eq!(e, !d);
            prop_assert_eq!(e, l.contains_key(&k));
        }

        #[test]
        fn validation_never_panics(k in "\\PC{0,70}", op in "\\PC{0,12}", v in "\\PC{0,70}") {
            let _ = Selector::new(&sel(&[(&k, &v)], vec![expr(&k, &op, Some(&[&v]))]));
        }
    }
}
