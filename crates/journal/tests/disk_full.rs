//! A journal on a small tmpfs that fills up: a failed append (ENOSPC) leaves no partial
//! frame, every entry appended before stays readable, and appends go on once there is
//! room again. The tmpfs needs root (the test machines run as root); a mount that fails
//! fails the test, it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use cashtag_journal::{Fsync, Journal, JournalConfig, JournalError};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = std::env::temp_dir().join(cashtag_testkit::unique("journal-tmpfs"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs for the disk-full test (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_they_resume_when_there_is_room() {
    let fs = Tmpfs::mount(256 * 1024);
    // Something else on the disk takes most of it.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 160 * 1024]).unwrap();
    let dir = fs.path().join("journal");
    let cfg = JournalConfig { dir: dir.clone(), segment_bytes: 1 << 30, max_bytes: 1 << 30, fsync: Fsync::Always };
    let j = Journal::open(cfg.clone(), &["sink"]).unwrap();
    let entry = vec![b'x'; 1000];
    let mut appended = 0usize;
    let err = loop {
        match j.append([(1u8, entry.as_slice()), (1u8, entry.as_slice())]) {
            Ok(_) => appended += 2,
            Err(e) => break e,
        }
        assert!(appended < 10_000, "the disk never filled");
    };
    assert!(matches!(err, JournalError::Io { .. }) && err.is_disk_error(), "{err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    // No partial frame: the segment ends exactly where the journal says it ends.
    let end = j.end();
    let seg = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .expect("a segment");
    assert_eq!(seg.metadata().unwrap().len(), end.offset, "the failed frame was truncated away");
    // A retry while the disk is still full fails the same way, and leaves nothing behind.
    assert!(j.append([(1u8, entry.as_slice())]).is_err());
    assert_eq!(seg.metadata().unwrap().len(), end.offset);

    // Room again: the append goes through and a reader (also after a restart) gets it all.
    std::fs::remove_file(&ballast).unwrap();
    j.append([(1u8, &b"after"[..])]).expect("append after room is made");
    drop(j);
    let j = Journal::open(cfg, &["sink"]).unwrap();
    let mut r = j.reader("sink");
    let mut got = 0usize;
    let mut last = Vec::new();
    loop {
        let b = r.read(10_000).unwrap();
        assert!(b.damages.is_empty(), "{:?}", b.damages);
        if b.is_empty() {
            break;
        }
        got += b.len();
        last = b.items().last().unwrap().to_vec();
        r.commit(&b).unwrap();
    }
    assert_eq!(got, appended + 1);
    assert_eq!(last, b"after");
}
