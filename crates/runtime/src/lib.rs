//! cashtag-runtime: the shell every cashtag binary shares, so each `main.rs` only wires.
//!
//! - [`main`]: logging (JSON lines for a service, readable lines on stderr for a command),
//!   the settings (an invalid one exits 2 with the key named), a tokio runtime, and the
//!   exit code of the error the command returns ([`Failure`]).
//! - [`Service`]: what a long-running service has besides its own work — the clock, the
//!   bus, `/healthz` and `/metrics` (plus its own routes), heartbeats, SIGTERM, and a stop
//!   that reports and flushes before the process exits.
//! - [`Globals`]: `--config` and `--quiet`, the options every command takes.
//! - [`calendar`]: the NYSE calendar with the deployment's extra special days, which the
//!   manager, the analysis and the predictor all follow.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cashtag_bus::Bus;
use cashtag_core::exit::{self, ExitStatus};
use cashtag_core::{Clock, Settings, catalog};
use cashtag_telemetry::Telemetry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod runfile;
use runfile::RunFile;

/// Options every command of a binary with settings and progress bars takes (`--config`,
/// `--quiet`), flattened into its command line.
#[derive(Debug, clap::Args)]
pub struct Globals {
    /// TOML configuration file (also CASHTAG_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, global = true)]
    pub quiet: bool,
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logging {
    /// JSON lines on stdout (a long-running service in a container).
    Service,
    /// Readable lines on stderr, warnings and progress only (a command a person runs).
    Cli,
    /// Nothing set up (commands whose stdout is their output, like `score`).
    None,
}

/// A failed command: the error, and the exit code it means.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Failure { code, error: error.into() }
    }

    /// Bad configuration or usage (exit 2).
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Failure { code: exit::CONFIG, error: anyhow::anyhow!("{message}") }
    }
}

impl<E: ExitStatus + std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure { code: e.exit_code(), error: e.into() }
    }
}

/// The NYSE calendar with the deployment's extra special days
/// (`manager.calendar_overrides`), if configured.
pub fn calendar(
    manager: &cashtag_core::config::ManagerSettings,
) -> Result<cashtag_calendar::Calendar, cashtag_core::ConfigError> {
    let mut cal = cashtag_calendar::Calendar::nyse();
    let path = &manager.calendar_overrides;
    if !path.is_empty() {
        let text = std::fs::read_to_string(path).map_err(|e| {
            cashtag_core::ConfigError::new("manager.calendar_overrides", format!("cannot read {path}: {e}"))
        })?;
        cal.extend_from_toml(&text)
            .map_err(|e| cashtag_core::ConfigError::new("manager.calendar_overrides", e.to_string()))?;
    }
    Ok(cal)
}

/// Turns any error into a failure with exit code 1 (`.map_err(other)`).
pub fn other(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: exit::OTHER, error: e.into() }
}

/// Errors the bus and HTTP server give at start are configuration problems.
pub fn config(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: exit::CONFIG, error: e.into() }
}

/// The whole of a binary's `main`: sets up logging, loads the settings (`--config FILE`,
/// `CASHTAG_CONFIG`, `CASHTAG_*`), runs `command` on a tokio runtime, and exits with the
/// code of its failure after printing it as `<binary>: <error and causes>`.
pub fn main<F, Fut>(binary: &'static str, logging: Logging, config_file: Option<&Path>, command: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    match logging {
        Logging::Service => cashtag_telemetry::init_tracing(binary.trim_start_matches("cashtag-")),
        Logging::Cli => cashtag_telemetry::init_cli_tracing(),
        Logging::None => {}
    }
    let settings = match Settings::load(config_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{binary}: invalid configuration: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{binary}: cannot start the async runtime: {e}");
            return ExitCode::from(exit::OTHER);
        }
    };
    exit(binary, runtime.block_on(command(settings)))
}

/// The exit code of a command's result, after printing a failure as
/// `<binary>: <error and causes>` (for commands that need no settings).
pub fn exit(binary: &str, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{binary}: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// What a long-running service shares with every other: started by [`Service::start`],
/// stopped by [`Service::stop`].
pub struct Service {
    pub name: &'static str,
    pub clock: Clock,
    pub bus: Bus,
    pub telemetry: Telemetry,
    /// Cancelled on SIGTERM or SIGINT.
    pub shutdown: CancellationToken,
    settings: Settings,
    server: Option<JoinHandle<()>>,
    heartbeat: Option<JoinHandle<()>>,
    /// `service.run_file`, and whether this run follows an unclean end.
    run_file: Option<(std::sync::Arc<std::sync::Mutex<RunFile>>, bool)>,
}

impl Service {
    /// The clock, the bus, the metrics registry and the shutdown token, and a
    /// `service.start` event saying `what` runs.
    pub fn start(name: &'static str, settings: &Settings, what: impl std::fmt::Display) -> Result<Service, Failure> {
        let clock = settings.clock.clock()?;
        let bus = Bus::from_settings_durable(settings, name, clock.clone()).map_err(config)?;
        let mut svc = Service {
            name,
            clock,
            bus,
            telemetry: Telemetry::new(name),
            shutdown: cashtag_telemetry::shutdown_token(),
            settings: settings.clone(),
            server: None,
            heartbeat: None,
            run_file: None,
        };
        svc.bus.emit(catalog::service_start(format!("{name} {} starting: {what}", env!("CARGO_PKG_VERSION"))));
        if !settings.service.run_file.is_empty() {
            // Wall time, not the (possibly simulated) market clock: restarts happen in it.
            let (file, previous) = RunFile::start(Path::new(&settings.service.run_file), chrono::Utc::now());
            if let Some(p) = &previous {
                svc.bus.emit(catalog::service_restarted(name, p.lasted_secs, p.memory, p.recent));
            }
            svc.run_file = Some((std::sync::Arc::new(std::sync::Mutex::new(file)), previous.is_some()));
        }
        Ok(svc)
    }

    /// Serves `/healthz`, `/metrics` and `routes` on `http.listen` (or `0.0.0.0:port`)
    /// until shutdown; returns the bound address.
    pub async fn serve(&mut self, port: u16, routes: axum::Router) -> Result<std::net::SocketAddr, Failure> {
        let listen = self.settings.http_listen(port);
        let (addr, server) = self
            .telemetry
            .serve(listen, routes, self.shutdown.clone())
            .await
            .map_err(|e| Failure::usage(format!("http.listen {listen}: {e}")))?;
        self.server = Some(server);
        let health = &self.telemetry.health;
        health.set_dependency_grace(Duration::from_secs(self.settings.heartbeat.dependency_grace_secs));
        let bus = self.bus.clone();
        self.watch_dependency("redis", move || {
            let bus = bus.clone();
            async move { bus.ping().await.is_ok() }
        });
        Ok(addr)
    }

    /// Checks a server the service depends on every heartbeat interval (each check with a
    /// 3 s deadline): `/healthz` says 503 once it has failed for
    /// `heartbeat.dependency_grace_secs`, and 200 again once it answers.
    pub fn watch_dependency<F, Fut>(&self, name: &'static str, check: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let health = self.telemetry.health.clone();
        let every = Duration::from_secs(self.settings.heartbeat.interval_secs.max(1));
        let stop = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let answered = tokio::time::timeout(Duration::from_secs(3), check()).await.unwrap_or(false);
                health.dependency(name, answered);
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.cancelled() => return,
                }
            }
        });
    }

    /// [`Service::watch_dependency`] for MongoDB (a `ping` on the service's database).
    pub fn watch_mongo(&self, db: &mongodb::Database) {
        let db = db.clone();
        self.watch_dependency("mongodb", move || {
            let db = db.clone();
            async move { db.run_command(bson::doc! {"ping": 1}).await.is_ok() }
        });
    }

    /// Sends heartbeats with `info` (also shown on `/healthz`) until shutdown; records the
    /// memory in use in the run file at each, and says `service.stable` 10 minutes after an
    /// unclean restart.
    pub fn heartbeat(&mut self, info: impl Fn() -> serde_json::Value + Send + 'static) {
        let hb = &self.settings.heartbeat;
        if let Some((file, after_unclean)) = self.run_file.clone() {
            let (every, stop, bus, name) =
                (Duration::from_secs(hb.interval_secs.max(1)), self.shutdown.clone(), self.bus.clone(), self.name);
            let started = std::time::Instant::now();
            tokio::spawn(async move {
                let mut stable_said = !after_unclean;
                loop {
                    let memory = runfile::memory_now();
                    if let Ok(mut f) = file.lock() {
                        f.sample(memory);
                    }
                    let stable_after = runfile::STABLE_AFTER.to_std().unwrap_or_default();
                    if !stable_said && started.elapsed() >= stable_after {
                        bus.emit(catalog::service_stable(name, stable_after.as_secs() / 60));
                        stable_said = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            });
        }
        self.heartbeat = Some(self.bus.spawn_heartbeat(
            Duration::from_secs(hb.interval_secs),
            Duration::from_secs(hb.ttl_secs),
            self.shutdown.clone(),
            info,
        ));
    }

    /// Waits for the heartbeat task to end (it ends at shutdown), releasing what its
    /// closure holds.
    pub async fn end_heartbeat(&mut self) {
        self.shutdown.cancel();
        if let Some(hb) = self.heartbeat.take() {
            let _ = hb.await;
        }
    }

    /// Waits for the heartbeat to end, reports `service.stop` with `message`, writes the
    /// events still queued (up to 3 s) and waits for the HTTP server to close.
    pub async fn stop(mut self, message: impl Into<String>) {
        self.end_heartbeat().await;
        if let Some((file, _)) = self.run_file.take()
            && let Ok(mut file) = file.lock()
        {
            file.clean_stop();
        }
        self.bus.emit(catalog::service_stop(message));
        self.bus.events().flush(Duration::from_secs(3)).await;
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}
