//! The records the fetchers accept and the sinks store: posts and market data.
//!
//! Every record has a natural unique key ([`Record::key`]) so a retried write can never
//! create a duplicate: `source:id` for posts and `provider:ticker:timestamp:seq` for market
//! data. Timestamps use [`crate::time::ts`], so they are strings in JSON and dates in BSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ticker::Ticker;
use crate::time::{rfc3339, ts, ts_opt};

/// The author of a post, as the source describes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Author {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub followers: Option<u64>,
}

/// Engagement counts where the source gives them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Engagement {
    #[serde(default)]
    pub likes: Option<u64>,
    #[serde(default)]
    pub reposts: Option<u64>,
    #[serde(default)]
    pub replies: Option<u64>,
    #[serde(default)]
    pub quotes: Option<u64>,
}

/// VADER's four numbers, rounded as the reference implementation rounds them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct VaderScores {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    pub compound: f64,
}

/// Direction of a post about a stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentimentLabel {
    Bullish,
    Bearish,
    Neutral,
}

impl SentimentLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            SentimentLabel::Bullish => "bullish",
            SentimentLabel::Bearish => "bearish",
            SentimentLabel::Neutral => "neutral",
        }
    }
}

/// The finance-aware score in [-1, 1] and its label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FinanceScore {
    pub score: f64,
    pub label: SentimentLabel,
}

/// Both sentiment scores of a post, the author's own label if the source gave one, and
/// the version of the scoring model that produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostSentiment {
    pub vader: VaderScores,
    pub finance: FinanceScore,
    #[serde(default)]
    pub author_label: Option<SentimentLabel>,
    pub model_version: String,
}

/// A microblog post that mentions at least one watched ticker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    /// `x`, `stocktwits`, `bluesky`, `sim`, ...
    pub source: String,
    /// The source's own id of the post.
    pub id: String,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub received_at: DateTime<Utc>,
    pub text: String,
    #[serde(default)]
    pub lang: Option<String>,
    pub author: Author,
    #[serde(default)]
    pub engagement: Option<Engagement>,
    /// Watched tickers mentioned as exact cashtags, each once, in order of appearance.
    pub tickers: Vec<Ticker>,
    #[serde(default)]
    pub is_repost: bool,
    /// The author's own label where the source supplies one (StockTwits).
    #[serde(default)]
    pub author_label: Option<SentimentLabel>,
    #[serde(default)]
    pub sentiment: Option<PostSentiment>,
}

/// One trade print.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub provider: String,
    pub ticker: Ticker,
    /// The provider's timestamp of the trade.
    #[serde(with = "ts")]
    pub ts: DateTime<Utc>,
    #[serde(with = "ts")]
    pub received_at: DateTime<Utc>,
    pub price: f64,
    pub size: f64,
    #[serde(default)]
    pub exchange: Option<String>,
    /// The provider's trade id, where it has one.
    #[serde(default)]
    pub trade_id: Option<String>,
    #[serde(default)]
    pub conditions: Vec<String>,
    /// Disambiguates records of one provider and ticker with the same timestamp.
    pub seq: u64,
}

/// A quote: best bid and ask, and for snapshot providers (IEX-style) the last price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub provider: String,
    pub ticker: Ticker,
    #[serde(with = "ts")]
    pub ts: DateTime<Utc>,
    #[serde(with = "ts")]
    pub received_at: DateTime<Utc>,
    #[serde(default)]
    pub bid_price: Option<f64>,
    #[serde(default)]
    pub bid_size: Option<f64>,
    #[serde(default)]
    pub ask_price: Option<f64>,
    #[serde(default)]
    pub ask_size: Option<f64>,
    #[serde(default)]
    pub last_price: Option<f64>,
    #[serde(default)]
    pub volume: Option<f64>,
    pub seq: u64,
}

/// How long a bar spans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timeframe {
    /// One minute (live bars, bars built from trades, minute history).
    #[default]
    #[serde(rename = "1Min")]
    Minute,
    /// One session day (history: provider daily bars, imported OHLCV files); `start` is
    /// midnight New York time of the session's date.
    #[serde(rename = "1Day")]
    Day,
}

impl Timeframe {
    pub fn is_minute(&self) -> bool {
        *self == Timeframe::Minute
    }

    /// As the providers write it: `1Min`, `1Day`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Timeframe::Minute => "1Min",
            Timeframe::Day => "1Day",
        }
    }
}

impl std::str::FromStr for Timeframe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "1min" | "1m" | "minute" => Ok(Timeframe::Minute),
            "1day" | "1d" | "day" => Ok(Timeframe::Day),
            _ => Err(format!("timeframe {s:?} is not 1Min or 1Day")),
        }
    }
}

/// An OHLCV bar: one minute, or one session day (history).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub provider: String,
    pub ticker: Ticker,
    /// Start of the minute.
    #[serde(with = "ts")]
    pub start: DateTime<Utc>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    #[serde(default)]
    pub trade_count: Option<u64>,
    #[serde(default)]
    pub vwap: Option<f64>,
    /// `provider` when the provider sent the bar, `trades` when cashtag built it.
    pub origin: String,
    #[serde(default, with = "ts_opt")]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Timeframe::is_minute")]
    pub timeframe: Timeframe,
    /// The close adjusted for later splits and dividends, where the source gives it
    /// (Yahoo's `Adj Close`, Alpaca with `adjustment=all`): what daily returns use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adj_close: Option<f64>,
}

/// Anything a fetcher hands to the sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Post(Post),
    Trade(Trade),
    Quote(Quote),
    Bar(Bar),
}

impl Record {
    /// Reads a record's JSON (as [`serde_json::to_vec`] writes it: the `type` tag first)
    /// without serde's buffering of internally tagged enums: the tag picks the variant and
    /// the whole object is read as that struct (which ignores the tag). Anything else —
    /// the tag elsewhere, whitespace — takes the generic path, with the same result.
    pub fn from_json(data: &[u8]) -> serde_json::Result<Record> {
        if let Some(rest) = data.strip_prefix(b"{\"type\":\"") {
            let kind_end = rest.iter().position(|b| *b == b'"').unwrap_or(0);
            if rest.get(kind_end + 1) == Some(&b',') {
                match &rest[..kind_end] {
                    b"post" => return serde_json::from_slice(data).map(Record::Post),
                    b"trade" => return serde_json::from_slice(data).map(Record::Trade),
                    b"quote" => return serde_json::from_slice(data).map(Record::Quote),
                    b"bar" => return serde_json::from_slice(data).map(Record::Bar),
                    _ => {}
                }
            }
        }
        serde_json::from_slice(data)
    }

    /// The natural unique key; the same record always yields the same key.
    pub fn key(&self) -> String {
        match self {
            Record::Post(p) => format!("{}:{}", p.source, p.id),
            Record::Trade(t) => format!("{}:{}:{}:{}", t.provider, t.ticker, rfc3339(&t.ts), t.seq),
            Record::Quote(q) => format!("{}:{}:{}:{}", q.provider, q.ticker, rfc3339(&q.ts), q.seq),
            Record::Bar(b) if b.timeframe.is_minute() => {
                format!("{}:{}:{}:{}", b.provider, b.ticker, rfc3339(&b.start), b.origin)
            }
            Record::Bar(b) => format!("{}:{}:{}:{}:1d", b.provider, b.ticker, rfc3339(&b.start), b.origin),
        }
    }

    /// `post`, `trade`, `quote` or `bar`.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Post(_) => "post",
            Record::Trade(_) => "trade",
            Record::Quote(_) => "quote",
            Record::Bar(_) => "bar",
        }
    }

    /// The ticker a record is about; for a post that mentions several, the first.
    /// Used as the Kinesis partition key so load spreads over shards by ticker.
    pub fn partition_ticker(&self) -> Option<&Ticker> {
        match self {
            Record::Post(p) => p.tickers.first(),
            Record::Trade(t) => Some(&t.ticker),
            Record::Quote(q) => Some(&q.ticker),
            Record::Bar(b) => Some(&b.ticker),
        }
    }

    /// The provider or source name.
    pub fn origin(&self) -> &str {
        match self {
            Record::Post(p) => &p.source,
            Record::Trade(t) => &t.provider,
            Record::Quote(q) => &q.provider,
            Record::Bar(b) => &b.provider,
        }
    }

    /// The instant the record describes.
    pub fn event_time(&self) -> DateTime<Utc> {
        match self {
            Record::Post(p) => p.created_at,
            Record::Trade(t) => t.ts,
            Record::Quote(q) => q.ts,
            Record::Bar(b) => b.start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn trade() -> Trade {
        Trade {
            provider: "alpaca".into(),
            ticker: Ticker::parse("AAPL").unwrap(),
            ts: Utc.with_ymd_and_hms(2026, 11, 27, 14, 30, 1).unwrap(),
            received_at: Utc.with_ymd_and_hms(2026, 11, 27, 14, 30, 2).unwrap(),
            price: 231.5,
            size: 100.0,
            exchange: Some("V".into()),
            trade_id: Some("52983525029461".into()),
            conditions: vec!["@".into()],
            seq: 52983525029461,
        }
    }

    #[test]
    fn from_json_reads_what_the_generic_path_reads() {
        let r = Record::Trade(trade());
        let json = serde_json::to_vec(&r).unwrap();
        assert!(json.starts_with(b"{\"type\":\"trade\","));
        assert_eq!(Record::from_json(&json).unwrap(), r);
        // The tag last, or spaced: the generic path, same record.
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&json).unwrap();
        let tag = v.remove("type").unwrap();
        v.insert("type".into(), tag);
        assert_eq!(Record::from_json(&serde_json::to_vec(&v).unwrap()).unwrap(), r);
        assert_eq!(Record::from_json(&serde_json::to_vec_pretty(&r).unwrap()).unwrap(), r);
        // A tag that does not fit the fields fails on both paths; an unknown tag too.
        let as_post = String::from_utf8(json.clone()).unwrap().replacen("\"trade\"", "\"post\"", 1);
        assert!(Record::from_json(as_post.as_bytes()).is_err());
        assert!(serde_json::from_slice::<Record>(as_post.as_bytes()).is_err());
        let unknown = String::from_utf8(json).unwrap().replacen("\"trade\"", "\"tick\"", 1);
        assert!(Record::from_json(unknown.as_bytes()).is_err());
    }

    #[test]
    fn json_uses_rfc3339_and_a_type_tag() {
        let r = Record::Trade(trade());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["type"], "trade");
        assert_eq!(json["ts"], "2026-11-27T14:30:01.000Z");
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.key(), "alpaca:AAPL:2026-11-27T14:30:01.000Z:52983525029461");
    }

    #[test]
    fn bson_uses_native_dates() {
        let t = trade();
        // The raw serializer is what the MongoDB driver uses for typed collections.
        let raw = bson::to_raw_document_buf(&t).unwrap();
        let doc = raw.to_document().unwrap();
        assert!(matches!(doc.get("ts"), Some(bson::Bson::DateTime(_))), "{doc}");
        let back: Trade = bson::from_slice(raw.as_bytes()).unwrap();
        assert_eq!(back, t);
    }
}
