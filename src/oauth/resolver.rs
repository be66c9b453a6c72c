//! Name resolution for provider requests: a name that resolves only to loopback,
//! private, link-local or other non-public addresses is refused, so a provider host
//! (a user's `provider_url`, or a name re-pointed later: DNS rebinding) cannot make the
//! broker send secrets inside the operator's network. Checked on every connection, after
//! resolution. Operators list the internal names they mean (an in-house identity
//! provider) in `provider_private_hosts`; development allows loopback.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What provider names may resolve to.
#[derive(Debug, Clone, Default)]
pub struct DnsPolicy {
    /// Loopback is allowed too (development: `allow_insecure_provider_urls`).
    pub allow_loopback: bool,
    /// Names allowed to resolve to non-public addresses, lower case.
    pub private_hosts: HashSet<String>,
}

/// Whether `ip` is an address on the public Internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Carrier-grade NAT, benchmarking, protocol assignments, reserved.
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (18..20).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // NAT64 and 6to4 carry IPv4 addresses that are checked as such.
        || (first == 0x0064 && ip.segments()[1] == 0xff9b
            && !is_public_v4(Ipv4Addr::from(u128::from(ip) as u32))))
}

impl DnsPolicy {
    /// Whether a connection from a name to `ip` is allowed.
    pub fn allows(&self, name: &str, ip: IpAddr) -> bool {
        is_public(ip)
            || (self.allow_loopback && ip.is_loopback())
            || self.private_hosts.contains(&name.to_ascii_lowercase())
    }
}

impl Resolve for DnsPolicy {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.allows(&host, a.ip()))
                .collect();
            if allowed.is_empty() {
                tracing::warn!(host = %host, "provider host resolves only to non-public addresses: refused");
                return Err(format!(
                    "{host} resolves only to non-public addresses; list it in provider_private_hosts if it is yours"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808"] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_unless_allowed() {
        let strict = DnsPolicy::default();
        let name: Name = "localhost".parse().unwrap();
        assert!(strict.resolve(name).await.is_err());
        let dev = DnsPolicy {
            allow_loopback: true,
            ..DnsPolicy::default()
        };
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<_> = dev.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
        let operator = DnsPolicy {
            private_hosts: ["localhost".to_owned()].into(),
            ..DnsPolicy::default()
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(operator.resolve(name).await.is_ok());
    }
}
