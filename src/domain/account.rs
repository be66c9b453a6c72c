//! Konnector accounts (`io.cozy.accounts`) in the exact shape cozy-stack writes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// cozy-stack writes Go's zero time when the expiry is unknown; konnectors parse it.
pub const UNKNOWN_EXPIRY: &str = "0001-01-01T00:00:00Z";

/// Token reply keys that cozy-stack keeps out of `oauth_callback_results`.
pub const STANDARD_TOKEN_KEYS: [&str; 4] =
    ["access_token", "refresh_token", "token_type", "expires_in"];

/// Tokens obtained from a provider, ready to be written into an account.
#[derive(Clone, PartialEq)]
pub struct TokenGrant {
    /// The access token (or `id_token` when the provider sent only that).
    pub access_token: String,
    /// `token_type` as the provider spelled it.
    pub token_type: Option<String>,
    /// Absolute expiry, when the provider told one.
    pub expires_at: Option<DateTime<Utc>>,
    /// Refresh token, when the provider sent one.
    pub refresh_token: Option<String>,
    /// Every other member of the reply.
    pub callback_results: Map<String, Value>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// RFC 3339 in UTC, or cozy's zero time when unknown.
pub fn format_expiry(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || UNKNOWN_EXPIRY.to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// The account cozy-stack creates after a code exchange (spec §2.4 a).
pub fn from_token_grant(account_type: &str, grant: &TokenGrant) -> Value {
    let mut doc = json!({"account_type": account_type, "name": "", "oauth": {}});
    apply_refresh(&mut doc, grant);
    if !grant.callback_results.is_empty() {
        doc["oauth_callback_results"] = Value::Object(grant.callback_results.clone());
    }
    doc
}

/// The account cozy-stack creates when the provider puts `access_token` on the redirect (§2.4 c).
pub fn from_redirect_token(account_type: &str, access_token: &str) -> Value {
    json!({"account_type": account_type, "name": "",
           "oauth": {"access_token": access_token, "expires_at": UNKNOWN_EXPIRY}})
}

/// The account for a type without token endpoint: the konnector exchanges the code (§2.4 b).
pub fn from_redirect_query(
    account_type: &str,
    client_id: Option<&str>,
    client_secret: Option<&str>,
    query: &[(String, String)],
) -> Value {
    let mut oauth = Map::new();
    oauth.insert("expires_at".into(), UNKNOWN_EXPIRY.into());
    if let Some(id) = client_id {
        oauth.insert("client_id".into(), id.into());
    }
    if let Some(secret) = client_secret {
        oauth.insert("client_secret".into(), secret.into());
    }
    oauth.insert("query".into(), query_object(query));
    json!({"account_type": account_type, "name": "", "oauth": oauth})
}

/// Redirect query as cozy's `url.Values`: an object of arrays of strings, `state` left out.
pub fn query_object(query: &[(String, String)]) -> Value {
    let mut map: Map<String, Value> = Map::new();
    for (k, v) in query.iter().filter(|(k, _)| k != "state") {
        match map.entry(k.clone()).or_insert_with(|| Value::Array(vec![])) {
            Value::Array(values) => values.push(Value::String(v.clone())),
            _ => unreachable!("only arrays are inserted"),
        }
    }
    Value::Object(map)
}

/// Writes refreshed tokens into an account, keeping every field the broker does not own
/// and the old refresh token when the provider sent none.
pub fn apply_refresh(doc: &mut Value, grant: &TokenGrant) {
    apply_members(doc, &refresh_members(grant));
}

/// The `oauth` members a refresh reply sets (a missing refresh token keeps the old one).
pub fn refresh_members(grant: &TokenGrant) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("access_token".into(), grant.access_token.clone().into());
    if let Some(t) = &grant.token_type {
        m.insert("token_type".into(), t.clone().into());
    }
    m.insert("expires_at".into(), format_expiry(grant.expires_at).into());
    if let Some(rt) = &grant.refresh_token {
        m.insert("refresh_token".into(), rt.clone().into());
    }
    m
}

/// The `oauth` member telling when the broker last refreshed the tokens (RFC 3339): what
/// lets a refresh asked just after another answer the tokens it stored.
pub const REFRESHED_AT: &str = "refreshed_at";

/// When the broker last refreshed the account's tokens, if it says.
pub fn refreshed_at(doc: &Value) -> Option<DateTime<Utc>> {
    let at = doc.get("oauth")?.get(REFRESHED_AT)?.as_str()?;
    DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The access token's expiry, when the account knows it.
pub fn expires_at(doc: &Value) -> Option<DateTime<Utc>> {
    let at = doc.get("oauth")?.get("expires_at")?.as_str()?;
    if at == UNKNOWN_EXPIRY {
        return None;
    }
    DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Sets `members` in the account's `oauth`, keeping the others.
pub fn apply_members(doc: &mut Value, members: &Map<String, Value>) {
    let oauth = oauth_mut(doc);
    for (k, v) in members {
        oauth.insert(k.clone(), v.clone());
    }
}

/// Brings a new authorization's `oauth` members and callback results into an existing
/// account, keeping its other fields (and its refresh token when the new one has none).
pub fn merge_authorization(existing: &mut Value, fresh: &Value) {
    if let Some(new_oauth) = fresh.get("oauth").and_then(Value::as_object) {
        let oauth = oauth_mut(existing);
        for (k, v) in new_oauth {
            oauth.insert(k.clone(), v.clone());
        }
    }
    if let Some(results) = fresh.get("oauth_callback_results") {
        existing["oauth_callback_results"] = results.clone();
    }
    if let Some(obj) = existing.as_object_mut() {
        obj.remove(RECONNECT_NEEDED);
    }
}

/// Records the redirect's `connection_id`, so a later flow for the same connection
/// finds this account (cozy-stack's `DoNotRecreateAccountIfItAlreadyExists`).
pub fn record_connection_id(doc: &mut Value, connection_id: &str) {
    let oauth = oauth_mut(doc);
    let query = oauth.entry("query").or_insert_with(|| json!({}));
    if let Some(q) = query.as_object_mut() {
        q.insert("connection_id".into(), json!([connection_id]));
    }
}

fn oauth_mut(doc: &mut Value) -> &mut Map<String, Value> {
    let obj = object_mut(doc);
    object_mut(obj.entry("oauth").or_insert_with(|| json!({})))
}

/// `v` as an object, replacing whatever else it held.
fn object_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// The service id of the account's type (`google` for `ctx/google`); empty when it has none.
pub fn service_of(doc: &Value) -> &str {
    super::account_type::service_id_of(
        doc.get("account_type")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
}

/// The provider a per-account type's account names (`oauth.provider_url`), as stored: the
/// account's owner can edit it, so it is checked again on every use.
pub fn stored_provider_url(doc: &Value) -> &str {
    doc.pointer("/oauth/provider_url")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Records the provider of a per-account type's account, where konnectors read it
/// (`fields.provider_url`, since cozy-konnector-libs merges `oauth` into fields).
pub fn record_provider_url(doc: &mut Value, provider: &str) {
    oauth_mut(doc).insert("provider_url".into(), provider.into());
}

/// Who the account belongs to, from the provider's user info: `auth.login` and `name`,
/// which the Home app shows to tell accounts apart.
pub fn apply_identity(doc: &mut Value, identity: &Identity) {
    let obj = object_mut(doc);
    if let Some(login) = &identity.login {
        object_mut(obj.entry("auth").or_insert_with(|| json!({})))
            .insert("login".into(), login.clone().into());
    }
    if let Some(name) = &identity.name {
        obj.insert("name".into(), name.clone().into());
    }
}

/// What user info tells of the account's owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `email`, else `preferred_username`, else `login`, else `sub`.
    pub login: Option<String>,
    /// `name`, else the login.
    pub name: Option<String>,
}

impl Identity {
    /// Reads OpenID Connect user info (and GitHub-style `login`); values are bounded.
    pub fn from_userinfo(info: &Map<String, Value>) -> Identity {
        let text = |k: &str| {
            info.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control))
                .map(str::to_owned)
        };
        let login = text("email")
            .or_else(|| text("preferred_username"))
            .or_else(|| text("login"))
            .or_else(|| text("sub"));
        let name = text("name").or_else(|| login.clone());
        Identity { login, name }
    }
}

/// The stored refresh token of an account, if any.
pub fn refresh_token_of(doc: &Value) -> Option<&str> {
    doc.pointer("/oauth/refresh_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn grant() -> TokenGrant {
        TokenGrant {
            access_token: "AT".into(),
            token_type: Some("Bearer".into()),
            expires_at: Some(Utc.with_ymd_and_hms(2026, 7, 2, 15, 21, 15).unwrap()),
            refresh_token: Some("RT".into()),
            callback_results: Map::new(),
        }
    }

    #[test]
    fn code_exchange_account_has_cozy_shape_and_order() {
        let doc = from_token_grant("google", &grant());
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"account_type":"google","name":"","oauth":{"access_token":"AT","token_type":"Bearer","expires_at":"2026-07-02T15:21:15Z","refresh_token":"RT"}}"#
        );
    }

    #[test]
    fn unknown_expiry_is_go_zero_time() {
        let g = TokenGrant {
            expires_at: None,
            ..grant()
        };
        assert_eq!(
            from_token_grant("x", &g)["oauth"]["expires_at"],
            UNKNOWN_EXPIRY
        );
    }

    #[test]
    fn refresh_keeps_old_refresh_token_and_foreign_fields() {
        let mut doc = json!({"label": "mine", "oauth": {"refresh_token": "OLD", "custom": 1}});
        apply_refresh(
            &mut doc,
            &TokenGrant {
                refresh_token: None,
                ..grant()
            },
        );
        assert_eq!(doc["oauth"]["refresh_token"], "OLD");
        assert_eq!(doc["oauth"]["custom"], 1);
        assert_eq!(doc["label"], "mine");
        assert_eq!(doc["oauth"]["access_token"], "AT");
    }

    #[test]
    fn query_object_is_arrays_without_state() {
        let q = vec![
            ("code".to_string(), "c".to_string()),
            ("state".to_string(), "s".to_string()),
            ("x".to_string(), "1".to_string()),
            ("x".to_string(), "2".to_string()),
        ];
        assert_eq!(query_object(&q), json!({"code": ["c"], "x": ["1", "2"]}));
    }

    #[test]
    fn debug_of_a_grant_hides_tokens() {
        let s = format!("{:?}", grant());
        assert!(!s.contains("AT") && !s.contains("RT"), "{s}");
    }
}

/// Sets the scopes the last grant lacked (`scope_missing`), or removes the member when it
/// lacked none.
pub fn record_scope_missing(doc: &mut Value, missing: &[String]) {
    if let Some(obj) = doc.as_object_mut() {
        if missing.is_empty() {
            obj.remove("scope_missing");
        } else {
            obj.insert("scope_missing".into(), missing.to_vec().into());
        }
    }
}

/// The account's `oauth.expires_at`; `None` when unknown (Go's zero time) or unparsable.
pub fn expires_at_of(doc: &Value) -> Option<DateTime<Utc>> {
    let raw = doc.pointer("/oauth/expires_at")?.as_str()?;
    let t = DateTime::parse_from_rfc3339(raw).ok()?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

/// When an account is next refreshed (unix seconds): `margin` before its token expires,
/// and no later than `every` from now (the idle period, used too when the expiry is
/// unknown). `None` when it has no refresh token to refresh with, unless `renewable`
/// (client credentials need none).
pub fn next_refresh(
    doc: &Value,
    margin: i64,
    every: i64,
    now: i64,
    renewable: bool,
) -> Option<i64> {
    if !renewable {
        refresh_token_of(doc)?;
    }
    let idle = now + every;
    Some(match expires_at_of(doc) {
        Some(exp) => (exp.timestamp() - margin).min(idle),
        None => idle,
    })
}

/// Marks an account whose refresh token the provider refused: its user must reconnect.
pub fn mark_reconnect_needed(doc: &mut Value, error: &str, at: DateTime<Utc>) {
    if let Some(obj) = doc.as_object_mut() {
        obj.insert(
            RECONNECT_NEEDED.into(),
            json!({"since": at.to_rfc3339_opts(SecondsFormat::Secs, true), "error": error}),
        );
    }
}

/// Top-level account field set while the user must reconnect the account.
pub const RECONNECT_NEEDED: &str = "reconnect_needed";

#[cfg(test)]
mod schedule_tests {
    use super::*;

    #[test]
    fn next_refresh_is_a_margin_before_expiry_or_the_idle_period() {
        let now = 1_000_000;
        let exp = DateTime::from_timestamp(now + 3600, 0)
            .unwrap()
            .to_rfc3339();
        let doc = json!({"oauth": {"refresh_token": "r", "expires_at": exp}});
        assert_eq!(
            next_refresh(&doc, 600, 86_400, now, false),
            Some(now + 3000)
        );
        assert_eq!(next_refresh(&doc, 600, 60, now, false), Some(now + 60));
        let unknown = json!({"oauth": {"refresh_token": "r", "expires_at": UNKNOWN_EXPIRY}});
        assert_eq!(
            next_refresh(&unknown, 600, 86_400, now, false),
            Some(now + 86_400)
        );
        let no_rt = json!({"oauth": {"access_token": "a", "expires_at": exp}});
        assert_eq!(next_refresh(&no_rt, 600, 86_400, now, false), None);
        assert!(next_refresh(&no_rt, 600, 86_400, now, true).is_some());
    }
}
