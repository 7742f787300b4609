//! Alpaca REST history: one-minute bars for a gap, page by page (`next_page_token`), with
//! HTTP 429 honoured (`Retry-After`, else backoff).

use std::time::Duration;

use cashtag_core::{Backoff, backoff::sleep_or_cancel, catalog};
use chrono::{DateTime, Utc};

use super::parse::{BARS, parse_bars_page};
use super::{Alpaca, NAME};
use crate::http::retry_after;
use crate::{Signal, SourceCtx};

impl Alpaca {
    /// Fetches one-minute bars for `[from, to)` page by page and emits them.
    pub async fn backfill(&self, ctx: &SourceCtx, symbols: &[String], from: DateTime<Utc>, to: DateTime<Utc>) {
        let mut token: Option<String> = None;
        let mut count = 0usize;
        let mut backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60));
        let failed = |detail: String| ctx.emit_event(catalog::source_backfill_failed(NAME, detail));
        loop {
            let mut req = self
                .http
                .get(format!("{}/v2/stocks/bars", self.config.rest_url.trim_end_matches('/')))
                .header("APCA-API-KEY-ID", self.config.key_id.expose())
                .header("APCA-API-SECRET-KEY", self.config.secret_key.expose())
                .query(&[
                    ("symbols", symbols.join(",")),
                    ("timeframe", "1Min".into()),
                    ("start", cashtag_core::time::rfc3339(&from)),
                    ("end", cashtag_core::time::rfc3339(&to)),
                    ("limit", "10000".into()),
                    ("feed", self.config.feed.clone()),
                ]);
            if let Some(t) = &token {
                req = req.query(&[("page_token", t)]);
            }
            let resp = tokio::select! {
                r = req.send() => r,
                _ = ctx.cancel.cancelled() => return,
            };
            let resp = match resp {
                Ok(r) => r,
                Err(e) => return failed(format!("backfill request failed: {}", e.without_url())),
            };
            if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(&resp).unwrap_or_else(|| backoff.next_delay());
                ctx.emit_event(catalog::source_rate_limited(
                    NAME,
                    format!("HTTP 429 on bars; waiting {} s", wait.as_secs_f64()),
                    wait.as_secs_f64(),
                ));
                if !sleep_or_cancel(wait, &ctx.cancel).await {
                    return;
                }
                continue;
            }
            if !resp.status().is_success() {
                return failed(format!("bars request answered {}", resp.status()));
            }
            let at = ctx.now();
            let text = match resp.text().await {
                Ok(t) => t,
                Err(e) => return failed(format!("reading bars: {}", e.without_url())),
            };
            ctx.record_raw(NAME, BARS, &text, at);
            let page = match parse_bars_page(&text, at) {
                Ok(p) => p,
                Err(e) => return ctx.malformed(NAME, &e.0, &text),
            };
            token = page.signals.iter().find_map(|s| match s {
                Signal::NextPage(t) => Some(t.clone()),
                _ => None,
            });
            count += page.records.len();
            if !ctx.deliver(NAME, &text, page).await {
                return;
            }
            if token.is_none() {
                break;
            }
        }
        ctx.emit_event(catalog::source_backfill(NAME, "one-minute bars", count, from, to));
    }
}
