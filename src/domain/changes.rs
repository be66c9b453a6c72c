//! What storing a document would change, field by field, with secrets masked.

use super::account_type::{REDACTED, SECRET_FIELDS};
use serde_json::{Map, Value};
use std::fmt;

/// One changed field, by JSON path (`extras.prompt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldChange {
    /// Present only in the new document.
    Added(String, Value),
    /// Present only in the stored document.
    Removed(String, Value),
    /// Present in both, with other values.
    Changed(String, Value, Value),
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldChange::Added(p, v) => write!(f, "+ {p}: {v}"),
            FieldChange::Removed(p, v) => write!(f, "- {p}: {v}"),
            FieldChange::Changed(p, a, b) => write!(f, "~ {p}: {a} -> {b}"),
        }
    }
}

/// The changes from `stored` (none: a new document) to `new`, ignoring `_rev`; a secret's
/// value is never shown, only that it is added, removed or changed.
pub fn changes(stored: Option<&Value>, new: &Value) -> Vec<FieldChange> {
    let empty = Map::new();
    let old = stored.and_then(Value::as_object).unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

fn walk(
    prefix: &str,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    out: &mut Vec<FieldChange>,
) {
    let masked = |path: &str, v: &Value| {
        if prefix.is_empty() && SECRET_FIELDS.contains(&path) && !v.is_null() {
            Value::String(REDACTED.into())
        } else {
            v.clone()
        }
    };
    for (k, nv) in new {
        let path = format!("{prefix}{k}");
        if prefix.is_empty() && k == "_rev" {
            continue;
        }
        match old.get(k) {
            None => out.push(FieldChange::Added(path.clone(), masked(&path, nv))),
            Some(ov) if ov == nv => {}
            Some(Value::Object(o)) if nv.is_object() => {
                let empty = Map::new();
                walk(
                    &format!("{path}."),
                    o,
                    nv.as_object().unwrap_or(&empty),
                    out,
                )
            }
            Some(ov) => {
                if prefix.is_empty() && SECRET_FIELDS.contains(&k.as_str()) {
                    out.push(FieldChange::Changed(
                        path,
                        Value::String(REDACTED.into()),
                        Value::String("[changed]".into()),
                    ));
                } else {
                    out.push(FieldChange::Changed(path, ov.clone(), nv.clone()));
                }
            }
        }
    }
    for (k, ov) in old {
        let is_rev = prefix.is_empty() && k == "_rev";
        if !is_rev && !new.contains_key(k) {
            let path = format!("{prefix}{k}");
            out.push(FieldChange::Removed(path.clone(), masked(&path, ov)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_fields_are_named_by_path_and_rev_is_ignored() {
        let old = json!({"_id": "g", "_rev": "1-a", "extras": {"prompt": "consent", "x": "1"}, "token_mode": "form"});
        let new = json!({"_id": "g", "extras": {"prompt": "none", "x": "1"}, "pkce": true});
        let c: Vec<String> = changes(Some(&old), &new)
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            c,
            [
                "~ extras.prompt: \"consent\" -> \"none\"",
                "+ pkce: true",
                "- token_mode: \"form\""
            ]
        );
    }

    #[test]
    fn a_secret_is_never_shown() {
        let old = json!({"_id": "g", "client_secret": "old-secret-value"});
        let new = json!({"_id": "g", "client_secret": "new-secret-value"});
        let shown = format!("{:?}", changes(Some(&old), &new));
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.contains("[changed]"));
        let shown = format!("{:?}", changes(None, &new));
        assert!(
            !shown.contains("secret-value") && shown.contains(REDACTED),
            "{shown}"
        );
    }

    #[test]
    fn equal_documents_have_no_changes() {
        let d = json!({"_id": "g", "client_secret": "s", "extras": {"a": "b"}});
        assert!(changes(Some(&d), &d).is_empty());
    }
}
