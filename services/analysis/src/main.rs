//! cashtag-analysis: minute roll-ups, and the study "does sentiment lead price moves?".
//!
//! Exit codes: 0 ok, 1 other failure, 2 configuration or usage, 3 bad input (a CSV, an
//! option value), 4 no data for the request, 5 MongoDB.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cashtag_analysis::export::{ExportSpec, Format};
use cashtag_analysis::series::{Measure, parse_interval};
use cashtag_analysis::study::StudyConfig;
use cashtag_analysis::{AnalysisError, StudyRequest, rollup};
use cashtag_bus::Bus;
use cashtag_core::{Clock, EventKind, Settings};
use cashtag_telemetry::progress::Progress;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use clap::{Parser, Subcommand};

const DEFAULT_PORT: u16 = 9106;

#[derive(Parser)]
#[command(name = "cashtag-analysis", version, about = "Minute roll-ups and the sentiment-leads-price study")]
struct Cli {
    /// TOML configuration file (also CASHTAG_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The service: keep the minute roll-ups current (`aggregate --follow`), with
    /// heartbeats, events, /healthz and /metrics.
    Run,
    /// Build the per-ticker one-minute roll-ups (sentiment_1m, price_1m) from posts and
    /// trades. Dates are New York dates; `--to` is inclusive. Instants (RFC 3339) work too.
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
    /// Output directory (default: <analysis.reports_dir>/study-<from>-<to>-<interval>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl From<AnalysisError> for Failure {
    fn from(e: AnalysisError) -> Self {
        let code = match &e {
            AnalysisError::Mongo(_) => 5,
            AnalysisError::Input(_) => 3,
            AnalysisError::NoData(_) => 4,
            AnalysisError::Io { .. } | AnalysisError::Parquet(_) => 1,
        };
        Failure { code, error: e.into() }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { code: 1, error }
    }
}

fn usage(msg: impl std::fmt::Display) -> Failure {
    Failure { code: 2, error: anyhow::anyhow!("{msg}") }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run | Command::Aggregate { follow: true, .. }) {
        cashtag_telemetry::init_tracing("analysis");
    } else {
        cashtag_telemetry::init_cli_tracing();
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cashtag-analysis: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match rt.block_on(dispatch(cli, settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("cashtag-analysis: {:#}", f.error);
            std::process::ExitCode::from(f.code)
        }
    }
}

async fn database(settings: &Settings) -> Result<mongodb::Database, Failure> {
    let client = cashtag_sinks::mongo::connect(settings.mongo.uri.expose(), "cashtag-analysis")
        .await
        .map_err(|e| usage(format!("mongo.uri: {e}")))?;
    Ok(client.database(&settings.mongo.database))
}

/// `YYYY-MM-DD` (a New York date: its midnight, or the next midnight when `end`) or RFC 3339.
fn instant(s: &str, end: bool) -> Result<DateTime<Utc>, Failure> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d: NaiveDate =
        s.parse().map_err(|_| usage(format!("{s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant")))?;
    let d = if end { d.succ_opt().ok_or_else(|| usage("date out of range"))? } else { d };
    Ok(cashtag_calendar::local(d, chrono::NaiveTime::MIN))
}

async fn dispatch(cli: Cli, settings: Settings) -> Result<(), Failure> {
    match cli.command {
        Command::Run => follow(&settings, None).await,
        Command::Aggregate { from, to, follow: true } => {
            if to.is_some() {
                return Err(usage("--to does not go with --follow (it follows the clock)"));
            }
            follow(&settings, from.as_deref().map(|f| instant(f, false)).transpose()?).await
        }
        Command::Aggregate { from, to, follow: false } => {
            let Some(from) = from else {
                return Err(usage("aggregate needs --from (and optionally --to), or --follow"));
            };
            let from = instant(&from, false)?;
            let to = match to {
                Some(t) => instant(&t, true)?,
                None => settings.clock.clock().map_err(usage)?.now(),
            };
            if to <= from {
                return Err(usage(format!("--to ({to}) is not after --from ({from})")));
            }
            let db = database(&settings).await?;
            let (s, p) = backfill(&db, from, to, &Progress::new(cli.quiet)).await?;
            println!(
                "rolled up {} to {}: {s} sentiment minutes, {p} price minutes",
                cashtag_core::time::rfc3339(&from),
                cashtag_core::time::rfc3339(&to)
            );
            Ok(())
        }
        Command::Study(args) => study(&settings, args).await,
        Command::Stats { csv, x, y, max_lag, json } => {
            let s = cashtag_analysis::csv::stats_for_file(&csv, &x, &y, max_lag)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s).expect("serializes"));
            } else {
                print!("{}", cashtag_analysis::csv::render(&s));
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
            let filter = cashtag_analysis::export::filter(&spec)?;
            let total = db
                .collection::<bson::Document>(&spec.collection)
                .count_documents(filter)
                .await
                .map_err(AnalysisError::from)?;
            let mut bar = Progress::new(cli.quiet).task(&spec.collection, total, "docs");
            let mut shown = 0;
            let summary = cashtag_analysis::export::export(&db, &spec, |n| {
                bar.add(n - shown);
                shown = n;
            })
            .await?;
            bar.done();
            println!("wrote {} rows, {} columns to {}", summary.rows, summary.columns.len(), summary.path);
            if !summary.left_out_fields.is_empty() {
                println!(
                    "left out {} field(s) that first appear after the first {} documents: {}",
                    summary.left_out_fields.len(),
                    cashtag_analysis::export::SCHEMA_SAMPLE,
                    summary.left_out_fields.join(", ")
                );
            }
            if summary.type_mismatches > 0 {
                println!(
                    "{} value(s) did not fit their column's type and were written as empty",
                    summary.type_mismatches
                );
            }
            Ok(())
        }
    }
}

async fn backfill(
    db: &mongodb::Database,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    progress: &Progress,
) -> Result<(usize, usize), Failure> {
    rollup::ensure_indexes(db).await?;
    let steps = rollup::day_steps(from, to);
    let mut bar = progress.task("roll-ups", steps.len() as u64, "days");
    let (mut s, mut p) = (0, 0);
    for (a, b) in steps {
        let (ds, dp) = rollup::rollup_range(db, a, b).await?;
        s += ds;
        p += dp;
        bar.add(1);
    }
    bar.done();
    Ok((s, p))
}

/// Keeps the roll-ups current: after each minute closes (plus `analysis.delay_secs`),
/// recomputes the last `analysis.trailing_minutes` minutes.
async fn follow(settings: &Settings, backfill_from: Option<DateTime<Utc>>) -> Result<(), Failure> {
    let clock: Clock = settings.clock.clock().map_err(usage)?;
    let bus = Bus::from_settings(settings, "analysis", clock.clone()).map_err(usage)?;
    let telemetry = cashtag_telemetry::Telemetry::new("analysis");
    let shutdown = cashtag_telemetry::shutdown_token();
    let (_addr, server) = telemetry
        .serve(settings.http_listen(DEFAULT_PORT), axum::Router::new(), shutdown.clone())
        .await
        .context("http.listen")?;
    let passes = telemetry.counter("rollup_passes_total", "Roll-up passes completed");
    let failures = telemetry.counter("rollup_failures_total", "Roll-up passes that failed");
    let minutes = telemetry.counter_vec("rollup_minutes_total", "Ticker-minutes written", &["kind"]);
    let hb = bus.spawn_heartbeat(
        Duration::from_secs(settings.heartbeat.interval_secs),
        Duration::from_secs(settings.heartbeat.ttl_secs),
        shutdown.clone(),
        || serde_json::Value::Null,
    );
    let db = database(settings).await?;
    let trailing = TimeDelta::minutes(settings.analysis.trailing_minutes as i64);
    let delay = TimeDelta::seconds(settings.analysis.delay_secs as i64);
    bus.emit(bus.event(
        EventKind::Activity,
        "service.start",
        format!("roll-ups following, trailing {} minutes", settings.analysis.trailing_minutes),
    ));
    if let Err(e) = rollup::ensure_indexes(&db).await {
        bus.emit(bus.event(EventKind::Warning, "rollup.indexes", format!("could not create the roll-up indexes: {e}")));
    }
    if let Some(from) = backfill_from {
        let to = minute_floor(clock.now());
        match backfill(&db, from, to, &Progress::new(true)).await {
            Ok((s, p)) => bus.emit(bus.event(
                EventKind::Activity,
                "rollup.backfill",
                format!("backfilled {s} sentiment and {p} price minutes"),
            )),
            Err(f) => bus.emit(bus.event(EventKind::Error, "rollup.failed", format!("backfill failed: {:#}", f.error))),
        }
    }
    let mut healthy = true;
    loop {
        let next = minute_floor(clock.now()) + TimeDelta::minutes(1) + delay;
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = shutdown.cancelled() => break,
        }
        let end = minute_floor(clock.now() - delay);
        match rollup::rollup_range(&db, end - trailing, end).await {
            Ok((s, p)) => {
                passes.inc();
                minutes.with_label_values(&["sentiment"]).inc_by(s as u64);
                minutes.with_label_values(&["price"]).inc_by(p as u64);
                if !healthy {
                    bus.emit(bus.event(EventKind::Activity, "rollup.recovered", "roll-ups are working again"));
                    healthy = true;
                }
                telemetry.health.set(true, serde_json::json!({"last_minute": cashtag_core::time::rfc3339(&end)}));
            }
            Err(e) => {
                failures.inc();
                if healthy {
                    bus.emit(bus.event(
                        EventKind::Error,
                        "rollup.failed",
                        format!("roll-up of the minutes before {} failed: {e}", cashtag_core::time::rfc3339(&end)),
                    ));
                    healthy = false;
                }
                telemetry.health.set(false, serde_json::json!({"error": e.to_string()}));
            }
        }
    }
    let _ = hb.await;
    bus.emit(bus.event(EventKind::Activity, "service.stop", "roll-ups stopped"));
    bus.events().flush(Duration::from_secs(2)).await;
    let _ = server.await;
    Ok(())
}

fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(60) * 60, 0).expect("valid")
}

async fn study(settings: &Settings, a: StudyArgs) -> Result<(), Failure> {
    let interval = parse_interval(&a.interval).map_err(|e| Failure { code: 3, error: anyhow::anyhow!(e) })?;
    if !(0.0..1.0).contains(&a.alpha) || a.alpha == 0.0 {
        return Err(Failure { code: 3, error: anyhow::anyhow!("--alpha must be in (0, 1)") });
    }
    let to = a.to.unwrap_or(a.from);
    let market = (!a.market.eq_ignore_ascii_case("none")).then(|| a.market.to_uppercase());
    let tickers: Vec<String> = if a.tickers.is_empty() {
        let wl = settings.watchlist.load().map_err(usage)?;
        wl.tickers().into_iter().map(|t| t.to_string()).filter(|t| Some(t) != market.as_ref()).collect()
    } else {
        a.tickers
            .iter()
            .map(|t| {
                t.trim_start_matches('$')
                    .parse::<cashtag_core::Ticker>()
                    .map(|t| t.to_string())
                    .map_err(|e| Failure { code: 3, error: anyhow::anyhow!("--tickers: {e}") })
            })
            .collect::<Result<_, _>>()?
    };
    let calendar = cashtag_control::calendar_from_settings(settings).map_err(usage)?;
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
        },
    };
    let db = database(settings).await?;
    let (result, series) = cashtag_analysis::study_from_db(&db, &calendar, &req).await?;
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
    cashtag_analysis::report::write(&out, &result, &series, &title)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result).expect("serializes"));
    } else {
        println!("{}", cashtag_analysis::report::verdict(&result));
        println!("report: {}", out.join("report.html").display());
    }
    Ok(())
}
