//! Social sources: posts that mention watched tickers, from X, StockTwits, Bluesky, the
//! simulator, or a recording. Several may run together.

pub mod bluesky;
pub mod sim;
pub mod stocktwits;
pub mod x;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cashtag_core::{Author, Engagement, EventKind, Post, SentimentLabel, Settings, Ticker};
use chrono::{DateTime, Utc};

use crate::backoff::sleep_or_cancel;
use crate::replay::Replay;
use crate::{SourceCtx, SourceError};

/// One social source.
pub enum OneSocial {
    Sim(sim::SimPosts),
    X(x::XStream),
    StockTwits(stocktwits::StockTwits),
    Bluesky(bluesky::Jetstream),
    Replay(Replay),
}

impl OneSocial {
    pub fn name(&self) -> &'static str {
        match self {
            OneSocial::Sim(_) => "sim",
            OneSocial::X(_) => "x",
            OneSocial::StockTwits(_) => "stocktwits",
            OneSocial::Bluesky(_) => "bluesky",
            OneSocial::Replay(_) => "replay",
        }
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        match self {
            OneSocial::Sim(s) => s.run(ctx).await,
            OneSocial::X(s) => s.run(ctx).await,
            OneSocial::StockTwits(s) => s.run(ctx).await,
            OneSocial::Bluesky(s) => s.run(ctx).await,
            OneSocial::Replay(s) => s.run(ctx).await,
        }
    }
}

/// The configured social sources, run together; each is restarted on its own after a
/// failure, so one provider's trouble does not stop the others.
pub struct SocialSources {
    pub sources: Vec<OneSocial>,
    pub restart_pause: Duration,
    pub auth_pause: Duration,
}

impl SocialSources {
    pub fn names(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name().to_string()).collect()
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let (restart, auth) = (self.restart_pause, self.auth_pause);
        let runs = self.sources.iter_mut().map(|s| async move {
            loop {
                let r = s.run(ctx).await;
                if ctx.cancel.is_cancelled() {
                    return;
                }
                let pause = match r {
                    Err(SourceError::Auth { .. }) => auth,
                    _ => restart,
                };
                if let Err(e) = r {
                    ctx.event(EventKind::Error, "source.failed", format!("{e}; restarting in {} s", pause.as_secs()));
                }
                if !sleep_or_cancel(pause, &ctx.cancel).await {
                    return;
                }
            }
        });
        futures::future::join_all(runs).await;
        Ok(())
    }
}

/// Builds the sources `twitter.sources` names.
pub fn from_settings(settings: &Settings) -> Result<SocialSources, SourceError> {
    let t = &settings.twitter;
    let mut sources = Vec::new();
    for name in &t.sources {
        sources.push(match name.as_str() {
            "sim" => {
                OneSocial::Sim(sim::SimPosts::new(Arc::new(cashtag_sim::Sim::new(crate::market::sim_params(settings)))))
            }
            "x" => OneSocial::X(x::XStream::new(x::XConfig {
                api_url: t.x_api_url.clone(),
                bearer: t.x_bearer_token.clone(),
                rule_max_len: t.x_rule_max_len as usize,
                max_rules: t.x_max_rules as usize,
                languages: t.languages.clone(),
                include_reposts: t.include_reposts,
                timing: x::XTiming::default(),
            })),
            "stocktwits" => OneSocial::StockTwits(stocktwits::StockTwits::new(
                t.stocktwits_url.clone(),
                Duration::from_secs_f64(3600.0 / t.stocktwits_requests_per_hour as f64),
            )),
            "bluesky" => OneSocial::Bluesky(bluesky::Jetstream::new(t.bluesky_jetstream_url.clone())),
            "replay" => OneSocial::Replay(Replay::new(t.replay_dir.clone().into(), t.replay_speed)),
            other => {
                return Err(SourceError::Config { provider: "twitter", message: format!("unknown source {other:?}") });
            }
        });
    }
    Ok(SocialSources { sources, restart_pause: Duration::from_secs(5), auth_pause: Duration::from_secs(60) })
}

/// The watched tickers as a set.
pub fn watched(ctx: &SourceCtx) -> HashSet<Ticker> {
    ctx.watchlist.borrow().tickers().into_iter().collect()
}

/// A post record.
#[allow(clippy::too_many_arguments)]
pub fn post(
    source: &str,
    id: String,
    created_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    text: String,
    lang: Option<String>,
    author: Author,
    engagement: Option<Engagement>,
    tickers: Vec<Ticker>,
    is_repost: bool,
    author_label: Option<SentimentLabel>,
) -> Post {
    Post {
        source: source.into(),
        id,
        created_at,
        received_at,
        text,
        lang,
        author,
        engagement,
        tickers,
        is_repost,
        author_label,
        sentiment: None,
    }
}
