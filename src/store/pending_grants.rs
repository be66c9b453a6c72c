//! Tokens a provider issued that are not yet in their account, kept on this machine's
//! disk (`<data_dir>/pending_grants.sqlite3`, synchronous writes) from the moment the
//! provider answers until the account holds them. A rotating provider has already
//! invalidated the old refresh token by then: losing the new pair to a store outage or a
//! killed process would leave the account dead, and re-using the old one can make the
//! provider revoke the whole grant. Entries are sealed when keys are configured.

use super::StoreError;
use crate::domain::sealed::Keyring;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A refresh reply not yet in its account: what to write, and over which refresh token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRefresh {
    /// The instance's domain.
    pub instance: String,
    /// The account's id.
    pub account_id: String,
    /// SHA-256 (hex) of the refresh token the refresh spent: the write goes only over it.
    pub used: String,
    /// The `oauth` members to set (the new tokens, `refreshed_at`).
    pub members: Map<String, Value>,
}

impl std::fmt::Debug for PendingRefresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("PendingRefresh")
            .field("instance", &self.instance)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

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
    pub async fn keep(&self, key: &str, record: &PendingRefresh) -> Result<(), StoreError> {
        let text = serde_json::to_string(record)
            .map_err(|e| StoreError::Invalid(format!("pending grant `{key}`: {e}")))?;
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

    /// The record under `key`, if one is pending. One that opens but is not a refresh
    /// record cannot be written anywhere: it is forgotten and said so.
    pub async fn get(&self, key: &str) -> Result<Option<PendingRefresh>, StoreError> {
        let k = key.to_owned();
        let body: Option<String> = self
            .run(move |c| {
                c.query_row("SELECT body FROM pending WHERE key = ?1", params![k], |r| {
                    r.get(0)
                })
                .optional()
            })
            .await?;
        let Some(record) = body.map(|b| self.decode(key, &b)).transpose()? else {
            return Ok(None);
        };
        match serde_json::from_value(record) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::error!(key, error = %e, "a pending grant that is no refresh record is dropped");
                self.forget(key).await?;
                Ok(None)
            }
        }
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
        let record = PendingRefresh {
            instance: "a.example".into(),
            account_id: "1".into(),
            used: "hash".into(),
            members: json!({"refresh_token": "rt-2"})
                .as_object()
                .unwrap()
                .clone(),
        };
        p.keep("a.example/1", &record).await.unwrap();
        drop(p);
        let raw = std::fs::read(dir.path().join("pending_grants.sqlite3")).unwrap();
        assert!(
            !String::from_utf8_lossy(&raw).contains("rt-2"),
            "sealed at rest"
        );
        let p = PendingGrants::open(dir.path(), keys).unwrap();
        assert_eq!(p.keys().await.unwrap(), ["a.example/1"]);
        let got = p.get("a.example/1").await.unwrap().unwrap();
        assert_eq!(got, record);
        assert!(!format!("{got:?}").contains("rt-2"));
        p.forget("a.example/1").await.unwrap();
        assert!(p.get("a.example/1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_record_of_another_shape_is_dropped_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let p = PendingGrants::open(dir.path(), Arc::new(Keyring::parse("").unwrap())).unwrap();
        let key = "a.example/2".to_owned();
        let k = key.clone();
        p.run(move |c| {
            c.execute(
                "INSERT INTO pending (key, body) VALUES (?1, ?2)",
                params![k, "{\"members\": 3}"],
            )
            .map(|_| ())
        })
        .await
        .unwrap();
        assert!(p.get(&key).await.unwrap().is_none());
        assert!(p.keys().await.unwrap().is_empty());
    }
}
