//! Time: one representation of an instant ([`Timestamp`]) and one source of it
//! ([`Clock`]), passed to the code that needs the time so tests can fix it.

use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An instant, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `secs` seconds after the epoch.
    pub fn from_unix_secs(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(1000))
    }

    /// The instant `millis` milliseconds after the epoch.
    pub fn from_unix_millis(millis: i64) -> Timestamp {
        Timestamp(millis)
    }

    /// Whole seconds since the epoch (what stored documents hold).
    pub fn unix_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Milliseconds since the epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// The same instant as a `chrono` date.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(self.0).unwrap_or_default()
    }

    /// RFC 3339 in whole seconds, UTC (`2024-01-01T00:00:00Z`).
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// `d` later.
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// `d` earlier.
    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

/// Where the broker reads the time: the system clock, or a clock a test sets.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock that stays at `at` until [`Clock::set`] moves it.
    pub fn fixed(at: Timestamp) -> Clock {
        Clock {
            fixed: Some(Arc::new(AtomicI64::new(at.unix_millis()))),
        }
    }

    /// Moves a fixed clock (and every copy of it); the system clock ignores this.
    pub fn set(&self, at: Timestamp) {
        if let Some(f) = &self.fixed {
            f.store(at.unix_millis(), Ordering::SeqCst);
        }
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        match &self.fixed {
            Some(f) => Timestamp(f.load(Ordering::SeqCst)),
            None => Timestamp(Utc::now().timestamp_millis()),
        }
    }
}

/// A `since` as operators write it: an RFC 3339 time, or a duration ago (`90s`, `15m`,
/// `2h`, `7d`, or bare seconds); `None` when it is neither.
pub fn parse_since(raw: &str, now: Timestamp) -> Option<Timestamp> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Some(Timestamp::from_unix_millis(at.timestamp_millis()));
    }
    let (digits, unit) = match raw.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&raw[..i], c),
        _ => (raw, 's'),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = n.checked_mul(match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    })?;
    Some(now.minus(std::time::Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_down_including_before_the_epoch() {
        assert_eq!(Timestamp::from_unix_millis(1999).unix_secs(), 1);
        assert_eq!(Timestamp::from_unix_millis(-1).unix_secs(), -1);
        assert_eq!(Timestamp::from_unix_secs(2).unix_millis(), 2000);
    }

    #[test]
    fn a_fixed_clock_moves_only_when_set_and_copies_follow() {
        let c = Clock::fixed(Timestamp::from_unix_secs(1_700_000_000));
        let copy = c.clone();
        c.set(Timestamp::from_unix_secs(1_700_000_060));
        assert_eq!(copy.now().unix_secs(), 1_700_000_060);
        assert_eq!(copy.now().to_rfc3339(), "2023-11-14T22:14:20Z");
    }
}
