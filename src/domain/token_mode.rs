//! How the broker authenticates to a token endpoint (`token_mode`).

/// Client authentication and request shape for code exchange and refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenMode {
    /// POST form body with `client_id` and `client_secret` (cozy's default).
    #[default]
    Form,
    /// POST form body, credentials raw in an HTTP Basic header (`id:secret`, as
    /// cozy-stack's `SetBasicAuth` sends them).
    Basic,
    /// POST form body, credentials form-encoded before the HTTP Basic header (RFC 6749
    /// §2.3.1), for providers that decode them (`basic_rfc6749`).
    BasicRfc6749,
    /// GET with every parameter in the query string.
    Get,
    /// POST JSON body with the credentials (providers such as Notion).
    Json,
}

impl TokenMode {
    /// Whether the client authenticates in an HTTP Basic header.
    pub fn is_basic(self) -> bool {
        matches!(self, TokenMode::Basic | TokenMode::BasicRfc6749)
    }

    /// Parses the document value; empty means `form`, as in cozy-stack.
    pub fn parse(raw: &str) -> Result<TokenMode, String> {
        match raw {
            "" | "form" => Ok(TokenMode::Form),
            "basic" => Ok(TokenMode::Basic),
            "basic_rfc6749" => Ok(TokenMode::BasicRfc6749),
            "get" => Ok(TokenMode::Get),
            "json" => Ok(TokenMode::Json),
            other => Err(format!(
                "unknown token mode `{other}`; expected one of form, basic, basic_rfc6749, get, json"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_token_mode_is_form() {
        assert_eq!(TokenMode::parse(""), Ok(TokenMode::Form));
    }

    #[test]
    fn unknown_token_mode_is_refused() {
        assert!(TokenMode::parse("header").is_err());
    }
}
