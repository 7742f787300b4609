//! Simulated posts and trades as cashtag records — the same records the simulated
//! sources emit, for tests and tools that need them without running a source.

use cashtag_core::{Author, Engagement, Post, Quote, Ticker, Trade};
use chrono::{DateTime, Utc};

use crate::posts::SimPost;
use crate::{SimTrade, minute_index};

impl SimPost {
    /// The post as the `sim` source emits it (not yet scored: `sentiment` is `None`).
    pub fn to_post(&self, received_at: DateTime<Utc>) -> Post {
        Post {
            source: "sim".into(),
            id: self.id.clone(),
            created_at: self.created_at,
            received_at,
            text: self.text.clone(),
            lang: Some("en".into()),
            author: Author {
                id: self.author_id.clone(),
                name: self.author_name.clone(),
                followers: Some(self.followers),
            },
            engagement: Some(Engagement {
                likes: Some(self.likes),
                reposts: Some(self.reposts),
                replies: None,
                quotes: None,
            }),
            tickers: self.tickers.iter().filter_map(|t| Ticker::parse(t).ok()).collect(),
            is_repost: false,
            author_label: None,
            sentiment: None,
        }
    }
}

impl SimTrade {
    /// Unique per ticker: the minute and the trade's index within it.
    pub fn seq(&self) -> u64 {
        minute_index(self.ts) as u64 * 10_000 + self.index as u64
    }

    /// The trade as the `sim` market emits it.
    pub fn to_trade(&self, ticker: &Ticker, received_at: DateTime<Utc>) -> Trade {
        Trade {
            provider: "sim".into(),
            ticker: ticker.clone(),
            ts: self.ts,
            received_at,
            price: self.price,
            size: self.size,
            exchange: Some("SIM".into()),
            trade_id: Some(self.seq().to_string()),
            conditions: vec![],
            seq: self.seq(),
        }
    }

    /// The quote the `sim` market emits with the trade.
    pub fn to_quote(&self, ticker: &Ticker, received_at: DateTime<Utc>) -> Quote {
        Quote {
            provider: "sim".into(),
            ticker: ticker.clone(),
            ts: self.ts,
            received_at,
            bid_price: Some(self.bid),
            bid_size: Some(1.0),
            ask_price: Some(self.ask),
            ask_size: Some(1.0),
            last_price: Some(self.price),
            volume: None,
            seq: self.seq(),
        }
    }
}

impl crate::Sim {
    /// The trades and (unscored) posts of `tickers` in the minutes `minutes`, as the
    /// simulated sources would emit them, each received the moment it happened.
    pub fn records(&self, tickers: &[&str], minutes: std::ops::Range<i64>) -> Vec<cashtag_core::Record> {
        let names: Vec<String> = tickers.iter().map(|t| t.to_string()).collect();
        let mut out = Vec::new();
        for m in minutes {
            for t in tickers {
                let Ok(ticker) = Ticker::parse(t) else { continue };
                out.extend(self.trades(t, m).iter().map(|tr| cashtag_core::Record::Trade(tr.to_trade(&ticker, tr.ts))));
                out.extend(
                    self.posts(t, m, &names).iter().map(|p| cashtag_core::Record::Post(p.to_post(p.created_at))),
                );
            }
        }
        out
    }
}
