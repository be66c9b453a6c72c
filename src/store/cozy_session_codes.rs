//! cozy-stack's session codes, in its Redis `sessions` database: a code is spent by the
//! same single `DEL <prefix>:sessioncode:<code>` cozy-stack issues, so it works once, in
//! either program.

use super::StoreError;
use redis::AsyncConnectionConfig;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a connection or a command may take before Redis is called down.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a session code has cozy-stack's shape: 32 letters and digits.
pub fn is_cozy_session_code(code: &str) -> bool {
    code.len() == 32 && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A connection to cozy-stack's Redis, opened on first use and again after a failure.
pub struct CozySessionCodes {
    client: redis::Client,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl std::fmt::Debug for CozySessionCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CozySessionCodes")
    }
}

impl CozySessionCodes {
    /// Over the Redis at `url` (`redis://host:6379/3`); the URL is checked, not dialled.
    pub fn new(url: &str) -> Result<CozySessionCodes, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(CozySessionCodes {
            client,
            connection: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, StoreError> {
        if let Some(c) = self.connection.lock().await.as_ref() {
            return Ok(c.clone());
        }
        // Dialled without the lock: with Redis down, waiting callers must not queue behind
        // each other's connection timeouts.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(unavailable)?;
        *self.connection.lock().await = Some(c.clone());
        Ok(c)
    }

    /// Whether Redis answers (`PING`), for `doctor` and start-up.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Spends `code` of the instance whose database prefix is `prefix`: true when it
    /// existed (and is now gone).
    pub async fn redeem(&self, prefix: &str, code: &str) -> Result<bool, StoreError> {
        if !is_cozy_session_code(code) {
            return Ok(false);
        }
        let mut c = self.connection().await?;
        let key = format!("{prefix}:sessioncode:{code}");
        match redis::cmd("DEL").arg(&key).query_async::<i64>(&mut c).await {
            Ok(n) => Ok(n == 1),
            Err(e) => {
                // Dial again next time.
                *self.connection.lock().await = None;
                Err(unavailable(e))
            }
        }
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("cozy-stack's Redis: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cozy_codes_are_32_letters_and_digits() {
        assert!(is_cozy_session_code("abcdefghijABCDEFGHIJ0123456789xy"));
        assert!(!is_cozy_session_code(&"a".repeat(64)));
        assert!(!is_cozy_session_code("abcdefghijABCDEFGHIJ0123456789x-"));
    }
}
