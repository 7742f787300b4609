//! Bluesky Jetstream: the public WebSocket of new posts
//! (`/subscribe?wantedCollections=app.bsky.feed.post`). There is no server-side text
//! filter, so posts are filtered here: by cashtag tag facets (`$AAPL`, since January 2026)
//! and by cashtags in the text. After a reconnect the stream resumes from the last
//! `time_us` cursor (the shared loop of [`crate::ws`]); the replay is inclusive, so a post
//! may come twice — the service de-duplicates by id.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use cashtag_core::config::BlueskySettings;
use cashtag_core::{Author, Post, Record, Ticker};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::cashtag::{extract, merge_tags};
use crate::ws::{Ended, WsConn, WsProvider};
use crate::{BoxFuture, ParseError, Parsed, Signal, Source, SourceCtx, SourceError};

pub const NAME: &str = "bluesky";

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
/// and the message's cursor ([`Signal::Cursor`]).
pub fn parse_message(text: &str, received_at: DateTime<Utc>, watched: &HashSet<Ticker>) -> Result<Parsed, ParseError> {
    let m: Message = serde_json::from_str(text).map_err(|e| ParseError(format!("jetstream message: {e}")))?;
    let mut out = Parsed::signal(Signal::Cursor(m.time_us));
    let Some(c) =
        m.commit.filter(|c| m.kind == "commit" && c.operation == "create" && c.collection == "app.bsky.feed.post")
    else {
        return Ok(out);
    };
    let record: PostRecord = serde_json::from_value(c.record.ok_or("create without record")?)
        .map_err(|e| ParseError(format!("post record: {e}")))?;
    let tags = record
        .facets
        .iter()
        .flat_map(|f| f.features.iter())
        .filter(|f| f.kind == "app.bsky.richtext.facet#tag")
        .filter_map(|f| f.tag.as_deref())
        .filter(|t| t.starts_with('$'));
    let tickers = merge_tags(extract(&record.text, watched), tags, watched);
    if tickers.is_empty() {
        return Ok(out);
    }
    let created =
        record.created_at.unwrap_or_else(|| DateTime::from_timestamp_micros(m.time_us).unwrap_or(received_at));
    out.records.push(Record::Post(Post {
        source: NAME.into(),
        id: format!("at://{}/app.bsky.feed.post/{}", m.did, c.rkey),
        created_at: created,
        received_at,
        text: record.text,
        lang: record.langs.first().cloned(),
        author: Author { id: m.did.clone(), name: m.did, followers: None },
        engagement: None,
        tickers,
        is_repost: false,
        author_label: None,
        sentiment: None,
    }));
    Ok(out)
}

/// Bluesky's parser (one channel, `ws`).
pub fn parse(
    _channel: &str,
    payload: &str,
    at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<Parsed, ParseError> {
    parse_message(payload, at, watched)
}

pub struct Jetstream {
    base: String,
    cursor: Option<i64>,
}

impl Jetstream {
    pub fn new(base: String) -> Self {
        Jetstream { base, cursor: None }
    }

    pub fn from_settings(s: &BlueskySettings) -> Self {
        Jetstream::new(s.jetstream_url.clone())
    }
}

impl Source for Jetstream {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(crate::ws::run(self, ctx))
    }
}

impl WsProvider for Jetstream {
    fn name(&self) -> &'static str {
        NAME
    }

    fn url(&self) -> String {
        let mut url = format!("{}/subscribe?wantedCollections=app.bsky.feed.post", self.base.trim_end_matches('/'));
        if let Some(c) = self.cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        url
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn open<'a>(
        &'a mut self,
        _conn: &'a mut WsConn<'_>,
        _tickers: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<String, Ended>> {
        let detail = match self.cursor {
            Some(c) => format!("jetstream connected, resuming from cursor {c}"),
            None => "jetstream connected".to_string(),
        };
        Box::pin(async move { Ok(detail) })
    }

    fn parse(&mut self, text: &str, at: DateTime<Utc>, ctx: &SourceCtx) -> Result<Parsed, ParseError> {
        let parsed = parse_message(text, at, &ctx.watched())?;
        for s in &parsed.signals {
            if let Signal::Cursor(c) = s {
                self.cursor = Some(*c);
            }
        }
        Ok(parsed)
    }

    /// Only frames with a post are kept: the rest of the network's firehose is not ours.
    fn keep_raw(&self, parsed: &Parsed) -> bool {
        !parsed.records.is_empty()
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
        let parsed = parse_message(&msg("buying more", "$TSLA"), at, &w).unwrap();
        assert_eq!(parsed.signals, vec![Signal::Cursor(1_795_532_400_000_000)]);
        let [Record::Post(p)] = parsed.records.as_slice() else { panic!("{parsed:?}") };
        assert_eq!(p.tickers, vec![Ticker::parse("TSLA").unwrap()]);
        assert_eq!(p.id, "at://did:plc:abc/app.bsky.feed.post/3k");
        let parsed = parse_message(&msg("$AAPL only in text", "crypto"), at, &w).unwrap();
        let [Record::Post(p)] = parsed.records.as_slice() else { panic!("{parsed:?}") };
        assert_eq!(p.tickers, vec![Ticker::parse("AAPL").unwrap()]);
        assert!(parse_message(&msg("nothing here $MSFT", "$MSFT"), at, &w).unwrap().records.is_empty());
        assert!(parse_message(r#"{"did":"d","time_us":5,"kind":"identity"}"#, at, &w).unwrap().records.is_empty());
        assert!(parse_message("not json", at, &w).is_err());
    }
}
