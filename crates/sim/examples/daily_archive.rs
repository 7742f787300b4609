//! Writes the history test's generated archive (`ArchiveSpec::history_test`) to a
//! directory, for `crates/history/check/daily_study.py` to compute the reference from:
//! `cargo run -p cashtag-sim --example daily_archive -- DIR`.

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: daily_archive DIR");
        std::process::exit(2);
    };
    let stats =
        cashtag_sim::archive::write(std::path::Path::new(&dir), &cashtag_sim::archive::ArchiveSpec::history_test())
            .unwrap_or_else(|e| {
                eprintln!("daily_archive: {dir}: {e}");
                std::process::exit(1);
            });
    println!("{} sessions, {} tweets, {} daily bars in {dir}", stats.sessions, stats.tweets, stats.bars);
}
