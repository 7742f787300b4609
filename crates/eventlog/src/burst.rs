//! Error bursts: more than K errors from one service within a window raise one summarized
//! alert; the next alert for that service comes only after a quiet window.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, PartialEq)]
pub struct Burst {
    pub service: String,
    pub errors: usize,
    pub window_secs: i64,
    /// The first few messages, for the summary.
    pub samples: Vec<String>,
}

#[derive(Debug, Default)]
struct ServiceErrors {
    times: VecDeque<DateTime<Utc>>,
    samples: VecDeque<String>,
    alerted: bool,
}

pub struct BurstDetector {
    threshold: usize,
    window: TimeDelta,
    services: BTreeMap<String, ServiceErrors>,
}

impl BurstDetector {
    pub fn new(threshold: usize, window: TimeDelta) -> Self {
        BurstDetector { threshold, window, services: BTreeMap::new() }
    }

    /// Records an error event; returns an alert when this error makes a burst.
    pub fn error(&mut self, service: &str, at: DateTime<Utc>, message: &str) -> Option<Burst> {
        let s = self.services.entry(service.to_string()).or_default();
        while s.times.front().is_some_and(|t| at - *t > self.window) {
            s.times.pop_front();
            s.samples.pop_front();
        }
        if s.times.is_empty() {
            s.alerted = false;
        }
        s.times.push_back(at);
        s.samples.push_back(message.chars().take(200).collect());
        if s.times.len() > self.threshold && !s.alerted {
            s.alerted = true;
            return Some(Burst {
                service: service.to_string(),
                errors: s.times.len(),
                window_secs: self.window.num_seconds(),
                samples: s.samples.iter().take(5).cloned().collect(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_alert_per_burst() {
        let t0 = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let mut d = BurstDetector::new(3, TimeDelta::seconds(60));
        let alerts: Vec<_> = (0..10).filter_map(|i| d.error("stocks", t0 + TimeDelta::seconds(i), "boom")).collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].errors, 4);
        // Another service is separate; a quiet window re-arms.
        assert!(d.error("twitter", t0, "x").is_none());
        let later = t0 + TimeDelta::seconds(300);
        let again: Vec<_> = (0..5).filter_map(|i| d.error("stocks", later + TimeDelta::seconds(i), "boom")).collect();
        assert_eq!(again.len(), 1);
    }
}
