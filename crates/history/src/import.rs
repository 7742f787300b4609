//! Importing archives: every file under the paths given, line by line, through the live
//! parsers, scored and stored as live records. A bad line is reported with its file and
//! line number and skipped; the import never stops for one. Each file gets its counts:
//! read, stored, duplicates (already stored, by natural key), skipped (no watched
//! ticker, a repost, another language, a `null` row) and rejected.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cashtag_bus::Bus;
use cashtag_core::{Record, Ticker, Timeframe, catalog};
use cashtag_intake::posts::PostFilter;
use cashtag_sources::market::alpaca::parse::{HistoryKind, parse_history_page};
use cashtag_sources::social::{stocktwits, x};
use chrono::{DateTime, Utc};

use crate::archive::{Line, Lines, parent_name, stem, walk};
use crate::prices::{Columns, parse_row, ticker_from_stem};
use crate::store::Store;
use crate::{Counts, HistoryError};

/// Records written in one go.
const BATCH: usize = 2_000;
/// Bad lines printed per file (all are counted).
const SHOWN: u64 = 20;

/// How tweet lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TweetFormat {
    /// Per line: StockTwits when it has a `body`, v1.1 when it has a `user` object, v2
    /// otherwise.
    Auto,
    XV1,
    XV2,
    Stocktwits,
}

impl std::str::FromStr for TweetFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(TweetFormat::Auto),
            "x-v1" => Ok(TweetFormat::XV1),
            "x-v2" => Ok(TweetFormat::XV2),
            "stocktwits" => Ok(TweetFormat::Stocktwits),
            _ => Err(format!("format {s:?} is not auto, x-v1, x-v2 or stocktwits")),
        }
    }
}

/// How price files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceFormat {
    /// CSV when the first line is a header, Alpaca bar pages when it is JSON.
    Auto,
    OhlcvCsv,
    AlpacaBars,
}

impl std::str::FromStr for PriceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(PriceFormat::Auto),
            "ohlcv-csv" => Ok(PriceFormat::OhlcvCsv),
            "alpaca-bars" => Ok(PriceFormat::AlpacaBars),
            _ => Err(format!("format {s:?} is not auto, ohlcv-csv or alpaca-bars")),
        }
    }
}

/// The counts of each file and in total.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub files: Vec<(String, Counts)>,
    pub total: Counts,
    /// A dry run: `stored` is what a real run would store.
    pub dry_run: bool,
}

impl Report {
    /// The summary table, and what was skipped, by reason.
    pub fn table(&self) -> String {
        let stored = if self.dry_run { "would store" } else { "stored" };
        let mut out = format!(
            "{:<48} {:>9} {:>11} {:>10} {:>7} {:>9} {:>9}\n",
            "file", "read", stored, "duplicates", "merged", "skipped", "rejected"
        );
        let row = |name: &str, c: &Counts| {
            format!(
                "{:<48} {:>9} {:>11} {:>10} {:>7} {:>9} {:>9}\n",
                name, c.read, c.stored, c.duplicates, c.merged, c.skipped, c.rejected
            )
        };
        if self.files.len() <= 50 {
            for (f, c) in &self.files {
                out += &row(&shorten(f), c);
            }
        }
        out += &row(&format!("total ({} files)", self.files.len()), &self.total);
        if self.total.skipped > 0 {
            out += &format!("skipped: {}\n", self.total.skipped_reasons());
        }
        if self.total.merged > 0 {
            out += &format!(
                "merged: {} copies of a stored post under another ticker (its tickers now include theirs)\n",
                self.total.merged
            );
        }
        out
    }
}

/// A path for a summary table: its last 46 characters after `…` when it is longer than 48.
fn shorten(s: &str) -> String {
    match s.char_indices().rev().nth(45) {
        Some((at, _)) if s.chars().count() > 48 => format!("…{}", &s[at..]),
        _ => s.to_string(),
    }
}

/// Adds the tickers `p` lacks; whether it lacked any.
fn add_tickers(p: &mut cashtag_core::Post, tickers: &[Ticker]) -> bool {
    let before = p.tickers.len();
    for t in tickers {
        if !p.tickers.contains(t) {
            p.tickers.push(t.clone());
        }
    }
    p.tickers.len() > before
}

/// Posts the store already had: those whose copy here names a ticker the stored post
/// lacks get the union of both, scored again (the finance score is per ticker). Returns
/// their keys. Only MongoDB can be updated; without it, a copy is a duplicate.
async fn merge_into_stored(
    store: &Store,
    scorer: &PostFilter,
    records: &[Record],
    duplicates: &[String],
) -> Result<HashSet<String>, HistoryError> {
    let mut merged = HashSet::new();
    if !store.writes_mongo() {
        return Ok(merged);
    }
    let dup: HashSet<&str> = duplicates.iter().map(String::as_str).collect();
    let copies: Vec<(String, &cashtag_core::Post)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Post(p) if dup.contains(r.key().as_str()) => Some((r.key(), p)),
            _ => None,
        })
        .collect();
    if copies.is_empty() {
        return Ok(merged);
    }
    let posts = store.db.collection::<bson::Document>(cashtag_core::collections::POSTS);
    let ids: Vec<&str> = copies.iter().map(|(k, _)| k.as_str()).collect();
    let failed = |e: mongodb::error::Error| HistoryError::Store(format!("MongoDB: merging tickers: {e}"));
    let mut cursor =
        posts.find(bson::doc! {"_id": {"$in": ids}}).projection(bson::doc! {"tickers": 1}).await.map_err(failed)?;
    let mut stored: std::collections::HashMap<String, Vec<Ticker>> = Default::default();
    while cursor.advance().await.map_err(failed)? {
        let d = cursor.deserialize_current().map_err(failed)?;
        let (Ok(id), Ok(tickers)) = (d.get_str("_id"), d.get_array("tickers")) else { continue };
        let tickers = tickers.iter().filter_map(|t| t.as_str().and_then(|t| Ticker::parse(t).ok())).collect();
        stored.insert(id.to_string(), tickers);
    }
    for (key, copy) in copies {
        let Some(have) = stored.get(&key) else { continue };
        let mut post = copy.clone();
        post.tickers = have.clone();
        if !add_tickers(&mut post, &copy.tickers) {
            continue;
        }
        scorer.score(&mut post);
        let tickers: Vec<&str> = post.tickers.iter().map(|t| t.as_str()).collect();
        let sentiment = bson::to_bson(&post.sentiment)
            .map_err(|e| HistoryError::Store(format!("merging tickers: the score of {key}: {e}")))?;
        posts
            .update_one(bson::doc! {"_id": &key}, bson::doc! {"$set": {"tickers": tickers, "sentiment": sentiment}})
            .await
            .map_err(failed)?;
        merged.insert(key);
    }
    Ok(merged)
}

/// Where bad lines are reported: stderr (the first few per file) and one event per file.
struct BadLines<'a> {
    bus: &'a Bus,
    file: String,
    count: u64,
    first: Option<String>,
}

impl<'a> BadLines<'a> {
    fn new(bus: &'a Bus, path: &Path) -> Self {
        BadLines { bus, file: path.display().to_string(), count: 0, first: None }
    }

    fn report(&mut self, line: u64, why: &str) {
        self.count += 1;
        let msg = format!("{}:{line}: {why}", self.file);
        if self.count <= SHOWN {
            eprintln!("{msg}");
        } else if self.count == SHOWN + 1 {
            eprintln!("{}: more bad lines; only the count is kept", self.file);
        }
        self.first.get_or_insert(msg);
    }

    fn finish(self) {
        if let Some(first) = self.first {
            self.bus.emit(catalog::backfill_rejected(&self.file, self.count, &first));
        }
    }
}

/// Where one import reads: the files, the progress bar, and the report.
struct Run<'a> {
    store: &'a mut Store,
    bar: cashtag_telemetry::progress::Bar,
    report: Report,
    /// Records waiting to be written, and the file (index in `report.files`) of each:
    /// batches span files (an archive of small files would otherwise cost a round trip
    /// per file), and what the store says is booked to each record's file.
    pending: Vec<Record>,
    owners: Vec<usize>,
    /// For posts: copies of a stored post (another ticker's folder) merge their tickers
    /// into it, scored again for them.
    merge: Option<PostFilter>,
    /// Index in `pending` of each pending post's key: a second copy in the same batch
    /// merges into the first right away ...
    pending_posts: std::collections::HashMap<String, usize>,
    /// ... and is booked once the store has said whether the post is new: (key, file,
    /// whether the copy brought a ticker the first lacked).
    folded: Vec<(String, usize, bool)>,
}

impl<'a> Run<'a> {
    fn new(store: &'a mut Store, bar: cashtag_telemetry::progress::Bar) -> Self {
        Run {
            store,
            bar,
            report: Report::default(),
            pending: Vec::with_capacity(BATCH),
            owners: Vec::with_capacity(BATCH),
            merge: None,
            pending_posts: Default::default(),
            folded: Vec::new(),
        }
    }

    /// Posts: a copy the store already has merges its tickers into the stored post.
    fn merging_posts(mut self) -> Self {
        self.merge = Some(PostFilter::without_dedup(vec![], true));
        self
    }

    /// Starts a file's entry; returns its index.
    fn file(&mut self, path: &Path) -> usize {
        self.report.files.push((path.display().to_string(), Counts::default()));
        self.report.files.len() - 1
    }

    async fn push(&mut self, file: usize, r: Record) -> Result<(), HistoryError> {
        if let (Some(scorer), Record::Post(copy)) = (&self.merge, &r) {
            let key = r.key();
            if let Some(&at) = self.pending_posts.get(&key) {
                let Record::Post(first) = &mut self.pending[at] else { unreachable!("posts are indexed") };
                let added = add_tickers(first, &copy.tickers);
                if added {
                    scorer.score(first);
                }
                self.folded.push((key, file, added));
                return Ok(());
            }
            self.pending_posts.insert(key, self.pending.len());
        }
        self.pending.push(r);
        self.owners.push(file);
        if self.pending.len() >= BATCH { self.flush().await } else { Ok(()) }
    }

    async fn flush(&mut self) -> Result<(), HistoryError> {
        let keys: Vec<String> = self.pending.iter().map(|r| r.key()).collect();
        let mut records = std::mem::take(&mut self.pending);
        self.pending_posts.clear();
        let written = if self.merge.is_some() {
            self.store.write(records.clone()).await?
        } else {
            self.store.write(std::mem::take(&mut records)).await?
        };
        let rejected: std::collections::HashMap<&str, &str> =
            written.rejected.iter().map(|(k, why)| (k.as_str(), why.as_str())).collect();
        let mut duplicates: std::collections::HashMap<&str, usize> = Default::default();
        for k in &written.duplicates {
            *duplicates.entry(k.as_str()).or_default() += 1;
        }
        // The duplicates that brought a ticker the stored post lacked.
        let merged = match &self.merge {
            Some(scorer) if !written.duplicates.is_empty() => {
                merge_into_stored(self.store, scorer, &records, &written.duplicates).await?
            }
            _ => Default::default(),
        };
        // A folded copy merged when its ticker reached the store: in a new post, or merged
        // into a stored one; else it is a duplicate.
        for (key, owner, added) in std::mem::take(&mut self.folded) {
            let c = &mut self.report.files[owner].1;
            let had = duplicates.contains_key(key.as_str());
            if rejected.contains_key(key.as_str()) {
                c.rejected += 1;
            } else if added && (!had || merged.contains(&key)) {
                c.merged += 1;
            } else {
                c.duplicates += 1;
            }
        }
        for (key, owner) in keys.iter().zip(std::mem::take(&mut self.owners)) {
            let (file, c) = &mut self.report.files[owner];
            if let Some(n) = duplicates.get_mut(key.as_str()).filter(|n| **n > 0) {
                *n -= 1;
                if merged.contains(key) {
                    c.merged += 1;
                } else {
                    c.duplicates += 1;
                }
            } else if let Some(why) = rejected.get(key.as_str()) {
                c.rejected += 1;
                eprintln!("{file}: refused by the store: {key}: {why}");
            } else {
                c.stored += 1;
            }
        }
        Ok(())
    }

    /// Books a file's parse counts.
    fn file_done(&mut self, file: usize, counts: Counts) {
        self.bar.add(1);
        self.report.files[file].1.add(&counts);
    }

    /// Writes what is left; the report with its totals.
    async fn finish(mut self) -> Result<Report, HistoryError> {
        self.flush().await?;
        self.bar.done();
        let mut total = Counts::default();
        for (_, c) in &self.report.files {
            total.add(c);
        }
        self.report.total = total;
        self.report.dry_run = self.store.is_dry();
        Ok(self.report)
    }
}

/// Opens a file's lines; a file that cannot be opened is reported and left out.
fn open(path: &Path, counts: &mut Counts, bad: &mut BadLines<'_>) -> Option<Lines> {
    match Lines::open(path) {
        Ok(l) => Some(l),
        Err(e) => {
            counts.rejected += 1;
            bad.report(0, &format!("cannot be read: {e}"));
            None
        }
    }
}

fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, HistoryError> {
    let files = walk(paths)?;
    if files.is_empty() {
        return Err(HistoryError::Input(format!(
            "no files under {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(files)
}

/// Options of a tweet import.
pub struct TweetImport {
    pub format: TweetFormat,
    pub watched: HashSet<Ticker>,
    /// Count the ticker named by a file's folder (`AAPL/2024-01-02`) for its posts.
    pub ticker_from_path: bool,
}

/// Parses one tweet line (public for the fuzz tests: any text gives a post or a reason).
pub fn parse_tweet(
    line: &str,
    format: TweetFormat,
    at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<cashtag_core::Post, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    // StockTwits messages have a `body`; v1.1 tweets a `user` object; v2 neither.
    let format = match format {
        TweetFormat::Auto if v.get("body").is_some() => TweetFormat::Stocktwits,
        TweetFormat::Auto if x::v1::looks_like(&v) => TweetFormat::XV1,
        TweetFormat::Auto => TweetFormat::XV2,
        f => f,
    };
    let r = match format {
        TweetFormat::XV1 => x::v1::parse_tweet(v, at, watched),
        TweetFormat::Stocktwits => stocktwits::parse_message(v, at, watched),
        _ => x::parse_archived(v, at, watched),
    };
    r.map_err(|e| e.0)
}

/// Imports tweet archives.
pub async fn tweets(
    store: &mut Store,
    bus: &Bus,
    filter: &mut PostFilter,
    opts: &TweetImport,
    paths: &[PathBuf],
    progress: &cashtag_telemetry::progress::Progress,
) -> Result<Report, HistoryError> {
    let files = files(paths)?;
    let mut run = Run::new(store, progress.task("import posts", files.len() as u64, "files")).merging_posts();
    for path in &files {
        let file = run.file(path);
        let path_ticker = opts
            .ticker_from_path
            .then(|| parent_name(path).and_then(|n| Ticker::parse(&n.to_ascii_uppercase().replace('-', ".")).ok()))
            .flatten()
            .filter(|t| opts.watched.contains(t));
        let mut counts = Counts::default();
        let mut bad = BadLines::new(bus, path);
        let at = bus.clock().now();
        let Some(lines) = open(path, &mut counts, &mut bad) else {
            bad.finish();
            run.file_done(file, counts);
            continue;
        };
        for line in lines {
            match line {
                Ok(Line::Text(_, s)) if s.trim().is_empty() => {}
                Ok(Line::Text(n, s)) => {
                    counts.read += 1;
                    match parse_tweet(&s, opts.format, at, &opts.watched) {
                        Ok(mut p) => {
                            if let Some(t) = &path_ticker
                                && !p.tickers.contains(t)
                            {
                                p.tickers.push(t.clone());
                            }
                            if p.tickers.is_empty() {
                                counts.skip("not on the watchlist");
                                continue;
                            }
                            match filter.decide(Record::Post(p)) {
                                Ok(r) => run.push(file, r).await?,
                                Err(why) => counts.skip(why.reason()),
                            }
                        }
                        Err(e) => {
                            counts.rejected += 1;
                            bad.report(n, &e);
                        }
                    }
                }
                Ok(Line::Invalid(n, why)) => {
                    counts.read += 1;
                    counts.rejected += 1;
                    bad.report(n, &why);
                }
                Err((n, why)) => {
                    counts.rejected += 1;
                    bad.report(n, &why);
                }
            }
        }
        bad.finish();
        run.file_done(file, counts);
    }
    run.finish().await
}

/// Imports price files; `timeframe` overrides what a CSV header says.
pub async fn prices(
    store: &mut Store,
    bus: &Bus,
    format: PriceFormat,
    timeframe: Option<Timeframe>,
    paths: &[PathBuf],
    progress: &cashtag_telemetry::progress::Progress,
) -> Result<Report, HistoryError> {
    let files = files(paths)?;
    let mut run = Run::new(store, progress.task("import prices", files.len() as u64, "files"));
    for path in &files {
        let file = run.file(path);
        let mut counts = Counts::default();
        let mut bad = BadLines::new(bus, path);
        let at = bus.clock().now();
        let ticker = ticker_from_stem(&stem(path));
        let mut columns: Option<Columns> = None;
        let mut format = format;
        let Some(lines) = open(path, &mut counts, &mut bad) else {
            bad.finish();
            run.file_done(file, counts);
            continue;
        };
        for line in lines {
            let (n, s) = match line {
                Ok(Line::Text(_, s)) if s.trim().is_empty() => continue,
                Ok(Line::Text(n, s)) => (n, s),
                Ok(Line::Invalid(n, why)) | Err((n, why)) => {
                    counts.rejected += 1;
                    bad.report(n, &why);
                    continue;
                }
            };
            if format == PriceFormat::Auto {
                format = if s.trim_start().starts_with('{') { PriceFormat::AlpacaBars } else { PriceFormat::OhlcvCsv };
            }
            match format {
                PriceFormat::AlpacaBars => {
                    let kind = HistoryKind::Bars { timeframe: timeframe.unwrap_or(Timeframe::Minute), adjusted: false };
                    match parse_history_page(&s, at, kind) {
                        Ok(page) => {
                            counts.read += (page.records.len() + page.errors.len()) as u64;
                            for e in &page.errors {
                                counts.rejected += 1;
                                bad.report(n, e);
                            }
                            for r in page.records {
                                run.push(file, r).await?;
                            }
                        }
                        Err(e) => {
                            counts.read += 1;
                            counts.rejected += 1;
                            bad.report(n, &e.0);
                        }
                    }
                }
                _ => match &columns {
                    None => match Columns::from_header(&s, timeframe) {
                        Ok(c) => columns = Some(c),
                        Err(e) => {
                            counts.rejected += 1;
                            bad.report(n, &e);
                            break;
                        }
                    },
                    Some(cols) => {
                        counts.read += 1;
                        let t = match &ticker {
                            Ok(t) => t,
                            Err(e) => {
                                counts.rejected += 1;
                                bad.report(n, e);
                                break;
                            }
                        };
                        match parse_row(&s, cols, t, at) {
                            Ok(Some(r)) => run.push(file, r).await?,
                            Ok(None) => counts.skip("no price (a null row)"),
                            Err(e) => {
                                counts.rejected += 1;
                                bad.report(n, &e);
                            }
                        }
                    }
                },
            }
        }
        bad.finish();
        run.file_done(file, counts);
    }
    run.finish().await
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn long_paths_are_shortened_by_characters_not_bytes() {
        let path = format!("/data/{}/2024年1月2日.json", "株価データ".repeat(12));
        let short = shorten(&path);
        assert!(short.starts_with('…') && path.ends_with(&short[3..]));
        assert_eq!(short.chars().count(), 47);
        assert_eq!(shorten("/data/AAPL.csv"), "/data/AAPL.csv");
    }
}
