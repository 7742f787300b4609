//! cashtag-analysis: minute roll-ups, the study "does sentiment lead price moves?", and
//! the models: train, publish, predict, evaluate, backtest.
//!
//! Exit codes: 0 ok, 1 other failure, 2 configuration or usage, 3 bad input (a CSV, an
//! option value), 4 no data for the request (or no such model), 5 MongoDB, 6 the model
//! registry (S3), 7 a refused (corrupt or foreign) model file.

mod models_cli;

use std::path::PathBuf;

use cashtag_analysis_core::export::{ExportSpec, Format};
use cashtag_analysis_core::follow::{FollowConfig, RollupMetrics};
use cashtag_analysis_core::series::{Measure, parse_interval};
use cashtag_analysis_core::study::StudyConfig;
use cashtag_analysis_core::{AnalysisError, StudyRequest};
use cashtag_core::Settings;
use cashtag_runtime::{Failure, Globals, Logging, Service};
use cashtag_telemetry::progress::Progress;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use clap::{Parser, Subcommand};

const DEFAULT_PORT: u16 = 9106;

#[derive(Parser)]
#[command(
    name = "cashtag-analysis",
    version,
    about = "Minute roll-ups, the sentiment-leads-price study, and models that trade on it"
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    /// The watchlist of every command (study, train, backtest …): a TOML file of
    /// `[[company]]`; default CASHTAG_WATCHLIST_FILE, else the built-in list.
    #[arg(long, global = true, value_name = "FILE")]
    watchlist: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The service: keep the minute roll-ups current (`aggregate --follow`), with
    /// heartbeats, events, /healthz and /metrics.
    Run,
    /// Build the per-ticker one-minute roll-ups (sentiment_1m, price_1m) from posts and
    /// trades (or minute bars where a minute has no trades), and price_1d from daily bars.
    /// Dates are New York dates; `--to` is inclusive. Instants (RFC 3339) work too.
    Aggregate {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// Keep running: roll up each minute shortly after it closes (after back-filling
        /// from --from, when given).
        #[arg(long)]
        follow: bool,
    },
    /// Does sentiment lead price moves? Writes results.json, report.md and report.html.
    Study(StudyArgs),
    /// The study's statistics for two columns of a CSV file.
    Stats {
        #[arg(long)]
        csv: PathBuf,
        #[arg(long)]
        x: String,
        #[arg(long)]
        y: String,
        /// Cross-correlation lags −L..L and Granger lags 1..L.
        #[arg(long, default_value_t = 5)]
        max_lag: usize,
        #[arg(long)]
        json: bool,
    },
    /// Train a model on the roll-ups, evaluate it walk-forward against baselines, publish
    /// it to the registry (promoted only when it beats them).
    Train(models_cli::TrainArgs),
    /// The model registry: list, show, promote.
    Models {
        #[command(subcommand)]
        command: models_cli::ModelsCommand,
    },
    /// The predictor service: the promoted model's predictions at every tick of the
    /// session, and their outcomes once known.
    Predict,
    /// The live track record of the stored predictions: report.md and report.html.
    Evaluate(models_cli::EvaluateArgs),
    /// Walk-forward over history: train on the past only, predict the next block, trade.
    Backtest(models_cli::BacktestArgs),
    /// A collection to CSV or Parquet, for notebooks.
    Export {
        #[arg(long)]
        collection: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// The field --from/--to filter on (default: the collection's timestamp).
        #[arg(long)]
        time_field: Option<String>,
        #[arg(long, default_value = "parquet")]
        format: Format,
        /// Output file (default: <collection>.<format>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct StudyArgs {
    /// First New York session date.
    #[arg(long)]
    from: NaiveDate,
    /// Last session date (inclusive; default: --from).
    #[arg(long)]
    to: Option<NaiveDate>,
    /// Comma-separated tickers (default: the watchlist without the market proxy).
    #[arg(long, value_delimiter = ',')]
    tickers: Vec<String>,
    /// 1m, 5m, 20m, 1h or 1d (a whole session) — within regular sessions only.
    #[arg(long, default_value = "5m")]
    interval: String,
    /// finance_mean, vader_mean, net_bullish or posts.
    #[arg(long, default_value = "finance_mean")]
    measure: Measure,
    /// Cross-correlation lags −K..K.
    #[arg(long, default_value_t = 6)]
    max_lag: usize,
    /// Granger lags 1..L (the primary test uses L).
    #[arg(long, default_value_t = 4)]
    granger_lags: usize,
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Market proxy for abnormal returns; `none` = the cross-section mean.
    #[arg(long, default_value = "SPY")]
    market: String,
    /// Let a session's first return span the overnight gap.
    #[arg(long)]
    overnight: bool,
    /// Post-volume spike: posts above the trailing mean by this many standard deviations ...
    #[arg(long, default_value_t = 3.0)]
    spike_z: f64,
    /// ... of this many previous intervals.
    #[arg(long, default_value_t = 20)]
    spike_lookback: usize,
    /// Event window: ± this many intervals.
    #[arg(long, default_value_t = 6)]
    event_window: usize,
    /// A ticker is tested only with this many observations of its primary test ...
    #[arg(long, default_value_t = 30)]
    min_observations: usize,
    /// ... and this many posts in the period (the others are listed as not tested).
    #[arg(long, default_value_t = 30.0)]
    min_posts: f64,
    /// Output directory (default: <analysis.reports_dir>/study-<from>-<to>-<interval>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let logging = if matches!(cli.command, Command::Run | Command::Predict | Command::Aggregate { follow: true, .. }) {
        Logging::Service
    } else {
        Logging::Cli
    };
    let config = cli.globals.config.clone();
    cashtag_runtime::main("cashtag-analysis", logging, config.as_deref(), |settings| dispatch(cli, settings))
}

fn input(e: impl std::fmt::Display) -> Failure {
    Failure::from(AnalysisError::Input(e.to_string()))
}

async fn database(settings: &Settings) -> Result<mongodb::Database, Failure> {
    let client = cashtag_stores::mongo::connect(settings.mongo.uri.expose(), "cashtag-analysis")
        .await
        .map_err(|e| Failure::usage(format!("mongo.uri: {e}")))?;
    Ok(client.database(&settings.mongo.database))
}

/// `YYYY-MM-DD` (a New York date: its midnight, or the next midnight when `end`) or RFC 3339.
fn instant(s: &str, end: bool) -> Result<DateTime<Utc>, Failure> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d: NaiveDate = s
        .parse()
        .map_err(|_| Failure::usage(format!("{s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant")))?;
    let d = if end { d.succ_opt().ok_or_else(|| Failure::usage("date out of range"))? } else { d };
    Ok(cashtag_calendar::local(d, chrono::NaiveTime::MIN))
}

async fn dispatch(cli: Cli, mut settings: Settings) -> Result<(), Failure> {
    if let Some(file) = &cli.watchlist {
        // The flag over the environment, checked as the setting is.
        settings.watchlist.file = file.display().to_string();
        settings.watchlist.load().map_err(|e| Failure::usage(format!("--watchlist: {e}")))?;
    }
    match cli.command {
        Command::Run => follow(&settings, None).await,
        Command::Aggregate { from, to, follow: true } => {
            if to.is_some() {
                return Err(Failure::usage("--to does not go with --follow (it follows the clock)"));
            }
            follow(&settings, from.as_deref().map(|f| instant(f, false)).transpose()?).await
        }
        Command::Aggregate { from, to, follow: false } => {
            let Some(from) = from else {
                return Err(Failure::usage("aggregate needs --from (and optionally --to), or --follow"));
            };
            let from = instant(&from, false)?;
            let to = match to {
                Some(t) => instant(&t, true)?,
                None => settings.clock.clock()?.now(),
            };
            if to <= from {
                return Err(Failure::usage(format!("--to ({to}) is not after --from ({from})")));
            }
            let db = database(&settings).await?;
            let (s, p) =
                cashtag_analysis_core::follow::backfill(&db, from, to, &Progress::new(cli.globals.quiet)).await?;
            let calendar = cashtag_runtime::calendar(&settings.manager)?;
            let ny = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&chrono_tz::America::New_York).date_naive();
            let last_day = ny(to - chrono::TimeDelta::seconds(1));
            let d = cashtag_analysis_core::rollup::rollup_days(&db, &calendar, ny(from), last_day).await?;
            println!(
                "rolled up {} to {}: {s} sentiment minutes, {p} price minutes, {d} session days of daily bars",
                cashtag_core::time::rfc3339(&from),
                cashtag_core::time::rfc3339(&to)
            );
            Ok(())
        }
        Command::Study(args) => study(&settings, args).await,
        Command::Train(args) => models_cli::train(&settings, args).await,
        Command::Models { command } => models_cli::models(&settings, command).await,
        Command::Predict => models_cli::predict(&settings).await,
        Command::Evaluate(args) => models_cli::evaluate(&settings, args).await,
        Command::Backtest(args) => models_cli::backtest(&settings, args).await,
        Command::Stats { csv, x, y, max_lag, json } => {
            let s = cashtag_analysis_core::csv::stats_for_file(&csv, &x, &y, max_lag)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s).expect("serializes"));
            } else {
                print!("{}", cashtag_analysis_core::csv::render(&s));
            }
            Ok(())
        }
        Command::Export { collection, from, to, time_field, format, out } => {
            let spec = ExportSpec {
                out: out.unwrap_or_else(|| {
                    PathBuf::from(format!("{collection}.{}", if format == Format::Csv { "csv" } else { "parquet" }))
                }),
                from: from.as_deref().map(|f| instant(f, false)).transpose()?,
                to: to.as_deref().map(|t| instant(t, true)).transpose()?,
                collection,
                time_field,
                format,
            };
            let db = database(&settings).await?;
            let filter = cashtag_analysis_core::export::filter(&spec)?;
            let total = db
                .collection::<bson::Document>(&spec.collection)
                .count_documents(filter)
                .await
                .map_err(AnalysisError::from)?;
            let mut bar = Progress::new(cli.globals.quiet).task(&spec.collection, total, "docs");
            let mut shown = 0;
            let summary = cashtag_analysis_core::export::export(&db, &spec, |n| {
                bar.add(n - shown);
                shown = n;
            })
            .await?;
            bar.done();
            // The summary goes to stderr: `--out /dev/stdout` pipes the data alone.
            eprintln!("wrote {} rows, {} columns to {}", summary.rows, summary.columns.len(), summary.path);
            if !summary.left_out_fields.is_empty() {
                eprintln!(
                    "left out {} field(s) that first appear after the first {} documents: {}",
                    summary.left_out_fields.len(),
                    cashtag_analysis_core::export::SCHEMA_SAMPLE,
                    summary.left_out_fields.join(", ")
                );
            }
            if summary.type_mismatches > 0 {
                eprintln!(
                    "{} value(s) did not fit their column's type and were written as empty",
                    summary.type_mismatches
                );
            }
            Ok(())
        }
    }
}

/// The roll-up service: `run`, or `aggregate --follow`.
async fn follow(settings: &Settings, backfill_from: Option<DateTime<Utc>>) -> Result<(), Failure> {
    let spark = settings.analysis.rollup_engine == "spark";
    let what = if spark {
        "roll-ups by the Spark job (analysis.rollup_engine = spark): this service writes no sentiment_1m or price_1m"
            .to_string()
    } else {
        format!(
            "roll-ups following, the last {} minutes every {} minutes",
            settings.analysis.trailing_minutes, settings.analysis.trailing_every
        )
    };
    let mut svc = Service::start("analysis", settings, what)?;
    svc.serve(DEFAULT_PORT, axum::Router::new()).await?;
    svc.heartbeat(|| serde_json::Value::Null);
    if spark {
        // One writer at a time: the service stays up (health, heartbeats) and leaves the
        // minute roll-ups to Spark; `aggregate --from` still recomputes on request.
        svc.shutdown.cancelled().await;
        svc.stop("stopped (roll-ups by Spark)").await;
        return Ok(());
    }
    let metrics = RollupMetrics::register(&svc.telemetry);
    let db = database(settings).await?;
    svc.watch_mongo(&db);
    let config = FollowConfig {
        trailing: TimeDelta::minutes(settings.analysis.trailing_minutes as i64),
        trailing_every: settings.analysis.trailing_every as u32,
        delay: TimeDelta::seconds(settings.analysis.delay_secs as i64),
        backfill_from,
    };
    cashtag_analysis_core::follow::follow(
        &db,
        &svc.bus.emitter(),
        &svc.telemetry.health,
        &metrics,
        &config,
        svc.shutdown.clone(),
    )
    .await;
    svc.stop("roll-ups stopped").await;
    Ok(())
}

async fn study(settings: &Settings, a: StudyArgs) -> Result<(), Failure> {
    let interval = parse_interval(&a.interval)?;
    if !(0.0..1.0).contains(&a.alpha) || a.alpha == 0.0 {
        return Err(input("--alpha must be in (0, 1)"));
    }
    let to = a.to.unwrap_or(a.from);
    let market = (!a.market.eq_ignore_ascii_case("none")).then(|| a.market.to_uppercase());
    let tickers = models_cli::tickers(settings, &a.tickers, market.as_deref())?;
    let calendar = cashtag_runtime::calendar(&settings.manager)?;
    let req = StudyRequest {
        tickers,
        from: a.from,
        to,
        interval,
        measure: a.measure,
        overnight: a.overnight,
        config: StudyConfig {
            max_lag: a.max_lag,
            granger_lags: a.granger_lags.max(1),
            alpha: a.alpha,
            spike_z: a.spike_z,
            spike_lookback: a.spike_lookback.max(2),
            event_window: a.event_window,
            market,
            min_observations: a.min_observations.max(1),
            min_posts: a.min_posts.max(0.0),
        },
    };
    let db = database(settings).await?;
    let (result, series) = cashtag_analysis_core::study_from_db(&db, &calendar, &req).await?;
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from(&settings.analysis.reports_dir).join(format!("study-{}-{}-{}", a.from, to, a.interval))
    });
    let title = format!(
        "Does sentiment lead price moves? {} to {}, {} intervals, sentiment = {}",
        a.from,
        to,
        a.interval,
        a.measure.as_str()
    );
    cashtag_analysis_core::report::write(&out, &result, &series, &title)?;
    for w in &result.warnings {
        eprintln!("warning: {w}");
    }
    if !result.warnings.is_empty() {
        let events = result.warnings.iter().map(|w| cashtag_core::catalog::analysis_fallback(w.clone())).collect();
        models_cli::emit(settings, events).await;
    }
    if result.tested == 0 {
        // No data to answer with: exit 4, as for no roll-ups at all.
        return Err(Failure::new(
            4,
            anyhow::anyhow!("{} (report: {})", cashtag_analysis_core::report::verdict(&result), out.display()),
        ));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result).expect("serializes"));
    } else {
        println!("{}", cashtag_analysis_core::report::verdict(&result));
        println!("report: {}", out.join("report.html").display());
    }
    Ok(())
}
