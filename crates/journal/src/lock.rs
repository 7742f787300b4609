//! One process per journal directory: an exclusive `flock` on `<dir>/LOCK`, held for the
//! life of the journal and released by the kernel when the process dies (also on
//! `kill -9`). The file names the holder, for the error the next process gets.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::JournalError;

/// The held lock; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

fn holder_text() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("pid {} on {}", std::process::id(), if host.is_empty() { "this host" } else { &host })
}

impl DirLock {
    /// Takes the lock, or fails at once with who holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, JournalError> {
        let path = dir.join("LOCK");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| JournalError::io("opening the lock file", &path, e))?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(JournalError::Locked {
                    dir: dir.display().to_string(),
                    holder: if holder.trim().is_empty() { "another process".into() } else { holder.trim().to_string() },
                });
            }
            return Err(JournalError::io("locking", &path, err));
        }
        let text = holder_text();
        let _ =
            file.set_len(0).and_then(|_| file.seek(SeekFrom::Start(0))).and_then(|_| file.write_all(text.as_bytes()));
        Ok(DirLock { _file: file })
    }
}
