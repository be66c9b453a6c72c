//! Command line: run the server, and operate the store directly.

use crate::broker::{ensure_databases, now, open_store, Broker};
use crate::config::Settings;
use crate::domain::account_type::{redacted, AccountType};
use crate::domain::Domain;
use crate::startup::Application;
use crate::store::instances::AddError;
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// OAuth broker for cozy konnectors.
#[derive(Debug, Parser)]
#[command(name = "oauth-broker", version)]
pub struct Cli {
    /// Settings file (TOML); `BROKER__*` environment variables override it.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve,
    /// Manage account types (provider OAuth clients).
    #[command(subcommand, name = "account-types")]
    AccountTypes(AccountTypesCmd),
    /// Manage instances.
    #[command(subcommand)]
    Instances(InstancesCmd),
    /// Manage konnector accounts.
    #[command(subcommand)]
    Accounts(AccountsCmd),
    /// Manage the keys that seal secrets at rest.
    #[command(subcommand)]
    Keys(KeysCmd),
}

/// `accounts` sub-commands.
#[derive(Debug, Subcommand)]
pub enum AccountsCmd {
    /// Revoke an account's tokens at the provider (RFC 7009) and delete it.
    Rm {
        /// Instance domain.
        domain: String,
        /// Account id.
        id: String,
    },
}

/// `keys` sub-commands.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Print a new random key as `ID:BASE64`, to put first in `encryption_keys`.
    Generate {
        /// Key id.
        id: String,
    },
    /// Re-seal every client secret (and sealed refresh token) with the newest key.
    Rotate,
}

/// `account-types` sub-commands.
#[derive(Debug, Subcommand)]
pub enum AccountTypesCmd {
    /// Validate and store the account type in FILE.
    Put {
        /// JSON document with an `_id`.
        file: PathBuf,
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
    /// Check FILE without storing it.
    Validate {
        /// JSON document.
        file: PathBuf,
    },
}

/// `instances` sub-commands.
#[derive(Debug, Subcommand)]
pub enum InstancesCmd {
    /// Add an instance; its prefix is computed as cozy-stack does.
    Add {
        /// Instance domain, e.g. `alice.mycozy.cloud`.
        domain: String,
        /// Context name (picks overloaded account types).
        #[arg(long)]
        context: Option<String>,
    },
    /// List instances.
    List,
    /// Issue an API token for konnectors of an instance (printed once).
    Token {
        /// Instance domain.
        domain: String,
    },
    /// Issue a one-time session code for `start`.
    SessionCode {
        /// Instance domain.
        domain: String,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            crate::telemetry::init(settings.log_format);
            let app = Application::build(&settings).await?;
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::AccountTypes(AccountTypesCmd::Validate { file }) => {
            let doc = read_json(&file)?;
            let at = AccountType::from_document(&doc)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("{}: valid account type `{}`", file.display(), at.id);
            Ok(())
        }
        Command::Keys(KeysCmd::Generate { id }) => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
            let spec = format!(
                "{id}:{}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key)
            );
            crate::domain::sealed::Keyring::parse(&spec).map_err(anyhow::Error::msg)?;
            println!("{spec}");
            Ok(())
        }
        Command::Accounts(AccountsCmd::Rm { domain, id }) => {
            let broker = broker(&settings).await?;
            let d = Domain::parse(&domain).map_err(anyhow::Error::msg)?;
            let inst = broker
                .instances
                .get(&d)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no instance `{d}`"))?;
            let revoked = crate::refresh::revoke::revoke_and_delete(&broker, &inst, &id)
                .await
                .map_err(|e| anyhow::anyhow!("account `{id}`: {e}"))?;
            println!(
                "deleted `{id}`{}",
                if revoked { " (tokens revoked)" } else { "" }
            );
            Ok(())
        }
        Command::Keys(KeysCmd::Rotate) => rotate_keys(&broker(&settings).await?).await,
        Command::AccountTypes(cmd) => account_types(&broker(&settings).await?, cmd).await,
        Command::Instances(cmd) => instances(&broker(&settings).await?, &settings, cmd).await,
    }
}

async fn broker(settings: &Settings) -> anyhow::Result<Broker> {
    let store = open_store(settings)?;
    ensure_databases(&store).await?;
    Ok(Broker::new(settings, store)?)
}

fn read_json(file: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

async fn account_types(broker: &Broker, cmd: AccountTypesCmd) -> anyhow::Result<()> {
    match cmd {
        AccountTypesCmd::Put { file } => {
            let doc = read_json(&file)?;
            let (at, rev) = broker
                .account_types
                .put(doc)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("stored `{}` (rev {rev})", at.id);
        }
        AccountTypesCmd::Get { id } => match broker.account_types.get_document(&id).await? {
            Some(doc) => println!("{}", serde_json::to_string_pretty(&redacted(&doc))?),
            None => bail!("no account type `{id}`"),
        },
        AccountTypesCmd::List => {
            for doc in broker.account_types.list_documents().await? {
                let id = doc.get("_id").and_then(Value::as_str).unwrap_or("?");
                match AccountType::from_document(&doc) {
                    Ok(at) => println!("{id}\t{}", at.grant_mode.map_or("(none)", |m| m.as_str())),
                    Err(e) => println!("{id}\tINVALID: {e}"),
                }
            }
        }
        AccountTypesCmd::Rm { id } => {
            if !broker.account_types.delete(&id).await? {
                bail!("no account type `{id}`");
            }
            println!("deleted `{id}`");
        }
        AccountTypesCmd::Validate { .. } => unreachable!("handled without a store"),
    }
    Ok(())
}

async fn instances(broker: &Broker, settings: &Settings, cmd: InstancesCmd) -> anyhow::Result<()> {
    let known =
        |raw: &str| -> anyhow::Result<Domain> { Domain::parse(raw).map_err(anyhow::Error::msg) };
    match cmd {
        InstancesCmd::Add { domain, context } => {
            let inst = match broker.instances.add(known(&domain)?, context).await {
                Ok(i) => i,
                Err(AddError::Exists(d)) => bail!("instance `{d}` already exists"),
                Err(AddError::Store(e)) => return Err(e.into()),
            };
            println!("added `{}` (prefix {})", inst.domain, inst.prefix);
        }
        InstancesCmd::List => {
            for i in broker.instances.list().await? {
                println!(
                    "{}\t{}\t{}",
                    i.domain,
                    i.prefix,
                    i.context.unwrap_or_default()
                );
            }
        }
        InstancesCmd::Token { domain } => {
            let d = known(&domain)?;
            if broker.instances.get(&d).await?.is_none() {
                bail!("no instance `{d}`");
            }
            println!(
                "{}",
                broker
                    .credentials
                    .issue_api_token(&d, now())
                    .await?
                    .expose()
            );
        }
        InstancesCmd::SessionCode { domain } => {
            let d = known(&domain)?;
            if broker.instances.get(&d).await?.is_none() {
                bail!("no instance `{d}`");
            }
            let expires = now() + settings.session_code_ttl_secs as i64;
            println!(
                "{}",
                broker
                    .credentials
                    .issue_session_code(&d, expires)
                    .await?
                    .expose()
            );
        }
    }
    Ok(())
}

async fn rotate_keys(broker: &Broker) -> anyhow::Result<()> {
    let (types, failed) = broker
        .account_types
        .reseal_all()
        .await
        .map_err(|e| anyhow::anyhow!("re-sealing account types: {e}"))?;
    let mut accounts = 0;
    for inst in broker.instances.list().await? {
        accounts += broker.accounts.reseal_all(&inst).await?;
    }
    println!("re-sealed {types} account type(s) and {accounts} account(s)");
    for (id, why) in &failed {
        eprintln!("not re-sealed: account type `{id}`: {why}");
    }
    if !failed.is_empty() {
        bail!("{} account type(s) could not be re-sealed", failed.len());
    }
    Ok(())
}
