//! Finnhub trades over WebSocket: `wss://ws.finnhub.io?token=…`, one
//! `{"type":"subscribe","symbol":…}` per symbol; messages `{"type":"trade","data":[…]}`,
//! `{"type":"ping"}` and `{"type":"error","msg":…}`. Reconnects with backoff.

use std::collections::BTreeSet;
use std::time::Duration;

use cashtag_core::{EventKind, Record, Secret, Ticker, Trade};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::backoff::Backoff;
use crate::ws;
use crate::{SourceCtx, SourceError, content_seq};

const PROVIDER: &str = "finnhub";

#[derive(Deserialize)]
struct FinnhubTrade {
    p: f64,
    s: String,
    t: i64,
    v: f64,
    #[serde(default)]
    c: Option<Vec<String>>,
}

/// A message of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum FinnhubMsg {
    Trades(Vec<Record>),
    Ping,
    Error(String),
    Other,
}

pub fn parse_message(text: &str, received_at: DateTime<Utc>) -> Result<(FinnhubMsg, Vec<String>), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match v.get("type").and_then(|t| t.as_str()) {
        Some("trade") => {
            let data = v.get("data").and_then(|d| d.as_array()).ok_or("trade message without data")?;
            let mut out = Vec::new();
            let mut errors = Vec::new();
            for item in data {
                let r: Result<Record, String> = (|| {
                    let t: FinnhubTrade = serde_json::from_value(item.clone()).map_err(|e| format!("trade: {e}"))?;
                    Ok(Record::Trade(Trade {
                        provider: PROVIDER.into(),
                        ticker: Ticker::parse(&t.s).map_err(|e| e.to_string())?,
                        ts: DateTime::from_timestamp_millis(t.t).ok_or("bad timestamp")?,
                        received_at,
                        price: t.p,
                        size: t.v,
                        exchange: None,
                        trade_id: None,
                        conditions: t.c.unwrap_or_default(),
                        seq: content_seq(&item.to_string()),
                    }))
                })();
                match r {
                    Ok(r) => out.push(r),
                    Err(e) => errors.push(e),
                }
            }
            Ok((FinnhubMsg::Trades(out), errors))
        }
        Some("ping") => Ok((FinnhubMsg::Ping, vec![])),
        Some("error") => {
            Ok((FinnhubMsg::Error(v.get("msg").and_then(|m| m.as_str()).unwrap_or_default().into()), vec![]))
        }
        _ => Ok((FinnhubMsg::Other, vec![])),
    }
}

pub struct Finnhub {
    url: String,
    token: Secret,
}

impl Finnhub {
    pub fn new(url: String, token: Secret) -> Self {
        Finnhub { url, token }
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            if ctx.cancel.is_cancelled() {
                return Ok(());
            }
            let url = format!("{}/?token={}", self.url.trim_end_matches('/'), self.token.expose());
            let mut socket = match ws::connect(&url, Duration::from_secs(10)).await {
                Ok(s) => s,
                Err(e) => {
                    ctx.event(EventKind::Warning, "source.disconnected", format!("finnhub: {e}; retrying"));
                    if !backoff.wait(&ctx.cancel).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            let mut subscribed = BTreeSet::new();
            let mut failed = None;
            for s in ctx.tickers() {
                if let Err(e) = ws::send_json(&mut socket, &json!({"type": "subscribe", "symbol": s})).await {
                    failed = Some(e);
                    break;
                }
                subscribed.insert(s);
            }
            if failed.is_none() {
                ctx.event(
                    EventKind::Activity,
                    "source.connected",
                    format!("finnhub: connected, {} symbols", subscribed.len()),
                );
                backoff.reset();
            }
            let mut watchlist = ctx.watchlist.clone();
            while failed.is_none() {
                tokio::select! {
                    m = tokio::time::timeout(Duration::from_secs(90), ws::next_text(&mut socket)) => {
                        let text = match m {
                            Ok(Some(Ok(t))) => t,
                            Ok(Some(Err(e))) => { failed = Some(e); break; }
                            Ok(None) => { failed = Some("closed by the server".into()); break; }
                            Err(_) => { failed = Some("no data for 90 s".into()); break; }
                        };
                        let at = ctx.now();
                        ctx.record_raw(PROVIDER, "ws", &text, at);
                        match parse_message(&text, at) {
                            Ok((FinnhubMsg::Trades(records), errors)) => {
                                for e in errors { ctx.malformed(PROVIDER, &e, &text); }
                                for r in records {
                                    if !ctx.emit(r).await { return Ok(()); }
                                }
                            }
                            Ok((FinnhubMsg::Error(msg), _)) => {
                                if msg.to_ascii_lowercase().contains("token") || msg.to_ascii_lowercase().contains("auth") {
                                    ctx.event(EventKind::Error, "source.auth_failed", format!("finnhub: {msg}; check stocks.finnhub_token"));
                                    let _ = socket.close(None).await;
                                    return Err(SourceError::Auth { provider: PROVIDER, message: msg });
                                }
                                ctx.event(EventKind::Error, "source.error", format!("finnhub: {msg}"));
                            }
                            Ok(_) => {}
                            Err(e) => ctx.malformed(PROVIDER, &e, &text),
                        }
                    }
                    changed = watchlist.changed() => {
                        if changed.is_err() { continue; }
                        let want: BTreeSet<String> = watchlist.borrow_and_update().tickers().iter().map(|t| t.to_string()).collect();
                        for s in want.difference(&subscribed) {
                            let _ = ws::send_json(&mut socket, &json!({"type": "subscribe", "symbol": s})).await;
                        }
                        for s in subscribed.difference(&want) {
                            let _ = ws::send_json(&mut socket, &json!({"type": "unsubscribe", "symbol": s})).await;
                        }
                        subscribed = want;
                    }
                    _ = ctx.cancel.cancelled() => {
                        let _ = socket.close(None).await;
                        return Ok(());
                    }
                }
            }
            ctx.event(
                EventKind::Warning,
                "source.disconnected",
                format!("finnhub: {}; reconnecting", failed.unwrap_or_default()),
            );
            if !backoff.wait(&ctx.cancel).await {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trades_pings_and_errors() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let (m, errs) = parse_message(r#"{"type":"trade","data":[{"p":231.5,"s":"AAPL","t":1795532399123,"v":100,"c":["1"]},{"p":1,"s":"BINANCE:BTCUSDT","t":1,"v":1}]}"#, at).unwrap();
        let FinnhubMsg::Trades(t) = m else { panic!() };
        assert_eq!(t.len(), 1);
        assert_eq!(errs.len(), 1);
        assert_eq!(parse_message(r#"{"type":"ping"}"#, at).unwrap().0, FinnhubMsg::Ping);
        assert!(matches!(
            parse_message(r#"{"type":"error","msg":"Invalid token"}"#, at).unwrap().0,
            FinnhubMsg::Error(_)
        ));
    }
}
