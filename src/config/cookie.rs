//! The binding cookie's scope, decided from the settings and the hosts sign-ins start on:
//! the domain set (checked against those hosts), else one inferred when a parent of the
//! public host covers every instance's domain, else host-only. `serve` uses the domain,
//! `doctor` prints the finding; both get them from here.

use super::checks::{SettingFinding, Severity};
use super::Settings;
pub use crate::domain::cookie_scope::InstanceHosts;
use crate::domain::cookie_scope::{self, CookieScope};
use url::Url;

/// What the binding cookie is scoped to, and what to say of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingCookie {
    /// Its `Domain`; `None`: host-only.
    pub domain: Option<String>,
    /// Whether `domain` was inferred (no `flow_binding_cookie_domain` set).
    pub inferred: bool,
    /// What `doctor` says of it.
    pub finding: SettingFinding,
}

impl Settings {
    /// The binding cookie's scope for sign-ins starting on `hosts`. Hosts it misses are
    /// a warning, not a refusal: `start` may be served on the public host for them (a
    /// session code), and one odd alias must not stop every other instance's sign-ins.
    pub fn binding_cookie(&self, hosts: &InstanceHosts) -> BindingCookie {
        let set = self.cookie_domain().ok().flatten();
        let finding = |severity, setting, detail: String| SettingFinding {
            setting,
            severity,
            detail,
        };
        const COOKIE: &str = "flow_binding_cookie_domain";
        if !self.flow_binding {
            return BindingCookie {
                domain: set,
                inferred: false,
                finding: finding(
                    Severity::Ok,
                    "flow_binding",
                    "flow binding is off: no cookie to keep".into(),
                ),
            };
        }
        let public = Url::parse(&self.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        let not_under = |domain: &str, hosts: &[String]| -> Vec<String> {
            hosts
                .iter()
                .filter(|h| **h != public && !cookie_scope::covers(domain, h))
                .cloned()
                .collect()
        };
        let missed = |domain: &str, hosts: Vec<String>| {
            finding(
                Severity::Warning,
                COOKIE,
                format!(
                    "Domain={domain} does not cover {}: a sign-in started on those hosts ends \
                     in \"started in another browser\"",
                    shown_hosts(&hosts)
                ),
            )
        };
        let all: Vec<String> = hosts
            .domains
            .iter()
            .chain(&hosts.aliases)
            .cloned()
            .collect();
        if let Some(domain) = set {
            let found = match not_under(&domain, &all) {
                m if m.is_empty() => finding(
                    Severity::Ok,
                    COOKIE,
                    format!("Domain={domain} covers {public} and every instance host"),
                ),
                m => missed(&domain, m),
            };
            return BindingCookie {
                domain: Some(domain),
                inferred: false,
                finding: found,
            };
        }
        match cookie_scope::infer(&public, &hosts.domains) {
            CookieScope::HostOnly => BindingCookie {
                domain: None,
                inferred: false,
                finding: finding(
                    Severity::Ok,
                    COOKIE,
                    if hosts.aliases.is_empty() {
                        format!("host-only on {public}: no instance is served on another host")
                    } else {
                        format!("host-only on {public}, where every instance's main domain is")
                    },
                ),
            },
            CookieScope::Inferred(parent) => BindingCookie {
                finding: match not_under(&parent, &hosts.aliases) {
                    m if m.is_empty() => finding(
                        Severity::Ok,
                        COOKIE,
                        format!(
                            "flow_binding_cookie_domain is unset; `{parent}` covers {public} \
                             and the instance hosts, and is used (set it to say so)"
                        ),
                    ),
                    m => missed(&parent, m),
                },
                domain: Some(parent),
                inferred: true,
            },
            CookieScope::Uncovered(others) => BindingCookie {
                domain: None,
                inferred: false,
                finding: finding(
                    Severity::Warning,
                    "public_url",
                    format!(
                        "{} share no parent domain with public_url's host {public}: a sign-in \
                         started there cannot keep its binding cookie; serve public_url under \
                         their parent domain",
                        shown_hosts(&others)
                    ),
                ),
            },
        }
    }
}

/// A few hosts, and how many more.
fn shown_hosts(hosts: &[String]) -> String {
    let shown: Vec<&str> = hosts.iter().take(3).map(|h| h.as_str()).collect();
    let more = hosts.len().saturating_sub(3);
    let mut s = shown.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(public: &str, domain: &str) -> Settings {
        let mut s = Settings::load(None).unwrap();
        s.public_url = public.into();
        s.flow_binding_cookie_domain = domain.into();
        s
    }

    fn hosts(domains: &[&str], aliases: &[&str]) -> InstanceHosts {
        InstanceHosts {
            domains: domains.iter().map(|d| d.to_string()).collect(),
            aliases: aliases.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn an_unset_domain_is_inferred_when_one_parent_covers_every_instance() {
        let c = settings("https://oauthcallback.mycozy.cloud", "")
            .binding_cookie(&hosts(&["alice.mycozy.cloud", "bob.mycozy.cloud"], &[]));
        assert_eq!(c.domain.as_deref(), Some("mycozy.cloud"));
        assert!(c.inferred);
        assert_eq!(c.finding.severity, Severity::Ok);
    }

    #[test]
    fn an_instance_under_no_shared_parent_keeps_the_cookie_host_only_and_warns() {
        let c = settings("https://oauthcallback.mycozy.cloud", "")
            .binding_cookie(&hosts(&["alice.mycozy.cloud", "bob.example.org"], &[]));
        assert_eq!(c.domain, None);
        assert_eq!(
            (c.finding.severity, c.finding.setting),
            (Severity::Warning, "public_url")
        );
    }

    #[test]
    fn a_set_domain_missing_an_alias_is_kept_and_warned_about() {
        let c = settings("https://oauthcallback.mycozy.cloud", "mycozy.cloud")
            .binding_cookie(&hosts(&["alice.mycozy.cloud"], &["alice.example.org"]));
        assert_eq!(c.domain.as_deref(), Some("mycozy.cloud"));
        assert!(!c.inferred);
        assert_eq!(
            (c.finding.severity, c.finding.setting),
            (Severity::Warning, "flow_binding_cookie_domain")
        );
        assert!(c.finding.detail.contains("alice.example.org"));
    }
}
