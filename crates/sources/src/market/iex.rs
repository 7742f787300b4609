//! An IEX-Cloud-compatible REST poller: the batch quote endpoint
//! `/stable/stock/market/batch?symbols=…&types=quote&token=…`, every `poll` interval.
//! IEX Cloud itself shut down in 2024; compatible endpoints (and the original system's
//! data shape) remain. A quote is emitted when its `latestUpdate` changes. HTTP 429 is
//! honoured with `Retry-After`. The token travels in the query string, so URLs are never
//! logged.

use std::collections::HashMap;
use std::time::Duration;

use cashtag_core::{EventKind, Quote, Record, Secret, Ticker};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::backoff::{Backoff, sleep_or_cancel};
use crate::market::alpaca::retry_after;
use crate::{SourceCtx, SourceError};

const PROVIDER: &str = "iex";

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

/// Parses a batch response: `{"AAPL": {"quote": {...}}, ...}`.
pub fn parse_batch(text: &str, received_at: DateTime<Utc>) -> Result<(Vec<Record>, Vec<String>), String> {
    let map: HashMap<String, Entry> = serde_json::from_str(text).map_err(|e| format!("batch: {e}"))?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        let Some(q) = &map[k].quote else { continue };
        let ticker = match Ticker::parse(&q.symbol) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let Some(ms) = q.latest_update else {
            errors.push(format!("{}: quote without latestUpdate", q.symbol));
            continue;
        };
        let Some(ts) = DateTime::from_timestamp_millis(ms) else {
            errors.push(format!("{}: bad latestUpdate {ms}", q.symbol));
            continue;
        };
        let nz = |v: Option<f64>| v.filter(|x| *x > 0.0);
        out.push(Record::Quote(Quote {
            provider: PROVIDER.into(),
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
        }));
    }
    Ok((out, errors))
}

pub struct Iex {
    base: String,
    token: Secret,
    poll: Duration,
    http: reqwest::Client,
}

impl Iex {
    pub fn new(base: String, token: Secret, poll: Duration) -> Self {
        Iex {
            base,
            token,
            poll,
            http: reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("http client"),
        }
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let mut last_update: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut connected = false;
        loop {
            let symbols = ctx.tickers().join(",");
            let req = self.http.get(format!("{}/stable/stock/market/batch", self.base.trim_end_matches('/'))).query(&[
                ("symbols", symbols.as_str()),
                ("types", "quote"),
                ("token", self.token.expose()),
            ]);
            let resp = tokio::select! {
                r = req.send() => r,
                _ = ctx.cancel.cancelled() => return Ok(()),
            };
            let wait = match resp {
                Err(e) => {
                    ctx.event(
                        EventKind::Warning,
                        "source.disconnected",
                        format!("iex: request failed: {}", e.without_url()),
                    );
                    connected = false;
                    backoff.next_delay()
                }
                Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    let w = retry_after(&r).unwrap_or_else(|| backoff.next_delay());
                    ctx.event(
                        EventKind::Warning,
                        "source.rate_limited",
                        format!("iex: HTTP 429; waiting {:.1} s", w.as_secs_f64()),
                    );
                    w
                }
                Ok(r)
                    if r.status() == reqwest::StatusCode::UNAUTHORIZED
                        || r.status() == reqwest::StatusCode::FORBIDDEN =>
                {
                    ctx.event(
                        EventKind::Error,
                        "source.auth_failed",
                        format!("iex: HTTP {}; check stocks.iex_token", r.status()),
                    );
                    return Err(SourceError::Auth { provider: PROVIDER, message: r.status().to_string() });
                }
                Ok(r) if !r.status().is_success() => {
                    ctx.event(EventKind::Warning, "source.error", format!("iex: HTTP {}", r.status()));
                    backoff.next_delay()
                }
                Ok(r) => {
                    let at = ctx.now();
                    match r.text().await {
                        Ok(text) => {
                            ctx.record_raw(PROVIDER, "batch", &text, at);
                            if !connected {
                                ctx.event(
                                    EventKind::Activity,
                                    "source.connected",
                                    "iex: polling the batch quote endpoint",
                                );
                                connected = true;
                            }
                            backoff.reset();
                            match parse_batch(&text, at) {
                                Ok((quotes, errors)) => {
                                    for e in errors {
                                        ctx.malformed(PROVIDER, &e, &text);
                                    }
                                    for q in quotes {
                                        let Record::Quote(qq) = &q else { continue };
                                        let key = qq.ticker.to_string();
                                        if last_update.get(&key) == Some(&qq.ts) {
                                            continue;
                                        }
                                        last_update.insert(key, qq.ts);
                                        if !ctx.emit(q).await {
                                            return Ok(());
                                        }
                                    }
                                }
                                Err(e) => ctx.malformed(PROVIDER, &e, &text),
                            }
                        }
                        Err(e) => ctx.event(
                            EventKind::Warning,
                            "source.error",
                            format!("iex: reading the response: {}", e.without_url()),
                        ),
                    }
                    self.poll
                }
            };
            if !sleep_or_cancel(wait, &ctx.cancel).await {
                return Ok(());
            }
        }
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
        let (quotes, errors) = parse_batch(text, at).unwrap();
        assert_eq!(quotes.len(), 1);
        assert_eq!(errors.len(), 2);
        let Record::Quote(q) = &quotes[0] else { panic!() };
        assert_eq!((q.last_price, q.bid_price, q.ask_price), (Some(231.5), Some(231.4), None));
    }
}
