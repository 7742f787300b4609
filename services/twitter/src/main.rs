//! cashtag-twitter: posts that mention the watchlist, from X and the other microblogs,
//! scored for sentiment, into MongoDB and Kinesis while the market is open; and `score`,
//! the sentiment engine on stdin.

mod score_cmd;

use std::path::PathBuf;

use cashtag_core::{CountKind, Settings};
use cashtag_intake::IntakeConfig;
use cashtag_intake::posts::PostFilter;
use cashtag_intake::service::{FetcherSpec, recorder, run_fetcher};
use cashtag_runtime::{Failure, Logging};
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
    match cli.command {
        Command::Score(args) => {
            cashtag_runtime::exit("cashtag-twitter", score_cmd::run(&args).map_err(cashtag_runtime::other))
        }
        Command::Run { record } => {
            cashtag_runtime::main("cashtag-twitter", Logging::Service, cli.config.as_deref(), |s| run(s, record))
        }
    }
}

async fn run(settings: Settings, record: Option<PathBuf>) -> Result<(), Failure> {
    let mut filter = PostFilter::new(settings.twitter.languages.clone(), settings.twitter.include_reposts);
    let spec = FetcherSpec {
        service: "twitter",
        default_port: 9103,
        sources: cashtag_sources::registry::social_sources(&settings).into(),
        config: IntakeConfig { bars_from_trades: false, primary_kind: CountKind::Posts, ..Default::default() },
        recorder: recorder(record, &settings.twitter.record_dir)?,
        transform: Some(Box::new(move |r| filter.apply(r))),
    };
    run_fetcher(&settings, spec).await
}
