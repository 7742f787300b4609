//! Alpaca's WebSocket session: greeting, auth, subscription, error frames, watchlist
//! changes and the backfill of a gap, plugged into the shared loop of [`crate::ws`].

use std::collections::BTreeSet;

use cashtag_core::catalog;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::parse::parse_frame;
use super::{Alpaca, NAME};
use crate::ws::{Ended, Flow, WsConn, WsProvider};
use crate::{BoxFuture, ParseError, Parsed, Signal, SourceCtx, SourceError};

impl Alpaca {
    async fn authenticate(&self, conn: &mut WsConn<'_>) -> Result<(), Ended> {
        let mut sent_auth = false;
        loop {
            let (text, at) = conn.next_text().await?;
            let parsed = match parse_frame(&text, at) {
                Ok(p) => p,
                Err(e) => {
                    conn.ctx().malformed(NAME, &e.0, &text);
                    continue;
                }
            };
            for s in parsed.signals {
                match s {
                    Signal::Status(m) if m == "connected" && !sent_auth => {
                        let auth = json!({"action": "auth", "key": self.config.key_id.expose(), "secret": self.config.secret_key.expose()});
                        conn.send_json(&auth).await.map_err(Ended::Lost)?;
                        sent_auth = true;
                    }
                    Signal::Status(m) if m == "authenticated" => return Ok(()),
                    Signal::Error { code, message } => {
                        let code = code.unwrap_or(0);
                        return Err(match code {
                            401..=403 => {
                                conn.ctx().emit_event(catalog::source_auth_failed(
                                    NAME,
                                    format!("authentication failed ({code} {message})"),
                                    "stocks.alpaca.key_id / stocks.alpaca.secret_key",
                                ));
                                Ended::Failed(SourceError::Auth {
                                    provider: NAME,
                                    message: format!("{code} {message}"),
                                })
                            }
                            406 => {
                                conn.ctx().emit_event(catalog::source_connection_limit(
                                    NAME,
                                    format!("connection limit exceeded ({message}); another client uses this key"),
                                ));
                                Ended::Lost(format!("{code} {message}"))
                            }
                            _ => {
                                conn.ctx().emit_event(catalog::source_error(
                                    NAME,
                                    format!("error {code} {message} during login"),
                                ));
                                Ended::Lost(format!("{code} {message}"))
                            }
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    async fn change_subscription(
        conn: &mut WsConn<'_>,
        action: &str,
        symbols: &BTreeSet<String>,
    ) -> Result<(), String> {
        let list: Vec<&String> = symbols.iter().collect();
        conn.send_json(&json!({"action": action, "trades": list, "quotes": list, "bars": list})).await
    }
}

impl WsProvider for Alpaca {
    fn name(&self) -> &'static str {
        NAME
    }

    fn url(&self) -> String {
        format!("{}/v2/{}", self.config.ws_url.trim_end_matches('/'), self.config.feed)
    }

    fn open<'a>(
        &'a mut self,
        conn: &'a mut WsConn<'_>,
        tickers: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<String, Ended>> {
        Box::pin(async move {
            self.authenticate(conn).await?;
            Self::change_subscription(conn, "subscribe", tickers).await.map_err(Ended::Lost)?;
            Ok(format!("connected to the {} feed, {} symbols", self.config.feed, tickers.len()))
        })
    }

    fn parse(&mut self, text: &str, at: DateTime<Utc>, _ctx: &SourceCtx) -> Result<Parsed, ParseError> {
        parse_frame(text, at)
    }

    fn on_signal(&mut self, signal: &Signal, ctx: &SourceCtx) -> Flow {
        if let Signal::Error { code, message } = signal {
            let detail = format!("error {}: {message}", code.unwrap_or(0));
            ctx.emit_event(match code {
                Some(405) => catalog::source_symbol_limit(NAME, detail),
                Some(406) => catalog::source_connection_limit(NAME, detail),
                _ => catalog::source_error(NAME, detail),
            });
        }
        Flow::Continue
    }

    fn resubscribe<'a>(
        &'a mut self,
        conn: &'a mut WsConn<'_>,
        add: &'a BTreeSet<String>,
        remove: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if !add.is_empty() {
                Self::change_subscription(conn, "subscribe", add).await?;
            }
            if !remove.is_empty() {
                Self::change_subscription(conn, "unsubscribe", remove).await?;
            }
            conn.ctx().emit_event(catalog::source_resubscribed(NAME, add.len(), remove.len()));
            Ok(())
        })
    }

    fn on_gap(&mut self, ctx: &SourceCtx, from: DateTime<Utc>, to: DateTime<Utc>, tickers: &BTreeSet<String>) {
        if to - from <= TimeDelta::minutes(1) {
            return;
        }
        let me = Alpaca { config: self.config.clone(), http: self.http.clone() };
        let ctx = ctx.clone();
        let symbols: Vec<String> = tickers.iter().cloned().collect();
        tokio::spawn(async move { me.backfill(&ctx, &symbols, from, to).await });
    }
}
