//! cashtag-twitter: posts that mention the watchlist, from X and the other microblogs,
//! scored for sentiment, into MongoDB and Kinesis while the market is open; and `score`,
//! the sentiment engine on stdin; and post history (`backfill` from X search and
//! StockTwits, `import` of tweet archives), scored and stored the same way.

mod history_cmd;
mod score_cmd;

use std::path::PathBuf;

use cashtag_core::{CountKind, Settings};
use cashtag_intake::IntakeConfig;
use cashtag_intake::cli::RunArgs;
use cashtag_intake::posts::PostFilter;
use cashtag_intake::service::{FetcherSpec, recorder, run_fetcher};
use cashtag_runtime::{Failure, Globals, Logging};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cashtag-twitter",
    version,
    about = "Collects and scores posts that mention the watchlist while the market is open"
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run: collect while the manager says the market is open.
    Run(RunArgs),
    /// Score texts from stdin (one per line, or JSON lines with a "text" field); print
    /// {"text", "vader": {neg, neu, pos, compound}, "finance": {score, label}} per line.
    Score(score_cmd::ScoreArgs),
    /// Fetch posts from X search (full archive when the plan has it, else the last 7
    /// days) and StockTwits, scored and stored as live; resumable.
    Backfill(history_cmd::BackfillArgs),
    /// Import tweet archives (X v1.1 or v2 JSON lines, StockTwits messages; gzip and
    /// directory trees too); a bad line is reported with its file and line and skipped.
    Import(history_cmd::ImportArgs),
    /// The records a sink refused for good (kept beside the journal): list them, or write
    /// them to their sink again once the cause is fixed.
    #[command(subcommand_value_name = "ACTION")]
    DeadLetters(cashtag_intake::cli::DeadLetterArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Score(args) => {
            cashtag_runtime::exit("cashtag-twitter", score_cmd::run(&args).map_err(cashtag_runtime::other))
        }
        Command::Run(RunArgs { record }) => {
            cashtag_runtime::main("cashtag-twitter", Logging::Service, cli.globals.config.as_deref(), |s| {
                run(s, record)
            })
        }
        Command::Backfill(a) => {
            cashtag_runtime::main("cashtag-twitter", Logging::Cli, cli.globals.config.as_deref(), |s| async move {
                history_cmd::backfill(&s, a, cli.globals.quiet).await
            })
        }
        Command::Import(a) => {
            cashtag_runtime::main("cashtag-twitter", Logging::Cli, cli.globals.config.as_deref(), |s| async move {
                history_cmd::import(&s, a, cli.globals.quiet).await
            })
        }
        Command::DeadLetters(a) => {
            cashtag_runtime::main("cashtag-twitter", Logging::Cli, cli.globals.config.as_deref(), |s| async move {
                cashtag_intake::dead_letters::run(&s, "twitter", a).await
            })
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
