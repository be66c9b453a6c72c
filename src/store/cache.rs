//! A bounded read cache kept true by a changes feed: entries are forgotten when the
//! documents behind them change (the feed, or this process's own writes), and trusted for
//! at most a time to live should the feed stall.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Cached values by key, and a count of invalidations: a value read from the store
/// before an invalidation is not cached, since it may be what the invalidation replaced.
pub struct ChangesCache<V> {
    inner: Mutex<Inner<V>>,
    max: usize,
    ttl: Duration,
}

struct Inner<V> {
    entries: HashMap<String, (V, Instant)>,
    generation: u64,
}

impl<V: Clone> ChangesCache<V> {
    /// A cache of at most `max` entries (emptied when full), each trusted for `ttl`.
    pub fn new(max: usize, ttl: Duration) -> ChangesCache<V> {
        ChangesCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                generation: 0,
            }),
            max,
            ttl,
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`: cached, or read by `load` and cached unless an invalidation
    /// happened meanwhile.
    pub async fn get_or_load<E, F>(&self, key: &str, load: impl FnOnce() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let generation = {
            let inner = self.inner();
            if let Some((value, at)) = inner.entries.get(key) {
                if at.elapsed() < self.ttl {
                    return Ok(value.clone());
                }
            }
            inner.generation
        };
        let value = load().await?;
        let mut inner = self.inner();
        if inner.generation == generation {
            if inner.entries.len() >= self.max {
                inner.entries.clear();
            }
            inner
                .entries
                .insert(key.to_owned(), (value.clone(), Instant::now()));
        }
        Ok(value)
    }

    /// Forgets the given keys.
    pub fn forget<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner();
        inner.generation += 1;
        for key in keys {
            inner.entries.remove(key);
        }
    }

    /// Forgets everything.
    pub fn forget_all(&self) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: u32) -> impl Future<Output = Result<u32, ()>> {
        std::future::ready(Ok(v))
    }

    #[tokio::test]
    async fn a_cached_value_is_reused_until_forgotten() {
        let cache = ChangesCache::new(10, Duration::from_secs(60));
        assert_eq!(cache.get_or_load("a", || ok(1)).await, Ok(1));
        assert_eq!(cache.get_or_load("a", || ok(2)).await, Ok(1));
        cache.forget(["a"]);
        assert_eq!(cache.get_or_load("a", || ok(3)).await, Ok(3));
        cache.forget_all();
        assert_eq!(cache.get_or_load("a", || ok(4)).await, Ok(4));
    }

    #[tokio::test]
    async fn a_read_overtaken_by_an_invalidation_is_not_cached() {
        let cache = ChangesCache::new(10, Duration::from_secs(60));
        let value = cache
            .get_or_load("a", || async {
                // The document changes while it is being read.
                cache.forget(["a"]);
                Ok::<_, ()>(1)
            })
            .await;
        assert_eq!(value, Ok(1));
        assert_eq!(cache.get_or_load("a", || ok(2)).await, Ok(2));
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_entries_expire_and_are_bounded() {
        let cache = ChangesCache::new(2, Duration::from_millis(0));
        assert_eq!(
            cache
                .get_or_load("a", || std::future::ready(Err("down")))
                .await,
            Err("down")
        );
        assert_eq!(cache.get_or_load("a", || ok(1)).await, Ok::<_, ()>(1));
        // A time to live of zero: read again.
        assert_eq!(cache.get_or_load("a", || ok(2)).await, Ok::<_, ()>(2));
        let bounded = ChangesCache::new(2, Duration::from_secs(60));
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            bounded.get_or_load(k, || ok(v)).await.unwrap();
        }
        assert!(bounded.inner().entries.len() <= 2);
    }
}
