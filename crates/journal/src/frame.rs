//! The on-disk frame: one group commit of entries.
//!
//! ```text
//! 0..4    magic "CJ01"
//! 4..8    payload length (u32, little-endian)
//! 8..12   CRC-32 of the payload
//! 12..16  CRC-32 of bytes 0..12 (so a resync never trusts a random length)
//! 16..    payload: entries, each  targets (u8) | length (u32 LE) | data
//! ```
//!
//! A frame is valid only if both checksums match; [`scan`] finds the next valid frame
//! after damage, so a damaged frame costs only itself, never the rest of its segment.

pub const MAGIC: &[u8; 4] = b"CJ01";
pub const HEADER: usize = 16;
/// Largest payload accepted when reading.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// CRC-32 (IEEE 802.3), the checksum of zlib and gzip: `crc32fast`, which uses the CPU's
/// carry-less multiply where there is one (the journal checksums every byte twice, on
/// append and on read; a table lookup per byte was a tenth of the ingest path).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Encodes entries `(targets, data)` as one frame.
pub fn encode<'a>(entries: impl IntoIterator<Item = (u8, &'a [u8])>) -> Vec<u8> {
    // Sized once: a group commit's frame can hold a megabyte.
    let entries: Vec<(u8, &[u8])> = entries.into_iter().collect();
    let mut frame = Vec::with_capacity(HEADER + entries.iter().map(|(_, d)| 5 + d.len()).sum::<usize>());
    frame.resize(HEADER, 0);
    for (targets, data) in entries {
        frame.push(targets);
        frame.extend_from_slice(&(data.len() as u32).to_le_bytes());
        frame.extend_from_slice(data);
    }
    let len = (frame.len() - HEADER) as u32;
    let crc = crc32(&frame[HEADER..]);
    frame[0..4].copy_from_slice(MAGIC);
    frame[4..8].copy_from_slice(&len.to_le_bytes());
    frame[8..12].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32(&frame[0..12]);
    frame[12..16].copy_from_slice(&hcrc.to_le_bytes());
    frame
}

/// What is at an offset of a segment's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum At {
    /// A valid frame: its payload range and where the next frame starts.
    Frame { payload: std::ops::Range<usize>, next: usize },
    /// The bytes end here (a clean end).
    End,
    /// Fewer bytes than the frame needs: a torn tail (or data still being written).
    Torn,
    /// Not a valid frame.
    Damaged(&'static str),
}

/// The payload length a header announces, if the header is intact.
pub fn header_len(header: &[u8]) -> Option<usize> {
    if header.len() < HEADER || &header[0..4] != MAGIC {
        return None;
    }
    let hcrc = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    if crc32(&header[0..12]) != hcrc {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
    (len <= MAX_PAYLOAD).then_some(len)
}

/// Reads the frame starting at `offset` of `bytes`.
pub fn at(bytes: &[u8], offset: usize) -> At {
    if offset >= bytes.len() {
        return At::End;
    }
    let rest = &bytes[offset..];
    if rest.len() < HEADER {
        return if MAGIC.starts_with(&rest[..rest.len().min(4)]) { At::Torn } else { At::Damaged("bad frame magic") };
    }
    if &rest[0..4] != MAGIC {
        return At::Damaged("bad frame magic");
    }
    let hcrc = u32::from_le_bytes(rest[12..16].try_into().expect("4 bytes"));
    if crc32(&rest[0..12]) != hcrc {
        return At::Damaged("frame header checksum mismatch");
    }
    let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return At::Damaged("implausible frame length");
    }
    if rest.len() < HEADER + len {
        return At::Torn;
    }
    let crc = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
    let payload = offset + HEADER..offset + HEADER + len;
    if crc32(&bytes[payload.clone()]) != crc {
        return At::Damaged("frame checksum mismatch");
    }
    At::Frame { next: payload.end, payload }
}

/// The offset of the next valid frame after `from`, if any.
pub fn scan(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + HEADER <= bytes.len() {
        let found = bytes[i..].windows(4).position(|w| w == MAGIC)?;
        let candidate = i + found;
        if matches!(at(bytes, candidate), At::Frame { .. }) {
            return Some(candidate);
        }
        i = candidate + 1;
    }
    None
}

/// The entries `(targets, data)` of a frame's payload.
pub fn entries(payload: &[u8]) -> Result<Vec<(u8, &[u8])>, &'static str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < payload.len() {
        if payload.len() - i < 5 {
            return Err("entry header cut short");
        }
        let targets = payload[i];
        let len = u32::from_le_bytes(payload[i + 1..i + 5].try_into().expect("4 bytes")) as usize;
        i += 5;
        if payload.len() - i < len {
            return Err("entry cut short");
        }
        out.push((targets, &payload[i..i + len]));
        i += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_frame_round_trips_and_damage_is_found_and_skipped() {
        let a = encode([(1u8, &b"alpha"[..]), (3, b"beta")]);
        let b = encode([(2u8, &b"gamma"[..])]);
        let mut bytes = [a.clone(), b.clone()].concat();
        let At::Frame { payload, next } = at(&bytes, 0) else { panic!() };
        assert_eq!(entries(&bytes[payload]).unwrap(), vec![(1, &b"alpha"[..]), (3, &b"beta"[..])]);
        assert_eq!(next, a.len());
        // Damage the first frame's payload: it is reported, and the scan finds the second.
        bytes[HEADER + 2] ^= 0xff;
        assert_eq!(at(&bytes, 0), At::Damaged("frame checksum mismatch"));
        assert_eq!(scan(&bytes, 1), Some(a.len()));
        // A cut tail is torn, not damaged.
        assert_eq!(at(&b[..b.len() - 1], 0), At::Torn);
        assert_eq!(at(&b[..3], 0), At::Torn);
        assert_eq!(at(&b, b.len()), At::End);
    }

    proptest! {
        /// No byte string makes the reader panic or accept garbage as a frame with a
        /// wrong payload, and scanning always terminates.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), start in 0usize..2048) {
            let _ = at(&bytes, start.min(bytes.len()));
            if let Some(i) = scan(&bytes, start.min(bytes.len())) {
                let At::Frame { payload, .. } = at(&bytes, i) else { panic!("scan found a non-frame") };
                let _ = entries(&bytes[payload]);
            }
        }

        #[test]
        fn encoded_entries_decode_exactly(items in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..20)) {
            let frame = encode(items.iter().map(|(t, d)| (*t, d.as_slice())));
            let At::Frame { payload, next } = at(&frame, 0) else { panic!() };
            prop_assert_eq!(next, frame.len());
            let got = entries(&frame[payload]).unwrap();
            let want: Vec<(u8, &[u8])> = items.iter().map(|(t, d)| (*t, d.as_slice())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
