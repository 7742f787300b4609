//! Bluesky Jetstream: the public WebSocket of new posts
//! (`/subscribe?wantedCollections=app.bsky.feed.post`). There is no server-side text
//! filter, so posts are filtered here: by cashtag tag facets (`$AAPL`, since January 2026)
//! and by cashtags in the text. After a reconnect the stream resumes from the last
//! `time_us` cursor; the replay is inclusive, so a post may come twice — the service
//! de-duplicates by id.

use std::collections::HashSet;
use std::time::Duration;

use cashtag_core::{Author, EventKind, Post, Record, Ticker};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::backoff::Backoff;
use crate::cashtag::{extract, merge_tags};
use crate::social::{post, watched};
use crate::ws;
use crate::{SourceCtx, SourceError};

const PROVIDER: &str = "bluesky";

#[derive(Deserialize)]
struct Feature {
    #[serde(rename = "$type", default)]
    kind: String,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Deserialize)]
struct Facet {
    #[serde(default)]
    features: Vec<Feature>,
}

#[derive(Deserialize)]
struct PostRecord {
    text: String,
    #[serde(rename = "createdAt")]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    langs: Vec<String>,
    #[serde(default)]
    facets: Vec<Facet>,
}

#[derive(Deserialize)]
struct Commit {
    operation: String,
    collection: String,
    rkey: String,
    record: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Message {
    did: String,
    time_us: i64,
    kind: String,
    commit: Option<Commit>,
}

/// Parses one Jetstream message: the post (if it is a new post about a watched ticker)
/// and the message's cursor.
pub fn parse_message(
    text: &str,
    received_at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<(Option<Post>, i64), String> {
    let m: Message = serde_json::from_str(text).map_err(|e| format!("jetstream message: {e}"))?;
    let Some(c) =
        m.commit.filter(|c| m.kind == "commit" && c.operation == "create" && c.collection == "app.bsky.feed.post")
    else {
        return Ok((None, m.time_us));
    };
    let record: PostRecord =
        serde_json::from_value(c.record.ok_or("create without record")?).map_err(|e| format!("post record: {e}"))?;
    let tags = record
        .facets
        .iter()
        .flat_map(|f| f.features.iter())
        .filter(|f| f.kind == "app.bsky.richtext.facet#tag")
        .filter_map(|f| f.tag.as_deref())
        .filter(|t| t.starts_with('$'));
    let tickers = merge_tags(extract(&record.text, watched), tags, watched);
    if tickers.is_empty() {
        return Ok((None, m.time_us));
    }
    let created =
        record.created_at.unwrap_or_else(|| DateTime::from_timestamp_micros(m.time_us).unwrap_or(received_at));
    Ok((
        Some(post(
            PROVIDER,
            format!("at://{}/app.bsky.feed.post/{}", m.did, c.rkey),
            created,
            received_at,
            record.text,
            record.langs.first().cloned(),
            Author { id: m.did.clone(), name: m.did, followers: None },
            None,
            tickers,
            false,
            None,
        )),
        m.time_us,
    ))
}

pub struct Jetstream {
    base: String,
    cursor: Option<i64>,
}

impl Jetstream {
    pub fn new(base: String) -> Self {
        Jetstream { base, cursor: None }
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            if ctx.cancel.is_cancelled() {
                return Ok(());
            }
            let mut url = format!("{}/subscribe?wantedCollections=app.bsky.feed.post", self.base.trim_end_matches('/'));
            if let Some(c) = self.cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let mut socket = match ws::connect(&url, Duration::from_secs(10)).await {
                Ok(s) => s,
                Err(e) => {
                    ctx.event(EventKind::Warning, "source.disconnected", format!("bluesky: {e}; retrying"));
                    if !backoff.wait(&ctx.cancel).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            ctx.event(
                EventKind::Activity,
                "source.connected",
                match self.cursor {
                    Some(c) => format!("bluesky: jetstream connected, resuming from cursor {c}"),
                    None => "bluesky: jetstream connected".to_string(),
                },
            );
            backoff.reset();
            let why = loop {
                tokio::select! {
                    m = tokio::time::timeout(Duration::from_secs(60), ws::next_text(&mut socket)) => {
                        let text = match m {
                            Ok(Some(Ok(t))) => t,
                            Ok(Some(Err(e))) => break e,
                            Ok(None) => break "closed by the server".to_string(),
                            Err(_) => break "no message for 60 s".to_string(),
                        };
                        let at = ctx.now();
                        match parse_message(&text, at, &watched(ctx)) {
                            Ok((p, cursor)) => {
                                self.cursor = Some(cursor);
                                if let Some(p) = p {
                                    ctx.record_raw(PROVIDER, "ws", &text, at);
                                    if !ctx.emit(Record::Post(p)).await {
                                        return Ok(());
                                    }
                                }
                            }
                            Err(e) => ctx.malformed(PROVIDER, &e, &text),
                        }
                    }
                    _ = ctx.cancel.cancelled() => {
                        let _ = socket.close(None).await;
                        return Ok(());
                    }
                }
            };
            ctx.event(EventKind::Warning, "source.disconnected", format!("bluesky: {why}; reconnecting"));
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
    fn filters_by_tag_facets_and_text() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let w: HashSet<Ticker> = [Ticker::parse("AAPL").unwrap(), Ticker::parse("TSLA").unwrap()].into_iter().collect();
        let msg = |text: &str, facet: &str| {
            format!(
                r#"{{"did":"did:plc:abc","time_us":1795532400000000,"kind":"commit","commit":{{"rev":"1","operation":"create","collection":"app.bsky.feed.post","rkey":"3k","cid":"x","record":{{"$type":"app.bsky.feed.post","text":"{text}","createdAt":"2026-11-24T14:59:59.000Z","langs":["en"],"facets":[{{"index":{{"byteStart":0,"byteEnd":5}},"features":[{{"$type":"app.bsky.richtext.facet#tag","tag":"{facet}"}}]}}]}}}}}}"#
            )
        };
        let (p, cursor) = parse_message(&msg("buying more", "$TSLA"), at, &w).unwrap();
        let p = p.unwrap();
        assert_eq!(cursor, 1_795_532_400_000_000);
        assert_eq!(p.tickers, vec![Ticker::parse("TSLA").unwrap()]);
        assert_eq!(p.id, "at://did:plc:abc/app.bsky.feed.post/3k");
        let (p, _) = parse_message(&msg("$AAPL only in text", "crypto"), at, &w).unwrap();
        assert_eq!(p.unwrap().tickers, vec![Ticker::parse("AAPL").unwrap()]);
        let (p, _) = parse_message(&msg("nothing here $MSFT", "$MSFT"), at, &w).unwrap();
        assert!(p.is_none());
        let (p, _) = parse_message(r#"{"did":"d","time_us":5,"kind":"identity"}"#, at, &w).unwrap();
        assert!(p.is_none());
        assert!(parse_message("not json", at, &w).is_err());
    }
}
