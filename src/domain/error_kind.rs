//! The one classification of failures. Every error type of the crate says which
//! [`ErrorKind`] it is; the HTTP status, the redirect's `error=`, metric labels and the
//! refresher's retry-or-drop decision are all derived from the kind, in one place each.

/// What kind of failure an error is, independent of how it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// What the request names does not exist.
    NotFound,
    /// The request is malformed or cannot apply to what it names.
    Invalid,
    /// No credential, or a wrong one where one is required.
    Unauthenticated,
    /// A credential that does not allow this.
    Forbidden,
    /// The target exists already or changed meanwhile.
    Conflict,
    /// Someone else holds the work for longer than we can wait.
    Busy,
    /// The store cannot be reached or failed.
    Unavailable,
    /// A provider did not answer in time.
    UpstreamTimeout,
    /// A provider failed or answered garbage.
    Upstream,
    /// A provider (or the user at the provider) refused with an OAuth error.
    Refused,
    /// The user's grant is dead at the provider: only a reconnection helps.
    GrantRevoked,
    /// Operator configuration is wrong (an invalid account type, a missing setting).
    Misconfigured,
    /// A sealed secret cannot be opened with the configured keys.
    KeyUnavailable,
    /// Too many requests from one client.
    RateLimited,
    /// A request larger than allowed.
    TooLarge,
    /// What the request names lives elsewhere now (an instance's old domain).
    Moved,
}

impl ErrorKind {
    /// Every kind, for exhaustive checks (metrics, docs).
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::NotFound,
        ErrorKind::Invalid,
        ErrorKind::Unauthenticated,
        ErrorKind::Forbidden,
        ErrorKind::Conflict,
        ErrorKind::Busy,
        ErrorKind::Unavailable,
        ErrorKind::UpstreamTimeout,
        ErrorKind::Upstream,
        ErrorKind::Refused,
        ErrorKind::GrantRevoked,
        ErrorKind::Misconfigured,
        ErrorKind::KeyUnavailable,
        ErrorKind::RateLimited,
        ErrorKind::TooLarge,
        ErrorKind::Moved,
    ];

    /// A stable snake_case name: the only text metric labels take from an error.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Busy => "busy",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Refused => "refused",
            ErrorKind::GrantRevoked => "grant_revoked",
            ErrorKind::Misconfigured => "misconfigured",
            ErrorKind::KeyUnavailable => "key_unavailable",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Moved => "moved",
        }
    }

    /// Whether trying the same thing again later cannot help: the account's data or the
    /// request itself is at fault, not a passing condition or operator configuration.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            ErrorKind::NotFound | ErrorKind::Invalid | ErrorKind::GrantRevoked
        )
    }

    /// Whether the broker itself (its store, its keys, its configuration) is at fault.
    pub fn is_server_fault(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable | ErrorKind::Misconfigured | ErrorKind::KeyUnavailable
        )
    }
}

/// An error that knows its kind and its stable machine code.
pub trait Classified {
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;
    /// A stable snake_case code naming the failure more precisely than its kind (the
    /// JSON:API `code`, the error page's `error:` line); chosen by the broker, never by a
    /// caller or a provider.
    fn code(&self) -> super::ErrorCode;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn only_the_account_or_the_request_at_fault_is_permanent() {
        let permanent: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.is_permanent())
            .collect();
        assert_eq!(
            permanent,
            [
                ErrorKind::NotFound,
                ErrorKind::Invalid,
                ErrorKind::GrantRevoked
            ]
        );
    }
}
