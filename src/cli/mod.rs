//! Command line: run the server, operate the store directly, and the developer mode.

pub mod account_types;
pub mod dev;
pub mod operators;
pub mod reference;
pub mod source;

use crate::app::audit::Actor;
use crate::app::Services;
use crate::config::Settings;
use crate::startup::Application;
pub use account_types::AccountTypesCmd;
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
pub use dev::DevCmd;
use std::io::Write;
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
    /// Check the deployment: settings, CouchDB and its databases, Redis, the binding
    /// cookie, stored secrets, provider hosts. Changes nothing; exits non-zero on an error.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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
    /// Manage the refresh plan (when each account is next refreshed).
    #[command(subcommand, name = "refresh-plan")]
    RefreshPlan(RefreshPlanCmd),
    /// How each provider fares.
    #[command(subcommand)]
    Providers(ProvidersCmd),
    /// Print a page of the reference (`settings`, `errors`, `routes`, `metrics`, `cli`),
    /// written from the code; `--write DIR` writes them all.
    Reference {
        /// The page to print.
        page: Option<String>,
        /// Write every page into this folder (`docs/reference`).
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Who changed what: account types, instances, credentials, registrations, keys,
    /// accounts deleted.
    Audit {
        /// From this time on: RFC 3339, or a duration ago (`15m`, `2h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `providers` sub-commands.
#[derive(Debug, Subcommand)]
pub enum ProvidersCmd {
    /// Per account type: accounts, healthy, failing, needing reconnection, token endpoint
    /// p50/p99, last error.
    Health {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `refresh-plan` sub-commands.
#[derive(Debug, Subcommand)]
pub enum RefreshPlanCmd {
    /// Plan a refresh for every account with a refresh token that has none yet (accounts
    /// cozy-stack created); resumes an interrupted run; a second run changes nothing.
    Backfill {
        /// Forget an interrupted run's progress and start from the first instance.
        #[arg(long)]
        restart: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
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
    /// The accounts the broker keeps fresh, with their health, a page at a time.
    List {
        /// Only this instance's accounts.
        #[arg(long)]
        instance: Option<String>,
        /// Only this account type's.
        #[arg(long = "type")]
        account_type: Option<String>,
        /// Only accounts waiting for their user to reconnect them.
        #[arg(long)]
        reconnect_needed: bool,
        /// Only accounts whose refreshes fail.
        #[arg(long)]
        failing: bool,
        /// Start after this cursor (printed at the end of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Accounts per page.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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
        /// Seconds the token stays valid (none: it does not expire).
        #[arg(long)]
        expires_in: Option<u64>,
        /// An account type the token may act on (repeatable; none: every type).
        #[arg(long = "account-type")]
        account_types: Vec<String>,
    },
    /// Issue a one-time session code for `start`.
    SessionCode {
        /// Instance domain.
        domain: String,
    },
}

/// Writes a line to standard output; a closed pipe (`| head`) ends the command quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*).map_err($crate::cli::Output)?
    };
}
pub(crate) use out;

/// Standard output could not be written (a closed pipe, a full disk).
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct Output(pub std::io::Error);

impl Output {
    /// Whether `e` is only a reader that went away (`| head`): not worth an error.
    pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
        e.downcast_ref::<Output>()
            .is_some_and(|o| o.0.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// `doctor`: the findings as a table (or JSON), and an error when one cannot work.
async fn doctor(settings: &Settings, json: bool) -> anyhow::Result<()> {
    use crate::app::doctor::Severity;
    let report = crate::app::doctor::examine(settings).await;
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for f in &report.findings {
            let severity = match f.severity {
                Severity::Ok => "ok",
                Severity::Warning => "warning",
                Severity::Error => "error",
            };
            out!("{severity:<8} {}", f.line());
        }
    }
    let errors = report.of(Severity::Error).count();
    let warnings = report.of(Severity::Warning).count();
    if errors > 0 {
        bail!("{errors} error(s), {warnings} warning(s): this deployment cannot work as it is");
    }
    if !json {
        out!("no error, {warnings} warning(s)");
    }
    Ok(())
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
        Command::Doctor { json } => doctor(&settings, json).await,
        Command::Reference { page, write } => match (page, write) {
            (_, Some(dir)) => reference::write(&dir),
            (Some(name), None) => {
                let file = format!("{name}.md");
                match reference::pages().into_iter().find(|(f, _)| *f == file) {
                    Some((_, md)) => {
                        out!("{}", md.trim_end());
                        Ok(())
                    }
                    None => bail!(
                        "no reference page `{name}`: settings, errors, routes, metrics or cli"
                    ),
                }
            }
            (None, None) => {
                bail!("name a page (settings, errors, routes, metrics, cli) or give --write DIR")
            }
        },
        Command::Dev(cmd) => dev::run(cmd).await,
        Command::AccountTypes(cmd) => match account_types::run_offline(&cmd) {
            Some(done) => done,
            None => account_types::run(&services(&settings).await?, cmd).await,
        },
        Command::Keys(KeysCmd::Generate { id }) => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
            let spec = format!(
                "{id}:{}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key)
            );
            crate::domain::sealed::Keyring::parse(&spec).map_err(anyhow::Error::msg)?;
            out!("{spec}");
            Ok(())
        }
        Command::RefreshPlan(RefreshPlanCmd::Backfill { restart, json }) => {
            let s = services(&settings).await?;
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} instances {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let progress = |done: usize, total: usize| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            let summary = s
                .backfill
                .run(restart, &progress)
                .await
                .context("backfill stopped; run it again to resume")?;
            bar.finish_and_clear();
            if json {
                out!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                out!(
                    "{} instances ({} done by an earlier run), {} accounts, {} with a refresh token: \
                     {} planned, {} already planned, {} skipped (unknown type or no token endpoint)",
                    summary.instances,
                    summary.resumed_past,
                    summary.accounts,
                    summary.with_refresh_token,
                    summary.planned,
                    summary.already_planned,
                    summary.skipped
                );
            }
            Ok(())
        }
        Command::Accounts(AccountsCmd::Rm { domain, id }) => {
            let s = services(&settings).await?;
            let revoked = s
                .admin
                .delete_account(&Actor::cli(), &domain, &id)
                .await
                .with_context(|| format!("account `{id}`"))?;
            out!(
                "deleted `{id}`{}",
                if revoked { " (tokens revoked)" } else { "" }
            );
            Ok(())
        }
        Command::Accounts(AccountsCmd::List {
            instance,
            account_type,
            reconnect_needed,
            failing,
            after,
            limit,
            json,
        }) => {
            let filter = crate::app::account_health::Filter {
                instance,
                account_type,
                reconnect_needed,
                failing,
            };
            let s = services(&settings).await?;
            operators::list_accounts(&s, filter, after, usize::from(limit), json).await
        }
        Command::Providers(ProvidersCmd::Health { json }) => {
            operators::providers_health(&services(&settings).await?, json).await
        }
        Command::Audit { since, json } => {
            operators::audit(&services(&settings).await?, since.as_deref(), json).await
        }
        Command::Keys(KeysCmd::Rotate) => rotate_keys(&services(&settings).await?).await,
        Command::RegisteredClients(cmd) => {
            registered_clients(&services(&settings).await?, cmd).await
        }
        Command::Instances(cmd) => instances(&services(&settings).await?, cmd).await,
    }
}

async fn services(settings: &Settings) -> anyhow::Result<Services> {
    // Webhooks are the server's to deliver: the command line queues none.
    Services::open(settings).await
}

async fn instances(s: &Services, cmd: InstancesCmd) -> anyhow::Result<()> {
    match cmd {
        InstancesCmd::Add { domain, context } => {
            let inst = s
                .admin
                .add_instance(&Actor::cli(), &domain, context)
                .await?;
            out!("added `{}` (prefix {})", inst.domain, inst.prefix);
        }
        InstancesCmd::List => {
            for i in s.admin.instances().await? {
                out!(
                    "{}\t{}\t{}",
                    i.domain,
                    i.prefix,
                    i.context.unwrap_or_default()
                );
            }
        }
        InstancesCmd::Token {
            domain,
            expires_in,
            account_types,
        } => {
            let token = s
                .admin
                .issue_api_token(
                    &Actor::cli(),
                    &domain,
                    expires_in.map(std::time::Duration::from_secs),
                    (!account_types.is_empty()).then_some(account_types),
                )
                .await?;
            out!("{}", token.expose());
        }
        InstancesCmd::SessionCode { domain } => {
            let (code, _) = s.admin.issue_session_code(&Actor::cli(), &domain).await?;
            out!("{}", code.expose());
        }
    }
    Ok(())
}

async fn rotate_keys(s: &Services) -> anyhow::Result<()> {
    let done = s.admin.rotate_keys(&Actor::cli()).await?;
    out!(
        "re-sealed {} account type(s), {} registered client(s) and {} account(s)",
        done.account_types,
        done.registered_clients,
        done.accounts
    );
    for (what, why) in &done.failed {
        eprintln!("not re-sealed: {what}: {why}");
    }
    if !done.failed.is_empty() {
        bail!("{} document(s) could not be re-sealed", done.failed.len());
    }
    Ok(())
}

async fn registered_clients(s: &Services, cmd: RegisteredClientsCmd) -> anyhow::Result<()> {
    let show = |v: &serde_json::Value| -> anyhow::Result<()> {
        out!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    };
    match cmd {
        RegisteredClientsCmd::List => {
            for c in s.admin.registered_clients().await? {
                let field = |k: &str| {
                    c.get(k)
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                out!(
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
            let (id, client_id) = s
                .admin
                .register_client(&Actor::cli(), &account_type, provider_url.as_deref())
                .await?;
            out!("registered `{id}` as client {client_id}");
        }
        RegisteredClientsCmd::Get { id, remote } => {
            show(&s.admin.registered_client(&id, remote).await?)?;
        }
        RegisteredClientsCmd::Update { id } => show(
            &s.admin
                .update_registered_client(&Actor::cli(), &id, false)
                .await?,
        )?,
        RegisteredClientsCmd::ResetSecret { id } => {
            show(
                &s.admin
                    .update_registered_client(&Actor::cli(), &id, true)
                    .await?,
            )?;
            eprintln!("new client secret stored for `{id}`");
        }
        RegisteredClientsCmd::Unregister { id } => {
            s.admin.unregister_client(&Actor::cli(), &id).await?;
            out!("unregistered `{id}`");
        }
    }
    Ok(())
}
