//! SIGKILL during a MongoDB outage: the journal survives the process and is written when
//! the store is back; the count is exact.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cashtag_testkit::{PrivateServer, ServerKind, redis_url, unique};
use common::*;

fn writer() -> std::path::PathBuf {
    cashtag_testkit::example_bin("sink_writer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_outage_then_the_journal_is_written_exactly() {
    let mut server = PrivateServer::start(ServerKind::Mongo);
    let url = server.url();
    let db = unique("sigkill");
    let prefix = unique("t-sinks-sigkill");
    let spool = journal_dir("sigkill");
    server.stop();

    // The writer accepts 4,000 trades while MongoDB is down: they are in its journal.
    let mut child = Command::new(writer())
        .args([&url, &db, &redis_url(), &prefix, spool.to_str().unwrap(), "0", "4000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("examples/sink_writer is built by cargo test");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines.next().expect("writer output").unwrap();
        if line.contains("up=false") {
            break;
        }
        assert!(Instant::now() < deadline, "the writer never marked MongoDB down: {line}");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    server.restart();
    // A new process with no new records writes the journal and exits when it is done.
    let out = Command::new(writer())
        .args([&url, &db, &redis_url(), &prefix, spool.to_str().unwrap(), "0", "0", "--exit-when-idle"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("idle"), "{text}");
    assert!(text.contains("replayed=4000"), "{}", text.lines().last().unwrap_or(""));

    let client = cashtag_stores::mongo::connect(&url, "test").await.unwrap();
    assert_eq!(mongo_count(&client.database(&db)).await, 4_000);
    let evs = events(&prefix).await;
    assert!(evs.iter().any(|e| e.code == "sink.backlog"), "the restart reported the backlog");
    let codes: Vec<String> = evs.iter().map(|e| format!("{} {:?}", e.code, e.fields)).collect();
    assert!(evs.iter().any(|e| e.code == "sink.recovered" && e.fields["replayed"] == 4000), "{codes:#?}");
}
