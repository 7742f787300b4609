//! The event catalog: every event code the suite emits, its kind and its meaning, and one
//! constructor per code.
//!
//! Services never spell an event code themselves: they call a constructor here, which
//! returns an [`EventDraft`] with the code, a sentence for humans and structured fields,
//! and the bus stamps and publishes it. So an operator's query (`cashtag-log tail`,
//! `cashtagctl status`) and the README's "Events" table (checked against [`CODES`] by a
//! test) cover everything that can appear, and a test checks that no source file outside
//! this module builds an event by hand.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use crate::event::{EventDraft, EventKind};
use crate::time::rfc3339;

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
        /// Every event code, in the order of the README's table.
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
    /// A feature flag Redis did not hold was written with its configured default.
    FLAG_DEFAULT = "flag.default", Activity;
    /// An operator set a feature flag.
    FLAG_CHANGED = "flag.changed", Activity;
    /// A fetcher applied a flag change to one of its sinks.
    FLAG_SWITCHED = "flag.switched", Activity;
    /// The manager published the watchlist.
    WATCHLIST_PUBLISHED = "watchlist.published", Activity;
    /// The watchlist file changed and was re-published.
    WATCHLIST_CHANGED = "watchlist.changed", Activity;
    /// The watchlist file does not parse; the previous list stays.
    WATCHLIST_INVALID = "watchlist.invalid", Error;
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
    /// A sink refused records for good (too large, invalid); they are not retried.
    SINK_REJECTED = "sink.rejected", Error;
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

fn activity(code: &'static str, message: impl Into<String>) -> EventDraft {
    EventDraft::new(EventKind::Activity, code, message)
}

fn warning(code: &'static str, message: impl Into<String>) -> EventDraft {
    EventDraft::new(EventKind::Warning, code, message)
}

fn error(code: &'static str, message: impl Into<String>) -> EventDraft {
    EventDraft::new(EventKind::Error, code, message)
}

// --- services ---------------------------------------------------------------------------

pub fn service_start(message: impl Into<String>) -> EventDraft {
    activity(SERVICE_START, message)
}

pub fn service_stop(message: impl Into<String>) -> EventDraft {
    activity(SERVICE_STOP, message)
}

// --- control, flags, watchlist, heartbeats ------------------------------------------------

/// The sources turned on (`on`) or off, why, and the session it concerns.
pub fn control_switched(
    on: bool,
    reason: &str,
    session_date: impl Display,
    next_change: DateTime<Utc>,
    next_change_ny: impl Display,
) -> EventDraft {
    let draft = if on {
        activity(CONTROL_START, format!("data sources on: {reason}; off at {next_change_ny}"))
    } else {
        activity(CONTROL_STOP, format!("data sources off: {reason}; next on at {next_change_ny}"))
    };
    draft
        .with("reason", reason)
        // On: the session now running; off: the next one.
        .with(if on { "session_date" } else { "next_session_date" }, session_date.to_string())
        .with("next_change", rfc3339(&next_change))
}

pub fn control_resume(message: impl Into<String>, on: bool, reason: &str, next_change: DateTime<Utc>) -> EventDraft {
    activity(CONTROL_RESUME, message).with("on", on).with("reason", reason).with("next_change", rfc3339(&next_change))
}

pub fn control_reasserted(on: bool, reason: &str) -> EventDraft {
    warning(
        CONTROL_REASSERTED,
        format!("the control state ({}: {reason}) was missing from Redis; published it again", on_off(on)),
    )
    .with("on", on)
    .with("reason", reason)
}

pub fn control_hold(reason: &str, by: &str, until: Option<DateTime<Utc>>) -> EventDraft {
    let till = until.map(|t| format!(" until {}", rfc3339(&t))).unwrap_or_default();
    let draft = activity(CONTROL_HOLD, format!("data sources stopped by {by}{till}: {reason}"))
        .with("reason", reason)
        .with("by", by);
    match until {
        Some(t) => draft.with("until", rfc3339(&t)),
        None => draft,
    }
}

/// `expired`: the hold's `--for` ran out (the manager says so), else an operator ended it.
pub fn control_released(reason: &str, by: &str, expired: bool) -> EventDraft {
    let message = if expired {
        format!("the maintenance stop ({reason}) ran out; the calendar decides again")
    } else {
        format!("the maintenance stop ({reason}) was ended by {by}; the calendar decides again")
    };
    activity(CONTROL_RELEASED, message).with("reason", reason).with("by", by).with("expired", expired)
}

pub fn flag_default(name: &str, value: bool) -> EventDraft {
    activity(FLAG_DEFAULT, format!("flag {name} initialized to {value}")).with("flag", name).with("value", value)
}

pub fn flag_changed(name: &str, value: bool, by: &str) -> EventDraft {
    activity(FLAG_CHANGED, format!("flag {name} set {} by {by}", on_off(value)))
        .with("flag", name)
        .with("value", value)
        .with("by", by)
}

/// A fetcher applied a flag change to `sink`; `pending` records accepted before it.
pub fn flag_switched(flag: &str, value: bool, sink: &str, pending: u64) -> EventDraft {
    let message = if value {
        format!("{flag} switched on: new records go to {sink}")
    } else {
        format!(
            "{flag} switched off: new records are not written to {sink}; {pending} accepted before the switch are flushed"
        )
    };
    activity(FLAG_SWITCHED, message).with("flag", flag).with("value", value).with("sink", sink).with("pending", pending)
}

pub fn watchlist_published(size: usize) -> EventDraft {
    activity(WATCHLIST_PUBLISHED, format!("watchlist published: {size} tickers")).with("size", size)
}

pub fn watchlist_changed(size: usize, added: Vec<String>, removed: Vec<String>) -> EventDraft {
    activity(WATCHLIST_CHANGED, format!("watchlist changed: {size} tickers, +{} -{}", added.len(), removed.len()))
        .with("added", added)
        .with("removed", removed)
        .with("size", size)
}

pub fn watchlist_invalid(problem: impl Display) -> EventDraft {
    error(WATCHLIST_INVALID, format!("{problem}; keeping the previous watchlist"))
}

pub fn service_seen(service: &str) -> EventDraft {
    activity(SERVICE_SEEN, format!("{service} is alive")).with("service", service)
}

pub fn service_returned(service: &str) -> EventDraft {
    activity(SERVICE_RETURNED, format!("{service} is back")).with("service", service)
}

pub fn service_missing(service: &str) -> EventDraft {
    warning(SERVICE_MISSING, format!("{service} stopped sending heartbeats")).with("service", service)
}

pub fn redis_outage(since: DateTime<Utc>, until: DateTime<Utc>) -> EventDraft {
    let secs = (until - since).as_seconds_f64();
    warning(REDIS_OUTAGE, format!("Redis was unreachable for {secs:.1} s; reconnected, resubscribed and re-read state"))
        .with("since", rfc3339(&since))
        .with("until", rfc3339(&until))
        .with("seconds", secs)
}

// --- intake and sources -------------------------------------------------------------------

pub fn intake_start(source: &str) -> EventDraft {
    activity(INTAKE_START, format!("{source}: market on, starting the source")).with("source", source)
}

pub fn intake_stop(source: &str, records: u64) -> EventDraft {
    activity(INTAKE_STOP, format!("{source}: stopped; {records} records this session"))
        .with("source", source)
        .with("records", records)
}

pub fn intake_refused(reason: &str, count: u64, sample: &str) -> EventDraft {
    warning(INTAKE_REFUSED, format!("{count} record(s) refused: {reason} (e.g. {sample})"))
        .with("reason", reason)
        .with("count", count)
        .with("sample", sample)
}

pub fn source_connected(provider: &str, detail: impl Display) -> EventDraft {
    activity(SOURCE_CONNECTED, format!("{provider}: {detail}")).with("provider", provider)
}

pub fn source_disconnected(provider: &str, detail: impl Display) -> EventDraft {
    warning(SOURCE_DISCONNECTED, format!("{provider}: {detail}")).with("provider", provider)
}

/// The provider refused our credentials; `hint` names the settings to check.
pub fn source_auth_failed(provider: &str, detail: impl Display, hint: &str) -> EventDraft {
    error(SOURCE_AUTH_FAILED, format!("{provider}: {detail}; check {hint}")).with("provider", provider)
}

pub fn source_error(provider: &str, detail: impl Display) -> EventDraft {
    error(SOURCE_ERROR, format!("{provider}: {detail}")).with("provider", provider)
}

pub fn source_http_error(provider: &str, detail: impl Display) -> EventDraft {
    warning(SOURCE_HTTP_ERROR, format!("{provider}: {detail}")).with("provider", provider)
}

pub fn source_rate_limited(provider: &str, detail: impl Display, wait_secs: f64) -> EventDraft {
    warning(SOURCE_RATE_LIMITED, format!("{provider}: {detail}"))
        .with("provider", provider)
        .with("wait_seconds", wait_secs)
}

/// A payload that does not parse, with a short sample (never a secret: payloads come from
/// the provider, credentials only travel in headers and auth messages).
pub fn source_malformed(provider: &str, problem: impl Display, payload: &str) -> EventDraft {
    let sample: String = payload.chars().take(200).collect();
    error(SOURCE_MALFORMED, format!("{provider}: malformed payload skipped: {problem}"))
        .with("provider", provider)
        .with("sample", sample)
}

pub fn source_failed(problem: impl Display, pause_secs: f64) -> EventDraft {
    error(SOURCE_FAILED, format!("{problem}; restarting in {pause_secs:.0} s")).with("pause_seconds", pause_secs)
}

pub fn source_panicked(provider: &str, panic: &str, pause_secs: f64) -> EventDraft {
    error(SOURCE_PANICKED, format!("{provider}: the source panicked ({panic}); restarting in {pause_secs:.1} s"))
        .with("provider", provider)
        .with("pause_seconds", pause_secs)
}

pub fn source_connection_limit(provider: &str, detail: impl Display) -> EventDraft {
    error(SOURCE_CONNECTION_LIMIT, format!("{provider}: {detail}")).with("provider", provider)
}

pub fn source_symbol_limit(provider: &str, detail: impl Display) -> EventDraft {
    error(SOURCE_SYMBOL_LIMIT, format!("{provider}: {detail}")).with("provider", provider)
}

pub fn source_resubscribed(provider: &str, added: usize, removed: usize) -> EventDraft {
    activity(SOURCE_RESUBSCRIBED, format!("{provider}: watchlist changed, +{added} -{removed}"))
        .with("provider", provider)
        .with("added", added)
        .with("removed", removed)
}

pub fn source_backfill(provider: &str, what: &str, count: usize, from: DateTime<Utc>, to: DateTime<Utc>) -> EventDraft {
    activity(SOURCE_BACKFILL, format!("{provider}: backfilled {count} {what} for the gap"))
        .with("provider", provider)
        .with("from", rfc3339(&from))
        .with("to", rfc3339(&to))
        .with("records", count)
}

pub fn source_backfill_failed(provider: &str, detail: impl Display) -> EventDraft {
    warning(SOURCE_BACKFILL_FAILED, format!("{provider}: {detail}")).with("provider", provider)
}

/// `mode` is `backfill` or `import`; `what` names the source and range or the paths.
pub fn backfill_start(mode: &str, what: &str) -> EventDraft {
    activity(BACKFILL_START, format!("{mode}: {what}")).with("mode", mode)
}

pub fn backfill_done(mode: &str, what: &str, read: u64, stored: u64, duplicates: u64, rejected: u64) -> EventDraft {
    activity(
        BACKFILL_DONE,
        format!("{mode}: {what}: {read} read, {stored} stored, {duplicates} already there, {rejected} rejected"),
    )
    .with("mode", mode)
    .with("read", read)
    .with("stored", stored)
    .with("duplicates", duplicates)
    .with("rejected", rejected)
}

pub fn backfill_failed(mode: &str, what: &str, detail: impl Display) -> EventDraft {
    error(BACKFILL_FAILED, format!("{mode}: {what}: {detail}")).with("mode", mode)
}

/// `count` bad lines or items in `place` (a file, or a provider's task); `sample` is the first.
pub fn backfill_rejected(place: &str, count: u64, sample: &str) -> EventDraft {
    warning(BACKFILL_REJECTED, format!("{place}: {count} bad lines or items skipped, first: {sample}"))
        .with("place", place)
        .with("count", count)
}

pub fn source_replay_done(records: usize) -> EventDraft {
    activity(SOURCE_REPLAY_DONE, format!("replay: finished, {records} records")).with("records", records)
}

pub fn x_rules_synced(wanted: usize, added: usize, deleted: usize) -> EventDraft {
    activity(X_RULES_SYNCED, format!("x: rules synchronized: {wanted} wanted, {added} added, {deleted} deleted"))
        .with("rules", wanted)
        .with("added", added)
        .with("deleted", deleted)
}

pub fn x_rules_failed(problem: impl Display) -> EventDraft {
    error(X_RULES_FAILED, format!("x: {problem}"))
}

pub fn x_rule_invalid(invalid: u64, errors: serde_json::Value) -> EventDraft {
    error(X_RULE_INVALID, format!("x: {invalid} rule(s) refused as invalid")).with("errors", errors)
}

// --- sinks and spool ----------------------------------------------------------------------

pub fn sink_down(sink: &str, reason: &str) -> EventDraft {
    error(SINK_DOWN, format!("{sink} unreachable past its retry budget ({reason}); records wait in the journal"))
        .with("sink", sink)
        .with("reason", reason)
}

pub fn sink_recovered(sink: &str, down_secs: f64, replayed: u64, reason: &str) -> EventDraft {
    activity(
        SINK_RECOVERED,
        format!("{sink} recovered after {down_secs:.1} s; {replayed} record(s) written from the journal"),
    )
    .with("sink", sink)
    .with("down_seconds", down_secs)
    .with("replayed", replayed)
    .with("reason", reason)
}

pub fn sink_backlog(sink: &str, backlog_bytes: u64) -> EventDraft {
    warning(SINK_BACKLOG, format!("{sink}: {backlog_bytes} bytes in the journal from a previous run; writing them"))
        .with("sink", sink)
        .with("backlog_bytes", backlog_bytes)
}

pub fn sink_rejected(sink: &str, count: u64, sample: Vec<String>) -> EventDraft {
    error(SINK_REJECTED, format!("{sink}: {count} record(s) refused and not retried: {}", sample.join("; ")))
        .with("sink", sink)
        .with("count", count)
        .with("sample", sample)
}

pub fn journal_full(bytes: u64, max: u64) -> EventDraft {
    error(JOURNAL_FULL, format!("journal full ({bytes} of {max} bytes); intake waits until the sinks catch up"))
        .with("bytes", bytes)
        .with("max_bytes", max)
}

pub fn journal_io(problem: impl Display) -> EventDraft {
    error(JOURNAL_IO, format!("journal: {problem}; retrying"))
}

pub fn journal_damaged(reader: &str, segment: u64, offset: u64, skipped: u64, reason: &str) -> EventDraft {
    error(
        JOURNAL_DAMAGED,
        format!("{reader}: damaged journal segment {segment} at byte {offset} ({reason}); {skipped} bytes skipped, the rest is delivered"),
    )
    .with("sink", reader)
    .with("segment", segment)
    .with("offset", offset)
    .with("skipped", skipped)
    .with("reason", reason)
}

pub fn journal_recovered(after_secs: f64) -> EventDraft {
    activity(JOURNAL_RECOVERED, format!("journal accepts records again after {after_secs:.1} s"))
        .with("seconds", after_secs)
}

// --- the log service ----------------------------------------------------------------------

pub fn feed_stale(source: &str, silent_since: DateTime<Utc>, minutes: i64) -> EventDraft {
    warning(
        FEED_STALE,
        format!(
            "{source}: no records newer than {} for {minutes} minutes during market hours",
            silent_since.format("%H:%M UTC")
        ),
    )
    .with("source", source)
    .with("silent_since", rfc3339(&silent_since))
    .with("minutes", minutes)
}

pub fn feed_recovered(source: &str, silent_minutes: i64) -> EventDraft {
    activity(FEED_RECOVERED, format!("{source}: current records again after {silent_minutes} minutes"))
        .with("source", source)
        .with("silent_minutes", silent_minutes)
}

pub fn alert_error_burst(service: &str, errors: usize, window_secs: i64, samples: Vec<String>) -> EventDraft {
    let first = samples.first().cloned().unwrap_or_default();
    error(ALERT_ERROR_BURST, format!("{errors} errors from {service} within {window_secs} s; first: {first}"))
        .with("service", service)
        .with("errors", errors)
        .with("window_secs", window_secs)
        .with("samples", samples)
}

pub fn log_malformed(stream: &str, entry: &str, reason: impl Display) -> EventDraft {
    error(LOG_MALFORMED, format!("{stream} entry {entry}: {reason}")).with("stream", stream).with("entry", entry)
}

// --- backups and roll-ups -----------------------------------------------------------------

pub fn backup_start() -> EventDraft {
    activity(BACKUP_START, "backup starting")
}

pub fn backup_done(key: &str, collections: usize, documents: u64, bytes: u64, secs: f64) -> EventDraft {
    activity(
        BACKUP_DONE,
        format!("backup done: {collections} collections, {documents} documents, {bytes} bytes in {secs:.1} s"),
    )
    .with("key", key)
    .with("bytes", bytes)
    .with("documents", documents)
    .with("seconds", secs)
}

pub fn backup_failed(problem: impl Display, secs: f64, exit_code: u8) -> EventDraft {
    error(BACKUP_FAILED, format!("backup failed after {secs:.1} s: {problem}")).with("exit_code", exit_code)
}

pub fn backup_missed(due: DateTime<Utc>) -> EventDraft {
    warning(BACKUP_MISSED, format!("the backup due at {} did not run; running it now", rfc3339(&due)))
}

pub fn rollup_backfill(sentiment_minutes: usize, price_minutes: usize) -> EventDraft {
    activity(ROLLUP_BACKFILL, format!("backfilled {sentiment_minutes} sentiment and {price_minutes} price minutes"))
}

pub fn rollup_failed(problem: impl Display) -> EventDraft {
    error(ROLLUP_FAILED, problem.to_string())
}

pub fn rollup_indexes(problem: impl Display) -> EventDraft {
    warning(ROLLUP_INDEXES, format!("could not create the roll-up indexes: {problem}"))
}

pub fn rollup_recovered() -> EventDraft {
    activity(ROLLUP_RECOVERED, "roll-ups are working again")
}

// --- models and predictions ----------------------------------------------------------------

pub fn predict_tick(model: &str, version: &str, at: DateTime<Utc>, written: usize, duplicates: usize) -> EventDraft {
    activity(
        PREDICT_TICK,
        format!("tick {}: {written} predictions by {model} {version} ({duplicates} already made)", rfc3339(&at)),
    )
    .with("model", model)
    .with("version", version)
    .with("tick", rfc3339(&at))
    .with("written", written)
    .with("duplicates", duplicates)
}

pub fn predict_skipped(at: DateTime<Utc>, reason: &str) -> EventDraft {
    warning(PREDICT_SKIPPED, format!("tick {}: no predictions: {reason}", rfc3339(&at))).with("tick", rfc3339(&at))
}

pub fn predict_missed(count: usize, first: DateTime<Utc>, last: DateTime<Utc>) -> EventDraft {
    warning(
        PREDICT_MISSED,
        format!(
            "{count} tick(s) from {} to {} passed while the predictor was down; they are not made afterwards",
            rfc3339(&first),
            rfc3339(&last)
        ),
    )
    .with("count", count)
}

pub fn predict_model_loaded(model: &str, version: &str, sha256: &str) -> EventDraft {
    activity(PREDICT_MODEL_LOADED, format!("predicting with {model} {version}"))
        .with("model", model)
        .with("version", version)
        .with("sha256", sha256)
}

pub fn predict_model_stale(model: &str, loaded: Option<&str>, problem: impl Display) -> EventDraft {
    let keep = loaded
        .map_or("no model is loaded yet: no predictions until it answers".to_string(), |v| format!("keeping {v}"));
    warning(PREDICT_MODEL_STALE, format!("cannot check the registry for {model} ({problem}); {keep}"))
        .with("model", model)
        .with("version", loaded.unwrap_or_default())
}

pub fn predict_model_refused(model: &str, problem: impl Display, kept: Option<&str>) -> EventDraft {
    let keep = kept.map_or("no model is loaded".to_string(), |v| format!("keeping {v}"));
    error(PREDICT_MODEL_REFUSED, format!("refused the promoted {model}: {problem}; {keep}")).with("model", model)
}

pub fn predict_failed(problem: impl Display) -> EventDraft {
    error(PREDICT_FAILED, problem.to_string())
}

pub fn model_published(model: &str, version: &str, key: &str, promoted: bool, why: &str) -> EventDraft {
    activity(
        MODEL_PUBLISHED,
        format!(
            "{model} {version} uploaded to {key}; {}",
            if promoted { "promoted".to_string() } else { format!("not promoted: {why}") }
        ),
    )
    .with("model", model)
    .with("version", version)
    .with("promoted", promoted)
}

pub fn model_promoted(model: &str, version: &str, by: &str) -> EventDraft {
    activity(MODEL_PROMOTED, format!("{model} {version} is now the promoted model ({by})"))
        .with("model", model)
        .with("version", version)
}

fn on_off(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
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

    /// The README's "Events" table lists exactly the catalog's codes, with their kinds.
    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../../../README.md");
        let section = readme.split("\n## Events").nth(1).expect("README has an `## Events` section");
        let section = section.split("\n## ").next().unwrap_or(section);
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
            "README Events table: missing {missing:?}, not in the catalog {extra:?}"
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
                    if path.ends_with("core/src/catalog.rs") || path.ends_with("core/src/event.rs") {
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
