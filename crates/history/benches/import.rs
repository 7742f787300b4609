//! The import bench: the history test's generated archive (two years, 30 tickers: about
//! 45,000 tweets and 15,000 daily bars) imported by the release binaries, each twice in
//! the same run — with `--dry-run` (read, parse, extract cashtags, score: the importer's
//! own ceiling) and into the local stack (MongoDB-wire server, flags as configured, here
//! Kinesis off). The ratio says whether the database or the parsing limits an import.
//!
//! `cargo bench -p cashtag-history --bench import` (the local stack must run:
//! `scripts/stack up`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cashtag_sim::archive::{ArchiveSpec, write};
use cashtag_testkit::{mongo_uri, redis_url, release_bin, unique};

/// Runs an import; returns (seconds, records stored or counted).
fn import(bin: &Path, db: &str, args: &[&str]) -> (f64, u64) {
    let started = Instant::now();
    let out = Command::new(bin)
        .env("CASHTAG_MONGO_URI", mongo_uri())
        .env("CASHTAG_MONGO_DATABASE", db)
        .env("CASHTAG_REDIS_URL", redis_url())
        .env("CASHTAG_REDIS_PREFIX", unique("bench-import"))
        .env("CASHTAG_FLAGS_KINESIS_WRITE", "false")
        .args(["--quiet", "import", "--json"])
        .args(args)
        .output()
        .expect("run the import");
    let secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    (secs, v["total"]["stored"].as_u64().unwrap_or(0))
}

fn main() {
    let twitter = release_bin("cashtag-twitter");
    let stocks = release_bin("cashtag-stocks");
    let dir = std::env::temp_dir().join(unique("bench-archive"));
    let spec = ArchiveSpec::history_test();
    let stats = write(&dir, &spec).expect("write the archive");
    let wl = dir.join("watchlist.toml");
    let companies: String =
        spec.tickers.iter().map(|t| format!("[[company]]\nticker = \"{t}\"\nname = \"{t}\"\n")).collect();
    std::fs::write(&wl, companies).expect("watchlist");
    let (tweets, prices) = (dir.join("tweets"), dir.join("prices"));
    let (tw, pr, wl) = (tweets.to_str().unwrap(), prices.to_str().unwrap(), wl.to_str().unwrap());
    let db = unique("bench_import");
    println!(
        "archive: {} tweets, {} daily bars, {} sessions ({})",
        stats.tweets,
        stats.bars,
        stats.sessions,
        dir.display()
    );
    let tweet_args = ["--ticker-from-path", "--watchlist", wl, tw];
    let (dry_t, n_dry_t) = import(&twitter, &db, &[&["--dry-run"][..], &tweet_args].concat());
    let (db_t, n_db_t) = import(&twitter, &db, &tweet_args);
    let (dry_b, n_dry_b) = import(&stocks, &db, &["--dry-run", pr]);
    let (db_b, n_db_b) = import(&stocks, &db, &[pr]);
    assert_eq!((n_dry_t, n_dry_b), (n_db_t, n_db_b), "the dry run counts what the real one stores");
    println!("{:<44} {:>10} {:>12} {:>10}", "cashtag-{twitter,stocks} import", "records", "seconds", "per second");
    for (what, n, s) in [
        ("tweets: read, parse, extract, score", n_dry_t, dry_t),
        ("tweets: … and store (MongoDB-wire server)", n_db_t, db_t),
        ("daily bars: read, parse", n_dry_b, dry_b),
        ("daily bars: … and store (MongoDB-wire server)", n_db_b, db_b),
    ] {
        println!("{what:<44} {n:>10} {s:>12.2} {:>10.0}", n as f64 / s);
    }
    println!(
        "storing takes {:.1}x the parsing time for tweets and {:.1}x for bars: {}",
        db_t / dry_t,
        db_b / dry_b,
        if db_t > 2.0 * dry_t {
            "the database limits an import"
        } else {
            "parsing and scoring matter as much as the database"
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
}
