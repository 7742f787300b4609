//! An IEX-Cloud-compatible REST poller: the batch quote endpoint
//! `/stable/stock/market/batch?symbols=…&types=quote&token=…`, every `poll` interval.
//! IEX Cloud itself shut down in 2024; compatible endpoints (and the original system's
//! data shape) remain. A quote is emitted when its `latestUpdate` changes. HTTP 429 is
//! honoured with `Retry-After` (the shared loop of [`crate::http`]). The token travels in
//! the query string, so URLs are never logged.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cashtag_core::config::IexSettings;
use cashtag_core::{Quote, Record, Secret, Ticker};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::http::{PollPolicy, PollRequest, Poller};
use crate::{BoxFuture, ParseError, Parsed, Source, SourceCtx, SourceError};

pub const NAME: &str = "iex";
/// The recording channel of batch answers.
pub const BATCH: &str = "batch";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IexQuote {
    symbol: String,
    latest_price: Option<f64>,
    latest_volume: Option<f64>,
    latest_update: Option<i64>,
    iex_bid_price: Option<f64>,
    iex_ask_price: Option<f64>,
    iex_bid_size: Option<f64>,
    iex_ask_size: Option<f64>,
}

#[derive(Deserialize)]
struct Entry {
    quote: Option<IexQuote>,
}

fn quote(q: &IexQuote, received_at: DateTime<Utc>) -> Result<Record, String> {
    let ticker = Ticker::parse(&q.symbol).map_err(|e| e.to_string())?;
    let ms = q.latest_update.ok_or_else(|| format!("{}: quote without latestUpdate", q.symbol))?;
    let ts = DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("{}: bad latestUpdate {ms}", q.symbol))?;
    let nz = |v: Option<f64>| v.filter(|x| *x > 0.0);
    Ok(Record::Quote(Quote {
        provider: NAME.into(),
        ticker,
        ts,
        received_at,
        bid_price: nz(q.iex_bid_price),
        bid_size: nz(q.iex_bid_size),
        ask_price: nz(q.iex_ask_price),
        ask_size: nz(q.iex_ask_size),
        last_price: q.latest_price,
        volume: q.latest_volume,
        seq: 0,
    }))
}

/// Parses a batch response: `{"AAPL": {"quote": {...}}, ...}`, in symbol order.
pub fn parse_batch(text: &str, received_at: DateTime<Utc>) -> Result<Parsed, ParseError> {
    let map: HashMap<String, Entry> = serde_json::from_str(text).map_err(|e| ParseError(format!("batch: {e}")))?;
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut out = Parsed::default();
    for k in keys {
        let Some(q) = &map[k].quote else { continue };
        match quote(q, received_at) {
            Ok(r) => out.records.push(r),
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}

/// IEX's parser (one channel, `batch`).
pub fn parse(
    _channel: &str,
    payload: &str,
    at: DateTime<Utc>,
    _watched: &HashSet<Ticker>,
) -> Result<Parsed, ParseError> {
    parse_batch(payload, at)
}

pub struct Iex {
    base: String,
    token: Secret,
    poll: Duration,
    http: reqwest::Client,
    /// The last `latestUpdate` emitted per symbol: an unchanged quote is not emitted again.
    last_update: HashMap<String, DateTime<Utc>>,
}

impl Iex {
    pub fn new(base: String, token: Secret, poll: Duration) -> Self {
        Iex { base, token, poll, http: crate::http::client(Duration::from_secs(15)), last_update: HashMap::new() }
    }

    pub fn from_settings(s: &IexSettings) -> Self {
        Iex::new(s.url.clone(), s.token.clone(), Duration::from_millis(s.poll_ms))
    }
}

impl Source for Iex {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        let http = self.http.clone();
        Box::pin(async move { crate::http::run(self, &http, ctx).await })
    }
}

impl Poller for Iex {
    fn name(&self) -> &'static str {
        NAME
    }

    fn policy(&self) -> PollPolicy {
        PollPolicy {
            interval: self.poll,
            errors_wait_interval: false,
            rate_limit_wait: None,
            auth_is_fatal: true,
            auth_hint: "stocks.iex.token",
        }
    }

    fn next_request(&mut self, http: &reqwest::Client, ctx: &SourceCtx) -> Option<PollRequest> {
        let symbols = ctx.tickers().join(",");
        let request = http.get(format!("{}/stable/stock/market/batch", self.base.trim_end_matches('/'))).query(&[
            ("symbols", symbols.as_str()),
            ("types", "quote"),
            ("token", self.token.expose()),
        ]);
        Some(PollRequest { request, channel: BATCH, about: String::new() })
    }

    fn parse(&mut self, _channel: &str, text: &str, at: DateTime<Utc>, _ctx: &SourceCtx) -> Result<Parsed, ParseError> {
        parse_batch(text, at)
    }

    fn keep(&mut self, mut parsed: Parsed) -> Parsed {
        parsed.records.retain(|r| {
            let Record::Quote(q) = r else { return true };
            self.last_update.insert(q.ticker.to_string(), q.ts) != Some(q.ts)
        });
        parsed
    }

    fn connected(&self) -> String {
        "polling the batch quote endpoint".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_batch_shape() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let text = r#"{"AAPL":{"quote":{"symbol":"AAPL","companyName":"Apple Inc","latestPrice":231.5,"latestVolume":1234567,"latestUpdate":1795532399000,"iexBidPrice":231.4,"iexAskPrice":0,"previousClose":230}},
                      "BAD":{"quote":{"symbol":"B@D","latestUpdate":1}},
                      "MSFT":{"quote":{"symbol":"MSFT","latestPrice":410}}}"#;
        let parsed = parse_batch(text, at).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.errors.len(), 2);
        let Record::Quote(q) = &parsed.records[0] else { panic!() };
        assert_eq!((q.last_price, q.bid_price, q.ask_price), (Some(231.5), Some(231.4), None));
    }
}
