//! No secret in any output of any service: every binary of the suite runs with
//! `CASHTAG_LOG=trace` and known secrets in every place one can be given — the Redis
//! password (a private Redis that requires it), MongoDB credentials in the URI, the AWS
//! secret key, provider keys and tokens, the webhook URL's token — against provider
//! servers that refuse them. Then each runs with a configuration file that holds the same
//! secrets on a line that does not parse. Stdout, stderr, the event outboxes on disk and
//! the events stream in Redis are searched for every secret.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cashtag_testkit::{aws_endpoint, free_port, mongo_uri, service_bin, unique};

const REDIS_PASSWORD: &str = "redis-pw-4b1e9";
const MONGO_PASSWORD: &str = "mongo-pw-77c0d";
const AWS_SECRET: &str = "aws-secret-0a9f3e";
const ALPACA_KEY: &str = "alpaca-key-5d2c1";
const ALPACA_SECRET: &str = "alpaca-secret-e61b0";
const X_TOKEN: &str = "x-bearer-9c8d7";
const WEBHOOK_TOKEN: &str = "hook-token-3f2a1";
const SECRETS: [&str; 7] =
    [REDIS_PASSWORD, MONGO_PASSWORD, AWS_SECRET, ALPACA_KEY, ALPACA_SECRET, X_TOKEN, WEBHOOK_TOKEN];

/// A provider that refuses everything: every request (WebSocket upgrades too) gets a 401.
fn refusing_provider() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 8192];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nunauthorized",
                );
            });
        }
    });
    format!("127.0.0.1:{}", addr.port())
}

/// A private Redis that requires the password.
struct PasswordRedis {
    child: Child,
    port: u16,
}

impl PasswordRedis {
    fn start(dir: &Path) -> PasswordRedis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", REDIS_PASSWORD])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/stack installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the private Redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PasswordRedis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", self.port)
    }
}

impl Drop for PasswordRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A service run: its name, arguments and own settings.
struct Run {
    binary: &'static str,
    args: &'static [&'static str],
    env: Vec<(&'static str, String)>,
}

fn runs(provider: &str) -> Vec<Run> {
    vec![
        Run { binary: "cashtag-manager", args: &["run"], env: vec![("CASHTAG_REDIS_PREFIX", unique("t-secrets-mgr"))] },
        Run {
            binary: "cashtag-log",
            args: &["run"],
            env: vec![("CASHTAG_LOG_WEBHOOK_URL", format!("http://{provider}/hook?token={WEBHOOK_TOKEN}"))],
        },
        Run { binary: "cashtag-backup", args: &["schedule"], env: vec![] },
        Run { binary: "cashtag-analysis", args: &["run"], env: vec![] },
        Run {
            binary: "cashtag-stocks",
            args: &["run"],
            env: vec![
                ("CASHTAG_STOCKS_SOURCE", "alpaca".into()),
                ("CASHTAG_STOCKS_ALPACA_WS_URL", format!("ws://{provider}")),
                ("CASHTAG_STOCKS_ALPACA_REST_URL", format!("http://{provider}")),
                ("CASHTAG_STOCKS_ALPACA_KEY_ID", ALPACA_KEY.into()),
                ("CASHTAG_STOCKS_ALPACA_SECRET_KEY", ALPACA_SECRET.into()),
            ],
        },
        Run {
            binary: "cashtag-twitter",
            args: &["run"],
            env: vec![
                ("CASHTAG_TWITTER_SOURCES", "x".into()),
                ("CASHTAG_TWITTER_X_API_URL", format!("http://{provider}")),
                ("CASHTAG_TWITTER_X_BEARER_TOKEN", X_TOKEN.into()),
            ],
        },
        Run { binary: "cashtagctl", args: &["status"], env: vec![] },
    ]
}

fn command(run: &Run, dir: &Path, redis_url: &str, prefix: &str, mongo: &str) -> Command {
    let mut c = Command::new(service_bin(run.binary));
    for (k, _) in std::env::vars() {
        if k.starts_with("CASHTAG_") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.args(run.args)
        .env("CASHTAG_LOG", "trace")
        .env("CASHTAG_REDIS_URL", redis_url)
        .env("CASHTAG_REDIS_PREFIX", prefix)
        .env("CASHTAG_MONGO_URI", mongo)
        .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("CASHTAG_SINKS_SPOOL_DIR", dir.join("spool"))
        .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("CASHTAG_HEARTBEAT_INTERVAL_SECS", "1")
        .env("CASHTAG_HEARTBEAT_TTL_SECS", "3")
        .envs(run.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
    c
}

/// Every file under `dir`, as text (lossy).
fn every_file(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} holds the secret {s:?}:\n{}", text.chars().take(4_000).collect::<String>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_shows_a_secret_at_trace_in_events_or_in_config_errors() {
    let root = std::env::temp_dir().join(unique("secrets"));
    std::fs::create_dir_all(&root).unwrap();
    let redis = PasswordRedis::start(&root);
    let provider = refusing_provider();
    let prefix = unique("t-secrets");
    let mongo = mongo_uri().replacen("mongodb://", &format!("mongodb://cashtag:{MONGO_PASSWORD}@"), 1);
    // The sources are on, as the manager would say during a session (the manager itself
    // runs under its own prefix: the calendar says what it says).
    let bus = cashtag_bus::Bus::open(
        &redis.url(),
        &prefix,
        cashtag_bus::Identity { service: "manager".into(), instance: unique("i") },
        cashtag_core::Clock::System,
        1_000,
    )
    .unwrap();
    let on = cashtag_bus::ControlState {
        cmd: cashtag_bus::ControlCommand::Start,
        reason: "test".into(),
        at: chrono::Utc::now(),
    };
    bus.publish_control(&on).await.unwrap();

    let mut children = Vec::new();
    for run in runs(&provider) {
        let dir = root.join(run.binary);
        std::fs::create_dir_all(&dir).unwrap();
        let child = command(&run, &dir, &redis.url(), &prefix, &mongo).spawn().unwrap();
        children.push((run, dir, child));
    }
    // Long enough to connect, be refused, retry and report it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut below_info = Vec::new();
    for (run, dir, child) in &mut children {
        if child.try_wait().unwrap().is_none() {
            cashtag_testkit::terminate(child, Duration::from_secs(20));
        }
        let mut said = String::new();
        for (path, text) in every_file(dir) {
            assert_no_secret(&format!("{}: {}", run.binary, path.display()), &text);
            if path.ends_with("stderr") || path.ends_with("stdout") {
                said.push_str(&text);
            }
        }
        assert!(!said.is_empty(), "{} said nothing", run.binary);
        if said.contains("\"level\":\"DEBUG\"") || said.contains("\"level\":\"TRACE\"") {
            below_info.push(run.binary);
        }
    }
    // The services with provider and AWS clients log their connections below info.
    for b in ["cashtag-backup", "cashtag-stocks", "cashtag-twitter"] {
        assert!(below_info.contains(&b), "{b} logged nothing below info: {below_info:?}");
    }
    let events = bus.peek_events(100_000).await.unwrap();
    assert!(events.iter().any(|e| e.code == "source.auth_failed" || e.code == "source.failed"), "{events:?}");
    for e in &events {
        assert_no_secret(&format!("event {}", e.code), &serde_json::to_string(e).unwrap());
    }

    // The same secrets in a configuration file that does not parse.
    let config = root.join("cashtag.toml");
    std::fs::write(
        &config,
        format!(
            "[redis]\nurl = \"redis://:{REDIS_PASSWORD}@127.0.0.1:6379\"\n[mongo]\nuri = \"mongodb://u:{MONGO_PASSWORD}@h\n\
             [stocks.alpaca]\nkey_id = \"{ALPACA_KEY}\" secret_key = \"{ALPACA_SECRET}\"\n\
             [twitter.x]\nbearer_token = {X_TOKEN}\n[log]\nwebhook_url = \"http://h/?token={WEBHOOK_TOKEN}\n"
        ),
    )
    .unwrap();
    // cashtagctl reads no configuration file (its settings are its options).
    for run in runs(&provider).into_iter().filter(|r| r.binary != "cashtagctl") {
        let dir = root.join(format!("{}-broken", run.binary));
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = command(&run, &dir, &redis.url(), &prefix, &mongo);
        c.env("CASHTAG_CONFIG", &config);
        let status = c.status().unwrap();
        let said = std::fs::read_to_string(dir.join("stdout")).unwrap()
            + &std::fs::read_to_string(dir.join("stderr")).unwrap();
        assert_eq!(status.code(), Some(2), "{}: {said}", run.binary);
        assert!(said.contains("not valid TOML"), "{}: {said}", run.binary);
        assert_no_secret(&format!("{} with a broken config", run.binary), &said);
    }
    let _ = std::fs::remove_dir_all(root);
}
