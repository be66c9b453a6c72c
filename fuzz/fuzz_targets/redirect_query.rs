//! Redirect query strings: parsed, bounded and turned into cozy's query object without panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_broker::domain::account::query_object;
use oauth_broker::http::query::Query;
use oauth_broker::oauth::provider::is_sane_code;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = Query::parse(raw) else { return };
    for key in [
        "code",
        "state",
        "error",
        "access_token",
        "connection_id",
        "connection_deleted",
    ] {
        if let Ok(Some(v)) = q.one(key) {
            assert!(!v.is_empty());
            if key == "error" && is_sane_code(v) {
                assert!(!v.contains(['&', '=', '<', '"']));
            }
        }
        let _ = q.bounded(key, 256);
    }
    let obj = query_object(q.pairs());
    assert!(obj.get("state").is_none());
});
