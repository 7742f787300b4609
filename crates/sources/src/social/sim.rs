//! Simulated posts from [`cashtag_sim`], emitted when the clock reaches their time.

use std::sync::Arc;

use cashtag_core::{EventKind, Record};
use cashtag_sim::{Sim, minute_index, minute_start};

use crate::{SourceCtx, SourceError};

pub struct SimPosts {
    sim: Arc<Sim>,
}

impl SimPosts {
    pub fn new(sim: Arc<Sim>) -> Self {
        SimPosts { sim }
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let started = ctx.now();
        let mut m = minute_index(started);
        ctx.event(EventKind::Activity, "source.connected", "sim: simulated posts running");
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
