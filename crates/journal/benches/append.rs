//! The journal's group commit under each fsync policy, in one run on one disk:
//! records/s and the latency of one append (one group commit), for groups of 1 to 1,000
//! records of a trade's size (~300 bytes). `never` is the baseline: what the journal costs
//! without waiting for the disk.
//!
//! `cargo bench -p cashtag-journal --bench append` (`CASHTAG_BENCH_DIR` picks the disk;
//! default: the system's temporary directory).

use std::time::{Duration, Instant};

use cashtag_journal::{Fsync, Journal, JournalConfig};

fn record(i: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"trade","provider":"sim","ticker":"AAPL","ts":"2026-11-24T15:00:00.{:03}Z","received_at":"2026-11-24T15:00:00.{:03}Z","price":231.5,"size":100.0,"exchange":"V","trade_id":"{i}","conditions":["@"],"seq":{i}}}"#,
        i % 1000,
        i % 1000
    )
    .into_bytes()
}

fn run(policy: Fsync, group: usize, total: usize) -> (f64, Duration, Duration) {
    let base = std::env::var_os("CASHTAG_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("journal-bench-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos()));
    let _ = std::fs::remove_dir_all(&dir);
    let j = Journal::open(
        JournalConfig { dir: dir.clone(), segment_bytes: 64 << 20, max_bytes: 8 << 30, fsync: policy },
        &["sink"],
    )
    .unwrap();
    let records: Vec<Vec<u8>> = (0..group).map(record).collect();
    let mut lat = Vec::with_capacity(total / group + 1);
    let t0 = Instant::now();
    let mut n = 0;
    while n < total {
        let t = Instant::now();
        j.append(records.iter().map(|r| (1u8, r.as_slice()))).unwrap();
        lat.push(t.elapsed());
        n += group;
    }
    j.sync().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    let out = (n as f64 / secs, p(0.5), p(0.99));
    drop(j);
    let _ = std::fs::remove_dir_all(dir);
    out
}

fn main() {
    println!("journal group commit, records of {} bytes", record(0).len());
    println!("{:<14} {:>7} {:>14} {:>12} {:>12}", "fsync", "group", "records/s", "p50 append", "p99 append");
    for (name, policy) in [
        ("never", Fsync::Never),
        ("interval 100ms", Fsync::Interval(Duration::from_millis(100))),
        ("always", Fsync::Always),
    ] {
        for group in [1, 10, 100, 1000] {
            // Enough appends to be stable, bounded so `always` with single records is quick.
            let total = if matches!(policy, Fsync::Always) { (group * 400).min(200_000) } else { 200_000 };
            let (rate, p50, p99) = run(policy, group, total);
            println!(
                "{:<14} {:>7} {:>14.0} {:>10.1}µs {:>10.1}µs",
                name,
                group,
                rate,
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
    }
}
