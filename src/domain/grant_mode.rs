//! How an account type obtains its token (`grant_mode`).

use std::fmt;

/// The grant modes this broker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantMode {
    /// Authorization code, exchanged by the broker.
    AuthorizationCode,
    /// Authorization code; the type also holds a secret for the konnector.
    AuthorizationCodeWithSecret,
    /// Implicit flow: the provider puts `access_token` on the redirect query.
    Token,
    /// Implicit flow with a `redirect_url` parameter instead of `redirect_uri`.
    TokenRedirectUrl,
    /// No OAuth at all: a static secret handed to the konnector.
    Secret,
    /// Client credentials: the broker gets tokens with the type's own credentials.
    ClientCredentials,
}

impl GrantMode {
    /// Every accepted spelling, for error messages.
    pub const ACCEPTED: &'static str =
        "authorization_code, authorization_code+secret, token, token_redirect_url, secret, client_credentials";

    /// Whether the provider puts the token itself on the redirect (implicit flows): the
    /// only modes where a redirect's `access_token` is taken.
    pub fn is_implicit(self) -> bool {
        matches!(self, GrantMode::Token | GrantMode::TokenRedirectUrl)
    }

    /// Whether a document's grant mode is one cozy-stack runs and the broker does not
    /// (Budget Insight's banking modes): such a type's requests go to cozy-stack.
    pub fn stays_on_stack(raw: &str) -> bool {
        matches!(
            raw,
            "bi_webauth" | "bi_webauth+secret" | "bi_webview" | "bi_webview+secret"
        )
    }

    /// Parses the document value; `None` for empty (a refresh-only type).
    pub fn parse(raw: &str) -> Result<Option<GrantMode>, String> {
        Ok(Some(match raw {
            "" => return Ok(None),
            "authorization_code" => GrantMode::AuthorizationCode,
            "authorization_code+secret" => GrantMode::AuthorizationCodeWithSecret,
            "token" => GrantMode::Token,
            "token_redirect_url" => GrantMode::TokenRedirectUrl,
            "secret" => GrantMode::Secret,
            "client_credentials" => GrantMode::ClientCredentials,
            raw if Self::stays_on_stack(raw) => {
                return Err(format!(
                    "`{raw}` is a Budget Insight banking mode, which this broker does not run: \
                     with `cozy.stack_url` set, its requests are handed to cozy-stack"
                ))
            }
            other => {
                return Err(format!(
                    "unknown grant mode `{other}`; expected one of {}",
                    Self::ACCEPTED
                ))
            }
        }))
    }

    /// The document spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantMode::AuthorizationCode => "authorization_code",
            GrantMode::AuthorizationCodeWithSecret => "authorization_code+secret",
            GrantMode::Token => "token",
            GrantMode::TokenRedirectUrl => "token_redirect_url",
            GrantMode::Secret => "secret",
            GrantMode::ClientCredentials => "client_credentials",
        }
    }

    /// Whether the user goes through a provider authorization page.
    pub fn has_authorization_step(self) -> bool {
        !matches!(self, GrantMode::Secret | GrantMode::ClientCredentials)
    }

    /// Whether the flow ends with a code that the token endpoint exchanges.
    pub fn uses_code(self) -> bool {
        matches!(
            self,
            GrantMode::AuthorizationCode | GrantMode::AuthorizationCodeWithSecret
        )
    }

    /// Whether the broker needs a `client_id` to start the flow.
    pub fn needs_client_id(self) -> bool {
        matches!(
            self,
            GrantMode::AuthorizationCode
                | GrantMode::AuthorizationCodeWithSecret
                | GrantMode::Token
                | GrantMode::ClientCredentials
        )
    }
}

impl fmt::Display for GrantMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_grant_mode_is_a_refresh_only_type() {
        assert_eq!(GrantMode::parse(""), Ok(None));
    }

    #[test]
    fn banking_modes_are_refused_with_a_reason() {
        let err = GrantMode::parse("bi_webview").unwrap_err();
        assert!(err.contains("Budget Insight"), "{err}");
    }

    #[test]
    fn unknown_mode_lists_accepted_ones() {
        let err = GrantMode::parse("implicit").unwrap_err();
        assert!(err.contains("authorization_code"), "{err}");
    }

    #[test]
    fn every_mode_round_trips() {
        for raw in GrantMode::ACCEPTED.split(", ") {
            assert_eq!(GrantMode::parse(raw).unwrap().unwrap().as_str(), raw);
        }
    }
}
