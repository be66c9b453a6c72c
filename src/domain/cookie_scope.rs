//! Where the flow-binding cookie must be visible: set by `start` on the instance's host
//! (where the Home app sends people), it has to come back to the redirect on the public
//! URL's host. When the two differ, the cookie needs a `Domain` that covers both.

/// The hosts sign-ins start on: instances' domains and aliases, lower case, no port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceHosts {
    /// Each instance's main domain.
    pub domains: Vec<String>,
    /// Their aliases.
    pub aliases: Vec<String>,
}

/// What the hosts call for, when no cookie domain is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieScope {
    /// Every known instance host is the public host (or there is no instance, or the
    /// public host is an address): a host-only cookie comes back.
    HostOnly,
    /// Every known instance host and the public host are under this parent domain.
    Inferred(String),
    /// Some instance hosts are under no parent shared with the public host: their flows,
    /// started on their own host, cannot keep the cookie.
    Uncovered(Vec<String>),
}

/// Whether `host` is `domain` or under it.
pub fn covers(domain: &str, host: &str) -> bool {
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// The parent of the public host that covers every instance host, from the public host's
/// parent (`oauthcallback.mycozy.cloud` → `mycozy.cloud`) and never shorter than two
/// labels, so that a cookie is never scoped to a top-level domain.
pub fn infer(public_host: &str, instance_hosts: &[String]) -> CookieScope {
    let public = public_host.to_ascii_lowercase();
    let others: Vec<String> = instance_hosts
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| *h != public)
        .collect();
    if others.is_empty() || public.parse::<std::net::IpAddr>().is_ok() {
        return CookieScope::HostOnly;
    }
    let parent = public.split_once('.').map(|(_, p)| p.to_owned());
    match parent.filter(|p| p.contains('.')) {
        Some(p) => {
            let uncovered: Vec<String> = others.into_iter().filter(|h| !covers(&p, h)).collect();
            if uncovered.is_empty() {
                CookieScope::Inferred(p)
            } else {
                CookieScope::Uncovered(uncovered)
            }
        }
        None => CookieScope::Uncovered(others),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn instances_under_the_callback_hosts_parent_infer_that_parent() {
        assert_eq!(
            infer(
                "oauthcallback.mycozy.cloud",
                &hosts(&["alice.mycozy.cloud", "bob.mycozy.cloud"])
            ),
            CookieScope::Inferred("mycozy.cloud".into())
        );
    }

    #[test]
    fn an_instance_elsewhere_is_uncovered() {
        assert_eq!(
            infer(
                "oauthcallback.mycozy.cloud",
                &hosts(&["alice.mycozy.cloud", "bob.other.example"])
            ),
            CookieScope::Uncovered(hosts(&["bob.other.example"]))
        );
    }

    #[test]
    fn a_top_level_domain_is_never_inferred() {
        assert_eq!(
            infer("broker.example", &hosts(&["alice.example"])),
            CookieScope::Uncovered(hosts(&["alice.example"]))
        );
    }

    #[test]
    fn the_same_host_an_address_or_no_instance_needs_no_domain() {
        assert_eq!(
            infer("cozy.example.org", &hosts(&["cozy.example.org"])),
            CookieScope::HostOnly
        );
        assert_eq!(
            infer("127.0.0.1", &hosts(&["alice.example.org"])),
            CookieScope::HostOnly
        );
        assert_eq!(infer("a.example.org", &[]), CookieScope::HostOnly);
    }

    #[test]
    fn covering_is_by_whole_labels() {
        assert!(covers("mycozy.cloud", "alice.mycozy.cloud"));
        assert!(covers("mycozy.cloud", "mycozy.cloud"));
        assert!(!covers("mycozy.cloud", "evilmycozy.cloud"));
    }
}
