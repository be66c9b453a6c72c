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

/// A konnector account document (`io.cozy.accounts`): typed access to the members the
/// broker owns, and every other member kept as it was, in its order (konnectors, the Home
/// app and cozy-stack write the same document).
#[derive(Clone, PartialEq)]
pub struct Account(Value);

/// A stored document that is not a JSON object, so no account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an account document must be a JSON object")]
pub struct NotAnAccount;

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("Account")
            .field("id", &self.id())
            .field("account_type", &self.account_type())
            .finish_non_exhaustive()
    }
}

impl TryFrom<Value> for Account {
    type Error = NotAnAccount;

    fn try_from(doc: Value) -> Result<Account, NotAnAccount> {
        if doc.is_object() {
            Ok(Account(doc))
        } else {
            Err(NotAnAccount)
        }
    }
}

impl From<Account> for Value {
    fn from(a: Account) -> Value {
        a.0
    }
}

impl Account {
    /// The account cozy-stack creates after a code exchange (spec §2.4 a).
    pub fn from_token_grant(account_type: &str, grant: &TokenGrant) -> Account {
        let mut doc = Account(json!({"account_type": account_type, "name": "", "oauth": {}}));
        doc.apply_refresh(grant);
        if !grant.callback_results.is_empty() {
            doc.0["oauth_callback_results"] = Value::Object(grant.callback_results.clone());
        }
        doc
    }

    /// The account cozy-stack creates when the provider puts `access_token` on the
    /// redirect (§2.4 c).
    pub fn from_redirect_token(account_type: &str, access_token: &str) -> Account {
        Account(json!({"account_type": account_type, "name": "",
               "oauth": {"access_token": access_token, "expires_at": UNKNOWN_EXPIRY}}))
    }

    /// The account for a type without token endpoint: the konnector exchanges the code
    /// (§2.4 b).
    pub fn from_redirect_query(
        account_type: &str,
        client_id: Option<&str>,
        client_secret: Option<&str>,
        query: &[(String, String)],
    ) -> Account {
        let mut oauth = Map::new();
        oauth.insert("expires_at".into(), UNKNOWN_EXPIRY.into());
        if let Some(id) = client_id {
            oauth.insert("client_id".into(), id.into());
        }
        if let Some(secret) = client_secret {
            oauth.insert("client_secret".into(), secret.into());
        }
        oauth.insert("query".into(), query_object(query));
        Account(json!({"account_type": account_type, "name": "", "oauth": oauth}))
    }

    /// The whole document, as stored.
    pub fn document(&self) -> &Value {
        &self.0
    }

    /// The document's `_id`; empty before it is stored.
    pub fn id(&self) -> &str {
        self.0
            .get("_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The document's `_rev`, once stored.
    pub fn rev(&self) -> Option<&str> {
        self.0.get("_rev").and_then(Value::as_str)
    }

    /// Names the document (a new account's id drawn beforehand).
    pub fn set_id(&mut self, id: &str) {
        self.object().insert("_id".into(), id.into());
    }

    /// Records the revision the store answered.
    pub fn set_rev(&mut self, rev: &str) {
        self.object().insert("_rev".into(), rev.into());
    }

    /// Forgets the revision (a create).
    pub fn clear_rev(&mut self) {
        self.object().remove("_rev");
    }

    /// `account_type` as stored (`google`, or `ctx/google` in a context).
    pub fn account_type(&self) -> &str {
        self.0
            .get("account_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The service id of the account's type (`google` for `ctx/google`); empty when it
    /// has none.
    pub fn service(&self) -> &str {
        super::account_type::service_id_of(self.account_type())
    }

    /// Whether the account holds OAuth tokens (an `oauth` object).
    pub fn has_oauth(&self) -> bool {
        self.0.get("oauth").is_some_and(Value::is_object)
    }

    /// The stored access token.
    pub fn access_token(&self) -> Option<&str> {
        self.0
            .pointer("/oauth/access_token")
            .and_then(Value::as_str)
    }

    /// The stored refresh token, if any (sealed as stored, when refresh tokens are).
    pub fn refresh_token(&self) -> Option<&str> {
        self.0
            .pointer("/oauth/refresh_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Replaces the stored refresh token (sealing it at rest).
    pub fn set_refresh_token(&mut self, token: String) {
        self.oauth().insert("refresh_token".into(), token.into());
    }

    /// When the broker last refreshed the account's tokens, if it says.
    pub fn refreshed_at(&self) -> Option<DateTime<Utc>> {
        let at = self.0.pointer("/oauth/refreshed_at")?.as_str()?;
        DateTime::parse_from_rfc3339(at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The access token's expiry (`oauth.expires_at`); `None` when unknown (Go's zero
    /// time) or unparsable.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        let raw = self.0.pointer("/oauth/expires_at")?.as_str()?;
        let t = DateTime::parse_from_rfc3339(raw).ok()?.with_timezone(&Utc);
        (t.timestamp() > 0).then_some(t)
    }

    /// The provider a per-account type's account names (`oauth.provider_url`), as
    /// stored: the account's owner can edit it, so it is checked again on every use.
    pub fn stored_provider_url(&self) -> &str {
        self.0
            .pointer("/oauth/provider_url")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The scope the provider granted, as its token reply said (`oauth_callback_results`).
    pub fn granted_scope(&self) -> Option<&str> {
        self.0
            .pointer("/oauth_callback_results/scope")
            .and_then(Value::as_str)
    }

    /// Whether its user must reconnect it.
    pub fn reconnect_needed(&self) -> bool {
        self.0.get(RECONNECT_NEEDED).is_some()
    }

    /// Whether `self`, read now, holds tokens stored after `seen` was read.
    pub fn changed_since(&self, seen: &Account) -> bool {
        self.rev() != seen.rev() && self.access_token() != seen.access_token()
    }

    /// Writes refreshed tokens, keeping every field the broker does not own and the old
    /// refresh token when the provider sent none.
    pub fn apply_refresh(&mut self, grant: &TokenGrant) {
        self.apply_members(&refresh_members(grant));
    }

    /// Sets `members` in the account's `oauth`, keeping the others.
    pub fn apply_members(&mut self, members: &Map<String, Value>) {
        let oauth = self.oauth();
        for (k, v) in members {
            oauth.insert(k.clone(), v.clone());
        }
    }

    /// Records when the broker refreshed the tokens (RFC 3339).
    pub fn set_refreshed_at(&mut self, at: DateTime<Utc>) {
        self.oauth()
            .insert(REFRESHED_AT.into(), at.to_rfc3339().into());
    }

    /// Brings a new authorization's `oauth` members and callback results into this
    /// account, keeping its other fields (and its refresh token when the new one has
    /// none), and clears its reconnection mark.
    pub fn merge_authorization(&mut self, fresh: &Account) {
        if let Some(new_oauth) = fresh.0.get("oauth").and_then(Value::as_object) {
            let oauth = self.oauth();
            for (k, v) in new_oauth {
                oauth.insert(k.clone(), v.clone());
            }
        }
        if let Some(results) = fresh.0.get("oauth_callback_results") {
            self.object()
                .insert("oauth_callback_results".into(), results.clone());
        }
        self.object().remove(RECONNECT_NEEDED);
    }

    /// Records the redirect's `connection_id`, so a later flow for the same connection
    /// finds this account (cozy-stack's `DoNotRecreateAccountIfItAlreadyExists`).
    pub fn record_connection_id(&mut self, connection_id: &str) {
        let oauth = self.oauth();
        let query = oauth.entry("query").or_insert_with(|| json!({}));
        if let Some(q) = query.as_object_mut() {
            q.insert("connection_id".into(), json!([connection_id]));
        }
    }

    /// Records the provider of a per-account type's account, where konnectors read it
    /// (`fields.provider_url`, since cozy-konnector-libs merges `oauth` into fields).
    pub fn record_provider_url(&mut self, provider: &str) {
        self.oauth().insert("provider_url".into(), provider.into());
    }

    /// Hands the type's client to the konnector, which refreshes by itself (types
    /// without token endpoint, as cozy-stack does).
    pub fn hand_client(&mut self, client_id: Option<&str>, client_secret: Option<&str>) {
        let Some(oauth) = self.0.get_mut("oauth").and_then(Value::as_object_mut) else {
            return;
        };
        if let Some(id) = client_id {
            oauth.insert("client_id".into(), id.into());
        }
        if let Some(secret) = client_secret {
            oauth.insert("client_secret".into(), secret.into());
        }
    }

    /// Who the account belongs to, from the provider's user info: `auth.login` and
    /// `name`, which the Home app shows to tell accounts apart.
    pub fn apply_identity(&mut self, identity: &Identity) {
        let obj = self.object();
        if let Some(login) = &identity.login {
            object_mut(obj.entry("auth").or_insert_with(|| json!({})))
                .insert("login".into(), login.clone().into());
        }
        if let Some(name) = &identity.name {
            obj.insert("name".into(), name.clone().into());
        }
    }

    /// Records who the user is at the provider (`provider_subject`, the broker's member),
    /// so a later sign-in of the same user can renew this account in place.
    pub fn record_subject(&mut self, subject: &str) {
        self.object()
            .insert(PROVIDER_SUBJECT.into(), subject.to_owned().into());
    }

    /// Who the user is at the provider, as recorded.
    pub fn subject(&self) -> Option<&str> {
        self.0.get(PROVIDER_SUBJECT).and_then(Value::as_str)
    }

    /// The `sub` of the `id_token` the token endpoint sent with the grant (read, not
    /// verified: it came straight from the provider over TLS, and only names the user).
    pub fn id_token_subject(&self) -> Option<String> {
        let token = self
            .0
            .get("oauth_callback_results")
            .and_then(|r| r.get("id_token"))
            .and_then(Value::as_str)?;
        let payload = token.split('.').nth(1)?;
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            payload.trim_end_matches('='),
        )
        .ok()?;
        let claims: Value = serde_json::from_slice(&bytes).ok()?;
        claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(str::to_owned)
    }

    /// Sets the scopes the last grant lacked (`scope_missing`), or removes the member
    /// when it lacked none.
    pub fn record_scope_missing(&mut self, missing: &[String]) {
        let obj = self.object();
        if missing.is_empty() {
            obj.remove("scope_missing");
        } else {
            obj.insert("scope_missing".into(), missing.to_vec().into());
        }
    }

    /// Marks an account whose refresh token the provider refused: its user must
    /// reconnect.
    pub fn mark_reconnect_needed(&mut self, error: &str, at: DateTime<Utc>) {
        self.object().insert(
            RECONNECT_NEEDED.into(),
            json!({"since": at.to_rfc3339_opts(SecondsFormat::Secs, true), "error": error}),
        );
    }

    /// When the account is next refreshed (unix seconds), by `cadence`: `None` when it
    /// has no refresh token to refresh with, unless `renewable` (client credentials need
    /// none).
    pub fn next_refresh(&self, cadence: &Cadence, now: i64, renewable: bool) -> Option<i64> {
        if !renewable {
            self.refresh_token()?;
        }
        Some(cadence.next(self.expires_at().map(|e| e.timestamp()), now))
    }

    fn object(&mut self) -> &mut Map<String, Value> {
        object_mut(&mut self.0)
    }

    fn oauth(&mut self) -> &mut Map<String, Value> {
        object_mut(self.object().entry("oauth").or_insert_with(|| json!({})))
    }
}

/// When tokens are refreshed (seconds): a margin before expiry, but never before a share
/// of the token's remaining life has passed nor sooner than a floor, so a token that lives
/// less than the margin (Keycloak's 300 s) is refreshed about once per lifetime, not on
/// every pass; and no later than the idle period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Time before expiry at which a token is refreshed.
    pub margin: i64,
    /// Longest time between refreshes (also when the expiry is unknown).
    pub every: i64,
    /// Share (percent) of the remaining life that passes before a refresh.
    pub share_percent: i64,
    /// Shortest time between a plan and its refresh.
    pub floor: i64,
}

impl Cadence {
    /// The next refresh of a token expiring at `expires_at` (unix seconds), planned `now`.
    pub fn next(&self, expires_at: Option<i64>, now: i64) -> i64 {
        let idle = now + self.every;
        match expires_at {
            // Expired already: due now (the margin puts it in the past).
            Some(exp) if exp <= now => exp - self.margin,
            Some(exp) => {
                let by_share = now + (exp - now) * self.share_percent.clamp(0, 100) / 100;
                (exp - self.margin)
                    .max(by_share)
                    .max(now + self.floor)
                    .min(idle)
            }
            None => idle,
        }
    }
}

/// Redirect query as cozy's `url.Values`: an object of arrays of strings, `state` left out.
pub fn query_object(query: &[(String, String)]) -> Value {
    let mut map: Map<String, Value> = Map::new();
    for (k, v) in query.iter().filter(|(k, _)| k != "state") {
        if let Value::Array(values) = map.entry(k.clone()).or_insert_with(|| Value::Array(vec![])) {
            values.push(Value::String(v.clone()));
        }
    }
    Value::Object(map)
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

/// Top-level account field set while the user must reconnect the account.
pub const RECONNECT_NEEDED: &str = "reconnect_needed";
/// The broker's member naming the user at the provider.
pub const PROVIDER_SUBJECT: &str = "provider_subject";

/// `v` as an object, replacing whatever else it held.
fn object_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    match v {
        Value::Object(m) => m,
        // Made an object just above.
        _ => unreachable!("made an object above"),
    }
}

/// What user info tells of the account's owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `email`, else `preferred_username`, else `login`, else `sub`.
    pub login: Option<String>,
    /// `name`, else the login.
    pub name: Option<String>,
    /// Who the user is at the provider, stably: `sub`, else a numeric or string `id`
    /// (GitHub-style user info).
    pub subject: Option<String>,
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
        let subject = text("sub").or_else(|| text("id")).or_else(|| {
            info.get("id")
                .and_then(Value::as_u64)
                .map(|n| n.to_string())
        });
        Identity {
            login,
            name,
            subject,
        }
    }
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

    fn account(doc: Value) -> Account {
        Account::try_from(doc).unwrap()
    }

    #[test]
    fn code_exchange_account_has_cozy_shape_and_order() {
        let doc = Account::from_token_grant("google", &grant());
        assert_eq!(
            serde_json::to_string(doc.document()).unwrap(),
            r#"{"account_type":"google","name":"","oauth":{"access_token":"AT","token_type":"Bearer","expires_at":"2026-07-02T15:21:15Z","refresh_token":"RT"}}"#
        );
    }

    #[test]
    fn unknown_expiry_is_go_zero_time() {
        let g = TokenGrant {
            expires_at: None,
            ..grant()
        };
        let doc = Account::from_token_grant("x", &g);
        assert_eq!(doc.document()["oauth"]["expires_at"], UNKNOWN_EXPIRY);
        assert_eq!(doc.expires_at(), None);
    }

    #[test]
    fn refresh_keeps_old_refresh_token_and_foreign_fields() {
        let mut doc =
            account(json!({"label": "mine", "oauth": {"refresh_token": "OLD", "custom": 1}}));
        doc.apply_refresh(&TokenGrant {
            refresh_token: None,
            ..grant()
        });
        let d = doc.document();
        assert_eq!(d["oauth"]["refresh_token"], "OLD");
        assert_eq!(d["oauth"]["custom"], 1);
        assert_eq!(d["label"], "mine");
        assert_eq!(d["oauth"]["access_token"], "AT");
    }

    #[test]
    fn a_document_that_is_not_an_object_is_no_account() {
        for doc in [json!(null), json!([1]), json!("x")] {
            assert_eq!(Account::try_from(doc), Err(NotAnAccount));
        }
    }

    #[test]
    fn debug_of_an_account_hides_its_tokens() {
        let doc = account(
            json!({"_id": "a1", "oauth": {"access_token": "AT-secret", "refresh_token": "RT-secret"}}),
        );
        let shown = format!("{doc:?}");
        assert!(shown.contains("a1") && !shown.contains("secret"), "{shown}");
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

    const CADENCE: Cadence = Cadence {
        margin: 600,
        every: 86_400,
        share_percent: 75,
        floor: 60,
    };

    #[test]
    fn next_refresh_is_a_margin_before_expiry_or_the_idle_period() {
        let now = 1_000_000;
        let exp = DateTime::from_timestamp(now + 3600, 0)
            .unwrap()
            .to_rfc3339();
        let doc = account(json!({"oauth": {"refresh_token": "r", "expires_at": exp}}));
        assert_eq!(doc.next_refresh(&CADENCE, now, false), Some(now + 3000));
        let hourly = Cadence {
            every: 60,
            ..CADENCE
        };
        assert_eq!(doc.next_refresh(&hourly, now, false), Some(now + 60));
        let unknown =
            account(json!({"oauth": {"refresh_token": "r", "expires_at": UNKNOWN_EXPIRY}}));
        assert_eq!(
            unknown.next_refresh(&CADENCE, now, false),
            Some(now + 86_400)
        );
        let no_rt = account(json!({"oauth": {"access_token": "a", "expires_at": exp}}));
        assert_eq!(no_rt.next_refresh(&CADENCE, now, false), None);
        assert!(no_rt.next_refresh(&CADENCE, now, true).is_some());
    }

    #[test]
    fn a_token_shorter_lived_than_the_margin_waits_for_most_of_its_life() {
        let now = 1_000_000;
        // 300 s (Keycloak's default) against a 600 s margin: at 225 s, not at once.
        assert_eq!(CADENCE.next(Some(now + 300), now), now + 225);
        // 40 s: never sooner than the floor.
        assert_eq!(CADENCE.next(Some(now + 40), now), now + 60);
        // Expired: due now.
        assert!(CADENCE.next(Some(now - 10), now) <= now);
        // Long-lived: the margin decides.
        assert_eq!(CADENCE.next(Some(now + 7200), now), now + 6600);
    }

    #[test]
    fn changed_since_needs_a_new_revision_and_new_tokens() {
        let seen = account(json!({"_rev": "1-a", "oauth": {"access_token": "A"}}));
        let same_tokens = account(json!({"_rev": "2-b", "oauth": {"access_token": "A"}}));
        let refreshed = account(json!({"_rev": "2-b", "oauth": {"access_token": "B"}}));
        assert!(!same_tokens.changed_since(&seen));
        assert!(refreshed.changed_since(&seen));
        assert!(!seen.changed_since(&seen));
    }

    #[test]
    fn the_id_token_names_the_user_and_user_info_its_subject() {
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"sub":"user-7","iss":"https://idp"}"#);
        let doc = Account::try_from(json!({"oauth_callback_results":
            {"id_token": format!("h.{claims}.s")}}))
        .unwrap();
        assert_eq!(doc.id_token_subject().as_deref(), Some("user-7"));
        assert_eq!(
            Account::try_from(json!({})).unwrap().id_token_subject(),
            None
        );
        let info = json!({"id": 42, "login": "octo"});
        assert_eq!(
            Identity::from_userinfo(info.as_object().unwrap())
                .subject
                .as_deref(),
            Some("42")
        );
    }
}
