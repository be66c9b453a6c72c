//! Command line: run the server, operate the store directly, and the developer mode.

pub mod account_types;
pub mod dev;
pub mod source;

use crate::broker::{ensure_databases, now, open_store, Broker};
use crate::config::Settings;
use crate::domain::Domain;
use crate::startup::Application;
use crate::store::instances::AddError;
pub use account_types::AccountTypesCmd;
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
pub use dev::DevCmd;
use std::path::PathBuf;

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
    /// Konnector developer mode: a token in konnector-dev-config.json, no CouchDB needed.
    #[command(subcommand)]
    Dev(DevCmd),
    /// Manage the clients the broker registered with providers (RFC 7591/7592).
    #[command(subcommand, name = "registered-clients")]
    RegisteredClients(RegisteredClientsCmd),
}

/// `registered-clients` sub-commands; ids are `TYPE` or `TYPE@PROVIDER-HOST`.
#[derive(Debug, Subcommand)]
pub enum RegisteredClientsCmd {
    /// List registered clients, secrets redacted.
    List,
    /// Register now rather than at the first connection (checks the provider accepts us).
    Register {
        /// Account type id (`cozy`, or `ctx/cozy`).
        account_type: String,
        /// The provider, for a type whose endpoints begin with `{provider_url}`.
        #[arg(long)]
        provider_url: Option<String>,
    },
    /// Show one registered client, secrets redacted.
    Get {
        /// Registration id.
        id: String,
        /// Ask the provider (RFC 7592 read) instead of showing the stored copy.
        #[arg(long)]
        remote: bool,
    },
    /// Send the account type's client metadata to the provider again (RFC 7592 update).
    Update {
        /// Registration id.
        id: String,
    },
    /// Ask the provider for a new client secret.
    ResetSecret {
        /// Registration id.
        id: String,
    },
    /// Delete the client at the provider (RFC 7592) and here.
    Unregister {
        /// Registration id.
        id: String,
    },
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
        Command::Dev(cmd) => dev::run(cmd).await,
        Command::AccountTypes(cmd) => match account_types::run_offline(&cmd) {
            Some(done) => done,
            None => account_types::run(&broker(&settings).await?, cmd).await,
        },
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
        Command::RegisteredClients(cmd) => registered_clients(&broker(&settings).await?, cmd).await,
        Command::Instances(cmd) => instances(&broker(&settings).await?, &settings, cmd).await,
    }
}

async fn broker(settings: &Settings) -> anyhow::Result<Broker> {
    let store = open_store(settings)?;
    ensure_databases(&store).await?;
    Ok(Broker::new(settings, store)?)
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

async fn registered_clients(broker: &Broker, cmd: RegisteredClientsCmd) -> anyhow::Result<()> {
    let show = |v: &serde_json::Value| -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    };
    match cmd {
        RegisteredClientsCmd::List => {
            for c in broker.registrations.list().await? {
                let field = |k: &str| {
                    c.get(k)
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                println!(
                    "{}\t{}\t{}",
                    field("_id"),
                    field("client_id"),
                    field("provider_url")
                );
            }
        }
        RegisteredClientsCmd::Register {
            account_type,
            provider_url,
        } => {
            let at = broker.account_types.lookup_id(&account_type).await?;
            if !at.registers() {
                bail!(
                    "account type `{account_type}` has a fixed client (no registration_endpoint)"
                );
            }
            let provider = provider_url
                .map(|raw| {
                    crate::domain::provider_url::ProviderUrl::parse(
                        &raw,
                        &at.provider_url_patterns,
                        broker.insecure_provider_urls,
                    )
                })
                .transpose()?;
            let registered = broker.client_type(&at, provider.as_ref()).await?;
            let id = crate::registration::registration_id(&at.id, provider.as_ref());
            println!(
                "registered `{id}` as client {}",
                registered
                    .client_id
                    .as_ref()
                    .map(|c| c.as_str())
                    .unwrap_or_default()
            );
        }
        RegisteredClientsCmd::Get { id, remote } => {
            let doc = if remote {
                broker.registrations.read_at_provider(&id).await?
            } else {
                broker.registrations.get(&id).await?
            };
            show(&doc)?;
        }
        RegisteredClientsCmd::Update { id } => {
            show(&broker.update_registration(&id, false).await?)?
        }
        RegisteredClientsCmd::ResetSecret { id } => {
            show(&broker.update_registration(&id, true).await?)?;
            eprintln!("new client secret stored for `{id}`");
        }
        RegisteredClientsCmd::Unregister { id } => {
            broker.registrations.unregister(&id).await?;
            println!("unregistered `{id}`");
        }
    }
    Ok(())
}
