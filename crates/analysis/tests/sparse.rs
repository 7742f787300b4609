//! The study on sparse, real-looking daily data: tickers with a handful of posts, listings in
//! mid-window, a missing market proxy. A per-ticker verdict needs enough posts and
//! observations; a day without posts is missing, not a neutral 0; the verdict rests on the
//! Benjamini–Hochberg adjusted q and says how many tickers were tested; a fallback is a
//! warning.

use std::collections::HashMap;

use cashtag_analysis_core::report::{charted, html, markdown, verdict};
use cashtag_analysis_core::series::{Measure, Rows, TickerSeries, build};
use cashtag_analysis_core::study::{StudyConfig, StudyResult, run};
use cashtag_sim::archive::{Archive, ArchiveSpec, generate};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

const DAYS: usize = 500;

/// Deterministic noise in (−1, 1).
fn noise(seed: u64, i: usize) -> f64 {
    let mut x = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// A daily series: returns from day `listed` on, posts on the days `post_days` (sentiment
/// missing on the others).
fn daily(ticker: &str, seed: u64, listed: usize, post_days: &[usize], crash_after: Option<usize>) -> TickerSeries {
    let t0: DateTime<Utc> = "2024-01-02T21:00:00Z".parse().unwrap();
    let mut s = TickerSeries::new(ticker);
    let mut price = 100.0f64;
    for d in 0..DAYS {
        s.starts.push(t0 + TimeDelta::days(d as i64));
        s.session.push(d);
        let posted = post_days.contains(&d);
        s.posts.push(if posted { 1.0 } else { 0.0 });
        s.sentiment.push(if posted { 0.5 + 0.4 * noise(seed + 100, d) } else { f64::NAN });
        if d < listed {
            s.close.push(f64::NAN);
            s.ret.push(f64::NAN);
            continue;
        }
        let r = if crash_after.is_some_and(|c| d == c + 1) { -0.4 } else { 0.02 * noise(seed, d) };
        let before = price;
        price *= r.exp();
        s.close.push(price);
        s.ret.push(if d == listed { f64::NAN } else { (price / before).ln() });
    }
    s
}

#[test]
fn one_post_before_a_crash_is_not_a_discovery_and_missing_is_not_zero() {
    let every_third: Vec<usize> = (0..DAYS).step_by(3).collect();
    let series = vec![
        // One post in two years, the day before a −33 % day: the false discovery of issue 36.
        daily("ONE", 1, 0, &[300], Some(300)),
        // Eleven posts; listed in mid-window: no observation before its first price.
        daily("FEW", 2, 180, &[190, 200, 210, 220, 230, 240, 250, 260, 270, 280, 290], None),
        // No price at all.
        daily("NOPX", 3, DAYS, &every_third, None),
        // Enough of both: tested.
        daily("AAA", 4, 0, &every_third, None),
        daily("BBB", 5, 250, &every_third, None),
    ];
    let config = StudyConfig { market: Some("SPY".into()), ..StudyConfig::default() };
    let r = run(&series, &config);
    let by = |t: &str| r.tickers.iter().find(|x| x.ticker == t).unwrap();

    assert!(by("ONE").excluded.as_deref().is_some_and(|w| w.contains("1 posts")), "{:?}", by("ONE").excluded);
    assert!(by("ONE").primary_p.is_none() && !by("ONE").significant, "an untested ticker has no verdict");
    assert!(by("FEW").excluded.is_some());
    assert_eq!(by("FEW").intervals, DAYS - 180 - 1, "returns only from the listing on");
    assert_eq!(by("NOPX").intervals, 0, "no price, no interval");
    assert!(by("NOPX").excluded.as_deref().is_some_and(|w| w.contains("observations")), "{:?}", by("NOPX").excluded);
    // Missing stays missing: with sentiment on every third day only, a Granger row needs
    // four lagged sentiments present, which never happens — so AAA has no observations
    // (zero-filled, it had DAYS − 5).
    assert_eq!(by("AAA").observations, 0);
    assert_eq!(r.tested, 0);
    assert!(verdict(&r).starts_with("Not computable"), "{}", verdict(&r));

    // Daily posts for the two tested ones: observations are the days with a return and
    // every lag present, after each listing.
    let all_days: Vec<usize> = (0..DAYS).collect();
    let series = vec![
        daily("ONE", 1, 0, &[300], Some(300)),
        daily("AAA", 4, 0, &all_days, None),
        daily("BBB", 5, 250, &all_days, None),
    ];
    let r = run(&series, &config);
    let by = |t: &str| r.tickers.iter().find(|x| x.ticker == t).unwrap();
    assert_eq!(r.tested, 2);
    assert_eq!(by("AAA").observations, DAYS - 1 - 4, "no return on day 0, four lags");
    assert_eq!(by("BBB").observations, DAYS - 251 - 4, "from its listing on");
    assert!(!r.significant.contains(&"ONE".to_string()));
    let v = verdict(&r);
    assert!(v.contains(" 2 tickers tested") && v.contains("Benjamini–Hochberg adjusted q"), "{v}");
    assert!(v.contains("1 of the 3 tickers were not tested"), "{v}");
    // The missing proxy is said first, and the excluded are listed with the reason.
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("SPY has no data"));
    let md = markdown(&r, "t");
    let warning_at = md.find("**Warning:** The market proxy SPY").expect("the warning in the report");
    assert!(warning_at < md.find("| ticker |").unwrap(), "before the table");
    assert!(md.contains("## Not tested") && md.contains("| ONE | 1 posts (at least 30 needed) |"), "{md}");

    // The charts: the tickers with the most evidence first, and says so; daily data on a
    // two-year axis has dates with the year and no clock time.
    let charted = charted(&r, 6);
    assert_eq!(charted.len(), 3);
    assert_eq!(charted[2], "ONE", "the untested last");
    let html = html(&r, &series, "t");
    assert!(html.contains(&format!(
        "with the most evidence (the lowest Granger p of those tested, then the most posts): {}",
        charted.join(", ")
    )));
    assert!(html.contains(">2024-01-02<"), "dates with their year");
    assert!(!html.contains("16:00") && !html.contains("21:00"), "no clock time on daily data");
    assert!(html.contains("<b>Warning:</b> The market proxy SPY"));
}

/// The minute rows the import and the roll-up make of a generated archive (the command
/// path is checked against pandas in `services/analysis/tests/history.rs`): retweets and
/// other languages left out, a tweet once for each ticker whose folder holds it, its VADER
/// compound summed per minute; each session's adjusted close at the session's last minute.
fn rows_of(archive: &Archive, scorer: &cashtag_sentiment::Scorer) -> Rows {
    let mut rows = Rows::new();
    let mut vader: HashMap<&str, f64> = HashMap::new();
    for t in archive.tweets.iter().filter(|t| !t.retweet && t.lang == "en") {
        let v = *vader.entry(t.text.as_str()).or_insert_with(|| scorer.vader(&t.text).compound);
        let minute = t.at.duration_trunc(TimeDelta::minutes(1)).unwrap();
        for f in &t.folders {
            let row = rows.entry(f.clone()).or_default().entry(minute).or_default();
            row.posts += 1.0;
            row.vader_sum += v;
        }
    }
    for (ticker, bars) in &archive.prices {
        for (s, bar) in archive.sessions.iter().zip(bars) {
            if let Some(b) = bar {
                rows.entry(ticker.clone()).or_default().entry(s.close - TimeDelta::minutes(1)).or_default().close =
                    Some(b.adj_close);
            }
        }
    }
    rows
}

/// The daily study (the defaults of `cashtag-analysis study --interval 1d --measure
/// vader_mean`) of a generated archive.
fn study(spec: &ArchiveSpec, scorer: &cashtag_sentiment::Scorer) -> StudyResult {
    let archive = generate(spec);
    let rows = rows_of(&archive, scorer);
    let series: Vec<TickerSeries> = spec
        .tickers
        .iter()
        .map(|t| {
            let empty = Default::default();
            build(t, rows.get(t).unwrap_or(&empty), &archive.sessions, TimeDelta::days(1), Measure::VaderMean, false)
        })
        .collect();
    run(&series, &StudyConfig::default())
}

#[test]
fn on_sparse_archives_without_an_effect_the_study_rarely_says_yes_and_with_one_it_finds_it() {
    let scorer = cashtag_sentiment::Scorer::new();
    let mut yes = 0;
    let mut nominal = 0.0;
    // CASHTAG_NULL_ARCHIVES=200 for a tighter figure (about 8 s per 20 in debug).
    let archives: u64 = std::env::var("CASHTAG_NULL_ARCHIVES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut inconclusive = 0;
    for seed in 0..archives {
        let r = study(&ArchiveSpec::sparse_research(9_000 + seed, 100, 0.0), &scorer);
        let v = verdict(&r);
        let excluded = r.tickers.iter().filter(|t| t.excluded.is_some()).count();
        assert_eq!(r.tested + excluded, 100);
        assert!(excluded >= 10, "the rare tickers are not tested: {excluded} of 100");
        nominal += r.tickers.iter().filter(|t| t.primary_p.is_some_and(|p| p < 0.05)).count() as f64 / r.tested as f64;
        println!(
            "null archive {seed}: {} tested, {} significant after BH — {}",
            r.tested,
            r.significant.len(),
            &v[..v.len().min(90)]
        );
        yes += usize::from(v.starts_with("Yes"));
        inconclusive += usize::from(v.starts_with("Inconclusive"));
    }
    let rate = yes as f64 / archives as f64;
    println!(
        "no effect: the study says Yes on {yes} of {archives} sparse archives ({:.1}%), Inconclusive (tickers past BH, the pooled test not) on {inconclusive}; tickers with a nominal p < 0.05: {:.1}% on average",
        100.0 * rate,
        100.0 * nominal / archives as f64
    );
    assert!(rate <= 0.05, "{yes} of {archives} null archives answered Yes");

    let r = study(&ArchiveSpec::sparse_research(9_100, 100, 0.6), &scorer);
    let v = verdict(&r);
    println!("planted: {}", &v[..v.len().min(300)]);
    assert!(v.starts_with("Yes"), "{v}");
    assert!(
        r.significant.len() * 2 >= r.tested,
        "most tested tickers show the planted lead: {} of {}",
        r.significant.len(),
        r.tested
    );
    assert!(
        r.significant.iter().all(|t| r.tickers.iter().any(|x| &x.ticker == t && x.excluded.is_none())),
        "only tested tickers can be significant"
    );
}
