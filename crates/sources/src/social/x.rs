//! X API v2 filtered stream.
//!
//! **Rules** are cashtag disjunctions built from the watchlist —
//! `($AAPL OR $MSFT …) lang:en -is:retweet` — packed under the rule length limit
//! (1,024 characters by default) and the rule count limit, tagged `cashtag:<n>`. They are
//! synchronized at start and whenever the watchlist changes: missing rules added, stale
//! ones (ours only, by tag) deleted, nothing duplicated; invalid rules are reported.
//!
//! The **stream** is read line by line with a ~20 s read timeout (X sends a blank
//! keep-alive line about every 20 s). Reconnects follow X's guidance: network errors back
//! off linearly (+250 ms per attempt, up to 16 s), HTTP errors exponentially from 5 s (up
//! to 320 s), HTTP 429 exponentially from 60 s; an `operational-disconnect` message means
//! reconnect. Each line's `data`, `includes.users` and `matching_rules` become a post.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use cashtag_core::{Author, Engagement, EventKind, Post, Record, Secret, Ticker};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::cashtag::{extract, merge_tags};
use crate::social::{post, watched};
use crate::{SourceCtx, SourceError};

const PROVIDER: &str = "x";
pub const RULE_TAG_PREFIX: &str = "cashtag:";

/// Reconnect timing (X's documented policy by default; tests shorten it).
#[derive(Debug, Clone)]
pub struct XTiming {
    pub read_timeout: Duration,
    pub network_step: Duration,
    pub network_max: Duration,
    pub http_initial: Duration,
    pub http_max: Duration,
    pub rate_limit_initial: Duration,
}

impl Default for XTiming {
    fn default() -> Self {
        XTiming {
            read_timeout: Duration::from_secs(20),
            network_step: Duration::from_millis(250),
            network_max: Duration::from_secs(16),
            http_initial: Duration::from_secs(5),
            http_max: Duration::from_secs(320),
            rate_limit_initial: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct XConfig {
    pub api_url: String,
    pub bearer: Secret,
    pub rule_max_len: usize,
    pub max_rules: usize,
    pub languages: Vec<String>,
    pub include_reposts: bool,
    pub timing: XTiming,
}

/// The rule values (with their tags) that cover the tickers.
pub fn build_rules(tickers: &[Ticker], cfg: &XConfig) -> Result<Vec<(String, String)>, String> {
    let mut suffix = String::new();
    match cfg.languages.len() {
        0 => {}
        1 => suffix.push_str(&format!(" lang:{}", cfg.languages[0])),
        _ => suffix.push_str(&format!(
            " ({})",
            cfg.languages.iter().map(|l| format!("lang:{l}")).collect::<Vec<_>>().join(" OR ")
        )),
    }
    if !cfg.include_reposts {
        suffix.push_str(" -is:retweet");
    }
    let mut rules: Vec<String> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let render = |tags: &[String]| format!("({}){suffix}", tags.join(" OR "));
    for t in tickers {
        let tag = format!("${t}");
        let mut candidate = current.clone();
        candidate.push(tag.clone());
        if render(&candidate).len() <= cfg.rule_max_len {
            current = candidate;
        } else {
            if current.is_empty() {
                return Err(format!("rule length limit {} is too small for {tag}", cfg.rule_max_len));
            }
            rules.push(render(&current));
            current = vec![tag];
        }
    }
    if !current.is_empty() {
        rules.push(render(&current));
    }
    if rules.len() > cfg.max_rules {
        return Err(format!("{} rules needed, the limit is {}", rules.len(), cfg.max_rules));
    }
    Ok(rules.into_iter().enumerate().map(|(i, v)| (v, format!("{RULE_TAG_PREFIX}{}", i + 1))).collect())
}

/// An existing rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Rule {
    pub id: String,
    pub value: String,
    #[serde(default)]
    pub tag: Option<String>,
}

/// What to delete and add to go from `existing` to `desired`. Only rules with our tag
/// prefix are ever deleted; a value present twice is deleted down to one.
pub fn plan_sync(existing: &[Rule], desired: &[(String, String)]) -> (Vec<String>, Vec<(String, String)>) {
    let want: HashSet<&str> = desired.iter().map(|(v, _)| v.as_str()).collect();
    let mut kept: HashSet<&str> = HashSet::new();
    let mut delete = Vec::new();
    for r in existing {
        let ours = r.tag.as_deref().is_some_and(|t| t.starts_with(RULE_TAG_PREFIX));
        if !ours {
            kept.insert(&r.value);
            continue;
        }
        if want.contains(r.value.as_str()) && kept.insert(&r.value) {
            continue;
        }
        delete.push(r.id.clone());
    }
    let add = desired.iter().filter(|(v, _)| !kept.contains(v.as_str())).cloned().collect();
    (delete, add)
}

#[derive(Deserialize)]
struct Metrics {
    #[serde(default)]
    like_count: Option<u64>,
    #[serde(default)]
    retweet_count: Option<u64>,
    #[serde(default)]
    reply_count: Option<u64>,
    #[serde(default)]
    quote_count: Option<u64>,
}

#[derive(Deserialize)]
struct Tag {
    tag: String,
}

#[derive(Deserialize, Default)]
struct Entities {
    #[serde(default)]
    cashtags: Vec<Tag>,
}

#[derive(Deserialize)]
struct Referenced {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Tweet {
    id: String,
    text: String,
    author_id: Option<String>,
    created_at: Option<DateTime<Utc>>,
    lang: Option<String>,
    public_metrics: Option<Metrics>,
    #[serde(default)]
    entities: Option<Entities>,
    #[serde(default)]
    referenced_tweets: Vec<Referenced>,
}

#[derive(Deserialize)]
struct UserMetrics {
    followers_count: Option<u64>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: Option<String>,
    public_metrics: Option<UserMetrics>,
}

#[derive(Deserialize, Default)]
struct Includes {
    #[serde(default)]
    users: Vec<User>,
}

#[derive(Deserialize)]
struct Line {
    data: Option<Tweet>,
    #[serde(default)]
    includes: Includes,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// One line of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum XLine {
    KeepAlive,
    /// A post; `None` when it mentions no watched ticker.
    Post(Option<Post>),
    /// `operational-disconnect`: reconnect.
    Disconnect(String),
    /// Another error message from X.
    Error(String),
}

pub fn parse_line(line: &str, received_at: DateTime<Utc>, watched: &HashSet<Ticker>) -> Result<XLine, String> {
    if line.trim().is_empty() {
        return Ok(XLine::KeepAlive);
    }
    let l: Line = serde_json::from_str(line).map_err(|e| format!("stream line: {e}"))?;
    if let Some(t) = l.data {
        let tickers = extract(&t.text, watched);
        let tags = t
            .entities
            .as_ref()
            .map(|e| e.cashtags.iter().map(|c| c.tag.as_str()).collect::<Vec<_>>())
            .unwrap_or_default();
        let tickers = merge_tags(tickers, tags, watched);
        if tickers.is_empty() {
            return Ok(XLine::Post(None));
        }
        let user = t.author_id.as_ref().and_then(|a| l.includes.users.iter().find(|u| &u.id == a));
        let author = Author {
            id: t.author_id.clone().unwrap_or_default(),
            name: user.and_then(|u| u.username.clone()).unwrap_or_default(),
            followers: user.and_then(|u| u.public_metrics.as_ref()).and_then(|m| m.followers_count),
        };
        let engagement = t.public_metrics.map(|m| Engagement {
            likes: m.like_count,
            reposts: m.retweet_count,
            replies: m.reply_count,
            quotes: m.quote_count,
        });
        let is_repost = t.referenced_tweets.iter().any(|r| r.kind == "retweeted");
        return Ok(XLine::Post(Some(post(
            PROVIDER,
            t.id,
            t.created_at.unwrap_or(received_at),
            received_at,
            t.text,
            t.lang,
            author,
            engagement,
            tickers,
            is_repost,
            None,
        ))));
    }
    if let Some(e) = l.errors.first() {
        let title = e.get("title").and_then(|t| t.as_str()).unwrap_or_default().to_string();
        let detail = e.get("detail").and_then(|t| t.as_str()).unwrap_or_default();
        if title == "operational-disconnect" || e.get("disconnect_type").is_some() {
            return Ok(XLine::Disconnect(format!("{title} {detail}").trim().to_string()));
        }
        return Ok(XLine::Error(format!("{title} {detail}").trim().to_string()));
    }
    Err("stream line with neither data nor errors".into())
}

pub struct XStream {
    cfg: XConfig,
    http: reqwest::Client,
}

enum Ended {
    Cancelled,
    Network(String),
    Http(reqwest::StatusCode),
    RateLimited,
}

impl XStream {
    pub fn new(cfg: XConfig) -> Self {
        XStream {
            cfg,
            http: reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build().expect("http client"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.api_url.trim_end_matches('/'))
    }

    /// Synchronizes the stream rules with the watchlist.
    pub async fn sync_rules(&self, ctx: &SourceCtx) -> Result<(), String> {
        let tickers: Vec<Ticker> = ctx.watchlist.borrow().tickers();
        let desired = build_rules(&tickers, &self.cfg)?;
        let resp = self
            .http
            .get(self.url("/2/tweets/search/stream/rules"))
            .bearer_auth(self.cfg.bearer.expose())
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| format!("listing rules: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("listing rules: HTTP {}", resp.status()));
        }
        #[derive(Deserialize)]
        struct Rules {
            #[serde(default)]
            data: Vec<Rule>,
        }
        let existing: Rules = resp.json().await.map_err(|e| format!("listing rules: {}", e.without_url()))?;
        let (delete, add) = plan_sync(&existing.data, &desired);
        if !delete.is_empty() {
            self.post_rules(json!({"delete": {"ids": delete}})).await?;
        }
        if !add.is_empty() {
            let body = json!({"add": add.iter().map(|(v, t)| json!({"value": v, "tag": t})).collect::<Vec<_>>()});
            let answer = self.post_rules(body).await?;
            let invalid = answer.pointer("/meta/summary/invalid").and_then(|v| v.as_u64()).unwrap_or(0);
            if invalid > 0 {
                let errors = answer.get("errors").cloned().unwrap_or_default();
                ctx.bus.emit(
                    ctx.bus
                        .event(EventKind::Error, "x.rule_invalid", format!("x: {invalid} rule(s) refused as invalid"))
                        .with("errors", errors),
                );
            }
        }
        ctx.bus.emit(
            ctx.bus
                .event(
                    EventKind::Activity,
                    "x.rules_synced",
                    format!(
                        "x: rules synchronized: {} wanted, {} added, {} deleted",
                        desired.len(),
                        add.len(),
                        delete.len()
                    ),
                )
                .with("rules", desired.len())
                .with("added", add.len())
                .with("deleted", delete.len()),
        );
        Ok(())
    }

    async fn post_rules(&self, body: serde_json::Value) -> Result<serde_json::Value, String> {
        let resp = self
            .http
            .post(self.url("/2/tweets/search/stream/rules"))
            .bearer_auth(self.cfg.bearer.expose())
            .timeout(Duration::from_secs(20))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("changing rules: {}", e.without_url()))?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("changing rules: HTTP {status}: {v}"));
        }
        Ok(v)
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let timing = self.cfg.timing.clone();
        let mut network_attempts = 0u32;
        let mut http_delay = timing.http_initial;
        let mut rate_delay = timing.rate_limit_initial;
        if let Err(e) = self.sync_rules(ctx).await {
            ctx.event(EventKind::Error, "x.rules_failed", format!("x: {e}"));
        }
        loop {
            let ended = self.stream_once(ctx, &mut network_attempts, &mut http_delay, &mut rate_delay).await?;
            let pause = match ended {
                Ended::Cancelled => return Ok(()),
                Ended::Network(why) => {
                    network_attempts += 1;
                    let d = (timing.network_step * network_attempts).min(timing.network_max);
                    ctx.event(
                        EventKind::Warning,
                        "source.disconnected",
                        format!("x: {why}; reconnecting in {:.2} s", d.as_secs_f64()),
                    );
                    d
                }
                Ended::Http(status) => {
                    let d = http_delay;
                    http_delay = (http_delay * 2).min(timing.http_max);
                    ctx.event(
                        EventKind::Warning,
                        "source.disconnected",
                        format!("x: HTTP {status}; reconnecting in {:.1} s", d.as_secs_f64()),
                    );
                    d
                }
                Ended::RateLimited => {
                    let d = rate_delay;
                    rate_delay *= 2;
                    ctx.event(
                        EventKind::Warning,
                        "source.rate_limited",
                        format!("x: HTTP 429; reconnecting in {:.1} s", d.as_secs_f64()),
                    );
                    d
                }
            };
            if !crate::backoff::sleep_or_cancel(pause, &ctx.cancel).await {
                return Ok(());
            }
        }
    }

    async fn stream_once(
        &self,
        ctx: &SourceCtx,
        network_attempts: &mut u32,
        http_delay: &mut Duration,
        rate_delay: &mut Duration,
    ) -> Result<Ended, SourceError> {
        let req = self.http.get(self.url("/2/tweets/search/stream")).bearer_auth(self.cfg.bearer.expose()).query(&[
            ("tweet.fields", "created_at,author_id,lang,public_metrics,entities,referenced_tweets"),
            ("expansions", "author_id"),
            ("user.fields", "username,public_metrics"),
        ]);
        let resp = tokio::select! {
            r = req.send() => r,
            _ = ctx.cancel.cancelled() => return Ok(Ended::Cancelled),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Ok(Ended::Network(e.without_url().to_string())),
        };
        match resp.status() {
            s if s.is_success() => {}
            reqwest::StatusCode::TOO_MANY_REQUESTS => return Ok(Ended::RateLimited),
            reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
                ctx.event(
                    EventKind::Error,
                    "source.auth_failed",
                    format!("x: HTTP {}; check twitter.x_bearer_token and the app's access level", resp.status()),
                );
                return Err(SourceError::Auth { provider: PROVIDER, message: resp.status().to_string() });
            }
            s => return Ok(Ended::Http(s)),
        }
        ctx.event(EventKind::Activity, "source.connected", "x: filtered stream connected");
        *network_attempts = 0;
        *http_delay = self.cfg.timing.http_initial;
        *rate_delay = self.cfg.timing.rate_limit_initial;
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut watchlist = ctx.watchlist.clone();
        let mut subscribed: BTreeSet<Ticker> = watchlist.borrow_and_update().tickers().into_iter().collect();
        loop {
            tokio::select! {
                chunk = tokio::time::timeout(self.cfg.timing.read_timeout, body.next()) => {
                    let chunk = match chunk {
                        Err(_) => return Ok(Ended::Network(format!("no data or keep-alive for {} s", self.cfg.timing.read_timeout.as_secs()))),
                        Ok(None) => return Ok(Ended::Network("stream closed by the server".into())),
                        Ok(Some(Err(e))) => return Ok(Ended::Network(e.without_url().to_string())),
                        Ok(Some(Ok(c))) => c,
                    };
                    buf.extend_from_slice(&chunk);
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let line = String::from_utf8_lossy(&line).trim().to_string();
                        let at = ctx.now();
                        if line.is_empty() {
                            continue;
                        }
                        ctx.record_raw(PROVIDER, "stream", &line, at);
                        match parse_line(&line, at, &watched(ctx)) {
                            Ok(XLine::Post(Some(p))) => {
                                if !ctx.emit(Record::Post(p)).await {
                                    return Ok(Ended::Cancelled);
                                }
                            }
                            Ok(XLine::Disconnect(why)) => return Ok(Ended::Network(format!("operational disconnect: {why}"))),
                            Ok(XLine::Error(msg)) => ctx.event(EventKind::Warning, "source.error", format!("x: {msg}")),
                            Ok(_) => {}
                            Err(e) => ctx.malformed(PROVIDER, &e, &line),
                        }
                    }
                }
                changed = watchlist.changed() => {
                    if changed.is_ok() {
                        let now: BTreeSet<Ticker> = watchlist.borrow_and_update().tickers().into_iter().collect();
                        if now != subscribed {
                            subscribed = now;
                            if let Err(e) = self.sync_rules(ctx).await {
                                ctx.event(EventKind::Error, "x.rules_failed", format!("x: {e}"));
                            }
                        }
                    }
                }
                _ = ctx.cancel.cancelled() => return Ok(Ended::Cancelled),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize) -> XConfig {
        XConfig {
            api_url: String::new(),
            bearer: Secret::default(),
            rule_max_len: max,
            max_rules: 1000,
            languages: vec!["en".into()],
            include_reposts: false,
            timing: XTiming::default(),
        }
    }

    #[test]
    fn rules_pack_under_the_length_limit() {
        let tickers: Vec<Ticker> = (0..300u32)
            .map(|i| {
                Ticker::parse(&format!(
                    "A{}{}{}",
                    (b'A' + (i / 676) as u8) as char,
                    (b'A' + (i / 26 % 26) as u8) as char,
                    (b'A' + (i % 26) as u8) as char
                ))
                .unwrap()
            })
            .collect();
        let rules = build_rules(&tickers, &cfg(1024)).unwrap();
        assert!(rules.len() >= 3);
        for (v, tag) in &rules {
            assert!(v.len() <= 1024, "{}", v.len());
            assert!(v.ends_with(") lang:en -is:retweet"), "{v}");
            assert!(tag.starts_with(RULE_TAG_PREFIX));
        }
        // Every ticker exactly once.
        let all: Vec<&str> =
            rules.iter().flat_map(|(v, _)| v.split(['(', ')', ' ']).filter(|w| w.starts_with('$'))).collect();
        assert_eq!(all.len(), 300);
        let one = build_rules(&tickers[..2], &cfg(1024)).unwrap();
        assert_eq!(one[0].0, "($AAAA OR $AAAB) lang:en -is:retweet");
        assert!(build_rules(&tickers, &cfg(20)).is_err());
    }

    #[test]
    fn sync_adds_missing_deletes_stale_and_never_duplicates() {
        let r = |id: &str, v: &str, tag: Option<&str>| Rule {
            id: id.into(),
            value: v.into(),
            tag: tag.map(str::to_string),
        };
        let existing = vec![
            r("1", "A", Some("cashtag:1")),
            r("2", "A", Some("cashtag:9")),
            r("3", "OLD", Some("cashtag:2")),
            r("4", "someone else's", Some("other")),
        ];
        let desired = vec![("A".to_string(), "cashtag:1".to_string()), ("B".to_string(), "cashtag:2".to_string())];
        let (delete, add) = plan_sync(&existing, &desired);
        assert_eq!(delete, vec!["2", "3"]);
        assert_eq!(add, vec![("B".to_string(), "cashtag:2".to_string())]);
    }

    #[test]
    fn parses_lines() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let w: HashSet<Ticker> = [Ticker::parse("AAPL").unwrap(), Ticker::parse("BA").unwrap()].into_iter().collect();
        let line = r#"{"data":{"id":"1","text":"$BABA and $AAPL","author_id":"9","created_at":"2026-11-24T14:59:59.000Z","lang":"en","public_metrics":{"like_count":3,"retweet_count":1,"reply_count":0,"quote_count":0},"entities":{"cashtags":[{"start":0,"end":5,"tag":"BABA"},{"tag":"AAPL"}]}},"includes":{"users":[{"id":"9","username":"trader","public_metrics":{"followers_count":120}}]},"matching_rules":[{"id":"5","tag":"cashtag:1"}]}"#;
        let XLine::Post(Some(p)) = parse_line(line, at, &w).unwrap() else { panic!() };
        assert_eq!(p.tickers, vec![Ticker::parse("AAPL").unwrap()]);
        assert_eq!((p.author.name.as_str(), p.author.followers), ("trader", Some(120)));
        assert_eq!(parse_line("\r\n", at, &w).unwrap(), XLine::KeepAlive);
        assert!(matches!(parse_line(r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"x"}]}"#, at, &w).unwrap(), XLine::Disconnect(_)));
        assert!(parse_line("{oops", at, &w).is_err());
        assert_eq!(parse_line(r#"{"data":{"id":"2","text":"no tags"}}"#, at, &w).unwrap(), XLine::Post(None));
    }
}
