//! Replay: recorded raw payloads (see [`crate::recorder`]) played back through the same
//! provider parsers, with the original timing scaled by a speed factor (0 = as fast as
//! possible). Each record's receive time is the recorded one, so a replay yields exactly
//! the records the live run produced.
//!
//! Which parser reads a payload is the registry's business: a replay is given the
//! dispatch function ([`crate::registry::parse_recorded`]) and knows no provider itself.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use cashtag_core::config::ReplaySettings;
use cashtag_core::{Ticker, catalog};
use chrono::{DateTime, Utc};

use crate::recorder::RecordedPayload;
use crate::{BoxFuture, ParseError, Parsed, Source, SourceCtx, SourceError};

pub const NAME: &str = "replay";

/// Parses a recorded payload by its provider and channel.
pub type Dispatch = fn(&RecordedPayload, &HashSet<Ticker>) -> Result<Parsed, ParseError>;

pub struct Replay {
    dir: PathBuf,
    speed: f64,
    dispatch: Dispatch,
}

impl Replay {
    pub fn new(dir: PathBuf, speed: f64, dispatch: Dispatch) -> Self {
        Replay { dir, speed, dispatch }
    }

    pub fn from_settings(s: &ReplaySettings, dispatch: Dispatch) -> Self {
        Replay::new(s.dir.clone().into(), s.speed, dispatch)
    }

    /// The recording files, oldest first.
    fn files(&self) -> Result<Vec<PathBuf>, SourceError> {
        let err =
            |source: std::io::Error| SourceError::Io { provider: NAME, path: self.dir.display().to_string(), source };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        // Name is <provider>-YYYY-MM-DD: order by date, then provider.
        files.sort_by_key(|p| {
            let name = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let date = name.get(name.len().saturating_sub(10)..).unwrap_or_default().to_string();
            (date, name)
        });
        Ok(files)
    }

    async fn play(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let files = self.files()?;
        ctx.emit_event(catalog::source_connected(NAME, format!("{} file(s) from {}", files.len(), self.dir.display())));
        let mut prev: Option<DateTime<Utc>> = None;
        let mut n = 0usize;
        for path in files {
            let file = std::fs::File::open(&path).map_err(|source| SourceError::Io {
                provider: NAME,
                path: path.display().to_string(),
                source,
            })?;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let Ok(line) = line else { break };
                let p: RecordedPayload = match serde_json::from_str(&line) {
                    Ok(p) => p,
                    Err(e) => {
                        ctx.malformed(NAME, &format!("{}:{}: {e}", path.display(), i + 1), &line);
                        continue;
                    }
                };
                if let (Some(prev), true) = (prev, self.speed > 0.0) {
                    let gap = (p.at - prev).to_std().unwrap_or_default().div_f64(self.speed);
                    tokio::select! {
                        _ = tokio::time::sleep(gap.min(Duration::from_secs(3600))) => {}
                        _ = ctx.cancel.cancelled() => return Ok(()),
                    }
                }
                prev = Some(p.at);
                match (self.dispatch)(&p, &ctx.watched()) {
                    Ok(parsed) => {
                        n += parsed.records.len();
                        if !ctx.deliver(&p.provider, &p.payload, parsed).await {
                            return Ok(());
                        }
                    }
                    Err(e) => ctx.malformed(&p.provider, &e.0, &p.payload),
                }
                if ctx.cancel.is_cancelled() {
                    return Ok(());
                }
            }
        }
        ctx.emit_event(catalog::source_replay_done(n));
        ctx.cancel.cancelled().await;
        Ok(())
    }
}

impl Source for Replay {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run<'a>(&'a mut self, ctx: &'a SourceCtx) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.play(ctx))
    }
}
