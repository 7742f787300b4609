//! The size bench: a backup and a restore of a large database (2 GiB by default) under the
//! backup service's compose limits — a 1 GiB memory limit, a read-only root filesystem,
//! `/tmp` a tmpfs, staging on the state volume, no capability — against a 100 MiB baseline
//! in the same run. The release `cashtag-backup` runs in a container of the offline base
//! image (the cashtag image's own base) with the host's network, against the local stack's
//! MongoDB-wire server and S3 emulator. For each size it prints the time and the process's
//! peak resident memory of the backup and of the restore, and whether the kernel killed
//! either for memory; the restored database must hold every document.
//!
//! `CASHTAG_BENCH_BACKUP_GIB=2 cargo bench -p cashtag-backup --bench size` (the local
//! stack must run, `scripts/stack up`, and the base image exist: `sudo
//! deploy/build-offline --servers-only`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bson::{Document, doc};
use cashtag_testkit::{aws_endpoint, mongo_uri, release_bin, unique};

const IMAGE: &str = "cashtag-offline/base:bookworm";
const MEMORY_LIMIT: &str = "1g";
/// Documents of this size, incompressible: the archive is as large as the data.
const DOC_BYTES: usize = 64 * 1024;

fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `bytes` of documents in five collections (a week of data has several).
async fn seed(db: &mongodb::Database, bytes: u64) -> u64 {
    let docs = bytes / DOC_BYTES as u64;
    for start in (0..docs).step_by(64) {
        let coll = db.collection::<Document>(&format!("c{}", start % 5));
        let batch: Vec<Document> = (start..(start + 64).min(docs))
            .map(|i| doc! {"i": i as i64, "blob": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: noise(i, DOC_BYTES) }})
            .collect();
        coll.insert_many(batch).await.expect("seed");
    }
    docs
}

struct Run {
    secs: f64,
    peak_mib: f64,
    oom_killed: bool,
    stdout: String,
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `cashtag-backup ARGS` in a container under the compose limits; its peak resident memory
/// from /proc (VmHWM of the container's PID 1, sampled until it exits).
fn in_container(bin: &Path, volume: &str, env: &[(&str, String)], args: &[&str]) -> Run {
    let mount_bin = format!("{}:/usr/local/bin/cashtag-backup:ro", bin.display());
    let mount_state = format!("{volume}:/var/lib/cashtag/state");
    let mut run = vec![
        "run",
        "-d",
        "--network",
        "host",
        "--memory",
        MEMORY_LIMIT,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--security-opt",
        "no-new-privileges:true",
        "--cap-drop",
        "ALL",
        "-v",
        &mount_bin,
        "-v",
        &mount_state,
    ];
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for e in &env {
        run.extend(["-e", e.as_str()]);
    }
    run.extend([IMAGE, "cashtag-backup"]);
    run.extend(args);
    let started = Instant::now();
    let id = docker(&run);
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &id]);
    let mut peak_kib = 0u64;
    while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
        if let Some(kib) = hwm.and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()) {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let code = docker(&["wait", &id]);
    let secs = started.elapsed().as_secs_f64();
    let oom_killed = docker(&["inspect", "-f", "{{.State.OOMKilled}}", &id]) == "true";
    let logs = Command::new("docker").args(["logs", &id]).output().expect("docker logs");
    docker(&["rm", &id]);
    let stdout = String::from_utf8_lossy(&logs.stdout).into_owned();
    assert!(
        code == "0" && !oom_killed,
        "cashtag-backup {} exited {code} (OOM killed: {oom_killed}): {}",
        args.join(" "),
        String::from_utf8_lossy(&logs.stderr)
    );
    Run { secs, peak_mib: peak_kib as f64 / 1024.0, oom_killed, stdout }
}

#[tokio::main]
async fn main() {
    let gib: f64 = std::env::var("CASHTAG_BENCH_BACKUP_GIB").ok().and_then(|v| v.parse().ok()).unwrap_or(2.0);
    let bin = release_bin("cashtag-backup");
    docker(&["image", "inspect", "-f", "{{.Id}}", IMAGE]);
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.expect("the stack's MongoDB-wire server");
    let volume = unique("bench-backup-state").to_lowercase();
    docker(&["volume", "create", &volume]);
    let bucket = unique("bench-size").to_lowercase();
    println!(
        "{:<10} {:>9} {:>9} {:>11} {:>12} {:>11} {:>12} {:>5}",
        "database", "MiB", "seed s", "backup s", "backup MiB", "restore s", "restore MiB", "OOM"
    );
    for (label, bytes) in [("baseline", 100u64 << 20), ("large", (gib * (1u64 << 30) as f64) as u64)] {
        let name = unique("bench_size");
        let db = client.database(&name);
        let t = Instant::now();
        let docs = seed(&db, bytes).await;
        let seed_secs = t.elapsed().as_secs_f64();
        let env = vec![
            ("CASHTAG_MONGO_URI", mongo_uri()),
            ("CASHTAG_AWS_ENDPOINT", aws_endpoint()),
            ("CASHTAG_AWS_CREATE_MISSING", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("CASHTAG_BACKUP_BUCKET", bucket.clone()),
            ("CASHTAG_BACKUP_ENV", name.replace('_', "-")),
            ("CASHTAG_BACKUP_DATABASES", name.clone()),
            ("CASHTAG_BACKUP_WORK_DIR", "/var/lib/cashtag/state/staging".to_string()),
            ("CASHTAG_REDIS_URL", cashtag_testkit::redis_url()),
            ("CASHTAG_REDIS_PREFIX", unique("bench-size")),
        ];
        let backup = in_container(&bin, &volume, &env, &["run", "--quiet"]);
        let listed = in_container(&bin, &volume, &env, &["list", "--json"]);
        // One JSON line per backup, the newest last.
        let newest: serde_json::Value =
            serde_json::from_str(listed.stdout.lines().last().expect("a backup listed")).expect("list --json");
        let key = newest["key"].as_str().expect("the backup's key").to_string();
        let restored = format!("{name}_r");
        let restore = in_container(&bin, &volume, &env, &["restore", &key, "--to-db", &restored]);
        let mut back = 0;
        for c in 0..5 {
            back += client
                .database(&restored)
                .collection::<Document>(&format!("c{c}"))
                .count_documents(doc! {})
                .await
                .unwrap();
        }
        assert_eq!(back, docs, "every document restored");
        println!(
            "{label:<10} {:>9.0} {seed_secs:>9.1} {:>11.1} {:>12.0} {:>11.1} {:>12.0} {:>5}",
            bytes as f64 / (1u64 << 20) as f64,
            backup.secs,
            backup.peak_mib,
            restore.secs,
            restore.peak_mib,
            backup.oom_killed || restore.oom_killed
        );
        db.drop().await.ok();
        client.database(&restored).drop().await.ok();
    }
    docker(&["volume", "rm", &volume]);
    println!("memory limit {MEMORY_LIMIT} (the backup service's in docker-compose.yml); peak = the process's VmHWM");
}
