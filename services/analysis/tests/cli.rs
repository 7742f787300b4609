//! The binary's command-line surface.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cashtag-analysis");

#[test]
fn help_works() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: cashtag-analysis"));
}

#[test]
fn run_says_not_built_yet_and_fails() {
    let out = Command::new(BIN).arg("run").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not built yet"));
}
