//! cozy-stack's login sessions (`model/session`): the cookie that names one, and when a
//! session document still logs its browser in.

use crate::domain::{Subdomains, Timestamp};
use serde_json::{json, Value};
use std::time::Duration;

/// A session unseen for this long is over (`SessionMaxAge`).
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Lifetime of the cookie of a short-run session (`Max-Age=300`).
pub const SHORT_RUN_COOKIE_SECS: i64 = 300;

/// The session cookie's name: `cozysessid` (nested) or `sess-<prefix>` (flat).
pub fn cookie_name(mode: Subdomains, prefix: &str) -> String {
    match mode {
        Subdomains::Nested => "cozysessid".to_owned(),
        Subdomains::Flat => format!("sess-{prefix}"),
    }
}

/// The session cookie's domain: `.<instance domain>` (nested) or `.<parent>` (flat), port
/// stripped.
pub fn cookie_domain(mode: Subdomains, instance_domain: &str) -> String {
    let host = instance_domain
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(instance_domain, |(h, _)| h);
    match mode {
        Subdomains::Nested => format!(".{host}"),
        Subdomains::Flat => match host.split_once('.') {
            Some((_, parent)) => format!(".{parent}"),
            None => format!(".{host}"),
        },
    }
}

/// A session document, as much as the broker reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Document id (what the cookie carries).
    pub id: String,
    /// Last time cozy-stack saw it, unix seconds.
    pub last_seen: i64,
    /// A five-minute session (a login from the flagship app or a code).
    pub short_run: bool,
}

impl Session {
    /// Reads a session document; `None` when `last_seen` is missing or malformed.
    pub fn from_document(doc: &Value) -> Option<Session> {
        let last_seen = doc
            .get("last_seen")
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())?
            .timestamp();
        Some(Session {
            id: doc.get("_id")?.as_str()?.to_owned(),
            last_seen,
            short_run: doc.get("short_run").and_then(Value::as_bool) == Some(true),
        })
    }

    /// Whether the session still logs its browser in at `now` (only `last_seen` counts).
    pub fn is_live(&self, now: Timestamp) -> bool {
        now.unix_secs()
            <= self
                .last_seen
                .saturating_add(SESSION_MAX_AGE.as_secs() as i64)
    }

    /// A new short-run session document, as `checkLogin` creates one.
    pub fn short_run_document(now: Timestamp) -> Value {
        let at = now
            .to_datetime()
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        json!({"created_at": at, "last_seen": at, "long_run": false, "short_run": true})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_names_and_domains_follow_the_subdomain_mode() {
        assert_eq!(cookie_name(Subdomains::Nested, "cozyab"), "cozysessid");
        assert_eq!(cookie_name(Subdomains::Flat, "cozyab"), "sess-cozyab");
        assert_eq!(
            cookie_domain(Subdomains::Nested, "alice.cozy.example:8080"),
            ".alice.cozy.example"
        );
        assert_eq!(
            cookie_domain(Subdomains::Flat, "alice.cozy.example"),
            ".cozy.example"
        );
    }

    #[test]
    fn a_session_lives_thirty_days_after_it_was_last_seen() {
        let doc = serde_json::json!({"_id": "s1", "last_seen": "2023-11-14T22:13:20.123456789+01:00",
                                     "short_run": false, "long_run": false});
        let s = Session::from_document(&doc).unwrap();
        let limit = 1_700_000_000 - 3600 + 30 * 24 * 3600;
        assert!(s.is_live(Timestamp::from_unix_secs(limit)));
        assert!(!s.is_live(Timestamp::from_unix_secs(limit + 1)));
        assert!(!s.short_run);
    }

    #[test]
    fn a_new_short_run_session_reads_back_as_one() {
        let mut doc = Session::short_run_document(Timestamp::from_unix_secs(1_700_000_000));
        doc["_id"] = "x".into();
        let s = Session::from_document(&doc).unwrap();
        assert!(s.short_run && s.last_seen == 1_700_000_000);
    }
}
