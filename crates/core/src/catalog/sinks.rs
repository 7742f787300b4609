//! Events of the sinks and the journal.

use std::fmt::Display;

use super::*;

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

pub fn sink_rejected(sink: &str, count: u64, sample: Vec<String>, kept_in: &str) -> EventDraft {
    error(
        SINK_REJECTED,
        format!("{sink}: {count} record(s) refused, kept in {kept_in} (dead-letters redrive): {}", sample.join("; ")),
    )
    .with("sink", sink)
    .with("count", count)
    .with("sample", sample)
    .with("kept_in", kept_in)
}

pub fn sink_redriven(sink: &str, written: usize, duplicates: usize, refused: usize, kept: usize) -> EventDraft {
    activity(
        SINK_REDRIVEN,
        format!(
            "{sink}: dead letters written again: {written} written, {duplicates} already there, {refused} refused again, {kept} kept"
        ),
    )
    .with("sink", sink)
    .with("written", written)
    .with("duplicates", duplicates)
    .with("refused", refused)
    .with("kept", kept)
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
