//! Account types: a provider's OAuth client, as stored in `secrets/io-cozy-account_types`.

use super::provider_url::{ProviderPattern, ProviderUrl, PLACEHOLDER};
use super::{GrantMode, TokenMode};
use crate::domain::ErrorCode;
use oauth2::{ClientId, ClientSecret};
use serde_json::{Map, Value};
use url::Url;

/// Why a document is not a usable account type; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct AccountTypeError {
    /// JSON path of the offending field, e.g. `extras.display`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
    /// The type is cozy-stack's to run (a Budget Insight grant mode), not malformed.
    pub stays_on_stack: bool,
}

impl AccountTypeError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AccountTypeError {
            field: field.into(),
            reason: reason.into(),
            stays_on_stack: false,
        }
    }
}

/// A parsed account type; the core never sees a malformed one.
#[derive(Debug, Clone)]
pub struct AccountType {
    /// Document id: `google`, or `ctx/google` when overloaded for a context.
    pub id: String,
    /// `None` for refresh-only types (cozy allows it; `start` refuses them).
    pub grant_mode: Option<GrantMode>,
    /// OAuth client id.
    pub client_id: Option<ClientId>,
    /// OAuth client secret; `Debug` never prints it.
    pub client_secret: Option<ClientSecret>,
    /// Authorization URL; its own query is kept.
    pub auth_endpoint: Option<Url>,
    /// Token URL; absent means the konnector exchanges the code itself.
    pub token_endpoint: Option<Url>,
    /// RFC 7009 revocation URL, called when an account is deleted.
    pub revocation_endpoint: Option<Url>,
    /// Client authentication at the token endpoint.
    pub token_mode: TokenMode,
    /// Registered redirect URI; absent means the broker's default.
    pub redirect_uri: Option<Url>,
    /// Extra authorization parameters, in document order.
    pub extras: Vec<(String, String)>,
    /// Do not send `redirect_uri` on the authorization URL.
    pub skip_redirect_uri_on_authorize: bool,
    /// Do not send `state` to the token endpoint.
    pub skip_state_on_token: bool,
    /// Use PKCE (S256): a challenge on the authorization URL, the verifier at the exchange.
    pub pkce: bool,
    /// Refresh this long before the access token expires (`refresh_margin_secs`).
    pub refresh_margin_secs: Option<u64>,
    /// Refresh at least this often when the expiry is unknown (`refresh_every_secs`), so
    /// idle refresh tokens do not expire.
    pub refresh_every_secs: Option<u64>,
    /// Default scope: sent when `start` names none, and by `client_credentials` requests.
    pub scope: Option<String>,
    /// How this provider separates scopes (`scope_delimiter`); the start scope is
    /// space-separated, and re-joined with this when it is not a space.
    pub scope_delimiter: Option<char>,
    /// Konnector slug (secret injection; not used by the flow).
    pub slug: Option<String>,
    /// OpenID user info URL, read after the exchange to name the account.
    pub userinfo_endpoint: Option<Url>,
    /// RFC 7662 introspection URL, asked by `GET /accounts/{type}/{id}/status`.
    pub introspection_endpoint: Option<Url>,
    /// RFC 7591 registration URL: the broker registers itself instead of a fixed client.
    pub registration_endpoint: Option<Url>,
    /// Client metadata sent when registering (`client_name`, `software_id`, ...).
    pub client_metadata: Map<String, Value>,
    /// The authorization server's issuer identifier (RFC 8414), compared with the `iss`
    /// a redirect carries (RFC 9207); per-account types use their provider's origin.
    pub issuer: Option<String>,
    /// Origins `provider_url` may take, for types whose endpoints start with it.
    pub provider_url_patterns: Vec<ProviderPattern>,
    /// Endpoint fields written with `{provider_url}`, as written.
    templated: Vec<(&'static str, String)>,
}

/// Endpoint fields; any may start with `{provider_url}`.
const ENDPOINTS: [&str; 6] = [
    "auth_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "introspection_endpoint",
    "registration_endpoint",
];

/// What `{provider_url}` stands for while a per-account type is only being validated.
const PLACEHOLDER_ORIGIN: &str = "https://provider-url.invalid";

/// Fields whose values an admin read replaces with [`REDACTED`].
pub const SECRET_FIELDS: [&str; 3] = ["client_secret", "secret", "fcm_credentials"];
/// What an admin read shows instead of a secret.
pub const REDACTED: &str = "[redacted]";

impl AccountType {
    /// Parses and validates a stored or submitted document.
    pub fn from_document(doc: &Value) -> Result<AccountType, AccountTypeError> {
        let obj = doc
            .as_object()
            .ok_or_else(|| AccountTypeError::new("(document)", "must be a JSON object"))?;
        let id =
            string_field(obj, "_id")?.ok_or_else(|| AccountTypeError::new("_id", "is required"))?;
        validate_id(&id)?;

        let grant_mode = match string_field(obj, "grant_mode")? {
            None => None,
            Some(raw) => GrantMode::parse(&raw).map_err(|r| AccountTypeError {
                stays_on_stack: GrantMode::stays_on_stack(&raw),
                ..AccountTypeError::new("grant_mode", r)
            })?,
        };
        let token_mode = match string_field(obj, "token_mode")? {
            None => TokenMode::Form,
            Some(raw) => {
                TokenMode::parse(&raw).map_err(|r| AccountTypeError::new("token_mode", r))?
            }
        };
        let extras = match obj.get("extras") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(AccountTypeError::new(
                        format!("extras.{k}"),
                        "must be a string (cozy-stack reads extras as strings)",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(AccountTypeError::new(
                    "extras",
                    "must be an object of strings",
                ))
            }
        };

        let mut templated = Vec::new();
        for field in ENDPOINTS {
            if let Some(raw) = string_field(obj, field)? {
                if raw.contains(PLACEHOLDER) {
                    if !raw.starts_with(PLACEHOLDER) || raw.matches(PLACEHOLDER).count() > 1 {
                        return Err(AccountTypeError::new(
                            field,
                            "`{provider_url}` may only begin the URL, once",
                        ));
                    }
                    templated.push((field, raw));
                }
            }
        }
        let endpoint = |field: &str| url_field(obj, field);
        let at = AccountType {
            userinfo_endpoint: endpoint("userinfo_endpoint")?,
            introspection_endpoint: endpoint("introspection_endpoint")?,
            registration_endpoint: endpoint("registration_endpoint")?,
            client_metadata: match obj.get("client_metadata") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => {
                    return Err(AccountTypeError::new(
                        "client_metadata",
                        "must be an object of RFC 7591 client metadata",
                    ))
                }
            },
            issuer: url_field(obj, "issuer")?.map(|u| u.as_str().trim_end_matches('/').to_owned()),
            provider_url_patterns: provider_patterns(obj)?,
            templated,
            grant_mode,
            client_id: string_field(obj, "client_id")?
                .filter(|s| !s.is_empty())
                .map(ClientId::new),
            client_secret: string_field(obj, "client_secret")?
                .filter(|s| !s.is_empty())
                .map(ClientSecret::new),
            auth_endpoint: url_field(obj, "auth_endpoint")?,
            token_endpoint: url_field(obj, "token_endpoint")?,
            revocation_endpoint: url_field(obj, "revocation_endpoint")?,
            token_mode,
            redirect_uri: url_field(obj, "redirect_uri")?,
            extras,
            skip_redirect_uri_on_authorize: bool_field(obj, "skip_redirect_uri_on_authorize")?,
            skip_state_on_token: bool_field(obj, "skip_state_on_token")?,
            pkce: bool_field(obj, "pkce")?,
            refresh_margin_secs: seconds_field(obj, "refresh_margin_secs")?,
            refresh_every_secs: seconds_field(obj, "refresh_every_secs")?,
            slug: string_field(obj, "slug")?.filter(|s| !s.is_empty()),
            scope: string_field(obj, "scope")?.filter(|s| !s.is_empty()),
            scope_delimiter: scope_delimiter_field(obj)?,
            id,
        };
        at.check_grant_mode_needs()?;
        at.check_registration_and_provider()?;
        Ok(at)
    }

    fn check_registration_and_provider(&self) -> Result<(), AccountTypeError> {
        if self.registration_endpoint.is_some() && self.client_id.is_some() {
            return Err(AccountTypeError::new(
                "client_id",
                "give either a client_id or a registration_endpoint, not both",
            ));
        }
        if !self.client_metadata.is_empty() && self.registration_endpoint.is_none() {
            return Err(AccountTypeError::new(
                "client_metadata",
                "is only used with a registration_endpoint",
            ));
        }
        if let Some(v) = self.client_metadata.get("redirect_uris") {
            let ok = v
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
            if !ok {
                return Err(AccountTypeError::new(
                    "client_metadata.redirect_uris",
                    "must be a non-empty array of URLs",
                ));
            }
        }
        match (self.templated.is_empty(), self.provider_url_patterns.is_empty()) {
            (false, true) => Err(AccountTypeError::new(
                "provider_url_pattern",
                "is required when an endpoint uses `{provider_url}`: the origins users may connect to, e.g. https://*.mycozy.cloud",
            )),
            (true, false) => Err(AccountTypeError::new(
                "provider_url_pattern",
                "is only used when an endpoint begins with `{provider_url}`",
            )),
            // One secret for any host under a domain would go to whichever host a user
            // names: such types must register a client per provider instead.
            _ if self.client_secret.is_some()
                && self.provider_url_patterns.iter().any(|p| p.is_wildcard()) =>
            {
                Err(AccountTypeError::new(
                    "client_secret",
                    "must not be fixed when provider_url_pattern allows any subdomain: it would be sent to every such host; give a registration_endpoint, or list the allowed hosts",
                ))
            }
            _ => Ok(()),
        }
    }

    /// True when each account names its own provider (`{provider_url}` endpoints).
    pub fn per_account(&self) -> bool {
        !self.templated.is_empty()
    }

    /// This type with its `{provider_url}` endpoints pointing at `provider`.
    pub fn with_provider(&self, provider: &ProviderUrl) -> AccountType {
        let mut at = self.clone();
        for (field, raw) in &self.templated {
            let url = Url::parse(&raw.replacen(PLACEHOLDER, provider.as_str(), 1)).ok();
            match *field {
                "auth_endpoint" => at.auth_endpoint = url,
                "token_endpoint" => at.token_endpoint = url,
                "revocation_endpoint" => at.revocation_endpoint = url,
                "userinfo_endpoint" => at.userinfo_endpoint = url,
                "introspection_endpoint" => at.introspection_endpoint = url,
                "registration_endpoint" => at.registration_endpoint = url,
                _ => unreachable!("only ENDPOINTS are templated"),
            }
        }
        at.templated.clear();
        at
    }

    /// Whether the type names no fixed client and registers one (RFC 7591).
    pub fn registers(&self) -> bool {
        self.registration_endpoint.is_some()
    }

    fn check_grant_mode_needs(&self) -> Result<(), AccountTypeError> {
        let Some(mode) = self.grant_mode else {
            return Ok(());
        };
        if mode.has_authorization_step() && self.auth_endpoint.is_none() {
            return Err(AccountTypeError::new(
                "auth_endpoint",
                format!("is required with grant_mode `{mode}`"),
            ));
        }
        if mode.needs_client_id()
            && self.client_id.is_none()
            && self.registration_endpoint.is_none()
        {
            return Err(AccountTypeError::new(
                "client_id",
                format!("is required with grant_mode `{mode}`"),
            ));
        }
        if mode == GrantMode::ClientCredentials && self.token_endpoint.is_none() {
            return Err(AccountTypeError::new(
                "token_endpoint",
                "is required with grant_mode `client_credentials`",
            ));
        }
        if self.token_mode.is_basic()
            && self.token_endpoint.is_some()
            && self.registration_endpoint.is_none()
            && (self.client_id.is_none() || self.client_secret.is_none())
        {
            return Err(AccountTypeError::new(
                "client_secret",
                "token_mode `basic` needs both client_id and client_secret",
            ));
        }
        Ok(())
    }

    /// `scope` as the provider wants it: space-separated words re-joined with the
    /// type's delimiter (cozy-stack sends the start scope untouched, so a space keeps that).
    pub fn provider_scope(&self, scope: &str) -> String {
        match self.scope_delimiter {
            Some(d) if d != ' ' => scope
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(&d.to_string()),
            _ => scope.to_owned(),
        }
    }

    /// The service id used in URLs: the part after the context, `google` for `ctx/google`.
    pub fn service_id(&self) -> &str {
        service_id_of(&self.id)
    }

    /// The context this document overloads the type for, if any.
    pub fn context(&self) -> Option<&str> {
        self.id.split_once('/').map(|(c, _)| c)
    }
}

/// `google` for `ctx/google` and for `google`.
pub fn service_id_of(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, s)| s)
}

/// A copy of a stored document with every secret replaced by [`REDACTED`].
pub fn redacted(doc: &Value) -> Value {
    let mut out = doc.clone();
    if let Some(obj) = out.as_object_mut() {
        for field in SECRET_FIELDS {
            if let Some(v) = obj.get_mut(field) {
                if !v.is_null() {
                    *v = Value::String(REDACTED.to_owned());
                }
            }
        }
    }
    out
}

/// Checks an id: one optional `context/` then a service id; letters, digits, `.`, `_`, `-`.
pub fn validate_id(id: &str) -> Result<(), AccountTypeError> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && !s.starts_with(['_', '.'])
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    let ok = match id.split_once('/') {
        Some((ctx, svc)) => segment_ok(ctx) && segment_ok(svc),
        None => segment_ok(id),
    };
    if ok {
        Ok(())
    } else {
        Err(AccountTypeError::new(
            "_id",
            "must be `service` or `context/service`, each of letters, digits, `.`, `_`, `-`, not starting with `_` or `.`",
        ))
    }
}

fn string_field(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, AccountTypeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AccountTypeError::new(field, "must be a string")),
    }
}

fn scope_delimiter_field(obj: &Map<String, Value>) -> Result<Option<char>, AccountTypeError> {
    let Some(raw) = string_field(obj, "scope_delimiter")? else {
        return Ok(None);
    };
    let mut chars = raw.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if " ,;+|".contains(c) => Ok(Some(c)),
        _ => Err(AccountTypeError::new(
            "scope_delimiter",
            "must be one of \" \", \",\", \";\", \"+\", \"|\"",
        )),
    }
}

fn seconds_field(obj: &Map<String, Value>, field: &str) -> Result<Option<u64>, AccountTypeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|s| *s <= 366 * 24 * 3600)
            .map(Some)
            .ok_or_else(|| {
                AccountTypeError::new(field, "must be a whole number of seconds, at most a year")
            }),
    }
}

fn bool_field(obj: &Map<String, Value>, field: &str) -> Result<bool, AccountTypeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(AccountTypeError::new(field, "must be true or false")),
    }
}

fn provider_patterns(obj: &Map<String, Value>) -> Result<Vec<ProviderPattern>, AccountTypeError> {
    const FIELD: &str = "provider_url_pattern";
    let raws: Vec<&str> = match obj.get(FIELD) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    AccountTypeError::new(FIELD, "must be a string or an array of strings")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(AccountTypeError::new(
                FIELD,
                "must be a string or an array of strings",
            ))
        }
    };
    raws.into_iter()
        .map(|r| {
            ProviderPattern::parse(r)
                .map_err(|e| AccountTypeError::new(FIELD, format!("`{r}` {e}")))
        })
        .collect()
}

/// The name of a catalogue `[name]` placeholder left in a URL (an IPv6 literal holds a
/// `:` and is no placeholder).
fn template_placeholder(raw: &str) -> Option<&str> {
    let start = raw.find('[')? + 1;
    let len = raw[start..].find(']')?;
    let name = &raw[start..start + len];
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then_some(name)
}

fn url_field(obj: &Map<String, Value>, field: &str) -> Result<Option<Url>, AccountTypeError> {
    let Some(raw) = string_field(obj, field)?.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let raw = if ENDPOINTS.contains(&field) {
        raw.replacen(PLACEHOLDER, PLACEHOLDER_ORIGIN, 1)
    } else {
        raw
    };
    if let Some(name) = template_placeholder(&raw) {
        return Err(AccountTypeError::new(
            field,
            format!(
                "holds the template placeholder `[{name}]`: write its value in (a catalogue template takes it as `--param {name}=...`)"
            ),
        ));
    }
    let url =
        Url::parse(&raw).map_err(|e| AccountTypeError::new(field, format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(AccountTypeError::new(
            field,
            "must be an http or https URL with a host",
        ));
    }
    if url.fragment().is_some() {
        return Err(AccountTypeError::new(field, "must not have a #fragment"));
    }
    Ok(Some(url))
}

impl crate::domain::error_kind::Classified for AccountTypeError {
    fn kind(&self) -> crate::domain::ErrorKind {
        crate::domain::ErrorKind::Invalid
    }

    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidAccountType
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placeholder_left_in_an_endpoint_is_named() {
        let e = AccountType::from_document(&json!({"_id": "z", "grant_mode": "authorization_code",
            "client_id": "c", "auth_endpoint": "https://[subdomain].zendesk.com/oauth/authorizations/new"}))
        .unwrap_err();
        assert_eq!(e.field, "auth_endpoint");
        assert!(
            e.reason.contains("`[subdomain]`") && e.reason.contains("--param subdomain="),
            "{e}"
        );
        assert_eq!(template_placeholder("https://[::1]:8080/x"), None);
    }
    use serde_json::json;

    fn google() -> Value {
        json!({"_id": "google", "grant_mode": "authorization_code", "client_id": "cid",
               "client_secret": "cs", "auth_endpoint": "https://accounts.example/auth",
               "token_endpoint": "https://accounts.example/token", "token_mode": "basic",
               "extras": {"access_type": "offline", "prompt": "consent"}})
    }

    #[test]
    fn a_cozy_document_parses() {
        let at = AccountType::from_document(&google()).unwrap();
        assert_eq!(at.grant_mode, Some(GrantMode::AuthorizationCode));
        assert_eq!(at.token_mode, TokenMode::Basic);
        assert_eq!(at.extras[0], ("access_type".into(), "offline".into()));
        assert_eq!(at.service_id(), "google");
        assert_eq!(at.context(), None);
    }

    #[test]
    fn non_string_extras_value_names_the_field() {
        let mut doc = google();
        doc["extras"]["display"] = json!(1);
        let err = AccountType::from_document(&doc).unwrap_err();
        assert_eq!(err.field, "extras.display");
    }

    #[test]
    fn overloaded_id_has_a_context_and_a_service_id() {
        let mut doc = google();
        doc["_id"] = json!("ctx/google");
        let at = AccountType::from_document(&doc).unwrap();
        assert_eq!(at.service_id(), "google");
        assert_eq!(at.context(), Some("ctx"));
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in ["", "_design", "a/b/c", "a b", "../x", "a/"] {
            let mut doc = google();
            doc["_id"] = json!(bad);
            assert_eq!(
                AccountType::from_document(&doc).unwrap_err().field,
                "_id",
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_auth_endpoint_is_refused_for_code_flows() {
        let mut doc = google();
        doc.as_object_mut().unwrap().remove("auth_endpoint");
        assert_eq!(
            AccountType::from_document(&doc).unwrap_err().field,
            "auth_endpoint"
        );
    }

    #[test]
    fn non_http_urls_are_refused() {
        let mut doc = google();
        doc["token_endpoint"] = json!("javascript:alert(1)");
        assert_eq!(
            AccountType::from_document(&doc).unwrap_err().field,
            "token_endpoint"
        );
    }

    #[test]
    fn refresh_only_type_without_grant_mode_parses() {
        let doc = json!({"_id": "r", "token_endpoint": "https://p.example/t", "client_id": "a", "client_secret": "b"});
        assert!(AccountType::from_document(&doc)
            .unwrap()
            .grant_mode
            .is_none());
    }

    #[test]
    fn scope_is_rejoined_with_the_provider_delimiter() {
        let mut doc = google();
        doc["scope_delimiter"] = json!(",");
        let at = AccountType::from_document(&doc).unwrap();
        assert_eq!(at.provider_scope("a  b c"), "a,b,c");
        doc["scope_delimiter"] = json!(" ");
        let at = AccountType::from_document(&doc).unwrap();
        assert_eq!(at.provider_scope("a  b"), "a  b");
        doc["scope_delimiter"] = json!("::");
        assert_eq!(
            AccountType::from_document(&doc).unwrap_err().field,
            "scope_delimiter"
        );
    }

    fn cozy_to_cozy() -> Value {
        json!({"_id": "cozy", "grant_mode": "authorization_code",
               "auth_endpoint": "{provider_url}/auth/authorize",
               "token_endpoint": "{provider_url}/auth/access_token",
               "registration_endpoint": "{provider_url}/auth/register",
               "provider_url_pattern": ["https://*.mycozy.cloud"],
               "client_metadata": {"client_name": "Broker", "software_id": "github.com/oauth-broker"}})
    }

    #[test]
    fn a_per_account_registering_type_parses_and_points_at_its_provider() {
        let at = AccountType::from_document(&cozy_to_cozy()).unwrap();
        assert!(at.per_account() && at.registers());
        let p = ProviderUrl::parse(
            "https://alice.mycozy.cloud",
            &at.provider_url_patterns,
            false,
        )
        .unwrap();
        let mine = at.with_provider(&p);
        assert_eq!(
            mine.token_endpoint.as_ref().unwrap().as_str(),
            "https://alice.mycozy.cloud/auth/access_token"
        );
        assert!(!mine.per_account());
    }

    #[test]
    fn provider_url_needs_a_pattern_and_may_only_begin_an_endpoint() {
        let mut doc = cozy_to_cozy();
        doc.as_object_mut().unwrap().remove("provider_url_pattern");
        assert_eq!(
            AccountType::from_document(&doc).unwrap_err().field,
            "provider_url_pattern"
        );
        let mut doc = cozy_to_cozy();
        doc["token_endpoint"] = json!("https://x.example/?to={provider_url}");
        assert_eq!(
            AccountType::from_document(&doc).unwrap_err().field,
            "token_endpoint"
        );
        let mut doc = cozy_to_cozy();
        doc["provider_url_pattern"] = json!("http://*.mycozy.cloud");
        assert_eq!(
            AccountType::from_document(&doc).unwrap_err().field,
            "provider_url_pattern"
        );
    }

    #[test]
    fn a_fixed_client_and_a_registration_endpoint_are_exclusive() {
        let mut doc = cozy_to_cozy();
        doc["client_id"] = json!("fixed");
        assert_eq!(
            AccountType::from_document(&doc).unwrap_err().field,
            "client_id"
        );
    }

    #[test]
    fn secret_debug_and_redaction_hide_the_secret() {
        let at = AccountType::from_document(&google()).unwrap();
        assert!(!format!("{at:?}").contains("\"cs\""));
        let r = redacted(&google());
        assert_eq!(r["client_secret"], REDACTED);
        assert_eq!(r["client_id"], "cid");
    }
}
