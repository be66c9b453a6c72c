//! Query strings parsed once, bounded in size, with single-valued parameters enforced.

use crate::app::Error;
use crate::domain::ErrorCode;

/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Decoded query pairs, in order.
#[derive(Debug)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: &str) -> Result<Query, Error> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(Error::TooLarge("the query string is too long"));
        }
        let pairs = url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect();
        Ok(Query { pairs })
    }

    /// A parameter that may appear once; empty counts as absent.
    pub fn one(&self, key: &'static str) -> Result<Option<&str>, Error> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(Error::BadRequest {
                code: ErrorCode::DuplicateParameter,
                detail: format!("parameter `{key}` must appear at most once"),
            });
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// A single parameter bounded to `max` bytes, without control characters (they have
    /// no business in a state, a scope or an id, and would end up in headers and pages).
    pub fn bounded(&self, key: &'static str, max: usize) -> Result<&str, Error> {
        let v = self.one(key)?.unwrap_or("");
        if v.len() > max {
            return Err(Error::BadRequest {
                code: ErrorCode::ParameterTooLong,
                detail: format!("parameter `{key}` is longer than {max} bytes"),
            });
        }
        if v.chars().any(char::is_control) {
            return Err(Error::BadRequest {
                code: ErrorCode::InvalidParameter,
                detail: format!("parameter `{key}` contains control characters"),
            });
        }
        Ok(v)
    }

    /// A yes/no parameter (`true`/`1`, `false`/`0`); absent is no.
    pub fn flag(&self, key: &'static str) -> Result<bool, Error> {
        match self.one(key)? {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(_) => Err(Error::BadRequest {
                code: ErrorCode::InvalidParameter,
                detail: format!("parameter `{key}` must be true or false"),
            }),
        }
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}
