//! Events of the log service: stale feeds, error bursts, malformed entries.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use super::*;

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
