//! One container as the status screen shows it, from the engine's inspect answer.

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::{container_name, service_of};

/// A container's state, health, restarts, uptime and image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerView {
    pub service: String,
    pub name: String,
    /// `running`, `exited`, `restarting` …
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`; none without a health check.
    pub health: Option<String>,
    pub restarts: i64,
    #[serde(with = "cashtag_core::time::ts_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "cashtag_core::time::ts_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub image: String,
    /// The last health check's output when it failed.
    pub health_output: Option<String>,
    /// A cashtag service (its command is a `cashtag-*` binary): it should have a heartbeat.
    pub cashtag_service: bool,
    /// The last line it logged, for a container that is not healthy (`cashtagctl` reads it
    /// from the engine; none from the inspect answer alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_log: Option<String>,
    /// Its memory limit (none without one) and, while it runs, what it uses
    /// (`cashtagctl` reads it from the engine's stats).
    pub memory_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_used: Option<u64>,
}

fn instant(s: Option<&String>) -> Option<DateTime<Utc>> {
    // The engine says 0001-01-01T00:00:00Z for "never".
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc)).filter(|t| t.timestamp() > 0)
}

impl ContainerView {
    pub fn from_inspect(c: &ContainerInspectResponse) -> ContainerView {
        let state = c.state.as_ref();
        let status = state.and_then(|s| s.status).unwrap_or(ContainerStateStatusEnum::EMPTY);
        let health = state.and_then(|s| s.health.as_ref());
        let health_status = health.and_then(|h| h.status).and_then(|h| match h {
            HealthStatusEnum::EMPTY | HealthStatusEnum::NONE => None,
            other => Some(other.to_string()),
        });
        let health_output = health
            .filter(|_| health_status.as_deref() == Some("unhealthy"))
            .and_then(|h| h.log.as_ref())
            .and_then(|log| log.last())
            .and_then(|r| r.output.clone())
            .map(|o| o.trim().chars().take(200).collect::<String>())
            .filter(|o| !o.is_empty());
        ContainerView {
            service: service_of(c),
            name: container_name(c),
            state: status.to_string(),
            health: health_status,
            restarts: c.restart_count.unwrap_or(0),
            started_at: instant(state.and_then(|s| s.started_at.as_ref())),
            finished_at: instant(state.and_then(|s| s.finished_at.as_ref())),
            exit_code: state.and_then(|s| s.exit_code),
            oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
            image: c.config.as_ref().and_then(|cfg| cfg.image.clone()).unwrap_or_default(),
            health_output,
            cashtag_service: c
                .config
                .as_ref()
                .and_then(|cfg| cfg.cmd.as_ref())
                .and_then(|cmd| cmd.first())
                .is_some_and(|p| p.starts_with("cashtag-")),
            last_log: None,
            memory_limit: c.host_config.as_ref().and_then(|h| h.memory).filter(|m| *m > 0).map(|m| m as u64),
            memory_used: None,
        }
    }

    /// Using this share of its memory limit or more is a problem: the next allocation
    /// spike is an OOM kill.
    pub const MEMORY_PROBLEM_SHARE: f64 = 0.9;

    /// The share of its memory limit it uses, when both are known.
    pub fn memory_share(&self) -> Option<f64> {
        Some(self.memory_used? as f64 / self.memory_limit? as f64)
    }

    /// Running, and healthy when it has a health check.
    pub fn is_healthy(&self) -> bool {
        self.state == "running" && self.health.as_deref().is_none_or(|h| h == "healthy")
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.is_healthy() {
            return None;
        }
        let what = match (self.state.as_str(), self.health.as_deref()) {
            ("running", Some(h)) => {
                let out = self.health_output.as_deref().map(|o| format!(" ({o})")).unwrap_or_default();
                format!("is {h}{out}")
            }
            ("exited", _) if self.oom_killed => "was killed for lack of memory (OOM)".to_string(),
            ("exited", _) => format!("exited with code {}", self.exit_code.unwrap_or(-1)),
            ("restarting", _) => {
                let why = if self.oom_killed {
                    "killed for lack of memory (OOM)".to_string()
                } else {
                    format!("exit code {}", self.exit_code.unwrap_or(-1))
                };
                format!("is restarting ({} restarts; last {why})", self.restarts)
            }
            (s, _) => format!("is {s}"),
        };
        let said = self.last_log.as_deref().map(|l| format!("; its last line: {l}")).unwrap_or_default();
        Some(format!("{} {what}{said}", self.service))
    }

    /// How long it has run (none when not running).
    pub fn uptime(&self, now: DateTime<Utc>) -> Option<chrono::TimeDelta> {
        (self.state == "running").then_some(())?;
        self.started_at.map(|s| now - s)
    }

    /// `healthy`, `starting` …; `-` without a health check or when not running (the
    /// engine keeps the last check's verdict of a stopped container).
    pub fn health_text(&self) -> &str {
        if self.state != "running" {
            return "-";
        }
        self.health.as_deref().unwrap_or("-")
    }
}

/// `3d4h`, `2h5m`, `4m12s`, `9s`.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    let (days, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

/// `1.2 MB`, `340 kB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_as_people_write_them() {
        assert_eq!(human_duration(chrono::TimeDelta::seconds(9)), "9s");
        assert_eq!(human_duration(chrono::TimeDelta::seconds(252)), "4m12s");
        assert_eq!(human_duration(chrono::TimeDelta::seconds(7_500)), "2h5m");
        assert_eq!(human_duration(chrono::TimeDelta::seconds(273_600)), "3d4h");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(340_000), "340.0 kB");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
