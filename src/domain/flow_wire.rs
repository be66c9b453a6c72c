//! The bytes a [`FlowState`] is sealed as: short enough that the whole `state` stays
//! within [`MAX_STATE_CHARS`] for what Harvest sends (a UUID state, a `Date.now()` nonce,
//! the app's slug) on any instance domain of a usual length. cozy-stack's states are 32
//! characters; a provider or a firewall may cap what it echoes.
//!
//! Version 2 layout: `flags ‖ expires_at (u32 BE) ‖ field*`, each field a length byte
//! and its bytes, in the order instance, type, slug, state, nonce, then account id,
//! provider and scope when their flag is set. A UUID state and a decimal nonce are packed
//! (16 and 8 bytes). Version 1 (JSON) is still read, for flows started before an upgrade.

use super::flow_state::{AskedScope, FlowState};
use super::{Domain, Slug};
use serde::Deserialize;

/// The longest `state` the broker sends (base64url characters).
pub const MAX_STATE_CHARS: usize = 256;

const PKCE: u8 = 1;
const BOUND: u8 = 1 << 1;
const ACCOUNT: u8 = 1 << 2;
const PROVIDER: u8 = 1 << 3;
const SCOPE_NAMED: u8 = 1 << 4;
const STATE_UUID: u8 = 1 << 5;
const NONCE_NUMBER: u8 = 1 << 6;
const SCOPE_UNRECORDED: u8 = 1 << 7;

/// A flow whose fields do not fit a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// Encodes `flow` (version 2); `TooLong` when a field exceeds 255 bytes.
pub fn encode(flow: &FlowState) -> Result<Vec<u8>, TooLong> {
    let mut flags = 0u8;
    let mut out = vec![0u8];
    // A flow's expiry is now plus minutes: it fits until 2106. Past that it would read
    // as already expired, never as lasting longer.
    out.extend_from_slice(&u32::try_from(flow.expires_at).unwrap_or(0).to_be_bytes());
    let mut field = |bytes: &[u8]| -> Result<(), TooLong> {
        let len = u8::try_from(bytes.len()).map_err(|_| TooLong)?;
        out.push(len);
        out.extend_from_slice(bytes);
        Ok(())
    };
    field(flow.instance.as_str().as_bytes())?;
    field(flow.account_type.as_bytes())?;
    field(flow.slug.as_str().as_bytes())?;
    match uuid_bytes(&flow.client_state) {
        Some(b) => {
            flags |= STATE_UUID;
            field(&b)?;
        }
        None => field(flow.client_state.as_bytes())?,
    }
    match number_bytes(&flow.nonce) {
        Some(b) => {
            flags |= NONCE_NUMBER;
            field(&b)?;
        }
        None => field(flow.nonce.as_bytes())?,
    }
    if let Some(id) = &flow.account_id {
        flags |= ACCOUNT;
        field(id.as_bytes())?;
    }
    if let Some(p) = &flow.provider_url {
        flags |= PROVIDER;
        field(p.as_bytes())?;
    }
    match &flow.scope {
        AskedScope::TypeDefault => {}
        AskedScope::Named(s) => {
            flags |= SCOPE_NAMED;
            field(s.as_bytes())?;
        }
        AskedScope::Unrecorded => flags |= SCOPE_UNRECORDED,
    }
    if flow.pkce {
        flags |= PKCE;
    }
    if flow.bound {
        flags |= BOUND;
    }
    out[0] = flags;
    Ok(out)
}

/// Decodes version 2 bytes; `None` for anything [`encode`] did not make.
pub fn decode(bytes: &[u8]) -> Option<FlowState> {
    let (&flags, rest) = bytes.split_first()?;
    let (expires, mut rest) = rest.split_at_checked(4)?;
    let expires_at = i64::from(u32::from_be_bytes(expires.try_into().ok()?));
    let mut next = || -> Option<&[u8]> {
        let (&len, tail) = rest.split_first()?;
        let (value, tail) = tail.split_at_checked(usize::from(len))?;
        rest = tail;
        Some(value)
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    let instance = Domain::parse(&text(next()?)?).ok()?;
    let account_type = text(next()?)?;
    let slug = Slug::parse(&text(next()?)?).ok()?;
    let state = next()?;
    let client_state = if flags & STATE_UUID != 0 {
        uuid_text(state)?
    } else {
        text(state)?
    };
    let nonce = next()?;
    let nonce = if flags & NONCE_NUMBER != 0 {
        u64::from_be_bytes(nonce.try_into().ok()?).to_string()
    } else {
        text(nonce)?
    };
    let account_id = if flags & ACCOUNT != 0 {
        Some(text(next()?)?)
    } else {
        None
    };
    let provider_url = if flags & PROVIDER != 0 {
        Some(text(next()?)?)
    } else {
        None
    };
    let scope = if flags & SCOPE_NAMED != 0 {
        AskedScope::Named(text(next()?)?)
    } else if flags & SCOPE_UNRECORDED != 0 {
        AskedScope::Unrecorded
    } else {
        AskedScope::TypeDefault
    };
    if !rest.is_empty() {
        return None;
    }
    Some(FlowState {
        instance,
        account_type,
        client_state,
        nonce,
        slug,
        expires_at,
        pkce: flags & PKCE != 0,
        bound: flags & BOUND != 0,
        account_id,
        provider_url,
        scope,
    })
}

/// Version 1: JSON with short names (states made before version 2).
#[derive(Deserialize)]
struct WireV1 {
    i: String,
    t: String,
    #[serde(default)]
    s: String,
    #[serde(default)]
    n: String,
    a: String,
    e: i64,
    #[serde(default)]
    k: bool,
    #[serde(default)]
    b: bool,
    #[serde(default)]
    c: Option<String>,
    #[serde(default)]
    p: Option<String>,
    #[serde(default)]
    o: Option<String>,
}

/// Decodes version 1 JSON; its redirect URI is not read (the redirect derives it again).
pub fn decode_v1(bytes: &[u8]) -> Option<FlowState> {
    let w: WireV1 = serde_json::from_slice(bytes).ok()?;
    Some(FlowState {
        instance: Domain::parse(&w.i).ok()?,
        account_type: w.t,
        client_state: w.s,
        nonce: w.n,
        slug: Slug::parse(&w.a).ok()?,
        expires_at: w.e,
        pkce: w.k,
        bound: w.b,
        account_id: w.c,
        provider_url: w.p,
        scope: w.o.map_or(AskedScope::TypeDefault, AskedScope::Named),
    })
}

/// The 16 bytes of a lowercase hyphenated UUID (what Harvest sends), else `None`.
fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    let canonical = s.len() == 36
        && [8, 13, 18, 23]
            .iter()
            .all(|&i| s.as_bytes().get(i) == Some(&b'-'))
        && hex.len() == 32
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !canonical {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

fn uuid_text(b: &[u8]) -> Option<String> {
    let h = hex::encode(<[u8; 16]>::try_from(b).ok()?);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// A decimal number without leading zero (what `Date.now()` gives), as 8 bytes.
fn number_bytes(s: &str) -> Option<[u8; 8]> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    let n: u64 = s.parse().ok().filter(|_| canonical)?;
    Some(n.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> FlowState {
        FlowState {
            instance: Domain::parse("alice.mycozy.cloud").unwrap(),
            account_type: "google".into(),
            client_state: "0f8813fb-816d-4fe5-982f-86328b627cfb".into(),
            nonce: "1796671408740".into(),
            slug: Slug::home(),
            expires_at: 1_800_000_000,
            pkce: true,
            bound: true,
            account_id: None,
            provider_url: None,
            scope: AskedScope::TypeDefault,
        }
    }

    #[test]
    fn every_field_comes_back_as_it_was() {
        let variants = [
            flow(),
            FlowState {
                client_state: "not-a-uuid".into(),
                nonce: "0123".into(),
                account_id: Some("acc".into()),
                provider_url: Some("https://p.example".into()),
                scope: AskedScope::Named("a b".into()),
                pkce: false,
                bound: false,
                ..flow()
            },
            FlowState {
                client_state: String::new(),
                nonce: String::new(),
                scope: AskedScope::Unrecorded,
                ..flow()
            },
            FlowState {
                client_state: "0F8813FB-816D-4FE5-982F-86328B627CFB".into(),
                ..flow()
            },
        ];
        for f in variants {
            assert_eq!(decode(&encode(&f).unwrap()).as_ref(), Some(&f));
        }
    }

    #[test]
    fn harvests_flow_packs_its_state_and_nonce() {
        // 1 + 4 + 19 + 7 + 5 + 17 + 9
        assert_eq!(encode(&flow()).unwrap().len(), 62);
    }

    #[test]
    fn a_field_over_255_bytes_does_not_fit() {
        let f = FlowState {
            client_state: "x".repeat(256),
            ..flow()
        };
        assert_eq!(encode(&f), Err(TooLong));
    }

    #[test]
    fn truncated_or_padded_bytes_are_not_a_flow() {
        let bytes = encode(&flow()).unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "{cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
    }
}
