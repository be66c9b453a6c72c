//! When a token reply says nothing of its expiry: what the broker infers instead, so that
//! the refresh is planned before the token dies rather than after (a silent death).

use chrono::{DateTime, Duration, Utc};

/// Where an access token's expiry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpirySource {
    /// The reply's own `expires_in`.
    Provider,
    /// The `exp` claim of the access token, a JWT.
    Jwt,
    /// The lifetime the provider gave the type's last token that told one.
    LastSeen,
    /// Unknown: the refresh is planned by the type's `refresh_every_secs` (or the
    /// broker's default).
    TypeDefault,
}

impl ExpirySource {
    /// As recorded on the account (`oauth.expires_at_source`) when inferred.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpirySource::Provider => "provider",
            ExpirySource::Jwt => "jwt",
            ExpirySource::LastSeen => "last_seen",
            ExpirySource::TypeDefault => "type_default",
        }
    }
}

/// The only claim read here.
#[derive(serde::Deserialize)]
struct Exp {
    exp: Option<serde_json::Value>,
}

/// The `exp` claim (unix seconds) of a JWT, read without checking its signature: it only
/// plans a refresh, it grants nothing. `None` for anything that is not a JWT with a
/// numeric `exp`.
pub fn jwt_exp(token: &str) -> Option<i64> {
    // The same unchecked read as `cozy::jwt` makes of a token's audience.
    let exp = jsonwebtoken::dangerous::insecure_decode::<Exp>(token)
        .ok()?
        .claims
        .exp?;
    exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))
}

/// The expiry to record for a token received at `now`: the provider's when it told one,
/// else the JWT's `exp` (when still ahead), else `now` plus the lifetime last seen for the
/// type, else none.
pub fn infer(
    told: Option<DateTime<Utc>>,
    access_token: &str,
    last_seen_secs: Option<i64>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, ExpirySource) {
    if told.is_some() {
        return (told, ExpirySource::Provider);
    }
    if let Some(exp) = jwt_exp(access_token).and_then(|e| DateTime::from_timestamp(e, 0)) {
        if exp > now {
            return (Some(exp), ExpirySource::Jwt);
        }
    }
    if let Some(secs) = last_seen_secs.filter(|s| *s > 0) {
        return (Some(now + Duration::seconds(secs)), ExpirySource::LastSeen);
    }
    (None, ExpirySource::TypeDefault)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use chrono::TimeZone;

    fn jwt(claims: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", b(r#"{"alg":"RS256"}"#), b(claims), b("sig"))
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    #[test]
    fn the_providers_word_wins() {
        let told = Some(now() + Duration::seconds(60));
        let token = jwt(&format!(r#"{{"exp":{}}}"#, now().timestamp() + 999));
        assert_eq!(
            infer(told, &token, Some(5), now()),
            (told, ExpirySource::Provider)
        );
    }

    #[test]
    fn a_jwt_access_token_tells_its_own_expiry() {
        let exp = now().timestamp() + 1800;
        let (at, source) = infer(None, &jwt(&format!(r#"{{"exp":{exp}}}"#)), None, now());
        assert_eq!(
            (at.map(|a| a.timestamp()), source),
            (Some(exp), ExpirySource::Jwt)
        );
    }

    #[test]
    fn an_opaque_token_takes_the_lifetime_last_seen_then_the_default() {
        let (at, source) = infer(None, "opaque-token", Some(3600), now());
        assert_eq!(
            (at, source),
            (
                Some(now() + Duration::seconds(3600)),
                ExpirySource::LastSeen
            )
        );
        assert_eq!(
            infer(None, "opaque-token", None, now()),
            (None, ExpirySource::TypeDefault)
        );
    }

    #[test]
    fn a_past_or_malformed_exp_is_no_expiry() {
        let past = jwt(&format!(r#"{{"exp":{}}}"#, now().timestamp() - 10));
        assert_eq!(infer(None, &past, None, now()).1, ExpirySource::TypeDefault);
        for bad in [
            jwt(r#"{"exp":"soon"}"#),
            "a.b.c".into(),
            "a.!!.c".into(),
            jwt("[]"),
        ] {
            assert_eq!(jwt_exp(&bad), None, "{bad}");
        }
    }
}
