//! What the twitter service does to every post before it is stored: duplicates (same source and id, e.g.
//! after a reconnect) and reposts are dropped, the language filter applies, and the post
//! is scored — VADER, the finance score, and the author's own label when the source has it.

use std::collections::{HashSet, VecDeque};

use cashtag_core::Record;
use cashtag_sentiment::Scorer;

/// Remembers the last `capacity` keys.
pub struct RecentKeys {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl RecentKeys {
    pub fn new(capacity: usize) -> Self {
        RecentKeys { set: HashSet::new(), order: VecDeque::new(), capacity }
    }

    /// True if the key is new (and remembers it).
    pub fn insert(&mut self, key: String) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

pub struct PostFilter {
    scorer: Scorer,
    /// `None`: duplicates are the store's business (an import, which merges the tickers
    /// of a post's copies).
    seen: Option<RecentKeys>,
    languages: Vec<String>,
    include_reposts: bool,
}

/// Why a post is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Repost,
    Language,
    /// Seen before in this process (a reconnect's replay).
    Seen,
}

impl Dropped {
    /// The reason as an import summary names it.
    pub fn reason(self) -> &'static str {
        match self {
            Dropped::Repost => "repost",
            Dropped::Language => "other language",
            Dropped::Seen => "seen before",
        }
    }
}

impl PostFilter {
    pub fn new(languages: Vec<String>, include_reposts: bool) -> Self {
        PostFilter { scorer: Scorer::new(), seen: Some(RecentKeys::new(200_000)), languages, include_reposts }
    }

    /// For an import: the same rules and scores, but copies of a post go on to the store,
    /// which knows every post stored, not only the recent ones.
    pub fn without_dedup(languages: Vec<String>, include_reposts: bool) -> Self {
        PostFilter { seen: None, ..PostFilter::new(languages, include_reposts) }
    }

    /// The post to store, scored; None to drop it.
    pub fn apply(&mut self, record: Record) -> Option<Record> {
        self.decide(record).ok()
    }

    /// The post to store, scored; or why not.
    pub fn decide(&mut self, record: Record) -> Result<Record, Dropped> {
        let Record::Post(mut p) = record else { return Ok(record) };
        if p.is_repost && !self.include_reposts {
            return Err(Dropped::Repost);
        }
        if let (false, Some(lang)) = (self.languages.is_empty(), &p.lang)
            && !self.languages.iter().any(|l| l == lang)
        {
            return Err(Dropped::Language);
        }
        if let Some(seen) = self.seen.as_mut()
            && !seen.insert(format!("{}:{}", p.source, p.id))
        {
            return Err(Dropped::Seen);
        }
        self.score(&mut p);
        Ok(Record::Post(p))
    }

    /// Scores a post for its tickers (again, when they changed).
    pub fn score(&self, p: &mut cashtag_core::Post) {
        let tickers: Vec<&str> = p.tickers.iter().map(|t| t.as_str()).collect();
        p.sentiment = Some(self.scorer.score_post(&p.text, &tickers, p.author_label));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashtag_core::{Author, Post, SentimentLabel, Ticker};

    fn post(id: &str, lang: Option<&str>, repost: bool) -> Record {
        Record::Post(Post {
            source: "x".into(),
            id: id.into(),
            created_at: chrono::Utc::now(),
            received_at: chrono::Utc::now(),
            text: "$AAPL to the moon 🚀".into(),
            lang: lang.map(str::to_string),
            author: Author::default(),
            engagement: None,
            tickers: vec![Ticker::parse("AAPL").unwrap()],
            is_repost: repost,
            author_label: Some(SentimentLabel::Bullish),
            sentiment: None,
        })
    }

    #[test]
    fn filters_and_scores() {
        let mut f = PostFilter::new(vec!["en".into()], false);
        let Some(Record::Post(p)) = f.apply(post("1", Some("en"), false)) else { panic!() };
        let s = p.sentiment.unwrap();
        assert_eq!(s.finance.label, SentimentLabel::Bullish);
        assert_eq!(s.author_label, Some(SentimentLabel::Bullish));
        assert!(f.apply(post("1", Some("en"), false)).is_none(), "duplicate");
        assert!(f.apply(post("2", Some("de"), false)).is_none(), "language");
        assert!(f.apply(post("3", None, false)).is_some(), "unknown language is kept");
        assert!(f.apply(post("4", Some("en"), true)).is_none(), "repost");
        let mut keys = RecentKeys::new(2);
        assert!(keys.insert("a".into()) && keys.insert("b".into()) && keys.insert("c".into()));
        assert!(keys.insert("a".into()), "forgotten beyond capacity");
    }
}
