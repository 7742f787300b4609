//! The status screen from recorded answers, without an engine or a Redis.
//!
//! Each directory under `tests/fixtures/` is one moment of a real suite on this machine's
//! Docker engine, recorded by `tests/fixtures/record.py`: `containers.json` is what the
//! Engine API answered to inspect for every container of the project, and `bus.json`
//! what Redis held (control state, maintenance stop, flags, heartbeats, newest events).
//! `status.txt` is the screen they give; `CASHTAG_BLESS=1` rewrites it after a deliberate
//! change of the layout (then read the diff).
//!
//! - `healthy`: the whole suite up at the simulated open, both fetchers writing.
//! - `faults`: the same suite after `docker kill` of twitter, with moto (Kinesis) stopped
//!   and a maintenance stop in force.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bollard::models::ContainerInspectResponse;
use cashtag_bus::{ControlHold, ControlState, Heartbeat};
use cashtag_core::Event;
use cashtag_ops::containers::ContainerView;
use cashtag_ops::status::Status;
use cashtag_ops::suite::SuiteState;
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Deserialize)]
struct RecordedBus {
    now: DateTime<Utc>,
    project: String,
    control: ControlState,
    hold: Option<ControlHold>,
    flags: BTreeMap<String, bool>,
    heartbeats: Vec<Heartbeat>,
    events: Vec<Event>,
}

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn recorded(name: &str) -> Status {
    let containers: Vec<ContainerInspectResponse> =
        serde_json::from_str(&std::fs::read_to_string(dir(name).join("containers.json")).unwrap())
            .expect("the engine's inspect answers parse");
    let bus: RecordedBus = serde_json::from_str(&std::fs::read_to_string(dir(name).join("bus.json")).unwrap())
        .expect("the recorded bus parses");
    let views: Vec<ContainerView> = {
        let mut c = containers;
        c.sort_by_key(|c| (cashtag_ops::engine::service_of(c), c.name.clone()));
        c.iter().map(ContainerView::from_inspect).collect()
    };
    let suite = SuiteState::assemble(bus.control, bus.hold, bus.flags, bus.heartbeats, bus.events);
    Status::new(&bus.project, bus.now, views, Ok(suite))
}

/// The screen equals the committed one (or rewrites it with CASHTAG_BLESS=1).
fn matches_screen(name: &str, status: &Status) {
    let screen = status.render();
    let path = dir(name).join("status.txt");
    if std::env::var("CASHTAG_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &screen).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("status.txt (CASHTAG_BLESS=1 writes it)");
    assert_eq!(screen, want, "the {name} screen changed:\n{screen}");
}

const SERVICES: [&str; 10] =
    ["analysis", "backup", "log", "manager", "mongo", "moto", "predict", "redis", "stocks", "twitter"];

#[test]
fn a_healthy_suite_is_one_screen_and_exit_zero() {
    let s = recorded("healthy");
    assert!(s.healthy(), "problems: {:?}", s.problems);
    let services: Vec<&str> = s.containers.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(services, SERVICES);
    for c in &s.containers {
        assert_eq!(c.state, "running", "{}", c.service);
        assert!(c.uptime(s.now).is_some(), "{} has an uptime", c.service);
        // moto has no health check in the compose file; the others are healthy.
        assert_eq!(c.health.as_deref(), if c.service == "moto" { None } else { Some("healthy") }, "{}", c.service);
        assert_eq!(c.cashtag_service, !["moto", "mongo", "redis"].contains(&c.service.as_str()), "{}", c.service);
    }
    let suite = s.suite.as_ref().unwrap();
    assert!(suite.control.is_on());
    assert_eq!(suite.fetchers.iter().map(|f| f.service.as_str()).collect::<Vec<_>>(), ["stocks", "twitter"]);
    for f in &suite.fetchers {
        let sinks: Vec<&str> = f.sinks.iter().map(|s| s.sink.as_str()).collect();
        assert_eq!(sinks, ["mongo", "kinesis"], "{}", f.service);
        // (Kinesis had just got its streams: it had written nothing yet.)
        assert!(f.records > 0 && f.sinks.iter().all(|s| s.up) && f.sinks[0].written > 0, "{} writes: {f:?}", f.service);
    }
    let screen = s.render();
    assert!(screen.contains("Market      on (regular open)"), "{screen}");
    assert!(screen.ends_with("All healthy.\n"), "{screen}");
    matches_screen("healthy", &s);
    // The JSON form carries the same.
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["containers"].as_array().unwrap().len(), 10);
    assert_eq!(v["problems"], serde_json::json!([]));
    assert!(v["suite"]["fetchers"][0]["sinks"][0]["backlog_bytes"].is_u64());
}

#[test]
fn a_killed_container_a_down_sink_and_a_maintenance_stop_show_as_such() {
    let s = recorded("faults");
    assert!(!s.healthy());
    let twitter = s.containers.iter().find(|c| c.service == "twitter").unwrap();
    assert_eq!((twitter.state.as_str(), twitter.exit_code), ("exited", Some(137)));
    assert_eq!(twitter.uptime(s.now), None);
    assert!(s.problems.contains(&"twitter exited with code 137".to_string()), "{:?}", s.problems);
    let moto = s.containers.iter().find(|c| c.service == "moto").unwrap();
    assert_eq!(moto.state, "exited");
    // Kinesis is down for stocks: a note with its backlog, not a problem while the
    // journal holds the records.
    let suite = s.suite.as_ref().unwrap();
    let stocks = suite.fetchers.iter().find(|f| f.service == "stocks").expect("stocks' heartbeat");
    let kinesis = stocks.sinks.iter().find(|k| k.sink == "kinesis").unwrap();
    assert!(!kinesis.up && kinesis.backlog_bytes > 0, "{kinesis:?}");
    assert!(s.notes.iter().any(|n| n.starts_with("stocks: kinesis down for")), "{:?}", s.notes);
    assert!(s.notes.iter().any(|n| n.contains("stopped for maintenance")), "{:?}", s.notes);
    assert!(!suite.control.is_on());
    let screen = s.render();
    assert!(screen.contains("Maintenance stopped by"), "{screen}");
    assert!(screen.contains("PROBLEM: twitter exited with code 137"), "{screen}");
    matches_screen("faults", &s);
}

#[test]
fn without_containers_or_a_bus_the_screen_says_so() {
    let s = Status::new("empty", Utc::now(), Vec::new(), Err("Redis at redis://10.0.0.2:6379 needs a password".into()));
    assert_eq!(s.problems, ["project \"empty\" has no containers (is it up? --project names another)"]);
    assert!(s.render().contains("No containers."));
    assert!(s.render().contains("Bus         cannot be read: Redis at redis://10.0.0.2:6379 needs a password"));
    let bus_down = Status::new("p", Utc::now(), recorded("healthy").containers, Err("Redis at x: timed out".into()));
    assert_eq!(bus_down.problems, ["the bus cannot be read: Redis at x: timed out"]);
}

/// What the healthy moment would say with one thing wrong: the screen must not say "All
/// healthy" for a sink down past the threshold, a failed backup or a restart loop, and it
/// names the exit code and the last log line.
#[test]
fn a_long_sink_outage_a_failed_backup_and_a_restart_loop_are_problems() {
    let healthy = recorded("healthy");
    let rebuild = |containers: Vec<ContainerView>, suite: SuiteState| {
        Status::new(&healthy.project, healthy.now, containers, Ok(suite))
    };
    let suite = healthy.suite.clone().unwrap();

    let mut down = suite.clone();
    let kinesis = &mut down.fetchers[0].sinks[1];
    (kinesis.up, kinesis.down_seconds) = (false, 30.0);
    let brief = rebuild(healthy.containers.clone(), down.clone());
    assert!(brief.healthy() && brief.notes.iter().any(|n| n.contains("kinesis down for 30 s")), "{:?}", brief.notes);
    down.fetchers[0].sinks[1].down_seconds = 90.0;
    let long = rebuild(healthy.containers.clone(), down);
    assert!(long.problems.iter().any(|p| p.starts_with("stocks: kinesis down for 90 s")), "{:?}", long.problems);

    let mut failed = suite.clone();
    let event: Event = serde_json::from_value(serde_json::json!({
        "id": "b-1", "at": "2026-11-24T22:30:00Z", "service": "backup", "instance": "b", "kind": "error",
        "code": "backup.failed", "message": "backup failed after 3.0 s: MongoDB: timed out", "fields": {}
    }))
    .unwrap();
    failed.last_backup = Some(event);
    let s = rebuild(healthy.containers.clone(), failed);
    assert!(
        s.problems.iter().any(|p| p.contains("the last backup failed at") && p.contains("timed out")),
        "{:?}",
        s.problems
    );
    assert!(!s.render().contains("All healthy"));

    let mut containers = healthy.containers.clone();
    let stocks = containers.iter_mut().find(|c| c.service == "stocks").unwrap();
    (stocks.state, stocks.restarts, stocks.exit_code) = ("restarting".into(), 7, Some(2));
    stocks.last_log = Some("error: watchlist.file /etc/cashtag/watchlist.toml is not a file".into());
    let s = rebuild(containers, suite.clone());
    assert_eq!(
        s.problems,
        [
            "stocks is restarting (7 restarts; last exit code 2); its last line: error: watchlist.file /etc/cashtag/watchlist.toml is not a file"
        ]
    );

    let mut containers = healthy.containers.clone();
    let backup = containers.iter_mut().find(|c| c.service == "backup").unwrap();
    assert_eq!(backup.memory_limit, Some(1 << 30), "the limit comes from the inspect answer");
    backup.memory_used = Some(980 << 20);
    let s = rebuild(containers.clone(), suite.clone());
    assert_eq!(s.problems, ["backup uses 96% of its memory limit (1.0 GB of 1.1 GB): near an OOM kill"]);
    containers.iter_mut().find(|c| c.service == "backup").unwrap().memory_used = Some(600 << 20);
    assert!(rebuild(containers, suite.clone()).healthy(), "60% is fine");

    let mut overdue = suite.clone();
    let backup = overdue.heartbeats.iter_mut().find(|h| h.service == "backup").unwrap();
    backup.info = serde_json::json!({"newest_backup": null, "overdue_since": "2026-11-23T21:30:00Z"});
    let s = rebuild(healthy.containers.clone(), overdue);
    assert_eq!(s.problems, ["backups are overdue: none since the run due at 2026-11-23T21:30:00Z"]);

    let mut never = suite;
    never.control = ControlState::initial();
    let screen = rebuild(healthy.containers.clone(), never).render();
    assert!(screen.contains("Sources     off: no control state yet"), "{screen}");
    assert!(!screen.contains("1969"), "{screen}");
}
