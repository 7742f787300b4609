//! StockTwits as history: each symbol's stream paged back with `max=<message id>`
//! (older than), 30 messages a page, until a page starts before the range; HTTP 429
//! waits (`Retry-After`, else a minute). Unauthenticated limits are per hour, so a
//! pause between requests keeps within them.

use std::time::Duration;

use cashtag_core::Ticker;
use cashtag_sources::social::stocktwits::parse_symbol_stream;
use chrono::{DateTime, Utc};

use crate::HistoryError;
use crate::alpaca::snippet;
use crate::backfill::{Fetched, Pager, Task};

const NAME: &str = "stocktwits";

pub struct StocktwitsHistory {
    pub base_url: String,
    /// Pause between two requests.
    pub every: Duration,
    pub http: reqwest::Client,
}

impl StocktwitsHistory {
    pub fn tasks(&self, tickers: &[String], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Task> {
        let (f, t) = (cashtag_core::time::rfc3339(&from), cashtag_core::time::rfc3339(&to));
        tickers
            .iter()
            .map(|sym| Task {
                id: format!("stocktwits:{sym}:{f}:{t}"),
                label: format!("stocktwits {sym}"),
                key: format!("{sym}|{f}|{t}"),
            })
            .collect()
    }
}

impl Pager for StocktwitsHistory {
    fn provider(&self) -> &'static str {
        NAME
    }

    async fn fetch(&self, task: &Task, token: Option<&str>) -> Result<Fetched, HistoryError> {
        let mut parts = task.key.split('|');
        let sym = parts.next().unwrap_or("");
        let bound = |s: Option<&str>| s.and_then(|s| s.parse::<DateTime<Utc>>().ok()).unwrap_or_default();
        let (from, to) = (bound(parts.next()), bound(parts.next()));
        let provider = |message: String| HistoryError::Provider { provider: NAME, message };
        let mut req = self.http.get(format!("{}/api/2/streams/symbol/{sym}.json", self.base_url.trim_end_matches('/')));
        if let Some(max) = token {
            req = req.query(&[("max", max)]);
        }
        let resp = req.send().await.map_err(|e| provider(format!("symbol stream: {}", e.without_url())))?;
        let status = resp.status();
        if status.as_u16() == 429 {
            let wait = cashtag_sources::http::retry_after(&resp).unwrap_or(Duration::from_secs(60));
            return Ok(Fetched::Wait(wait, "HTTP 429 on the symbol stream".into()));
        }
        let at = Utc::now();
        let text =
            resp.text().await.map_err(|e| provider(format!("reading the symbol stream: {}", e.without_url())))?;
        if status.as_u16() == 404 {
            return Err(HistoryError::Input(format!("stocktwits has no symbol {sym}: {}", snippet(&text))));
        }
        if !status.is_success() {
            return Err(provider(format!("symbol stream {sym}: {status}")));
        }
        // The messages' ids and times decide the paging; the parser decides the posts.
        let page: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| provider(format!("symbol stream: {e}")))?;
        let items: Vec<(u64, Option<DateTime<Utc>>)> = page
            .get("messages")
            .and_then(|m| m.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        let id = m.get("id")?.as_u64()?;
                        Some((id, m.get("created_at").and_then(|c| c.as_str()).and_then(|c| c.parse().ok())))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let watched: std::collections::HashSet<Ticker> = Ticker::parse(sym).into_iter().collect();
        let mut parsed = parse_symbol_stream(&text, at, &watched).map_err(|e| provider(e.0))?;
        parsed.records.retain(|r| {
            let t = r.event_time();
            t >= from && t < to
        });
        let oldest = items.iter().map(|i| i.0).min();
        let oldest_time = items.iter().filter_map(|i| i.1).min();
        let next = match (oldest, oldest_time) {
            (Some(id), Some(t)) if t >= from && id > 1 => Some((id - 1).to_string()),
            _ => None,
        };
        Ok(Fetched::Page { parsed, read: items.len() as u64, next, then_wait: Some(self.every) })
    }
}
