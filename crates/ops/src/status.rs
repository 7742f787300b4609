//! The status screen: containers and suite state side by side, what is wrong, and the
//! exit code scripts go by. Pure: given the engine's and the bus's answers and the time,
//! the screen and the verdict are always the same.

use cashtag_calendar::ny_time as ny;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::containers::{ContainerView, human_bytes, human_duration};
use crate::suite::SuiteState;

/// A cashtag container this long up without a heartbeat is a problem (before, it may be
/// starting).
const HEARTBEAT_GRACE: TimeDelta = TimeDelta::seconds(60);
/// A sink down this long is a problem (before, a note: a restart or a short outage that
/// the journal rides out).
pub const SINK_DOWN_PROBLEM_SECS: f64 = 60.0;

/// Everything `cashtagctl status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub project: String,
    #[serde(with = "cashtag_core::time::ts")]
    pub now: DateTime<Utc>,
    pub containers: Vec<ContainerView>,
    /// The bus's view (none when Redis cannot be read) …
    pub suite: Option<SuiteState>,
    /// … and why not (without credentials).
    pub bus_error: Option<String>,
    /// What is wrong; empty when all is well.
    pub problems: Vec<String>,
    /// Worth knowing, not wrong (a sink switched off, a maintenance stop).
    pub notes: Vec<String>,
}

impl Status {
    pub fn new(
        project: &str,
        now: DateTime<Utc>,
        containers: Vec<ContainerView>,
        suite: Result<SuiteState, String>,
    ) -> Status {
        let mut problems: Vec<String> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        if containers.is_empty() {
            problems.push(format!("project {project:?} has no containers (is it up? --project names another)"));
        }
        problems.extend(containers.iter().filter_map(ContainerView::problem));
        for c in
            containers.iter().filter(|c| c.memory_share().is_some_and(|s| s >= ContainerView::MEMORY_PROBLEM_SHARE))
        {
            problems.push(format!(
                "{} uses {:.0}% of its memory limit ({} of {}): near an OOM kill",
                c.service,
                c.memory_share().unwrap_or(0.0) * 100.0,
                human_bytes(c.memory_used.unwrap_or(0)),
                human_bytes(c.memory_limit.unwrap_or(0))
            ));
        }
        match &suite {
            // (Without containers, that is the one problem.)
            Err(e) if !containers.is_empty() => problems.push(format!("the bus cannot be read: {e}")),
            Err(_) => {}
            Ok(s) => {
                for c in containers.iter().filter(|c| c.cashtag_service && c.is_healthy()) {
                    let up_long_enough = c.uptime(now).is_some_and(|u| u > HEARTBEAT_GRACE);
                    if s.heartbeat(&c.service).is_none() && up_long_enough {
                        problems.push(format!("{} runs but sends no heartbeat", c.service));
                    }
                }
                for f in &s.fetchers {
                    if f.blocked {
                        problems.push(format!("{}: the journal is full; records cannot be accepted", f.service));
                    }
                    for sink in f.sinks.iter().filter(|s| s.enabled && !s.up) {
                        let what = format!(
                            "{}: {} down for {:.0} s; {} wait in the journal",
                            f.service,
                            sink.sink,
                            sink.down_seconds,
                            human_bytes(sink.backlog_bytes)
                        );
                        if sink.down_seconds >= SINK_DOWN_PROBLEM_SECS { problems.push(what) } else { notes.push(what) }
                    }
                }
                if let Some(since) = s.heartbeat("backup").and_then(|h| h.info["overdue_since"].as_str()) {
                    problems.push(format!("backups are overdue: none since the run due at {since}"));
                }
                if let Some(b) = s.last_backup.as_ref().filter(|b| b.code == cashtag_core::catalog::BACKUP_FAILED) {
                    problems.push(format!(
                        "the last backup failed at {}: {}",
                        b.at.format("%Y-%m-%d %H:%M:%S UTC"),
                        b.message
                    ));
                }
                if let Some(h) = s.held_at(now) {
                    notes.push(format!("the data sources are stopped for maintenance: {}", h.state_reason()));
                }
                for (name, on) in &s.flags {
                    if !on {
                        notes.push(format!("flag {name} is off"));
                    }
                }
            }
        }
        let (suite, bus_error) = match suite {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        Status { project: project.to_string(), now, containers, suite, bus_error, problems, notes }
    }

    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// The screen, for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, s: String| {
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&mut out, format!("cashtag project {} at {}", self.project, self.now.format("%Y-%m-%d %H:%M:%S UTC")));
        line(&mut out, String::new());
        let rows: Vec<[String; 7]> = self
            .containers
            .iter()
            .map(|c| {
                [
                    c.service.clone(),
                    c.name.clone(),
                    c.state.clone(),
                    c.health_text().to_string(),
                    c.restarts.to_string(),
                    c.uptime(self.now).map(human_duration).unwrap_or_else(|| "-".into()),
                    c.image.clone(),
                ]
            })
            .collect();
        if rows.is_empty() {
            line(&mut out, "No containers.".into());
        } else {
            out.push_str(&table(["SERVICE", "CONTAINER", "STATE", "HEALTH", "RESTARTS", "UP", "IMAGE"], &rows));
        }
        line(&mut out, String::new());
        match (&self.suite, &self.bus_error) {
            (Some(s), _) => self.render_suite(&mut out, s),
            (None, e) => line(&mut out, format!("Bus         cannot be read: {}", e.as_deref().unwrap_or("-"))),
        }
        line(&mut out, String::new());
        for n in &self.notes {
            line(&mut out, format!("note: {n}"));
        }
        if self.problems.is_empty() {
            line(&mut out, "All healthy.".into());
        } else {
            for p in &self.problems {
                line(&mut out, format!("PROBLEM: {p}"));
            }
        }
        out
    }

    fn render_suite(&self, out: &mut String, s: &SuiteState) {
        let mut line = |t: String| {
            out.push_str(t.trim_end());
            out.push('\n');
        };
        let on_off = |on: bool| if on { "on" } else { "off" };
        if s.control.at.timestamp() == 0 {
            line("Sources     off: no control state yet (the manager sets it when it starts)".into());
        } else {
            line(format!("Sources     {} since {}: {}", on_off(s.control.is_on()), ny(s.control.at), s.control.reason));
        }
        match &s.market {
            // Held, the manager's "next change" is the calendar's, not when the stop ends.
            Some(_) if s.held_at(self.now).is_some() => {
                line("Market      off: maintenance stop (the calendar decides again when it ends)".into())
            }
            Some(m) => {
                let next = m
                    .next_change
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| ny(t.with_timezone(&Utc)))
                    .unwrap_or_else(|| "-".into());
                let session = m.session_date.as_deref().unwrap_or("-");
                let reason = m.reason.as_deref().unwrap_or("-");
                let turn = if m.market_on { "off" } else { "on" };
                line(format!("Market      {} ({reason}); session {session}; {turn} at {next}", on_off(m.market_on)));
            }
            None => line("Market      no manager heartbeat: nobody follows the calendar".into()),
        }
        if let Some(h) = s.held_at(self.now) {
            let until =
                h.until.map(|u| format!(" until {}", ny(u))).unwrap_or_else(|| " until `cashtagctl start`".into());
            line(format!("Maintenance stopped by {} at {}{until}: {}", h.by, ny(h.at), h.reason));
        }
        let flags: Vec<String> = s.flags.iter().map(|(k, v)| format!("{k} {}", on_off(*v))).collect();
        line(format!("Flags       {}", if flags.is_empty() { "none set".into() } else { flags.join(" · ") }));
        // A listed heartbeat is live (its key outlives it by a few intervals only); its
        // `at` is on the suite's clock, which may be simulated, so no age is shown.
        let mut per_service: Vec<(String, usize)> = Vec::new();
        for h in &s.heartbeats {
            match per_service.iter_mut().find(|(name, _)| *name == h.service) {
                Some((_, n)) => *n += 1,
                None => per_service.push((h.service.clone(), 1)),
            }
        }
        let beats: Vec<String> =
            per_service.into_iter().map(|(name, n)| if n == 1 { name } else { format!("{name} ×{n}") }).collect();
        line(format!("Heartbeats  {}", if beats.is_empty() { "none".into() } else { beats.join(" · ") }));
        if !s.fetchers.is_empty() {
            line(String::new());
            let mut rows: Vec<[String; 7]> = Vec::new();
            for f in &s.fetchers {
                let journal = format!("{} of {}", human_bytes(f.journal_bytes), human_bytes(f.journal_max_bytes));
                for (i, sink) in f.sinks.iter().enumerate() {
                    let state = match (sink.enabled, sink.up) {
                        (false, _) => "off".to_string(),
                        (true, true) => "up".to_string(),
                        (true, false) => {
                            format!("down {}", human_duration(TimeDelta::seconds(sink.down_seconds as i64)))
                        }
                    };
                    let first = i == 0;
                    rows.push([
                        if first { f.service.clone() } else { String::new() },
                        if first { f.records.to_string() } else { String::new() },
                        if first { journal.clone() } else { String::new() },
                        sink.sink.clone(),
                        state,
                        sink.written.to_string(),
                        human_bytes(sink.backlog_bytes),
                    ]);
                }
            }
            out.push_str(&table(["FETCHER", "RECORDS", "JOURNAL", "SINK", "STATE", "WRITTEN", "BACKLOG"], &rows));
        }
        out.push('\n');
        if s.errors.is_empty() {
            out.push_str("Last errors none\n");
        } else {
            out.push_str("Last errors\n");
            for e in &s.errors {
                out.push_str(&format!(
                    "  {} {} {}: {}\n",
                    e.at.format("%Y-%m-%d %H:%M:%S"),
                    e.service,
                    e.code,
                    e.message
                ));
            }
        }
    }
}

/// Left-aligned columns, two spaces apart; numbers stay left too (they are short).
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths: [usize; N] = header.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push_row(header.to_vec());
    for r in rows {
        push_row(r.iter().map(String::as_str).collect());
    }
    out
}
