//! Minute roll-ups: per ticker and minute, the posts' sentiment (`sentiment_1m`) and the
//! trades' price (`price_1m`), recomputed from the raw collections. A ticker-minute
//! without trades takes its price from a one-minute bar (provider history, imported minute
//! files), so history without trades rolls up too. Daily bars (`bars_1d`) roll up into
//! `price_1d`, one document per ticker and NYSE session ([`rollup_days`]).
//!
//! A minute is always recomputed whole from raw data and its document replaced, so a
//! re-run — or a run after a crash — yields identical documents, and a late post is
//! picked up by recomputing a trailing window. `_id` is `TICKER:YYYY-MM-DDTHH:MMZ`.

use std::collections::{BTreeMap, BTreeSet};

use bson::{Document, doc};
use cashtag_core::collections;
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use mongodb::Database;

use crate::AnalysisError;

fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(60) * 60, 0).expect("valid")
}

fn id(ticker: &str, minute: DateTime<Utc>) -> String {
    format!("{ticker}:{}", minute.format("%Y-%m-%dT%H:%MZ"))
}

/// One post's contribution to a ticker-minute.
struct PostItem {
    id: String,
    author: String,
    vader: f64,
    finance: f64,
    label: String,
}

/// One trade: ((milliseconds, sequence number), price, size).
type TradeItem = ((i64, i64), f64, f64);

fn bdate(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_chrono(t)
}

/// Recomputes the roll-ups of every minute in `[from, to)`; returns (sentiment docs,
/// price docs) written.
pub async fn rollup_range(
    db: &Database,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(usize, usize), AnalysisError> {
    let from = minute_of(from);
    let to = minute_of(to);
    if to <= from {
        return Ok((0, 0));
    }
    let (sdocs, pdocs) = compute(db, from, to).await?;
    let range = doc! {"minute": {"$gte": bdate(from), "$lt": bdate(to)}};
    let (ns, np) = (sdocs.len(), pdocs.len());
    for (coll, docs) in [(collections::SENTIMENT_1M, sdocs), (collections::PRICE_1M, pdocs)] {
        replace_range(db, coll, range.clone(), &docs).await?;
    }
    Ok((ns, np))
}

/// The roll-up documents (sentiment, price) of the whole minutes in `[from, to)`, computed
/// from the raw posts and trades without writing them: what `rollup_range` stores, and
/// what the predictor reads as of a tick (so it never waits for the roll-up service).
pub async fn compute(
    db: &Database,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(Vec<Document>, Vec<Document>), AnalysisError> {
    let from = minute_of(from);
    let to = minute_of(to);
    // Everything of a ticker-minute is gathered, then summed in a fixed order (posts by
    // id, trades by time and sequence number), so the sums do not depend on the order
    // the server returns documents in: a recomputed minute is identical to the bit.
    let mut sent: BTreeMap<(String, DateTime<Utc>), Vec<PostItem>> = BTreeMap::new();
    let mut cursor = db
        .collection::<Document>(collections::POSTS)
        .find(doc! {"created_at": {"$gte": bdate(from), "$lt": bdate(to)}})
        .projection(doc! {"tickers": 1, "created_at": 1, "author.id": 1, "sentiment": 1})
        .await?;
    while let Some(p) = cursor.try_next().await? {
        let Ok(at) = p.get_datetime("created_at") else { continue };
        let minute = minute_of(at.to_chrono());
        let s = p.get_document("sentiment").ok();
        let finance = s.and_then(|s| s.get_document("finance").ok());
        let item = |id: String| PostItem {
            id,
            author: p.get_document("author").ok().and_then(|a| a.get_str("id").ok()).unwrap_or_default().to_string(),
            vader: s.and_then(|s| s.get_document("vader").ok()).and_then(|v| v.get_f64("compound").ok()).unwrap_or(0.0),
            finance: finance.and_then(|f| f.get_f64("score").ok()).unwrap_or(0.0),
            label: finance.and_then(|f| f.get_str("label").ok()).unwrap_or("neutral").to_string(),
        };
        let id = p
            .get_str("_id")
            .map(str::to_string)
            .unwrap_or_else(|_| p.get("_id").map(|v| v.to_string()).unwrap_or_default());
        for t in
            p.get_array("tickers").map(|a| a.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>()).unwrap_or_default()
        {
            sent.entry((t.to_string(), minute)).or_default().push(item(id.clone()));
        }
    }
    let mut price: BTreeMap<(String, DateTime<Utc>), Vec<TradeItem>> = BTreeMap::new();
    let mut cursor = db
        .collection::<Document>(collections::TRADES)
        .find(doc! {"ts": {"$gte": bdate(from), "$lt": bdate(to)}})
        .projection(doc! {"ticker": 1, "ts": 1, "price": 1, "size": 1, "seq": 1})
        .await?;
    while let Some(t) = cursor.try_next().await? {
        let (Ok(ticker), Ok(ts), Ok(p)) = (t.get_str("ticker"), t.get_datetime("ts"), t.get_f64("price")) else {
            continue;
        };
        let size = t.get_f64("size").unwrap_or(0.0);
        let key = (ts.timestamp_millis(), t.get_i64("seq").or_else(|_| t.get_i32("seq").map(i64::from)).unwrap_or(0));
        price.entry((ticker.to_string(), minute_of(ts.to_chrono()))).or_default().push((key, p, size));
    }
    // Minutes without trades: the bar of the minute (the first provider by name, so the
    // choice does not depend on the server's order).
    let mut from_bars: BTreeMap<(String, DateTime<Utc>), (String, Document)> = BTreeMap::new();
    let mut cursor = db
        .collection::<Document>(collections::BARS)
        .find(doc! {"start": {"$gte": bdate(from), "$lt": bdate(to)}})
        .projection(doc! {"ticker": 1, "start": 1, "provider": 1, "origin": 1, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1, "trade_count": 1})
        .await?;
    while let Some(b) = cursor.try_next().await? {
        let (Ok(ticker), Ok(start)) = (b.get_str("ticker"), b.get_datetime("start")) else { continue };
        let key = (ticker.to_string(), minute_of(start.to_chrono()));
        if price.contains_key(&key) || b.get_str("origin") == Ok("trades") {
            continue;
        }
        let provider = b.get_str("provider").unwrap_or_default().to_string();
        match from_bars.get(&key) {
            Some((p, _)) if *p <= provider => {}
            _ => {
                from_bars.insert(key, (provider, b));
            }
        }
    }
    let sdocs: Vec<Document> = sent
        .into_iter()
        .map(|((t, m), mut items)| {
            items.sort_by(|a, b| a.id.cmp(&b.id));
            let n = items.len() as f64;
            let vader_sum: f64 = items.iter().map(|i| i.vader).sum();
            let finance_sum: f64 = items.iter().map(|i| i.finance).sum();
            let count = |l: &str| items.iter().filter(|i| i.label == l).count() as i64;
            let authors: BTreeSet<&str> = items.iter().map(|i| i.author.as_str()).collect();
            doc! {
                "_id": id(&t, m), "ticker": &t, "minute": bdate(m),
                "posts": items.len() as i64, "authors": authors.len() as i64,
                "vader_sum": vader_sum, "vader_mean": vader_sum / n,
                "finance_sum": finance_sum, "finance_mean": finance_sum / n,
                "bullish": count("bullish"), "bearish": count("bearish"), "neutral": items.len() as i64 - count("bullish") - count("bearish"),
            }
        })
        .collect();
    let pdocs: Vec<Document> = price
        .into_iter()
        .map(|((t, m), mut trades)| {
            trades.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.total_cmp(&b.2)));
            let prices = trades.iter().map(|x| x.1);
            doc! {
                "_id": id(&t, m), "ticker": &t, "minute": bdate(m),
                "open": trades[0].1, "high": prices.clone().fold(f64::MIN, f64::max), "low": prices.fold(f64::MAX, f64::min),
                "close": trades[trades.len() - 1].1,
                "volume": trades.iter().map(|x| x.2).sum::<f64>(), "trades": trades.len() as i64,
            }
        })
        .collect();
    let mut pdocs = pdocs;
    let num = |b: &Document, k: &str| b.get_f64(k).or_else(|_| b.get_i64(k).map(|v| v as f64)).unwrap_or(f64::NAN);
    for ((t, m), (provider, b)) in from_bars {
        pdocs.push(doc! {
            "_id": id(&t, m), "ticker": &t, "minute": bdate(m),
            "open": num(&b, "open"), "high": num(&b, "high"), "low": num(&b, "low"), "close": num(&b, "close"),
            "volume": num(&b, "volume"), "trades": b.get_i64("trade_count").unwrap_or(0), "bar": provider,
        });
    }
    pdocs.sort_by(|a, b| a.get_str("_id").unwrap_or_default().cmp(b.get_str("_id").unwrap_or_default()));
    Ok((sdocs, pdocs))
}

/// Recomputes `price_1d` for the NYSE sessions of `[from, to]` (New York dates) from the
/// daily bars: per ticker and session, the bar of the first provider by name, its
/// adjusted close (the close where none is given) and the session's close instant.
/// Bars on days that are not sessions are left out. Returns the documents written.
pub async fn rollup_days(
    db: &Database,
    calendar: &cashtag_calendar::Calendar,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<usize, AnalysisError> {
    let sessions: BTreeMap<chrono::NaiveDate, cashtag_calendar::Session> =
        calendar.sessions(from, to).into_iter().map(|s| (s.date, s)).collect();
    let ny = chrono_tz::America::New_York;
    let (lo, hi) = (from - TimeDelta::days(1), to + TimeDelta::days(2));
    let mut cursor = db
        .collection::<Document>(collections::BARS_1D)
        .find(doc! {"start": {"$gte": bdate(lo.and_hms_opt(0, 0, 0).expect("midnight").and_utc()), "$lt": bdate(hi.and_hms_opt(0, 0, 0).expect("midnight").and_utc())}})
        .await?;
    let mut best: BTreeMap<(String, chrono::NaiveDate), (String, Document)> = BTreeMap::new();
    while let Some(b) = cursor.try_next().await? {
        let (Ok(ticker), Ok(start)) = (b.get_str("ticker"), b.get_datetime("start")) else { continue };
        // A daily bar starts at midnight New York time of its date; an hour's slack either way.
        let date = (start.to_chrono() + TimeDelta::hours(6)).with_timezone(&ny).date_naive();
        if !sessions.contains_key(&date) {
            continue;
        }
        let provider = b.get_str("provider").unwrap_or_default().to_string();
        let key = (ticker.to_string(), date);
        match best.get(&key) {
            Some((p, _)) if *p <= provider => {}
            _ => {
                best.insert(key, (provider, b));
            }
        }
    }
    let num = |b: &Document, k: &str| b.get_f64(k).or_else(|_| b.get_i64(k).map(|v| v as f64)).ok();
    let docs: Vec<Document> = best
        .into_iter()
        .filter_map(|((t, date), (provider, b))| {
            let close = num(&b, "close")?;
            let s = &sessions[&date];
            Some(doc! {
                "_id": format!("{t}:{date}"), "ticker": &t, "day": date.to_string(),
                "close_at": bdate(s.close), "open": num(&b, "open"), "high": num(&b, "high"), "low": num(&b, "low"),
                "close": close, "adj_close": num(&b, "adj_close").unwrap_or(close), "volume": num(&b, "volume"),
                "provider": provider,
            })
        })
        .collect();
    let (Some(first), Some(last)) = (sessions.values().next(), sessions.values().last()) else { return Ok(0) };
    replace_range(
        db,
        collections::PRICE_1D,
        doc! {"close_at": {"$gte": bdate(first.close), "$lte": bdate(last.close)}},
        &docs,
    )
    .await?;
    Ok(docs.len())
}

/// Makes the documents of `range` exactly `docs`, idempotently and without a gap: every
/// document is upserted by `_id` (one `update` command per thousand), and only then are the
/// range's documents that `docs` no longer holds deleted. Two passes over the same range at
/// once (the service and an operator's `aggregate`) both succeed with the same result, and
/// a reader never sees a recomputed minute missing.
async fn replace_range(db: &Database, coll: &str, range: Document, docs: &[Document]) -> Result<(), AnalysisError> {
    let c = db.collection::<Document>(coll);
    for chunk in docs.chunks(1_000) {
        let updates: Vec<Document> = chunk
            .iter()
            .map(|d| doc! {"q": {"_id": d.get("_id").cloned().unwrap_or(bson::Bson::Null)}, "u": d.clone(), "upsert": true})
            .collect();
        let reply = db.run_command(doc! {"update": coll, "updates": updates, "ordered": false}).await?;
        // Two upserts of one new `_id` at once: one inserts, the other may meet the key;
        // that one is written again as a plain replacement.
        for e in reply.get_array("writeErrors").map(|a| a.as_slice()).unwrap_or_default() {
            let e = e.as_document();
            let code = e.and_then(|e| e.get_i32("code").ok());
            let index = e.and_then(|e| e.get_i32("index").ok()).and_then(|i| chunk.get(i as usize));
            match (code, index) {
                (Some(11000), Some(d)) => {
                    let id = d.get("_id").cloned().unwrap_or(bson::Bson::Null);
                    c.replace_one(doc! {"_id": id}, d.clone()).upsert(true).await?;
                }
                _ => {
                    let message = e.and_then(|e| e.get_str("errmsg").ok()).unwrap_or("write error").to_string();
                    return Err(mongodb::error::Error::custom(message).into());
                }
            }
        }
    }
    let keep: std::collections::HashSet<String> =
        docs.iter().filter_map(|d| d.get_str("_id").ok().map(str::to_string)).collect();
    let mut stored = c.find(range).projection(doc! {"_id": 1}).await?;
    let mut stale = Vec::new();
    while let Some(d) = stored.try_next().await? {
        match d.get("_id") {
            Some(bson::Bson::String(id)) if keep.contains(id) => {}
            Some(id) => stale.push(id.clone()),
            None => {}
        }
    }
    for ids in stale.chunks(1_000) {
        c.delete_many(doc! {"_id": {"$in": ids.to_vec()}}).await?;
    }
    Ok(())
}

/// Indexes of the roll-up collections, and the time index on trades the roll-up's range
/// queries need (the sinks index trades by ticker first).
pub async fn ensure_indexes(db: &Database) -> Result<(), AnalysisError> {
    db.collection::<Document>(collections::TRADES)
        .create_index(mongodb::IndexModel::builder().keys(doc! {"ts": 1}).build())
        .await?;
    db.collection::<Document>(collections::BARS)
        .create_index(mongodb::IndexModel::builder().keys(doc! {"start": 1}).build())
        .await?;
    for (coll, keys) in [
        (collections::BARS_1D, doc! {"start": 1}),
        (collections::PRICE_1D, doc! {"ticker": 1, "close_at": 1}),
        (collections::PRICE_1D, doc! {"close_at": 1}),
    ] {
        db.collection::<Document>(coll).create_index(mongodb::IndexModel::builder().keys(keys).build()).await?;
    }
    for coll in [collections::SENTIMENT_1M, collections::PRICE_1M] {
        db.collection::<Document>(coll)
            .create_index(mongodb::IndexModel::builder().keys(doc! {"ticker": 1, "minute": 1}).build())
            .await?;
        db.collection::<Document>(coll)
            .create_index(mongodb::IndexModel::builder().keys(doc! {"minute": 1}).build())
            .await?;
    }
    Ok(())
}

/// The day-sized steps of a backfill.
pub fn day_steps(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut a = from;
    while a < to {
        let b = (a + TimeDelta::days(1)).min(to);
        out.push((a, b));
        a = b;
    }
    out
}
