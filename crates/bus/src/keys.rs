//! Every Redis key and channel name the suite uses, in one place.
//!
//! All names start with a configurable prefix (`cashtag` by default), so several suites —
//! or several tests running in parallel — can share one Redis without seeing each other.

/// The names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Keys { prefix: prefix.into() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Pub/sub channel carrying `{"cmd":"start"|"stop","reason","at"}`.
    pub fn control_channel(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// String key holding the current control state (same JSON as the last message).
    pub fn control_state(&self) -> String {
        format!("{}:control:state", self.prefix)
    }

    /// String key holding an operator's maintenance stop (a [`crate::ControlHold`] as JSON);
    /// absent when there is none.
    pub fn control_hold(&self) -> String {
        format!("{}:control:hold", self.prefix)
    }

    /// Hash of feature flags: field = flag name, value = `1` or `0`.
    pub fn flags(&self) -> String {
        format!("{}:flags", self.prefix)
    }

    /// Pub/sub channel announcing a flag change.
    pub fn flags_channel(&self) -> String {
        format!("{}:flags:changed", self.prefix)
    }

    /// String key (with a TTL) of one service instance's heartbeat.
    pub fn heartbeat(&self, service: &str, instance: &str) -> String {
        format!("{}:heartbeat:{service}:{instance}", self.prefix)
    }

    /// SCAN pattern matching every heartbeat key.
    pub fn heartbeat_pattern(&self) -> String {
        format!("{}:heartbeat:*", self.prefix)
    }

    /// String key holding the watchlist as JSON.
    pub fn watchlist(&self) -> String {
        format!("{}:watchlist", self.prefix)
    }

    /// Pub/sub channel announcing a watchlist change.
    pub fn watchlist_channel(&self) -> String {
        format!("{}:watchlist:changed", self.prefix)
    }

    /// Stream of [`cashtag_core::Event`]s.
    pub fn events_stream(&self) -> String {
        format!("{}:stream:events", self.prefix)
    }

    /// Stream of [`cashtag_core::CountSample`]s.
    pub fn counts_stream(&self) -> String {
        format!("{}:stream:counts", self.prefix)
    }

    /// Consumer group of cashtag-log on the events and counts streams.
    pub fn log_group(&self) -> &'static str {
        "cashtag-log"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_under_the_prefix_and_distinct() {
        let k = Keys::new("p1");
        let names = [
            k.control_channel(),
            k.control_state(),
            k.flags(),
            k.flags_channel(),
            k.heartbeat("manager", "h-1"),
            k.watchlist(),
            k.watchlist_channel(),
            k.events_stream(),
            k.counts_stream(),
        ];
        for n in &names {
            assert!(n.starts_with("p1:"), "{n}");
        }
        let mut d = names.to_vec();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), names.len());
    }
}
