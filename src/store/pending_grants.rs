//! Tokens a provider issued that are not yet in their account, kept on this machine's
//! disk (`<data_dir>/pending_grants.sqlite3`, synchronous writes) from the moment the
//! provider answers until the account holds them. A rotating provider has already
//! invalidated the old refresh token by then: losing the new pair to a store outage or a
//! killed process would leave the account dead, and re-using the old one can make the
//! provider revoke the whole grant. Entries are sealed when keys are configured.

use super::StoreError;
use crate::domain::sealed::Keyring;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The journal of pending grants.
#[derive(Clone)]
pub struct PendingGrants {
    conn: Arc<Mutex<Connection>>,
    keyring: Arc<Keyring>,
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("pending grants journal: {e}"))
}

fn aad(key: &str) -> String {
    format!("pending_grant/{key}")
}

impl PendingGrants {
    /// Opens (or creates) the journal in `dir`.
    pub fn open(dir: &Path, keyring: Arc<Keyring>) -> Result<PendingGrants, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("pending_grants.sqlite3")).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS pending (key TEXT PRIMARY KEY, body TEXT NOT NULL);",
        )
        .map_err(sql)?;
        Ok(PendingGrants {
            conn: Arc::new(Mutex::new(conn)),
            keyring,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| StoreError::Unavailable("pending grants lock poisoned".into()))?;
            f(&guard).map_err(sql)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("pending grants task: {e}")))?
    }

    /// Keeps `record` under `key` (one per account), durably, before this returns.
    pub async fn keep(&self, key: &str, record: &Value) -> Result<(), StoreError> {
        let text = record.to_string();
        let body = self.keyring.seal(&text, &aad(key)).unwrap_or(text);
        let key = key.to_owned();
        self.run(move |c| {
            c.execute(
                "INSERT INTO pending (key, body) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET body = excluded.body",
                params![key, body],
            )
            .map(|_| ())
        })
        .await
    }

    /// The record under `key`, if one is pending.
    pub async fn get(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let k = key.to_owned();
        let body: Option<String> = self
            .run(move |c| {
                c.query_row("SELECT body FROM pending WHERE key = ?1", params![k], |r| {
                    r.get(0)
                })
                .optional()
            })
            .await?;
        body.map(|b| self.decode(key, &b)).transpose()
    }

    /// Every pending key.
    pub async fn keys(&self) -> Result<Vec<String>, StoreError> {
        self.run(|c| {
            let mut stmt = c.prepare("SELECT key FROM pending ORDER BY key")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    /// Forgets `key` once its grant is in the account (or superseded).
    pub async fn forget(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run(move |c| {
            c.execute("DELETE FROM pending WHERE key = ?1", params![key])
                .map(|_| ())
        })
        .await
    }

    fn decode(&self, key: &str, body: &str) -> Result<Value, StoreError> {
        let text = self
            .keyring
            .open(body, &aad(key))
            .map_err(|e| StoreError::Invalid(format!("pending grant `{key}`: {e}")))?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Invalid(format!("pending grant `{key}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_kept_grant_survives_reopening_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(Keyring::parse(&format!("k1:{}", "A".repeat(43) + "=")).unwrap());
        let p = PendingGrants::open(dir.path(), keys.clone()).unwrap();
        p.keep(
            "a.example/1",
            &json!({"members": {"refresh_token": "rt-2"}}),
        )
        .await
        .unwrap();
        drop(p);
        let raw = std::fs::read(dir.path().join("pending_grants.sqlite3")).unwrap();
        assert!(
            !String::from_utf8_lossy(&raw).contains("rt-2"),
            "sealed at rest"
        );
        let p = PendingGrants::open(dir.path(), keys).unwrap();
        assert_eq!(p.keys().await.unwrap(), ["a.example/1"]);
        let got = p.get("a.example/1").await.unwrap().unwrap();
        assert_eq!(got["members"]["refresh_token"], "rt-2");
        p.forget("a.example/1").await.unwrap();
        assert!(p.get("a.example/1").await.unwrap().is_none());
    }
}
