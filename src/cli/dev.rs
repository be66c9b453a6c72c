//! `dev`: a konnector developer's token, in `konnector-dev-config.json`.

use super::source::{self, ClientArgs, SourceArgs};
use crate::dev::{self, KonnectorConfig, LoginOptions};
use crate::domain::AccountType;
use anyhow::bail;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default loopback redirect URI (RFC 8252 §7.3); register it with the provider.
pub const DEFAULT_REDIRECT: &str = "http://127.0.0.1:8917/callback";

/// `dev` sub-commands.
#[derive(Debug, clap::Subcommand)]
pub enum DevCmd {
    /// Log in through a browser and write the tokens into konnector-dev-config.json.
    Login {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        common: Common,
        /// Scope to ask for; the template's default when absent.
        #[arg(long, default_value = "")]
        scope: String,
        /// Account to suggest on the provider's login page (OpenID `login_hint`).
        #[arg(long, default_value = "")]
        login_hint: String,
        /// Seconds to wait for the browser to come back.
        #[arg(long, default_value_t = 300)]
        wait_secs: u64,
        /// Only print the authorization URL; do not try to open a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Refresh the tokens in konnector-dev-config.json with its refresh token.
    Refresh {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Print a valid access token, refreshing it first when it is about to expire.
    Token {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        common: Common,
        /// Refresh when the token expires within this many seconds.
        #[arg(long, default_value_t = 60)]
        min_validity_secs: u64,
    },
}

/// Options every `dev` command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The konnector's dev config.
    #[arg(long, default_value = "konnector-dev-config.json")]
    pub konnector_dev_config: PathBuf,
    /// Seconds before a provider request is abandoned.
    #[arg(long, default_value_t = 30)]
    pub provider_timeout_secs: u64,
}

/// Runs a `dev` command.
pub async fn run(cmd: DevCmd) -> anyhow::Result<()> {
    match cmd {
        DevCmd::Login {
            source,
            common,
            scope,
            login_hint,
            wait_secs,
            no_browser,
        } => {
            refuse_secrets_in_repository(&source.client, &common.konnector_dev_config)?;
            let at = account_type(&source)?;
            let mut config = KonnectorConfig::load(&common.konnector_dev_config)?;
            let redirect = dev::loopback_redirect(
                source
                    .client
                    .redirect_uri
                    .as_deref()
                    .unwrap_or(DEFAULT_REDIRECT),
            )?;
            let opts = LoginOptions {
                redirect_uri: redirect,
                scope,
                login_hint,
                timeout: Duration::from_secs(wait_secs),
                open_browser: !no_browser,
                provider_timeout: Duration::from_secs(common.provider_timeout_secs),
            };
            config.set_origin(source::origin_of(&source));
            dev::login(&at, &mut config, &opts, |url| {
                println!(
                    "Open this URL in a browser to log in to `{}`:\n{url}",
                    at.id
                );
            })
            .await?;
            println!(
                "wrote fields.access_token{}{} to {}",
                if config.refresh_token().is_some() {
                    ", refresh_token"
                } else {
                    ""
                },
                if config.expires_at().is_some() {
                    ", expires_at"
                } else {
                    ""
                },
                config.path().display()
            );
        }
        DevCmd::Refresh { client, common } => {
            refuse_secrets_in_repository(&client, &common.konnector_dev_config)?;
            let mut config = KonnectorConfig::load(&common.konnector_dev_config)?;
            let at = account_type(&source::from_origin(config.origin()?, &client)?)?;
            dev::refresh(
                &at,
                &mut config,
                Duration::from_secs(common.provider_timeout_secs),
            )
            .await?;
            println!(
                "refreshed fields.access_token in {}{}",
                config.path().display(),
                config
                    .expires_at()
                    .map(|t| format!(" (expires {t})"))
                    .unwrap_or_default()
            );
        }
        DevCmd::Token {
            client,
            common,
            min_validity_secs,
        } => {
            refuse_secrets_in_repository(&client, &common.konnector_dev_config)?;
            let mut config = KonnectorConfig::load(&common.konnector_dev_config)?;
            let min = Duration::from_secs(min_validity_secs);
            let token = if dev::needs_refresh(&config, min) {
                let at = account_type(&source::from_origin(config.origin()?, &client)?)?;
                dev::token(
                    &at,
                    &mut config,
                    min,
                    Duration::from_secs(common.provider_timeout_secs),
                )
                .await?
            } else {
                config.access_token().unwrap_or_default().to_owned()
            };
            println!("{token}");
        }
    }
    Ok(())
}

fn account_type(source: &SourceArgs) -> anyhow::Result<AccountType> {
    let built = source::build(source)?;
    AccountType::from_document(&built.doc).map_err(|e| anyhow::anyhow!("{}: {e}", built.label))
}

/// The konnector's repository: the nearest folder above the dev config holding `.git`,
/// else the dev config's own folder.
fn repository_of(config: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(config).ok()?;
    let dir = abs.parent()?.to_owned();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    Some(
        dir.ancestors()
            .find(|d| d.join(".git").exists())
            .unwrap_or(&dir)
            .to_owned(),
    )
}

/// Client secrets live outside the konnector's repository, where a commit cannot take them.
fn refuse_secrets_in_repository(client: &ClientArgs, config: &Path) -> anyhow::Result<()> {
    let (Some(file), Some(repo)) = (&client.client_secret_file, repository_of(config)) else {
        return Ok(());
    };
    if file.as_os_str() == "-" {
        return Ok(());
    }
    if let Ok(secret) = std::fs::canonicalize(file) {
        if secret.starts_with(&repo) {
            bail!(
                "{} is inside the konnector's repository ({}); keep the client secret outside it \
                 (e.g. ~/.config/oauth-broker/) or pass it in $OAUTH_CLIENT_SECRET",
                file.display(),
                repo.display()
            );
        }
    }
    Ok(())
}
