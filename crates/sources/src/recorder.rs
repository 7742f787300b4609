//! `--record DIR`: every raw payload with its receive time, in daily JSON-lines files
//! `<dir>/<provider>-YYYY-MM-DD.jsonl`, for [`crate::replay`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// One recorded payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedPayload {
    #[serde(with = "cashtag_core::time::ts")]
    pub at: DateTime<Utc>,
    pub provider: String,
    /// Which stream or endpoint: `ws`, `bars`, `batch`, `stream`, `symbol` …
    pub channel: String,
    pub payload: String,
}

#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    dir: PathBuf,
    open: Option<(String, NaiveDate, File)>,
    failed: bool,
}

impl Recorder {
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Recorder { inner: Arc::new(Mutex::new(Inner { dir, open: None, failed: false })) })
    }

    pub fn write(&self, provider: &str, channel: &str, payload: &str, at: DateTime<Utc>) {
        let mut g = self.inner.lock().unwrap();
        let date = at.date_naive();
        if g.open.as_ref().is_none_or(|(p, d, _)| p != provider || *d != date) {
            let path = g.dir.join(format!("{provider}-{}.jsonl", date.format("%Y-%m-%d")));
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => g.open = Some((provider.to_string(), date, f)),
                Err(e) => {
                    if !g.failed {
                        tracing::error!(error = %e, path = %path.display(), "cannot open the recording file");
                        g.failed = true;
                    }
                    return;
                }
            }
        }
        let line = RecordedPayload { at, provider: provider.into(), channel: channel.into(), payload: payload.into() };
        let mut bytes = serde_json::to_vec(&line).expect("serializes");
        bytes.push(b'\n');
        if let Some((_, _, f)) = g.open.as_mut()
            && let Err(e) = f.write_all(&bytes)
        {
            tracing::error!(error = %e, "cannot write the recording file");
        }
    }
}
