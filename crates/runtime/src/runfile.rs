//! Did the last run end cleanly? A container killed by the kernel for memory, or by
//! `kill -9`, or a crash, leaves no event: the process is gone before it can say anything,
//! and Docker restarts it. So each run keeps a small file on the service's own state
//! volume (`service.run_file`): written at start, refreshed every heartbeat with the
//! memory in use against the container's limit, removed at a clean stop. A start that
//! finds the file reports `service.restarted` — how long the run lasted, its memory at its
//! last heartbeat (near the limit: probably OOM-killed), the unclean ends of the last 10
//! minutes (3 or more: a restart loop) — and `service.stable` once it has run 10 minutes.
//! The log turns the two into one incident for the webhook.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Unclean ends counted for a restart loop: those of this window.
const LOOP_WINDOW: TimeDelta = TimeDelta::minutes(10);
/// A run that follows an unclean end is stable after this long.
pub const STABLE_AFTER: TimeDelta = TimeDelta::minutes(10);

/// What the file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub started_at: Option<DateTime<Utc>>,
    /// MiB in use at the last heartbeat, and the limit when there is one.
    pub memory_mib: Option<f64>,
    pub memory_limit_mib: Option<f64>,
    /// When earlier runs ended uncleanly (found at their next start), newest last.
    pub unclean_ends: Vec<DateTime<Utc>>,
}

/// What a start found about the run before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Previous {
    pub lasted_secs: Option<f64>,
    pub memory: Option<(f64, Option<f64>)>,
    /// Unclean ends in the last 10 minutes, this one included.
    pub recent: usize,
}

/// The run file of this process.
pub struct RunFile {
    path: PathBuf,
    record: RunRecord,
    stopped: bool,
}

impl RunFile {
    /// Reads what the last run left (`Some` when it did not end cleanly) and starts this
    /// run's record. Errors reading or writing are logged, never fatal: the file only
    /// informs.
    pub fn start(path: &Path, now: DateTime<Utc>) -> (RunFile, Option<Previous>) {
        let left: Option<RunRecord> = std::fs::read(path).ok().map(|b| serde_json::from_slice(&b).unwrap_or_default());
        let mut unclean_ends = left.as_ref().map(|r| r.unclean_ends.clone()).unwrap_or_default();
        let previous = left.map(|r| {
            unclean_ends.push(now);
            unclean_ends.retain(|t| now - *t <= LOOP_WINDOW);
            Previous {
                lasted_secs: r.started_at.map(|s| (now - s).num_milliseconds().max(0) as f64 / 1000.0),
                memory: r.memory_mib.map(|m| (m, r.memory_limit_mib)),
                recent: unclean_ends.len(),
            }
        });
        let record = RunRecord { started_at: Some(now), unclean_ends, ..RunRecord::default() };
        let file = RunFile { path: path.to_path_buf(), record, stopped: false };
        file.write();
        (file, previous)
    }

    /// Records the memory in use now (at every heartbeat).
    pub fn sample(&mut self, memory: Option<(f64, Option<f64>)>) {
        if self.stopped {
            return;
        }
        self.record.memory_mib = memory.map(|m| m.0);
        self.record.memory_limit_mib = memory.and_then(|m| m.1);
        self.write();
    }

    /// A clean stop: the next start finds no file (and samples no longer write it).
    pub fn clean_stop(&mut self) {
        self.stopped = true;
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), "cannot remove the run file: {e}");
        }
    }

    fn write(&self) {
        let tmp = self.path.with_extension("tmp");
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(&tmp, serde_json::to_vec(&self.record).unwrap_or_default()))
            .and_then(|_| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), "cannot write the run file: {e}");
        }
    }
}

/// This process's memory in MiB and its container's limit: the cgroup's usage and limit
/// when readable (what the kernel's OOM killer compares: v2's `memory.current` and
/// `memory.max`, v1's `memory.usage_in_bytes` and `memory.limit_in_bytes`), else the
/// resident set from /proc without a limit.
pub fn memory_now() -> Option<(f64, Option<f64>)> {
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|t| t.trim().to_string());
    let number = |p: &str| read(p).and_then(|t| t.parse::<f64>().ok());
    for (usage, limit) in [
        ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.max"),
        ("/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    ] {
        if let Some(current) = number(usage) {
            // "max" (v2) or a number near 2^63 (v1): no limit.
            let limit = number(limit).filter(|l| *l < 2f64.powi(60));
            return Some((mib(current), limit.map(mib)));
        }
    }
    let status = read("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<f64>()
        .ok()?;
    Some((kb / 1024.0, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclean_end_is_found_at_the_next_start_and_a_clean_stop_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("cashtag-runfile-{}", std::process::id()));
        let path = dir.join("state/run.json");
        let t0: DateTime<Utc> = "2026-12-07T14:00:00Z".parse().unwrap();

        let (mut file, previous) = RunFile::start(&path, t0);
        assert_eq!(previous, None, "a first start");
        file.clean_stop();
        let (mut file, previous) = RunFile::start(&path, t0 + TimeDelta::minutes(1));
        assert_eq!(previous, None, "after a clean stop");
        file.sample(Some((490.0, Some(512.0))));
        drop(file); // killed: the file stays

        let (file, previous) = RunFile::start(&path, t0 + TimeDelta::minutes(2));
        let previous = previous.expect("an unclean end");
        assert_eq!(previous.lasted_secs, Some(60.0));
        assert_eq!(previous.memory, Some((490.0, Some(512.0))));
        assert_eq!(previous.recent, 1);
        drop(file);
        let (file, _) = RunFile::start(&path, t0 + TimeDelta::minutes(3));
        drop(file);
        let (file, previous) = RunFile::start(&path, t0 + TimeDelta::minutes(4));
        assert_eq!(previous.unwrap().recent, 3, "three unclean ends in 10 minutes: a loop");
        drop(file);
        let (mut file, previous) = RunFile::start(&path, t0 + TimeDelta::minutes(30));
        assert_eq!(previous.unwrap().recent, 1, "the old ones are out of the window");
        file.clean_stop();
        file.sample(Some((1.0, None)));
        assert!(!path.exists(), "no sample after the clean stop writes it again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_is_read_from_the_cgroup_or_proc() {
        let (used, _) = memory_now().expect("this process's memory");
        assert!(used > 0.5, "{used} MiB");
    }
}
