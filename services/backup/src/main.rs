//! cashtag-backup: daily MongoDB archives in S3 that provably restore.
//!
//! Exit codes: 0 ok, 1 other failure, 2 configuration, 3 AWS credentials, 4 bucket
//! missing, 5 MongoDB, 6 damaged backup, 7 backup not found, 8 refused (non-empty target).

use std::sync::{Arc, Mutex};

use cashtag_backup_core::schedule::{Plan, Scheduled, run_schedule};
use cashtag_backup_core::{BackupError, RestoreOptions, Target};
use cashtag_core::{Settings, catalog};
use cashtag_runtime::{Failure, Globals, Logging, Service};
use cashtag_telemetry::progress::Progress;
use clap::{Parser, Subcommand};

const DEFAULT_PORT: u16 = 9105;

#[derive(Parser)]
#[command(name = "cashtag-backup", version, about = "MongoDB archives in S3: back up, verify, restore, prune")]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Back up now.
    Run,
    /// Keep running; back up on backup.cron (in backup.timezone), and at start if the last
    /// scheduled backup was missed.
    Schedule,
    /// The backups in S3: date, size, collections, documents, verified.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download a backup and check its checksum and every document against its manifest.
    Verify { key: String },
    /// Restore a backup (after verifying it).
    Restore {
        key: String,
        /// Restore into this database instead of the original one.
        #[arg(long)]
        to_db: Option<String>,
        /// Replace collections that already hold documents.
        #[arg(long)]
        drop: bool,
        /// Only these collections (comma-separated).
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
    },
    /// Delete backups beyond the retention (backup.keep_daily, backup.keep_weekly).
    /// Without --yes it only shows what would be deleted.
    Prune {
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let logging = if matches!(cli.command, Command::Schedule) { Logging::Service } else { Logging::Cli };
    let config = cli.globals.config.clone();
    cashtag_runtime::main("cashtag-backup", logging, config.as_deref(), |settings| async move {
        dispatch(cli, settings).await
    })
}

async fn mongo(settings: &Settings) -> Result<mongodb::Client, BackupError> {
    cashtag_stores::mongo::connect(settings.mongo.uri.expose(), "cashtag-backup")
        .await
        .map_err(|e| BackupError::Config(format!("mongo.uri: {e}")))
}

fn credentials_present() -> bool {
    // Environment keys, a profile, or the instance role (EC2 metadata) — only the first two
    // can be checked without a network call, so a missing pair is a hint, not a verdict.
    std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
        || std::env::var_os("AWS_PROFILE").is_some()
        || std::env::var_os("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
}

async fn dispatch(cli: Cli, settings: Settings) -> Result<(), Failure> {
    let emulator = settings.aws.create_missing && !settings.aws.endpoint.is_empty();
    let target = Target { create_bucket: emulator, ..Target::from_settings(&settings.backup) };
    let s3 = cashtag_stores::s3::client(&settings.aws.region, &settings.aws.endpoint).await;
    let progress = Progress::new(cli.globals.quiet);
    let clock = settings.clock.clock()?;
    match cli.command {
        Command::Run => {
            // On demand too, the run is reported (the status screen and the alerts go by
            // the newest backup.done or backup.failed).
            let bus =
                cashtag_bus::Bus::from_settings(&settings, "backup", clock.clone()).map_err(cashtag_runtime::config)?;
            let mongo = mongo(&settings).await;
            let m = match mongo {
                Ok(mongo) => {
                    let dbs = &settings.backup.databases;
                    cashtag_backup_core::schedule::run_once(&bus.emitter(), &mongo, &s3, &target, dbs, &progress).await
                }
                Err(e) => Err(e),
            };
            if !bus.events().flush(std::time::Duration::from_secs(5)).await {
                eprintln!("warning: the backup events did not reach Redis");
            }
            let m = m.map_err(hint_credentials)?;
            println!(
                "backed up {} collections, {} documents, {} bytes in {:.1} s\n{}\nsha256 {}",
                m.collections.len(),
                m.documents(),
                m.archive_bytes,
                m.duration_secs,
                m.key,
                m.sha256
            );
        }
        Command::Schedule => schedule(settings, target, s3).await?,
        Command::List { json } => {
            let list = cashtag_backup_core::list(&s3, &target).await.map_err(hint_credentials)?;
            if json {
                for l in &list {
                    println!("{}", serde_json::to_string(l).expect("serializes"));
                }
            } else {
                println!(
                    "{:<20} {:>12} {:>11} {:>11} {:<8} key",
                    "date (UTC)", "bytes", "collections", "documents", "verified"
                );
                for l in &list {
                    println!(
                        "{:<20} {:>12} {:>11} {:>11} {:<8} {}",
                        l.at.format("%Y-%m-%d %H:%M:%S"),
                        l.bytes,
                        l.collections.map_or("?".into(), |c| c.to_string()),
                        l.documents.map_or("?".into(), |d| d.to_string()),
                        if l.verified { "yes" } else { "no" },
                        l.key
                    );
                }
            }
        }
        Command::Verify { key } => {
            let (m, c) = cashtag_backup_core::verify(&s3, &target, &key).await.map_err(hint_credentials)?;
            println!(
                "verified {key}: sha256 {} matches, {} collections, {} documents parse",
                c.sha256,
                m.collections.len(),
                m.documents()
            );
        }
        Command::Restore { key, to_db, drop, collections } => {
            let n = cashtag_backup_core::restore(
                &mongo(&settings).await?,
                &s3,
                &target,
                &key,
                &RestoreOptions { to_db, drop, collections },
                &progress,
            )
            .await
            .map_err(hint_credentials)?;
            println!("restored {n} documents from {key}");
        }
        Command::Prune { yes } => {
            let (kept, deleted) = cashtag_backup_core::prune(
                &s3,
                &target,
                settings.backup.keep_daily as usize,
                settings.backup.keep_weekly as usize,
                yes,
            )
            .await
            .map_err(hint_credentials)?;
            for k in &kept {
                println!("keep    {k}");
            }
            for k in &deleted {
                println!("{} {k}", if yes { "deleted" } else { "delete " });
            }
            if !yes && !deleted.is_empty() {
                println!("dry run: {} backup(s) would be deleted; run with --yes to delete them", deleted.len());
            }
        }
    }
    Ok(())
}

fn hint_credentials(e: BackupError) -> BackupError {
    let detail = e.chain();
    match e {
        BackupError::S3 { .. }
            if !credentials_present() && (detail.contains("credential") || detail.contains("dispatch failure")) =>
        {
            BackupError::Credentials(format!("{detail} (no AWS_ACCESS_KEY_ID or AWS_PROFILE in the environment)"))
        }
        other => other,
    }
}

/// Checks every 10 s (one S3 listing) whether backups are overdue — a scheduled run that no backup
/// followed within `backup.overdue_after_mins` — and says so on `/healthz` (503) and in the
/// heartbeat (`newest_backup`, `overdue_since`), which `cashtagctl status` turns into a
/// PROBLEM, and with one `backup.overdue` event each time it becomes overdue (the log's
/// incidents send it to the webhook). A bucket that cannot be listed counts as no backup.
fn watch_freshness(
    svc: &Service,
    settings: &Settings,
    target: &Target,
    s3: &cashtag_stores::s3::S3Client,
    shown: Arc<Mutex<serde_json::Value>>,
) {
    let Ok(plan) = Plan::new(&settings.backup.cron, &settings.backup.timezone) else { return };
    let grace = chrono::TimeDelta::minutes(settings.backup.overdue_after_mins as i64);
    let (health, clock, stop) = (svc.telemetry.health.clone(), svc.clock.clone(), svc.shutdown.clone());
    let (target, s3, bus) = (target.clone(), s3.clone(), svc.bus.clone());
    let started = clock.now();
    let grace_mins = settings.backup.overdue_after_mins;
    tokio::spawn(async move {
        let mut said: Option<chrono::DateTime<chrono::Utc>> = None;
        loop {
            let newest = cashtag_backup_core::list(&s3, &target).await.ok().and_then(|l| l.last().map(|b| b.at));
            let now = clock.now();
            let overdue = plan.overdue(now, newest, grace, started);
            let ts = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| cashtag_core::time::rfc3339(&t));
            let state = serde_json::json!({"newest_backup": ts(newest), "overdue_since": ts(overdue)});
            let problem = overdue.map(|due| {
                format!(
                    "no backup since the run due at {} (backup.overdue_after_mins)",
                    cashtag_core::time::rfc3339(&due)
                )
            });
            health.set(overdue.is_none(), serde_json::json!({"backups": state, "problem": problem}));
            if let Some(due) = overdue
                && said != Some(due)
            {
                bus.emit(catalog::backup_overdue(due, grace_mins));
            }
            said = overdue;
            *shown.lock().unwrap_or_else(|p| p.into_inner()) = state;
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

async fn schedule(settings: Settings, target: Target, s3: cashtag_stores::s3::S3Client) -> Result<(), Failure> {
    let plan = Plan::new(&settings.backup.cron, &settings.backup.timezone)?;
    let what = format!("scheduler, {} ({})", settings.backup.cron, settings.backup.timezone);
    let mut svc = Service::start("backup", &settings, what)?;
    svc.serve(DEFAULT_PORT, axum::Router::new()).await?;
    let freshness = Arc::new(Mutex::new(serde_json::Value::Null));
    let shown = freshness.clone();
    svc.heartbeat(move || shown.lock().unwrap_or_else(|p| p.into_inner()).clone());
    watch_freshness(&svc, &settings, &target, &s3, freshness);
    let mongo = mongo(&settings).await?;
    svc.watch_mongo(&mongo.database("admin"));
    let job = Scheduled {
        plan: &plan,
        events: &svc.bus.emitter(),
        mongo: &mongo,
        s3: &s3,
        target: &target,
        databases: &settings.backup.databases,
    };
    run_schedule(job, svc.shutdown.clone()).await;
    svc.stop("backup scheduler stopped").await;
    Ok(())
}
