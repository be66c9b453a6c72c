//! Per-client rate limits on the routes a stranger can hammer: start, redirect, admin.
//!
//! The client is the connection's peer, unless that peer is one of the operator's
//! `trusted_proxies`: then it is the right-most `X-Forwarded-For` hop that is not a
//! trusted proxy (what the nearest untrusted party connected from). `Forwarded` is never
//! read: proxies in front of the broker overwrite `X-Forwarded-For` but may pass
//! `Forwarded` through, forged. IPv6 clients are keyed by their /64, the block one
//! subscriber usually holds.

use crate::app::Error;
use crate::domain::ip_block::{canonical, IpBlock};
use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

/// Clients remembered at most before quiet ones are forgotten early.
const MAX_CLIENTS: usize = 100_000;

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Group {
    /// `GET /accounts/{type}/start`
    Start,
    /// `GET /accounts/{type}/redirect`
    Redirect,
    /// `/admin/*`
    Admin,
    /// The routes konnectors call, per API token.
    Token,
}

/// The key a client is limited under: its address, or its /64 for IPv6.
fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let block = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(block))
        }
        v4 => v4,
    }
}

/// One GCRA bucket per (group, client), in this process.
pub(crate) struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<(Group, String)>>,
    trusted_proxies: Vec<IpBlock>,
}

impl RateLimits {
    /// `per_minute` requests per client and group, with bursts of `burst`; 0 turns limits
    /// off. Requests from `trusted_proxies` are keyed by the client they forward for.
    pub(crate) fn new(per_minute: u32, burst: u32, trusted_proxies: Vec<IpBlock>) -> RateLimits {
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        RateLimits {
            limiter,
            trusted_proxies,
        }
    }

    /// Takes one request from the client's budget, or says when to come back.
    pub(crate) fn check(&self, group: Group, req: &HttpRequest) -> Result<(), Error> {
        if self.limiter.is_none() {
            return Ok(());
        }
        let Some(ip) = self.client_ip(req) else {
            return Ok(());
        };
        self.check_key(group, &client_key(ip).to_string())
    }

    /// Takes one request from the budget of `key` (an address, a token's hash).
    pub(crate) fn check_key(&self, group: Group, key: &str) -> Result<(), Error> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > MAX_CLIENTS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&(group, key.to_owned()))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Error::RateLimited {
                    retry_after_secs: wait.as_secs().max(1),
                }
            })
    }

    /// Forgets clients that have been quiet, so the table does not grow for ever.
    pub(crate) fn forget_quiet_clients(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|b| b.contains(ip))
    }

    fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.trusted(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        Some(forwarded_client(&hops, peer, |ip| self.trusted(ip)))
    }
}

/// The right-most hop that is not a trusted proxy; the last trusted one when every hop is
/// trusted or a hop cannot be read (what is left of it was written by the client).
fn forwarded_client(hops: &[&str], peer: IpAddr, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !trusted(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_match_both_families() {
        let private = IpBlock::parse("10.0.0.0/8").unwrap();
        assert!(private.contains(ip("10.1.2.3")) && !private.contains(ip("11.0.0.1")));
        assert!(private.contains(ip("::ffff:10.9.9.9")));
        let one = IpBlock::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = IpBlock::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(IpBlock::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(IpBlock::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let proxies = [IpBlock::parse("10.0.0.0/8").unwrap()];
        let trusted = |a: IpAddr| proxies.iter().any(|b| b.contains(a));
        let peer = ip("10.0.0.1");
        // The client forged the left-most entries; the proxy appended the real one.
        let hops = ["1.1.1.1", " 6.6.6.6", " 203.0.113.9", " 10.0.0.2"];
        assert_eq!(forwarded_client(&hops, peer, trusted), ip("203.0.113.9"));
        assert_eq!(forwarded_client(&[], peer, trusted), peer);
        assert_eq!(
            forwarded_client(&["garbage", "10.0.0.3"], peer, trusted),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
