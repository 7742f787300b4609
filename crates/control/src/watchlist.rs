//! Publishes the watchlist from its file and re-publishes it when the file changes.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use cashtag_bus::Bus;
use cashtag_core::{Watchlist, catalog};
use tokio_util::sync::CancellationToken;

/// Owns the watchlist: the file (or the built-in list) is the source of truth.
pub struct WatchlistPublisher {
    bus: Bus,
    file: Option<PathBuf>,
    poll: Duration,
}

impl WatchlistPublisher {
    pub fn new(bus: Bus, file: Option<PathBuf>, poll: Duration) -> Self {
        WatchlistPublisher { bus, file, poll }
    }

    fn load(&self) -> Result<Watchlist, cashtag_core::watchlist::WatchlistError> {
        match &self.file {
            None => Ok(Watchlist::builtin()),
            Some(p) => Watchlist::load(p),
        }
    }

    fn modified(&self) -> Option<SystemTime> {
        self.file.as_ref().and_then(|p| std::fs::metadata(p).ok()).and_then(|m| m.modified().ok())
    }

    /// Publishes at start (announcing a change if it differs from what Redis holds), then
    /// polls the file; a file that stops parsing is reported and the last good list kept.
    /// A key Redis lost is published again at the next poll.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut current: Option<Watchlist> = None;
        let mut seen_mtime = None;
        let mut reported_error: Option<String> = None;
        loop {
            let mtime = self.modified();
            if current.is_none() || mtime != seen_mtime {
                match self.load() {
                    Ok(list) => {
                        reported_error = None;
                        let before = match &current {
                            Some(c) => Some(c.clone()),
                            None => self.bus.watchlist().await.ok().flatten(),
                        };
                        if before.as_ref() != Some(&list) || current.is_none() {
                            match self.bus.publish_watchlist(&list).await {
                                Ok(()) => {
                                    self.announce(before.as_ref(), &list);
                                    current = Some(list);
                                    seen_mtime = mtime;
                                }
                                Err(e) => tracing::warn!(error = %e, "cannot publish the watchlist; retrying"),
                            }
                        } else {
                            seen_mtime = mtime;
                        }
                    }
                    Err(e) => {
                        let problem = e.to_string();
                        if reported_error.as_deref() != Some(problem.as_str()) {
                            self.bus.emit(catalog::watchlist_invalid(&problem));
                            reported_error = Some(problem);
                        }
                        seen_mtime = mtime;
                    }
                }
            } else if let Some(list) = &current {
                // Redis lost the key (restart without persistence), or holds something that
                // does not parse: publish it again.
                let republish = match self.bus.watchlist().await {
                    Ok(None) => Some(None),
                    Err(cashtag_bus::BusError::Malformed { message, .. }) => Some(Some(message)),
                    _ => None,
                };
                if let Some(unparsed) = republish {
                    match self.bus.publish_watchlist(list).await {
                        Ok(()) => {
                            if let Some(problem) = unparsed {
                                self.bus.emit(catalog::watchlist_repaired(list.tickers().len(), problem));
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot re-publish the watchlist; retrying"),
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    fn announce(&self, before: Option<&Watchlist>, list: &Watchlist) {
        let tickers = |v: Vec<cashtag_core::Ticker>| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        match before {
            Some(b) if b != list => {
                let (added, removed) = b.diff(list);
                self.bus.emit(catalog::watchlist_changed(list.len(), tickers(added), tickers(removed)));
            }
            Some(_) => {}
            None => self.bus.emit(catalog::watchlist_published(list.len())),
        }
    }
}
