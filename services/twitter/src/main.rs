//! cashtag-twitter: posts that mention the watchlist, from X and the other microblogs,
//! scored for sentiment.
//!
//! Built so far: `score` (the sentiment engine on stdin). `run` — the collector — is not
//! built yet and fails clearly instead of pretending to work.

mod score_cmd;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cashtag-twitter", version, about = "Collects and scores posts that mention the watchlist while the market is open")]
struct Cli {
    /// TOML configuration file (also CASHTAG_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector (not built yet).
    Run,
    /// Score texts from stdin (one per line, or JSON lines with a "text" field); print
    /// {"text", "vader": {neg, neu, pos, compound}, "finance": {score, label}} per line.
    Score(score_cmd::ScoreArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = &cli.config;
    let result = match &cli.command {
        Command::Run => Err(anyhow::anyhow!("the collector is not built yet")),
        Command::Score(args) => score_cmd::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cashtag-twitter: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
