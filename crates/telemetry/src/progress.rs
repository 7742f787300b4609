//! Progress of long work (backups, restores, back-fills, exports): a bar per task on a
//! terminal, plain log lines every tenth of the way otherwise; nothing with `--quiet`.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Progress {
    bars: Option<MultiProgress>,
    quiet: bool,
}

/// One task's progress.
pub struct Bar {
    name: String,
    unit: &'static str,
    total: u64,
    count: u64,
    bar: Option<ProgressBar>,
    next_log: u64,
    /// Log lines when there is no bar (off with `--quiet`).
    log: bool,
}

impl Progress {
    /// Bars when stderr is a terminal, log lines otherwise; neither when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Progress { bars: (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new), quiet }
    }

    /// A task of `total` units (`"docs"`, `"days"` …).
    pub fn task(&self, name: &str, total: u64, unit: &'static str) -> Bar {
        let bar = self.bars.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total));
            b.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:<32}} {{bar:30}} {{pos:>9}}/{{len:9}} {unit} {{per_sec:>12}} {{elapsed}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_prefix(name.to_string());
            b
        });
        Bar { name: name.to_string(), unit, total, count: 0, bar, next_log: (total / 10).max(10_000), log: !self.quiet }
    }
}

impl Bar {
    /// Sets the count (it only grows).
    pub fn set_count(&mut self, count: u64) {
        if count > self.count {
            self.add(count - self.count);
        }
    }

    /// Adds to the count.
    pub fn add(&mut self, n: u64) {
        self.count += n;
        match &self.bar {
            Some(b) => b.set_position(self.count),
            None => {
                if self.log && self.count >= self.next_log {
                    tracing::info!(task = %self.name, done = self.count, total = self.total, unit = self.unit, "progress");
                    self.next_log += (self.total / 10).max(10_000);
                }
            }
        }
    }

    pub fn finish(&self, count: u64) {
        match &self.bar {
            Some(b) => {
                b.set_length(count.max(self.total));
                b.finish_with_message("done");
                b.set_position(count);
            }
            None if self.log => tracing::info!(task = %self.name, done = count, unit = self.unit, "done"),
            None => {}
        }
    }

    pub fn done(self) {
        let c = self.count;
        self.finish(c);
    }
}
