//! Per-account providers: the `provider_url` a flow is started with (another Cozy
//! instance, say), and the patterns an account type allows.
//!
//! The broker sends client credentials and users to this URL, so it must be a public
//! https origin the operator allowed: no http, no IP literal, no userinfo, no path.

use crate::domain::ErrorCode;
use url::{Host, Url};

/// Placeholder that endpoints of per-account types start with.
pub const PLACEHOLDER: &str = "{provider_url}";

/// Why a `provider_url` is refused; each says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderUrlError {
    /// Not a URL at all.
    #[error("provider_url is not a URL")]
    Malformed,
    /// Not https.
    #[error("provider_url must use https")]
    NotHttps,
    /// `user:password@` in the URL.
    #[error("provider_url must not contain a user name or password")]
    UserInfo,
    /// An IP address instead of a host name.
    #[error("provider_url must be a host name, not an IP address")]
    IpLiteral,
    /// A path, query or fragment.
    #[error("provider_url must be an origin (https://host), without path, query or fragment")]
    NotAnOrigin,
    /// The host is not one the account type allows.
    #[error("provider_url `{0}` is not allowed for this account type (allowed: {1})")]
    NotAllowed(String, String),
}

/// An allowed provider: `https://cozy.example.org`, or `https://*.mycozy.cloud` for any
/// subdomain (one or more labels) of `mycozy.cloud`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPattern {
    raw: String,
    host: String,
    any_subdomain: bool,
}

impl ProviderPattern {
    /// Parses a pattern; the reason is for the operator.
    pub fn parse(raw: &str) -> Result<ProviderPattern, String> {
        let rest = raw
            .strip_prefix("https://")
            .ok_or("must start with https://")?;
        let (any_subdomain, host) = match rest.strip_prefix("*.") {
            Some(h) => (true, h),
            None => (false, rest),
        };
        let host = host.to_ascii_lowercase();
        let valid = host.contains('.')
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !valid {
            return Err(
                "must be https://HOST or https://*.DOMAIN, with a dotted host name and nothing after it"
                    .into(),
            );
        }
        Ok(ProviderPattern {
            raw: raw.to_owned(),
            host,
            any_subdomain,
        })
    }

    fn matches(&self, host: &str) -> bool {
        if self.any_subdomain {
            host.strip_suffix(&self.host)
                .and_then(|p| p.strip_suffix('.'))
                .is_some_and(|p| !p.is_empty())
        } else {
            host == self.host
        }
    }

    /// Whether it allows any subdomain (`https://*.DOMAIN`).
    pub fn is_wildcard(&self) -> bool {
        self.any_subdomain
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// A provider origin, checked against the account type's patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrl(String);

impl ProviderUrl {
    /// Parses and checks `raw`; `insecure_loopback` (development only) also accepts
    /// `http://localhost:PORT` and `http://127.0.0.1:PORT`, whatever the patterns.
    pub fn parse(
        raw: &str,
        patterns: &[ProviderPattern],
        insecure_loopback: bool,
    ) -> Result<ProviderUrl, ProviderUrlError> {
        let url = Url::parse(raw.trim_end_matches('/')).map_err(|_| ProviderUrlError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ProviderUrlError::UserInfo);
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(ProviderUrlError::NotAnOrigin);
        }
        let loopback = match url.host() {
            Some(Host::Domain(d)) => d == "localhost",
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            _ => false,
        };
        if insecure_loopback && loopback && url.scheme() == "http" {
            return Ok(ProviderUrl(origin(&url)));
        }
        if url.scheme() != "https" {
            return Err(ProviderUrlError::NotHttps);
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)) => return Err(ProviderUrlError::IpLiteral),
            None => return Err(ProviderUrlError::Malformed),
        };
        // `Url` reads numeric hosts (`2130706433`, `0x7f.1`) as IPv4 already; a numeric last
        // label is no public name either.
        if host
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ProviderUrlError::IpLiteral);
        }
        if url.port().is_some() || !patterns.iter().any(|p| p.matches(&host)) {
            let allowed = patterns
                .iter()
                .map(ProviderPattern::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ProviderUrlError::NotAllowed(origin(&url), allowed));
        }
        Ok(ProviderUrl(origin(&url)))
    }

    /// `https://host[:port]`, no trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host and port, for naming a registration.
    pub fn authority(&self) -> &str {
        self.0.split_once("://").map_or(&self.0, |(_, a)| a)
    }
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl crate::domain::error_kind::Classified for ProviderUrlError {
    fn kind(&self) -> crate::domain::ErrorKind {
        crate::domain::ErrorKind::Invalid
    }

    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidProviderUrl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cozy() -> Vec<ProviderPattern> {
        vec![ProviderPattern::parse("https://*.mycozy.cloud").unwrap()]
    }

    #[test]
    fn an_allowed_https_origin_is_kept_as_an_origin() {
        let p = ProviderUrl::parse("https://Alice.MyCozy.cloud/", &cozy(), false).unwrap();
        assert_eq!(p.as_str(), "https://alice.mycozy.cloud");
        assert_eq!(p.authority(), "alice.mycozy.cloud");
    }

    #[test]
    fn each_unsafe_url_gets_its_own_reason() {
        let cases = [
            ("http://alice.mycozy.cloud", ProviderUrlError::NotHttps),
            (
                "https://bob:pw@alice.mycozy.cloud",
                ProviderUrlError::UserInfo,
            ),
            ("https://bob@alice.mycozy.cloud", ProviderUrlError::UserInfo),
            ("https://127.0.0.1", ProviderUrlError::IpLiteral),
            ("https://[::1]", ProviderUrlError::IpLiteral),
            ("https://2130706433", ProviderUrlError::IpLiteral),
            ("https://0x7f.1", ProviderUrlError::IpLiteral),
            (
                "https://alice.mycozy.cloud/x",
                ProviderUrlError::NotAnOrigin,
            ),
            (
                "https://alice.mycozy.cloud?x=1",
                ProviderUrlError::NotAnOrigin,
            ),
            ("not a url", ProviderUrlError::Malformed),
        ];
        for (raw, want) in cases {
            assert_eq!(ProviderUrl::parse(raw, &cozy(), false), Err(want), "{raw}");
        }
    }

    #[test]
    fn other_hosts_and_look_alikes_are_not_allowed() {
        for raw in [
            "https://evil.example",
            "https://mycozy.cloud",
            "https://alice.mycozy.cloud.evil.example",
            "https://alicemycozy.cloud",
            "https://alice.mycozy.cloud:8443",
        ] {
            assert!(
                matches!(
                    ProviderUrl::parse(raw, &cozy(), false),
                    Err(ProviderUrlError::NotAllowed(..))
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn loopback_http_only_when_asked() {
        assert!(ProviderUrl::parse("http://127.0.0.1:8080", &cozy(), false).is_err());
        assert_eq!(
            ProviderUrl::parse("http://127.0.0.1:8080", &cozy(), true)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080"
        );
        assert!(ProviderUrl::parse("http://10.0.0.1:8080", &cozy(), true).is_err());
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "http://x.example",
            "https://*",
            "https://1.2.3.4",
            "https://a.example/p",
            "https://*.com.",
        ] {
            assert!(ProviderPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
