//! cozy-stack's permission sets (`model/permission`): rules read from a permission
//! document or a scope string, and the match `Allow(GET, account)` makes on refresh.

use crate::domain::Timestamp;
use serde_json::Value;

/// The doctype of konnector accounts.
pub const ACCOUNTS_DOCTYPE: &str = "io.cozy.accounts";

/// One rule: a doctype, verbs (empty: all), values (empty: the whole type) and the field
/// the values name (none: document ids).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// Doctype, `*`, or a wildcard `io.cozy.*`.
    pub doctype: String,
    /// HTTP verbs; empty or `ALL` means every verb.
    pub verbs: Vec<String>,
    /// The ids (or selector values) the rule covers; empty: every document of the type.
    pub values: Vec<String>,
    /// The field `values` name; empty: `_id`.
    pub selector: String,
}

/// Rules a token holds, and when they stop holding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PermissionSet {
    /// The rules, any of which may allow an action.
    pub rules: Vec<Rule>,
    /// Unix seconds after which the set is refused (`expires_at`).
    pub expires_at: Option<i64>,
}

/// An account as permission rules see it: its id and its `account_type`.
#[derive(Debug, Clone, Copy)]
pub struct AccountRef<'a> {
    /// Document id.
    pub id: &'a str,
    /// `account_type` field (the only one `Account.Fetch` exposes).
    pub account_type: &'a str,
}

impl Rule {
    fn allows_verb(&self, verb: &str) -> bool {
        self.verbs.is_empty() || self.verbs.iter().any(|v| v == "ALL" || v == verb)
    }

    fn covers_type(&self, doctype: &str) -> bool {
        if self.doctype == "*" || self.doctype == doctype {
            return true;
        }
        // `io.cozy.*` covers `io.cozy` and its sub-types.
        self.doctype.strip_suffix(".*").is_some_and(|base| {
            doctype == base
                || doctype
                    .strip_prefix(base)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }

    fn covers_account(&self, account: AccountRef<'_>) -> bool {
        if self.values.is_empty() {
            return true;
        }
        match self.selector.as_str() {
            "" => self.values.iter().any(|v| v == account.id),
            "account_type" => self.values.iter().any(|v| v == account.account_type),
            _ => false,
        }
    }

    /// Whether the rule lets `verb` act on any account of service `account_type` (used
    /// before an account exists: create, start).
    fn covers_accounts_of(&self, account_type: &str) -> bool {
        self.values.is_empty()
            || (self.selector == "account_type" && self.values.iter().any(|v| v == account_type))
    }

    fn from_json(v: &Value) -> Option<Rule> {
        let strings = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(Rule {
            doctype: v.get("type")?.as_str()?.to_owned(),
            verbs: strings("verbs"),
            values: strings("values"),
            selector: v
                .get("selector")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// `type[:verbs[:values[:selector]]]`, as `UnmarshalRuleString`.
    fn from_scope(part: &str) -> Option<Rule> {
        let parts: Vec<&str> = part.split(':').collect();
        if parts.is_empty() || parts.len() > 4 || parts[0].is_empty() {
            return None;
        }
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Some(Rule {
            doctype: parts[0].to_owned(),
            verbs: parts.get(1).map(|s| list(s)).unwrap_or_default(),
            values: parts.get(2).map(|s| list(s)).unwrap_or_default(),
            selector: parts.get(3).map(|s| (*s).to_owned()).unwrap_or_default(),
        })
    }
}

impl PermissionSet {
    /// The set of a permission document (`permissions` keyed by rule title).
    pub fn from_document(doc: &Value) -> PermissionSet {
        let rules = doc
            .get("permissions")
            .and_then(Value::as_object)
            .map(|o| o.values().filter_map(Rule::from_json).collect())
            .unwrap_or_default();
        let expires_at = doc
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.timestamp());
        PermissionSet { rules, expires_at }
    }

    /// The set of a scope string (space-separated rules); `None` when a rule is malformed.
    pub fn from_scope(scope: &str) -> Option<PermissionSet> {
        let rules = scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(Rule::from_scope)
            .collect::<Option<Vec<_>>>()?;
        Some(PermissionSet {
            rules,
            expires_at: None,
        })
    }

    /// Whether the set has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| now.unix_secs() > t)
    }

    /// Whether some rule lets `verb` act on `account` (`Allow` in `web/middlewares`).
    pub fn allows(&self, verb: &str, account: AccountRef<'_>) -> bool {
        self.rules.iter().any(|r| {
            r.allows_verb(verb) && r.covers_type(ACCOUNTS_DOCTYPE) && r.covers_account(account)
        })
    }

    /// Whether some rule lets `verb` act on accounts of service `account_type` in general.
    pub fn allows_type(&self, verb: &str, account_type: &str) -> bool {
        self.rules.iter().any(|r| {
            r.allows_verb(verb)
                && r.covers_type(ACCOUNTS_DOCTYPE)
                && r.covers_accounts_of(account_type)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn google<'a>() -> AccountRef<'a> {
        AccountRef {
            id: "acc1",
            account_type: "google",
        }
    }

    #[test]
    fn the_spec_konnector_document_allows_get_on_its_accounts() {
        let set = PermissionSet::from_document(&json!({
            "type": "konnector", "source_id": "io.cozy.konnectors/google",
            "permissions": {
                "accounts": {"type": "io.cozy.accounts"},
                "contacts": {"type": "io.cozy.contacts", "verbs": ["GET", "POST"]},
                "x": {"type": "io.cozy.files", "verbs": ["GET"], "selector": "referenced_by",
                      "values": ["io.cozy.konnectors/google"]}
            }
        }));
        assert!(set.allows("GET", google()));
        assert!(set.allows_type("POST", "github"));
    }

    #[test]
    fn rules_on_other_doctypes_do_not_allow_accounts() {
        let set = PermissionSet::from_document(&json!({"permissions": {
            "c": {"type": "io.cozy.contacts"}, "f": {"type": "io.cozy.files"}}}));
        assert!(!set.allows("GET", google()));
    }

    #[test]
    fn verbs_restrict() {
        let set = PermissionSet::from_document(&json!({"permissions": {
            "a": {"type": "io.cozy.accounts", "verbs": ["POST"]}}}));
        assert!(!set.allows("GET", google()));
        let all = PermissionSet::from_document(&json!({"permissions": {
            "a": {"type": "io.cozy.accounts", "verbs": ["ALL"]}}}));
        assert!(all.allows("GET", google()));
    }

    #[test]
    fn values_name_ids_or_account_types() {
        let by_id = PermissionSet::from_document(&json!({"permissions": {
            "a": {"type": "io.cozy.accounts", "values": ["acc1"]}}}));
        assert!(by_id.allows("GET", google()));
        assert!(!by_id.allows(
            "GET",
            AccountRef {
                id: "acc2",
                account_type: "google"
            }
        ));
        let by_type = PermissionSet::from_document(&json!({"permissions": {
            "a": {"type": "io.cozy.accounts", "selector": "account_type", "values": ["github"]}}}));
        assert!(!by_type.allows("GET", google()));
        assert!(by_type.allows(
            "GET",
            AccountRef {
                id: "x",
                account_type: "github"
            }
        ));
        assert!(by_type.allows_type("GET", "github") && !by_type.allows_type("GET", "google"));
        let other_selector = PermissionSet::from_document(&json!({"permissions": {
            "a": {"type": "io.cozy.accounts", "selector": "name", "values": ["google"]}}}));
        assert!(!other_selector.allows("GET", google()));
    }

    #[test]
    fn wildcards_cover_sub_types_only() {
        for (t, ok) in [
            ("*", true),
            ("io.cozy.*", true),
            ("io.cozy.accounts.*", true),
            ("io.*", true),
            ("io.coz.*", false),
            ("io.cozy.files", false),
        ] {
            let set = PermissionSet::from_document(&json!({"permissions": {"a": {"type": t}}}));
            assert_eq!(set.allows("GET", google()), ok, "{t}");
        }
    }

    #[test]
    fn scope_strings_parse_as_cozy_stack() {
        let set =
            PermissionSet::from_scope("io.cozy.files io.cozy.accounts:GET:github:account_type")
                .unwrap();
        assert!(!set.allows("GET", google()));
        assert!(set.allows(
            "GET",
            AccountRef {
                id: "x",
                account_type: "github"
            }
        ));
        assert!(PermissionSet::from_scope("a:b:c:d:e").is_none());
        assert!(PermissionSet::from_scope(":GET").is_none());
    }

    #[test]
    fn expiry_comes_from_expires_at() {
        let set = PermissionSet::from_document(
            &json!({"expires_at": "2023-11-14T22:13:20Z", "permissions": {}}),
        );
        assert!(!set.is_expired(Timestamp::from_unix_secs(1_700_000_000)));
        assert!(set.is_expired(Timestamp::from_unix_secs(1_700_000_001)));
    }
}
