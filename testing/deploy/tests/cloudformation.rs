//! deploy/cloudformation.yaml: clean under cfn-lint, and created in an emulator (moto's
//! CloudFormation, a private server) with the streams, bucket, role policies and security
//! group it promises — checked by deploy/tests/check_cloudformation.py.

use std::process::Command;

use cashtag_testkit::{PrivateServer, ServerKind, venv, workspace_root};

#[test]
fn the_template_passes_cfn_lint() {
    let out = Command::new(venv().join("bin/cfn-lint"))
        .arg(workspace_root().join("deploy/cloudformation.yaml"))
        .output()
        .expect("run cfn-lint from the stack's venv");
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_template_creates_what_it_promises_in_the_emulator() {
    let moto = PrivateServer::start(ServerKind::Moto);
    let out = Command::new(venv().join("bin/python"))
        .arg(workspace_root().join("deploy/tests/check_cloudformation.py"))
        .arg(moto.url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run check_cloudformation.py");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(out.status.success(), "the stack does not hold: {text}");
    assert!(text.contains("check_cloudformation: passed"));
}
