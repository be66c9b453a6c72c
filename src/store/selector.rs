//! The small subset of Mango selectors the broker needs, runnable on both stores.

use serde_json::{json, Value};

/// A condition on documents.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// The field at the dotted path equals the value.
    Eq(&'static str, Value),
    /// The field at the dotted path is an array holding the value.
    Contains(&'static str, Value),
    /// The numeric field at the dotted path is below the value (a document without the
    /// field, or with another type there, never matches).
    Lt(&'static str, i64),
    /// Every condition holds.
    And(Vec<Selector>),
}

impl Selector {
    /// The Mango JSON for CouchDB's `_find`.
    pub fn to_mango(&self) -> Value {
        match self {
            Selector::Eq(path, v) => json!({ *path: {"$eq": v} }),
            Selector::Contains(path, v) => json!({ *path: {"$elemMatch": {"$eq": v}} }),
            // `$type` as well: pouchdb-server's `$lt` also matches documents without the
            // field, which would fill a page of due plans with the health records beside
            // them. CouchDB still answers it from the field's index.
            Selector::Lt(path, n) => json!({ *path: {"$type": "number", "$lt": n} }),
            Selector::And(all) => {
                json!({"$and": all.iter().map(Selector::to_mango).collect::<Vec<_>>()})
            }
        }
    }

    /// Whether a document matches, evaluated in process.
    pub fn matches(&self, doc: &Value) -> bool {
        let at = |path: &str| path.split('.').try_fold(doc, |v, k| v.get(k));
        match self {
            Selector::Eq(path, v) => at(path) == Some(v),
            Selector::Contains(path, v) => at(path)
                .and_then(Value::as_array)
                .is_some_and(|a| a.contains(v)),
            Selector::Lt(path, n) => at(path).and_then(Value::as_i64).is_some_and(|x| x < *n),
            Selector::And(all) => all.iter().all(|s| s.matches(doc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_nested_paths_and_arrays() {
        let doc = json!({"a": {"b": ["x", "y"]}, "t": "g", "n": 5});
        assert!(Selector::Contains("a.b", json!("y")).matches(&doc));
        assert!(!Selector::Contains("a.b", json!("z")).matches(&doc));
        assert!(
            Selector::And(vec![Selector::Eq("t", json!("g")), Selector::Lt("n", 6)]).matches(&doc)
        );
        assert!(!Selector::Lt("n", 5).matches(&doc));
    }
}
