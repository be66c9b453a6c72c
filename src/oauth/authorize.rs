//! The authorization URL (cozy-stack's `MakeOauthStartURL`, spec §4).

use super::go_query::encode_sorted;
use crate::domain::{AccountType, GrantMode};
use url::Url;

/// What `start` knows when it builds the authorization URL.
#[derive(Debug)]
pub struct AuthorizeParams<'a> {
    /// Scope from the start query; sent only when non-empty.
    pub scope: &'a str,
    /// Redirect URI of this flow.
    pub redirect_uri: &'a str,
    /// The broker's state.
    pub state: &'a str,
    /// PKCE S256 challenge, when the type uses PKCE.
    pub code_challenge: Option<&'a str>,
    /// OpenID `login_hint` from the start request; sent when non-empty.
    pub login_hint: &'a str,
}

/// Builds the provider URL the browser is sent to; `None` for grant modes without one.
pub fn authorization_url(at: &AccountType, p: &AuthorizeParams<'_>) -> Option<Url> {
    let mode = at.grant_mode.filter(|m| m.has_authorization_step())?;
    let mut url = at.auth_endpoint.clone()?;
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let mut add = |k: &str, v: &str| pairs.push((k.to_owned(), v.to_owned()));

    // The start scope, else the type's default one.
    let scope = match (p.scope, &at.scope) {
        ("", Some(default)) => default.as_str(),
        (s, _) => s,
    };
    if !scope.is_empty() {
        add("scope", &at.provider_scope(scope));
    }
    if !at.skip_redirect_uri_on_authorize && mode != GrantMode::TokenRedirectUrl {
        add("redirect_uri", p.redirect_uri);
    }
    let client_id = at
        .client_id
        .as_ref()
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    match mode {
        GrantMode::AuthorizationCode | GrantMode::AuthorizationCodeWithSecret => {
            add("response_type", "code");
            add("client_id", &client_id);
        }
        GrantMode::Token => {
            add("response_type", "token");
            add("client_id", &client_id);
        }
        GrantMode::TokenRedirectUrl => {
            add("response_type", "token");
            // These providers do not echo `state`, so it rides on the return URL (see README).
            let mut back = Url::parse(p.redirect_uri).ok()?;
            back.query_pairs_mut().append_pair("state", p.state);
            add("redirect_url", back.as_str());
        }
        GrantMode::Secret | GrantMode::ClientCredentials => return None,
    }
    add("state", p.state);
    if !p.login_hint.is_empty() {
        add("login_hint", p.login_hint);
    }
    if let Some(challenge) = p.code_challenge {
        add("code_challenge", challenge);
        add("code_challenge_method", "S256");
    }
    for (k, v) in &at.extras {
        add(k, v);
    }
    url.set_query(Some(&encode_sorted(&pairs)));
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(extra: serde_json::Value) -> AccountType {
        let mut doc = json!({"_id": "svc", "grant_mode": "authorization_code", "client_id": "the-client-id",
                             "auth_endpoint": "https://p.example/auth?z=1"});
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        AccountType::from_document(&doc).unwrap()
    }

    fn params() -> AuthorizeParams<'static> {
        AuthorizeParams {
            scope: "the world",
            redirect_uri: "https://b.example/accounts/svc/redirect",
            state: "S",
            code_challenge: None,
            login_hint: "",
        }
    }

    #[test]
    fn code_flow_url_is_sorted_and_keeps_endpoint_query() {
        let url = authorization_url(&at(json!({})), &params()).unwrap();
        assert_eq!(
            url.as_str(),
            "https://p.example/auth?client_id=the-client-id&redirect_uri=https%3A%2F%2Fb.example%2Faccounts%2Fsvc%2Fredirect&response_type=code&scope=the+world&state=S&z=1"
        );
    }

    #[test]
    fn extras_are_added_after_existing_values() {
        let url = authorization_url(
            &at(json!({"extras": {"scope": "more", "prompt": "consent"}})),
            &params(),
        )
        .unwrap();
        assert!(
            url.as_str().contains("prompt=consent&redirect_uri="),
            "{url}"
        );
        assert!(url.as_str().contains("scope=the+world&scope=more"), "{url}");
    }

    #[test]
    fn skip_flag_drops_redirect_uri() {
        let url = authorization_url(
            &at(json!({"skip_redirect_uri_on_authorize": true})),
            &params(),
        )
        .unwrap();
        assert!(!url.as_str().contains("redirect_uri"), "{url}");
    }

    #[test]
    fn pkce_adds_the_s256_challenge() {
        let p = AuthorizeParams {
            code_challenge: Some("CH"),
            ..params()
        };
        let url = authorization_url(&at(json!({})), &p).unwrap();
        assert!(
            url.as_str()
                .contains("code_challenge=CH&code_challenge_method=S256&"),
            "{url}"
        );
    }

    #[test]
    fn secret_mode_has_no_url() {
        let t = AccountType::from_document(&json!({"_id": "s", "grant_mode": "secret"})).unwrap();
        assert!(authorization_url(&t, &params()).is_none());
    }
}
