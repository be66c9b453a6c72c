//! cozy-stack's Redis, where its session codes are.

use super::Finding;
use crate::config::redact_url;
use crate::store::cozy_session_codes::CozySessionCodes;

/// cozy-stack's Redis, where its session codes are.
pub(super) async fn check(url: &str) -> Finding {
    let shown = redact_url(url);
    let codes = match CozySessionCodes::new(url) {
        Ok(c) => c,
        Err(e) => {
            return Finding::error("redis", format!("`{shown}` is not a Redis URL: {e}"))
                .about("cozy.redis_url")
        }
    };
    match codes.ping().await {
        Ok(()) => Finding::ok("redis", format!("{shown} answers")),
        Err(e) => Finding::error(
            "redis",
            format!("{shown} does not answer: {e}; cozy-stack's session codes cannot be redeemed"),
        )
        .about("cozy.redis_url"),
    }
}
