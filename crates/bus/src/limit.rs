//! A storm of one error must not become a storm of events: a provider frame with 100,000
//! bad items, a sink refusing every record, a source failing in a tight loop would each
//! write one event per occurrence into Redis (and the log, and the webhook). The limiter
//! lets the first [`BURST`] errors or warnings of one code about one subject (the
//! `provider`, `sink` or `stream` field) through per [`WINDOW`], counts the rest, and when
//! the window ends sends one event saying how many were held back, with the last one's
//! message and fields. Activity events (audit trail, progress) are never held back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cashtag_core::{EventDraft, EventKind};

/// Errors or warnings of one code and subject sent one by one per window.
pub const BURST: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The fields that name what an event is about.
const SUBJECT_FIELDS: [&str; 3] = ["provider", "sink", "stream"];

#[derive(Debug)]
struct Slot {
    started: Instant,
    passed: u32,
    held: u64,
    last: Option<EventDraft>,
}

/// Counts events per code and subject; see the module doc.
#[derive(Debug)]
pub struct EventLimiter {
    burst: u32,
    window: Duration,
    slots: Mutex<HashMap<(&'static str, String), Slot>>,
}

impl Default for EventLimiter {
    fn default() -> Self {
        EventLimiter::new(BURST, WINDOW)
    }
}

impl EventLimiter {
    pub fn new(burst: u32, window: Duration) -> Self {
        EventLimiter { burst, window, slots: Mutex::new(HashMap::new()) }
    }

    fn subject(draft: &EventDraft) -> String {
        SUBJECT_FIELDS.iter().find_map(|f| draft.field(f).map(|v| v.to_string())).unwrap_or_default()
    }

    /// Whether to send this event now; an event held back is counted (and kept as the
    /// window's last, for its summary).
    pub fn admit(&self, draft: EventDraft, now: Instant) -> Option<EventDraft> {
        if draft.kind() == EventKind::Activity {
            return Some(draft);
        }
        let key = (draft.code(), Self::subject(&draft));
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(key).or_insert(Slot { started: now, passed: 0, held: 0, last: None });
        if now.duration_since(slot.started) >= self.window && slot.held == 0 {
            *slot = Slot { started: now, passed: 0, held: 0, last: None };
        }
        if slot.passed < self.burst && slot.held == 0 {
            slot.passed += 1;
            return Some(draft);
        }
        slot.held += 1;
        slot.last = Some(draft);
        None
    }

    /// The summaries of windows that have ended with events held back (each starts a new
    /// window with its burst used up, so a storm that goes on gives one summary per
    /// window); idle slots are forgotten.
    pub fn due(&self, now: Instant) -> Vec<EventDraft> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let window = self.window;
        slots.retain(|_, slot| {
            if now.duration_since(slot.started) < window {
                return true;
            }
            match slot.last.take() {
                Some(last) => {
                    out.push(last.held_back(slot.held, window.as_secs()));
                    *slot = Slot { started: now, passed: u32::MAX, held: 0, last: None };
                    true
                }
                None => false,
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(provider: &str, i: usize) -> EventDraft {
        EventDraft::ad_hoc(EventKind::Error, "source.malformed", format!("bad {i}")).with("provider", provider)
    }

    #[test]
    fn a_storm_is_a_burst_then_one_summary_per_window() {
        let l = EventLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let passed = (0..100_000).filter(|i| l.admit(error("alpaca", *i), t0).is_some()).count();
        assert_eq!(passed, 3);
        assert!(l.due(t0 + Duration::from_secs(5)).is_empty(), "the window is not over");
        let summary = l.due(t0 + Duration::from_secs(10));
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].code(), "source.malformed");
        assert_eq!(summary[0].field("held_back"), Some(&serde_json::json!(99_997)));
        assert!(summary[0].message().contains("bad 99999") && summary[0].message().contains("99997"));
        // Still storming: nothing more passes one by one, one summary per window.
        let t1 = t0 + Duration::from_secs(11);
        assert!((0..10).all(|i| l.admit(error("alpaca", i), t1).is_none()));
        assert_eq!(l.due(t0 + Duration::from_secs(21)).len(), 1);
        // Quiet for a window: forgotten, and the next error passes at once.
        assert!(l.due(t0 + Duration::from_secs(32)).is_empty());
        assert!(l.admit(error("alpaca", 0), t0 + Duration::from_secs(33)).is_some());
    }

    #[test]
    fn subjects_codes_and_activity_are_counted_apart() {
        let l = EventLimiter::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(l.admit(error("alpaca", 0), t0).is_some());
        assert!(l.admit(error("alpaca", 1), t0).is_none());
        assert!(l.admit(error("finnhub", 0), t0).is_some(), "another provider has its own burst");
        let activity = EventDraft::ad_hoc(EventKind::Activity, "flag.changed", "x").with("provider", "alpaca");
        assert!((0..5).all(|_| l.admit(activity.clone(), t0).is_some()), "activity is never held back");
    }
}
