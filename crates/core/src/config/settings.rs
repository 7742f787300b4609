//! The suite's settings, section by section; each section checks its own values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::providers::{SimSettings, StocksSettings, TwitterSettings};
use super::{ConfigError, Schema, Section, check};
use crate::clock::{Clock, SimSpec};
use crate::secret::{Secret, with_password};

/// Every setting of the suite. Sections are documented in docs/configuration.md.
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
    pub models: ModelSettings,
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
            models: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSettings {
    /// Instance name in heartbeats and events; empty = `<hostname>-<pid>`.
    pub instance: String,
    /// A file on the service's own state volume that says whether its last run ended
    /// cleanly (`service.restarted` when not); empty = none.
    pub run_file: String,
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
    /// The password, put into `url` at load (so it can come from a file of its own:
    /// `CASHTAG_REDIS_PASSWORD_FILE`); empty = whatever `url` holds.
    pub password: Secret,
    /// Prefix of every key and channel; lets several suites (or tests) share one Redis.
    pub prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: Secret::new("redis://127.0.0.1:6379"),
            password: Secret::default(),
            prefix: "cashtag".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MongoSettings {
    /// Connection string; may hold a password, so it is never printed.
    pub uri: Secret,
    /// The password of the user `uri` names, put into `uri` at load (so it can come from
    /// a file of its own: `CASHTAG_MONGO_PASSWORD_FILE`); empty = whatever `uri` holds.
    pub password: Secret,
    pub database: String,
}

impl Default for MongoSettings {
    fn default() -> Self {
        MongoSettings {
            uri: Secret::new("mongodb://127.0.0.1:27017"),
            password: Secret::default(),
            database: "cashtag".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSettings {
    pub region: String,
    /// Endpoint of an S3/Kinesis emulator; empty = real AWS.
    pub endpoint: String,
    /// Create the streams and the backup bucket when they are missing: for an emulator,
    /// which starts empty and forgets them when it restarts. Needs `endpoint`.
    pub create_missing: bool,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings { region: "us-east-1".into(), endpoint: String::new(), create_missing: false }
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
            return SimSpec::parse(&self.spec).map(Some).map_err(|m| ConfigError::new("clock.spec", m.to_string()));
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
    /// A server the service depends on (Redis; MongoDB where it is used) unreachable this
    /// long makes `/healthz` answer 503.
    pub dependency_grace_secs: u64,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        HeartbeatSettings { interval_secs: 5, ttl_secs: 20, dependency_grace_secs: 30 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// Approximate cap (`MAXLEN ~`) of the events stream.
    pub events_maxlen: u64,
    /// Approximate cap of the counts stream.
    pub counts_maxlen: u64,
    /// Memory cap of the events stream in Redis (MiB): past it the oldest entries are
    /// trimmed, so a backlog the log has not read cannot fill Redis.
    pub events_max_mb: u64,
    /// Memory cap of the counts stream (MiB).
    pub counts_max_mb: u64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings { events_maxlen: 1_000_000, counts_maxlen: 1_000_000, events_max_mb: 256, counts_max_mb: 64 }
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

/// When the journal is flushed to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// After every group commit.
    Always,
    /// At most `sinks.fsync_interval_ms` after an append.
    Interval,
    /// Left to the operating system (survives `kill -9`, not a power loss).
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// A batch is written when it has this many records ...
    pub batch_size: u64,
    /// ... or when its oldest record has waited this long.
    pub batch_age_ms: u64,
    /// How long a failing write is retried before the sink counts as down.
    pub retry_budget_secs: u64,
    /// The deadline of one write (a server that accepts connections but never answers).
    pub op_timeout_ms: u64,
    /// This process's write-ahead journal; one process per directory (it is locked).
    pub spool_dir: String,
    /// Most bytes the journal may hold; when full, intake waits.
    pub spool_max_mb: u64,
    pub spool_segment_mb: u64,
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    /// `/healthz` answers 503 when a sink has been down this long.
    pub down_alert_secs: u64,
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
            op_timeout_ms: 5_000,
            spool_dir: "spool".into(),
            spool_max_mb: 1_024,
            spool_segment_mb: 8,
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 100,
            down_alert_secs: 300,
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
    /// A backup still running after this long is stopped and reported failed.
    pub deadline_mins: u64,
    /// `schedule`: backups are overdue (503 on /healthz, a PROBLEM in `cashtagctl status`)
    /// when a scheduled run has had no backup this long after it.
    pub overdue_after_mins: u64,
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
            deadline_mins: 240,
            overdue_after_mins: 360,
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
    /// `aggregate --follow` recomputes this many closed minutes, so posts and trades that
    /// arrive late land in their minute ...
    pub trailing_minutes: u64,
    /// ... every this many minutes; in between, only the minute that just closed.
    pub trailing_every: u64,
    /// ... this many seconds after each minute closes.
    pub delay_secs: u64,
    /// Where `study` writes its report directories.
    pub reports_dir: String,
    /// Who writes `sentiment_1m` and `price_1m` as the session goes: `embedded` (the
    /// `analysis` service, from MongoDB) or `spark` (the Spark job, from the Kinesis
    /// streams; the `analysis` service then writes none). One writer at a time.
    pub rollup_engine: String,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            trailing_minutes: 15,
            trailing_every: 5,
            delay_secs: 10,
            reports_dir: "reports".into(),
            rollup_engine: "embedded".into(),
        }
    }
}

/// The model registry and the predictor (`cashtag-analysis train | models | predict`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// The S3 bucket of the registry.
    pub bucket: String,
    /// Keys are `<prefix>/<name>/<version>/model.json` and `<prefix>/<name>/latest.json`.
    pub prefix: String,
    /// The model the predictor follows (and `train` publishes by default).
    pub name: String,
    /// Ticks every this many minutes from the open.
    pub every_minutes: u64,
    /// The trading rule: long when p(up) > 0.5 + margin, short when p(up) < 0.5 − margin.
    pub margin: f64,
    /// Cost per side in basis points, charged on entry and on exit.
    pub cost_bps: f64,
    /// The market proxy (`ret_market`, excess returns); empty = none.
    pub market: String,
    /// A tick reads its data this many seconds after the tick, for ingestion to land.
    pub delay_secs: u64,
    /// A prediction whose target price has not arrived this many minutes after its target
    /// is marked unresolved.
    pub unresolved_after_minutes: u64,
    /// Every registry call gives up after this many seconds (the predictor then keeps the
    /// model it has).
    pub s3_timeout_secs: u64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            bucket: "cashtag-models".into(),
            prefix: "models".into(),
            name: "cashtag".into(),
            every_minutes: 20,
            margin: 0.02,
            cost_bps: 1.0,
            market: "SPY".into(),
            delay_secs: 5,
            unresolved_after_minutes: 60,
            s3_timeout_secs: 20,
        }
    }
}

impl Section for ModelSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(!self.bucket.is_empty(), "models.bucket", "a bucket is needed")?;
        check(
            !self.name.is_empty() && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "models.name",
            "letters, digits, '-' and '_' only",
        )?;
        check((1..=390).contains(&self.every_minutes), "models.every_minutes", "must be between 1 and 390")?;
        check((0.0..0.5).contains(&self.margin), "models.margin", "must be in [0, 0.5)")?;
        check((0.0..=1000.0).contains(&self.cost_bps), "models.cost_bps", "must be between 0 and 1000")?;
        check((1..=600).contains(&self.s3_timeout_secs), "models.s3_timeout_secs", "must be between 1 and 600")?;
        check(self.delay_secs <= 600, "models.delay_secs", "must be at most 600")
    }
}

impl Schema for Settings {
    const OPEN_TABLES: &'static [&'static str] = &["flags"];

    fn validate(&self) -> Result<(), ConfigError> {
        let sections: [&dyn Section; 17] = [
            &self.redis,
            &self.mongo,
            &self.http,
            &self.heartbeat,
            &self.clock,
            &self.manager,
            &self.sinks,
            &self.log,
            &self.sim,
            &self.stocks,
            &self.twitter,
            &self.backup,
            &self.analysis,
            &self.watchlist,
            &self.service,
            &self.aws,
            &self.models,
        ];
        sections.iter().try_for_each(|s| s.validate())
    }

    fn complete(&mut self) {
        if !self.redis.password.is_empty() {
            let url = with_password(self.redis.url.expose(), self.redis.password.expose());
            self.redis.url = Secret::new(url.expect("validated: redis.url has a scheme"));
        }
        if !self.mongo.password.is_empty() {
            let uri = with_password(self.mongo.uri.expose(), self.mongo.password.expose());
            self.mongo.uri = Secret::new(uri.expect("validated: mongo.uri has a scheme"));
        }
    }
}

impl Section for RedisSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.expose();
        check(
            url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"),
            "redis.url",
            "must start with redis://, rediss:// or unix://",
        )?;
        check(
            self.password.is_empty() || !url.starts_with("unix://"),
            "redis.password",
            "needs a redis:// or rediss:// url (a unix:// url carries its password itself)",
        )?;
        check(
            !self.prefix.is_empty() && !self.prefix.contains(char::is_whitespace),
            "redis.prefix",
            "must be non-empty without spaces",
        )
    }
}

impl Section for MongoSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let uri = self.uri.expose();
        check(
            uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://"),
            "mongo.uri",
            "must start with mongodb:// or mongodb+srv://",
        )?;
        check(
            self.password.is_empty() || !crate::secret::url_user(uri).is_empty(),
            "mongo.password",
            "needs the user in mongo.uri (mongodb://USER@host/…)",
        )?;
        check(!self.database.is_empty(), "mongo.database", "must not be empty")
    }
}

impl Section for HttpSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.listen.is_empty() || self.listen.parse::<std::net::SocketAddr>().is_ok(),
            "http.listen",
            format!("{:?} is not HOST:PORT", self.listen),
        )
    }
}

impl Section for HeartbeatSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.interval_secs > 0 && self.ttl_secs > self.interval_secs,
            "heartbeat.ttl_secs",
            "must be greater than heartbeat.interval_secs, which must be positive",
        )
    }
}

impl Section for ClockSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        self.sim_spec().map(|_| ())
    }
}

impl Section for ManagerSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.lead_minutes <= 240 && self.lag_minutes <= 240,
            "manager.lead_minutes",
            "lead and lag must be at most 240 minutes",
        )?;
        check(
            (1..=10_000).contains(&self.evaluate_every_ms),
            "manager.evaluate_every_ms",
            "must be between 1 and 10000",
        )
    }
}

impl Section for SinkSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=500).contains(&self.batch_size),
            "sinks.batch_size",
            "must be between 1 and 500 (the PutRecords limit)",
        )?;
        check(!self.spool_dir.is_empty(), "sinks.spool_dir", "must not be empty")?;
        check(
            self.spool_segment_mb > 0 && self.spool_segment_mb <= self.spool_max_mb,
            "sinks.spool_segment_mb",
            "must be positive and at most sinks.spool_max_mb",
        )?;
        check(self.op_timeout_ms >= 100, "sinks.op_timeout_ms", "must be at least 100")?;
        check(self.fsync_interval_ms > 0, "sinks.fsync_interval_ms", "must be positive")
    }
}

impl Section for LogSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(self.retention_days > 0, "log.retention_days", "must be at least 1")?;
        check(self.stale_after_minutes > 0, "log.stale_after_minutes", "must be at least 1")?;
        check(self.burst_window_secs > 0, "log.burst_window_secs", "must be at least 1")?;
        let hook = self.webhook_url.expose();
        check(
            hook.is_empty() || hook.starts_with("http://") || hook.starts_with("https://"),
            "log.webhook_url",
            "must be an http:// or https:// URL",
        )
    }
}

impl Section for BackupSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            (5..=5_000).contains(&self.part_size_mb),
            "backup.part_size_mb",
            "must be between 5 and 5000 (S3 multipart limits)",
        )?;
        check(
            self.timezone.parse::<chrono_tz::Tz>().is_ok(),
            "backup.timezone",
            format!("{:?} is not an IANA time zone", self.timezone),
        )?;
        check(self.deadline_mins > 0, "backup.deadline_mins", "must be at least 1")?;
        check(
            !self.bucket.is_empty() && !self.databases.is_empty(),
            "backup.bucket",
            "a bucket and at least one database are needed",
        )
    }
}

impl Section for AnalysisSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=24 * 60).contains(&self.trailing_minutes),
            "analysis.trailing_minutes",
            "must be between 1 and 1440",
        )?;
        check(
            (1..=self.trailing_minutes).contains(&self.trailing_every),
            "analysis.trailing_every",
            "must be between 1 and analysis.trailing_minutes",
        )?;
        check(
            matches!(self.rollup_engine.as_str(), "embedded" | "spark"),
            "analysis.rollup_engine",
            "must be embedded or spark",
        )
    }
}

impl Section for WatchlistSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.file.is_empty() || Path::new(&self.file).is_file(),
            "watchlist.file",
            format!("{} is not a file", self.file),
        )
    }
}

impl Section for ServiceSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl Section for AwsSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            !self.create_missing || !self.endpoint.is_empty(),
            "aws.create_missing",
            "is for an emulator: set aws.endpoint too (against AWS the streams and buckets are the operator's)",
        )
    }
}

impl Settings {
    /// Loads the suite settings from the environment and an optional file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        super::load_from_env(file)
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
