//! A generated research archive of daily history, laid out as published datasets are:
//! `tweets/<TICKER>/<YYYY-MM-DD>` (no extension; Twitter v1.1 tweet objects, one per
//! line) and `prices/<TICKER>.csv` (Yahoo Finance's `Date,Open,High,Low,Close,Adj Close,
//! Volume`, with a `null` row now and then, and a dividend so that the adjusted close
//! differs from the close). The day's tweets carry a latent tone that leads the next
//! session's return (`effect`), so a study on the archive has something to find.
//! `sessions.csv` lists the sessions and their closes (for independent checks).
//!
//! Everything is a pure function of the spec: the same spec writes the same bytes.

use std::io::Write;
use std::path::Path;

use cashtag_calendar::Calendar;
use chrono::{NaiveDate, TimeDelta};

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
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    pub tweets: u64,
    pub bars: u64,
    pub sessions: u64,
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

fn file_symbol(t: &str) -> String {
    t.replace('.', "-")
}

/// Writes the archive under `dir`.
pub fn write(dir: &Path, spec: &ArchiveSpec) -> std::io::Result<ArchiveStats> {
    let cal = Calendar::nyse();
    let sessions = cal.sessions(spec.from, spec.to);
    let key = Key::new(spec.seed);
    let mut stats = ArchiveStats { sessions: sessions.len() as u64, ..Default::default() };
    std::fs::create_dir_all(dir.join("prices"))?;
    let mut sess = std::fs::File::create(dir.join("sessions.csv"))?;
    writeln!(sess, "date,close")?;
    for s in &sessions {
        writeln!(sess, "{},{}", s.date, s.close.format("%Y-%m-%dT%H:%M:%SZ"))?;
    }
    // The market's daily returns, shared by every ticker (beta 1).
    let market: Vec<f64> =
        (0..sessions.len()).map(|i| 0.0003 + 0.009 * key.with_str("market").with(i as u64).normal()).collect();
    let mut names: Vec<(String, bool)> = spec.tickers.iter().map(|t| (t.clone(), true)).collect();
    if let Some(m) = &spec.market {
        names.push((m.clone(), false));
    }
    let mut id = 1_000_000_000_000_000_000u64;
    for (ti, (ticker, has_tweets)) in names.iter().enumerate() {
        let k = key.with_str(ticker);
        // Tone per session: what the day's tweets lean to, and what the next return follows.
        let tone: Vec<f64> = (0..sessions.len()).map(|i| k.with_str("tone").with(i as u64).normal()).collect();
        let mut adj = 20.0 + 80.0 * k.with_str("p0").uniform();
        let ex_div = sessions.len() / 2 + ti % 50;
        let mut csv = std::fs::File::create(dir.join("prices").join(format!("{}.csv", file_symbol(ticker))))?;
        writeln!(csv, "Date,Open,High,Low,Close,Adj Close,Volume")?;
        for (i, s) in sessions.iter().enumerate() {
            if i > 0 {
                let lead = if *has_tweets { spec.effect * tone[i - 1] } else { 0.0 };
                let r = market[i] + lead * 0.01 + 0.012 * k.with_str("r").with(i as u64).normal();
                adj *= r.exp();
            }
            // A day the vendor has no data for.
            if i > 5 && k.with_str("null").with(i as u64).uniform() < 0.004 {
                writeln!(csv, "{},null,null,null,null,null,null", s.date)?;
                continue;
            }
            // Before the ex-dividend date the close is above the adjusted close.
            let close = if i < ex_div { adj / 0.985 } else { adj };
            let (o, h, l) = (close * 0.998, close * 1.006, close * 0.992);
            let vol = 1_000_000 + (k.with_str("v").with(i as u64).uniform() * 500_000.0) as u64;
            writeln!(csv, "{},{o:.4},{h:.4},{l:.4},{close:.4},{adj:.6},{vol}", s.date)?;
            stats.bars += 1;
        }
        if !has_tweets {
            continue;
        }
        let tdir = dir.join("tweets").join(ticker);
        std::fs::create_dir_all(&tdir)?;
        let mut files: std::collections::BTreeMap<NaiveDate, Vec<String>> = Default::default();
        for (i, s) in sessions.iter().enumerate() {
            let window_start = if i == 0 { s.close - TimeDelta::days(1) } else { sessions[i - 1].close };
            let span = (s.close - window_start).num_seconds().max(1) as f64;
            let n = k.with_str("n").with(i as u64).poisson(spec.tweets_per_day);
            let lean = 1.0 / (1.0 + (-1.5 * tone[i]).exp());
            for j in 0..n {
                let pk = k.with(i as u64).with(j as u64);
                let at = window_start + TimeDelta::seconds((pk.with(1).uniform() * span) as i64);
                let u = pk.with(2).uniform();
                let text = if u < 0.2 {
                    FLAT[pk.with(3).pick(FLAT.len())].to_string()
                } else if pk.with(4).uniform() < lean {
                    UP[pk.with(3).pick(UP.len())].to_string()
                } else {
                    DOWN[pk.with(3).pick(DOWN.len())].to_string()
                };
                // Most tweets name the ticker as a cashtag; some only sit in its folder.
                let text = if pk.with(5).uniform() < 0.9 { format!("${ticker} {text}") } else { text };
                id += 1 + pk.with(6).pick(1000) as u64;
                let user = 1000 + pk.with(7).pick(400);
                let retweet = pk.with(8).uniform() < 0.03;
                let mut tweet = serde_json::json!({
                    "created_at": at.format("%a %b %d %H:%M:%S +0000 %Y").to_string(),
                    "id": id,
                    "id_str": id.to_string(),
                    "text": if retweet { format!("RT @u{user}: {text}") } else { text.clone() },
                    "user": {"id": user, "id_str": user.to_string(), "screen_name": format!("u{user}"), "followers_count": 10 * user},
                    "entities": {"hashtags": [], "symbols": [], "urls": []},
                    "lang": "en",
                    "retweet_count": pk.with(9).pick(20),
                    "favorite_count": pk.with(10).pick(50),
                    "source": "<a href=\"https://example.com\">generator</a>",
                });
                if retweet {
                    tweet["retweeted_status"] = serde_json::json!({"id_str": (id - 1).to_string(), "text": text, "user": {"screen_name": format!("u{user}")}});
                }
                let date = at.with_timezone(&chrono_tz::America::New_York).date_naive();
                files.entry(date).or_default().push(tweet.to_string());
                stats.tweets += 1;
            }
        }
        for (date, lines) in files {
            let mut f = std::fs::File::create(tdir.join(date.to_string()))?;
            for l in lines {
                writeln!(f, "{l}")?;
            }
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
