//! The command line: help, exit codes an operator can act on, and the scheduler running a
//! missed backup at start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cashtag_testkit::{aws_endpoint, free_port, mongo_uri, redis_url, terminate, unique};

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-backup");

fn base() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("CASHTAG_") {
            c.env_remove(k);
        }
    }
    c.env("CASHTAG_MONGO_URI", mongo_uri())
        .env("CASHTAG_AWS_ENDPOINT", aws_endpoint())
        .env("CASHTAG_REDIS_URL", redis_url())
        .env("CASHTAG_REDIS_PREFIX", cashtag_testkit::unique("t-bkcli"));
    c
}

/// A new bucket in the emulator, named after `base`.
async fn new_bucket(base: &str) -> String {
    let bucket = unique(base);
    let s3 = cashtag_stores::s3::client("us-east-1", &aws_endpoint()).await;
    assert!(cashtag_stores::s3::ensure_bucket(&s3, &bucket).await.unwrap(), "a new bucket");
    bucket
}

/// A bus under `prefix` to read what the scheduler sent (events, heartbeats).
fn reader(prefix: &str) -> cashtag_bus::Bus {
    let identity = cashtag_bus::Identity { service: "t".into(), instance: "t".into() };
    cashtag_bus::Bus::open(&redis_url(), prefix, identity, cashtag_core::Clock::System, 1000).unwrap()
}

#[test]
fn help_lists_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for c in ["run", "schedule", "list", "verify", "restore", "prune"] {
        assert!(text.contains(c), "{text}");
    }
}

#[test]
fn a_missing_bucket_and_missing_credentials_say_which() {
    let out = base().args(["list"]).env("CASHTAG_BACKUP_BUCKET", "no-such-bucket-here").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"no-such-bucket-here\" does not exist"));

    let out = base()
        .args(["list"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CASHTAG_AWS_ENDPOINT", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_ACCESS_KEY_ID"));

    let out = base().args(["run"]).env("CASHTAG_BACKUP_PART_SIZE_MB", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("backup.part_size_mb"));
}

/// On EC2 no container reaches the instance role (metadata hop limit 1): the host renews
/// the services role's credentials into a file, and the services read it through an AWS
/// profile's `credential_process` (deploy/compose.ec2.yml). Those are the only
/// credentials here, and the backup's calls work with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_handed_over_by_a_credential_process_are_used() {
    let bucket = new_bucket("t-relay").await;
    let dir = std::env::temp_dir().join(unique("aws-relay"));
    std::fs::create_dir_all(&dir).unwrap();
    let expiration = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    std::fs::write(
        dir.join("credentials.json"),
        format!(
            r#"{{"Version": 1, "AccessKeyId": "ASIARELAY", "SecretAccessKey": "relayed", "SessionToken": "t", "Expiration": "{}"}}"#,
            expiration.to_rfc3339()
        ),
    )
    .unwrap();
    let calls = dir.join("calls");
    std::fs::write(
        dir.join("config"),
        format!(
            "[default]\ncredential_process = sh -c 'echo called >> {}; cat {}'\n",
            calls.display(),
            dir.join("credentials.json").display()
        ),
    )
    .unwrap();
    let without_keys = |c: &mut Command| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("CASHTAG_BACKUP_BUCKET", &bucket);
    };
    let mut list = base();
    without_keys(list.arg("list").env("AWS_CONFIG_FILE", dir.join("config")));
    let out = list.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&calls).unwrap().contains("called"), "the process handed the credentials");
    // Without the profile there are no credentials at all: the run above used the relay's.
    let mut list = base();
    without_keys(list.arg("list").env("AWS_CONFIG_FILE", dir.join("no-config")));
    let out = list.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_runs_a_missed_backup_at_start() {
    let bucket = new_bucket("t-schedule").await;
    let prefix = unique("t-backup");
    let db = unique("sched");
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    client.database(&db).collection::<bson::Document>("c").insert_one(bson::doc! {"x": 1}).await.unwrap();
    let mut child = base()
        .arg("schedule")
        .env("CASHTAG_SINKS_SPOOL_DIR", std::env::temp_dir().join(cashtag_testkit::unique("state")))
        .env("CASHTAG_REDIS_URL", redis_url())
        .env("CASHTAG_REDIS_PREFIX", &prefix)
        .env("CASHTAG_BACKUP_BUCKET", &bucket)
        .env("CASHTAG_BACKUP_DATABASES", &db)
        .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let bus = reader(&prefix);
    let deadline = Instant::now() + Duration::from_secs(60);
    let codes = loop {
        let codes: Vec<String> = bus.peek_events(1000).await.unwrap().into_iter().map(|e| e.code).collect();
        if codes.iter().any(|c| c == "backup.done" || c == "backup.failed") || Instant::now() > deadline {
            break codes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(codes.contains(&"backup.missed".to_string()), "{codes:?}");
    assert!(codes.contains(&"backup.done".to_string()), "{codes:?}");
    assert!(terminate(&mut child, Duration::from_secs(10)).success());
}

/// A scheduled run that no backup followed within `backup.overdue_after_mins` makes the
/// scheduler unhealthy, and its heartbeat says since when (cashtagctl shows a PROBLEM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_backups_make_the_scheduler_unhealthy() {
    let prefix = unique("t-backup-overdue");
    let port = free_port();
    let mut child = base()
        .arg("schedule")
        .env("CASHTAG_SINKS_SPOOL_DIR", std::env::temp_dir().join(unique("state")))
        .env("CASHTAG_REDIS_PREFIX", &prefix)
        .env("CASHTAG_BACKUP_BUCKET", unique("t-no-such-bucket"))
        .env("CASHTAG_BACKUP_CRON", "0 0 * * * *")
        .env("CASHTAG_BACKUP_OVERDUE_AFTER_MINS", "0")
        .env("CASHTAG_HEARTBEAT_INTERVAL_SECS", "1")
        .env("CASHTAG_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/healthz")).send().await
            && r.status() == 503
        {
            break r.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "/healthz never said 503");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body.contains("overdue_since") && body.contains("no backup since the run due at"), "{body}");
    let bus = reader(&prefix);
    // One event for the webhook's incident, not one per check.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let overdue = bus.peek_events(1000).await.unwrap().into_iter().filter(|e| e.code == "backup.overdue").count();
    assert_eq!(overdue, 1, "one backup.overdue while it stays overdue");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let beats = bus.alive().await.unwrap();
        if beats.iter().any(|h| h.service == "backup" && h.info["overdue_since"].is_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat with overdue_since: {beats:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(terminate(&mut child, Duration::from_secs(10)).success());
}
