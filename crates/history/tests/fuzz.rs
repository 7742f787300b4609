//! The importers and the archive reader fed hostile files: arbitrary bytes, gzip streams
//! of them (whole and cut), lines far longer than the limit, hostile CSV and JSON. Every
//! case ends in lines, rows or posts and per-line reasons — never a panic, and never a line
//! held beyond the limit. Bounded (a fixed number of cases), so CI runs it every time.

use std::collections::HashSet;
use std::io::Write;

use cashtag_core::{Ticker, Timeframe};
use cashtag_history::archive::{Line, Lines};
use cashtag_history::import::{TweetFormat, parse_tweet};
use cashtag_history::prices::{Columns, parse_row};
use chrono::{DateTime, Utc};
use proptest::prelude::*;

const LIMIT: usize = 256;

fn at() -> DateTime<Utc> {
    "2026-11-24T15:00:00Z".parse().unwrap()
}

fn watched() -> HashSet<Ticker> {
    ["AAPL", "MSFT", "BRK.B"].iter().map(|t| Ticker::parse(t).unwrap()).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Reads a file's lines to the end: line numbers rise, no text line exceeds the limit,
/// and an error (a damaged stream) comes last.
fn read_all(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive");
    std::fs::write(&path, bytes).unwrap();
    let mut last = 0;
    let mut errored = false;
    for line in Lines::open_with_limit(&path, LIMIT).unwrap() {
        assert!(!errored, "nothing after an error");
        match line {
            Ok(Line::Text(i, s)) => {
                assert!(i > last && s.len() <= LIMIT, "line {i}: {} bytes", s.len());
                last = i;
            }
            Ok(Line::Invalid(i, why)) => {
                assert!(i > last && !why.is_empty());
                last = i;
            }
            Err((i, why)) => {
                assert!(i > last && !why.is_empty());
                errored = true;
            }
        }
    }
}

#[test]
fn a_gzip_bomb_of_one_endless_line_is_skipped_without_holding_it() {
    // 8 MiB of one byte with no line end inflates from a few KiB; then a good line.
    let mut raw = vec![b'{'; 8 << 20];
    raw.extend_from_slice(b"\nok\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.gz");
    std::fs::write(&path, gzip(&raw)).unwrap();
    let lines: Vec<_> = Lines::open_with_limit(&path, 1 << 20).unwrap().collect();
    assert_eq!(lines.len(), 2, "the long line (reported) and the good one");
    match &lines[0] {
        Ok(Line::Invalid(1, why)) => assert!(why.contains("longer than 1048576 bytes (8388609 bytes)"), "{why}"),
        other => panic!("line 1: {other:?}"),
    }
    assert!(matches!(&lines[1], Ok(Line::Text(2, s)) if s == "ok"));
}

#[test]
fn a_line_of_exactly_the_limit_is_kept() {
    let mut raw = vec![b'a'; LIMIT];
    raw.push(b'\n');
    raw.extend(vec![b'b'; LIMIT + 1]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge");
    std::fs::write(&path, &raw).unwrap();
    let lines: Vec<_> = Lines::open_with_limit(&path, LIMIT).unwrap().collect();
    assert!(matches!(&lines[0], Ok(Line::Text(1, s)) if s.len() == LIMIT));
    assert!(matches!(&lines[1], Ok(Line::Invalid(2, _))));
    assert_eq!(lines.len(), 2);
}

fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2})?)?",
        "[0-9.eE+-]{0,12}",
        Just("null".to_string()),
        Just("2024年1月2日".to_string()),
        "\"[^\"]{0,8}\"",
        any::<String>(),
    ]
}

fn tweetish() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(serde_json::json!(null)),
        any::<String>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        Just(serde_json::json!("Wed Jan 01 03:59:03 +0000 2014")),
        Just(serde_json::json!("$AAPL to the moon 🚀")),
        Just(serde_json::json!({"id_str": "1", "screen_name": "x"})),
        Just(serde_json::json!([{"text": "AAPL", "indices": [0, 5]}])),
    ];
    let keys = prop::sample::select(vec![
        "id",
        "id_str",
        "text",
        "full_text",
        "created_at",
        "user",
        "entities",
        "symbols",
        "body",
        "data",
        "includes",
        "retweeted_status",
        "extended_tweet",
        "lang",
        "author_id",
    ]);
    prop::collection::btree_map(keys, value, 0..8).prop_map(|m| serde_json::to_string(&m).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_read_as_lines(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        read_all(&bytes);
    }

    #[test]
    fn any_gzip_whole_or_cut_reads_as_lines(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        cut in 0.0f64..1.0,
    ) {
        let gz = gzip(&bytes);
        read_all(&gz);
        read_all(&gz[..(gz.len() as f64 * cut) as usize]);
    }

    #[test]
    fn hostile_csv_rows_are_bars_or_reasons(
        header in prop::collection::vec(cell(), 0..9),
        rows in prop::collection::vec(prop::collection::vec(cell(), 0..9), 0..8),
    ) {
        let t = Ticker::parse("AAPL").unwrap();
        let yahoo = Columns::from_header("Date,Open,High,Low,Close,Adj Close,Volume", None).unwrap();
        let minute = Columns::from_header("Datetime,Open,High,Low,Close,Volume", Some(Timeframe::Minute)).unwrap();
        let _ = Columns::from_header(&header.join(","), None);
        for row in rows {
            let line = row.join(",");
            for cols in [&yahoo, &minute] {
                if let Err(why) = parse_row(&line, cols, &t, at()) {
                    prop_assert!(!why.is_empty());
                }
            }
        }
    }

    #[test]
    fn hostile_tweet_lines_are_posts_or_reasons(line in prop_oneof![tweetish(), any::<String>()]) {
        for format in [TweetFormat::Auto, TweetFormat::XV1, TweetFormat::XV2, TweetFormat::Stocktwits] {
            if let Err(why) = parse_tweet(&line, format, at(), &watched()) {
                prop_assert!(!why.is_empty());
            }
        }
    }
}
