//! cashtagctl: one command for the operator of a cashtag host. The containers of the
//! compose project through the Docker API, the suite's state through the bus; the
//! logic is in `cashtag-ops`, this file only wires it to the command line.
//!
//! Exit codes: 0 done and healthy; 1 not healthy (status, wait, restart) or the command
//! run for it failed (backup); 2 usage; 3 the Docker engine; 4 Redis; 5 no such project,
//! service or backup.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cashtag_bus::{Bus, ControlHold};
use cashtag_core::catalog;
use cashtag_ops::connect::{self, container_ip, open_bus, read_dotenv, redis_url};
use cashtag_ops::containers::{ContainerView, human_duration};
use cashtag_ops::engine::{Engine, LogLine, LogQuery};
use cashtag_ops::logs::{Rendering, render};
use cashtag_ops::market::MarketReport;
use cashtag_ops::status::Status;
use cashtag_ops::suite::SuiteState;
use cashtag_ops::{OpsError, logs};
use cashtag_runtime::Failure;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use clap::{Parser, Subcommand};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(name = "cashtagctl", version, about = "The operator's command for a cashtag host")]
struct Cli {
    /// The compose project (default: COMPOSE_PROJECT_NAME, else this directory's name).
    #[arg(long, short = 'p', global = true)]
    project: Option<String>,
    /// The compose .env with COMPOSE_PROJECT_NAME (default: ./.env); the Redis password is
    /// read from secrets/redis_password beside it (or CASHTAG_SECRETS_DIR), or REDIS_PASSWORD.
    #[arg(long, global = true)]
    env_file: Option<PathBuf>,
    /// Redis, when not the project's redis container: redis://:PASSWORD@HOST:6379.
    #[arg(long, global = true, env = "CASHTAG_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// The suite's key prefix (the services' redis.prefix).
    #[arg(long, global = true, env = "CASHTAG_REDIS_PREFIX", default_value = "cashtag")]
    prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Containers, market, flags, heartbeats, sink backlogs, last errors; exit 1 when
    /// something is not healthy.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The services' logs, multiplexed, JSON lines made readable.
    Logs {
        /// Only these services (default: all).
        services: Vec<String>,
        #[arg(long, short = 'f')]
        follow: bool,
        /// The last N lines of each container.
        #[arg(long, short = 'n')]
        tail: Option<u64>,
        /// Only lines younger than this (`90s`, `15m`, `1h`, `2d`) or after an RFC 3339 instant.
        #[arg(long)]
        since: Option<String>,
        /// Keep each line as the service wrote it.
        #[arg(long)]
        raw: bool,
        /// No `service |` before each line.
        #[arg(long)]
        no_prefix: bool,
    },
    /// Restart a service's containers, each given its stop grace period, then wait until
    /// they are healthy.
    Restart {
        service: String,
        /// Seconds to wait for a clean stop before the kill (default: stop_grace_period).
        #[arg(long)]
        grace: Option<u64>,
        /// How long to wait for health afterwards (`0s`: do not wait).
        #[arg(long, default_value = "120s")]
        wait: String,
    },
    /// Stop the data sources for maintenance; the manager keeps them off until `start`.
    Stop {
        /// Why (it goes into the control state and the event).
        #[arg(long)]
        reason: String,
        /// End the stop by itself after this long (`30m`, `2h`).
        #[arg(long = "for")]
        for_: Option<String>,
    },
    /// End a maintenance stop: the manager follows the calendar again.
    Start,
    /// Show the feature flags, or set one.
    Flags {
        #[command(subcommand)]
        action: Option<FlagsAction>,
    },
    /// Today (or --date) on the NYSE calendar, now, the next session, what the sources do.
    Market {
        #[arg(long)]
        date: Option<NaiveDate>,
        #[arg(long)]
        json: bool,
    },
    /// Backups, run in the backup container.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Wait until every container of the project is running and healthy (for scripts).
    Wait {
        /// Wait for health (the only condition there is, and the default).
        #[arg(long, default_value_t = true)]
        healthy: bool,
        #[arg(long, default_value = "120s")]
        timeout: String,
    },
}

#[derive(Subcommand)]
enum FlagsAction {
    /// `flags set kinesis_write off`: every service applies it within a second.
    Set { name: String, value: String },
}

#[derive(Subcommand)]
enum BackupAction {
    /// Back up MongoDB to S3 now.
    Now,
    /// The backups in S3.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download a backup (the newest without KEY) and check it against its manifest.
    Verify { key: Option<String> },
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::usage(message.into())
}

/// A command that failed for a reason of its own (exit 1), or with `code`.
fn failed(code: u8, message: impl Into<String>) -> Failure {
    Failure::new(code, anyhow::anyhow!(message.into()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(failure) => cashtag_runtime::exit("cashtagctl", Err(failure)),
    }
}

/// What every command starts from.
struct Host {
    engine: Engine,
    dotenv: std::collections::BTreeMap<String, String>,
    /// Where the .env is: the compose directory.
    dir: PathBuf,
    redis_url: Option<String>,
    prefix: String,
}

impl Host {
    async fn open(cli: &Cli) -> Result<Host, Failure> {
        let dotenv = read_dotenv(cli.env_file.as_deref())?;
        let dir = match &cli.env_file {
            Some(f) => f.parent().map(PathBuf::from).unwrap_or_default(),
            None => std::env::current_dir().unwrap_or_default(),
        };
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let project = connect::project_name(cli.project.as_deref(), &dotenv, &dir);
        if project.is_empty() {
            return Err(usage("no project: pass --project NAME or set COMPOSE_PROJECT_NAME"));
        }
        let engine = Engine::connect(&project).await?;
        Ok(Host { engine, dotenv, dir, redis_url: cli.redis_url.clone(), prefix: cli.prefix.clone() })
    }

    /// The bus: `--redis-url`, else the project's redis container with its password.
    async fn bus(&self) -> Result<Bus, OpsError> {
        if let Some(url) = &self.redis_url {
            return open_bus(url, &self.prefix, url.contains('@')).await;
        }
        let redis = self.engine.service("redis").await?.remove(0);
        let ip = container_ip(&redis).ok_or_else(|| {
            OpsError::Redis("the redis container has no network address (is it running?)".to_string())
        })?;
        let password = connect::redis_password(&self.dotenv, &self.dir)?;
        open_bus(&redis_url(ip, password.as_deref()), &self.prefix, password.is_some()).await
    }

    /// The containers, with the memory each running one uses; each that is not healthy
    /// with the last line it logged.
    async fn views(&self) -> Result<Vec<ContainerView>, OpsError> {
        let inspected = self.engine.containers().await?;
        let mut views: Vec<ContainerView> = inspected.iter().map(ContainerView::from_inspect).collect();
        // All at once, each with a deadline: a slow engine costs the screen seconds, not
        // a second per container.
        let used = futures::future::join_all(views.iter().zip(&inspected).map(|(v, c)| async move {
            let id = c.id.as_deref().filter(|_| v.state == "running")?;
            tokio::time::timeout(Duration::from_secs(3), self.engine.memory_used(id)).await.ok().flatten()
        }))
        .await;
        for (v, used) in views.iter_mut().zip(used) {
            v.memory_used = used;
        }
        for v in views.iter_mut().filter(|v| !v.is_healthy()) {
            v.last_log = self.last_line(&v.service).await;
        }
        Ok(views)
    }

    /// A service's last log line, readable and short; none when it cannot be read.
    async fn last_line(&self, service: &str) -> Option<String> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let query = LogQuery { follow: false, tail: Some(1), since: None };
        let services = [service.to_string()];
        let read = self.engine.logs(&services, &query, tx);
        let (_, line) = tokio::join!(read, rx.recv());
        let text = line?.text;
        let text = logs::readable(&text).unwrap_or(text);
        let text = text.trim();
        (!text.is_empty()).then(|| text.chars().take(300).collect())
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    // The calendar needs no host.
    if let Command::Market { date, json } = &cli.command {
        return market(&cli, *date, *json).await;
    }
    let host = Host::open(&cli).await?;
    match cli.command {
        Command::Status { json } => status(&host, json).await,
        Command::Logs { services, follow, tail, since, raw, no_prefix } => {
            let since = since.as_deref().map(since_instant).transpose()?;
            let width = if services.is_empty() {
                host.views().await?.iter().map(|c| c.service.len()).max().unwrap_or(0)
            } else {
                services.iter().map(String::len).max().unwrap_or(0)
            };
            let how = Rendering { raw, no_prefix, prefix_width: width };
            let (tx, mut rx) = mpsc::channel::<LogLine>(1024);
            let engine = host.engine.clone();
            let query = LogQuery { follow, tail, since };
            let reading = tokio::spawn(async move { engine.logs(&services, &query, tx).await });
            while let Some(line) = rx.recv().await {
                // `cashtagctl logs -f | head`: a closed pipe ends the command quietly.
                if writeln!(std::io::stdout(), "{}", render(&line, &how)).is_err() {
                    reading.abort();
                    return Ok(0);
                }
            }
            reading.await.map_err(|e| failed(cashtag_core::exit::OTHER, e.to_string()))??;
            Ok(0)
        }
        Command::Restart { service, grace, wait } => {
            let wait = parse_duration(&wait)?;
            let containers = host.engine.service(&service).await?;
            for c in &containers {
                let t = grace.map(Duration::from_secs).unwrap_or_else(|| cashtag_ops::engine::stop_grace(c));
                println!(
                    "restarting {} (up to {} s for a clean stop)",
                    cashtag_ops::engine::container_name(c),
                    t.as_secs()
                );
            }
            let done = host.engine.restart(&service, grace.map(Duration::from_secs)).await?;
            println!("restarted {}", done.iter().map(|d| d.0.as_str()).collect::<Vec<_>>().join(", "));
            if wait.is_zero() {
                return Ok(0);
            }
            wait_healthy(&host, Some(&service), wait).await
        }
        Command::Stop { reason, for_ } => {
            if reason.trim().is_empty() {
                return Err(usage("--reason must say why the sources stop"));
            }
            let bus = host.bus().await?;
            let now = Utc::now();
            let until = for_.as_deref().map(parse_duration).transpose()?.map(|d| now + to_delta(d));
            let hold = ControlHold { reason: reason.clone(), by: operator(), at: now, until };
            bus.hold_sources(&hold).await.map_err(|e| OpsError::Redis(e.to_string()))?;
            bus.emit(catalog::control_hold(&hold.reason, &hold.by, until));
            bus.events().flush(Duration::from_secs(3)).await;
            let till = until.map(|u| format!(" until {}", u.format("%Y-%m-%d %H:%M:%S UTC"))).unwrap_or_default();
            println!("data sources stopped{till}: {reason}");
            println!("`cashtagctl start` ends the stop; the manager then follows the calendar again");
            report_fetchers(&bus, false).await;
            Ok(0)
        }
        Command::Start => {
            let bus = host.bus().await?;
            match bus.release_hold().await.map_err(|e| OpsError::Redis(e.to_string()))? {
                None => {
                    println!("no maintenance stop is in force; the manager follows the calendar");
                    Ok(0)
                }
                Some(h) => {
                    bus.emit(catalog::control_released(&h.reason, &operator(), false));
                    bus.events().flush(Duration::from_secs(3)).await;
                    println!("maintenance stop ended ({}); the manager follows the calendar again", h.reason);
                    // The manager's next evaluation (every few seconds) decides.
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_secs(15) {
                        if let Ok(s) = bus.control_state().await
                            && s.reason != h.state_reason()
                        {
                            println!("data sources {}: {}", if s.is_on() { "on" } else { "off" }, s.reason);
                            return Ok(0);
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    println!("the manager has not decided within 15 s (is it running? see `cashtagctl status`)");
                    Ok(1)
                }
            }
        }
        Command::Flags { action } => flags(&host, action).await,
        Command::Market { .. } => unreachable!("handled above"),
        Command::Backup { action } => backup(&host, action).await,
        Command::Wait { healthy, timeout } => {
            if !healthy {
                return Err(usage("wait knows one condition: --healthy"));
            }
            wait_healthy(&host, None, parse_duration(&timeout)?).await
        }
    }
}

fn operator() -> String {
    std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "operator".into())
}

async fn status(host: &Host, json: bool) -> Result<u8, Failure> {
    let containers = host.views().await?;
    let suite = match host.bus().await {
        Ok(bus) => SuiteState::read(&bus).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let status = Status::new(&host.engine.project, Utc::now(), containers, suite);
    if json {
        println!("{}", serde_json::to_string_pretty(&status).expect("status serializes"));
    } else {
        print!("{}", status.render());
    }
    Ok(if status.healthy() { 0 } else { 1 })
}

/// Waits until the containers (of one service, or all) are healthy; prints what it waits for.
async fn wait_healthy(host: &Host, service: Option<&str>, timeout: Duration) -> Result<u8, Failure> {
    let t = Instant::now();
    let mut last = String::new();
    loop {
        let views: Vec<ContainerView> =
            host.views().await?.into_iter().filter(|c| service.is_none_or(|s| c.service == s)).collect();
        let waiting: Vec<String> = views
            .iter()
            .filter(|c| !c.is_healthy())
            .map(|c| format!("{} {}", c.service, c.health.clone().unwrap_or_else(|| c.state.clone())))
            .collect();
        if !views.is_empty() && waiting.is_empty() {
            let n = views.len();
            let plural = if n == 1 { "" } else { "s" };
            println!("{n} container{plural} healthy after {}", human_duration(to_delta(t.elapsed())));
            return Ok(0);
        }
        let now = if views.is_empty() { "no containers yet".to_string() } else { waiting.join(", ") };
        if now != last {
            println!("waiting: {now}");
            last = now;
        }
        if t.elapsed() >= timeout {
            let problems: Vec<String> = views.iter().filter_map(ContainerView::problem).collect();
            eprintln!(
                "cashtagctl: not healthy within {}: {}",
                human_duration(to_delta(timeout)),
                if problems.is_empty() { last } else { problems.join("; ") }
            );
            return Ok(1);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// After a stop: which fetchers have switched off (from their heartbeats), for 10 s.
async fn report_fetchers(bus: &Bus, want_on: bool) {
    let t = Instant::now();
    loop {
        let alive = bus.alive().await.unwrap_or_default();
        let fetchers: Vec<(String, bool)> = alive
            .iter()
            .filter_map(|h| h.info.get("market_on").and_then(|v| v.as_bool()).map(|on| (h.service.clone(), on)))
            .filter(|(s, _)| s != "manager")
            .collect();
        let pending: Vec<&String> = fetchers.iter().filter(|(_, on)| *on != want_on).map(|(s, _)| s).collect();
        if pending.is_empty() || t.elapsed() > Duration::from_secs(10) {
            let done: Vec<&String> = fetchers.iter().filter(|(_, on)| *on == want_on).map(|(s, _)| s).collect();
            if !done.is_empty() {
                let names: Vec<&str> = done.iter().map(|s| s.as_str()).collect();
                println!("{} {}", names.join(", "), if want_on { "on" } else { "off" });
            }
            if !pending.is_empty() {
                let names: Vec<&str> = pending.iter().map(|s| s.as_str()).collect();
                println!("not yet: {} (their next heartbeat tells)", names.join(", "));
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn flags(host: &Host, action: Option<FlagsAction>) -> Result<u8, Failure> {
    let bus = host.bus().await?;
    let known = bus.flags().await.map_err(|e| OpsError::Redis(e.to_string()))?;
    match action {
        None => {
            for (name, value) in &known.0 {
                println!("{name:<20} {}", if *value { "on" } else { "off" });
            }
        }
        Some(FlagsAction::Set { name, value }) => {
            let value = match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" | "yes" => true,
                "off" | "false" | "0" | "no" => false,
                other => return Err(usage(format!("a flag is on or off, not {other:?}"))),
            };
            if !known.0.contains_key(&name) {
                let names = known.0.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err(failed(
                    cashtag_ops::exit::NOT_FOUND,
                    format!("unknown flag {name:?}; the suite's flags: {names}"),
                ));
            }
            let by = operator();
            bus.set_flag(&name, value, &by).await.map_err(|e| OpsError::Redis(e.to_string()))?;
            // The same audit event as `cashtag-manager flags set`.
            bus.emit(catalog::flag_changed(&name, value, &by));
            bus.events().flush(Duration::from_secs(3)).await;
            println!("{name} = {}", if value { "on" } else { "off" });
        }
    }
    Ok(0)
}

async fn market(cli: &Cli, date: Option<NaiveDate>, json: bool) -> Result<u8, Failure> {
    let cal = cashtag_calendar::Calendar::nyse();
    let report = MarketReport::new(&cal, Utc::now(), date);
    // What the suite does, when its bus can be reached.
    let suite = match Host::open(cli).await {
        Ok(host) => match host.bus().await {
            Ok(bus) => SuiteState::read(&bus).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(f) => Err(format!("{:#}", f.error)),
    };
    if json {
        let sources =
            suite.as_ref().ok().map(|s| serde_json::json!({"control": s.control, "hold": s.hold, "manager": s.market}));
        let mut v = serde_json::to_value(&report).expect("serializes");
        v["sources"] = sources.unwrap_or(serde_json::Value::Null);
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
        return Ok(0);
    }
    print!("{}", report.render());
    match suite {
        Ok(s) => {
            let on = if s.control.is_on() { "on" } else { "off" };
            println!("{:<13}{on}: {}", "Sources", s.control.reason);
            let held = s.held_at(Utc::now()).is_some();
            if let Some(m) = s.market
                && let (Some(reason), Some(next)) = (m.reason, m.next_change)
                && !held
            {
                let next = DateTime::parse_from_rfc3339(&next)
                    .map(|t| cashtag_calendar::ny_time(t.with_timezone(&Utc)))
                    .unwrap_or(next);
                println!("{:<13}{reason}; {} at {next}", "Manager", if m.market_on { "off" } else { "on" });
            }
        }
        Err(e) => println!("{:<13}unknown ({e})", "Sources"),
    }
    println!("(the built-in NYSE calendar; a manager.calendar_overrides file on the host is not read here)");
    Ok(0)
}

async fn backup(host: &Host, action: BackupAction) -> Result<u8, Failure> {
    let key = match &action {
        BackupAction::Verify { key: None } => {
            let mut lines = Vec::new();
            let code = exec(host, &["cashtag-backup", "list", "--json"], |l| lines.push(l.text)).await?;
            if code != 0 {
                return Err(failed(
                    cashtag_core::exit::OTHER,
                    format!("cashtag-backup list failed:\n{}", lines.join("\n")),
                ));
            }
            let newest = lines
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| Some((v.get("at")?.as_str()?.to_string(), v.get("key")?.as_str()?.to_string())))
                .max();
            match newest {
                Some((_, key)) => {
                    println!("verifying the newest backup, {key}");
                    Some(key)
                }
                None => return Err(failed(cashtag_ops::exit::NOT_FOUND, "there is no backup to verify")),
            }
        }
        BackupAction::Verify { key: Some(k) } => Some(k.clone()),
        _ => None,
    };
    let cmd: Vec<&str> = match &action {
        BackupAction::Now => vec!["cashtag-backup", "--quiet", "run"],
        BackupAction::List { json: true } => vec!["cashtag-backup", "list", "--json"],
        BackupAction::List { json: false } => vec!["cashtag-backup", "list"],
        BackupAction::Verify { .. } => vec!["cashtag-backup", "verify", key.as_deref().unwrap_or_default()],
    };
    let code = exec(host, &cmd, |line| {
        if line.stderr {
            eprintln!("{}", logs::readable(&line.text).unwrap_or(line.text));
        } else {
            println!("{}", line.text);
        }
    })
    .await?;
    if code != 0 {
        return Err(failed(
            cashtag_core::exit::OTHER,
            format!("`{}` in the backup container exited with {code}", cmd.join(" ")),
        ));
    }
    Ok(0)
}

/// Runs a command in the backup container; each line of its output to `on_line`.
async fn exec(host: &Host, cmd: &[&str], mut on_line: impl FnMut(LogLine)) -> Result<i64, Failure> {
    let (tx, mut rx) = mpsc::channel::<LogLine>(256);
    let engine = host.engine.clone();
    let owned: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let running = tokio::spawn(async move {
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        engine.exec("backup", &args, tx).await
    });
    while let Some(line) = rx.recv().await {
        on_line(line);
    }
    Ok(running.await.map_err(|e| failed(cashtag_core::exit::OTHER, e.to_string()))??)
}

/// `90s`, `15m`, `1h`, `2d`, `1w` (or plain seconds).
fn parse_duration(s: &str) -> Result<Duration, Failure> {
    let span = cashtag_core::span::parse(s).map_err(|e| usage(e.to_string()))?;
    Ok(span.to_std().unwrap_or_default())
}

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// `--since`: a duration back from now, or an instant.
fn since_instant(s: &str) -> Result<DateTime<Utc>, Failure> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    Ok(Utc::now() - to_delta(parse_duration(s)?))
}
