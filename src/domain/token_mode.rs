//! How the broker authenticates to a token endpoint (`token_mode`).

/// Client authentication and request shape for code exchange and refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenMode {
    /// POST form body with `client_id` and `client_secret` (cozy's default).
    #[default]
    Form,
    /// POST form body, credentials in an HTTP Basic header.
    Basic,
    /// GET with every parameter in the query string.
    Get,
    /// POST JSON body with the credentials (providers such as Notion).
    Json,
}

impl TokenMode {
    /// Parses the document value; empty means `form`, as in cozy-stack.
    pub fn parse(raw: &str) -> Result<TokenMode, String> {
        match raw {
            "" | "form" => Ok(TokenMode::Form),
            "basic" => Ok(TokenMode::Basic),
            "get" => Ok(TokenMode::Get),
            "json" => Ok(TokenMode::Json),
            other => Err(format!(
                "unknown token mode `{other}`; expected one of form, basic, get, json"
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
