//! `konnector-dev-config.json`: what cozy-konnector-libs reads in standalone mode.
//!
//! The konnector gets `fields` as its `start(fields)` argument; the broker writes the
//! tokens there and keeps every other member as it was (order included).

use crate::domain::account::TokenGrant;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Member where the broker remembers which account type made the tokens.
pub(crate) const BROKER_MEMBER: &str = "oauth_broker";

/// Why the dev config cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// Reading or writing failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file is not a JSON object (comments are not kept, so a commented file is refused).
    #[error("{0}: not a JSON object ({1}); fix it or move it away")]
    Malformed(String, String),
    /// A member the command needs is absent.
    #[error("{0}: {1}")]
    Missing(String, &'static str),
}

/// A loaded dev config, written back whole.
#[derive(Debug, Clone)]
pub(crate) struct KonnectorConfig {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl KonnectorConfig {
    /// Reads `path`; a missing file is an empty config.
    pub(crate) fn load(path: &Path) -> Result<KonnectorConfig, ConfigError> {
        let shown = path.display().to_string();
        let doc = match std::fs::read_to_string(path) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(ConfigError::Malformed(shown, "not an object".into())),
                Err(e) => return Err(ConfigError::Malformed(shown, e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(ConfigError::Io(shown, e)),
        };
        if doc.get("fields").is_some_and(|f| !f.is_object()) {
            return Err(ConfigError::Malformed(
                path.display().to_string(),
                "`fields` is not an object".into(),
            ));
        }
        Ok(KonnectorConfig {
            path: path.to_owned(),
            doc,
        })
    }

    /// Where it lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn fields(&self) -> Option<&Map<String, Value>> {
        self.doc.get("fields").and_then(Value::as_object)
    }

    fn fields_mut(&mut self) -> &mut Map<String, Value> {
        let fields = self
            .doc
            .entry("fields")
            .or_insert_with(|| Value::Object(Map::new()));
        if !fields.is_object() {
            *fields = Value::Object(Map::new());
        }
        match fields {
            Value::Object(m) => m,
            _ => unreachable!("made an object above"),
        }
    }

    /// `fields.access_token`.
    pub(crate) fn access_token(&self) -> Option<&str> {
        self.fields()?.get("access_token")?.as_str()
    }

    /// `fields.refresh_token`.
    pub(crate) fn refresh_token(&self) -> Option<&str> {
        self.fields()?.get("refresh_token")?.as_str()
    }

    /// `fields.expires_at`, when it is a date.
    pub(crate) fn expires_at(&self) -> Option<DateTime<Utc>> {
        let raw = self.fields()?.get("expires_at")?.as_str()?;
        DateTime::parse_from_rfc3339(raw)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// What `dev login` recorded of the account type (`oauth_broker`).
    pub(crate) fn origin(&self) -> Result<&Map<String, Value>, ConfigError> {
        self.doc
            .get(BROKER_MEMBER)
            .and_then(Value::as_object)
            .ok_or_else(|| {
                ConfigError::Missing(
                    self.path.display().to_string(),
                    "no `oauth_broker` member: run `oauth-broker dev login TYPE` first",
                )
            })
    }

    /// Records the account type the tokens come from.
    pub(crate) fn set_origin(&mut self, origin: Map<String, Value>) {
        self.doc.insert(BROKER_MEMBER.into(), Value::Object(origin));
    }

    /// Writes tokens from a login: a refresh token the provider did not send is dropped,
    /// since it belonged to an older grant.
    pub(crate) fn set_login(&mut self, grant: &TokenGrant) {
        self.set_tokens(grant, false);
    }

    /// Writes tokens from a refresh: the stored refresh token stays unless a new one came.
    pub(crate) fn set_refresh(&mut self, grant: &TokenGrant) {
        self.set_tokens(grant, true);
    }

    fn set_tokens(&mut self, grant: &TokenGrant, keep_refresh: bool) {
        let fields = self.fields_mut();
        fields.insert("access_token".into(), grant.access_token.clone().into());
        match &grant.refresh_token {
            Some(r) => {
                fields.insert("refresh_token".into(), r.clone().into());
            }
            None if !keep_refresh => {
                fields.remove("refresh_token");
            }
            None => {}
        }
        match grant.expires_at {
            Some(t) => {
                fields.insert(
                    "expires_at".into(),
                    t.to_rfc3339_opts(SecondsFormat::Secs, true).into(),
                );
            }
            None => {
                fields.remove("expires_at");
            }
        }
    }

    /// Writes the file atomically (a temporary file renamed over it), readable by its owner
    /// only, since it now holds tokens.
    pub(crate) fn save(&self) -> Result<(), ConfigError> {
        let shown = self.path.display().to_string();
        let io = |e| ConfigError::Io(shown.clone(), e);
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // `{:#}` is serde_json's pretty form, which cannot fail for a value in memory.
        let mut text = format!("{:#}", Value::Object(self.doc.clone()));
        text.push('\n');
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("konnector-dev-config.json"),
            std::process::id()
        ));
        write_private(&tmp, text.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grant(refresh: Option<&str>) -> TokenGrant {
        TokenGrant {
            access_token: "at".into(),
            token_type: Some("bearer".into()),
            expires_at: Some("2030-01-01T00:00:00Z".parse().unwrap()),
            refresh_token: refresh.map(str::to_owned),
            callback_results: Map::new(),
        }
    }

    #[test]
    fn tokens_are_written_and_every_other_member_is_kept_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("konnector-dev-config.json");
        std::fs::write(
            &path,
            r#"{"COZY_URL": "http://cozy.tools:8080", "fields": {"login": "me", "folderPath": "/tmp/x"}, "zzz": 1}"#,
        )
        .unwrap();
        let mut c = KonnectorConfig::load(&path).unwrap();
        c.set_login(&grant(Some("rt")));
        c.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({"COZY_URL": "http://cozy.tools:8080", "fields": {"login": "me", "folderPath": "/tmp/x",
                "access_token": "at", "refresh_token": "rt", "expires_at": "2030-01-01T00:00:00Z"}, "zzz": 1})
        );
        assert!(text.find("COZY_URL").unwrap() < text.find("zzz").unwrap());
    }

    #[test]
    fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = KonnectorConfig::load(&dir.path().join("k.json")).unwrap();
        c.set_login(&grant(Some("rt")));
        c.set_refresh(&grant(None));
        assert_eq!(c.refresh_token(), Some("rt"));
        c.set_login(&grant(None));
        assert_eq!(c.refresh_token(), None);
    }

    #[test]
    fn a_commented_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        std::fs::write(&path, "{ // a comment\n}").unwrap();
        let err = KonnectorConfig::load(&path).unwrap_err();
        assert!(err.to_string().contains("k.json"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ // a comment\n}");
    }
}
