//! An OpenID Connect `id_token` as a login for `start`, as cozy-stack's `checkIDToken`
//! (`web/accounts/oauth.go`, `model/oidc/provider`): an app embedding Harvest in a
//! context delegated to an identity provider passes the user's `id_token` instead of a
//! session code. The token is an RSA-signed JWT (RS256, RS384 or RS512) checked with the
//! context's `id_token_jwk_url` keys (the key named by `kid` among the `use: sig` RSA
//! keys, else the last of them); its `exp` and `nbf`, when present, must hold; the caller
//! then compares `sub` with the instance's `oidc_id`.

use super::provider::{ProviderClient, ProviderError};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a key set is reused (cozy-stack caches it too).
const KEYS_TTL: Duration = Duration::from_secs(300);

/// Why an `id_token` does not log in.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    /// The identity provider's keys could not be read.
    #[error("the identity provider's keys could not be read: {0}")]
    Keys(#[from] ProviderError),
    /// Not a token those keys signed, expired, or not yet valid.
    #[error("the id_token is not valid: {0}")]
    Invalid(String),
}

/// A key set's keys (JWKs), as read.
type Keys = Vec<Map<String, Value>>;

/// Verifies `id_token`s against key sets read over HTTP, cached a few minutes.
pub struct IdTokens {
    http: ProviderClient,
    cache: Mutex<HashMap<String, (Instant, Keys)>>,
}

impl std::fmt::Debug for IdTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdTokens")
    }
}

impl IdTokens {
    /// A verifier reading key sets with `http`.
    pub fn new(http: ProviderClient) -> IdTokens {
        IdTokens {
            http,
            cache: Mutex::default(),
        }
    }

    /// The claims of `raw` when a key of `jwk_url` signed it and it is in its lifetime.
    pub async fn verify(
        &self,
        raw: &str,
        jwk_url: &url::Url,
    ) -> Result<Map<String, Value>, IdTokenError> {
        let header =
            jsonwebtoken::decode_header(raw).map_err(|e| IdTokenError::Invalid(e.to_string()))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
        ) {
            return Err(IdTokenError::Invalid(format!(
                "unexpected signing method {:?}",
                header.alg
            )));
        }
        let keys = self.keys(jwk_url).await?;
        let key = choose(&keys, header.kid.as_deref())
            .ok_or_else(|| IdTokenError::Invalid("no RSA signing key in the key set".into()))?;
        let (n, e) = match (key.get("n"), key.get("e")) {
            (Some(Value::String(n)), Some(Value::String(e))) => (n, e),
            _ => return Err(IdTokenError::Invalid("the key has no modulus".into())),
        };
        let decoding = DecodingKey::from_rsa_components(n, e)
            .map_err(|e| IdTokenError::Invalid(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        // As golang-jwt's `Parse`: lifetime claims are checked when present, nothing else.
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = 0;
        jsonwebtoken::decode::<Map<String, Value>>(raw, &decoding, &validation)
            .map(|t| t.claims)
            .map_err(|e| IdTokenError::Invalid(e.to_string()))
    }

    async fn keys(&self, url: &url::Url) -> Result<Keys, IdTokenError> {
        // A poisoned cache is only a cache: its content is still usable.
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url.as_str())
            .filter(|(at, _)| at.elapsed() < KEYS_TTL)
            .map(|(_, keys)| keys.clone());
        if let Some(keys) = cached {
            return Ok(keys);
        }
        let (_, body) = self
            .http
            .json(reqwest::Method::GET, url, None, None)
            .await?;
        let keys: Keys = body
            .get("keys")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|k| k.as_object().cloned()).collect())
            .unwrap_or_default();
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(url.to_string(), (Instant::now(), keys.clone()));
        Ok(keys)
    }
}

/// cozy-stack's `ChooseKeyForIDToken`: among RSA keys for signatures, the one `kid`
/// names, else the last.
fn choose<'a>(keys: &'a [Map<String, Value>], kid: Option<&str>) -> Option<&'a Map<String, Value>> {
    let signing = || {
        keys.iter().filter(|k| {
            k.get("use").and_then(Value::as_str) == Some("sig")
                && k.get("kty").and_then(Value::as_str) == Some("RSA")
        })
    };
    signing()
        .find(|k| kid.is_some() && k.get("kid").and_then(Value::as_str) == kid)
        .or_else(|| signing().next_back())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(kid: &str, kty: &str, usage: &str) -> Map<String, Value> {
        json!({"kid": kid, "kty": kty, "use": usage, "n": "AQAB", "e": "AQAB"})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn the_key_named_by_kid_else_the_last_signing_rsa_key() {
        let keys = vec![
            key("a", "RSA", "sig"),
            key("b", "RSA", "sig"),
            key("c", "EC", "sig"),
            key("d", "RSA", "enc"),
        ];
        let kid = |k: Option<&Map<String, Value>>| k.map(|k| k["kid"].as_str().unwrap().to_owned());
        assert_eq!(kid(choose(&keys, Some("a"))).as_deref(), Some("a"));
        assert_eq!(kid(choose(&keys, Some("zz"))).as_deref(), Some("b"));
        assert_eq!(kid(choose(&keys, Some("d"))).as_deref(), Some("b"));
        assert_eq!(kid(choose(&keys, None)).as_deref(), Some("b"));
        assert!(choose(&keys[2..], None).is_none());
    }
}
