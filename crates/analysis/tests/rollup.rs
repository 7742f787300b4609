//! Roll-ups against the real MongoDB-wire server: the minutes equal what the raw records
//! say, a second run (and a run over the same records inserted in another order) yields
//! byte-identical collections, and a late post updates its minute.

use bson::{RawDocumentBuf, doc};
use cashtag_analysis_core::rollup::{ensure_indexes, rollup_range};
use cashtag_core::{Record, Ticker, collections};
use cashtag_sentiment::Scorer;
use cashtag_sim::{Sim, SimParams, minute_index};
use cashtag_sinks::Sink;
use cashtag_sinks::mongo::MongoSink;
use cashtag_testkit::{mongo_uri, unique};
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use mongodb::Database;

const TICKERS: [&str; 3] = ["AAPL", "MSFT", "SPY"];

fn records(from: DateTime<Utc>, minutes: i64) -> Vec<Record> {
    let sim = Sim::new(SimParams { seed: 3, trades_per_minute: 4.0, posts_per_minute: 2.0, ..Default::default() });
    let mut recs = sim.records(&TICKERS, minute_index(from)..minute_index(from) + minutes);
    score(&mut recs);
    recs
}

fn score(records: &mut [Record]) {
    let scorer = Scorer::new();
    for r in records {
        if let Record::Post(p) = r {
            let tickers: Vec<&str> = p.tickers.iter().map(|t| t.as_str()).collect();
            p.sentiment = Some(scorer.score_post(&p.text, &tickers, None));
        }
    }
}

async fn insert(db: &Database, records: &[Record]) {
    let report = MongoSink::new(db.client(), db.name()).write(records).await.map_err(|e| e.reason).unwrap();
    assert_eq!(report.written, records.len());
}

/// Every document of a collection, as BSON bytes, in `_id` order.
async fn dump(db: &Database, coll: &str) -> Vec<Vec<u8>> {
    let c = db.collection::<RawDocumentBuf>(coll).find(doc! {}).sort(doc! {"_id": 1}).await.unwrap();
    c.try_collect::<Vec<_>>().await.unwrap().into_iter().map(|d| d.into_bytes()).collect()
}

async fn database() -> Database {
    let client = mongodb::Client::with_uri_str(mongo_uri()).await.unwrap();
    client.database(&unique("rollup"))
}

#[tokio::test]
async fn rollups_are_correct_idempotent_and_order_independent_and_pick_up_late_posts() {
    let from: DateTime<Utc> = "2026-11-24T14:30:00Z".parse().unwrap();
    let to = from + TimeDelta::minutes(30);
    let recs = records(from, 30);
    let db = database().await;
    insert(&db, &recs).await;
    ensure_indexes(&db).await.unwrap();
    let (s, p) = rollup_range(&db, from, to).await.unwrap();
    let minutes_with = |post: bool| {
        let keys: std::collections::BTreeSet<(String, i64)> = recs
            .iter()
            .flat_map(|r| match r {
                Record::Trade(t) if !post => vec![(t.ticker.to_string(), minute_index(t.ts))],
                Record::Post(p) if post => {
                    p.tickers.iter().map(|t| (t.to_string(), minute_index(p.created_at))).collect()
                }
                _ => vec![],
            })
            .collect();
        keys.len()
    };
    assert_eq!(p, minutes_with(false));
    assert_eq!(s, minutes_with(true));
    assert!(p > 80 && s > 60, "{p} price and {s} sentiment minutes");

    // The numbers are what the records say.
    let m = from + TimeDelta::minutes(7);
    let trades: Vec<_> = recs
        .iter()
        .filter_map(|r| if let Record::Trade(t) = r { Some(t) } else { None })
        .filter(|t| t.ticker.as_str() == "MSFT" && t.ts >= m && t.ts < m + TimeDelta::minutes(1))
        .collect();
    let bar = db
        .collection::<bson::Document>(collections::PRICE_1M)
        .find_one(doc! {"_id": "MSFT:2026-11-24T14:37Z"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bar.get_i64("trades").unwrap(), trades.len() as i64);
    assert_eq!(bar.get_f64("open").unwrap(), trades.first().unwrap().price);
    assert_eq!(bar.get_f64("close").unwrap(), trades.last().unwrap().price);
    assert_eq!(bar.get_f64("high").unwrap(), trades.iter().map(|t| t.price).fold(f64::MIN, f64::max));
    assert_eq!(bar.get_f64("volume").unwrap(), trades.iter().map(|t| t.size).sum::<f64>());
    let posts: Vec<_> = recs
        .iter()
        .filter_map(|r| if let Record::Post(p) = r { Some(p) } else { None })
        .filter(|p| {
            p.tickers.iter().any(|t| t.as_str() == "AAPL")
                && p.created_at >= m
                && p.created_at < m + TimeDelta::minutes(1)
        })
        .collect();
    let sent = db
        .collection::<bson::Document>(collections::SENTIMENT_1M)
        .find_one(doc! {"_id": "AAPL:2026-11-24T14:37Z"})
        .await
        .unwrap();
    match sent {
        None => assert!(posts.is_empty()),
        Some(d) => {
            assert_eq!(d.get_i64("posts").unwrap(), posts.len() as i64);
            let fsum: f64 = posts.iter().map(|p| p.sentiment.as_ref().unwrap().finance.score).sum();
            assert!((d.get_f64("finance_sum").unwrap() - fsum).abs() < 1e-12);
            let bullish = posts
                .iter()
                .filter(|p| p.sentiment.as_ref().unwrap().finance.label == cashtag_core::SentimentLabel::Bullish)
                .count();
            assert_eq!(d.get_i64("bullish").unwrap(), bullish as i64);
        }
    }

    // A second run: byte for byte the same.
    let first = (dump(&db, collections::SENTIMENT_1M).await, dump(&db, collections::PRICE_1M).await);
    rollup_range(&db, from, to).await.unwrap();
    let second = (dump(&db, collections::SENTIMENT_1M).await, dump(&db, collections::PRICE_1M).await);
    assert!(first == second, "a re-run changed the roll-ups");
    // A half-done run (a crash after some minutes) repaired by the next run.
    db.collection::<bson::Document>(collections::PRICE_1M).delete_many(doc! {"ticker": "AAPL"}).await.unwrap();
    rollup_range(&db, from, to).await.unwrap();
    assert!(dump(&db, collections::PRICE_1M).await == first.1);

    // The same records inserted in reverse order roll up identically.
    let other = database().await;
    let mut reversed = recs.clone();
    reversed.reverse();
    insert(&other, &reversed).await;
    rollup_range(&other, from, to).await.unwrap();
    assert!(
        (dump(&other, collections::SENTIMENT_1M).await, dump(&other, collections::PRICE_1M).await) == first,
        "insertion order changed the roll-ups"
    );

    // A late post for a closed minute: the trailing window picks it up.
    let late_minute = to - TimeDelta::minutes(5);
    let before = db
        .collection::<bson::Document>(collections::SENTIMENT_1M)
        .find_one(doc! {"_id": format!("AAPL:{}", late_minute.format("%Y-%m-%dT%H:%MZ"))})
        .await
        .unwrap();
    let before_posts = before.as_ref().map_or(0, |d| d.get_i64("posts").unwrap());
    let Some(Record::Post(mut late)) = recs.iter().find(|r| matches!(r, Record::Post(_))).cloned() else {
        unreachable!()
    };
    late.id = "late-1".into();
    late.created_at = late_minute + TimeDelta::seconds(30);
    late.text = "$AAPL to the moon 🚀🚀".into();
    late.tickers = vec![Ticker::parse("AAPL").unwrap()];
    let mut late = [Record::Post(late)];
    score(&mut late);
    insert(&db, &late).await;
    rollup_range(&db, to - TimeDelta::minutes(15), to).await.unwrap();
    let after = db
        .collection::<bson::Document>(collections::SENTIMENT_1M)
        .find_one(doc! {"_id": format!("AAPL:{}", late_minute.format("%Y-%m-%dT%H:%MZ"))})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.get_i64("posts").unwrap(), before_posts + 1);
    assert!(after.get_i64("bullish").unwrap() >= 1);
    // Minutes outside the window are untouched; the whole collection differs only there.
    let now = dump(&db, collections::SENTIMENT_1M).await;
    let changed = now.iter().filter(|d| !first.0.contains(d)).count();
    assert_eq!(changed, 1, "only the late post's minute changed");
    db.drop().await.unwrap();
    other.drop().await.unwrap();
}

/// The service's pass and an operator's `aggregate` over the same minutes at once: both
/// succeed, with the same documents as one pass alone, and a reader polling meanwhile
/// never finds a recomputed minute missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_passes_over_the_same_minutes_both_succeed_without_a_gap() {
    let from: DateTime<Utc> = "2026-11-24T14:30:00Z".parse().unwrap();
    let to = from + TimeDelta::minutes(20);
    let db = database().await;
    insert(&db, &records(from, 20)).await;
    ensure_indexes(&db).await.unwrap();
    let (s, p) = rollup_range(&db, from, to).await.unwrap();
    let once = (dump(&db, collections::SENTIMENT_1M).await, dump(&db, collections::PRICE_1M).await);
    let count = |db: Database| async move {
        db.collection::<bson::Document>(collections::PRICE_1M).count_documents(doc! {}).await.unwrap() as usize
    };
    let reader = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut fewest = usize::MAX;
            for _ in 0..200 {
                fewest = fewest.min(count(db.clone()).await);
                tokio::task::yield_now().await;
            }
            fewest
        })
    };
    let passes: Vec<_> = (0..6)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { rollup_range(&db, from, to).await })
        })
        .collect();
    for pass in passes {
        assert_eq!(pass.await.unwrap().unwrap(), (s, p), "every concurrent pass succeeds");
    }
    assert_eq!(reader.await.unwrap(), p, "no minute went missing while passes ran");
    assert_eq!((dump(&db, collections::SENTIMENT_1M).await, dump(&db, collections::PRICE_1M).await), once);
    db.drop().await.unwrap();
}
