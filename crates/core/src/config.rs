//! Configuration: one schema for the whole suite, read from an optional TOML file and
//! `CASHTAG_*` environment variables, validated at start.
//!
//! Every service reads the same [`Settings`] and uses its own sections, so one file (or
//! one set of environment variables in docker-compose) configures the suite, and a typo is
//! an error everywhere instead of a silently ignored setting.
//!
//! Precedence: built-in defaults < the TOML file (`--config` or `CASHTAG_CONFIG`) <
//! environment. A setting's environment name is its path in upper case joined by `_`:
//! `clock.speed` is `CASHTAG_CLOCK_SPEED`. Every error names the key (and the variable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SimSpec};
use crate::secret::Secret;

/// Environment variables with the `CASHTAG_` prefix that are not settings.
const RESERVED_ENV: &[&str] = &["CASHTAG_CONFIG", "CASHTAG_LOG"];
/// Prefixes of environment variables used by scripts and tests, not settings.
const RESERVED_ENV_PREFIXES: &[&str] = &["CASHTAG_STACK_", "CASHTAG_TEST_"];

/// A configuration error that names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`{}: {message}", env_hint(.key, .env))]
pub struct ConfigError {
    /// Dotted path of the setting (`clock.speed`), or the file for file-level errors.
    pub key: String,
    /// The environment variable the bad value came from, if any.
    pub env: Option<String>,
    pub message: String,
}

fn env_hint(_key: &str, env: &Option<String>) -> String {
    match env {
        Some(var) => format!(" (from {var})"),
        None => String::new(),
    }
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { key: key.into(), env: None, message: message.into() }
    }
}

/// Implemented by a configuration schema: semantic checks after parsing.
pub trait Schema: Serialize + DeserializeOwned + Default {
    /// Dotted paths of tables whose keys are open (a map), not fixed fields.
    const OPEN_TABLES: &'static [&'static str] = &[];
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// The environment variable name of a dotted setting path.
pub fn env_name(path: &str) -> String {
    format!("CASHTAG_{}", path.replace('.', "_").to_ascii_uppercase())
}

/// Loads a schema from defaults, an optional TOML file and the given environment.
pub fn load<T: Schema>(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<T, ConfigError> {
    let defaults = match toml::Value::try_from(T::default()) {
        Ok(toml::Value::Table(t)) => t,
        other => panic!("configuration defaults must serialize to a table: {other:?}"),
    };
    let mut merged = defaults.clone();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("not valid TOML: {e}")))?;
        merge_file::<T>(&mut merged, &defaults, table, "")?;
    }
    let index = flatten(&defaults);
    for (var, raw) in env {
        if !var.starts_with("CASHTAG_")
            || RESERVED_ENV.contains(&var.as_str())
            || RESERVED_ENV_PREFIXES.iter().any(|p| var.starts_with(p))
        {
            continue;
        }
        let Some((path, default)) = index.iter().find(|(p, _)| env_name(p) == var) else {
            return Err(ConfigError {
                key: var.clone(),
                env: Some(var.clone()),
                message: "unknown setting (see the configuration reference in README.md)".into(),
            });
        };
        let value = parse_env_value(default, &raw).map_err(|message| ConfigError {
            key: path.clone(),
            env: Some(var.clone()),
            message,
        })?;
        set_path(&mut merged, path, value);
    }
    let value = toml::Value::Table(merged);
    let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let var = env_name(&key);
        let from_env = std::env::var_os(&var).is_some();
        ConfigError { key, env: from_env.then_some(var), message: e.into_inner().to_string() }
    })?;
    parsed.validate()?;
    Ok(parsed)
}

/// Loads from the process environment and the file named by `--config` or `CASHTAG_CONFIG`.
pub fn load_from_env<T: Schema>(file: Option<&Path>) -> Result<T, ConfigError> {
    let from_env = std::env::var_os("CASHTAG_CONFIG").map(PathBuf::from);
    let file = file.map(Path::to_path_buf).or(from_env);
    load(file.as_deref(), std::env::vars())
}

fn merge_file<T: Schema>(
    into: &mut toml::Table,
    defaults: &toml::Table,
    file: toml::Table,
    prefix: &str,
) -> Result<(), ConfigError> {
    let open = T::OPEN_TABLES.contains(&prefix.trim_end_matches('.'));
    for (key, value) in file {
        let path = format!("{prefix}{key}");
        match (defaults.get(&key), value) {
            (Some(toml::Value::Table(d)), toml::Value::Table(v)) => {
                let entry = into.entry(key.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
                let toml::Value::Table(sub) = entry else { unreachable!() };
                merge_file::<T>(sub, d, v, &format!("{path}."))?;
            }
            (Some(toml::Value::Table(_)), _) => {
                return Err(ConfigError::new(path, "expected a table"));
            }
            (Some(_), v) => {
                into.insert(key, v);
            }
            (None, v) if open => {
                into.insert(key, v);
            }
            (None, _) => return Err(ConfigError::new(path, "unknown setting")),
        }
    }
    Ok(())
}

/// All leaf settings as (dotted path, default value).
fn flatten(table: &toml::Table) -> Vec<(String, toml::Value)> {
    fn walk(t: &toml::Table, prefix: &str, out: &mut Vec<(String, toml::Value)>) {
        for (k, v) in t {
            let path = format!("{prefix}{k}");
            match v {
                toml::Value::Table(sub) => walk(sub, &format!("{path}."), out),
                other => out.push((path, other.clone())),
            }
        }
    }
    let mut out = Vec::new();
    walk(table, "", &mut out);
    out
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("non-empty path");
    let mut t = table;
    for p in parts {
        let entry = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        let toml::Value::Table(sub) = entry else { unreachable!("path goes through tables") };
        t = sub;
    }
    t.insert(last.to_string(), value);
}

/// Parses an environment string into the type of the setting's default.
fn parse_env_value(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    let raw_t = raw.trim();
    match default {
        toml::Value::Boolean(_) => match raw_t.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        toml::Value::Integer(_) => raw_t
            .replace('_', "")
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected a whole number, got {raw:?}")),
        toml::Value::Float(_) => {
            raw_t.parse::<f64>().map(toml::Value::Float).map_err(|_| format!("expected a number, got {raw:?}"))
        }
        toml::Value::Array(_) => {
            if raw_t.starts_with('[') {
                let wrapped: toml::Table = toml::from_str(&format!("v = {raw_t}"))
                    .map_err(|e| format!("expected a TOML array, got {raw:?}: {e}"))?;
                Ok(wrapped["v"].clone())
            } else {
                Ok(toml::Value::Array(
                    raw_t
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                ))
            }
        }
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

// ---------------------------------------------------------------------------------------
// The suite's schema.
// ---------------------------------------------------------------------------------------

/// Every setting of the suite. Sections are documented in README.md.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub service: ServiceSettings,
    pub http: HttpSettings,
    pub redis: RedisSettings,
    pub mongo: MongoSettings,
    pub aws: AwsSettings,
    pub clock: ClockSettings,
    /// Feature flags and their defaults (`mongo_write`, `kinesis_write`, ...).
    pub flags: BTreeMap<String, bool>,
    pub heartbeat: HeartbeatSettings,
    pub streams: StreamSettings,
    pub watchlist: WatchlistSettings,
    pub manager: ManagerSettings,
    pub sinks: SinkSettings,
    pub log: LogSettings,
    pub sim: SimSettings,
    pub stocks: StocksSettings,
    pub twitter: TwitterSettings,
    pub backup: BackupSettings,
    pub analysis: AnalysisSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            service: Default::default(),
            http: Default::default(),
            redis: Default::default(),
            mongo: Default::default(),
            aws: Default::default(),
            clock: Default::default(),
            flags: BTreeMap::from([("kinesis_write".into(), true), ("mongo_write".into(), true)]),
            heartbeat: Default::default(),
            streams: Default::default(),
            watchlist: Default::default(),
            manager: Default::default(),
            sinks: Default::default(),
            log: Default::default(),
            sim: Default::default(),
            stocks: Default::default(),
            twitter: Default::default(),
            backup: Default::default(),
            analysis: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSettings {
    /// Instance name in heartbeats and events; empty = `<hostname>-<pid>`.
    pub instance: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Listen address for /healthz and /metrics; empty = 0.0.0.0 on the service's own port.
    pub listen: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    pub url: Secret,
    /// Prefix of every key and channel; lets several suites (or tests) share one Redis.
    pub prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings { url: Secret::new("redis://127.0.0.1:6379"), prefix: "cashtag".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MongoSettings {
    /// Connection string; may hold a password, so it is never printed.
    pub uri: Secret,
    pub database: String,
}

impl Default for MongoSettings {
    fn default() -> Self {
        MongoSettings { uri: Secret::new("mongodb://127.0.0.1:27017"), database: "cashtag".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSettings {
    pub region: String,
    /// Endpoint of an S3/Kinesis emulator; empty = real AWS.
    pub endpoint: String,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings { region: "us-east-1".into(), endpoint: String::new() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClockSettings {
    /// `system` or `simulated`.
    pub mode: String,
    /// Simulated clock as `START@SPEED@ANCHOR` (see [`SimSpec`]); wins over the fields below.
    pub spec: String,
    /// Simulated start instant (RFC 3339).
    pub start: String,
    pub speed: f64,
    /// Wall instant at which simulated time is `start`; empty = when the process starts
    /// (fine for one process; give it explicitly so several processes agree).
    pub anchor: String,
}

impl Default for ClockSettings {
    fn default() -> Self {
        ClockSettings {
            mode: "system".into(),
            spec: String::new(),
            start: String::new(),
            speed: 1.0,
            anchor: String::new(),
        }
    }
}

impl ClockSettings {
    fn sim_spec(&self) -> Result<Option<SimSpec>, ConfigError> {
        if !self.spec.is_empty() {
            return SimSpec::parse(&self.spec).map(Some).map_err(|m| ConfigError::new("clock.spec", m));
        }
        match self.mode.as_str() {
            "system" => Ok(None),
            "simulated" => {
                let ts = |key: &str, s: &str| {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map(|d| d.with_timezone(&chrono::Utc))
                        .map_err(|e| ConfigError::new(key, format!("{s:?} is not an RFC 3339 instant: {e}")))
                };
                let start = ts("clock.start", &self.start)?;
                if !(self.speed.is_finite() && self.speed > 0.0) {
                    return Err(ConfigError::new("clock.speed", format!("must be greater than 0, got {}", self.speed)));
                }
                let anchor = if self.anchor.is_empty() {
                    crate::clock::Clock::System.now()
                } else {
                    ts("clock.anchor", &self.anchor)?
                };
                Ok(Some(SimSpec { start, speed: self.speed, anchor }))
            }
            other => Err(ConfigError::new("clock.mode", format!("expected system or simulated, got {other:?}"))),
        }
    }

    /// Builds the clock these settings describe.
    pub fn clock(&self) -> Result<Clock, ConfigError> {
        Ok(match self.sim_spec()? {
            Some(spec) => Clock::Simulated(spec),
            None => Clock::System,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatSettings {
    pub interval_secs: u64,
    /// A service whose heartbeat is older than this is considered gone.
    pub ttl_secs: u64,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        HeartbeatSettings { interval_secs: 5, ttl_secs: 20 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// Approximate cap (`MAXLEN ~`) of the events stream.
    pub events_maxlen: u64,
    /// Approximate cap of the counts stream.
    pub counts_maxlen: u64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings { events_maxlen: 1_000_000, counts_maxlen: 1_000_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WatchlistSettings {
    /// TOML file of `[[company]] ticker = "AAPL" name = "Apple"`; empty = the built-in list.
    pub file: String,
}

impl WatchlistSettings {
    /// The configured watchlist (the file, or the built-in list).
    pub fn load(&self) -> Result<crate::Watchlist, ConfigError> {
        if self.file.is_empty() {
            return Ok(crate::Watchlist::builtin());
        }
        crate::Watchlist::load(Path::new(&self.file)).map_err(|e| ConfigError::new("watchlist.file", e.to_string()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ManagerSettings {
    /// Data sources turn on this many minutes before the open.
    pub lead_minutes: u32,
    /// ... and off this many minutes after the close.
    pub lag_minutes: u32,
    /// Run from 04:00 to 20:00 New York time on trading days (pre- and post-market).
    pub extended_hours: bool,
    /// TOML file of extra closures and early closes (same shape as the built-in data).
    pub calendar_overrides: String,
    /// The state is re-evaluated at least this often (wall milliseconds).
    pub evaluate_every_ms: u64,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        ManagerSettings {
            lead_minutes: 5,
            lag_minutes: 5,
            extended_hours: false,
            calendar_overrides: String::new(),
            evaluate_every_ms: 2_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// A batch is written when it has this many records ...
    pub batch_size: u64,
    /// ... or when its oldest record is this old.
    pub batch_age_ms: u64,
    /// How long a failing write is retried before its batch goes to the spool.
    pub retry_budget_secs: u64,
    /// Where batches wait while their sink is unreachable (one subdirectory per sink).
    pub spool_dir: String,
    /// Most bytes each sink's spool may hold; when full, intake slows.
    pub spool_max_mb: u64,
    pub spool_segment_mb: u64,
    /// Records buffered in memory per sink before intake waits.
    pub queue_capacity: u64,
    /// Kinesis stream for posts.
    pub kinesis_posts_stream: String,
    /// Kinesis stream for trades, quotes and bars.
    pub kinesis_market_stream: String,
}

impl Default for SinkSettings {
    fn default() -> Self {
        SinkSettings {
            batch_size: 500,
            batch_age_ms: 1_000,
            retry_budget_secs: 10,
            spool_dir: "spool".into(),
            spool_max_mb: 1_024,
            spool_segment_mb: 8,
            queue_capacity: 20_000,
            kinesis_posts_stream: "cashtag-posts".into(),
            kinesis_market_stream: "cashtag-market".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Events and counts older than this are deleted from MongoDB (TTL index).
    pub retention_days: u64,
    /// Directory of the daily JSON-lines files; empty = no files.
    pub files_dir: String,
    /// Daily files kept.
    pub files_keep_days: u64,
    /// During market hours, a source with no records for this long raises one warning.
    pub stale_after_minutes: u64,
    /// More than this many errors from one service ...
    pub burst_errors: u64,
    /// ... within this window raise one alert.
    pub burst_window_secs: u64,
    /// Alerts are POSTed here as JSON; empty = no webhook. May hold a token: never printed.
    pub webhook_url: Secret,
    pub webhook_timeout_ms: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            retention_days: 30,
            files_dir: "logs".into(),
            files_keep_days: 14,
            stale_after_minutes: 5,
            burst_errors: 20,
            burst_window_secs: 60,
            webhook_url: Secret::default(),
            webhook_timeout_ms: 3_000,
        }
    }
}

/// The simulated market and posts (shared by stocks and twitter, so they agree).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimSettings {
    pub seed: u64,
    /// Prices react this many minutes after posts express the news.
    pub lead_minutes: i64,
    /// Strength of the price reaction (0 = posts say nothing about prices).
    pub strength: f64,
    /// Noise on each simulated post's sentiment.
    pub noise: f64,
    pub trades_per_minute: f64,
    pub posts_per_minute: f64,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            seed: 42,
            lead_minutes: 5,
            strength: 0.5,
            noise: 0.5,
            trades_per_minute: 20.0,
            posts_per_minute: 0.5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StocksSettings {
    /// `sim`, `alpaca`, `iex`, `finnhub` or `replay`.
    pub source: String,
    /// Alpaca feed: `iex` (free) or `sip`.
    pub alpaca_feed: String,
    pub alpaca_ws_url: String,
    pub alpaca_rest_url: String,
    pub alpaca_key_id: Secret,
    pub alpaca_secret_key: Secret,
    /// Base URL of an IEX-Cloud-compatible API.
    pub iex_url: String,
    pub iex_token: Secret,
    pub iex_poll_ms: u64,
    pub finnhub_ws_url: String,
    pub finnhub_token: Secret,
    /// Directory of recorded raw payloads to replay (source `replay`).
    pub replay_dir: String,
    /// Replay speed factor; 0 = as fast as possible.
    pub replay_speed: f64,
    /// Write every raw payload here, rotated daily (also `--record DIR`); empty = off.
    pub record_dir: String,
    /// Build one-minute bars from trades.
    pub bars_from_trades: bool,
}

impl Default for StocksSettings {
    fn default() -> Self {
        StocksSettings {
            source: "sim".into(),
            alpaca_feed: "iex".into(),
            alpaca_ws_url: "wss://stream.data.alpaca.markets".into(),
            alpaca_rest_url: "https://data.alpaca.markets".into(),
            alpaca_key_id: Secret::default(),
            alpaca_secret_key: Secret::default(),
            iex_url: "https://cloud.iexapis.com".into(),
            iex_token: Secret::default(),
            iex_poll_ms: 5_000,
            finnhub_ws_url: "wss://ws.finnhub.io".into(),
            finnhub_token: Secret::default(),
            replay_dir: String::new(),
            replay_speed: 1.0,
            record_dir: String::new(),
            bars_from_trades: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TwitterSettings {
    /// Sources run together: any of `sim`, `x`, `stocktwits`, `bluesky`, `replay`.
    pub sources: Vec<String>,
    /// Keep only posts in these languages (when the source says); empty = all.
    pub languages: Vec<String>,
    /// Keep reposts (retweets); by default they are skipped.
    pub include_reposts: bool,
    pub x_api_url: String,
    pub x_bearer_token: Secret,
    /// Longest filtered-stream rule (1,024 on the pay-per-use tier, 2,048 enterprise).
    pub x_rule_max_len: u64,
    pub x_max_rules: u64,
    pub stocktwits_url: String,
    /// StockTwits requests per hour, below its unauthenticated limit of about 200.
    pub stocktwits_requests_per_hour: u64,
    pub bluesky_jetstream_url: String,
    pub replay_dir: String,
    pub replay_speed: f64,
    /// Record raw payloads here (also `run --record DIR`); empty = off.
    pub record_dir: String,
}

impl Default for TwitterSettings {
    fn default() -> Self {
        TwitterSettings {
            sources: vec!["sim".into()],
            languages: vec!["en".into()],
            include_reposts: false,
            x_api_url: "https://api.x.com".into(),
            x_bearer_token: Secret::default(),
            x_rule_max_len: 1_024,
            x_max_rules: 1_000,
            stocktwits_url: "https://api.stocktwits.com".into(),
            stocktwits_requests_per_hour: 180,
            bluesky_jetstream_url: "wss://jetstream2.us-east.bsky.network".into(),
            replay_dir: String::new(),
            replay_speed: 1.0,
            record_dir: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    pub bucket: String,
    /// Keys are `<prefix>/<env>/YYYY/MM/DD/cashtag-<timestamp>.tar.gz`.
    pub prefix: String,
    pub env: String,
    /// Databases to dump.
    pub databases: Vec<String>,
    /// Multipart upload part size (S3 needs at least 5 MiB).
    pub part_size_mb: u64,
    /// When `schedule` runs a backup: cron with seconds (`sec min hour day month weekday`).
    pub cron: String,
    /// Time zone of the cron expression.
    pub timezone: String,
    /// Retention: the newest backup of each of the last N days with backups ...
    pub keep_daily: u64,
    /// ... and of each of the last M weeks.
    pub keep_weekly: u64,
    /// Where collections are staged before going into the archive; empty = the system's
    /// temporary directory.
    pub work_dir: String,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            bucket: "cashtag-backups".into(),
            prefix: "backups".into(),
            env: "prod".into(),
            databases: vec!["cashtag".into()],
            part_size_mb: 8,
            cron: "0 30 16 * * Mon-Fri".into(),
            timezone: "America/New_York".into(),
            keep_daily: 7,
            keep_weekly: 4,
            work_dir: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisSettings {
    /// `aggregate --follow` recomputes this many closed minutes each time, so posts and
    /// trades that arrive late land in their minute.
    pub trailing_minutes: u64,
    /// ... this many seconds after each minute closes.
    pub delay_secs: u64,
    /// Where `study` writes its report directories.
    pub reports_dir: String,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings { trailing_minutes: 15, delay_secs: 10, reports_dir: "reports".into() }
    }
}

impl Schema for Settings {
    const OPEN_TABLES: &'static [&'static str] = &["flags"];

    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.redis.url.expose();
        if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
            return Err(ConfigError::new("redis.url", "must start with redis://, rediss:// or unix://"));
        }
        if self.redis.prefix.is_empty() || self.redis.prefix.contains(char::is_whitespace) {
            return Err(ConfigError::new("redis.prefix", "must be non-empty without spaces"));
        }
        let uri = self.mongo.uri.expose();
        if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
            return Err(ConfigError::new("mongo.uri", "must start with mongodb:// or mongodb+srv://"));
        }
        if self.mongo.database.is_empty() {
            return Err(ConfigError::new("mongo.database", "must not be empty"));
        }
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::new("http.listen", format!("{:?} is not HOST:PORT", self.http.listen)));
        }
        if self.heartbeat.interval_secs == 0 || self.heartbeat.ttl_secs <= self.heartbeat.interval_secs {
            return Err(ConfigError::new(
                "heartbeat.ttl_secs",
                "must be greater than heartbeat.interval_secs, which must be positive",
            ));
        }
        self.clock.sim_spec()?;
        if self.manager.lead_minutes > 240 || self.manager.lag_minutes > 240 {
            return Err(ConfigError::new("manager.lead_minutes", "lead and lag must be at most 240 minutes"));
        }
        if self.manager.evaluate_every_ms == 0 || self.manager.evaluate_every_ms > 10_000 {
            return Err(ConfigError::new("manager.evaluate_every_ms", "must be between 1 and 10000"));
        }
        if self.sinks.batch_size == 0 || self.sinks.batch_size > 500 {
            return Err(ConfigError::new("sinks.batch_size", "must be between 1 and 500 (the PutRecords limit)"));
        }
        if self.sinks.spool_dir.is_empty() {
            return Err(ConfigError::new("sinks.spool_dir", "must not be empty"));
        }
        if self.sinks.spool_segment_mb == 0 || self.sinks.spool_segment_mb > self.sinks.spool_max_mb {
            return Err(ConfigError::new("sinks.spool_segment_mb", "must be positive and at most sinks.spool_max_mb"));
        }
        if self.sinks.queue_capacity == 0 {
            return Err(ConfigError::new("sinks.queue_capacity", "must be positive"));
        }
        if self.log.retention_days == 0 {
            return Err(ConfigError::new("log.retention_days", "must be at least 1"));
        }
        if self.log.stale_after_minutes == 0 {
            return Err(ConfigError::new("log.stale_after_minutes", "must be at least 1"));
        }
        if self.log.burst_window_secs == 0 {
            return Err(ConfigError::new("log.burst_window_secs", "must be at least 1"));
        }
        let hook = self.log.webhook_url.expose();
        if !hook.is_empty() && !(hook.starts_with("http://") || hook.starts_with("https://")) {
            return Err(ConfigError::new("log.webhook_url", "must be an http:// or https:// URL"));
        }
        match self.stocks.source.as_str() {
            "sim" | "iex" | "finnhub" => {}
            "alpaca" => {
                if !matches!(self.stocks.alpaca_feed.as_str(), "iex" | "sip" | "test") {
                    return Err(ConfigError::new("stocks.alpaca_feed", "must be iex, sip or test"));
                }
                if self.stocks.alpaca_key_id.is_empty() || self.stocks.alpaca_secret_key.is_empty() {
                    return Err(ConfigError::new(
                        "stocks.alpaca_key_id",
                        "the alpaca source needs stocks.alpaca_key_id and stocks.alpaca_secret_key",
                    ));
                }
            }
            "replay" => {
                if !Path::new(&self.stocks.replay_dir).is_dir() {
                    return Err(ConfigError::new(
                        "stocks.replay_dir",
                        format!("{:?} is not a directory", self.stocks.replay_dir),
                    ));
                }
            }
            other => {
                return Err(ConfigError::new(
                    "stocks.source",
                    format!("unknown source {other:?}; one of sim, alpaca, iex, finnhub, replay"),
                ));
            }
        }
        if self.twitter.sources.is_empty() {
            return Err(ConfigError::new("twitter.sources", "name at least one source"));
        }
        for src in &self.twitter.sources {
            match src.as_str() {
                "sim" | "stocktwits" | "bluesky" => {}
                "x" => {
                    if self.twitter.x_bearer_token.is_empty() {
                        return Err(ConfigError::new("twitter.x_bearer_token", "the x source needs a bearer token"));
                    }
                }
                "replay" => {
                    if !Path::new(&self.twitter.replay_dir).is_dir() {
                        return Err(ConfigError::new(
                            "twitter.replay_dir",
                            format!("{:?} is not a directory", self.twitter.replay_dir),
                        ));
                    }
                }
                other => {
                    return Err(ConfigError::new(
                        "twitter.sources",
                        format!("unknown source {other:?}; any of sim, x, stocktwits, bluesky, replay"),
                    ));
                }
            }
        }
        if !(64..=4096).contains(&self.twitter.x_rule_max_len) {
            return Err(ConfigError::new("twitter.x_rule_max_len", "must be between 64 and 4096"));
        }
        if self.twitter.stocktwits_requests_per_hour == 0 {
            return Err(ConfigError::new("twitter.stocktwits_requests_per_hour", "must be positive"));
        }
        if self.backup.part_size_mb < 5 || self.backup.part_size_mb > 5_000 {
            return Err(ConfigError::new("backup.part_size_mb", "must be between 5 and 5000 (S3 multipart limits)"));
        }
        if self.backup.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::new(
                "backup.timezone",
                format!("{:?} is not an IANA time zone", self.backup.timezone),
            ));
        }
        if self.analysis.trailing_minutes == 0 || self.analysis.trailing_minutes > 24 * 60 {
            return Err(ConfigError::new("analysis.trailing_minutes", "must be between 1 and 1440"));
        }
        if self.backup.bucket.is_empty() || self.backup.databases.is_empty() {
            return Err(ConfigError::new("backup.bucket", "a bucket and at least one database are needed"));
        }
        if self.stocks.iex_poll_ms < 100 {
            return Err(ConfigError::new("stocks.iex_poll_ms", "must be at least 100"));
        }
        if !(self.stocks.replay_speed >= 0.0) {
            return Err(ConfigError::new("stocks.replay_speed", "must be 0 (as fast as possible) or positive"));
        }
        if self.sim.trades_per_minute < 0.0 || self.sim.posts_per_minute < 0.0 || self.sim.noise < 0.0 {
            return Err(ConfigError::new("sim.trades_per_minute", "rates and noise must not be negative"));
        }
        if !self.watchlist.file.is_empty() && !Path::new(&self.watchlist.file).is_file() {
            return Err(ConfigError::new("watchlist.file", format!("{} is not a file", self.watchlist.file)));
        }
        Ok(())
    }
}

impl Settings {
    /// Loads the suite settings from the environment and an optional file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        load_from_env(file)
    }

    /// The instance name: configured, or `<hostname>-<pid>`.
    pub fn instance(&self) -> String {
        if !self.service.instance.is_empty() {
            return self.service.instance.clone();
        }
        let host =
            std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
        format!("{host}-{}", std::process::id())
    }

    /// The HTTP listen address, given the service's own default port.
    pub fn http_listen(&self, default_port: u16) -> std::net::SocketAddr {
        if self.http.listen.is_empty() {
            std::net::SocketAddr::from(([0, 0, 0, 0], default_port))
        } else {
            self.http.listen.parse().expect("validated")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s: Settings = load(None, env(&[])).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempdir();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[redis]\nprefix = \"fromfile\"\n[mongo]\ndatabase = \"filedb\"\n[flags]\nextra = false\n",
        )
        .unwrap();
        let s: Settings = load(
            Some(&file),
            env(&[("CASHTAG_MONGO_DATABASE", "envdb"), ("CASHTAG_FLAGS_MONGO_WRITE", "off"), ("PATH", "/bin")]),
        )
        .unwrap();
        assert_eq!(s.redis.prefix, "fromfile");
        assert_eq!(s.mongo.database, "envdb");
        assert!(!s.flags["mongo_write"]);
        assert!(!s.flags["extra"]);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load::<Settings>(None, env(&[("CASHTAG_CLOCK_SPEED", "fast")])).unwrap_err();
        assert_eq!(e.key, "clock.speed");
        assert!(e.to_string().contains("CASHTAG_CLOCK_SPEED"), "{e}");
        assert!(e.to_string().contains("expected a number"), "{e}");

        let e = load::<Settings>(None, env(&[("CASHTAG_REDIS_URLL", "x")])).unwrap_err();
        assert!(e.to_string().contains("CASHTAG_REDIS_URLL") && e.to_string().contains("unknown"), "{e}");

        let e = load::<Settings>(None, env(&[("CASHTAG_REDIS_URL", "http://x")])).unwrap_err();
        assert_eq!(e.key, "redis.url");

        let e =
            load::<Settings>(None, env(&[("CASHTAG_CLOCK_MODE", "simulated"), ("CASHTAG_CLOCK_START", "yesterday")]))
                .unwrap_err();
        assert_eq!(e.key, "clock.start");

        let dir = tempdir();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[mongo]\ndatabse = \"x\"\n").unwrap();
        let e = load::<Settings>(Some(&file), env(&[])).unwrap_err();
        assert_eq!(e.key, "mongo.databse");

        std::fs::write(&file, "[heartbeat]\nttl_secs = \"ten\"\n").unwrap();
        let e = load::<Settings>(Some(&file), env(&[])).unwrap_err();
        assert_eq!(e.key, "heartbeat.ttl_secs", "{e}");
    }

    #[test]
    fn secrets_do_not_leak_in_errors_or_debug() {
        let s: Settings = load(None, env(&[("CASHTAG_MONGO_URI", "mongodb://u:pa55word@h/")])).unwrap();
        assert!(!format!("{s:?}").contains("pa55word"));
        let e = load::<Settings>(None, env(&[("CASHTAG_REDIS_URL", "http://u:pa55word@h")])).unwrap_err();
        assert!(!e.to_string().contains("pa55word"));
    }

    #[test]
    fn env_names_are_unique() {
        let defaults = match toml::Value::try_from(Settings::default()).unwrap() {
            toml::Value::Table(t) => t,
            _ => unreachable!(),
        };
        let names: Vec<String> = flatten(&defaults).iter().map(|(p, _)| env_name(p)).collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len(), "{names:?}");
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cashtag-config-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[cfg(test)]
mod readme {
    /// The configuration reference in README.md lists every setting.
    #[test]
    fn readme_documents_every_setting() {
        let readme = include_str!("../../../README.md");
        let defaults = match toml::Value::try_from(super::Settings::default()).unwrap() {
            toml::Value::Table(t) => t,
            _ => unreachable!(),
        };
        let missing: Vec<String> = super::flatten(&defaults)
            .into_iter()
            .map(|(p, _)| super::env_name(&p))
            .filter(|var| !readme.contains(&format!("`{var}`")))
            .collect();
        assert!(missing.is_empty(), "README.md does not document: {missing:?}");
    }
}
