//! Alpaca's history: `/v2/stocks/bars` (1Min or 1Day, with `adjustment`) and
//! `/v2/stocks/trades`, one task per ticker and range, `next_page_token` pagination,
//! `limit` up to 10,000, HTTP 429 waited out (`Retry-After`, else a minute).

use std::time::Duration;

use cashtag_core::{Secret, Timeframe};
use cashtag_sources::market::alpaca::parse::{HistoryKind, parse_history_page};
use chrono::{DateTime, Utc};

use crate::HistoryError;
use crate::backfill::{Fetched, Pager, Task};

const NAME: &str = "alpaca";

/// What to fetch.
#[derive(Debug, Clone)]
pub struct AlpacaHistory {
    pub rest_url: String,
    pub key_id: Secret,
    pub secret_key: Secret,
    /// `iex` or `sip`.
    pub feed: String,
    /// `raw`, `split`, `dividend` or `all` (bars only).
    pub adjustment: String,
    pub limit: u32,
    /// Bars of a timeframe, or trades.
    pub trades: bool,
    pub timeframe: Timeframe,
    pub http: reqwest::Client,
}

impl AlpacaHistory {
    fn what(&self) -> String {
        if self.trades { "trades".into() } else { format!("bars-{}", self.timeframe.as_str()) }
    }

    /// One task per ticker over `[from, to)`.
    pub fn tasks(&self, tickers: &[String], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Task> {
        let (f, t) = (cashtag_core::time::rfc3339(&from), cashtag_core::time::rfc3339(&to));
        tickers
            .iter()
            .map(|sym| Task {
                id: format!("alpaca:{}:{sym}:{f}:{t}:{}:{}", self.what(), self.feed, self.adjustment),
                label: format!("alpaca {} {sym}", self.what()),
                key: format!("{sym}|{f}|{t}"),
            })
            .collect()
    }
}

impl Pager for AlpacaHistory {
    fn provider(&self) -> &'static str {
        NAME
    }

    async fn fetch(&self, task: &Task, token: Option<&str>) -> Result<Fetched, HistoryError> {
        let mut parts = task.key.split('|');
        let (sym, start, end) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = if self.trades { "trades" } else { "bars" };
        let mut q: Vec<(&str, String)> = vec![
            ("symbols", sym.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("limit", self.limit.to_string()),
            ("feed", self.feed.clone()),
        ];
        if !self.trades {
            q.push(("timeframe", self.timeframe.as_str().to_string()));
            q.push(("adjustment", self.adjustment.clone()));
        }
        if let Some(t) = token {
            q.push(("page_token", t.to_string()));
        }
        let provider = |message: String| HistoryError::Provider { provider: NAME, message };
        let resp = self
            .http
            .get(format!("{}/v2/stocks/{path}", self.rest_url.trim_end_matches('/')))
            .header("APCA-API-KEY-ID", self.key_id.expose())
            .header("APCA-API-SECRET-KEY", self.secret_key.expose())
            .query(&q)
            .send()
            .await
            .map_err(|e| provider(format!("{path} request failed: {}", e.without_url())))?;
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let wait = cashtag_sources::http::retry_after(&resp).unwrap_or(Duration::from_secs(60));
            return Ok(Fetched::Wait(wait, format!("HTTP 429 on {path}")));
        }
        let at = Utc::now();
        let text = resp.text().await.map_err(|e| provider(format!("reading {path}: {}", e.without_url())))?;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(HistoryError::Refused {
                provider: NAME,
                message: format!("{path}: {status}: {} (check the key and the plan's feed)", snippet(&text)),
            });
        }
        if status.is_client_error() {
            return Err(HistoryError::Input(format!("alpaca {path}: {status}: {}", snippet(&text))));
        }
        if !status.is_success() {
            return Err(provider(format!("{path}: {status}")));
        }
        let kind = if self.trades {
            HistoryKind::Trades
        } else {
            HistoryKind::Bars { timeframe: self.timeframe, adjusted: self.adjustment != "raw" }
        };
        let parsed = parse_history_page(&text, at, kind).map_err(|e| provider(e.0))?;
        let read = (parsed.records.len() + parsed.errors.len()) as u64;
        let next = parsed.signals.iter().find_map(|s| match s {
            cashtag_sources::Signal::NextPage(t) => Some(t.clone()),
            _ => None,
        });
        Ok(Fetched::Page { parsed, read, next, then_wait: None })
    }
}

/// The start of a provider's error body, for messages (never headers: they hold the keys).
pub(crate) fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    t.replace('\n', " ")
}
