//! The settings' own rules, checked once and without I/O: each finding names its setting
//! and a severity. `serve` refuses to start on an error, `oauth-broker doctor` prints them
//! all; both take them from here, so they cannot disagree.

use super::Settings;
use crate::domain::ip_block::IpBlock;
use crate::domain::sealed::Keyring;
use std::net::IpAddr;
use url::Url;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// As it should be.
    Ok,
    /// Works, but risky or slow; `serve` starts and logs it.
    Warning,
    /// Cannot work; `serve` refuses to start, `doctor` exits non-zero.
    Error,
}

/// What one setting's check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingFinding {
    /// The setting (`webhooks.secret`).
    pub setting: &'static str,
    /// How bad.
    pub severity: Severity,
    /// What was found, and what to do; never the setting's secret value.
    pub detail: String,
}

impl SettingFinding {
    fn new(setting: &'static str, severity: Severity, detail: impl Into<String>) -> Self {
        SettingFinding {
            setting,
            severity,
            detail: detail.into(),
        }
    }
}

impl Settings {
    /// Every rule on the settings themselves, one finding per setting checked.
    pub fn check(&self) -> Vec<SettingFinding> {
        let mut found = Vec::new();
        let mut push = |setting, severity, detail: String| {
            found.push(SettingFinding::new(setting, severity, detail));
        };
        match Url::parse(self.public_url.trim_end_matches('/')) {
            Err(e) => push(
                "public_url",
                Severity::Error,
                format!("`{}` is not a URL: {e}", self.public_url),
            ),
            Ok(u) if u.scheme() != "https" && !is_loopback_host(u.host_str().unwrap_or("")) => {
                push(
                    "public_url",
                    Severity::Warning,
                    format!(
                        "`{u}` is not https: providers refuse plain http redirect URIs \
                         except on loopback, and the binding cookie travels in clear"
                    ),
                )
            }
            Ok(u) => push(
                "public_url",
                Severity::Ok,
                format!("redirects come back to {u}"),
            ),
        }
        match self.admin_token() {
            None => push(
                "admin_token",
                Severity::Ok,
                "unset: the admin API is off".into(),
            ),
            Some(t) if t.len() < 32 => push(
                "admin_token",
                Severity::Error,
                format!(
                    "{} characters: at least 32 are needed (`openssl rand -hex 32` makes one)",
                    t.len()
                ),
            ),
            Some(_) => push("admin_token", Severity::Ok, "set".into()),
        }
        match Keyring::parse(self.encryption_keys.as_deref().unwrap_or("")) {
            Err(e) => push("encryption_keys", Severity::Error, e.to_string()),
            Ok(k) if k.primary_id().is_none() => {
                push(
                    "encryption_keys",
                    Severity::Warning,
                    "unset: client secrets are stored as given (generate one with \
                     `oauth-broker keys generate ID`)"
                        .into(),
                );
                if self.encrypt_refresh_tokens {
                    push(
                        "encrypt_refresh_tokens",
                        Severity::Error,
                        "refresh tokens cannot be sealed without encryption_keys".into(),
                    );
                }
            }
            Ok(k) => push(
                "encryption_keys",
                Severity::Ok,
                format!("newest key `{}`", k.primary_id().unwrap_or_default()),
            ),
        }
        if let Err(e) = self.cookie_domain() {
            push("flow_binding_cookie_domain", Severity::Error, e);
        }
        if let Err(e) = self.stack_url() {
            push("cozy.stack_url", Severity::Error, e);
        }
        for (context, c) in &self.cozy.oidc {
            if !c.allow_oauth_token {
                continue;
            }
            match url::Url::parse(&c.id_token_jwk_url) {
                Err(e) => push(
                    "cozy.oidc",
                    Severity::Error,
                    format!("context `{context}` allows id_token logins but its id_token_jwk_url is not a URL: {e}"),
                ),
                Ok(u) if u.scheme() != "https" => push(
                    "cozy.oidc",
                    Severity::Warning,
                    format!("context `{context}`: id_token_jwk_url is not https; the keys that sign logins could be changed on the way"),
                ),
                Ok(_) => {}
            }
        }
        match self.webhook_url() {
            Err(e) => push("webhooks.url", Severity::Error, e),
            // Unsigned events would let anyone who can reach the endpoint forge them.
            Ok(Some(_)) if self.webhooks.secret.len() < 16 => push(
                "webhooks.secret",
                Severity::Error,
                "at least 16 characters are needed when webhooks.url is set".into(),
            ),
            Ok(_) => {}
        }
        if let Err(e) = self.trusted_proxies() {
            let setting = if self.rate_limit.trusted_proxies.trim().is_empty() {
                "rate_limit.trust_forwarded_for"
            } else {
                "rate_limit.trusted_proxies"
            };
            push(setting, Severity::Error, e);
        }
        found
    }

    /// The binding cookie's parent domain, which must cover the redirect host (the
    /// public URL's), or the cookie would never come back; `None` keeps it host-only.
    pub fn cookie_domain(&self) -> Result<Option<String>, String> {
        let domain = self
            .flow_binding_cookie_domain
            .trim()
            .trim_start_matches('.')
            .to_ascii_lowercase();
        if domain.is_empty() {
            return Ok(None);
        }
        let public = Url::parse(&self.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        let covered = public == domain || public.ends_with(&format!(".{domain}"));
        if !domain.contains('.') || !covered {
            return Err(format!(
                "`{domain}` must be a parent domain (with a dot) of the public_url's host `{public}`, where the redirect is served"
            ));
        }
        Ok(Some(domain))
    }

    /// The webhook endpoint, when one is set.
    pub fn webhook_url(&self) -> Result<Option<Url>, String> {
        match self
            .webhooks
            .url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            Some(u) => Url::parse(u)
                .map(Some)
                .map_err(|e| format!("not a URL: {e}")),
            None => Ok(None),
        }
    }

    /// The cozy-stack that requests for the types it runs alone are handed to.
    pub fn stack_url(&self) -> Result<Option<Url>, String> {
        let raw = self.cozy.stack_url.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        match Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Some(u)),
            Ok(_) => Err("must be an http(s) URL with a host".into()),
            Err(e) => Err(format!("not a URL: {e}")),
        }
    }

    /// The proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> Result<Vec<IpBlock>, String> {
        let raw = self.rate_limit.trusted_proxies.trim();
        if raw.is_empty() && self.rate_limit.trust_forwarded_for {
            return Err(
                "it trusted any client's word; list the proxies in front of the \
                        broker in rate_limit.trusted_proxies instead (e.g. 10.0.0.0/8)"
                    .into(),
            );
        }
        raw.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(IpBlock::parse)
            .collect()
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(s: &Settings) -> Vec<&'static str> {
        s.check()
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.setting)
            .collect()
    }

    #[test]
    fn the_defaults_have_no_error() {
        assert_eq!(errors(&Settings::load(None).unwrap()), Vec::<&str>::new());
    }

    /// A setting's name and how to spoil it.
    type Spoiled = (&'static str, Box<dyn Fn(&mut Settings)>);

    #[test]
    fn each_bad_setting_is_an_error_named_by_its_setting() {
        let cases: Vec<Spoiled> = vec![
            (
                "public_url",
                Box::new(|s| s.public_url = "not a url".into()),
            ),
            (
                "admin_token",
                Box::new(|s| s.admin_token = Some("short".into())),
            ),
            (
                "encryption_keys",
                Box::new(|s| s.encryption_keys = Some("k1:nope".into())),
            ),
            (
                "encrypt_refresh_tokens",
                Box::new(|s| s.encrypt_refresh_tokens = true),
            ),
            (
                "flow_binding_cookie_domain",
                Box::new(|s| s.flow_binding_cookie_domain = "elsewhere.example".into()),
            ),
            (
                "webhooks.url",
                Box::new(|s| s.webhooks.url = Some("::".into())),
            ),
            (
                "webhooks.secret",
                Box::new(|s| {
                    s.webhooks.url = Some("https://hooks.example/in".into());
                    s.webhooks.secret = "short".into();
                }),
            ),
            (
                "rate_limit.trusted_proxies",
                Box::new(|s| s.rate_limit.trusted_proxies = "10.0.0.0/99".into()),
            ),
            (
                "rate_limit.trust_forwarded_for",
                Box::new(|s| s.rate_limit.trust_forwarded_for = true),
            ),
        ];
        for (setting, spoil) in cases {
            let mut s = Settings::load(None).unwrap();
            spoil(&mut s);
            assert_eq!(errors(&s), vec![setting], "{setting}");
        }
    }

    #[test]
    fn a_finding_never_shows_a_secret_value() {
        let mut s = Settings::load(None).unwrap();
        s.admin_token = Some("short-admin-secret".into());
        s.webhooks.url = Some("https://hooks.example/in".into());
        s.webhooks.secret = "hooksecret".into();
        for f in s.check() {
            assert!(
                !f.detail.contains("short-admin-secret") && !f.detail.contains("hooksecret"),
                "{f:?}"
            );
        }
    }
}
