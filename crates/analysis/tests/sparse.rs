//! The study on sparse, real-looking daily data: tickers with a handful of posts, listings in
//! mid-window, a missing market proxy. A per-ticker verdict needs enough posts and
//! observations; a day without posts is missing, not a neutral 0; the verdict rests on the
//! Benjamini–Hochberg adjusted q and says how many tickers were tested; a fallback is a
//! warning.

use cashtag_analysis_core::report::{charted, html, markdown, verdict};
use cashtag_analysis_core::series::TickerSeries;
use cashtag_analysis_core::study::{StudyConfig, run};
use chrono::{DateTime, TimeDelta, Utc};

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
