//! Per-client rate limits on the routes a stranger can hammer: start, redirect, admin.

use crate::app::Error;
use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Group {
    /// `GET /accounts/{type}/start`
    Start,
    /// `GET /accounts/{type}/redirect`
    Redirect,
    /// `/admin/*`
    Admin,
}

/// One GCRA bucket per (group, client address), in this process.
pub(crate) struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<(Group, IpAddr)>>,
    trust_forwarded_for: bool,
}

impl RateLimits {
    /// `per_minute` requests per client and group, with bursts of `burst`; 0 turns limits off.
    pub(crate) fn new(per_minute: u32, burst: u32, trust_forwarded_for: bool) -> RateLimits {
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        RateLimits {
            limiter,
            trust_forwarded_for,
        }
    }

    /// Takes one request from the client's budget, or says when to come back.
    pub(crate) fn check(&self, group: Group, req: &HttpRequest) -> Result<(), Error> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let Some(ip) = self.client_ip(req) else {
            return Ok(());
        };
        limiter.check_key(&(group, ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }

    fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            // Only behind a proxy that sets the header itself: clients can forge it.
            if let Some(ip) = req.connection_info().realip_remote_addr().and_then(|a| {
                a.parse::<std::net::SocketAddr>()
                    .map(|s| s.ip())
                    .or_else(|_| a.parse())
                    .ok()
            }) {
                return Some(ip);
            }
        }
        req.peer_addr().map(|a| a.ip())
    }
}

impl RateLimits {
    /// Forgets clients that have been quiet, so the table does not grow for ever.
    pub(crate) fn forget_quiet_clients(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }
}
