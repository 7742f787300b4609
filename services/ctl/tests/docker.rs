//! cashtagctl against this machine's real Docker engine.
//!
//! - The whole suite as containers (the production compose file, offline images): `wait`,
//!   `status` (every service healthy; then a `docker kill` shows), `logs --follow`,
//!   `flags set` (seen by both fetchers within a second), `restart` (the others keep
//!   running), `stop`/`start` (a maintenance stop the manager keeps, then the calendar
//!   again), `backup now|list|verify`, `market`; wrong and missing Redis passwords; no
//!   password in anything cashtagctl printed.
//! - A deliberately unhealthy container: `wait --healthy` fails, `status` says why.
//! - No engine at DOCKER_HOST: a clear error, exit 3.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cashtag_deploy::{Project, Secrets, build_offline_images, require_docker};
use chrono::{DateTime, TimeDelta, Utc};

const SERVICES: [&str; 10] =
    ["redis", "mongo", "moto", "manager", "stocks", "twitter", "log", "backup", "analysis", "predict"];

/// The offline images, built once per test binary (the tests run in parallel).
fn images() {
    static BUILT: OnceLock<Duration> = OnceLock::new();
    let t = BUILT.get_or_init(build_offline_images);
    eprintln!("ctl: offline images ready ({:.0} s to build)", t.as_secs_f64());
}

/// What cashtagctl printed, and its exit code.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// cashtagctl with a fixed environment; keeps every output for the secrets check.
struct Ctl {
    env: Vec<(String, String)>,
    args: Vec<String>,
    outputs: Mutex<Vec<String>>,
}

impl Ctl {
    fn new(args: &[&str], env: &[(&str, &str)]) -> Ctl {
        Ctl {
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            outputs: Mutex::new(Vec::new()),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cashtagctl"));
        c.args(&self.args).args(args).env_remove("REDIS_PASSWORD").env_remove("CASHTAG_REDIS_URL");
        c.env_remove("COMPOSE_PROJECT_NAME").current_dir(std::env::temp_dir());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_shown(args, true)
    }

    /// Runs it; `shown`: print the transcript (not for polls).
    fn run_shown(&self, args: &[&str], shown: bool) -> Run {
        let t = Instant::now();
        let out = self.command(args).output().expect("run cashtagctl");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if shown {
            eprintln!(
                "$ cashtagctl {} ({:.1} s, exit {})\n{}",
                args.join(" "),
                t.elapsed().as_secs_f64(),
                run.code,
                run.all().trim_end()
            );
        }
        self.outputs.lock().unwrap().push(run.all());
        run
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "cashtagctl {} failed:\n{}", args.join(" "), r.all());
        r
    }

    fn printed(&self) -> String {
        self.outputs.lock().unwrap().join("\n")
    }
}

fn password(tag: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{tag}{n:x}{:x}", std::process::id())
}

fn status_json(ctl: &Ctl) -> (i32, serde_json::Value) {
    let r = ctl.run_shown(&["status", "--json"], false);
    (r.code, serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{}", r.stdout)))
}

/// Service → the container's start instant, from `status --json`.
fn started(v: &serde_json::Value) -> BTreeMap<String, String> {
    v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["service"].as_str().unwrap().to_string(), c["started_at"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cashtagctl_operates_the_running_suite() {
    require_docker();
    images();
    let t0 = Instant::now();
    let dir = std::env::temp_dir().join(cashtag_testkit::unique("ctl"));
    std::fs::create_dir_all(&dir).unwrap();
    let project_name = cashtag_testkit::unique("ctl").to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "");
    // The passwords as Compose secrets (deploy/secrets-init), named in .env: cashtagctl
    // reads Redis's from there.
    let secrets = Secrets::init(&dir.join("suite-secrets"));
    let [redis_pw, root_pw, app_pw, analyst_pw] = secrets.all().map(str::to_string);
    // 09:24 New York on a Tuesday, 15 s from now, at 10x: the sources turn on at 09:25.
    let start: DateTime<Utc> = "2026-11-24T14:24:00Z".parse().unwrap();
    let anchor = Utc::now() + TimeDelta::seconds(15);
    let spec = format!("{}@10@{}", cashtag_core::time::rfc3339(&start), cashtag_core::time::rfc3339(&anchor));
    let cashtag_env = dir.join("cashtag.env");
    write(
        &cashtag_env,
        &format!(
            "AWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\nCASHTAG_AWS_ENDPOINT=http://moto:5000\n\
             CASHTAG_CLOCK_SPEC={spec}\nCASHTAG_SIM_TRADES_PER_MINUTE=5\nCASHTAG_SIM_POSTS_PER_MINUTE=2\n\
             CASHTAG_SINKS_BATCH_AGE_MS=200\nCASHTAG_HEARTBEAT_INTERVAL_SECS=2\n"
        ),
    );
    // The operator's .env: what compose reads, and cashtagctl with it.
    let env = dir.join(".env");
    write(
        &env,
        &format!(
            "COMPOSE_PROJECT_NAME={project_name}\nCASHTAG_SECRETS_DIR={}\nCASHTAG_ENV_FILE={}\n\
             HTTP_PORT_MANAGER=\nHTTP_PORT_STOCKS=\nHTTP_PORT_TWITTER=\nHTTP_PORT_LOG=\nHTTP_PORT_BACKUP=\n\
             HTTP_PORT_ANALYSIS=\nHTTP_PORT_PREDICT=\n",
            secrets.dir.display(),
            cashtag_env.display()
        ),
    );
    let project = Project::new(&project_name, &env, &[]);
    project.run(&["up", "-d", "--no-build"]);
    let env_file = env.display().to_string();
    let ctl = Ctl::new(&["--env-file", &env_file], &[]);

    // wait --healthy: the script's way to know the suite is up.
    let r = ctl.ok(&["wait", "--healthy", "--timeout", "240s"]);
    assert!(r.stdout.contains("10 containers healthy after"), "{}", r.stdout);
    eprintln!("ctl: suite healthy {:.0} s after up", t0.elapsed().as_secs_f64());
    let moto = format!("http://{}:5000", project.ip("moto"));
    cashtag_soak::create_streams(
        &cashtag_stores::kinesis::client("us-east-1", &moto).await,
        &["cashtag-posts", "cashtag-market"],
    )
    .await;
    cashtag_stores::s3::client("us-east-1", &moto)
        .await
        .create_bucket()
        .bucket("cashtag-backups")
        .send()
        .await
        .unwrap();
    // The backup the scheduler ran at start found no bucket: status says so until one
    // succeeds.
    let failed = cashtag_soak::wait_until(Duration::from_secs(60), || async {
        let (code, v) = status_json(&ctl);
        code == 1 && v["problems"].to_string().contains("the last backup failed")
    })
    .await;
    assert!(failed, "the failed backup at start is a problem: {}", ctl.run(&["status"]).all());
    ctl.ok(&["backup", "now"]);

    // status: every service, healthy, with its heartbeat; the market on at the open.
    let on = cashtag_soak::wait_until(Duration::from_secs(90), || async {
        let (code, v) = status_json(&ctl);
        let beats = v["suite"]["heartbeats"].as_array().map(|a| a.len()).unwrap_or(0);
        // The sources turn on at 09:25, the market opens at 09:30: wait for both (a warm
        // engine gets the suite healthy before the simulated clock reaches the open).
        code == 0 && beats >= 7 && v["suite"]["control"]["cmd"] == "start" && v["suite"]["market"]["market_on"] == true
    })
    .await;
    assert!(on, "status healthy, seven heartbeats, the sources on, the market open");
    let r = ctl.ok(&["status"]);
    for s in SERVICES {
        let row =
            r.stdout.lines().find(|l| l.starts_with(&format!("{s} "))).unwrap_or_else(|| panic!("no row for {s}"));
        assert!(row.contains("running"), "{row}");
        if s != "moto" {
            assert!(row.contains("healthy"), "{row}");
        }
    }
    assert!(r.stdout.contains("Market      on (regular open)"), "{}", r.stdout);
    assert!(r.stdout.contains("kinesis_write on"), "{}", r.stdout);
    assert!(r.stdout.contains("FETCHER") && r.stdout.contains("stocks") && r.stdout.contains("mongo"), "{}", r.stdout);
    assert!(r.stdout.trim_end().ends_with("All healthy."), "{}", r.stdout);
    // The engine's stats: what each running container uses of its memory limit.
    let (_, v) = status_json(&ctl);
    for c in v["containers"].as_array().unwrap() {
        assert!(c["memory_used"].as_u64().is_some_and(|m| m > 0), "{}: {c}", c["service"]);
        if c["service"] != "moto" {
            assert!(c["memory_limit"].as_u64().is_some_and(|m| m > 0), "{}: {c}", c["service"]);
        }
    }
    let record = Recorder::from_env(&project_name, &redis_pw);
    record.moment("healthy");
    let (_, v) = status_json(&ctl);
    let fetchers = v["suite"]["fetchers"].as_array().unwrap();
    assert_eq!(fetchers.len(), 2, "stocks and twitter report their sinks");
    assert!(fetchers.iter().all(|f| f["sinks"].as_array().unwrap().len() == 2));

    // logs --follow: lines keep coming, readable, prefixed; a flag flip shows in them.
    let mut follow = ctl
        .command(&["logs", "--follow", "--tail", "3", "stocks", "twitter"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<(Instant, String)>();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });

    // flags set: both fetchers apply it within a second (their flag.switched events).
    let bus = cashtag_bus::Bus::open(
        &format!("redis://:{redis_pw}@{}:6379", project.ip("redis")),
        "cashtag",
        cashtag_bus::Identity { service: "ctl-test".into(), instance: "t".into() },
        cashtag_core::Clock::System,
        1_000,
    )
    .unwrap();
    let set_at = Instant::now();
    let r = ctl.ok(&["flags", "set", "kinesis_write", "off"]);
    assert_eq!(r.stdout.trim(), "kinesis_write = off");
    let mut applied: BTreeMap<String, Duration> = BTreeMap::new();
    while set_at.elapsed() < Duration::from_secs(5) && applied.len() < 2 {
        let events = bus.recent_events(10_000).await.unwrap();
        for e in &events {
            let flag = |k: &str| e.fields.get(k).cloned().unwrap_or_default();
            if e.code == "flag.switched" && flag("flag") == "kinesis_write" && flag("value") == false {
                applied.entry(e.service.clone()).or_insert(set_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("ctl: kinesis_write off applied by {applied:?} (from the start of `cashtagctl flags set`)");
    assert_eq!(applied.keys().cloned().collect::<Vec<_>>(), ["stocks", "twitter"], "both fetchers applied it");
    assert!(applied.values().all(|d| *d < Duration::from_secs(1)), "applied within 1 s: {applied:?}");
    let events = bus.recent_events(10_000).await.unwrap();
    assert!(
        events.iter().any(|e| e.code == "flag.changed" && e.service == "cashtagctl" && e.fields["value"] == false),
        "flags set leaves the manager's audit event"
    );
    ctl.ok(&["flags", "set", "kinesis_write", "on"]);
    let r = ctl.ok(&["flags"]);
    assert!(r.stdout.lines().any(|l| l.starts_with("kinesis_write") && l.ends_with("on")), "{}", r.stdout);
    let r = ctl.run(&["flags", "set", "no_such_flag", "on"]);
    assert_eq!(r.code, 5, "{}", r.all());
    assert!(r.stderr.contains("unknown flag") && r.stderr.contains("kinesis_write"), "{}", r.stderr);

    // The follow saw the flip, as readable lines of both services.
    let mut followed: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let flipped = |l: &String| l.starts_with("stocks  | ") && l.contains("kinesis_write switched off");
    while Instant::now() < deadline && !followed.iter().any(flipped) {
        if let Ok((_, l)) = line_rx.recv_timeout(Duration::from_millis(200)) {
            followed.push(l);
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(followed.iter().any(flipped), "the follow shows the flip:\n{}", followed.join("\n"));
    assert!(followed.iter().any(|l| l.starts_with("twitter | ")), "both services:\n{}", followed.join("\n"));
    assert!(
        !followed.iter().any(|l| l.contains("{\"timestamp\"")),
        "JSON lines are rendered:\n{}",
        followed.join("\n")
    );
    // Without --follow: the last lines, in time order; --raw keeps the JSON.
    let r = ctl.ok(&["logs", "--tail", "5", "--raw", "--no-prefix", "manager"]);
    assert!(r.stdout.lines().count() >= 3 && r.stdout.lines().all(|l| l.starts_with('{')), "{}", r.stdout);
    let r = ctl.run(&["logs", "nosuchservice"]);
    assert_eq!(r.code, 5, "{}", r.all());
    assert!(r.stderr.contains("has no service \"nosuchservice\"") && r.stderr.contains("stocks"), "{}", r.stderr);

    // docker kill: the status shows it at once, and exits non-zero.
    let before = started(&status_json(&ctl).1);
    let killed = cashtag_deploy::docker(&["kill", &project.container("twitter")]);
    assert!(!killed.trim().is_empty());
    // (`docker kill` returns once the signal is sent; the engine records the exit a moment later.)
    let exited = cashtag_soak::wait_until(Duration::from_secs(10), || async {
        project.inspect("twitter", "{{.State.Status}}") == "exited"
    })
    .await;
    assert!(exited, "twitter exited after docker kill");
    let r = ctl.run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("PROBLEM: twitter exited with code 137"), "{}", r.stdout);
    let (code, v) = status_json(&ctl);
    assert_eq!(code, 1);
    let twitter = v["containers"].as_array().unwrap().iter().find(|c| c["service"] == "twitter").unwrap().clone();
    assert_eq!(twitter["state"], "exited");
    if record.is_on() {
        // The faults moment: twitter killed, Kinesis (moto) down with a backlog, a
        // maintenance stop in force. Then everything back as it was.
        cashtag_deploy::docker(&["stop", &project.container("moto")]);
        let backlog = cashtag_soak::wait_until(Duration::from_secs(60), || async {
            let (_, v) = status_json(&ctl);
            v["suite"]["fetchers"].as_array().into_iter().flatten().any(|f| {
                f["service"] == "stocks"
                    && f["sinks"].as_array().unwrap().iter().any(|k| {
                        k["sink"] == "kinesis" && k["up"] == false && k["backlog_bytes"].as_u64().unwrap_or(0) > 0
                    })
            })
        })
        .await;
        assert!(backlog, "stocks shows Kinesis down with a backlog");
        ctl.ok(&["stop", "--reason", "swap the data disk"]);
        record.moment("faults");
        cashtag_deploy::docker(&["start", &project.container("moto")]);
        project.wait_healthy(&["moto"], Duration::from_secs(60));
        ctl.ok(&["start"]);
        let moto = format!("http://{}:5000", project.ip("moto"));
        let kinesis = cashtag_stores::kinesis::client("us-east-1", &moto).await;
        cashtag_soak::create_streams(&kinesis, &["cashtag-posts", "cashtag-market"]).await;
        let s3 = cashtag_stores::s3::client("us-east-1", &moto).await;
        s3.create_bucket().bucket("cashtag-backups").send().await.unwrap();
    }

    // restart: twitter comes back healthy; a running service restarts within its grace
    // period; the others keep running (their containers' start instants do not move).
    let r = ctl.ok(&["restart", "twitter"]);
    assert!(
        r.stdout.contains("up to 30 s for a clean stop") && r.stdout.contains("1 container healthy"),
        "{}",
        r.stdout
    );
    let t = Instant::now();
    let r = ctl.ok(&["restart", "stocks"]);
    eprintln!("ctl: stocks restarted and healthy in {:.1} s", t.elapsed().as_secs_f64());
    assert!(r.stdout.contains("restarted"), "{}", r.stdout);
    let after = started(&status_json(&ctl).1);
    for (s, at) in &before {
        if s == "twitter" || s == "stocks" {
            assert_ne!(&after[s], at, "{s} was restarted");
        } else if !(record.is_on() && s == "moto") {
            assert_eq!(&after[s], at, "{s} kept running through the restarts");
        }
    }
    let stopped_cleanly = project.output(&["logs", "--no-color", "stocks"]);
    assert!(String::from_utf8_lossy(&stopped_cleanly.stdout).contains("stocks stopped"), "stocks stopped on SIGTERM");

    // A maintenance stop: the sources go off at once, the manager keeps them off; start
    // hands back to the calendar.
    let r = ctl.ok(&["stop", "--reason", "swap the data disk"]);
    assert!(r.stdout.contains("data sources stopped: swap the data disk"), "{}", r.stdout);
    assert!(r.stdout.contains("stocks") && r.stdout.contains("off"), "{}", r.stdout);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let state = bus.control_state().await.unwrap();
    assert!(!state.is_on() && state.reason.contains("swap the data disk"), "the manager keeps the stop: {state:?}");
    let r = ctl.ok(&["status"]);
    assert!(r.stdout.contains("Maintenance stopped by"), "{}", r.stdout);
    let r = ctl.ok(&["market"]);
    assert!(r.stdout.contains("Sources      off: maintenance stop by"), "{}", r.stdout);
    let r = ctl.ok(&["start"]);
    assert!(r.stdout.contains("data sources on: regular open (maintenance stop ended)"), "{}", r.stdout);
    let codes: Vec<String> = bus.recent_events(10_000).await.unwrap().into_iter().map(|e| e.code).collect();
    assert!(codes.contains(&"control.hold".to_string()) && codes.contains(&"control.released".to_string()));
    let r = ctl.ok(&["start"]);
    assert!(r.stdout.contains("no maintenance stop"), "{}", r.stdout);

    // Backups, in the backup container.
    let r = ctl.ok(&["backup", "now"]);
    assert!(r.stdout.contains("backed up") && r.stdout.contains("sha256"), "{}", r.all());
    let r = ctl.ok(&["backup", "list"]);
    assert!(r.stdout.contains("cashtag-backups") || r.stdout.contains(".tar.gz"), "{}", r.stdout);
    let r = ctl.ok(&["backup", "verify"]);
    assert!(r.stdout.contains("verifying the newest backup"), "{}", r.all());

    // Redis credentials: missing, wrong — clear errors, never echoed.
    let no_pw = dir.join("no-password.env");
    write(&no_pw, &format!("COMPOSE_PROJECT_NAME={project_name}\n"));
    let r = Ctl::new(&["--env-file", &no_pw.display().to_string()], &[]).run(&["flags"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("needs a password: set REDIS_PASSWORD"), "{}", r.stderr);
    let wrong = format!("Wrong{}", password("x"));
    let r = Ctl::new(&["--env-file", &no_pw.display().to_string()], &[("REDIS_PASSWORD", &wrong)]).run(&["status"]);
    assert_eq!(r.code, 1, "status shows the containers and fails on the bus: {}", r.all());
    assert!(r.stdout.contains("refused the password"), "{}", r.stdout);
    assert!(!r.all().contains(&wrong), "the wrong password is not echoed");

    // Nothing cashtagctl printed holds a password.
    let printed = ctl.printed();
    for s in [&redis_pw, &root_pw, &app_pw, &analyst_pw] {
        assert!(!printed.contains(s.as_str()), "a password in cashtagctl's output");
    }
    eprintln!("ctl: passed in {:.0} s", t0.elapsed().as_secs_f64());
    drop(project);
    let _ = std::fs::remove_dir_all(dir);
}

/// With `CASHTAG_RECORD_FIXTURES=DIR`, records moments of the suite for
/// `crates/ops/tests/status_screen.rs` (`crates/ops/tests/fixtures/record.py`).
struct Recorder {
    dir: Option<PathBuf>,
    project: String,
    password: String,
}

impl Recorder {
    fn from_env(project: &str, password: &str) -> Recorder {
        let dir = std::env::var("CASHTAG_RECORD_FIXTURES").ok().map(PathBuf::from);
        Recorder { dir, project: project.to_string(), password: password.to_string() }
    }

    fn is_on(&self) -> bool {
        self.dir.is_some()
    }

    fn moment(&self, name: &str) {
        let Some(dir) = &self.dir else { return };
        let out = dir.join(name);
        std::fs::create_dir_all(&out).unwrap();
        let script = cashtag_testkit::workspace_root().join("crates/ops/tests/fixtures/record.py");
        let status = Command::new("python3").arg(script).args([&self.project, &self.password]).arg(&out).status();
        assert!(status.is_ok_and(|s| s.success()), "record.py {name}");
    }
}

/// Containers labelled as a compose project's, removed when dropped.
struct Labelled {
    ids: Vec<String>,
}

impl Drop for Labelled {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

#[test]
fn wait_fails_on_an_unhealthy_container_and_status_says_why() {
    require_docker();
    images();
    let project = cashtag_testkit::unique("sick").to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let mut made = Labelled { ids: Vec::new() };
    for (service, check) in [("fine", "true"), ("sick", "false")] {
        let id = cashtag_deploy::docker(&[
            "run",
            "-d",
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            &format!("com.docker.compose.service={service}"),
            "--health-cmd",
            check,
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "cashtag-offline/base:bookworm",
            "sleep",
            "600",
        ]);
        made.ids.push(id.trim().to_string());
    }
    let ctl = Ctl::new(&["--project", &project], &[]);
    let t = Instant::now();
    let r = ctl.run(&["wait", "--healthy", "--timeout", "15s"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(t.elapsed() >= Duration::from_secs(15), "waited the whole timeout");
    assert!(r.stderr.contains("not healthy within 15s: sick is unhealthy"), "{}", r.stderr);
    assert!(r.stdout.contains("waiting:") && r.stdout.contains("sick"), "{}", r.stdout);
    // No Redis in this project: status shows the containers, the bus error, exit 1.
    let r = ctl.run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("PROBLEM: sick is unhealthy"), "{}", r.stdout);
    assert!(!r.stdout.contains("PROBLEM: fine"), "{}", r.stdout);
    assert!(r.stdout.contains("has no service \"redis\""), "{}", r.stdout);
    // Fixing the container ends the wait.
    let _ = cashtag_deploy::docker(&["rm", "-f", &made.ids[1]]);
    made.ids.pop();
    let r = ctl.ok(&["wait", "--healthy", "--timeout", "30s"]);
    assert!(r.stdout.contains("1 container healthy"), "{}", r.stdout);
    let r = Ctl::new(&["--project", "nosuchproject0"], &[]).run(&["status"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("has no containers"), "{}", r.stdout);
}

#[test]
fn an_unreachable_engine_is_a_clear_error() {
    let missing = std::env::temp_dir().join(cashtag_testkit::unique("no-docker")).join("docker.sock");
    let host = format!("unix://{}", missing.display());
    let r = Ctl::new(&["--project", "x"], &[("DOCKER_HOST", &host)]).run(&["status"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("cannot reach the Docker engine") && r.stderr.contains("does not exist"), "{}", r.stderr);
    // A socket nobody answers on.
    let dir: PathBuf = std::env::temp_dir().join(cashtag_testkit::unique("dead-docker"));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let r = Ctl::new(&["--project", "x"], &[("DOCKER_HOST", &format!("unix://{}", sock.display()))]).run(&["status"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("refuses connections"), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_user_without_access_to_the_engine_is_told_how_to_get_it() {
    // The engine's socket is root:docker 0660; `nobody` (not in the group) may not use it.
    let socket = Path::new("/var/run/docker.sock");
    assert!(socket.exists(), "the Docker engine's socket");
    let dir = std::env::temp_dir().join(cashtag_testkit::unique("ctl-nobody"));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("cashtagctl");
    std::fs::copy(env!("CARGO_BIN_EXE_cashtagctl"), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["--project", "x", "status"])
        .env("DOCKER_HOST", "unix:///var/run/docker.sock")
        .current_dir(&dir)
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("permission denied on unix:///var/run/docker.sock: add your user to the docker group"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
