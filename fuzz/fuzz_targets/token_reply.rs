//! Token endpoint replies: any bytes under any content type must parse or be refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_broker::oauth::token_reply::{grant_from_members, parse_members};

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("text/plain"),
    Some("text/html"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let ct = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    if let Ok(members) = parse_members(ct, body) {
        if let Ok(grant) = grant_from_members(members, chrono::Utc::now()) {
            assert!(!grant.access_token.is_empty());
            let doc = oauth_broker::domain::account::from_token_grant("t", &grant);
            assert!(doc["oauth"]["expires_at"].is_string());
        }
    }
});
