//! Finnhub trades over WebSocket: `wss://ws.finnhub.io?token=…`, one
//! `{"type":"subscribe","symbol":…}` per symbol; messages `{"type":"trade","data":[…]}`,
//! `{"type":"ping"}` and `{"type":"error","msg":…}`. Reconnects with backoff (the shared
//! loop of [`crate::ws`]).

use std::collections::{BTreeSet, HashSet};

use cashtag_core::config::FinnhubSettings;
use cashtag_core::{Record, Secret, Ticker, Trade, catalog};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::ws::{Ended, Flow, WsConn, WsProvider};
use crate::{BoxFuture, ParseError, Parsed, Signal, Source, SourceCtx, SourceError, content_seq};

pub const NAME: &str = "finnhub";

#[derive(Deserialize)]
struct FinnhubTrade {
    p: f64,
    s: String,
    t: i64,
    v: f64,
    #[serde(default)]
    c: Option<Vec<String>>,
}

/// A trade of a message. Finnhub gives no trade id, so the record's `seq` is a hash of
/// the print, its place among identical prints of the same message and the message's
/// receive time: two identical prints (same price, size and millisecond) stay two trades,
/// and a replayed recording (same payload, same receive time) gives the same keys.
fn trade(
    item: &serde_json::Value,
    text: &str,
    occurrence: usize,
    received_at: DateTime<Utc>,
) -> Result<Record, String> {
    let t: FinnhubTrade = serde_json::from_value(item.clone()).map_err(|e| format!("trade: {e}"))?;
    Ok(Record::Trade(Trade {
        provider: NAME.into(),
        ticker: Ticker::parse(&t.s).map_err(|e| e.to_string())?,
        ts: DateTime::from_timestamp_millis(t.t).ok_or("bad timestamp")?,
        received_at,
        price: t.p,
        size: t.v,
        exchange: None,
        trade_id: None,
        conditions: t.c.unwrap_or_default(),
        seq: content_seq(&format!(
            "{text}|{occurrence}|{}",
            received_at.timestamp_nanos_opt().unwrap_or(received_at.timestamp_micros())
        )),
    }))
}

/// Parses one stream message.
pub fn parse_message(text: &str, received_at: DateTime<Utc>) -> Result<Parsed, ParseError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| ParseError(format!("not JSON: {e}")))?;
    let mut out = Parsed::default();
    match v.get("type").and_then(|t| t.as_str()) {
        Some("trade") => {
            let data = v.get("data").and_then(|d| d.as_array()).ok_or("trade message without data")?;
            // How often each print came before in this message (a map: a hostile message
            // may hold a million items).
            let mut seen: std::collections::HashMap<String, usize> = Default::default();
            for item in data {
                let text = item.to_string();
                let count = seen.entry(text.clone()).or_default();
                let occurrence = *count;
                *count += 1;
                match trade(item, &text, occurrence, received_at) {
                    Ok(r) => out.records.push(r),
                    Err(e) => out.errors.push(e),
                }
            }
        }
        Some("ping") => out.signals.push(Signal::KeepAlive),
        Some("error") => out.signals.push(Signal::Error {
            code: None,
            message: v.get("msg").and_then(|m| m.as_str()).unwrap_or_default().into(),
        }),
        _ => {}
    }
    Ok(out)
}

/// Finnhub's parser (one channel, `ws`).
pub fn parse(
    _channel: &str,
    payload: &str,
    at: DateTime<Utc>,
    _watched: &HashSet<Ticker>,
) -> Result<Parsed, ParseError> {
    parse_message(payload, at)
}

pub struct Finnhub {
    url: String,
    token: Secret,
}

impl Finnhub {
    pub fn new(url: String, token: Secret) -> Self {
        Finnhub { url, token }
    }

    pub fn from_settings(s: &FinnhubSettings) -> Self {
        Finnhub::new(s.ws_url.clone(), s.token.clone())
    }
}

impl Source for Finnhub {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(crate::ws::run(self, ctx))
    }
}

async fn send_each(conn: &mut WsConn<'_>, kind: &str, symbols: &BTreeSet<String>) -> Result<(), String> {
    for s in symbols {
        conn.send_json(&json!({"type": kind, "symbol": s})).await?;
    }
    Ok(())
}

impl WsProvider for Finnhub {
    fn name(&self) -> &'static str {
        NAME
    }

    fn url(&self) -> String {
        format!("{}/?token={}", self.url.trim_end_matches('/'), self.token.expose())
    }

    fn open<'a>(
        &'a mut self,
        conn: &'a mut WsConn<'_>,
        tickers: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<String, Ended>> {
        Box::pin(async move {
            send_each(conn, "subscribe", tickers).await.map_err(Ended::Lost)?;
            Ok(format!("connected, {} symbols", tickers.len()))
        })
    }

    fn parse(&mut self, text: &str, at: DateTime<Utc>, _ctx: &SourceCtx) -> Result<Parsed, ParseError> {
        parse_message(text, at)
    }

    fn on_signal(&mut self, signal: &Signal, ctx: &SourceCtx) -> Flow {
        let Signal::Error { message, .. } = signal else { return Flow::Continue };
        let lower = message.to_ascii_lowercase();
        if lower.contains("token") || lower.contains("auth") {
            ctx.emit_event(catalog::source_auth_failed(NAME, message, "stocks.finnhub.token"));
            return Flow::Fail(SourceError::Auth { provider: NAME, message: message.clone() });
        }
        ctx.emit_event(catalog::source_error(NAME, message));
        Flow::Continue
    }

    fn resubscribe<'a>(
        &'a mut self,
        conn: &'a mut WsConn<'_>,
        add: &'a BTreeSet<String>,
        remove: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            send_each(conn, "subscribe", add).await?;
            send_each(conn, "unsubscribe", remove).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trades_pings_and_errors() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let m = parse_message(
            r#"{"type":"trade","data":[{"p":231.5,"s":"AAPL","t":1795532399123,"v":100,"c":["1"]},{"p":1,"s":"BINANCE:BTCUSDT","t":1,"v":1}]}"#,
            at,
        )
        .unwrap();
        assert_eq!(m.records.len(), 1);
        assert_eq!(m.errors.len(), 1);
        assert_eq!(parse_message(r#"{"type":"ping"}"#, at).unwrap().signals, vec![Signal::KeepAlive]);
        assert!(matches!(
            parse_message(r#"{"type":"error","msg":"Invalid token"}"#, at).unwrap().signals[0],
            Signal::Error { .. }
        ));
    }

    #[test]
    fn identical_prints_stay_distinct_and_a_replay_gives_the_same_keys() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let print = r#"{"p":231.5,"s":"AAPL","t":1795532399123,"v":100}"#;
        let message = format!(r#"{{"type":"trade","data":[{print},{print}]}}"#);
        let keys = |at| parse_message(&message, at).unwrap().records.iter().map(Record::key).collect::<Vec<_>>();
        let first = keys(at);
        assert_eq!(first.len(), 2);
        assert_ne!(first[0], first[1], "two prints of the same millisecond are two trades");
        assert_eq!(keys(at), first, "a replay of the recording gives the same keys");
        let later = keys(at + chrono::TimeDelta::milliseconds(3));
        assert!(later.iter().all(|k| !first.contains(k)), "the same prints in a later message are new trades");
    }
}
