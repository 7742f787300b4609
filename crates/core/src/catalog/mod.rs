//! The event catalog: every event code the suite emits, its kind and its meaning, and one
//! constructor per code.
//!
//! Services never spell an event code themselves: they call a constructor here, which
//! returns an [`EventDraft`] with the code, a sentence for humans and structured fields,
//! and the bus stamps and publishes it. So an operator's query (`cashtag-log tail`,
//! `cashtagctl status`) and the events reference, docs/events.md (checked against [`CODES`] by a
//! test) cover everything that can appear, and a test checks that no source file outside
//! this module builds an event by hand.

use crate::event::{EventDraft, EventKind};
use crate::time::rfc3339;

mod analysis;
mod backup;
mod control;
mod log;
mod sinks;
mod sources;

pub use analysis::*;
pub use backup::*;
pub use control::*;
pub use log::*;
pub use sinks::*;
pub use sources::*;

/// A code of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    pub code: &'static str,
    pub kind: EventKind,
    pub meaning: &'static str,
}

macro_rules! catalog {
    ($( $(#[doc = $doc:literal])+ $name:ident = $code:literal, $kind:ident; )*) => {
        $( $(#[doc = $doc])+ pub const $name: &str = $code; )*
        /// Every event code, in the order of docs/events.md.
        pub const CODES: &[CodeInfo] = &[
            $( CodeInfo { code: $code, kind: EventKind::$kind, meaning: concat!($($doc),+) } ),*
        ];
    };
}

catalog! {
    /// A service started.
    SERVICE_START = "service.start", Activity;
    /// A service stopped cleanly.
    SERVICE_STOP = "service.stop", Activity;
    /// A service started again after its last run ended without a clean stop (killed —
    /// by the kernel for memory, say — or crashed), with how long that run lasted, its
    /// memory at its last heartbeat and the unclean ends in the last 10 minutes.
    SERVICE_RESTARTED = "service.restarted", Error;
    /// A service that had restarted after an unclean end has now run 10 minutes.
    SERVICE_STABLE = "service.stable", Activity;
    /// The manager turned the data sources on.
    CONTROL_START = "control.start", Activity;
    /// The manager turned the data sources off.
    CONTROL_STOP = "control.stop", Activity;
    /// The manager (re)started and found the published state already right.
    CONTROL_RESUME = "control.resume", Activity;
    /// The control state was missing from Redis (restarted without persistence, flushed,
    /// evicted); the manager wrote it again, unchanged.
    CONTROL_REASSERTED = "control.reasserted", Warning;
    /// An operator stopped the data sources for maintenance (`cashtagctl stop`), with a
    /// reason; the manager keeps them off, whatever the calendar says, until the hold ends.
    CONTROL_HOLD = "control.hold", Activity;
    /// An operator's maintenance stop ended (`cashtagctl start`, or its `--for` ran out);
    /// the manager follows the calendar again.
    CONTROL_RELEASED = "control.released", Activity;
    /// The control state in Redis did not parse (written by hand, or by another version);
    /// the manager wrote its own decision over it.
    CONTROL_REPAIRED = "control.repaired", Warning;
    /// A feature flag Redis did not hold was written with its configured default.
    FLAG_DEFAULT = "flag.default", Activity;
    /// An operator set a feature flag.
    FLAG_CHANGED = "flag.changed", Activity;
    /// A fetcher applied a flag change to one of its sinks.
    FLAG_SWITCHED = "flag.switched", Activity;
    /// A flag's value in Redis did not parse; the manager wrote the configured default over it.
    FLAG_REPAIRED = "flag.repaired", Warning;
    /// The manager published the watchlist.
    WATCHLIST_PUBLISHED = "watchlist.published", Activity;
    /// The watchlist file changed and was re-published.
    WATCHLIST_CHANGED = "watchlist.changed", Activity;
    /// The watchlist file does not parse; the previous list stays.
    WATCHLIST_INVALID = "watchlist.invalid", Error;
    /// The watchlist in Redis did not parse; the manager published its own over it.
    WATCHLIST_REPAIRED = "watchlist.repaired", Warning;
    /// A service's heartbeat appeared.
    SERVICE_SEEN = "service.seen", Activity;
    /// A service that had gone missing sends heartbeats again.
    SERVICE_RETURNED = "service.returned", Activity;
    /// A service stopped sending heartbeats.
    SERVICE_MISSING = "service.missing", Warning;
    /// Redis was unreachable for a while; state was re-read after it came back.
    REDIS_OUTAGE = "redis.outage", Warning;
    /// The market turned on: a fetcher started its sources.
    INTAKE_START = "intake.start", Activity;
    /// The market turned off (or shutdown): a fetcher stopped its sources.
    INTAKE_STOP = "intake.stop", Activity;
    /// Records refused before acceptance (a timestamp from the future or far past, a price
    /// that is not a number, an id too long); counted per reason and minute.
    INTAKE_REFUSED = "intake.refused", Warning;
    /// A provider connection is up (or polling works).
    SOURCE_CONNECTED = "source.connected", Activity;
    /// A provider connection was lost; it is re-established with backoff.
    SOURCE_DISCONNECTED = "source.disconnected", Warning;
    /// The provider refused the credentials.
    SOURCE_AUTH_FAILED = "source.auth_failed", Error;
    /// The provider sent an error message.
    SOURCE_ERROR = "source.error", Error;
    /// A provider request answered with an HTTP error status.
    SOURCE_HTTP_ERROR = "source.http_error", Warning;
    /// The provider rate-limited us (HTTP 429); we wait as it asks.
    SOURCE_RATE_LIMITED = "source.rate_limited", Warning;
    /// A provider payload (or part of it) did not parse and was skipped.
    SOURCE_MALFORMED = "source.malformed", Error;
    /// A source stopped with an error; it restarts after a pause.
    SOURCE_FAILED = "source.failed", Error;
    /// A source panicked; it restarts with backoff.
    SOURCE_PANICKED = "source.panicked", Error;
    /// The provider refused another connection for this key.
    SOURCE_CONNECTION_LIMIT = "source.connection_limit", Error;
    /// The provider refused symbols beyond the plan's limit.
    SOURCE_SYMBOL_LIMIT = "source.symbol_limit", Error;
    /// The subscription followed a watchlist change.
    SOURCE_RESUBSCRIBED = "source.resubscribed", Activity;
    /// A gap in the data was filled from the provider's history.
    SOURCE_BACKFILL = "source.backfill", Activity;
    /// Filling a gap from the provider's history failed.
    SOURCE_BACKFILL_FAILED = "source.backfill_failed", Warning;
    /// A history backfill or archive import started (`backfill` or `import` of cashtag-stocks or cashtag-twitter).
    BACKFILL_START = "backfill.start", Activity;
    /// A history backfill or archive import finished, with its counts.
    BACKFILL_DONE = "backfill.done", Activity;
    /// A history backfill stopped before the end (provider, network, store); a rerun resumes.
    BACKFILL_FAILED = "backfill.failed", Error;
    /// Lines of an archive, or items of a history page, that did not parse; they were skipped.
    BACKFILL_REJECTED = "backfill.rejected", Warning;
    /// A replay reached the end of its recordings.
    SOURCE_REPLAY_DONE = "source.replay_done", Activity;
    /// X filtered-stream rules were synchronized with the watchlist.
    X_RULES_SYNCED = "x.rules_synced", Activity;
    /// X filtered-stream rules could not be synchronized.
    X_RULES_FAILED = "x.rules_failed", Error;
    /// X refused some filtered-stream rules as invalid.
    X_RULE_INVALID = "x.rule_invalid", Error;
    /// A sink stayed unreachable past its retry budget; its records wait in the journal.
    SINK_DOWN = "sink.down", Error;
    /// A sink is reachable again and its backlog was written.
    SINK_RECOVERED = "sink.recovered", Activity;
    /// A sink starts with records a previous run accepted and did not write.
    SINK_BACKLOG = "sink.backlog", Warning;
    /// A sink refused records for good (too large, invalid); they are kept in the dead letters.
    SINK_REJECTED = "sink.rejected", Error;
    /// Dead letters were written to their sink again (`dead-letters redrive`).
    SINK_REDRIVEN = "sink.redriven", Activity;
    /// The journal reached its size limit; intake waits until the sinks catch up.
    JOURNAL_FULL = "journal.full", Error;
    /// The journal cannot be written or read (a full or failing disk); intake retries.
    JOURNAL_IO = "journal.io", Error;
    /// A damaged part of the journal was skipped; everything around it is delivered.
    JOURNAL_DAMAGED = "journal.damaged", Error;
    /// The journal works again after it was full or could not be written.
    JOURNAL_RECOVERED = "journal.recovered", Activity;
    /// During market hours a source delivered nothing new for too long.
    FEED_STALE = "feed.stale", Warning;
    /// A stale source delivers current records again.
    FEED_RECOVERED = "feed.recovered", Activity;
    /// Too many errors from one service within the burst window.
    ALERT_ERROR_BURST = "alert.error_burst", Error;
    /// An events or counts stream entry did not parse; it was acknowledged and skipped.
    LOG_MALFORMED = "log.malformed", Error;
    /// A scheduled backup started.
    BACKUP_START = "backup.start", Activity;
    /// A backup was written and its manifest stored.
    BACKUP_DONE = "backup.done", Activity;
    /// A backup failed.
    BACKUP_FAILED = "backup.failed", Error;
    /// No backup followed a scheduled run within `backup.overdue_after_mins`.
    BACKUP_OVERDUE = "backup.overdue", Error;
    /// The scheduled backup did not run while the host was down; it runs now.
    BACKUP_MISSED = "backup.missed", Warning;
    /// The roll-ups of a past range were computed at start.
    ROLLUP_BACKFILL = "rollup.backfill", Activity;
    /// A roll-up pass failed.
    ROLLUP_FAILED = "rollup.failed", Error;
    /// The roll-up indexes could not be created.
    ROLLUP_INDEXES = "rollup.indexes", Warning;
    /// Roll-ups work again after a failure.
    ROLLUP_RECOVERED = "rollup.recovered", Activity;
    /// A study or a model fell back from what was asked (a market proxy without data: the
    /// cross-section mean is used instead), said in the report's first lines too.
    ANALYSIS_FALLBACK = "analysis.fallback", Warning;
    /// The Spark roll-up job finished a micro-batch of a query (`sentiment_1m` or
    /// `price_1m`): its records, rows per second, duration and watermark, and the totals.
    SPARK_BATCH = "spark.batch", Activity;
    /// The Spark roll-up job left records that came after its watermark out of their
    /// minutes (never replacing a stored minute); `aggregate --from` recomputes them.
    SPARK_LATE = "spark.late", Warning;
    /// The predictor made its predictions of a tick.
    PREDICT_TICK = "predict.tick", Activity;
    /// A tick made no predictions: no promoted model, the sources are off, or no ticker had data.
    PREDICT_SKIPPED = "predict.skipped", Warning;
    /// Ticks passed while the predictor was not running; they are not made afterwards.
    PREDICT_MISSED = "predict.missed", Warning;
    /// The predictor loaded a (new) promoted model.
    PREDICT_MODEL_LOADED = "predict.model_loaded", Activity;
    /// The model registry is unreachable; the predictor keeps the model it has.
    PREDICT_MODEL_STALE = "predict.model_stale", Warning;
    /// The promoted model is corrupt, of another schema or missing; the previous model stays in use.
    PREDICT_MODEL_REFUSED = "predict.model_refused", Error;
    /// A tick or the resolver failed (MongoDB); the predictor goes on at the next tick.
    PREDICT_FAILED = "predict.failed", Error;
    /// A trained model was uploaded to the registry (promoted or not).
    MODEL_PUBLISHED = "model.published", Activity;
    /// A model version became the one the predictor uses.
    MODEL_PROMOTED = "model.promoted", Activity;
}

pub(super) fn activity(code: &'static str, message: impl Into<String>) -> EventDraft {
    EventDraft::new(EventKind::Activity, code, message)
}

pub(super) fn warning(code: &'static str, message: impl Into<String>) -> EventDraft {
    EventDraft::new(EventKind::Warning, code, message)
}

pub(super) fn error(code: &'static str, message: impl Into<String>) -> EventDraft {
    EventDraft::new(EventKind::Error, code, message)
}

pub(super) fn on_off(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for c in CODES {
            assert!(seen.insert(c.code), "{} listed twice", c.code);
            let (area, name) = c.code.split_once('.').expect("area.name");
            assert!(!area.is_empty() && !name.is_empty());
            assert!(c.code.chars().all(|ch| ch.is_ascii_lowercase() || ch == '.' || ch == '_'), "{}", c.code);
            assert!(!c.meaning.trim().is_empty(), "{} has no meaning", c.code);
        }
    }

    #[test]
    fn constructors_use_the_listed_kind() {
        let now = Utc::now();
        let samples = [
            service_start("x"),
            control_switched(true, "regular open", "2026-11-27", now, "16:00"),
            control_switched(false, "close", "2026-11-30", now, "09:25"),
            source_malformed("x", "bad", "{"),
            sink_down("mongo", "timeout"),
            feed_stale("sim", now, 5),
            backup_failed("boom", 1.0, 5),
            redis_outage(now, now),
        ];
        for d in samples {
            let info = CODES.iter().find(|c| c.code == d.code()).expect("listed");
            assert_eq!(info.kind, d.kind(), "{}", d.code());
        }
    }

    /// The events reference (docs/events.md) lists exactly the catalog's codes, with their kinds.
    #[test]
    fn the_reference_lists_every_code() {
        let section = include_str!("../../../../docs/events.md");
        let mut listed = Vec::new();
        for line in section.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() >= 4 && cells[1].starts_with('`') {
                listed.push((cells[1].trim_matches('`').to_string(), cells[2].to_string()));
            }
        }
        let want: Vec<(String, String)> =
            CODES.iter().map(|c| (c.code.to_string(), c.kind.as_str().to_string())).collect();
        let missing: Vec<_> = want.iter().filter(|w| !listed.contains(w)).collect();
        let extra: Vec<_> = listed.iter().filter(|l| !want.contains(l)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "docs/events.md table: missing {missing:?}, not in the catalog {extra:?}"
        );
    }

    /// Outside this module and tests, nothing builds an event by hand.
    #[test]
    fn no_source_file_spells_an_event_by_hand() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut offenders = Vec::new();
        for top in ["crates", "services"] {
            for member in std::fs::read_dir(root.join(top)).unwrap().flatten() {
                let src = member.path().join("src");
                visit(&src, &mut |path, text| {
                    if path.parent().is_some_and(|d| d.ends_with("core/src/catalog"))
                        || path.ends_with("core/src/event.rs")
                    {
                        return;
                    }
                    for (at, _) in text.match_indices("event(") {
                        let rest = text[at + "event(".len()..].trim_start();
                        if rest.starts_with("EventKind::") {
                            let line = text[..at].matches('\n').count() + 1;
                            offenders.push(format!("{}:{line}", path.display()));
                        }
                    }
                    // `Bus::event`, the tests' helper, is the one place that may build ad-hoc drafts.
                    if path.ends_with("bus/src/lib.rs") {
                        return;
                    }
                    for (at, _) in text.match_indices("EventDraft::ad_hoc") {
                        offenders.push(format!("{}:{}", path.display(), text[..at].matches('\n').count() + 1));
                    }
                });
            }
        }
        assert!(offenders.is_empty(), "events built outside the catalog: {offenders:?}");
    }

    fn visit(dir: &std::path::Path, f: &mut dyn FnMut(&std::path::Path, &str)) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                visit(&p, f);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                // Unit tests at the bottom of a file may build events by hand.
                let text = text.split("#[cfg(test)]").next().unwrap_or(&text).to_string();
                f(&p, &text);
            }
        }
    }
}
