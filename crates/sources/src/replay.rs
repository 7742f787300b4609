//! Replay: recorded raw payloads (see [`crate::recorder`]) played back through the same
//! provider parsers, with the original timing scaled by a speed factor (0 = as fast as
//! possible). Each record's receive time is the recorded one, so a replay yields exactly
//! the records the live run produced.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use cashtag_core::{EventKind, Record};
use chrono::{DateTime, Utc};

use crate::recorder::RecordedPayload;
use crate::{SourceCtx, SourceError};

pub struct Replay {
    dir: PathBuf,
    speed: f64,
}

/// The records in one recorded payload, by provider and channel. Posts are matched against
/// the watchlist of the replay, as they were live.
pub fn parse_recorded(
    p: &RecordedPayload,
    watched: &std::collections::HashSet<cashtag_core::Ticker>,
) -> Result<(Vec<Record>, Vec<String>), String> {
    match (p.provider.as_str(), p.channel.as_str()) {
        ("alpaca", "ws") => {
            let (msgs, errors) = crate::market::alpaca::parse_frame(&p.payload, p.at)?;
            Ok((
                msgs.into_iter()
                    .filter_map(|m| match m {
                        crate::market::alpaca::AlpacaMsg::Data(r) => Some(r),
                        _ => None,
                    })
                    .collect(),
                errors,
            ))
        }
        ("alpaca", "bars") => crate::market::alpaca::parse_bars_page(&p.payload, p.at).map(|(r, _)| (r, vec![])),
        ("iex", "batch") => crate::market::iex::parse_batch(&p.payload, p.at),
        ("finnhub", "ws") => match crate::market::finnhub::parse_message(&p.payload, p.at)? {
            (crate::market::finnhub::FinnhubMsg::Trades(r), errors) => Ok((r, errors)),
            _ => Ok((vec![], vec![])),
        },
        ("x", "stream") => match crate::social::x::parse_line(&p.payload, p.at, watched)? {
            crate::social::x::XLine::Post(Some(post)) => Ok((vec![Record::Post(post)], vec![])),
            _ => Ok((vec![], vec![])),
        },
        ("stocktwits", "symbol") => crate::social::stocktwits::parse_symbol_stream(&p.payload, p.at, watched)
            .map(|(posts, _)| (posts.into_iter().map(Record::Post).collect(), vec![])),
        ("bluesky", "ws") => crate::social::bluesky::parse_message(&p.payload, p.at, watched)
            .map(|(post, _)| (post.into_iter().map(Record::Post).collect(), vec![])),
        (provider, channel) => Err(format!("no parser for {provider}/{channel}")),
    }
}

impl Replay {
    pub fn new(dir: PathBuf, speed: f64) -> Self {
        Replay { dir, speed }
    }

    /// The recording files, oldest first.
    fn files(&self) -> Result<Vec<PathBuf>, SourceError> {
        let err = |e: std::io::Error| SourceError::Config {
            provider: "replay",
            message: format!("{}: {e}", self.dir.display()),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        // Name is <provider>-YYYY-MM-DD: order by date, then provider.
        files.sort_by_key(|p| {
            let name = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let date =
                name.rsplit_once('-').map(|_| name[name.len().saturating_sub(10)..].to_string()).unwrap_or_default();
            (date, name)
        });
        Ok(files)
    }

    pub async fn run(&mut self, ctx: &SourceCtx) -> Result<(), SourceError> {
        let files = self.files()?;
        ctx.event(
            EventKind::Activity,
            "source.connected",
            format!("replay: {} file(s) from {}", files.len(), self.dir.display()),
        );
        let mut prev: Option<DateTime<Utc>> = None;
        let mut n = 0usize;
        for path in files {
            let file = std::fs::File::open(&path)
                .map_err(|e| SourceError::Other { provider: "replay", message: format!("{}: {e}", path.display()) })?;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let Ok(line) = line else { break };
                let p: RecordedPayload = match serde_json::from_str(&line) {
                    Ok(p) => p,
                    Err(e) => {
                        ctx.malformed("replay", &format!("{}:{}: {e}", path.display(), i + 1), &line);
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
                match parse_recorded(&p, &crate::social::watched(ctx)) {
                    Ok((records, errors)) => {
                        for e in errors {
                            ctx.malformed(&p.provider, &e, &p.payload);
                        }
                        for r in records {
                            n += 1;
                            if !ctx.emit(r).await {
                                return Ok(());
                            }
                        }
                    }
                    Err(e) => ctx.malformed(&p.provider, &e, &p.payload),
                }
                if ctx.cancel.is_cancelled() {
                    return Ok(());
                }
            }
        }
        ctx.event(EventKind::Activity, "source.replay_done", format!("replay: finished, {n} records"));
        ctx.cancel.cancelled().await;
        Ok(())
    }
}
