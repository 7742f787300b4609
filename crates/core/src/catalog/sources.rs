//! Events of the fetchers' intake and their provider sources, and of history backfills.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use super::*;

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
