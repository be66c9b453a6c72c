//! Cozy instances: their domain, CouchDB prefix and context.

use super::cozy::InstanceKeys;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A lowercase host name with an optional port, e.g. `alice.mycozy.cloud`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    /// Whether `host` (a `Host` header) names this domain.
    pub fn is_host(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(&self.0)
    }

    /// Parses a domain as an operator or a stored document gives it.
    pub fn parse(raw: &str) -> Result<Domain, String> {
        let lower = raw.trim().to_ascii_lowercase();
        let (host, port) = match lower.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (lower.as_str(), None),
        };
        if let Some(p) = port {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("`{raw}` has an invalid port"));
            }
        }
        let labels_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !labels_ok {
            return Err(format!(
                "`{raw}` is not a host name (letters, digits, dots, hyphens)"
            ));
        }
        Ok(Domain(lower))
    }

    /// The domain text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host of an app of this instance (cozy-stack's `SubDomain`).
    pub fn app_host(&self, slug: &str, mode: Subdomains) -> String {
        match mode {
            Subdomains::Nested => format!("{slug}.{}", self.0),
            Subdomains::Flat => match self.0.split_once('.') {
                Some((user, rest)) => format!("{user}-{slug}.{rest}"),
                None => format!("{}-{slug}", self.0),
            },
        }
    }
}

impl TryFrom<String> for Domain {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Domain::parse(&s)
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> String {
        d.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How app hosts are made from the instance domain (cozy-stack's `subdomains`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subdomains {
    /// `home.alice.mycozy.cloud`
    #[default]
    Nested,
    /// `alice-home.mycozy.cloud`
    Flat,
}

/// The scheme instances and their apps are served on (cozy-stack: `http` in dev builds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Production stacks.
    #[default]
    Https,
    /// Development stacks (`cozy-stack serve` on `*.cozy.localhost:8080`).
    Http,
}

impl Scheme {
    /// `https` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// An instance as stored in `global/instances` (cozy-stack's shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Main domain.
    pub domain: Domain,
    /// CouchDB database prefix.
    pub prefix: String,
    /// Context name, used to pick overloaded account types.
    pub context: Option<String>,
    /// Other hosts the instance answers on (`domain_aliases`).
    pub aliases: Vec<String>,
    /// The domain it moved from (`old_domain`), still a valid token issuer.
    pub old_domain: Option<String>,
    /// The keys cozy-stack signs its cookies and tokens with; empty for instances the
    /// broker's operator added.
    pub keys: InstanceKeys,
    /// The user's subject at the context's identity provider (`oidc_id`): an `id_token`
    /// with this `sub` logs `start` in.
    pub oidc_id: Option<String>,
}

impl Instance {
    /// A new instance with its prefix computed as cozy-stack does.
    pub fn new(domain: Domain, context: Option<String>) -> Instance {
        let prefix = prefix_for(&domain);
        Instance {
            domain,
            prefix,
            context: context.filter(|c| !c.is_empty()),
            aliases: Vec::new(),
            old_domain: None,
            keys: InstanceKeys::default(),
            oidc_id: None,
        }
    }

    /// Name of the instance's accounts database, unescaped.
    pub fn accounts_db(&self) -> String {
        db_name(&self.prefix, "io.cozy.accounts")
    }

    /// Name of the instance's database of `doctype`, unescaped.
    pub fn db(&self, doctype: &str) -> String {
        db_name(&self.prefix, doctype)
    }

    /// The issuers its tokens may name: the domain, and the old domain if it moved.
    pub fn issuers(&self) -> Vec<&str> {
        std::iter::once(self.domain.as_str())
            .chain(self.old_domain.as_deref())
            .collect()
    }
}

/// `cozy` + 32 hex of sha256(domain), as `model/instance/lifecycle/create.go`.
pub fn prefix_for(domain: &Domain) -> String {
    let digest = Sha256::digest(domain.as_str().as_bytes());
    format!("cozy{}", hex::encode(&digest[..16]))
}

/// cozy-stack's database naming: lowercase, `.` and `:` become `-`.
pub fn db_name(prefix: &str, doctype: &str) -> String {
    format!("{prefix}/{doctype}")
        .to_lowercase()
        .replace(['.', ':'], "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_cozy_and_32_hex_of_sha256() {
        let d = Domain::parse("alice.mycozy.cloud").unwrap();
        let p = prefix_for(&d);
        assert_eq!(p.len(), 36);
        assert!(p.starts_with("cozy"));
        let full = hex::encode(Sha256::digest(b"alice.mycozy.cloud"));
        assert_eq!(&p[4..], &full[..32]);
    }

    #[test]
    fn accounts_db_follows_cozy_naming() {
        let i = Instance::new(Domain::parse("a.b").unwrap(), None);
        assert_eq!(i.accounts_db(), format!("{}/io-cozy-accounts", i.prefix));
    }

    #[test]
    fn domains_are_lowercased_and_checked() {
        assert_eq!(
            Domain::parse("Alice.Example:8080").unwrap().as_str(),
            "alice.example:8080"
        );
        for bad in ["", "a..b", "a b", "a/b", "-a.b", "a.b:", "a.b:99x", "a@b"] {
            assert!(Domain::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn app_hosts_nested_and_flat() {
        let d = Domain::parse("alice.mycozy.cloud").unwrap();
        assert_eq!(
            d.app_host("home", Subdomains::Nested),
            "home.alice.mycozy.cloud"
        );
        assert_eq!(
            d.app_host("home", Subdomains::Flat),
            "alice-home.mycozy.cloud"
        );
    }
}
