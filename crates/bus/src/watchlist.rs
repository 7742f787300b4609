//! The watchlist on the bus: the manager publishes it, the fetchers follow it.

use cashtag_core::Watchlist;
use redis::AsyncCommands;
use tokio::sync::watch;

use crate::{Bus, BusError, Context};

impl Bus {
    /// Stores the watchlist and announces the change.
    pub async fn publish_watchlist(&self, list: &Watchlist) -> Result<(), BusError> {
        let json = serde_json::to_string(list).expect("serializes");
        let mut c = self.conn();
        redis::pipe()
            .atomic()
            .set(self.keys().watchlist(), &json)
            .publish(self.keys().watchlist_channel(), list.len())
            .query_async::<()>(&mut c)
            .await
            .context("publish watchlist")?;
        Ok(())
    }

    /// The watchlist in Redis, if the manager has published one.
    pub async fn watchlist(&self) -> Result<Option<Watchlist>, BusError> {
        read_watchlist(self.conn(), self.keys().watchlist()).await
    }

    /// The published watchlist (or `fallback` while none is published) and every change.
    pub fn watch_watchlist(&self, fallback: Watchlist) -> watch::Receiver<Watchlist> {
        let key = self.keys().watchlist();
        crate::watch::spawn_watch(self, self.keys().watchlist_channel(), fallback, move |c| {
            read_watchlist(c, key.clone())
        })
    }
}

async fn read_watchlist(mut c: redis::aio::ConnectionManager, key: String) -> Result<Option<Watchlist>, BusError> {
    let raw: Option<String> = c.get(&key).await.context("GET watchlist")?;
    raw.map(|s| {
        serde_json::from_str(&s).map_err(|e| BusError::Malformed { what: "watchlist".into(), message: e.to_string() })
    })
    .transpose()
}
