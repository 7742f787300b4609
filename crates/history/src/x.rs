//! X API v2 search as history: full-archive search (`/2/tweets/search/all`, Pro and
//! Enterprise plans) when the plan has it, else recent search (`/2/tweets/search/recent`,
//! the last 7 days) — detected with one small request and said. The queries are the live
//! stream's packed cashtag rules; `start_time`/`end_time`, `next_token` pagination, the
//! stream's fields and expansions; `x-rate-limit-remaining`/`-reset` are obeyed before
//! the limit is hit, and a 429 waits for the reset.

use std::time::Duration;

use cashtag_core::{Secret, Ticker};
use cashtag_sources::social::x::{XConfig, build_rules, parse_search_page};
use chrono::{DateTime, TimeDelta, Utc};

use crate::HistoryError;
use crate::alpaca::snippet;
use crate::backfill::{Fetched, Pager, Task};

const NAME: &str = "x";
const FIELDS: [(&str, &str); 3] = [
    ("tweet.fields", "created_at,author_id,lang,public_metrics,entities,referenced_tweets"),
    ("expansions", "author_id"),
    ("user.fields", "username,public_metrics"),
];

/// Which search endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The last 7 days (every plan with search).
    Recent,
    /// The full archive (Pro, Enterprise).
    All,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Recent => "/2/tweets/search/recent",
            Endpoint::All => "/2/tweets/search/all",
        }
    }
}

pub struct XSearch {
    pub api_url: String,
    pub bearer: Secret,
    pub endpoint: Endpoint,
    pub http: reqwest::Client,
}

fn refused(message: String) -> HistoryError {
    HistoryError::Refused { provider: NAME, message }
}

impl XSearch {
    pub fn new(api_url: &str, bearer: Secret, http: reqwest::Client) -> Self {
        XSearch { api_url: api_url.trim_end_matches('/').to_string(), bearer, endpoint: Endpoint::Recent, http }
    }

    /// Asks full-archive search for the smallest page: Ok(All) when the plan has it,
    /// Ok(Recent) when X answers 403 (not enrolled, forbidden), an error on bad credentials.
    pub async fn detect(&mut self) -> Result<Endpoint, HistoryError> {
        let resp = self
            .http
            .get(format!("{}{}", self.api_url, Endpoint::All.path()))
            .bearer_auth(self.bearer.expose())
            .query(&[("query", "$SPY"), ("max_results", "10")])
            .send()
            .await
            .map_err(|e| HistoryError::Provider { provider: NAME, message: format!("search: {}", e.without_url()) })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        self.endpoint = match status.as_u16() {
            200 | 429 => Endpoint::All,
            403 => Endpoint::Recent,
            401 => {
                return Err(refused(format!("search: 401 Unauthorized: {} (check the bearer token)", snippet(&text))));
            }
            _ => {
                return Err(HistoryError::Provider {
                    provider: NAME,
                    message: format!("search probe: {status}: {}", snippet(&text)),
                });
            }
        };
        Ok(self.endpoint)
    }

    /// The range this endpoint can serve: recent search starts at most 7 days back and
    /// ends at least 10 s before now; returns the clipped range and whether it was clipped.
    pub fn clip(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>, bool) {
        let latest = now - TimeDelta::seconds(10);
        let earliest = match self.endpoint {
            Endpoint::Recent => now - TimeDelta::days(7) + TimeDelta::minutes(1),
            Endpoint::All => "2006-03-21T00:00:00Z".parse().expect("valid"),
        };
        let (f, t) = (from.max(earliest), to.min(latest));
        (f, t, f != from || t != to)
    }

    /// One task per packed query over `[from, to)` (as [`XSearch::clip`] cut it). The
    /// checkpoint is named by the range asked for, `asked`, so a rerun of the same command
    /// finds it although "now" has moved: a range that reaches the present is read up to
    /// the first run (the live stream collects from then on; `--restart` reads it again).
    pub fn tasks(
        &self,
        tickers: &[Ticker],
        cfg: &XConfig,
        asked: (DateTime<Utc>, DateTime<Utc>),
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Task>, HistoryError> {
        let rules = build_rules(tickers, cfg).map_err(|e| HistoryError::Input(format!("x queries: {e}")))?;
        let (f, t) = (cashtag_core::time::rfc3339(&from), cashtag_core::time::rfc3339(&to));
        let (af, at) = (cashtag_core::time::rfc3339(&asked.0), cashtag_core::time::rfc3339(&asked.1));
        let what = match self.endpoint {
            Endpoint::Recent => "recent",
            Endpoint::All => "all",
        };
        Ok(rules
            .into_iter()
            .map(|(query, tag)| Task {
                id: format!("x:{what}:{query}:{af}:{at}"),
                label: format!("x {what} {tag}"),
                key: format!("{f}|{t}|{query}"),
            })
            .collect())
    }
}

/// When the rate-limit window resets, from `x-rate-limit-reset` (epoch seconds).
fn reset_in(resp: &reqwest::Response) -> Option<Duration> {
    let reset: i64 = resp.headers().get("x-rate-limit-reset")?.to_str().ok()?.trim().parse().ok()?;
    let now = Utc::now().timestamp();
    Some(Duration::from_secs((reset - now).clamp(1, 900) as u64))
}

fn remaining(resp: &reqwest::Response) -> Option<u64> {
    resp.headers().get("x-rate-limit-remaining")?.to_str().ok()?.trim().parse().ok()
}

impl Pager for XSearch {
    fn provider(&self) -> &'static str {
        NAME
    }

    async fn fetch(&self, task: &Task, token: Option<&str>) -> Result<Fetched, HistoryError> {
        let mut parts = task.key.splitn(3, '|');
        let (start, end, query) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let max = match self.endpoint {
            Endpoint::Recent => "100",
            Endpoint::All => "500",
        };
        let mut q: Vec<(&str, &str)> =
            vec![("query", query), ("start_time", start), ("end_time", end), ("max_results", max)];
        q.extend(FIELDS);
        if let Some(t) = token {
            q.push(("next_token", t));
        }
        let provider = |message: String| HistoryError::Provider { provider: NAME, message };
        let resp = self
            .http
            .get(format!("{}{}", self.api_url, self.endpoint.path()))
            .bearer_auth(self.bearer.expose())
            .query(&q)
            .send()
            .await
            .map_err(|e| provider(format!("search request failed: {}", e.without_url())))?;
        let status = resp.status();
        if status.as_u16() == 429 {
            let wait = reset_in(&resp).unwrap_or(Duration::from_secs(60));
            return Ok(Fetched::Wait(wait, "HTTP 429 on search: the rate-limit window is used up".into()));
        }
        // Obey the window before it is exhausted; full-archive search also allows ~1 request/s.
        let mut then_wait = (remaining(&resp) == Some(0)).then(|| reset_in(&resp)).flatten();
        if self.endpoint == Endpoint::All {
            then_wait = Some(then_wait.unwrap_or_default().max(Duration::from_secs(1)));
        }
        let at = Utc::now();
        let text = resp.text().await.map_err(|e| provider(format!("reading search: {}", e.without_url())))?;
        match status.as_u16() {
            401 | 403 => return Err(refused(format!("search: {status}: {}", snippet(&text)))),
            400..=499 => return Err(HistoryError::Input(format!("x search: {status}: {}", snippet(&text)))),
            200..=299 => {}
            _ => return Err(provider(format!("search: {status}"))),
        }
        let watched = tickers_of(query);
        let parsed = parse_search_page(&text, at, &watched).map_err(|e| provider(e.0))?;
        let read = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("data").and_then(|d| d.as_array()).map(|a| a.len() as u64))
            .unwrap_or(0);
        let next = parsed.signals.iter().find_map(|s| match s {
            cashtag_sources::Signal::NextPage(t) => Some(t.clone()),
            _ => None,
        });
        Ok(Fetched::Page { parsed, read, next, then_wait })
    }
}

/// The tickers a packed query names (`($AAPL OR $MSFT) lang:en` → AAPL, MSFT).
fn tickers_of(query: &str) -> std::collections::HashSet<Ticker> {
    query
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix('$'))
        .filter_map(|t| Ticker::parse(t).ok())
        .collect()
}
