//! Token endpoint replies: JSON or form-encoded, loosely typed, as providers send them.

use crate::domain::account::{TokenGrant, STANDARD_TOKEN_KEYS};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

/// Why a reply yields no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The provider said no, with an OAuth `error` code.
    #[error("provider answered OAuth error `{error}`")]
    OAuth {
        /// The `error` member (`invalid_grant`, ...).
        error: String,
    },
    /// The body is neither a JSON object nor a form-encoded reply.
    #[error("provider answered something that is not an OAuth token reply")]
    NotOAuth,
    /// A well-formed reply without `access_token` or `id_token`.
    #[error("provider answered without an access token")]
    NoAccessToken,
}

/// Parses a reply body into its members, by content type, then by trying JSON and form.
pub fn parse_members(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, ReplyError> {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let text = std::str::from_utf8(body)
        .map_err(|_| ReplyError::NotOAuth)?
        .trim();
    let looks_like_json = ct.contains("json") || ct.contains("javascript") || text.starts_with('{');
    if looks_like_json {
        return match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(ReplyError::NotOAuth),
        };
    }
    let is_form_like = ct.contains("x-www-form-urlencoded")
        || ct.starts_with("text/plain")
        || (ct.is_empty() && !text.starts_with('<'));
    if is_form_like && !text.is_empty() && !text.contains(['<', ' ', '\n']) {
        let map: Map<String, Value> = url::form_urlencoded::parse(text.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        if map.contains_key("access_token")
            || map.contains_key("id_token")
            || map.contains_key("error")
        {
            return Ok(map);
        }
    }
    Err(ReplyError::NotOAuth)
}

/// The OAuth `error` code of a reply, when it has one.
pub fn oauth_error(members: &Map<String, Value>) -> Option<String> {
    members
        .get("error")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
}

/// Turns reply members into tokens, `now` being when the reply arrived.
pub fn grant_from_members(
    mut members: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<TokenGrant, ReplyError> {
    if let Some(error) = oauth_error(&members) {
        return Err(ReplyError::OAuth { error });
    }
    let text = |m: &Map<String, Value>, k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let access_token = text(&members, "access_token")
        .or_else(|| text(&members, "id_token"))
        .ok_or(ReplyError::NoAccessToken)?;
    let expires_at = members
        .get("expires_in")
        .and_then(seconds)
        .filter(|s| *s > 0)
        .map(|s| now + Duration::seconds(s));
    let refresh_token = text(&members, "refresh_token");
    let token_type = text(&members, "token_type");
    for k in STANDARD_TOKEN_KEYS {
        members.remove(k);
    }
    Ok(TokenGrant {
        access_token,
        token_type,
        expires_at,
        refresh_token,
        callback_results: members,
    })
}

/// `expires_in` as whole seconds: an integer, a float, or a numeric string; else unknown.
fn seconds(v: &Value) -> Option<i64> {
    let secs = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }?;
    // Ten years: anything longer is a provider bug, not an expiry.
    (0..=315_360_000).contains(&secs).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_000_000, 0).unwrap()
    }

    fn grant(ct: &str, body: &str) -> Result<TokenGrant, ReplyError> {
        grant_from_members(parse_members(Some(ct), body.as_bytes())?, now())
    }

    #[test]
    fn json_reply_with_integer_expiry() {
        let g = grant("application/json", r#"{"access_token":"A","refresh_token":"R","expires_in":3600,"token_type":"Bearer","scope":"s"}"#).unwrap();
        assert_eq!(g.access_token, "A");
        assert_eq!(g.expires_at, Some(now() + Duration::seconds(3600)));
        assert_eq!(
            g.callback_results,
            json!({"scope": "s"}).as_object().unwrap().clone()
        );
    }

    #[test]
    fn form_reply_with_string_expiry() {
        let g = grant(
            "application/x-www-form-urlencoded",
            "access_token=A&expires_in=60&scope=x%20y",
        )
        .unwrap();
        assert_eq!(g.expires_at, Some(now() + Duration::seconds(60)));
        assert_eq!(g.callback_results["scope"], "x y");
    }

    #[test]
    fn absent_or_garbage_expiry_is_unknown() {
        assert_eq!(
            grant("application/json", r#"{"access_token":"A"}"#)
                .unwrap()
                .expires_at,
            None
        );
        assert_eq!(
            grant(
                "application/json",
                r#"{"access_token":"A","expires_in":"soon"}"#
            )
            .unwrap()
            .expires_at,
            None
        );
    }

    #[test]
    fn id_token_stands_in_for_a_missing_access_token() {
        assert_eq!(
            grant("application/json", r#"{"id_token":"I"}"#)
                .unwrap()
                .access_token,
            "I"
        );
    }

    #[test]
    fn error_member_in_a_200_is_a_failure() {
        assert_eq!(
            grant(
                "application/json",
                r#"{"error":"invalid_grant","access_token":"A"}"#
            )
            .unwrap_err(),
            ReplyError::OAuth {
                error: "invalid_grant".into()
            }
        );
    }

    #[test]
    fn html_and_empty_replies_are_not_oauth() {
        assert_eq!(
            grant("text/html", "<html>oops</html>").unwrap_err(),
            ReplyError::NotOAuth
        );
        assert_eq!(
            grant("application/json", "").unwrap_err(),
            ReplyError::NotOAuth
        );
        assert_eq!(
            grant("application/json", "[1]").unwrap_err(),
            ReplyError::NotOAuth
        );
        assert_eq!(
            grant("text/plain", "hello world").unwrap_err(),
            ReplyError::NotOAuth
        );
    }

    #[test]
    fn reply_without_token_is_refused() {
        assert_eq!(
            grant("application/json", r#"{"token_type":"Bearer"}"#).unwrap_err(),
            ReplyError::NoAccessToken
        );
    }
}
