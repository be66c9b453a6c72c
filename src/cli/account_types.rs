//! `account-types`: templates, put, diff, import, get, list, rm.

use super::out;
use super::source::{self, SourceArgs};
use crate::app::audit::Actor;
use crate::app::Services;
use crate::catalogue::{markdown, Category};
use crate::domain::changes::changes;
use crate::domain::AccountType;
use anyhow::{bail, Context};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `account-types` sub-commands.
#[derive(Debug, clap::Subcommand)]
pub enum AccountTypesCmd {
    /// List the provider templates of the catalogue, and how many there are.
    Templates {
        /// Read templates from this folder instead of the built-in catalogue.
        #[arg(long)]
        catalogue: Option<PathBuf>,
        /// Only templates whose name or provider contains this (any case).
        #[arg(long)]
        name: Option<String>,
        /// Only templates of this category (`banking`, `health`, ...).
        #[arg(long, value_parser = parse_category)]
        category: Option<Category>,
        /// `tsv` (name, provider, category, parameters), or the READMEs' lists:
        /// `markdown` (README.md) or `catalogue` (account_types/README.md).
        #[arg(long, value_enum, default_value_t = ListFormat::Tsv)]
        format: ListFormat,
    },
    /// Store an account type from a JSON file or a template:
    /// `put google --client-id ID --client-secret-file FILE`.
    Put(SourceArgs),
    /// Show what `put` would change in the stored account type (secrets masked).
    Diff {
        #[command(flatten)]
        source: SourceArgs,
        /// Exit with status 1 when there are changes.
        #[arg(long)]
        exit_code: bool,
    },
    /// Store every `*.json` account type of DIR; all are checked before any is stored.
    Import {
        /// Folder of account-type documents.
        dir: PathBuf,
    },
    /// Show one account type, secrets redacted.
    Get {
        /// Document id (`google` or `context/google`).
        id: String,
    },
    /// List account types.
    List,
    /// Delete an account type.
    Rm {
        /// Document id.
        id: String,
    },
    /// Check a JSON file or a template without storing it.
    Validate(SourceArgs),
}

/// How `templates` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// One template a line, tab-separated.
    Tsv,
    /// The top-level README's list by category.
    Markdown,
    /// `account_types/README.md`.
    Catalogue,
}

fn parse_category(raw: &str) -> Result<Category, String> {
    Category::parse(raw)
}

/// Runs the commands that need no store; `None` for the others.
pub fn run_offline(cmd: &AccountTypesCmd) -> Option<anyhow::Result<()>> {
    match cmd {
        AccountTypesCmd::Templates {
            catalogue,
            name,
            category,
            format,
        } => Some(templates(
            catalogue.as_deref(),
            name.as_deref(),
            *category,
            *format,
        )),
        AccountTypesCmd::Validate(args) => Some(validate(args)),
        _ => None,
    }
}

fn validate(args: &SourceArgs) -> anyhow::Result<()> {
    let b = source::build(args)?;
    let id = b.doc.get("_id").and_then(Value::as_str).unwrap_or("?");
    out!("{}: valid account type `{id}`", b.label);
    Ok(())
}

fn templates(
    dir: Option<&Path>,
    name: Option<&str>,
    category: Option<Category>,
    format: ListFormat,
) -> anyhow::Result<()> {
    let cat = source::catalogue(dir)?;
    match format {
        ListFormat::Markdown => out!("{}", markdown::summary(&cat)),
        ListFormat::Catalogue => out!("{}", markdown::catalogue_readme(&cat)),
        ListFormat::Tsv => {
            let mut shown = 0;
            for t in cat.filter(name, category) {
                let params: Vec<String> =
                    t.params.keys().map(|k| format!("--param {k}=..")).collect();
                out!(
                    "{}\t{}\t{}\t{}",
                    t.name,
                    t.display_name,
                    t.category,
                    params.join(" ")
                );
                shown += 1;
            }
            // On stderr, so that stdout stays one template a line for scripts.
            if shown == cat.len() {
                eprintln!("{shown} templates");
            } else {
                eprintln!("{shown} of {} templates", cat.len());
            }
        }
    }
    Ok(())
}

/// Runs the commands that act on the store.
pub async fn run(s: &Services, cmd: AccountTypesCmd) -> anyhow::Result<()> {
    match cmd {
        AccountTypesCmd::Put(args) => {
            let built = source::build(&args)?;
            let (at, rev) = s
                .admin
                .put_account_type(&Actor::cli(), built.doc)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", built.label))?;
            out!("stored `{}` (rev {rev})", at.id);
        }
        AccountTypesCmd::Diff { source, exit_code } => {
            let built = source::build(&source)?;
            let id = id_of(&built.doc);
            let stored = s
                .admin
                .account_type_opened(&id)
                .await
                .map_err(|e| anyhow::anyhow!("stored `{id}`: {e}"))?;
            let found = changes(stored.as_ref(), &built.doc);
            if stored.is_none() {
                out!("`{id}` is not stored yet; put would create it:");
            }
            if found.is_empty() {
                out!("no changes to `{id}`");
            }
            for c in &found {
                out!("{c}");
            }
            if exit_code && !found.is_empty() {
                std::process::exit(1);
            }
        }
        AccountTypesCmd::Import { dir } => import(s, &dir).await?,
        AccountTypesCmd::Get { id } => match s.admin.account_type(&id).await {
            Ok(doc) => out!("{}", serde_json::to_string_pretty(&doc)?),
            Err(crate::app::Error::NotFound(_)) => bail!("no account type `{id}`"),
            Err(e) => return Err(e.into()),
        },
        AccountTypesCmd::List => {
            for doc in s.admin.account_types().await? {
                let id = doc.get("_id").and_then(Value::as_str).unwrap_or("?");
                match AccountType::from_document(&doc) {
                    Ok(at) => out!("{id}\t{}", at.grant_mode.map_or("(none)", |m| m.as_str())),
                    Err(e) => out!("{id}\tINVALID: {e}"),
                }
            }
        }
        AccountTypesCmd::Rm { id } => {
            match s.admin.delete_account_type(&Actor::cli(), &id).await {
                Ok(()) => {}
                Err(crate::app::Error::NotFound(_)) => bail!("no account type `{id}`"),
                Err(e) => return Err(e.into()),
            }
            out!("deleted `{id}`");
        }
        AccountTypesCmd::Templates { .. } | AccountTypesCmd::Validate(_) => {
            bail!("this command needs no store")
        }
    }
    Ok(())
}

fn id_of(doc: &Value) -> String {
    doc.get("_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Checks every file first: one bad document stores nothing, and each is named.
async fn import(s: &Services, dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no *.json account types", dir.display());
    }
    let mut docs = Vec::new();
    let mut invalid = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for f in &files {
        let checked = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| format!("not JSON: {e}")))
            .and_then(|d| {
                AccountType::from_document(&d)
                    .map(|_| d)
                    .map_err(|e| e.to_string())
            });
        match checked {
            Ok(d) => {
                let id = id_of(&d);
                if let Some(other) = seen.insert(id.clone(), f.clone()) {
                    invalid.push(format!(
                        "{}: field `_id`: `{id}` is also the id of {}",
                        f.display(),
                        other.display()
                    ));
                }
                docs.push((f, d));
            }
            Err(e) => invalid.push(format!("{}: {e}", f.display())),
        }
    }
    if !invalid.is_empty() {
        for e in &invalid {
            eprintln!("{e}");
        }
        bail!(
            "{} of {} file(s) invalid; nothing was imported",
            invalid.len(),
            files.len()
        );
    }

    let bar = indicatif::ProgressBar::new(docs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    let mut failed = Vec::new();
    for (f, doc) in docs {
        let id = id_of(&doc);
        bar.set_message(id.clone());
        let outcome = async {
            let stored = s.admin.account_type_opened(&id).await?;
            if stored.is_some() && changes(stored.as_ref(), &doc).is_empty() {
                return Ok("unchanged");
            }
            s.admin.put_account_type(&Actor::cli(), doc).await?;
            Ok::<_, crate::app::Error>(if stored.is_some() {
                "updated"
            } else {
                "created"
            })
        }
        .await;
        match outcome {
            Ok("created") => created += 1,
            Ok("updated") => updated += 1,
            Ok(_) => unchanged += 1,
            Err(e) => failed.push(format!("{}: {e}", f.display())),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    out!(
        "imported {} file(s): {created} created, {updated} updated, {unchanged} unchanged, {} failed",
        files.len(),
        failed.len()
    );
    for e in &failed {
        eprintln!("{e}");
    }
    if !failed.is_empty() {
        bail!("{} account type(s) not stored", failed.len());
    }
    Ok(())
}
