//! Events of every service's life and of the control plane: start and stop, the
//! manager's decisions and holds, flags, the watchlist, heartbeats, Redis outages.

use std::fmt::Display;

use chrono::{DateTime, Utc};

use super::*;

pub fn service_start(message: impl Into<String>) -> EventDraft {
    activity(SERVICE_START, message)
}

pub fn service_stop(message: impl Into<String>) -> EventDraft {
    activity(SERVICE_STOP, message)
}

/// Restarted after an unclean end: `lasted_secs` the run that ended, `memory` its memory
/// and limit (MiB) at its last heartbeat, `recent` the unclean ends in the last 10 minutes.
pub fn service_restarted(
    service: &str,
    lasted_secs: Option<f64>,
    memory: Option<(f64, Option<f64>)>,
    recent: usize,
) -> EventDraft {
    let lasted = lasted_secs.map(|s| format!(" {s:.0} s after its start")).unwrap_or_default();
    let likely_oom = matches!(memory, Some((used, Some(limit))) if used >= 0.9 * limit);
    let memory_text = match memory {
        Some((used, Some(limit))) => format!("; its memory was {used:.0} of {limit:.0} MiB at its last heartbeat"),
        Some((used, None)) => format!("; it used {used:.0} MiB at its last heartbeat"),
        None => String::new(),
    };
    let oom = if likely_oom { ": probably killed for memory (OOM)" } else { "" };
    let looping =
        if recent >= 3 { format!(" — a restart loop: {recent} unclean ends in 10 minutes") } else { String::new() };
    error(
        SERVICE_RESTARTED,
        format!("{service} restarted after its last run ended uncleanly (killed or crashed){lasted}{memory_text}{oom}{looping}"),
    )
    .with("likely_oom", likely_oom)
    .with("recent_unclean_ends", recent as u64)
    .with("memory_mib", memory.map(|m| m.0))
    .with("memory_limit_mib", memory.and_then(|m| m.1))
}

pub fn service_stable(service: &str, minutes: u64) -> EventDraft {
    activity(SERVICE_STABLE, format!("{service} has run {minutes} minutes since its unclean restart"))
}

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

/// The stored control state did not parse (`problem`); the manager's decision replaced it.
pub fn control_repaired(on: bool, reason: &str, problem: impl Display) -> EventDraft {
    warning(
        CONTROL_REPAIRED,
        format!("the control state in redis did not parse ({problem}); wrote the manager's: {} ({reason})", on_off(on)),
    )
    .with("on", on)
    .with("reason", reason)
}

/// A flag's stored value (`found`) did not parse; `value` replaced it (none: removed, no default).
pub fn flag_repaired(name: &str, found: &str, value: Option<bool>) -> EventDraft {
    let sample: String = found.chars().take(40).collect();
    let what = value.map_or("removed it (no default)".to_string(), |v| format!("wrote the default {}", on_off(v)));
    warning(FLAG_REPAIRED, format!("flag {name} held {sample:?}, which is not 1 or 0; {what}"))
        .with("flag", name)
        .with("found", sample)
        .with("value", value)
}

/// The stored watchlist did not parse (`problem`); the manager published its own.
pub fn watchlist_repaired(size: usize, problem: impl Display) -> EventDraft {
    warning(WATCHLIST_REPAIRED, format!("the watchlist in redis did not parse ({problem}); published {size} tickers"))
        .with("size", size)
}
