//! cashtag-soak: a simulated market day of the whole suite (manager, stocks, twitter, log
//! as processes) against private Redis, MongoDB-wire and S3/Kinesis servers, with faults:
//! `kill -9` of the fetchers and the log service, Redis restarted without persistence,
//! MongoDB and the emulator restarted, Kinesis blackholed, the stocks journal's disk full.
//!
//! The ground truth is the deterministic simulator: for a seed, a watchlist and a time range
//! the exact set of trades, quotes and posts is known. [`Truth`] computes it; [`Soak`]
//! runs the day and collects what reached MongoDB, Kinesis and the log store.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cashtag_core::{Record, Ticker};
use cashtag_testkit::fault::{Fault, FaultProxy};
use cashtag_testkit::{PrivateServer, ServerKind, free_port, service_bin, unique};
use chrono::{DateTime, Utc};

/// The knobs of a soak.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Simulated seconds per wall second.
    pub speed: f64,
    pub tickers: Vec<String>,
    pub trades_per_minute: f64,
    pub posts_per_minute: f64,
    /// How long Kinesis stays blackholed (wall).
    pub kinesis_stall: Duration,
    /// How long the stocks journal's disk stays full (wall).
    pub disk_full: Duration,
    /// Kills of each fetcher.
    pub fetcher_kills: usize,
}

impl SoakConfig {
    /// The CI soak: a whole session at 120x (about 3.5 minutes).
    pub fn ci() -> Self {
        SoakConfig {
            speed: 120.0,
            tickers: ["AAPL", "MSFT", "NVDA", "TSLA", "SPY"].iter().map(|s| s.to_string()).collect(),
            trades_per_minute: 20.0,
            posts_per_minute: 2.0,
            kinesis_stall: Duration::from_secs(20),
            disk_full: Duration::from_secs(10),
            fetcher_kills: 2,
        }
    }

    /// From `CASHTAG_TEST_SOAK_*` variables over the CI defaults (the long soak of
    /// `scripts/soak` sets them).
    pub fn from_env() -> Self {
        let mut c = Self::ci();
        let var = |k: &str| std::env::var(format!("CASHTAG_TEST_SOAK_{k}")).ok();
        if let Some(v) = var("SPEED").and_then(|v| v.parse().ok()) {
            c.speed = v;
        }
        if let Some(v) = var("KILLS").and_then(|v| v.parse().ok()) {
            c.fetcher_kills = v;
        }
        if let Some(v) = var("KINESIS_STALL_SECS").and_then(|v| v.parse().ok()) {
            c.kinesis_stall = Duration::from_secs(v);
        }
        if let Some(v) = var("TICKERS") {
            c.tickers = v.split(',').map(str::to_string).collect();
        }
        c
    }

    fn sim(&self) -> cashtag_sim::Sim {
        cashtag_sim::Sim::new(cashtag_sim::SimParams {
            trades_per_minute: self.trades_per_minute,
            posts_per_minute: self.posts_per_minute,
            ..cashtag_sim::SimParams::from(&cashtag_core::config::SimSettings::default())
        })
    }
}

/// The records the simulator makes in a window, by natural key.
pub struct Truth {
    pub trades: HashSet<String>,
    pub quotes: HashSet<String>,
    pub posts: HashSet<String>,
}

impl Truth {
    /// Market records with event time in `[from, to]` (ms precision, as stored) and posts
    /// created in `[posts_from, posts_to]`.
    pub fn compute(
        c: &SoakConfig,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        (posts_from, posts_to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Truth {
        let sim = c.sim();
        let ms = chrono::TimeDelta::milliseconds(1);
        let mut t = Truth { trades: HashSet::new(), quotes: HashSet::new(), posts: HashSet::new() };
        for m in cashtag_sim::minute_index(from)..=cashtag_sim::minute_index(to) {
            for name in &c.tickers {
                let ticker = Ticker::parse(name).unwrap();
                for tr in sim.trades(name, m) {
                    if tr.ts >= from && tr.ts < to + ms {
                        t.trades.insert(Record::Trade(tr.to_trade(&ticker, tr.ts)).key());
                        t.quotes.insert(Record::Quote(tr.to_quote(&ticker, tr.ts)).key());
                    }
                }
            }
        }
        for m in cashtag_sim::minute_index(posts_from)..=cashtag_sim::minute_index(posts_to) {
            for name in &c.tickers {
                for p in sim.posts(name, m, &c.tickers) {
                    if p.created_at >= posts_from && p.created_at < posts_to + ms {
                        t.posts.insert(Record::Post(p.to_post(p.created_at)).key());
                    }
                }
            }
        }
        t
    }
}

/// A service process of the soak.
pub struct Proc {
    pub name: &'static str,
    bin: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    pub port: u16,
    pub kills: usize,
}

impl Proc {
    /// A process of `bin` (see [`build_services`]).
    pub fn new(name: &'static str, bin: PathBuf, env: Vec<(String, String)>, dir: &Path) -> Proc {
        Proc { name, bin, env, log: dir.join(format!("{name}.log")), child: None, port: free_port(), kills: 0 }
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} runs already", self.name);
        let log = File::options().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = Command::new(&self.bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("CASHTAG_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("run")
            .envs(self.env.iter().cloned())
            .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("CASHTAG_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null());
        self.child = Some(cmd.spawn().unwrap());
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
            self.kills += 1;
        }
    }

    /// SIGTERM; true if it exited cleanly within the grace period.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(mut c) => cashtag_testkit::terminate(&mut c, Duration::from_secs(15)).success(),
            None => true,
        }
    }

    /// Whether the process is still running (not crashed).
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Every event this process logged (each was in its outbox before it was logged), as
    /// (id, code), in order.
    pub fn logged_events(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                let id = v.pointer("/fields/id")?.as_str()?.to_string();
                let code = v.pointer("/fields/code")?.as_str()?.to_string();
                (!id.is_empty()).then_some((id, code))
            })
            .collect()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// Builds the services' binaries (before any simulated clock starts: a build takes time).
pub fn build_services(names: &[&str]) -> HashMap<String, PathBuf> {
    names.iter().map(|n| (n.to_string(), service_bin(&format!("cashtag-{n}")))).collect()
}

/// A tmpfs for a directory that must fill up; needs root (the test machines run as root).
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "cannot mount a tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr));
        Tmpfs(dir.to_path_buf())
    }

    /// Fills the disk, leaving about `leave` bytes; returns the ballast file.
    pub fn fill(&self, leave: u64) -> PathBuf {
        let ballast = self.0.join("ballast");
        let mut f = File::create(&ballast).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        use std::io::Write;
        loop {
            let free = free_bytes(&self.0);
            if free <= leave + chunk.len() as u64 {
                break;
            }
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        ballast
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs with a valid path and an out-pointer to a local.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return 0;
    }
    s.f_bavail * s.f_frsize
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The servers of a soak, each behind what its faults need.
pub struct Servers {
    pub redis: PrivateServer,
    pub mongo: PrivateServer,
    pub moto: PrivateServer,
    pub mongo_proxy: FaultProxy,
    pub moto_proxy: FaultProxy,
}

impl Servers {
    pub fn start() -> Servers {
        let redis = PrivateServer::start(ServerKind::Redis);
        let mongo = PrivateServer::start(ServerKind::Mongo);
        let moto = PrivateServer::start(ServerKind::Moto);
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let mongo_proxy = FaultProxy::start(addr(mongo.port()));
        let moto_proxy = FaultProxy::start(addr(moto.port()));
        Servers { redis, mongo, moto, mongo_proxy, moto_proxy }
    }

    /// The MongoDB URI the services use (through the proxy).
    pub fn mongo_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.mongo_proxy.port())
    }

    /// The emulator endpoint the services use (through the proxy).
    pub fn aws_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto_proxy.port())
    }

    pub fn set_kinesis(&self, f: Fault) {
        self.moto_proxy.set(f);
    }
}

/// The identity of a record across kinds: a trade and its quote share a natural key.
pub fn identity(r: &Record) -> String {
    format!("{}/{}", r.kind(), r.key())
}

/// Every record of a Kinesis stream, by [`identity`] → copies.
pub async fn read_kinesis(client: &aws_sdk_kinesis::Client, stream: &str, into: &mut HashMap<String, usize>) {
    let Ok(shards) = cashtag_stores::kinesis::read_stream(client, stream).await else { return };
    for r in shards.iter().flatten() {
        if let Ok(rec) = serde_json::from_slice::<Record>(r.data().as_ref()) {
            *into.entry(identity(&rec)).or_default() += 1;
        }
    }
}

/// Creates the streams (and waits until they are active).
pub async fn create_streams(client: &aws_sdk_kinesis::Client, names: &[&str]) {
    for n in names {
        let _ = client.create_stream().stream_name(*n).shard_count(2).send().await;
    }
    for n in names {
        for _ in 0..100 {
            if let Ok(d) = client.describe_stream_summary().stream_name(*n).send().await
                && d.stream_description_summary().is_some_and(|s| s.stream_status().as_str() == "ACTIVE")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Keys (and their event times) of a MongoDB collection.
pub async fn mongo_keys(db: &mongodb::Database, coll: &str, time_field: &str) -> Vec<(String, DateTime<Utc>)> {
    use futures::TryStreamExt;
    let projection = bson::doc! {"_id": 1, time_field: 1};
    let cursor = db.collection::<bson::Document>(coll).find(bson::doc! {}).projection(projection).await.unwrap();
    let docs: Vec<bson::Document> = cursor.try_collect().await.unwrap();
    docs.iter()
        .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d.get_datetime(time_field).ok()?.to_chrono())))
        .collect()
}

/// Waits until `f` is true, polling; false on timeout.
pub async fn wait_until<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// A fresh working directory for a soak.
pub fn work_dir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("soak"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What a soak measured, for docs/tests.md and the issue note.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub speed: f64,
    pub wall_seconds: f64,
    pub kills: HashMap<String, usize>,
    pub server_restarts: Vec<String>,
    pub stalls: Vec<String>,
    pub expected: HashMap<String, usize>,
    pub stored: HashMap<String, usize>,
    pub lost_mongo: HashMap<String, usize>,
    pub extra_mongo: HashMap<String, usize>,
    pub lost_kinesis: usize,
    pub kinesis_duplicates: usize,
    pub kinesis_duplicated_keys: usize,
    pub events_logged: usize,
    pub events_stored: usize,
    pub events_lost: usize,
    pub control_starts: usize,
    pub control_stops: usize,
}
