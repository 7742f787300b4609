//! Daily JSON-lines files: `<dir>/<name>-YYYY-MM-DD.jsonl`, one line per entry (with its
//! stream id, so a reader can drop the rare repeat after a crash), the oldest deleted
//! beyond the retention count.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use chrono::NaiveDate;

pub struct DailyFiles {
    dir: PathBuf,
    name: &'static str,
    keep: usize,
    open: Option<(NaiveDate, File)>,
}

impl DailyFiles {
    pub fn new(dir: impl Into<PathBuf>, name: &'static str, keep: usize) -> std::io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let mut f = DailyFiles { dir, name, keep: keep.max(1), open: None };
        f.prune()?;
        Ok(f)
    }

    fn path(&self, date: NaiveDate) -> PathBuf {
        self.dir.join(format!("{}-{}.jsonl", self.name, date.format("%Y-%m-%d")))
    }

    /// Appends one JSON line to the file of `date`.
    pub fn append(&mut self, date: NaiveDate, line: &serde_json::Value) -> std::io::Result<()> {
        if self.open.as_ref().is_none_or(|(d, _)| *d != date) {
            let file = OpenOptions::new().create(true).append(true).open(self.path(date))?;
            let rotated = self.open.is_some();
            self.open = Some((date, file));
            if rotated {
                self.prune()?;
            }
        }
        let (_, file) = self.open.as_mut().expect("opened");
        let mut bytes = serde_json::to_vec(line).expect("serializes");
        bytes.push(b'\n');
        file.write_all(&bytes)
    }

    /// Deletes all but the newest `keep` daily files.
    pub fn prune(&mut self) -> std::io::Result<()> {
        let prefix = format!("{}-", self.name);
        let mut files: Vec<(NaiveDate, PathBuf)> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let date = name.strip_prefix(&prefix)?.strip_suffix(".jsonl")?.parse().ok()?;
                Some((date, e.path()))
            })
            .collect();
        files.sort();
        let excess = files.len().saturating_sub(self.keep);
        for (_, path) in files.into_iter().take(excess) {
            fs::remove_file(path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_daily_and_keeps_the_newest() {
        let dir = std::env::temp_dir().join(format!("cashtag-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut f = DailyFiles::new(&dir, "events", 2).unwrap();
        for d in 1..=4 {
            let date = NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
            f.append(date, &serde_json::json!({"d": d})).unwrap();
            f.append(date, &serde_json::json!({"d": d, "n": 2})).unwrap();
        }
        let mut names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, vec!["events-2026-11-03.jsonl", "events-2026-11-04.jsonl"]);
        let text = fs::read_to_string(dir.join("events-2026-11-04.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 2);
        let _ = fs::remove_dir_all(dir);
    }
}
