//! The manager's command line: help, configuration errors, the calendar command.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-manager");

fn manager() -> Command {
    let mut c = Command::new(BIN);
    // Only this test's settings: no inherited CASHTAG_* variables.
    for (k, _) in std::env::vars() {
        if k.starts_with("CASHTAG_") {
            c.env_remove(k);
        }
    }
    // Every process keeps its state (the event outbox) in a directory of its own.
    c.env("CASHTAG_SINKS_SPOOL_DIR", std::env::temp_dir().join(cashtag_testkit::unique("state")));
    c
}

#[test]
fn help_works() {
    let out = manager().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "calendar", "flags"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn a_bad_setting_is_named() {
    let out = manager()
        .args(["calendar", "--date", "2026-11-27"])
        .env("CASHTAG_MANAGER_LAG_MINUTES", "ten")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("manager.lag_minutes") && err.contains("CASHTAG_MANAGER_LAG_MINUTES"), "{err}");
}

#[test]
fn black_friday_2026_is_an_early_close_at_13() {
    let out = manager().args(["calendar", "--date", "2026-11-27"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("early close at 13:00"), "{text}");
}

#[test]
fn a_holiday_says_why_and_when_it_reopens() {
    let out = manager().args(["calendar", "--date", "2026-04-03"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("closed — holiday: Good Friday"), "{text}");
    assert!(text.contains("next open: 2026-04-06 09:30 EDT"), "{text}");
}

#[test]
fn a_range_lists_sessions() {
    let out = manager().args(["calendar", "--from", "2026-12-21", "--to", "2026-12-31", "--json"]).output().unwrap();
    assert!(out.status.success());
    let sessions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dates: Vec<&str> = sessions.as_array().unwrap().iter().map(|s| s["date"].as_str().unwrap()).collect();
    assert_eq!(
        dates,
        [
            "2026-12-21",
            "2026-12-22",
            "2026-12-23",
            "2026-12-24",
            "2026-12-28",
            "2026-12-29",
            "2026-12-30",
            "2026-12-31"
        ]
    );
}
