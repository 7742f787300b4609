//! cashtag-twitter: posts that mention the watchlist, from X and the other microblogs,
//! scored for sentiment, into MongoDB and Kinesis while the market is open; and `score`,
//! the sentiment engine on stdin.

mod score_cmd;

use std::path::PathBuf;

use anyhow::Context;
use cashtag_core::{CountKind, Settings};
use cashtag_intake::IntakeConfig;
use cashtag_intake::posts::PostFilter;
use cashtag_intake::service::{FetcherSpec, run_fetcher};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cashtag-twitter",
    version,
    about = "Collects and scores posts that mention the watchlist while the market is open"
)]
struct Cli {
    /// TOML configuration file (also CASHTAG_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run: collect while the manager says the market is open.
    Run {
        /// Record every raw provider payload here, rotated daily (for `replay`).
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Score texts from stdin (one per line, or JSON lines with a "text" field); print
    /// {"text", "vader": {neg, neu, pos, compound}, "finance": {score, label}} per line.
    Score(score_cmd::ScoreArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(args) => score_cmd::run(&args),
        Command::Run { record } => {
            cashtag_telemetry::init_tracing("twitter");
            (|| -> anyhow::Result<()> {
                let settings = Settings::load(cli.config.as_deref()).context("invalid configuration")?;
                let record = record.or_else(|| {
                    (!settings.twitter.record_dir.is_empty()).then(|| settings.twitter.record_dir.clone().into())
                });
                let recorder = record
                    .map(|d| {
                        cashtag_sources::Recorder::new(&d)
                            .with_context(|| format!("recording directory {}", d.display()))
                    })
                    .transpose()?;
                let mut filter = PostFilter::new(settings.twitter.languages.clone(), settings.twitter.include_reposts);
                let spec = FetcherSpec {
                    service: "twitter",
                    default_port: 9103,
                    source: cashtag_sources::social::from_settings(&settings)?,
                    config: IntakeConfig {
                        bars_from_trades: false,
                        primary_kind: CountKind::Posts,
                        ..Default::default()
                    },
                    recorder,
                    transform: Some(Box::new(move |r| filter.apply(r))),
                };
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?
                    .block_on(run_fetcher(&settings, spec))
                    .map_err(anyhow::Error::msg)
            })()
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cashtag-twitter: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
