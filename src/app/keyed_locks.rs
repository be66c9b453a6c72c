//! One async lock per key, shared by every holder while one exists: single flight of
//! refreshes and registrations inside one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Async locks by key; unused keys are forgotten.
#[derive(Default)]
pub(crate) struct KeyedLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    /// The lock of `key`, shared by every holder while one exists.
    pub(crate) fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        // The map holds no invariant a panic could break: a poisoned lock is still usable.
        let mut map = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lock) = map.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_one_lock_while_held_and_forgotten_after() {
        let locks = KeyedLocks::default();
        let a = locks.lock_for("a");
        assert!(Arc::ptr_eq(&a, &locks.lock_for("a")));
        assert!(!Arc::ptr_eq(&a, &locks.lock_for("b")));
        drop(a);
        let _c = locks.lock_for("c");
        assert_eq!(locks.locks.lock().unwrap().len(), 1);
    }
}
