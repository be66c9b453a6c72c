//! Where an account type given on the command line comes from: a JSON file, or a
//! catalogue template filled in with credentials and parameters.

use crate::catalogue::{Catalogue, Inputs};
use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Environment variable holding the client secret itself, when no file is given.
pub const CLIENT_SECRET_ENV: &str = "OAUTH_CLIENT_SECRET";

/// An account type from a file or a template, and the credentials that complete it.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// A JSON file with an `_id`, or the name of a catalogue template (`google`).
    pub source: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Credentials and template inputs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// Document id, when not the template's (`ctx/google` overloads it for a context).
    #[arg(long)]
    pub id: Option<String>,
    /// OAuth client id.
    #[arg(long, env = "OAUTH_CLIENT_ID")]
    pub client_id: Option<String>,
    /// File holding the OAuth client secret (`-` for standard input). The secret itself
    /// may come from $OAUTH_CLIENT_SECRET; it is never a flag, to keep it out of shell
    /// history and `ps`.
    #[arg(long, env = "OAUTH_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// A template parameter, `name=value` (repeatable): `--param subdomain=acme`.
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Registered redirect URI, when not the default.
    #[arg(long)]
    pub redirect_uri: Option<String>,
    /// Read templates from this folder instead of the built-in catalogue.
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
}

fn parse_param(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{raw}` is not name=value"))
}

/// The catalogue these arguments name.
pub fn catalogue(dir: Option<&Path>) -> anyhow::Result<Catalogue> {
    Ok(match dir {
        Some(d) => Catalogue::from_dir(d)?,
        None => Catalogue::builtin()?,
    })
}

/// True when `source` names a file rather than a template.
pub fn is_file(source: &str) -> bool {
    source.ends_with(".json")
        || source.contains(std::path::MAIN_SEPARATOR)
        || Path::new(source).is_file()
}

impl ClientArgs {
    /// The client secret from the file or the environment, if any.
    pub fn client_secret(&self) -> anyhow::Result<Option<String>> {
        let raw = match &self.client_secret_file {
            Some(p) if p.as_os_str() == "-" => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .context("reading the client secret from standard input")?;
                s
            }
            Some(p) => {
                warn_if_readable_by_others(p);
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading the client secret from {}", p.display()))?
            }
            None => match std::env::var(CLIENT_SECRET_ENV) {
                Ok(s) => s,
                Err(_) => return Ok(None),
            },
        };
        let secret = raw.trim_end_matches(['\r', '\n']).to_owned();
        if secret.is_empty() {
            bail!("the client secret is empty");
        }
        Ok(Some(secret))
    }

    fn has_template_inputs(&self) -> bool {
        !self.params.is_empty() || self.catalogue.is_some()
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(p) {
        if m.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "warning: {} is readable by other users; `chmod 600` it",
                p.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// An account-type document built from a source, and a label for messages.
#[derive(Debug, Clone)]
pub struct Built {
    /// The document, validated.
    pub doc: Value,
    /// The file or template it came from.
    pub label: String,
}

/// Builds the document: a file's fields, or a template's, completed with the credentials,
/// id and redirect URI given. Validated; nothing is stored.
pub fn build(args: &SourceArgs) -> anyhow::Result<Built> {
    let c = &args.client;
    let secret = c.client_secret()?;
    if is_file(&args.source) {
        if c.has_template_inputs() {
            bail!(
                "--param and --catalogue apply to templates, and `{}` is a file",
                args.source
            );
        }
        let path = Path::new(&args.source);
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let Some(obj) = doc.as_object_mut() else {
            bail!("{}: must be a JSON object", path.display());
        };
        obj.remove("template");
        for (k, v) in [
            ("_id", c.id.clone()),
            ("client_id", c.client_id.clone()),
            ("client_secret", secret),
            ("redirect_uri", c.redirect_uri.clone()),
        ] {
            if let Some(v) = v {
                obj.insert(k.into(), Value::String(v));
            }
        }
        crate::domain::AccountType::from_document(&doc)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(Built {
            doc,
            label: path.display().to_string(),
        });
    }
    let cat = catalogue(c.catalogue.as_deref())?;
    let (file, template) = cat.get(&args.source)?;
    let doc = template.instantiate(
        file,
        Inputs {
            id: c.id.clone(),
            client_id: c.client_id.clone(),
            client_secret: secret,
            params: c.params.iter().cloned().collect::<BTreeMap<_, _>>(),
            redirect_uri: c.redirect_uri.clone(),
        },
    )?;
    Ok(Built {
        doc,
        label: format!("template `{}`", args.source),
    })
}

/// What `dev login` records to build the same account type again for `dev refresh`:
/// the source and its parameters, never the credentials.
pub fn origin_of(args: &SourceArgs) -> Map<String, Value> {
    let mut m = Map::new();
    let source = if is_file(&args.source) {
        std::fs::canonicalize(&args.source)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| args.source.clone())
    } else {
        args.source.clone()
    };
    m.insert("account_type".into(), source.into());
    if !args.client.params.is_empty() {
        m.insert(
            "params".into(),
            args.client
                .params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>()
                .into(),
        );
    }
    if let Some(c) = &args.client.catalogue {
        m.insert("catalogue".into(), c.display().to_string().into());
    }
    m
}

/// The source recorded by `origin_of`, completed with today's credentials.
pub fn from_origin(origin: &Map<String, Value>, client: &ClientArgs) -> anyhow::Result<SourceArgs> {
    let source = origin
        .get("account_type")
        .and_then(Value::as_str)
        .context("oauth_broker.account_type is missing; run `oauth-broker dev login` again")?
        .to_owned();
    let mut client = client.clone();
    if client.params.is_empty() {
        if let Some(Value::Object(ps)) = origin.get("params") {
            client.params = ps
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
        }
    }
    if client.catalogue.is_none() {
        client.catalogue = origin
            .get("catalogue")
            .and_then(Value::as_str)
            .map(PathBuf::from);
    }
    Ok(SourceArgs { source, client })
}
