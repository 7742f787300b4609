//! Writes a test's generated archive to a directory, for
//! `crates/history/check/daily_study.py` to compute the reference from:
//! `cargo run -p cashtag-sim --example daily_archive -- DIR [history|sparse]` —
//! `history` (the default) is `ArchiveSpec::history_test`, `sparse` is
//! `ArchiveSpec::sparse_test`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), kind) = (args.first(), args.get(1).map_or("history", String::as_str)) else {
        eprintln!("usage: daily_archive DIR [history|sparse]");
        std::process::exit(2);
    };
    let spec = match kind {
        "history" => cashtag_sim::archive::ArchiveSpec::history_test(),
        "sparse" => cashtag_sim::archive::ArchiveSpec::sparse_test(),
        other => {
            eprintln!("daily_archive: {other:?} is not history or sparse");
            std::process::exit(2);
        }
    };
    let stats = cashtag_sim::archive::write(std::path::Path::new(dir), &spec).unwrap_or_else(|e| {
        eprintln!("daily_archive: {dir}: {e}");
        std::process::exit(1);
    });
    println!(
        "{} sessions, {} tweets ({} copied into a second folder, {} retweets, {} in another language), {} daily bars in {dir}",
        stats.sessions, stats.tweets, stats.copies, stats.retweets, stats.other_language, stats.bars
    );
}
