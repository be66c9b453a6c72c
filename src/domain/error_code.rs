//! [`ErrorCode`]: every machine code the broker can send, a closed set with its meaning,
//! so that the documentation's list is generated from it and cannot miss one.

use std::fmt;

macro_rules! error_codes {
    ($($variant:ident = $name:literal: $meaning:literal;)*) => {
        /// A stable snake_case code naming a failure (JSON:API `errors[0].code`, the error
        /// page's `error:` line); chosen by the broker, never by a caller or a provider.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(
                #[doc = $meaning]
                $variant,
            )*
        }

        impl ErrorCode {
            /// Every code, in the order of the documentation.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            /// What the code means to the caller, one sentence.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }
        }
    };
}

error_codes! {
    NoCredentials = "no_credentials": "No credential in the request: send a session code or an `Authorization: Bearer` token.";
    LoginRequired = "login_required": "The page needs a Cozy session, a session code or an API token: open it from the Cozy.";
    BadCredentials = "bad_credentials": "The session code or token is unknown, expired or already used.";
    TokenNotAllowed = "token_not_allowed": "The caller's token does not cover this account type.";
    Forbidden = "forbidden": "cozy-stack's permission set of the caller does not allow the action.";
    InvalidToken = "invalid_token": "A cozy-stack JWT that is malformed, forged or of another instance.";
    ExpiredToken = "expired_token": "A cozy-stack JWT past its lifetime.";
    SessionCodeUnsupported = "session_code_unsupported": "A cozy-stack session code, but the broker has no access to cozy-stack's Redis (`cozy.redis_url`).";
    AdminDisabled = "admin_disabled": "The admin API is off: no `admin_token` is set.";
    AdminUnauthorized = "admin_unauthorized": "The admin token is missing or wrong.";
    UnknownAccountType = "unknown_account_type": "No account type of that id.";
    InvalidAccountType = "invalid_account_type": "The account type's document is malformed (stored, or sent by an operator).";
    WrongAccountType = "wrong_account_type": "The account type cannot be used on this route (a Budget Insight type on `manage`).";
    NoAuthorizationStep = "no_authorization_step": "The account type has no OAuth authorization step (`grant_mode` `secret` or empty).";
    NotClientCredentials = "not_client_credentials": "Creating an account directly needs a `client_credentials` account type.";
    NotRegistering = "not_registering": "The account type registers no client (it names no `registration_endpoint`).";
    InvalidSlug = "invalid_slug": "The `slug` of the app to return to is not an app slug.";
    InvalidLoginHint = "invalid_login_hint": "The `login_hint` is too long or holds control characters.";
    InvalidProviderUrl = "invalid_provider_url": "The `provider_url` is refused, missing for a per-account type, or given for a fixed one.";
    InvalidParameter = "invalid_parameter": "A query parameter has a value the route does not take.";
    DuplicateParameter = "duplicate_parameter": "A query parameter is given twice.";
    ParameterTooLong = "parameter_too_long": "A query parameter is longer than the route allows.";
    InvalidLimit = "invalid_limit": "The `limit` of a listing is not a number from 1 to 1000.";
    InvalidSince = "invalid_since": "The `since` of the audit listing is not an RFC 3339 instant.";
    InvalidJson = "invalid_json": "The request body is not a JSON object.";
    InvalidBody = "invalid_body": "The request body's JSON does not have the members the route needs.";
    IdMismatch = "id_mismatch": "The body's `_id` differs from the path's.";
    InvalidDomain = "invalid_domain": "The instance domain is not a host name.";
    TooLarge = "too_large": "The request is larger than the route allows.";
    RateLimited = "rate_limited": "Too many requests from this client; `Retry-After` says when to come back.";
    StateMissing = "state_missing": "The provider came back without a `state`.";
    StateTooLong = "state_too_long": "`start` was given values (the app's `state`, the instance's domain) that make a `state` over 256 characters.";
    StateUnknown = "state_unknown": "The `state` was not made by this broker's keys.";
    StateExpired = "state_expired": "The flow took longer than `flow_ttl_secs`.";
    StateReplayed = "state_replayed": "The `state` has already completed a flow.";
    StateMismatch = "state_mismatch": "The `state` belongs to another account type than the redirect's.";
    FlowBindingMismatch = "flow_binding_mismatch": "The browser back from the provider is not the one that started the flow.";
    IssuerMismatch = "issuer_mismatch": "The provider's `iss` differs from the one the flow expects (RFC 9207).";
    CodeMissing = "code_missing": "The provider came back without a `code` (nor an `error`).";
    UnknownInstance = "unknown_instance": "No instance of that domain lives at this broker or host.";
    Moved = "moved": "The instance moved to another domain; the answer redirects there.";
    NotFound = "not_found": "The account, client or document named does not exist.";
    NotRefreshable = "not_refreshable": "The account cannot be refreshed; the detail says why.";
    OauthRefreshInvalidToken = "oauth_refresh_invalid_token": "The provider refused the refresh token: the user must reconnect (cozy-stack's code).";
    ProviderError = "provider_error": "The provider failed or refused the request.";
    ProviderTimeout = "provider_timeout": "The provider did not answer in time.";
    StackUnavailable = "stack_unavailable": "cozy-stack (`cozy.stack_url`), which runs the account type, could not be reached.";
    RegistrationFailed = "registration_failed": "Registering a client at the provider failed (RFC 7591).";
    NotRegistered = "not_registered": "No client is registered under that id.";
    NotManageable = "not_manageable": "The registered client has no management URL or token (RFC 7592).";
    KeyUnavailable = "key_unavailable": "A sealed secret does not open with the configured `encryption_keys`.";
    StoreUnavailable = "store_unavailable": "The store failed or did not answer.";
    Conflict = "conflict": "The target exists or changed meanwhile, or another broker is refreshing the account.";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_explained() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert!(names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        assert!(ErrorCode::ALL.iter().all(|c| c.meaning().ends_with('.')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}
