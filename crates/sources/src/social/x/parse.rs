//! X API v2 payloads: filtered-stream lines (`data`, `includes.users`, `matching_rules`,
//! or `errors`). A tweet becomes a post when it mentions a watched ticker (exact cashtag
//! extraction, merged with X's own cashtag entities).

use std::collections::HashSet;

use cashtag_core::{Author, Engagement, Post, Record, Ticker};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::NAME;
use crate::cashtag::{extract, merge_tags};
use crate::{ParseError, Parsed, Signal};

/// The recording channel of stream lines.
pub const STREAM: &str = "stream";
/// The recording channel of search pages (history).
pub const SEARCH: &str = "search";

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
pub(crate) struct Tweet {
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
pub(crate) struct User {
    id: String,
    username: Option<String>,
    public_metrics: Option<UserMetrics>,
}

#[derive(Deserialize, Default)]
pub(crate) struct Includes {
    #[serde(default)]
    pub(crate) users: Vec<User>,
}

#[derive(Deserialize)]
struct Line {
    data: Option<Tweet>,
    #[serde(default)]
    includes: Includes,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// A tweet as a post, if it mentions a watched ticker; `users` are the expansion.
pub(crate) fn tweet_post(
    t: Tweet,
    users: &[User],
    received_at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Option<Post> {
    Some(tweet_any(t, users, received_at, watched)).filter(|p| !p.tickers.is_empty())
}

/// A tweet as a post, whatever it mentions (`tickers` may be empty).
fn tweet_any(t: Tweet, users: &[User], received_at: DateTime<Utc>, watched: &HashSet<Ticker>) -> Post {
    let tags: Vec<&str> =
        t.entities.as_ref().map(|e| e.cashtags.iter().map(|c| c.tag.as_str()).collect()).unwrap_or_default();
    let tickers = merge_tags(extract(&t.text, watched), tags, watched);
    let user = t.author_id.as_ref().and_then(|a| users.iter().find(|u| &u.id == a));
    Post {
        source: NAME.into(),
        id: t.id,
        created_at: t.created_at.unwrap_or(received_at),
        received_at,
        text: t.text,
        lang: t.lang,
        author: Author {
            id: t.author_id.clone().unwrap_or_default(),
            name: user.and_then(|u| u.username.clone()).unwrap_or_default(),
            followers: user.and_then(|u| u.public_metrics.as_ref()).and_then(|m| m.followers_count),
        },
        engagement: t.public_metrics.map(|m| Engagement {
            likes: m.like_count,
            reposts: m.retweet_count,
            replies: m.reply_count,
            quotes: m.quote_count,
        }),
        tickers,
        is_repost: t.referenced_tweets.iter().any(|r| r.kind == "retweeted"),
        author_label: None,
        sentiment: None,
    }
}

/// One line of the filtered stream: a post (when it mentions a watched ticker), a
/// keep-alive, a disconnect or an error.
pub fn parse_line(line: &str, received_at: DateTime<Utc>, watched: &HashSet<Ticker>) -> Result<Parsed, ParseError> {
    if line.trim().is_empty() {
        return Ok(Parsed::signal(Signal::KeepAlive));
    }
    let l: Line = serde_json::from_str(line).map_err(|e| ParseError(format!("stream line: {e}")))?;
    if let Some(t) = l.data {
        let post = tweet_post(t, &l.includes.users, received_at, watched);
        return Ok(Parsed::records(post.into_iter().map(Record::Post).collect()));
    }
    if let Some(e) = l.errors.first() {
        let title = e.get("title").and_then(|t| t.as_str()).unwrap_or_default().to_string();
        let detail = e.get("detail").and_then(|t| t.as_str()).unwrap_or_default();
        let text = format!("{title} {detail}").trim().to_string();
        if title == "operational-disconnect" || e.get("disconnect_type").is_some() {
            return Ok(Parsed::signal(Signal::Disconnect(text)));
        }
        return Ok(Parsed::signal(Signal::Error { code: None, message: text }));
    }
    Err(ParseError::new("stream line with neither data nor errors"))
}

#[derive(Deserialize)]
struct SearchMeta {
    next_token: Option<String>,
}

#[derive(Deserialize)]
struct SearchPage {
    #[serde(default)]
    data: Vec<serde_json::Value>,
    #[serde(default)]
    includes: Includes,
    meta: Option<SearchMeta>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// A page of `/2/tweets/search/recent` or `/2/tweets/search/all`: the posts about watched
/// tickers, a bad tweet object reported in `errors`, the page's `next_token` as a
/// [`Signal::NextPage`].
pub fn parse_search_page(
    text: &str,
    received_at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<Parsed, ParseError> {
    let page: SearchPage = serde_json::from_str(text).map_err(|e| ParseError(format!("search page: {e}")))?;
    let mut out = Parsed::default();
    for v in page.data {
        match serde_json::from_value::<Tweet>(v) {
            Ok(t) => out.records.extend(tweet_post(t, &page.includes.users, received_at, watched).map(Record::Post)),
            Err(e) => out.errors.push(format!("tweet: {e}")),
        }
    }
    // Partial errors (a deleted author, say) do not stop a page.
    for e in page.errors {
        out.signals.push(Signal::Error { code: None, message: e.to_string() });
    }
    if let Some(t) = page.meta.and_then(|m| m.next_token).filter(|t| !t.is_empty()) {
        out.signals.push(Signal::NextPage(t));
    }
    Ok(out)
}

/// One archived v2 tweet: a stream or lookup line (`{"data": {...}, "includes": {...}}`)
/// or a bare tweet object; `tickers` is empty when it mentions no watched ticker.
pub fn parse_archived(
    v: serde_json::Value,
    received_at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<Post, ParseError> {
    let (tweet, users) = match v {
        serde_json::Value::Object(mut o) if o.contains_key("data") => {
            let includes: Includes = o
                .remove("includes")
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| ParseError(format!("includes: {e}")))?
                .unwrap_or_default();
            (o.remove("data").unwrap_or_default(), includes.users)
        }
        other => (other, vec![]),
    };
    let t: Tweet = serde_json::from_value(tweet).map_err(|e| ParseError(format!("v2 tweet: {e}")))?;
    if t.created_at.is_none() {
        return Err(ParseError::new("v2 tweet without created_at (archive it with tweet.fields=created_at)"));
    }
    Ok(tweet_any(t, &users, received_at, watched))
}

/// X's parser, by recording channel.
pub fn parse(channel: &str, payload: &str, at: DateTime<Utc>, watched: &HashSet<Ticker>) -> Result<Parsed, ParseError> {
    match channel {
        STREAM => parse_line(payload, at, watched),
        SEARCH => parse_search_page(payload, at, watched),
        other => Err(ParseError(format!("x has no channel {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let w: HashSet<Ticker> = [Ticker::parse("AAPL").unwrap(), Ticker::parse("BA").unwrap()].into_iter().collect();
        let line = r#"{"data":{"id":"1","text":"$BABA and $AAPL","author_id":"9","created_at":"2026-11-24T14:59:59.000Z","lang":"en","public_metrics":{"like_count":3,"retweet_count":1,"reply_count":0,"quote_count":0},"entities":{"cashtags":[{"start":0,"end":5,"tag":"BABA"},{"tag":"AAPL"}]}},"includes":{"users":[{"id":"9","username":"trader","public_metrics":{"followers_count":120}}]},"matching_rules":[{"id":"5","tag":"cashtag:1"}]}"#;
        let parsed = parse_line(line, at, &w).unwrap();
        let [Record::Post(p)] = parsed.records.as_slice() else { panic!("{parsed:?}") };
        assert_eq!(p.tickers, vec![Ticker::parse("AAPL").unwrap()]);
        assert_eq!((p.author.name.as_str(), p.author.followers), ("trader", Some(120)));
        assert_eq!(parse_line("\r\n", at, &w).unwrap().signals, vec![Signal::KeepAlive]);
        let disconnect = r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"x"}]}"#;
        assert!(matches!(parse_line(disconnect, at, &w).unwrap().signals[0], Signal::Disconnect(_)));
        assert!(parse_line("{oops", at, &w).is_err());
        assert!(parse_line(r#"{"data":{"id":"2","text":"no tags"}}"#, at, &w).unwrap().is_empty());
    }
}
