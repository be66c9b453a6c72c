//! The app slug the flow returns to (`home` by default).

use std::fmt;

/// A validated app slug as cozy-stack accepts one (`[a-z0-9-]+`, its installer's
/// rule), at most 64 characters: one label of the app's host, so nothing else can reach
/// the URL the flow returns to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    /// The Home app, where harvest expects the flow to end.
    pub fn home() -> Slug {
        Slug("home".to_owned())
    }

    /// Parses a slug from the start query; empty means `home`.
    pub fn parse(raw: &str) -> Result<Slug, String> {
        if raw.is_empty() {
            return Ok(Slug::home());
        }
        if raw.len() > 64
            || !raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("slug must be 1 to 64 characters among a-z, 0-9 and -".to_owned());
        }
        Ok(Slug(raw.to_owned()))
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_slug_defaults_to_home() {
        assert_eq!(Slug::parse("").unwrap().as_str(), "home");
    }

    #[test]
    fn slug_with_dots_or_uppercase_is_refused() {
        for bad in ["evil.com", "Home", "a_b", "a/b", "x y", "a@b", "a%2Eb"] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hyphenated_slugs_are_taken_as_cozy_stack_takes_them() {
        for good in ["my-banks", "cozy-drive-web", "a-b"] {
            assert_eq!(Slug::parse(good).unwrap().as_str(), good);
        }
    }
}
