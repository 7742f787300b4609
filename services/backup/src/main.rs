//! cashtag-backup: daily MongoDB archives in S3 that provably restore.
//!
//! Exit codes: 0 ok, 1 other failure, 2 configuration, 3 AWS credentials, 4 bucket
//! missing, 5 MongoDB, 6 damaged backup, 7 backup not found, 8 refused (non-empty target).

use std::path::PathBuf;
use std::time::Duration;

use cashtag_backup::schedule::Plan;
use cashtag_backup::{BackupError, RestoreOptions, Target};
use cashtag_bus::Bus;
use cashtag_core::{EventKind, Settings};
use cashtag_telemetry::progress::Progress;
use clap::{Parser, Subcommand};

const DEFAULT_PORT: u16 = 9105;

#[derive(Parser)]
#[command(name = "cashtag-backup", version, about = "MongoDB archives in S3: back up, verify, restore, prune")]
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
    if matches!(cli.command, Command::Schedule) {
        cashtag_telemetry::init_tracing("backup");
    } else {
        cashtag_telemetry::init_cli_tracing();
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cashtag-backup: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match rt.block_on(dispatch(cli, settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cashtag-backup: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

async fn mongo(settings: &Settings) -> Result<mongodb::Client, BackupError> {
    cashtag_sinks::mongo::connect(settings.mongo.uri.expose(), "cashtag-backup")
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

async fn dispatch(cli: Cli, settings: Settings) -> Result<(), BackupError> {
    let target = Target::from_settings(&settings.backup);
    let s3 = cashtag_backup::s3::client(&settings.aws.region, &settings.aws.endpoint).await;
    let progress = Progress::new(cli.quiet);
    let clock = settings.clock.clock().map_err(|e| BackupError::Config(e.to_string()))?;
    match cli.command {
        Command::Run => {
            let m = cashtag_backup::backup(
                &mongo(&settings).await?,
                &s3,
                &target,
                &settings.backup.databases,
                clock.now(),
                &progress,
            )
            .await;
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
            let list = cashtag_backup::list(&s3, &target).await.map_err(hint_credentials)?;
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
            let (m, c) = cashtag_backup::verify(&s3, &target, &key).await.map_err(hint_credentials)?;
            println!(
                "verified {key}: sha256 {} matches, {} collections, {} documents parse",
                c.sha256,
                m.collections.len(),
                m.documents()
            );
        }
        Command::Restore { key, to_db, drop, collections } => {
            let n = cashtag_backup::restore(
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
            let (kept, deleted) = cashtag_backup::prune(
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
    match e {
        BackupError::S3(msg)
            if !credentials_present() && (msg.contains("credential") || msg.contains("dispatch failure")) =>
        {
            BackupError::Credentials(format!("{msg} (no AWS_ACCESS_KEY_ID or AWS_PROFILE in the environment)"))
        }
        other => other,
    }
}

async fn schedule(settings: Settings, target: Target, s3: cashtag_backup::s3::S3Client) -> Result<(), BackupError> {
    let plan = Plan::new(&settings.backup.cron, &settings.backup.timezone).map_err(BackupError::Config)?;
    let clock = settings.clock.clock().map_err(|e| BackupError::Config(e.to_string()))?;
    let bus = Bus::from_settings(&settings, "backup", clock.clone()).map_err(|e| BackupError::Config(e.to_string()))?;
    let telemetry = cashtag_telemetry::Telemetry::new("backup");
    let shutdown = cashtag_telemetry::shutdown_token();
    let (_addr, server) = telemetry
        .serve(settings.http_listen(DEFAULT_PORT), axum::Router::new(), shutdown.clone())
        .await
        .map_err(|e| BackupError::Config(format!("http.listen: {e}")))?;
    let hb = bus.spawn_heartbeat(
        Duration::from_secs(settings.heartbeat.interval_secs),
        Duration::from_secs(settings.heartbeat.ttl_secs),
        shutdown.clone(),
        || serde_json::Value::Null,
    );
    let mongo = mongo(&settings).await?;
    let progress = Progress::new(true);
    bus.emit(bus.event(
        EventKind::Activity,
        "service.start",
        format!("backup scheduler starting: {} ({})", settings.backup.cron, settings.backup.timezone),
    ));

    // A run the host missed while it was down runs now.
    let newest = cashtag_backup::list(&s3, &target).await.ok().and_then(|l| l.last().map(|b| b.at));
    let mut due = plan.missed(clock.now(), newest);
    if let Some(missed) = due {
        bus.emit(bus.event(
            EventKind::Warning,
            "backup.missed",
            format!("the backup due at {} did not run; running it now", cashtag_core::time::rfc3339(&missed)),
        ));
    }
    loop {
        if due.is_none() {
            let Some(next) = plan.next_after(clock.now()) else { break };
            tracing::info!(next = %cashtag_core::time::rfc3339(&next), "next backup");
            tokio::select! {
                _ = clock.sleep_until(next) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        due = None;
        bus.emit(bus.event(EventKind::Activity, "backup.start", "backup starting"));
        let t0 = std::time::Instant::now();
        match cashtag_backup::backup(&mongo, &s3, &target, &settings.backup.databases, clock.now(), &progress).await {
            Ok(m) => bus.emit(
                bus.event(
                    EventKind::Activity,
                    "backup.done",
                    format!(
                        "backup done: {} collections, {} documents, {} bytes in {:.1} s",
                        m.collections.len(),
                        m.documents(),
                        m.archive_bytes,
                        m.duration_secs
                    ),
                )
                .with("key", m.key.clone())
                .with("bytes", m.archive_bytes)
                .with("documents", m.documents())
                .with("seconds", m.duration_secs),
            ),
            Err(e) => bus.emit(
                bus.event(
                    EventKind::Error,
                    "backup.failed",
                    format!("backup failed after {:.1} s: {e}", t0.elapsed().as_secs_f64()),
                )
                .with("exit_code", e.exit_code()),
            ),
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    let _ = hb.await;
    bus.emit(bus.event(EventKind::Activity, "service.stop", "backup scheduler stopped"));
    bus.events().flush(Duration::from_secs(2)).await;
    let _ = server.await;
    Ok(())
}
