//! Simulated posts from [`cashtag_sim`], emitted when the clock reaches their time.

use std::sync::Arc;

use cashtag_core::{Record, catalog};
use cashtag_sim::{Sim, minute_index, minute_start};

use crate::{BoxFuture, Source, SourceCtx, SourceError};

pub const NAME: &str = "sim";

pub struct SimPosts {
    sim: Arc<Sim>,
}

impl SimPosts {
    pub fn new(sim: Arc<Sim>) -> Self {
        SimPosts { sim }
    }

    async fn stream(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        // After a restart, from where the journal says records were last accepted
        // (duplicates of that minute are harmless: records have natural keys).
        let started = ctx.resume_point(NAME).filter(|t| *t < ctx.now()).unwrap_or_else(|| ctx.now());
        let mut m = minute_index(started);
        ctx.emit_event(catalog::source_connected(NAME, "simulated posts running"));
        loop {
            let tickers: Vec<String> = ctx.tickers();
            let mut posts = Vec::new();
            for t in &tickers {
                posts.extend(self.sim.posts(t, m, &tickers).into_iter().filter(|p| p.created_at >= started));
            }
            posts.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            for p in posts {
                tokio::select! {
                    _ = ctx.clock().sleep_until(p.created_at) => {}
                    _ = ctx.cancel.cancelled() => return Ok(()),
                }
                let record = Record::Post(p.to_post(ctx.now()));
                if !ctx.emit(record).await {
                    return Ok(());
                }
            }
            m += 1;
            tokio::select! {
                _ = ctx.clock().sleep_until(minute_start(m)) => {}
                _ = ctx.cancel.cancelled() => return Ok(()),
            }
        }
    }
}

impl Source for SimPosts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.stream(ctx))
    }
}
