//! Query strings encoded as Go's `url.Values.Encode`, which cozy clients and tests expect.

use std::collections::BTreeMap;

/// Percent-encodes like Go's `url.QueryEscape`: unreserved bytes kept, space as `+`.
pub fn go_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                // Without `format!`: this runs for every byte of every URL the broker builds.
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xF)]));
            }
        }
    }
    out
}

/// Encodes pairs with keys sorted and values kept in insertion order per key.
pub fn encode_sorted<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in pairs {
        by_key.entry(k.as_ref()).or_default().push(v.as_ref());
    }
    let mut out = String::new();
    for (k, values) in by_key {
        for v in values {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&go_query_escape(k));
            out.push('=');
            out.push_str(&go_query_escape(v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        assert_eq!(go_query_escape("the world~*/"), "the+world~%2A%2F");
    }

    #[test]
    fn sorts_keys_and_keeps_value_order() {
        let pairs = [("b", "2"), ("a", "1"), ("b", "1")];
        assert_eq!(encode_sorted(&pairs), "a=1&b=2&b=1");
    }
}
