//! The handle through which components report events and read the time.
//!
//! Sources, roll-ups, backups and the predictor need two things from their surroundings:
//! somewhere to report what happens ([`EventDraft`]s from the catalog) and the suite's
//! [`Clock`]. They take an [`Emitter`] instead of the Redis bus: in a service the bus is
//! behind it (`Bus::emitter`), in a unit test a [`Recorder`] that keeps every draft, so
//! the logic is tested without a server and a test can assert what was reported.

use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::event::EventDraft;

/// Somewhere to report events, with the clock they are stamped by.
pub trait Emit: Send + Sync + 'static {
    fn emit(&self, draft: EventDraft);
    fn clock(&self) -> &Clock;
}

/// A shared, cloneable [`Emit`].
#[derive(Clone)]
pub struct Emitter(Arc<dyn Emit>);

impl Emitter {
    pub fn new(inner: impl Emit) -> Self {
        Emitter(Arc::new(inner))
    }

    /// Reports an event.
    pub fn emit(&self, draft: EventDraft) {
        self.0.emit(draft)
    }

    /// The suite's clock.
    pub fn clock(&self) -> &Clock {
        self.0.clock()
    }
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Emitter")
    }
}

/// An [`Emit`] that keeps what it is given: for tests of logic that reports events.
#[derive(Clone)]
pub struct Recorder {
    clock: Clock,
    drafts: Arc<Mutex<Vec<EventDraft>>>,
}

impl Recorder {
    pub fn new(clock: Clock) -> Self {
        Recorder { clock, drafts: Default::default() }
    }

    /// The codes reported so far, in order.
    pub fn codes(&self) -> Vec<&'static str> {
        self.drafts.lock().expect("recorder lock").iter().map(EventDraft::code).collect()
    }

    /// The drafts reported so far, in order.
    pub fn drafts(&self) -> Vec<EventDraft> {
        self.drafts.lock().expect("recorder lock").clone()
    }

    /// An [`Emitter`] that records into this recorder.
    pub fn emitter(&self) -> Emitter {
        Emitter::new(self.clone())
    }
}

impl Emit for Recorder {
    fn emit(&self, draft: EventDraft) {
        self.drafts.lock().expect("recorder lock").push(draft);
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorder_keeps_every_draft_in_order() {
        let rec = Recorder::new(Clock::System);
        let events = rec.emitter();
        events.emit(crate::catalog::service_start("up"));
        events.clone().emit(crate::catalog::rollup_recovered());
        assert_eq!(rec.codes(), vec![crate::catalog::SERVICE_START, crate::catalog::ROLLUP_RECOVERED]);
        assert!(events.clock().now() > chrono::DateTime::UNIX_EPOCH);
    }
}
