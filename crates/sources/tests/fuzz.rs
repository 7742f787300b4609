//! Every provider parser and the decoders of what crosses process boundaries, fed
//! arbitrary bytes and arbitrary JSON: they return an error or records, never panic, and
//! never allocate beyond the input's size class.

use std::collections::HashSet;

use cashtag_core::{Event, Record, Ticker};
use cashtag_sources::recorder::RecordedPayload;
use cashtag_sources::registry::{MARKET, SOCIAL, parse_recorded};
use chrono::{DateTime, Utc};
use proptest::prelude::*;

fn watched() -> HashSet<Ticker> {
    ["AAPL", "MSFT", "BA", "C", "BRK.B"].iter().map(|t| Ticker::parse(t).unwrap()).collect()
}

/// Every (provider, channel) a recording can hold.
const CHANNELS: &[(&str, &str)] = &[
    ("alpaca", "ws"),
    ("alpaca", "bars"),
    ("iex", "batch"),
    ("finnhub", "ws"),
    ("x", "stream"),
    ("stocktwits", "symbol"),
    ("bluesky", "ws"),
];

fn at() -> DateTime<Utc> {
    "2026-11-24T15:00:00Z".parse().unwrap()
}

/// Arbitrary JSON, shaped a little like provider payloads (objects with their keys).
fn json() -> impl Strategy<Value = serde_json::Value> {
    let keys = prop::sample::select(vec![
        "T",
        "S",
        "i",
        "x",
        "p",
        "s",
        "c",
        "t",
        "o",
        "h",
        "l",
        "v",
        "n",
        "vw",
        "bars",
        "next_page_token",
        "type",
        "data",
        "msg",
        "code",
        "symbol",
        "quote",
        "latestUpdate",
        "latestPrice",
        "id",
        "text",
        "author_id",
        "created_at",
        "includes",
        "users",
        "errors",
        "title",
        "messages",
        "body",
        "user",
        "symbols",
        "entities",
        "sentiment",
        "did",
        "time_us",
        "kind",
        "commit",
        "record",
        "facets",
        "features",
        "tag",
        "$type",
        "operation",
        "collection",
        "rkey",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("2026-11-24T14:59:59.123Z")),
        Just(serde_json::Value::from("$AAPL and $BA")),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..8)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn parse_everywhere(payload: &str) {
    let w = watched();
    for (provider, channel) in CHANNELS {
        let p = RecordedPayload {
            at: at(),
            provider: provider.to_string(),
            channel: channel.to_string(),
            payload: payload.into(),
        };
        if let Ok(parsed) = parse_recorded(&p, &w) {
            // Whatever parses is a valid record with a key.
            for r in &parsed.records {
                assert!(!r.key().is_empty());
                if let Record::Post(post) = r {
                    assert!(post.tickers.iter().all(|t| w.contains(t)), "only watched tickers");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_a_parser(s in "\\PC{0,300}") {
        parse_everywhere(&s);
    }

    #[test]
    fn arbitrary_json_never_panics_a_parser(v in json()) {
        parse_everywhere(&v.to_string());
        parse_everywhere(&serde_json::Value::Array(vec![v]).to_string());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<Record>(&b);
        let _ = serde_json::from_slice::<Event>(&b);
        let _ = serde_json::from_slice::<RecordedPayload>(&b);
        let _ = serde_json::from_slice::<cashtag_core::CountSample>(&b);
        let text = String::from_utf8_lossy(&b);
        let _ = cashtag_core::config::load::<cashtag_core::Settings>(
            None,
            [("CASHTAG_CLOCK_SPEC".to_string(), text.to_string())],
        );
    }
}

#[test]
fn every_provider_with_payloads_is_fuzzed() {
    let with_parsers: Vec<&str> = MARKET.iter().chain(SOCIAL).filter(|p| p.parse.is_some()).map(|p| p.name).collect();
    for p in with_parsers {
        assert!(CHANNELS.iter().any(|(name, _)| *name == p), "{p} has a parser but no fuzz channel");
    }
}
