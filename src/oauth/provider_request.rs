//! Requests to a token endpoint, shaped by the account type's `token_mode` (spec §5.1, §6).

use super::go_query::encode_sorted;
use crate::domain::{AccountType, TokenMode};
use base64::Engine;
use serde_json::Value;
use url::Url;

/// HTTP method of a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `get` token mode.
    Get,
    /// Every other mode.
    Post,
}

/// A fully built token request; `Debug` hides its credentials.
#[derive(Clone)]
pub struct ProviderRequest {
    /// GET or POST.
    pub method: Method,
    /// Endpoint, with the parameters in the query for `get` mode.
    pub url: Url,
    /// Headers to send (`Accept`, `Content-Type`, `Authorization`).
    pub headers: Vec<(&'static str, String)>,
    /// Body, for POST modes.
    pub body: Option<Vec<u8>>,
}

impl std::fmt::Debug for ProviderRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.url.clone();
        shown.set_query(None);
        f.debug_struct("ProviderRequest")
            .field("method", &self.method)
            .field("url", &shown.as_str())
            .finish_non_exhaustive()
    }
}

/// What the code exchange sends besides the client credentials.
#[derive(Debug)]
pub struct CodeExchange<'a> {
    /// The authorization code.
    pub code: &'a oauth2::AuthorizationCode,
    /// The redirect URI of the flow.
    pub redirect_uri: &'a str,
    /// The broker's state (dropped with `skip_state_on_token`).
    pub state: &'a str,
    /// The app's nonce; sent when non-empty, as cozy-stack does.
    pub nonce: &'a str,
    /// PKCE verifier, when the flow used a challenge.
    pub code_verifier: Option<&'a str>,
}

/// The code exchange request; `None` when the type has no token endpoint.
pub fn code_exchange(at: &AccountType, x: &CodeExchange<'_>) -> Option<ProviderRequest> {
    let mut params = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", x.code.secret().clone()),
        ("redirect_uri", x.redirect_uri.to_owned()),
    ];
    if !at.skip_state_on_token {
        params.push(("state", x.state.to_owned()));
    }
    if !x.nonce.is_empty() {
        params.push(("nonce", x.nonce.to_owned()));
    }
    if let Some(v) = x.code_verifier {
        params.push(("code_verifier", v.to_owned()));
    }
    build(at, params)
}

/// The refresh request; `None` when the type has no token endpoint.
pub fn refresh(at: &AccountType, refresh_token: &oauth2::RefreshToken) -> Option<ProviderRequest> {
    let params = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.secret().clone()),
    ];
    build(at, params)
}

/// A client credentials token request; `None` when the type has no token endpoint.
pub fn client_credentials(at: &AccountType) -> Option<ProviderRequest> {
    let mut params = vec![("grant_type", "client_credentials".to_owned())];
    if let Some(scope) = &at.scope {
        params.push(("scope", at.provider_scope(scope)));
    }
    build(at, params)
}

/// The RFC 7009 revocation request; `None` when the type has no revocation endpoint.
pub fn revocation(at: &AccountType, token: &str, hint: &'static str) -> Option<ProviderRequest> {
    let params = vec![
        ("token", token.to_owned()),
        ("token_type_hint", hint.to_owned()),
    ];
    build_for(at, at.revocation_endpoint.clone()?, form_mode(at), params)
}

/// The RFC 7662 introspection request; `None` when the type has no introspection endpoint.
pub fn introspection(at: &AccountType, token: &str) -> Option<ProviderRequest> {
    let params = vec![
        ("token", token.to_owned()),
        ("token_type_hint", "access_token".to_owned()),
    ];
    build_for(
        at,
        at.introspection_endpoint.clone()?,
        form_mode(at),
        params,
    )
}

/// RFC 7009 and 7662 requests are form POSTs, authenticated like the token endpoint:
/// `get` and `json` modes apply to token endpoints only.
fn form_mode(at: &AccountType) -> TokenMode {
    if at.token_mode.is_basic() {
        at.token_mode
    } else {
        TokenMode::Form
    }
}

fn build(at: &AccountType, params: Vec<(&'static str, String)>) -> Option<ProviderRequest> {
    build_for(at, at.token_endpoint.clone()?, at.token_mode, params)
}

fn build_for(
    at: &AccountType,
    endpoint: Url,
    mode: TokenMode,
    mut params: Vec<(&'static str, String)>,
) -> Option<ProviderRequest> {
    let client_id = at
        .client_id
        .as_ref()
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    let client_secret = at
        .client_secret
        .as_ref()
        .map(|c| c.secret().clone())
        .unwrap_or_default();
    let mut headers = vec![("Accept", "application/json".to_owned())];
    if mode.is_basic() {
        // cozy-stack sends them raw; RFC 6749 §2.3.1 form-encodes each part first, which
        // `basic_rfc6749` asks for.
        let pair = if mode == TokenMode::BasicRfc6749 {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            format!("{}:{}", enc(&client_id), enc(&client_secret))
        } else {
            format!("{client_id}:{client_secret}")
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
        headers.push(("Authorization", format!("Basic {b64}")));
    } else {
        params.push(("client_id", client_id));
        params.push(("client_secret", client_secret));
    }
    let req = match mode {
        TokenMode::Form | TokenMode::Basic | TokenMode::BasicRfc6749 => {
            headers.push((
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ));
            ProviderRequest {
                method: Method::Post,
                url: endpoint,
                headers,
                body: Some(encode_sorted(&params).into_bytes()),
            }
        }
        TokenMode::Json => {
            headers.push(("Content-Type", "application/json".to_owned()));
            let obj: serde_json::Map<String, serde_json::Value> = params
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into()))
                .collect();
            ProviderRequest {
                method: Method::Post,
                url: endpoint,
                headers,
                body: Some(Value::Object(obj).to_string().into_bytes()),
            }
        }
        TokenMode::Get => {
            let mut url = endpoint;
            let mut all: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            all.extend(params.into_iter().map(|(k, v)| (k.to_owned(), v)));
            url.set_query(Some(&encode_sorted(&all)));
            ProviderRequest {
                method: Method::Get,
                url,
                headers,
                body: None,
            }
        }
    };
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(mode: &str) -> AccountType {
        AccountType::from_document(
            &json!({"_id": "t", "grant_mode": "authorization_code", "client_id": "id:x",
            "client_secret": "s&cr t", "auth_endpoint": "https://p.example/a",
            "token_endpoint": "https://p.example/t?v=1", "token_mode": mode}),
        )
        .unwrap()
    }

    fn exchange(at: &AccountType) -> ProviderRequest {
        let code = oauth2::AuthorizationCode::new("C".into());
        code_exchange(
            at,
            &CodeExchange {
                code: &code,
                redirect_uri: "https://b/r",
                state: "S",
                nonce: "N",
                code_verifier: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn form_mode_posts_sorted_form_with_credentials() {
        let r = exchange(&at("form"));
        assert_eq!(r.method, Method::Post);
        assert_eq!(
            String::from_utf8(r.body.unwrap()).unwrap(),
            "client_id=id%3Ax&client_secret=s%26cr+t&code=C&grant_type=authorization_code&nonce=N&redirect_uri=https%3A%2F%2Fb%2Fr&state=S"
        );
    }

    #[test]
    fn basic_mode_moves_credentials_to_the_header() {
        // Raw as cozy-stack sends them; form-encoded first with `basic_rfc6749`.
        for (mode, pair) in [
            ("basic", "id:x:s&cr t"),
            ("basic_rfc6749", "id%3Ax:s%26cr+t"),
        ] {
            let r = exchange(&at(mode));
            let auth = r
                .headers
                .iter()
                .find(|(k, _)| *k == "Authorization")
                .unwrap();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.1.trim_start_matches("Basic "))
                .unwrap();
            assert_eq!(String::from_utf8(decoded).unwrap(), pair, "{mode}");
            assert!(!String::from_utf8(r.body.unwrap())
                .unwrap()
                .contains("client_"));
        }
    }

    #[test]
    fn get_mode_merges_parameters_into_the_query() {
        let r = exchange(&at("get"));
        assert_eq!(r.method, Method::Get);
        assert!(r.body.is_none());
        assert!(
            r.url
                .as_str()
                .starts_with("https://p.example/t?client_id=id%3Ax&"),
            "{}",
            r.url
        );
        assert!(r.url.as_str().ends_with("&state=S&v=1"), "{}", r.url);
    }

    #[test]
    fn json_mode_posts_a_json_object() {
        let r = refresh(&at("json"), &oauth2::RefreshToken::new("R".into())).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"grant_type": "refresh_token", "refresh_token": "R",
                               "client_id": "id:x", "client_secret": "s&cr t"})
        );
    }

    #[test]
    fn skip_state_on_token_drops_state() {
        let mut t = at("form");
        t.skip_state_on_token = true;
        assert!(!String::from_utf8(exchange(&t).body.unwrap())
            .unwrap()
            .contains("state="));
    }

    #[test]
    fn revocation_is_a_form_post_with_a_hint() {
        let mut t = at("get");
        t.revocation_endpoint = Some(Url::parse("https://p.example/revoke").unwrap());
        let r = revocation(&t, "R", "refresh_token").unwrap();
        assert_eq!(r.method, Method::Post);
        assert_eq!(
            String::from_utf8(r.body.unwrap()).unwrap(),
            "client_id=id%3Ax&client_secret=s%26cr+t&token=R&token_type_hint=refresh_token"
        );
    }

    #[test]
    fn debug_hides_query_and_body() {
        let s = format!("{:?}", exchange(&at("get")));
        assert!(!s.contains("cr") && !s.contains("code"), "{s}");
    }
}
