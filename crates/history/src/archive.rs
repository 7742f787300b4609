//! Archive files: the paths given (files or directory trees, walked in name order),
//! read line by line whether gzip-compressed or not (by magic bytes, not by extension:
//! research datasets often have none), with line numbers for error reports. A line is
//! at most [`MAX_LINE`] bytes: a longer one (a file without line ends, a gzip bomb that
//! inflates to one endless line) is skipped and reported without ever being held whole.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::HistoryError;

/// Every file under `paths`, sorted, hidden files and directories left out.
pub fn walk(paths: &[PathBuf]) -> Result<Vec<PathBuf>, HistoryError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| HistoryError::Io { path: p.display().to_string(), source })?;
        if meta.is_dir() {
            walk_dir(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), HistoryError> {
    let io = |source| HistoryError::Io { path: dir.display().to_string(), source };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        if e.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        if e.is_dir() {
            walk_dir(&e, out)?;
        } else {
            out.push(e);
        }
    }
    Ok(())
}

/// The name of the folder a file sits in (`AAPL` for `tweets/AAPL/2024-01-02`).
pub fn parent_name(path: &Path) -> Option<String> {
    path.parent()?.file_name()?.to_str().map(str::to_string)
}

/// A file's name without the compression and data extensions (`BRK-B` for `BRK-B.csv.gz`).
pub fn stem(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(name);
    match name.rsplit_once('.') {
        Some((s, ext)) if ["csv", "json", "jsonl", "ndjson", "txt"].contains(&ext.to_ascii_lowercase().as_str()) => {
            s.to_string()
        }
        _ => name.to_string(),
    }
}

/// One line of a file, or why the file could not be read further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// (1-based line number, text without the line end).
    Text(u64, String),
    /// Not UTF-8: reported and skipped.
    Invalid(u64, String),
}

/// The longest line an archive may hold: a tweet object is a few KB, so 16 MiB leaves
/// room for any real one and bounds the memory a hostile file can take.
pub const MAX_LINE: usize = 16 << 20;

/// A file's lines, one at a time. A read error (a truncated gzip stream, a failing disk)
/// ends the file: it comes as an `Err` with the line number it happened at, after every
/// whole line before it.
pub struct Lines {
    inner: BufReader<Box<dyn Read + Send>>,
    gzip: bool,
    n: u64,
    buf: Vec<u8>,
    done: bool,
    max_line: usize,
}

impl Lines {
    pub fn open(path: &Path) -> Result<Lines, HistoryError> {
        Lines::open_with_limit(path, MAX_LINE)
    }

    /// [`Lines::open`] with another longest line.
    pub fn open_with_limit(path: &Path, max_line: usize) -> Result<Lines, HistoryError> {
        let io = |source| HistoryError::Io { path: path.display().to_string(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let gzip = reader.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b])).map_err(io)?;
        let inner: Box<dyn Read + Send> =
            if gzip { Box::new(flate2::read::MultiGzDecoder::new(reader)) } else { Box::new(reader) };
        Ok(Lines {
            inner: BufReader::with_capacity(1 << 16, inner),
            gzip,
            n: 0,
            buf: Vec::with_capacity(4096),
            done: false,
            max_line,
        })
    }

    /// Reads past the rest of a line without keeping it; returns the bytes skipped.
    fn skip_line(&mut self) -> std::io::Result<u64> {
        let mut skipped = 0u64;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(skipped);
            }
            match buf.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.inner.consume(i + 1);
                    return Ok(skipped + i as u64 + 1);
                }
                None => {
                    let n = buf.len();
                    self.inner.consume(n);
                    skipped += n as u64;
                }
            }
        }
    }

    fn failed(&mut self, line: u64, e: std::io::Error) -> Option<<Self as Iterator>::Item> {
        self.done = true;
        let what = if self.gzip { format!("gzip stream ends early or is damaged: {e}") } else { e.to_string() };
        Some(Err((line, what)))
    }
}

impl Iterator for Lines {
    type Item = Result<Line, (u64, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buf.clear();
        // At most one byte past the limit: enough to tell a line that is too long.
        match (&mut self.inner).take(self.max_line as u64 + 1).read_until(b'\n', &mut self.buf) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(read) => {
                self.n += 1;
                if read > self.max_line && self.buf.last() != Some(&b'\n') {
                    let line = self.n;
                    self.buf = Vec::with_capacity(4096);
                    return match self.skip_line() {
                        Ok(rest) => Some(Ok(Line::Invalid(
                            line,
                            format!("longer than {} bytes ({} bytes); skipped", self.max_line, read as u64 + rest),
                        ))),
                        Err(e) => self.failed(line, e),
                    };
                }
                while self.buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    self.buf.pop();
                }
                Some(Ok(match std::str::from_utf8(&self.buf) {
                    Ok(s) => Line::Text(self.n, s.to_string()),
                    Err(e) => Line::Invalid(self.n, format!("not UTF-8: {e}")),
                }))
            }
            Err(e) => self.failed(self.n + 1, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_plain_gzip_and_truncated_files() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("AAPL").join("2024-01-02");
        std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
        std::fs::write(&plain, "a\r\nb\n\nc").unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..2000 {
            writeln!(gz, "line {i} with some text to make the stream long enough").unwrap();
        }
        let bytes = gz.finish().unwrap();
        std::fs::write(dir.path().join("whole.gz"), &bytes).unwrap();
        std::fs::write(dir.path().join("cut.gz"), &bytes[..bytes.len() / 2]).unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let files = walk(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<String> = files.iter().map(|f| stem(f)).collect();
        assert_eq!(names, vec!["2024-01-02", "cut", "whole"]);
        assert_eq!(parent_name(&files[0]).as_deref(), Some("AAPL"));
        let got: Vec<String> = Lines::open(&files[0])
            .unwrap()
            .map(|l| match l {
                Ok(Line::Text(_, s)) => s,
                _ => panic!(),
            })
            .collect();
        assert_eq!(got, vec!["a", "b", "", "c"]);
        assert_eq!(Lines::open(&files[2]).unwrap().count(), 2000);
        let lines: Vec<_> = Lines::open(&files[1]).unwrap().collect();
        let whole = lines.iter().filter(|l| l.is_ok()).count() as u64;
        let Some(Err((at, why))) = lines.last() else { panic!("a truncated stream ends in an error") };
        assert!(whole > 0 && whole < 2000 && *at == whole + 1, "{whole} lines, then the error at {at}");
        assert!(why.contains("gzip"), "{why}");
        assert_eq!(stem(Path::new("BRK-B.csv.gz")), "BRK-B");
    }
}
