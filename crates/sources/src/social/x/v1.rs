//! Twitter API v1.1 tweet objects, the shape of the classic API and of most research
//! archives: `created_at` like `Wed Jan 01 03:59:03 +0000 2014`, `id_str`, `text` or
//! `full_text` (or `extended_tweet.full_text`), `user`, `entities.symbols`,
//! `retweeted_status`. They become the same posts as v2 tweets (source `x`, the same id),
//! so an archive and a live collection of one tweet never store it twice.

use std::collections::HashSet;

use cashtag_core::{Author, Engagement, Post, Ticker};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::NAME;
use crate::ParseError;
use crate::cashtag::{extract, merge_tags};

#[derive(Deserialize)]
struct Symbol {
    text: String,
}

#[derive(Deserialize, Default)]
struct Entities {
    #[serde(default)]
    symbols: Vec<Symbol>,
}

#[derive(Deserialize)]
struct Extended {
    full_text: Option<String>,
    #[serde(default)]
    entities: Option<Entities>,
}

#[derive(Deserialize)]
struct User {
    id_str: Option<String>,
    id: Option<u64>,
    screen_name: Option<String>,
    followers_count: Option<u64>,
}

#[derive(Deserialize)]
struct Tweet {
    id_str: Option<String>,
    id: Option<u64>,
    created_at: String,
    text: Option<String>,
    full_text: Option<String>,
    extended_tweet: Option<Extended>,
    user: Option<User>,
    #[serde(default)]
    entities: Option<Entities>,
    retweeted_status: Option<serde_json::Value>,
    lang: Option<String>,
    favorite_count: Option<u64>,
    retweet_count: Option<u64>,
    reply_count: Option<u64>,
    quote_count: Option<u64>,
}

/// The text-bearing part of a retweeted original.
#[derive(Deserialize)]
struct Body {
    text: Option<String>,
    full_text: Option<String>,
    extended_tweet: Option<Extended>,
    user: Option<User>,
    #[serde(default)]
    entities: Option<Entities>,
}

impl Body {
    fn full(&self) -> Option<String> {
        self.extended_tweet
            .as_ref()
            .and_then(|e| e.full_text.clone())
            .or_else(|| self.full_text.clone())
            .or_else(|| self.text.clone())
    }

    fn entities(self) -> Option<Entities> {
        self.extended_tweet.and_then(|e| e.entities).or(self.entities)
    }
}

/// Parses v1.1's `created_at`.
pub fn parse_created_at(s: &str) -> Result<DateTime<Utc>, ParseError> {
    DateTime::parse_from_str(s, "%a %b %d %H:%M:%S %z %Y")
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ParseError(format!("created_at {s:?} is not like \"Wed Jan 01 03:59:03 +0000 2014\": {e}")))
}

/// Whether a JSON object looks like a v1.1 tweet: it has a `user` object (v2 tweets name
/// their author by `author_id`).
pub fn looks_like(v: &serde_json::Value) -> bool {
    v.get("user").is_some_and(|u| u.is_object())
}

/// One v1.1 tweet as a post; `tickers` is empty when it mentions no watched ticker.
pub fn parse_tweet(
    v: serde_json::Value,
    received_at: DateTime<Utc>,
    watched: &HashSet<Ticker>,
) -> Result<Post, ParseError> {
    let t: Tweet = serde_json::from_value(v).map_err(|e| ParseError(format!("v1.1 tweet: {e}")))?;
    let id = t.id_str.clone().or(t.id.map(|i| i.to_string())).ok_or_else(|| ParseError::new("tweet without id"))?;
    let created_at = parse_created_at(&t.created_at)?;
    // A retweet's own text is truncated and may have lost its cashtags: read the original's.
    let original = t.retweeted_status.as_ref().and_then(|r| serde_json::from_value::<Body>(r.clone()).ok());
    let (text, entities) = match (original, t.extended_tweet) {
        (Some(o), _) if o.full().is_some() => {
            let name = o.user.as_ref().and_then(|u| u.screen_name.clone()).unwrap_or_default();
            (format!("RT @{name}: {}", o.full().unwrap_or_default()), o.entities())
        }
        (_, Some(Extended { full_text: Some(f), entities })) => (f, entities.or(t.entities)),
        _ => (t.full_text.or(t.text).ok_or_else(|| ParseError::new("tweet without text"))?, t.entities),
    };
    let tags: Vec<String> = entities.map(|e| e.symbols.into_iter().map(|s| s.text).collect()).unwrap_or_default();
    let tickers = merge_tags(extract(&text, watched), tags.iter().map(|s| s.as_str()), watched);
    let user = t.user;
    Ok(Post {
        source: NAME.into(),
        id,
        created_at,
        received_at,
        text,
        lang: t.lang.filter(|l| l != "und"),
        author: Author {
            id: user.as_ref().and_then(|u| u.id_str.clone().or(u.id.map(|i| i.to_string()))).unwrap_or_default(),
            name: user.as_ref().and_then(|u| u.screen_name.clone()).unwrap_or_default(),
            followers: user.as_ref().and_then(|u| u.followers_count),
        },
        engagement: Some(Engagement {
            likes: t.favorite_count,
            reposts: t.retweet_count,
            replies: t.reply_count,
            quotes: t.quote_count,
        }),
        tickers,
        is_repost: t.retweeted_status.is_some(),
        author_label: None,
        sentiment: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_classic_tweets() {
        let at: DateTime<Utc> = "2026-11-24T15:00:00Z".parse().unwrap();
        let w: HashSet<Ticker> = [Ticker::parse("AAPL").unwrap()].into_iter().collect();
        let v: serde_json::Value = serde_json::from_str(
            r#"{"created_at":"Wed Jan 01 03:59:03 +0000 2014","id":418971234567890123,"id_str":"418971234567890123","text":"short $AAPL","extended_tweet":{"full_text":"long text about $AAPL going up"},"user":{"id_str":"77","screen_name":"t","followers_count":5},"entities":{"symbols":[{"text":"AAPL","indices":[6,11]}]},"lang":"en","favorite_count":2,"retweet_count":1,"new_field":{"x":1}}"#,
        )
        .unwrap();
        assert!(looks_like(&v));
        let p = parse_tweet(v, at, &w).unwrap();
        assert_eq!(p.id, "418971234567890123");
        assert_eq!(p.created_at.to_rfc3339(), "2014-01-01T03:59:03+00:00");
        assert_eq!(p.text, "long text about $AAPL going up");
        assert_eq!((p.author.id.as_str(), p.author.followers), ("77", Some(5)));
        assert!(!p.is_repost);
        let rt: serde_json::Value = serde_json::from_str(
            r#"{"created_at":"Thu Jan 02 10:00:00 +0000 2014","id_str":"2","text":"RT @a: long words that get cut …","user":{"id_str":"1"},"retweeted_status":{"id_str":"1","user":{"screen_name":"a"},"full_text":"long words that get cut off before $AAPL"}}"#,
        )
        .unwrap();
        let rt = parse_tweet(rt, at, &w).unwrap();
        assert!(rt.is_repost);
        assert_eq!(rt.text, "RT @a: long words that get cut off before $AAPL", "the original's full text");
        let none: serde_json::Value = serde_json::from_str(
            r#"{"created_at":"Thu Jan 02 10:00:00 +0000 2014","id_str":"3","text":"$MSFT","user":{}}"#,
        )
        .unwrap();
        assert!(parse_tweet(none, at, &w).unwrap().tickers.is_empty());
        assert!(parse_created_at("2014-01-01").is_err());
    }
}
