//! [`Error`]: every way a use case can fail, each variant classified once (kind and code).

use super::registrations::RegistrationError;
use crate::domain::cozy::JwtError;
use crate::domain::provider_url::ProviderUrlError;
use crate::domain::sealed::SealError;
use crate::domain::ErrorCode;
use crate::domain::{AccountTypeError, Classified, ErrorKind, StateRejection};
use crate::oauth::ProviderError;
use crate::store::account_types::{LookupError, WriteError};
use crate::store::flow_states::ConsumeError;
use crate::store::instances::AddError;
use crate::store::StoreError;

/// What went wrong in a use case, independent of how it is shown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential was presented.
    #[error("no credential in the request: send a session_code or an Authorization: Bearer token")]
    NoCredentials,
    /// `start` without a session code or token.
    #[error("this page needs a session code or an API token: open it from your Cozy")]
    LoginRequired,
    /// The credential is unknown, expired or already used.
    #[error("the session code or token is invalid, expired or already used")]
    BadCredentials,
    /// The caller's token does not cover this account type.
    #[error("this token does not allow account type `{0}`")]
    TypeNotAllowed(String),
    /// The admin API is off.
    #[error("the admin API is disabled: set BROKER__ADMIN_TOKEN to enable it")]
    AdminDisabled,
    /// Wrong or missing admin token.
    #[error("admin token missing or wrong")]
    AdminUnauthorized,
    /// The account type cannot be used.
    #[error(transparent)]
    AccountType(#[from] LookupError),
    /// The account type has no authorization step (`secret`, or no grant mode).
    #[error(
        "account type `{0}` has no OAuth authorization step (its grant_mode is `secret` or empty)"
    )]
    NoAuthorizationStep(String),
    /// A malformed parameter.
    #[error("{detail}")]
    BadRequest {
        /// Stable error code.
        code: crate::domain::ErrorCode,
        /// What to fix.
        detail: String,
    },
    /// Too many requests from one client.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next request is allowed.
        retry_after_secs: u64,
    },
    /// A request larger than allowed.
    #[error("{0}")]
    TooLarge(&'static str),
    /// The presented state is refused.
    #[error(transparent)]
    State(#[from] StateRejection),
    /// The instance is not known here.
    #[error("instance `{0}` is not known to this broker")]
    UnknownInstance(String),
    /// A document the request names does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An operator's account type was refused.
    #[error("invalid account type: {0}")]
    InvalidDocument(#[from] AccountTypeError),
    /// The target exists or changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// The account cannot be refreshed; the reason says why.
    #[error("{0}")]
    NotRefreshable(&'static str),
    /// A sealed secret cannot be opened with the configured keys.
    #[error("{what} cannot be opened: {error}")]
    Sealed {
        /// What was sealed.
        what: &'static str,
        /// Why it cannot be opened.
        error: SealError,
    },
    /// The provider says the refresh token is dead: the user must reconnect.
    #[error("OAuth refresh token is invalid or expired; reconnect account.")]
    RefreshTokenRevoked,
    /// Another broker process holds the work for longer than a refresh can take.
    #[error("another broker process is refreshing this account; try again")]
    Busy,
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `provider_url` is refused.
    #[error(transparent)]
    ProviderUrl(#[from] ProviderUrlError),
    /// A per-account type used without a provider.
    #[error("account type `{0}` connects to a server of the user's choice: give provider_url")]
    NoProvider(String),
    /// A provider given for a type that has a fixed one.
    #[error("account type `{0}` has a fixed provider and takes no provider_url")]
    FixedProvider(String),
    /// Registering or managing a client failed.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    /// The request's host is an instance's old domain; the instance lives here now.
    #[error("this instance moved to `{0}`")]
    Moved(String),
    /// A cozy credential was sent to a host that is no instance.
    #[error("no instance lives at this host")]
    UnknownHost,
    /// Start, reconnect or manage without a cozy session, a session code or a token.
    #[error("you are not logged in to your Cozy: open this page from your Cozy")]
    NotLoggedIn,
    /// A cozy-stack session code, but the broker has no access to cozy-stack's Redis.
    #[error(
        "this broker cannot check cozy-stack's session codes: its operator must give it \
         cozy-stack's Redis (cozy.redis_url); log in to your Cozy in this browser instead"
    )]
    SessionCodeNeedsRedis,
    /// A cozy-stack JWT that is malformed, forged, of another instance or expired.
    #[error(transparent)]
    CozyToken(#[from] JwtError),
    /// A cozy-stack permission set that does not allow the action.
    #[error("Forbidden")]
    NotAllowed,
    /// cozy-stack, which runs this account type, could not be reached.
    #[error("cozy-stack, which runs this account type, cannot be reached: {0}")]
    StackUnavailable(String),
    /// The failure of work this caller shared with others (one refresh for many callers).
    #[error(transparent)]
    Joined(std::sync::Arc<Error>),
}

impl From<ConsumeError> for Error {
    fn from(e: ConsumeError) -> Self {
        match e {
            ConsumeError::Rejected(r) => Error::State(r),
            ConsumeError::Store(s) => Error::Store(s),
        }
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Invalid(i) => Error::InvalidDocument(i),
            WriteError::Conflict => Error::Conflict(e.to_string()),
            WriteError::Store(s) => Error::Store(s),
        }
    }
}

impl From<AddError> for Error {
    fn from(e: AddError) -> Self {
        match e {
            AddError::Exists(d) => Error::Conflict(format!("instance `{d}` already exists")),
            AddError::Store(s) => Error::Store(s),
        }
    }
}

impl Error {
    /// The failure itself, out of the [`Error::Joined`] it may have been shared in.
    pub(crate) fn unjoined(&self) -> &Error {
        match self {
            Error::Joined(e) => e.unjoined(),
            other => other,
        }
    }
}

impl Classified for Error {
    fn kind(&self) -> ErrorKind {
        use Error::*;
        match self {
            NoCredentials | AdminUnauthorized => ErrorKind::Unauthenticated,
            LoginRequired | BadCredentials | AdminDisabled | TypeNotAllowed(_) => {
                ErrorKind::Forbidden
            }
            NotLoggedIn | SessionCodeNeedsRedis | NotAllowed => ErrorKind::Forbidden,
            StackUnavailable(_) => ErrorKind::Upstream,
            // cozy-stack answers 400 to a bad or expired token.
            CozyToken(_) => ErrorKind::Invalid,
            Moved(_) => ErrorKind::Moved,
            UnknownHost => ErrorKind::NotFound,
            NoAuthorizationStep(_) | BadRequest { .. } | NotRefreshable(_) => ErrorKind::Invalid,
            NoProvider(_) | FixedProvider(_) => ErrorKind::Invalid,
            RateLimited { .. } => ErrorKind::RateLimited,
            TooLarge(_) => ErrorKind::TooLarge,
            UnknownInstance(_) | NotFound(_) => ErrorKind::NotFound,
            Conflict(_) => ErrorKind::Conflict,
            RefreshTokenRevoked => ErrorKind::GrantRevoked,
            Busy => ErrorKind::Busy,
            AccountType(e) => e.kind(),
            State(e) => e.kind(),
            InvalidDocument(e) => e.kind(),
            Sealed { error, .. } => error.kind(),
            Provider(e) => e.kind(),
            Store(e) => e.kind(),
            ProviderUrl(e) => e.kind(),
            Registration(e) => e.kind(),
            Joined(e) => e.kind(),
        }
    }

    fn code(&self) -> ErrorCode {
        use Error::*;
        match self {
            NoCredentials => ErrorCode::NoCredentials,
            LoginRequired => ErrorCode::LoginRequired,
            BadCredentials => ErrorCode::BadCredentials,
            AdminDisabled => ErrorCode::AdminDisabled,
            TypeNotAllowed(_) => ErrorCode::TokenNotAllowed,
            AdminUnauthorized => ErrorCode::AdminUnauthorized,
            NoAuthorizationStep(_) => ErrorCode::NoAuthorizationStep,
            BadRequest { code, .. } => *code,
            RateLimited { .. } => ErrorCode::RateLimited,
            TooLarge(_) => ErrorCode::TooLarge,
            UnknownInstance(_) => ErrorCode::UnknownInstance,
            NotFound(_) => ErrorCode::NotFound,
            Conflict(_) => ErrorCode::Conflict,
            NotRefreshable(_) => ErrorCode::NotRefreshable,
            // cozy-stack's code: konnectors test for it.
            RefreshTokenRevoked => ErrorCode::OauthRefreshInvalidToken,
            // As before the kinds: a busy refresh answers 409 `conflict`.
            Busy => ErrorCode::Conflict,
            NoProvider(_) | FixedProvider(_) => ErrorCode::InvalidProviderUrl,
            AccountType(e) => e.code(),
            State(e) => e.code(),
            InvalidDocument(e) => e.code(),
            Sealed { error, .. } => error.code(),
            Provider(e) => e.code(),
            Store(e) => e.code(),
            ProviderUrl(e) => e.code(),
            Registration(e) => e.code(),
            Joined(e) => e.code(),
            Moved(_) => ErrorCode::Moved,
            UnknownHost => ErrorCode::UnknownInstance,
            NotLoggedIn => ErrorCode::LoginRequired,
            SessionCodeNeedsRedis => ErrorCode::SessionCodeUnsupported,
            CozyToken(JwtError::Invalid) => ErrorCode::InvalidToken,
            CozyToken(JwtError::Expired) => ErrorCode::ExpiredToken,
            NotAllowed => ErrorCode::Forbidden,
            StackUnavailable(_) => ErrorCode::StackUnavailable,
        }
    }
}

impl Error {
    /// The `error=` a flow's app is told: a provider's own OAuth code when it is a sane
    /// one (the app may act on `access_denied`), else the broker's word for the kind.
    pub(crate) fn redirect_code(&self) -> String {
        let provider = match self {
            Error::Provider(p) | Error::Registration(RegistrationError::Provider(p)) => Some(p),
            _ => None,
        };
        if let Some(ProviderError::OAuth { error, .. }) = provider {
            if crate::oauth::provider::is_sane_code(error) {
                return error.clone();
            }
        }
        match self.kind() {
            ErrorKind::Invalid => "invalid_request",
            _ => "server_error",
        }
        .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_refresh_token_matches_cozy_stack() {
        let e = Error::RefreshTokenRevoked;
        assert_eq!(e.code(), "oauth_refresh_invalid_token");
        assert_eq!(
            e.to_string(),
            "OAuth refresh token is invalid or expired; reconnect account."
        );
    }

    #[test]
    fn a_store_outage_seen_through_any_path_is_unavailable_not_permanent() {
        let down = StoreError::Unavailable("cut".into());
        let through = [
            Error::Store(down.clone()),
            Error::AccountType(LookupError::Store(down.clone())),
            Error::Registration(RegistrationError::Store(down.clone())),
            Error::Registration(RegistrationError::AccountType(LookupError::Store(down))),
        ];
        for e in through {
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e:?}");
            assert!(!e.kind().is_permanent());
        }
    }

    #[test]
    fn the_app_is_told_sane_provider_codes_only() {
        let refused = |error: &str| {
            Error::Provider(ProviderError::OAuth {
                status: 400,
                error: error.into(),
            })
        };
        assert_eq!(refused("invalid_grant").redirect_code(), "invalid_grant");
        assert_eq!(refused("<script>").redirect_code(), "server_error");
        assert_eq!(
            Error::Store(StoreError::Conflict).redirect_code(),
            "server_error"
        );
    }
}
