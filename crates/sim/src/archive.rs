//! A generated research archive of daily history, laid out as published datasets are:
//! `tweets/<TICKER>/<YYYY-MM-DD>` (no extension; Twitter v1.1 tweet objects, one per
//! line) and `prices/<TICKER>.csv` (Yahoo Finance's `Date,Open,High,Low,Close,Adj Close,
//! Volume`, with a `null` row now and then, and a dividend so that the adjusted close
//! differs from the close). The day's tweets carry a latent tone that leads the next
//! session's return (`effect`), so a study on the archive has something to find.
//! `sessions.csv` lists the sessions and their closes (for independent checks).
//!
//! Everything is a pure function of the spec: the same spec writes the same bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use cashtag_calendar::{Calendar, Session};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::rng::Key;

#[derive(Debug, Clone)]
pub struct ArchiveSpec {
    pub seed: u64,
    /// Tickers (`BRK.B` is written as `BRK-B.csv`, as Yahoo names it).
    pub tickers: Vec<String>,
    /// The market proxy: prices only.
    pub market: Option<String>,
    /// New York session dates, inclusive.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Mean tweets per ticker and day.
    pub tweets_per_day: f64,
    /// How much a day's tone moves the next session's return (0 = no effect).
    pub effect: f64,
    /// Real data's sparseness and mess (`None`: every ticker alike, all the window).
    pub sparse: Option<Sparse>,
}

/// How sparse and messy a research archive is, as real ones are.
#[derive(Debug, Clone)]
pub struct Sparse {
    /// Share of the tickers with only 1–20 tweets in the whole window.
    pub rare: f64,
    /// Share of the tickers listed in mid-window (between 10 % and 70 % of it): no price and
    /// no tweet before their listing.
    pub listed_late: f64,
    /// Share of the tweets that mention a second ticker and sit in both tickers' folders.
    pub copies: f64,
    /// Share of the tweets in another language (Spanish).
    pub other_language: f64,
}

impl ArchiveSpec {
    /// The archive of the history test and its reference (`crates/history/check`): two
    /// years of 30 tickers (one of them `BRK.B`) and SPY.
    pub fn history_test() -> Self {
        let mut tickers: Vec<String> = (b'A'..=b'Z').map(|c| format!("H{}", c as char)).collect();
        tickers.extend(["JA", "JB", "JC"].map(String::from));
        tickers.push("BRK.B".into());
        ArchiveSpec {
            seed: 20_261_201,
            tickers,
            market: Some("SPY".into()),
            from: NaiveDate::from_ymd_opt(2024, 11, 1).expect("valid"),
            to: NaiveDate::from_ymd_opt(2026, 10, 30).expect("valid"),
            tweets_per_day: 3.0,
            effect: 0.6,
            sparse: None,
        }
    }

    /// A research archive that looks like a real one: `tickers` tickers over two years, a
    /// quarter of them with 1–20 tweets, a fifth listed in mid-window, no market proxy,
    /// tweets copied across two tickers' folders, retweets, other languages. The others
    /// have 1–8 tweets a day. `effect` 0 plants nothing.
    pub fn sparse_research(seed: u64, tickers: usize, effect: f64) -> Self {
        ArchiveSpec {
            seed,
            // SAA, SAB, …: symbols are letters only.
            tickers: (0..tickers.min(676))
                .map(|i| format!("S{}{}", (b'A' + (i / 26) as u8) as char, (b'A' + (i % 26) as u8) as char))
                .collect(),
            market: None,
            from: NaiveDate::from_ymd_opt(2024, 11, 1).expect("valid"),
            to: NaiveDate::from_ymd_opt(2026, 10, 30).expect("valid"),
            tweets_per_day: 3.0,
            effect,
            sparse: Some(Sparse { rare: 0.25, listed_late: 0.2, copies: 0.05, other_language: 0.05 }),
        }
    }
}

impl ArchiveSpec {
    /// The sparse archive of the command-line test (`services/analysis/tests/history.rs`)
    /// and its reference (`crates/history/check/sparse_reference.json`): 24 tickers, two
    /// years, a planted lead, 2/3 to 16/3 tweets a day for the tickers that are not rare.
    pub fn sparse_test() -> Self {
        ArchiveSpec { tweets_per_day: 2.0, ..ArchiveSpec::sparse_research(20_261_207, 24, 0.6) }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    pub tweets: u64,
    pub bars: u64,
    pub sessions: u64,
    /// Tweets written into a second ticker's folder too (counted once in `tweets`).
    pub copies: u64,
    pub other_language: u64,
    pub retweets: u64,
}

const UP: [&str; 6] = [
    "great quarter, love this stock",
    "strong buy, excellent growth ahead",
    "beat estimates, amazing results",
    "bullish, this is a winner",
    "happy with the upgrade, good news",
    "solid gains and a fantastic outlook",
];
const DOWN: [&str; 6] = [
    "terrible guidance, selling everything",
    "weak numbers, awful quarter",
    "bearish, this looks bad",
    "missed badly, disappointing and sad",
    "downgrade hurts, horrible news",
    "losses again, worst management ever",
];
const FLAT: [&str; 4] =
    ["watching the chart today", "anyone holding into the close", "volume looks normal", "no position yet"];
const SPANISH: [&str; 3] = ["excelente trimestre, me encanta", "malas noticias, vendo todo", "mirando el gráfico hoy"];

fn file_symbol(t: &str) -> String {
    t.replace('.', "-")
}

/// One daily bar: the close and the adjusted close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub close: f64,
    pub adj_close: f64,
    pub volume: u64,
}

/// One generated tweet and the folders it sits in.
#[derive(Debug, Clone)]
pub struct Tweet {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub text: String,
    pub lang: &'static str,
    pub user: u64,
    /// A retweet of another (its `text` starts with `RT @…:`).
    pub retweet: bool,
    /// The ticker folders it is written into (one, or two for a copy).
    pub folders: Vec<String>,
    retweet_count: usize,
    favorite_count: usize,
}

impl Tweet {
    /// The Twitter v1.1 tweet object, as one line of a day file.
    pub fn json(&self) -> String {
        let mut tweet = serde_json::json!({
            "created_at": self.at.format("%a %b %d %H:%M:%S +0000 %Y").to_string(),
            "id": self.id,
            "id_str": self.id.to_string(),
            "text": self.text,
            "user": {"id": self.user, "id_str": self.user.to_string(), "screen_name": format!("u{}", self.user), "followers_count": 10 * self.user},
            "entities": {"hashtags": [], "symbols": [], "urls": []},
            "lang": self.lang,
            "retweet_count": self.retweet_count,
            "favorite_count": self.favorite_count,
            "source": "<a href=\"https://example.com\">generator</a>",
        });
        if self.retweet {
            let original = self.text.split_once(": ").map_or(self.text.as_str(), |(_, t)| t);
            tweet["retweeted_status"] = serde_json::json!({"id_str": (self.id - 1).to_string(), "text": original, "user": {"screen_name": format!("u{}", self.user)}});
        }
        tweet.to_string()
    }
}

/// A generated archive in memory: what [`write`] lays out as files.
#[derive(Debug, Clone)]
pub struct Archive {
    pub sessions: Vec<Session>,
    /// Every ticker's (and the proxy's) bars by session: `None` where the vendor has no
    /// data (a `null` row) or before a listing (no row).
    pub prices: Vec<(String, Vec<Option<Bar>>)>,
    /// The first session with a row of each ticker (0 unless listed in mid-window).
    pub listed: BTreeMap<String, usize>,
    pub tweets: Vec<Tweet>,
}

/// Generates the archive of `spec` (a pure function of it).
pub fn generate(spec: &ArchiveSpec) -> Archive {
    let cal = Calendar::nyse();
    let sessions = cal.sessions(spec.from, spec.to);
    let key = Key::new(spec.seed);
    let n = sessions.len();
    // The market's daily returns, shared by every ticker (beta 1).
    let market: Vec<f64> = (0..n).map(|i| 0.0003 + 0.009 * key.with_str("market").with(i as u64).normal()).collect();
    let mut names: Vec<(String, bool)> = spec.tickers.iter().map(|t| (t.clone(), true)).collect();
    if let Some(m) = &spec.market {
        names.push((m.clone(), false));
    }
    // Who is listed when, and who is rare, before any tweet: a copy goes only to a ticker
    // listed by then that is not rare (a rare ticker keeps its 1–20 tweets).
    let mut listed_at = BTreeMap::new();
    let mut rare_tickers = std::collections::BTreeSet::new();
    for (ticker, has_tweets) in &names {
        let k = key.with_str(ticker);
        let sparse = spec.sparse.as_ref().filter(|_| *has_tweets);
        let listed = match sparse {
            Some(sp) if k.with_str("listed").uniform() < sp.listed_late => {
                n / 10 + k.with_str("listed-at").pick(n * 6 / 10)
            }
            _ => 0,
        };
        listed_at.insert(ticker.clone(), listed);
        if sparse.is_some_and(|sp| k.with_str("rare").uniform() < sp.rare) {
            rare_tickers.insert(ticker.clone());
        }
    }
    let copy_targets: Vec<&String> = spec.tickers.iter().filter(|t| !rare_tickers.contains(*t)).collect();
    let mut archive = Archive { sessions: sessions.clone(), prices: vec![], listed: listed_at, tweets: vec![] };
    let mut id = 1_000_000_000_000_000_000u64;
    for (ti, (ticker, has_tweets)) in names.iter().enumerate() {
        let k = key.with_str(ticker);
        let sparse = spec.sparse.as_ref().filter(|_| *has_tweets);
        let listed = archive.listed[ticker];
        // Tone per session: what the day's tweets lean to, and what the next return follows.
        let tone: Vec<f64> = (0..n).map(|i| k.with_str("tone").with(i as u64).normal()).collect();
        let mut adj = 20.0 + 80.0 * k.with_str("p0").uniform();
        let ex_div = n / 2 + ti % 50;
        let mut bars = vec![None; n];
        for (i, bar) in bars.iter_mut().enumerate() {
            if i > 0 {
                let lead = if *has_tweets { spec.effect * tone[i - 1] } else { 0.0 };
                let r = market[i] + lead * 0.01 + 0.012 * k.with_str("r").with(i as u64).normal();
                adj *= r.exp();
            }
            // A day the vendor has no data for.
            if i < listed || (i > 5 && k.with_str("null").with(i as u64).uniform() < 0.004) {
                continue;
            }
            // Before the ex-dividend date the close is above the adjusted close.
            let close = if i < ex_div { adj / 0.985 } else { adj };
            let volume = 1_000_000 + (k.with_str("v").with(i as u64).uniform() * 500_000.0) as u64;
            *bar = Some(Bar { close, adj_close: adj, volume });
        }
        archive.prices.push((ticker.clone(), bars));
        if !has_tweets {
            continue;
        }
        // A rare ticker: its few tweets on sessions drawn at random after its listing.
        let rare: Option<Vec<usize>> = rare_tickers.contains(ticker).then(|| {
            let count = 1 + k.with_str("rare-n").pick(20);
            let mut days: Vec<usize> =
                (0..count).map(|j| listed + k.with_str("rare-d").with(j as u64).pick(n - listed)).collect();
            days.sort_unstable();
            days
        });
        let rate = match sparse {
            Some(_) => spec.tweets_per_day * (1.0 / 3.0 + (8.0 / 3.0 - 1.0 / 3.0) * k.with_str("rate").uniform()),
            None => spec.tweets_per_day,
        };
        for (i, s) in sessions.iter().enumerate().skip(listed) {
            let window_start = if i == 0 { s.close - TimeDelta::days(1) } else { sessions[i - 1].close };
            let span = (s.close - window_start).num_seconds().max(1) as f64;
            let count = match &rare {
                Some(days) => days.iter().filter(|d| **d == i).count() as u32,
                None => k.with_str("n").with(i as u64).poisson(rate),
            };
            let lean = 1.0 / (1.0 + (-1.5 * tone[i]).exp());
            for j in 0..count {
                let pk = k.with(i as u64).with(j as u64);
                let at = window_start + TimeDelta::seconds((pk.with(1).uniform() * span) as i64);
                let u = pk.with(2).uniform();
                let spanish = sparse.is_some_and(|sp| pk.with(11).uniform() < sp.other_language);
                let text = if spanish {
                    SPANISH[pk.with(3).pick(SPANISH.len())].to_string()
                } else if u < 0.2 {
                    FLAT[pk.with(3).pick(FLAT.len())].to_string()
                } else if pk.with(4).uniform() < lean {
                    UP[pk.with(3).pick(UP.len())].to_string()
                } else {
                    DOWN[pk.with(3).pick(DOWN.len())].to_string()
                };
                // A copy: it names a second ticker (listed by then) and sits in its folder too.
                let other =
                    sparse.filter(|sp| pk.with(12).uniform() < sp.copies && !copy_targets.is_empty()).and_then(|_| {
                        let o = copy_targets[pk.with(13).pick(copy_targets.len())];
                        (o != ticker && archive.listed[o] <= i).then(|| o.clone())
                    });
                let mut folders = vec![ticker.clone()];
                // Most tweets name the ticker as a cashtag; some only sit in its folder.
                let text = match &other {
                    Some(o) => {
                        folders.push(o.clone());
                        format!("${ticker} ${o} {text}")
                    }
                    None if pk.with(5).uniform() < 0.9 => format!("${ticker} {text}"),
                    None => text,
                };
                id += 1 + pk.with(6).pick(1000) as u64;
                let user = 1000 + pk.with(7).pick(400) as u64;
                let retweet = pk.with(8).uniform() < 0.03;
                archive.tweets.push(Tweet {
                    id,
                    at,
                    text: if retweet { format!("RT @u{user}: {text}") } else { text },
                    lang: if spanish { "es" } else { "en" },
                    user,
                    retweet,
                    folders,
                    retweet_count: pk.with(9).pick(20),
                    favorite_count: pk.with(10).pick(50),
                });
            }
        }
    }
    archive
}

/// Writes the archive of `spec` under `dir`: `prices/`, `tweets/` and `sessions.csv`.
pub fn write(dir: &Path, spec: &ArchiveSpec) -> std::io::Result<ArchiveStats> {
    write_archive(dir, &generate(spec))
}

/// Writes a generated archive under `dir`.
pub fn write_archive(dir: &Path, archive: &Archive) -> std::io::Result<ArchiveStats> {
    let mut stats = ArchiveStats { sessions: archive.sessions.len() as u64, ..Default::default() };
    std::fs::create_dir_all(dir.join("prices"))?;
    let mut sess = std::fs::File::create(dir.join("sessions.csv"))?;
    writeln!(sess, "date,close")?;
    for s in &archive.sessions {
        writeln!(sess, "{},{}", s.date, s.close.format("%Y-%m-%dT%H:%M:%SZ"))?;
    }
    for (ticker, bars) in &archive.prices {
        let mut csv = std::fs::File::create(dir.join("prices").join(format!("{}.csv", file_symbol(ticker))))?;
        writeln!(csv, "Date,Open,High,Low,Close,Adj Close,Volume")?;
        let listed = archive.listed.get(ticker).copied().unwrap_or(0);
        for (s, bar) in archive.sessions.iter().zip(bars).skip(listed) {
            let Some(b) = bar else {
                writeln!(csv, "{},null,null,null,null,null,null", s.date)?;
                continue;
            };
            let (close, adj) = (b.close, b.adj_close);
            let (o, h, l) = (close * 0.998, close * 1.006, close * 0.992);
            writeln!(csv, "{},{o:.4},{h:.4},{l:.4},{close:.4},{adj:.6},{}", s.date, b.volume)?;
            stats.bars += 1;
        }
    }
    let mut files: BTreeMap<(String, NaiveDate), Vec<String>> = BTreeMap::new();
    for t in &archive.tweets {
        let date = t.at.with_timezone(&chrono_tz::America::New_York).date_naive();
        let line = t.json();
        for f in &t.folders {
            files.entry((f.clone(), date)).or_default().push(line.clone());
        }
        stats.tweets += 1;
        stats.copies += u64::from(t.folders.len() > 1);
        stats.other_language += u64::from(t.lang != "en");
        stats.retweets += u64::from(t.retweet);
    }
    for ((ticker, date), lines) in files {
        let tdir = dir.join("tweets").join(&ticker);
        std::fs::create_dir_all(&tdir)?;
        let mut f = std::fs::File::create(tdir.join(date.to_string()))?;
        for l in lines {
            writeln!(f, "{l}")?;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_spec_writes_the_same_archive() {
        let spec = ArchiveSpec {
            seed: 7,
            tickers: vec!["HA".into(), "BRK.B".into()],
            market: Some("SPY".into()),
            from: "2025-01-02".parse().unwrap(),
            to: "2025-01-31".parse().unwrap(),
            tweets_per_day: 3.0,
            effect: 1.0,
            sparse: None,
        };
        let (a, b) = (
            std::env::temp_dir().join(crate::tests_dir("arch-a")),
            std::env::temp_dir().join(crate::tests_dir("arch-b")),
        );
        let sa = write(&a, &spec).unwrap();
        let sb = write(&b, &spec).unwrap();
        assert_eq!(sa, sb);
        assert_eq!(sa.sessions, 20);
        assert!(sa.tweets > 60, "{sa:?}");
        let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read(&a, "prices/BRK-B.csv"), read(&b, "prices/BRK-B.csv"));
        assert!(read(&a, "prices/SPY.csv").starts_with("Date,Open,High,Low,Close,Adj Close,Volume\n"));
        assert!(a.join("tweets/HA").read_dir().unwrap().count() > 15);
        assert!(!a.join("tweets/SPY").exists());
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }
}
