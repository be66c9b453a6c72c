//! The `oauth-broker` command.

use clap::Parser;
use oauth_broker::cli::{self, Output};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `oauth-broker ... | head`: the reader has what it wanted.
        Err(e) if Output::is_closed_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
