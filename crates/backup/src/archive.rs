//! The archive stream: a gzip-compressed tar in mongodump's directory layout —
//! `<db>/<collection>.bson` (documents back to back) and `<db>/<collection>.metadata.json`
//! (index definitions) — written and read incrementally, with a SHA-256 of the
//! compressed bytes computed on the way.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// A writer that hashes what passes through.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), bytes: 0 }
    }

    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what passes through.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Reads whatever is left (the gzip trailer, padding), hashing it, and returns the
    /// digest and the number of bytes read.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        let mut buf = [0u8; 64 * 1024];
        while self.read(&mut buf)? > 0 {}
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A writer that cuts the stream into parts of `part_size` bytes and hands each to an
/// async uploader; blocks (back-pressure) while the uploader is busy, so memory stays at
/// a couple of parts whatever the archive size.
pub struct PartWriter {
    buf: Vec<u8>,
    part_size: usize,
    tx: mpsc::Sender<Vec<u8>>,
}

impl PartWriter {
    pub fn new(part_size: usize, tx: mpsc::Sender<Vec<u8>>) -> Self {
        PartWriter { buf: Vec::with_capacity(part_size), part_size, tx }
    }

    fn send(&mut self) -> io::Result<()> {
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
        self.tx.blocking_send(part).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the uploader stopped"))
    }

    /// Sends the last (possibly short) part.
    pub fn close(mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.part_size - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.part_size {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads the next BSON document from a `.bson` stream; `None` at the end.
pub fn read_document<R: Read>(r: &mut R) -> io::Result<Option<bson::RawDocumentBuf>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = i32::from_le_bytes(len);
    if !(5..=16 * 1024 * 1024 + 16 * 1024).contains(&n) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("implausible document length {n}")));
    }
    let mut bytes = vec![0u8; n as usize];
    bytes[..4].copy_from_slice(&len);
    r.read_exact(&mut bytes[4..])?;
    let doc = bson::RawDocumentBuf::from_bytes(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    // Walk every element: a document that does not parse through is corrupt.
    for el in doc.iter() {
        el.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    }
    Ok(Some(doc))
}

/// `<db>/<coll>.bson` or `.metadata.json` → (db, coll, kind).
pub fn split_entry(path: &str) -> Option<(String, String, &'static str)> {
    let (db, file) = path.split_once('/')?;
    if let Some(c) = file.strip_suffix(".bson") {
        return Some((db.into(), c.into(), "bson"));
    }
    if let Some(c) = file.strip_suffix(".metadata.json") {
        return Some((db.into(), c.into(), "metadata"));
    }
    None
}
