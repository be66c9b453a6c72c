//! cozy-stack's JWTs (`pkg/crypto/jwt.go`, `model/permission/claims.go`): HMAC-signed with
//! the key of their audience, no `exp`, a lifetime counted from `iat` by audience.

use super::keys::InstanceKeys;
use crate::domain::Timestamp;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::time::Duration;

/// Who a token was made for (`aud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A web app or a service (`app`).
    App,
    /// A konnector run (`konn`).
    Konnector,
    /// An OAuth client's access token (`access`).
    Access,
    /// The `cozy-stack` command line (`cli`).
    Cli,
}

impl Audience {
    fn parse(raw: &str) -> Option<Audience> {
        match raw {
            "app" => Some(Audience::App),
            "konn" => Some(Audience::Konnector),
            "access" => Some(Audience::Access),
            "cli" => Some(Audience::Cli),
            _ => None,
        }
    }
}

/// Why a token is refused: cozy-stack answers both with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Malformed, forged, of another instance or of an audience these routes do not take.
    #[error("Invalid JWT token")]
    Invalid,
    /// Past its lifetime.
    #[error("Expired token")]
    Expired,
}

/// The checked claims of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CozyClaims {
    /// Its audience.
    pub audience: Audience,
    /// The app slug, konnector slug or OAuth client id.
    pub subject: String,
    /// The issuer (the instance's domain or old domain).
    pub issuer: String,
    /// When it was issued, unix seconds.
    pub issued_at: i64,
    /// The scope string (`access` and `cli` tokens).
    pub scope: String,
    /// The session of a web app token.
    pub session_id: Option<String>,
    /// The Bitwarden security stamp the token was made under.
    pub stamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    stamp: Option<String>,
}

/// Whether a bearer token has the shape of a JWT (three base64url parts): cozy tokens
/// do, the broker's own API tokens (hex) do not.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The single audience of a token, read before its signature is checked (the key depends
/// on it, as in cozy-stack's key function).
fn audience_of(token: &str) -> Result<Audience, JwtError> {
    let unverified = jsonwebtoken::dangerous::insecure_decode::<RawClaims>(token)
        .map_err(|_| JwtError::Invalid)?;
    match unverified.claims.aud {
        Some(OneOrMany::One(a)) => Audience::parse(&a),
        Some(OneOrMany::Many(v)) if v.len() == 1 => Audience::parse(&v[0]),
        _ => None,
    }
    .ok_or(JwtError::Invalid)
}

/// How long a token of `audience` lives after its `iat` (`claims.go`); `None`: for ever.
pub fn lifetime(audience: Audience, with_session: bool) -> Option<Duration> {
    const MINUTE: u64 = 60;
    Some(Duration::from_secs(match audience {
        Audience::App if with_session => 24 * 60 * MINUTE,
        Audience::App | Audience::Konnector | Audience::Cli => 30 * MINUTE,
        Audience::Access => 7 * 24 * 60 * MINUTE,
    }))
}

/// Checks a token of the instance whose keys and issuers (domain, old domain) are given,
/// at `now`: the signature with its audience's key (any HMAC algorithm), one audience,
/// the issuer, `exp`/`nbf` when present, and the lifetime from `iat`.
pub fn verify(
    token: &str,
    keys: &InstanceKeys,
    issuers: &[&str],
    now: Timestamp,
) -> Result<CozyClaims, JwtError> {
    let audience = audience_of(token)?;
    let key = match audience {
        Audience::App | Audience::Konnector => keys.session_key(),
        Audience::Access => keys.oauth.clone(),
        Audience::Cli => keys.cli.clone(),
    };
    if key.is_empty() {
        return Err(JwtError::Invalid);
    }
    let mut validation = Validation::new(Algorithm::HS512);
    validation.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    // Checked below on the broker's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let raw =
        jsonwebtoken::decode::<RawClaims>(token, &DecodingKey::from_secret(&key), &validation)
            .map_err(|_| JwtError::Invalid)?
            .claims;
    let issuer = raw.iss.unwrap_or_default();
    if !issuers.contains(&issuer.as_str()) {
        return Err(JwtError::Invalid);
    }
    // cozy-stack dereferences a missing `iat` (a crash there): refuse it here.
    let issued_at = raw.iat.ok_or(JwtError::Invalid)?;
    let now_secs = now.unix_secs();
    if raw.exp.is_some_and(|exp| now_secs > exp) {
        return Err(JwtError::Expired);
    }
    if raw.nbf.is_some_and(|nbf| now_secs < nbf) {
        return Err(JwtError::Invalid);
    }
    let session_id = raw.session_id.filter(|s| !s.is_empty());
    if let Some(life) = lifetime(audience, session_id.is_some()) {
        if now_secs > issued_at.saturating_add(life.as_secs() as i64) {
            return Err(JwtError::Expired);
        }
    }
    Ok(CozyClaims {
        audience,
        subject: raw.sub.unwrap_or_default(),
        issuer,
        issued_at,
        scope: raw.scope.unwrap_or_default(),
        session_id,
        stamp: raw.stamp.filter(|s| !s.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const HOME: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhbGljZS5jb3p5LmV4YW1wbGUiLCJzdWIiOiJob21lIiwiYXVkIjpbImFwcCJdLCJpYXQiOjE3MDAwMDAwMDAsInNlc3Npb25faWQiOiI1ZDJmNmMxZTBhNGI0YzNkOWU4ZjdhNmI1YzRkM2UyZiJ9.FJLHbdImu_SBJv0w1RhxtKQ8xG1w96Pr0-gX3cbm47O_1SxahGnP3SKa8r48NKFwgco5yP-2vnZBKWQlUZ2_CQ";
    const KONN: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhbGljZS5jb3p5LmV4YW1wbGUiLCJzdWIiOiJnb29nbGUiLCJhdWQiOlsia29ubiJdLCJpYXQiOjE3MDAwMDAwMDB9.Rwhj69dAS4Im9brs3NU-Usr7PDtmZOH8IDqkcY_xKXedB9pxVrs3Tq9c6HrUqCpKs9XlJ-iCbIZViYoPQfP-Jg";
    const ISS: &[&str] = &["alice.cozy.example"];

    fn keys() -> InstanceKeys {
        InstanceKeys {
            session: (0u8..64).collect(),
            oauth: (64u8..192).collect(),
            cli: (128u8..=255).collect(),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    fn sign(alg: Algorithm, key: &[u8], claims: serde_json::Value) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    #[test]
    fn the_spec_konnector_token_verifies_within_30_minutes() {
        let c = verify(KONN, &keys(), ISS, at(1_700_000_000 + 1800)).unwrap();
        assert_eq!(
            (c.audience, c.subject.as_str(), c.session_id),
            (Audience::Konnector, "google", None)
        );
        assert_eq!(
            verify(KONN, &keys(), ISS, at(1_700_000_000 + 1801)),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn the_spec_home_token_carries_its_session_and_lives_a_day() {
        let c = verify(HOME, &keys(), ISS, at(1_700_000_000 + 86_400)).unwrap();
        assert_eq!(c.audience, Audience::App);
        assert_eq!(
            c.session_id.as_deref(),
            Some("5d2f6c1e0a4b4c3d9e8f7a6b5c4d3e2f")
        );
        assert_eq!(
            verify(HOME, &keys(), ISS, at(1_700_000_000 + 86_401)),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn a_foreign_issuer_is_refused() {
        assert_eq!(
            verify(KONN, &keys(), &["bob.cozy.example"], at(1_700_000_000)),
            Err(JwtError::Invalid)
        );
    }

    #[test]
    fn the_old_domain_is_an_accepted_issuer() {
        let old = sign(
            Algorithm::HS256,
            &keys().session_key(),
            json!({"iss": "old.example", "sub": "google", "aud": "konn", "iat": 1_700_000_000}),
        );
        assert!(verify(
            &old,
            &keys(),
            &["alice.cozy.example", "old.example"],
            at(1_700_000_000)
        )
        .is_ok());
    }

    #[test]
    fn two_audiences_are_refused() {
        let t = sign(
            Algorithm::HS512,
            &keys().session_key(),
            json!({"iss": ISS[0], "sub": "google", "aud": ["app", "konn"], "iat": 1_700_000_000}),
        );
        assert_eq!(
            verify(&t, &keys(), ISS, at(1_700_000_000)),
            Err(JwtError::Invalid)
        );
    }

    #[test]
    fn each_audience_needs_its_own_key() {
        let claims =
            |aud: &str| json!({"iss": ISS[0], "sub": "x", "aud": [aud], "iat": 1_700_000_000});
        let k = keys();
        assert!(verify(
            &sign(Algorithm::HS384, &k.oauth, claims("access")),
            &k,
            ISS,
            at(1_700_000_000)
        )
        .is_ok());
        assert!(verify(
            &sign(Algorithm::HS512, &k.cli, claims("cli")),
            &k,
            ISS,
            at(1_700_000_000)
        )
        .is_ok());
        // A konnector token signed with the OAuth secret is a forgery.
        assert_eq!(
            verify(
                &sign(Algorithm::HS512, &k.oauth, claims("konn")),
                &k,
                ISS,
                at(1_700_000_000)
            ),
            Err(JwtError::Invalid)
        );
        // A token signed with the raw session secret (no `2:`) too.
        assert_eq!(
            verify(
                &sign(Algorithm::HS512, &k.session, claims("konn")),
                &k,
                ISS,
                at(1_700_000_000)
            ),
            Err(JwtError::Invalid)
        );
    }

    #[test]
    fn other_audiences_and_missing_iat_are_refused() {
        let k = keys();
        for claims in [
            json!({"iss": ISS[0], "sub": "x", "aud": ["refresh"], "iat": 1_700_000_000}),
            json!({"iss": ISS[0], "sub": "x", "aud": ["share"], "iat": 1_700_000_000}),
            json!({"iss": ISS[0], "sub": "x", "aud": ["konn"]}),
            json!({"iss": ISS[0], "sub": "x", "iat": 1_700_000_000}),
        ] {
            let t = sign(Algorithm::HS512, &k.session_key(), claims.clone());
            assert_eq!(
                verify(&t, &k, ISS, at(1_700_000_000)),
                Err(JwtError::Invalid),
                "{claims}"
            );
        }
    }

    #[test]
    fn an_exp_in_the_past_expires_the_token_early() {
        let t = sign(
            Algorithm::HS512,
            &keys().session_key(),
            json!({"iss": ISS[0], "sub": "g", "aud": ["konn"], "iat": 1_700_000_000, "exp": 1_700_000_010}),
        );
        assert_eq!(
            verify(&t, &keys(), ISS, at(1_700_000_011)),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn unsigned_and_garbled_tokens_are_refused() {
        let none = format!("eyJhbGciOiJub25lIn0.{}.", KONN.split('.').nth(1).unwrap());
        for t in [none.as_str(), "a.b.c", "", "abc", &KONN[..KONN.len() - 2]] {
            assert_eq!(
                verify(t, &keys(), ISS, at(1_700_000_000)),
                Err(JwtError::Invalid),
                "{t}"
            );
        }
    }

    #[test]
    fn jwts_are_told_from_broker_tokens() {
        assert!(looks_like_jwt(KONN));
        assert!(!looks_like_jwt(&"ab12".repeat(16)));
    }
}
