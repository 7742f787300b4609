//! cashtag-manager: turns the data sources on and off with the NYSE calendar, owns the
//! watchlist and the flag defaults, watches heartbeats, and serves `/status`.

mod calendar_cmd;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cashtag_bus::Bus;
use cashtag_control::{Controller, HeartbeatMonitor, WatchlistPublisher};
use cashtag_core::{EventKind, Settings};
use cashtag_telemetry::Telemetry;
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
    let result = match cli.command {
        Command::Calendar(args) => load(&cli.config).and_then(|s| calendar_cmd::run(&s, &args)),
        Command::Run => {
            cashtag_telemetry::init_tracing("manager");
            load(&cli.config).and_then(|s| runtime()?.block_on(run(s)))
        }
        Command::Flags { action } => {
            cashtag_telemetry::init_cli_tracing();
            load(&cli.config).and_then(|s| runtime()?.block_on(flags(s, action.unwrap_or(FlagsAction::List))))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cashtag-manager: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load(config: &Option<PathBuf>) -> anyhow::Result<Settings> {
    Settings::load(config.as_deref()).context("invalid configuration")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let clock = settings.clock.clock()?;
    let calendar = cashtag_control::calendar_from_settings(&settings)?;
    let policy = cashtag_control::policy_from_settings(&settings);
    let bus = Bus::from_settings(&settings, "manager", clock.clone())?;
    let telemetry = Telemetry::new("manager");
    let shutdown = cashtag_telemetry::shutdown_token();

    bus.emit(bus.event(
        EventKind::Activity,
        "service.start",
        format!("manager {} starting", env!("CARGO_PKG_VERSION")),
    ));

    // Flag defaults: written only where absent, so an operator's change survives restarts.
    {
        let bus = bus.clone();
        let defaults = settings.flags.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                match bus.init_flag_defaults(&defaults).await {
                    Ok(written) => {
                        for name in written {
                            bus.emit(
                                bus.event(
                                    EventKind::Activity,
                                    "flag.default",
                                    format!("flag {name} initialized to {}", defaults[&name]),
                                )
                                .with("flag", name.clone())
                                .with("value", defaults[&name]),
                            );
                        }
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot initialize flag defaults; retrying"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        });
    }

    let controller =
        Controller::new(bus.clone(), calendar, policy, Duration::from_millis(settings.manager.evaluate_every_ms));
    let status = controller.status();
    let monitor = HeartbeatMonitor::new(bus.clone(), Duration::from_secs(settings.heartbeat.interval_secs));
    let alive = monitor.alive();
    let watchlist_file = (!settings.watchlist.file.is_empty()).then(|| PathBuf::from(&settings.watchlist.file));
    let publisher = WatchlistPublisher::new(bus.clone(), watchlist_file, Duration::from_secs(2));

    let market_on = telemetry.gauge("market_on", "1 while the data sources are told to run");
    let mut tasks = vec![
        tokio::spawn(controller.run(shutdown.clone())),
        tokio::spawn(monitor.run(shutdown.clone())),
        tokio::spawn(publisher.run(shutdown.clone())),
    ];
    let hb_status = status.clone();
    tasks.push(bus.spawn_heartbeat(
        Duration::from_secs(settings.heartbeat.interval_secs),
        Duration::from_secs(settings.heartbeat.ttl_secs),
        shutdown.clone(),
        move || {
            let on = hb_status.lock().unwrap().state.as_ref().is_some_and(|s| s.is_on());
            market_on.set(if on { 1.0 } else { 0.0 });
            serde_json::json!({ "market_on": on })
        },
    ));

    let routes = status_routes(bus.clone(), status, alive);
    let (addr, server) = telemetry.serve(settings.http_listen(DEFAULT_PORT), routes, shutdown.clone()).await?;
    tracing::info!(%addr, "manager running");

    shutdown.cancelled().await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    bus.emit(bus.event(EventKind::Activity, "service.stop", "manager stopped"));
    bus.events().flush(Duration::from_secs(3)).await;
    let _ = server.await;
    Ok(())
}

fn status_routes(
    bus: Bus,
    status: Arc<Mutex<cashtag_control::Status>>,
    alive: Arc<Mutex<Vec<cashtag_bus::Heartbeat>>>,
) -> axum::Router {
    axum::Router::new().route(
        "/status",
        axum::routing::get(move || {
            let bus = bus.clone();
            let status = status.lock().unwrap().clone();
            let alive = alive.lock().unwrap().clone();
            async move {
                let flags = bus
                    .flags()
                    .await
                    .map(|f| serde_json::to_value(f.0).unwrap())
                    .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
                let watchlist_size = bus.watchlist().await.ok().flatten().map(|w| w.len());
                let decision = status.decision.as_ref();
                axum::Json(serde_json::json!({
                    "now": cashtag_core::time::rfc3339(&bus.clock().now()),
                    "market": {
                        "on": status.state.as_ref().map(|s| s.is_on()),
                        "state": status.state,
                        "reason": decision.map(|d| d.reason.clone()),
                        "session": decision.map(|d| &d.session),
                        "next_transition": decision.map(|d| cashtag_core::time::rfc3339(&d.next_change)),
                    },
                    "flags": flags,
                    "services": alive,
                    "watchlist_size": watchlist_size,
                }))
            }
        }),
    )
}

async fn flags(settings: Settings, action: FlagsAction) -> anyhow::Result<()> {
    let bus = Bus::from_settings(&settings, "cashtagctl", settings.clock.clock()?)?;
    match action {
        FlagsAction::List => {
            let flags = tokio::time::timeout(Duration::from_secs(5), bus.flags())
                .await
                .context("Redis did not answer within 5 s")??;
            for (name, value) in flags.0 {
                println!("{name:<20} {}", if value { "on" } else { "off" });
            }
        }
        FlagsAction::Set { name, value } => {
            let value = match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" | "yes" => true,
                "off" | "false" | "0" | "no" => false,
                other => anyhow::bail!("flag value must be on or off, not {other:?}"),
            };
            let known = bus.flags().await?;
            if !known.0.contains_key(&name) && !settings.flags.contains_key(&name) {
                anyhow::bail!(
                    "unknown flag {name:?}; known flags: {}",
                    known.0.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            let by = std::env::var("USER").unwrap_or_else(|_| "operator".into());
            bus.set_flag(&name, value, &by).await?;
            bus.emit(
                bus.event(
                    EventKind::Activity,
                    "flag.changed",
                    format!("flag {name} set {} by {by}", if value { "on" } else { "off" }),
                )
                .with("flag", name.clone())
                .with("value", value)
                .with("by", by),
            );
            bus.events().flush(Duration::from_secs(3)).await;
            println!("{name} = {}", if value { "on" } else { "off" });
        }
    }
    Ok(())
}
