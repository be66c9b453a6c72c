//! How well each account is kept fresh, and what that says of its provider: the record
//! the broker keeps beside each account's refresh plan, the transitions operators and the
//! Home app hear about, and the per-provider summary of `providers health`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An account's refresh health, as stored (`broker/refresh_schedule`, `health/…` ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountHealth {
    /// Its instance's domain.
    pub instance: String,
    /// Its id in the instance's accounts database.
    pub account_id: String,
    /// Its account type (service id).
    pub account_type: String,
    /// Unix seconds of the last token the provider gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<i64>,
    /// Unix seconds of the last failed refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<i64>,
    /// Why the last refresh failed: an error kind or the provider's OAuth code, never a
    /// provider's free text (it may echo a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed refreshes since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The provider refused the refresh token: only its user can bring it back.
    #[serde(default)]
    pub reconnect_needed: bool,
    /// Scopes the flow asked for that the provider did not grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope_missing: Vec<String>,
    /// How long the provider's token endpoint took to answer, last time, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ms: Option<u64>,
}

/// What one call to the provider's token endpoint did for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New tokens (a flow, a reconnection or a refresh).
    Success {
        /// Token endpoint time, when the provider was called.
        token_ms: Option<u64>,
    },
    /// The refresh failed; `cause` is an error kind or an OAuth error code.
    Failure {
        /// Why.
        cause: String,
        /// Token endpoint time, when the provider answered.
        token_ms: Option<u64>,
        /// The refresh token is dead: the user must reconnect.
        reconnect: bool,
    },
}

/// What changed, for the ones who must hear of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing worth telling.
    Unchanged,
    /// A healthy account failed to refresh (first failure of a run).
    StartedFailing,
    /// The account needs its user to reconnect it.
    NeedsReconnection,
    /// A failing account refreshed again.
    Recovered,
}

impl AccountHealth {
    /// A record for an account with no history yet.
    pub fn new(instance: &str, account_id: &str, account_type: &str) -> AccountHealth {
        AccountHealth {
            instance: instance.to_owned(),
            account_id: account_id.to_owned(),
            account_type: account_type.to_owned(),
            last_success_at: None,
            last_failure_at: None,
            last_error: None,
            consecutive_failures: 0,
            reconnect_needed: false,
            scope_missing: Vec::new(),
            token_ms: None,
        }
    }

    /// Whether its last refresh failed (and it does not simply wait for its user).
    pub fn failing(&self) -> bool {
        self.consecutive_failures > 0 && !self.reconnect_needed
    }

    /// Neither failing nor waiting for its user.
    pub fn healthy(&self) -> bool {
        self.consecutive_failures == 0 && !self.reconnect_needed
    }

    /// Applies an outcome at `now` (unix seconds); says what changed.
    pub fn apply(&mut self, outcome: &Outcome, now: i64) -> Transition {
        match outcome {
            Outcome::Success { token_ms } => {
                let was_failing = self.consecutive_failures > 0 || self.reconnect_needed;
                self.last_success_at = Some(now);
                self.consecutive_failures = 0;
                self.reconnect_needed = false;
                if token_ms.is_some() {
                    self.token_ms = *token_ms;
                }
                if was_failing {
                    Transition::Recovered
                } else {
                    Transition::Unchanged
                }
            }
            Outcome::Failure {
                cause,
                token_ms,
                reconnect,
            } => {
                let first = self.healthy();
                let newly_dead = *reconnect && !self.reconnect_needed;
                self.last_failure_at = Some(now);
                self.last_error = Some(cause.clone());
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.reconnect_needed |= *reconnect;
                if token_ms.is_some() {
                    self.token_ms = *token_ms;
                }
                if newly_dead {
                    Transition::NeedsReconnection
                } else if first {
                    Transition::StartedFailing
                } else {
                    Transition::Unchanged
                }
            }
        }
    }
}

/// One provider (account type) as `providers health` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderHealth {
    /// The account type.
    pub account_type: String,
    /// Accounts the broker keeps fresh for it.
    pub accounts: usize,
    /// Of which healthy.
    pub healthy: usize,
    /// Of which failing (and retried).
    pub failing: usize,
    /// Of which waiting for their user to reconnect.
    pub reconnect_needed: usize,
    /// Median of each account's last token endpoint time, in milliseconds.
    pub p50_ms: Option<u64>,
    /// 99th percentile of the same.
    pub p99_ms: Option<u64>,
    /// The most recent failure's cause.
    pub last_error: Option<String>,
    /// When it happened (unix seconds).
    pub last_error_at: Option<i64>,
}

/// Sums the accounts' records up per account type, sorted by type.
pub fn summarize<'a>(records: impl IntoIterator<Item = &'a AccountHealth>) -> Vec<ProviderHealth> {
    let mut by_type: BTreeMap<&str, (ProviderHealth, Vec<u64>)> = BTreeMap::new();
    for r in records {
        let (p, times) = by_type.entry(&r.account_type).or_insert_with(|| {
            (
                ProviderHealth {
                    account_type: r.account_type.clone(),
                    accounts: 0,
                    healthy: 0,
                    failing: 0,
                    reconnect_needed: 0,
                    p50_ms: None,
                    p99_ms: None,
                    last_error: None,
                    last_error_at: None,
                },
                Vec::new(),
            )
        });
        p.accounts += 1;
        if r.reconnect_needed {
            p.reconnect_needed += 1;
        } else if r.failing() {
            p.failing += 1;
        } else {
            p.healthy += 1;
        }
        if let (Some(at), Some(error)) = (r.last_failure_at, &r.last_error) {
            if p.last_error_at.is_none_or(|seen| at > seen) {
                p.last_error_at = Some(at);
                p.last_error = Some(error.clone());
            }
        }
        times.extend(r.token_ms);
    }
    by_type
        .into_values()
        .map(|(mut p, mut times)| {
            times.sort_unstable();
            p.p50_ms = percentile(&times, 50);
            p.p99_ms = percentile(&times, 99);
            p
        })
        .collect()
}

/// The scopes of `asked` that `granted` lacks. Both are lists separated by spaces (RFC
/// 6749) or commas (as some providers write them); `granted` absent means all were
/// granted (RFC 6749 §5.1: the reply omits `scope` when it is the one asked for).
pub fn missing_scopes(asked: &str, granted: Option<&str>) -> Vec<String> {
    let Some(granted) = granted else {
        return Vec::new();
    };
    let words = |s: &'_ str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let got = words(granted);
    let mut missing: Vec<String> = words(asked)
        .into_iter()
        .filter(|w| !got.contains(w))
        .collect();
    missing.dedup();
    missing
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], pct: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(cause: &str, reconnect: bool) -> Outcome {
        Outcome::Failure {
            cause: cause.into(),
            token_ms: None,
            reconnect,
        }
    }

    #[test]
    fn a_failure_run_is_told_once_and_its_end_is_a_recovery() {
        let mut h = AccountHealth::new("alice.example", "a1", "google");
        assert_eq!(
            h.apply(&failure("upstream", false), 10),
            Transition::StartedFailing
        );
        assert_eq!(
            h.apply(&failure("upstream", false), 20),
            Transition::Unchanged
        );
        assert_eq!(h.consecutive_failures, 2);
        assert!(h.failing());
        assert_eq!(
            h.apply(&Outcome::Success { token_ms: Some(12) }, 30),
            Transition::Recovered
        );
        assert!(h.healthy());
        assert_eq!((h.last_success_at, h.token_ms), (Some(30), Some(12)));
        assert_eq!(
            h.last_error.as_deref(),
            Some("upstream"),
            "kept for the record"
        );
    }

    #[test]
    fn a_refused_refresh_token_needs_the_user_until_a_success() {
        let mut h = AccountHealth::new("alice.example", "a1", "google");
        assert_eq!(
            h.apply(&failure("invalid_grant", true), 10),
            Transition::NeedsReconnection
        );
        assert!(h.reconnect_needed && !h.failing() && !h.healthy());
        assert_eq!(
            h.apply(&failure("invalid_grant", true), 20),
            Transition::Unchanged
        );
        assert_eq!(
            h.apply(&Outcome::Success { token_ms: None }, 30),
            Transition::Recovered
        );
        assert!(!h.reconnect_needed);
    }

    #[test]
    fn a_narrowed_grant_names_what_it_lacks() {
        assert_eq!(
            missing_scopes("read write admin", Some("read,admin")),
            vec!["write".to_owned()]
        );
        assert!(missing_scopes("read write", None).is_empty());
        assert!(missing_scopes("read", Some("read write")).is_empty());
    }

    #[test]
    fn providers_are_summed_up_with_percentiles_and_their_latest_error() {
        let mut records = Vec::new();
        for i in 0..100u64 {
            let mut h = AccountHealth::new("alice.example", &format!("a{i}"), "google");
            h.token_ms = Some(i + 1);
            records.push(h);
        }
        let mut dead = AccountHealth::new("bob.example", "b", "google");
        dead.apply(&failure("invalid_grant", true), 50);
        let mut failing = AccountHealth::new("bob.example", "c", "google");
        failing.apply(&failure("upstream_timeout", false), 60);
        records.extend([
            dead,
            failing,
            AccountHealth::new("bob.example", "d", "dropbox"),
        ]);
        let summary = summarize(&records);
        assert_eq!(summary.len(), 2);
        assert_eq!(summary[0].account_type, "dropbox");
        let google = &summary[1];
        assert_eq!(
            (
                google.accounts,
                google.healthy,
                google.failing,
                google.reconnect_needed
            ),
            (102, 100, 1, 1)
        );
        assert_eq!((google.p50_ms, google.p99_ms), (Some(50), Some(99)));
        assert_eq!(google.last_error.as_deref(), Some("upstream_timeout"));
        assert_eq!(google.last_error_at, Some(60));
    }
}
