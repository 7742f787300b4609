//! cashtag-manager: turns the data sources on and off with the NYSE calendar, owns the
//! watchlist and the flag defaults, watches heartbeats, and serves `/status`.

mod calendar_cmd;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cashtag_bus::Bus;
use cashtag_control::{Controller, HeartbeatMonitor, WatchlistPublisher};
use cashtag_core::{Settings, catalog};
use cashtag_runtime::{Failure, Logging, Service};
use clap::{Parser, Subcommand};

/// The HTTP port of the manager unless `http.listen` says otherwise.
const DEFAULT_PORT: u16 = 9101;

#[derive(Parser)]
#[command(name = "cashtag-manager", version, about = "Turns cashtag's data sources on and off with the NYSE calendar")]
struct Cli {
    /// TOML configuration file (also CASHTAG_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the manager: control, watchlist, flag defaults, heartbeats, /status.
    Run,
    /// Print trading sessions, or one day and why it is closed.
    Calendar(calendar_cmd::CalendarArgs),
    /// Show or set feature flags.
    Flags {
        #[command(subcommand)]
        action: Option<FlagsAction>,
    },
}

#[derive(Subcommand)]
enum FlagsAction {
    /// List the flags and their values.
    List,
    /// Set a flag: `flags set kinesis_write off`.
    Set { name: String, value: String },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Calendar(args) => cashtag_runtime::main("cashtag-manager", Logging::Cli, config, |s| async move {
            calendar_cmd::run(&s, &args).map_err(cashtag_runtime::other)
        }),
        Command::Run => cashtag_runtime::main("cashtag-manager", Logging::Service, config, run),
        Command::Flags { action } => cashtag_runtime::main("cashtag-manager", Logging::Cli, config, |s| {
            flags(s, action.unwrap_or(FlagsAction::List))
        }),
    }
}

async fn run(settings: Settings) -> Result<(), Failure> {
    let calendar = cashtag_runtime::calendar(&settings.manager)?;
    let policy = cashtag_control::policy_from_settings(&settings.manager);
    let mut svc = Service::start("manager", &settings, "calendar, watchlist, flags, heartbeats")?;
    let bus = svc.bus.clone();
    let shutdown = svc.shutdown.clone();
    // Flag defaults: written only where absent, so an operator's change survives restarts.
    let every = Duration::from_millis(settings.manager.evaluate_every_ms);
    tokio::spawn(cashtag_control::flags::keep_flag_defaults(
        bus.clone(),
        settings.flags.clone(),
        every,
        shutdown.clone(),
    ));

    let controller =
        Controller::new(bus.clone(), calendar, policy, Duration::from_millis(settings.manager.evaluate_every_ms));
    let status = controller.status();
    let monitor = HeartbeatMonitor::new(bus.clone(), Duration::from_secs(settings.heartbeat.interval_secs));
    let alive = monitor.alive();
    let watchlist_file = (!settings.watchlist.file.is_empty()).then(|| PathBuf::from(&settings.watchlist.file));
    let publisher = WatchlistPublisher::new(bus.clone(), watchlist_file, Duration::from_secs(2));

    let market_on = svc.telemetry.gauge("market_on", "1 while the data sources are told to run");
    let tasks = vec![
        tokio::spawn(controller.run(shutdown.clone())),
        tokio::spawn(monitor.run(shutdown.clone())),
        tokio::spawn(publisher.run(shutdown.clone())),
    ];
    let hb_status = status.clone();
    svc.heartbeat(move || {
        let st = hb_status.lock().unwrap().clone();
        let on = st.state.as_ref().is_some_and(|s| s.is_on());
        market_on.set(if on { 1.0 } else { 0.0 });
        // The decision too: `cashtagctl status` shows why and until when.
        let d = st.decision.as_ref();
        serde_json::json!({
            "market_on": on,
            "reason": d.map(|d| d.reason.clone()),
            "next_change": d.map(|d| cashtag_core::time::rfc3339(&d.next_change)),
            "session_date": d.map(|d| d.session.date.to_string()),
        })
    });
    let addr = svc.serve(DEFAULT_PORT, cashtag_control::status::routes(bus.clone(), status, alive)).await?;
    tracing::info!(%addr, "manager running");

    shutdown.cancelled().await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    svc.stop("manager stopped").await;
    Ok(())
}

async fn flags(settings: Settings, action: FlagsAction) -> Result<(), Failure> {
    let bus = Bus::from_settings(&settings, "cashtagctl", settings.clock.clock()?).map_err(cashtag_runtime::config)?;
    match action {
        FlagsAction::List => {
            let flags = tokio::time::timeout(Duration::from_secs(5), bus.flags())
                .await
                .context("Redis did not answer within 5 s")
                .map_err(cashtag_runtime::other)?
                .map_err(cashtag_runtime::other)?;
            for (name, value) in flags.0 {
                println!("{name:<20} {}", if value { "on" } else { "off" });
            }
        }
        FlagsAction::Set { name, value } => {
            let value = match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" | "yes" => true,
                "off" | "false" | "0" | "no" => false,
                other => return Err(Failure::usage(format!("flag value must be on or off, not {other:?}"))),
            };
            let known = bus.flags().await.map_err(cashtag_runtime::other)?;
            if !known.0.contains_key(&name) && !settings.flags.contains_key(&name) {
                let names = known.0.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err(Failure::usage(format!("unknown flag {name:?}; known flags: {names}")));
            }
            let by = std::env::var("USER").unwrap_or_else(|_| "operator".into());
            bus.set_flag(&name, value, &by).await.map_err(cashtag_runtime::other)?;
            bus.emit(catalog::flag_changed(&name, value, &by));
            bus.events().flush(Duration::from_secs(3)).await;
            println!("{name} = {}", if value { "on" } else { "off" });
        }
    }
    Ok(())
}
