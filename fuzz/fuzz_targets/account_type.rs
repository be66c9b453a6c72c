//! Account type documents: any JSON parses into a valid type or is refused with a field name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_broker::domain::account_type::{redacted, AccountType, REDACTED};
use oauth_broker::oauth::authorize::{authorization_url, AuthorizeParams};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match AccountType::from_document(&doc) {
        Ok(at) => {
            let params = AuthorizeParams {
                scope: "s t",
                redirect_uri: "https://b.example/r",
                state: "abc",
                code_challenge: Some("ch"),
                login_hint: "someone@example.org",
            };
            if let Some(url) = authorization_url(&at, &params) {
                assert!(url.as_str().contains("state=abc"));
            }
            let r = redacted(&doc);
            if let Some(s) = doc.get("client_secret").filter(|v| !v.is_null()) {
                assert!(r["client_secret"] == REDACTED || s == REDACTED);
            }
        }
        Err(e) => assert!(!e.field.is_empty()),
    }
});
