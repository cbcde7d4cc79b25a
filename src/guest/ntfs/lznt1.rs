//! LZNT1, NTFS's compression, and a compressed `$DATA` stream as a [`BlockSource`].
//!
//! Our own decoder (the format is small and the `lznt1` crate's handling of hostile input was
//! not one we could check): a compression unit is a sequence of chunks, each a 16-bit header
//! (low 12 bits: stored bytes − 1; bit 15: compressed) then the bytes. A compressed chunk is
//! groups of a flag byte and eight tokens: a literal byte (flag bit 0) or a 16-bit
//! back-reference (bit 1) whose split between offset and length depends on how far into the
//! 4 KiB chunk the output is. Every reference and length is checked; output never grows past
//! the unit.
//!
//! A compression unit of a file (16 clusters for every cluster size NTFS compresses) is stored
//! three ways, told apart by its runs: all sparse (zeros), all allocated (stored plain), or
//! some clusters allocated and the rest sparse (LZNT1 in the allocated ones).

use crate::block::{BlockSource, ReadError, Source, check_range, merge_ranges};
use std::ops::Range;
use std::sync::Mutex;

/// Bytes a chunk decompresses to.
const CHUNK: usize = 4096;

/// Decompress one compression unit `src` into at most `max` bytes. Chunks that decompress to
/// less than 4 KiB are padded with zeros when another chunk follows.
pub fn decompress(src: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let mut out: Vec<u8> = Vec::with_capacity(max.min(1 << 20));
    let mut pos = 0usize;
    while out.len() < max {
        let Some(h) = src.get(pos..pos + 2) else { break };
        let h = u16::from_le_bytes([h[0], h[1]]);
        if h == 0 {
            break;
        }
        let n = usize::from(h & 0x0FFF) + 1;
        let Some(data) = src.get(pos + 2..pos + 2 + n) else {
            return Err(format!("chunk at {pos:#x} claims {n} bytes past the unit's end"));
        };
        // Each chunk starts on a 4 KiB boundary of the output.
        let start = out.len().div_ceil(CHUNK) * CHUNK;
        if start >= max {
            break;
        }
        out.resize(start, 0);
        if h & 0x8000 == 0 {
            out.extend_from_slice(&data[..data.len().min(CHUNK).min(max - start)]);
        } else {
            chunk(data, &mut out, start, (start + CHUNK).min(max)).map_err(|e| format!("chunk at {pos:#x}: {e}"))?;
        }
        pos += 2 + n;
    }
    Ok(out)
}

/// Decompress one chunk's tokens, appending to `out` (which holds `start` bytes) up to `end`.
fn chunk(data: &[u8], out: &mut Vec<u8>, start: usize, end: usize) -> Result<(), String> {
    let mut i = 0usize;
    while i < data.len() && out.len() < end {
        let flags = data[i];
        i += 1;
        for bit in 0..8 {
            if i >= data.len() || out.len() >= end {
                return Ok(());
            }
            if flags >> bit & 1 == 0 {
                out.push(data[i]);
                i += 1;
                continue;
            }
            let Some(t) = data.get(i..i + 2) else { return Err(format!("back-reference at {i:#x} is cut off")) };
            let t = usize::from(u16::from_le_bytes([t[0], t[1]]));
            i += 2;
            let p = out.len() - start;
            if p == 0 {
                return Err(format!("back-reference at {i:#x} before any output"));
            }
            // Offset bits: 4 while p ≤ 16, one more each time p doubles; the rest is length.
            let mut shift = 0u32;
            let mut x = p - 1;
            while x >= 0x10 {
                x >>= 1;
                shift += 1;
            }
            let offset = (t >> (12 - shift)) + 1;
            let len = (t & (0xFFF >> shift)) + 3;
            if offset > p {
                return Err(format!("back-reference at {i:#x} reaches {offset} bytes back from {p}"));
            }
            let from = out.len() - offset;
            for k in 0..len.min(end - out.len()) {
                let b = out[from + k];
                out.push(b);
            }
        }
    }
    Ok(())
}

/// How one compression unit of the file is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unit {
    /// All sparse: zeros.
    Hole,
    /// All clusters allocated: plain, at these volume byte ranges (in order).
    Plain(Vec<Range<u64>>),
    /// LZNT1 in these volume byte ranges (in order).
    Compressed(Vec<Range<u64>>),
}

/// A compressed stream: units decompressed on demand, the last one cached.
pub struct CompressedFile {
    name: String,
    volume: Source,
    units: Vec<Unit>,
    unit_size: u64,
    len: u64,
    cache: Mutex<Option<(usize, Vec<u8>)>>,
    /// Units whose LZNT1 data did not decode (read as zeros, reported unreadable).
    broken: Mutex<Vec<usize>>,
}

impl CompressedFile {
    /// A stream of `len` bytes in units of `unit_size` bytes.
    pub fn new(name: String, volume: Source, units: Vec<Unit>, unit_size: u64, len: u64) -> Self {
        Self { name, volume, units, unit_size, len, cache: Mutex::new(None), broken: Mutex::new(Vec::new()) }
    }

    fn unit_bytes(&self, u: usize) -> Result<Vec<u8>, ReadError> {
        if let Ok(c) = self.cache.lock()
            && let Some((n, b)) = &*c
            && *n == u
        {
            return Ok(b.clone());
        }
        let size = self.unit_size as usize;
        let mut b = match self.units.get(u) {
            None | Some(Unit::Hole) => vec![0; size],
            Some(Unit::Plain(rs)) => self.gather(rs)?,
            Some(Unit::Compressed(rs)) => {
                let raw = self.gather(rs)?;
                match decompress(&raw, size) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!("{}: compression unit {u}: {e}", self.name);
                        if let Ok(mut br) = self.broken.lock() {
                            br.push(u);
                        }
                        Vec::new()
                    }
                }
            }
        };
        b.resize(size, 0);
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((u, b.clone()));
        }
        Ok(b)
    }

    fn gather(&self, rs: &[Range<u64>]) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        for r in rs {
            let n = (r.end - r.start).min(self.unit_size) as usize;
            let at = out.len();
            out.resize(at + n, 0);
            self.volume.read_at(r.start, &mut out[at..])?;
        }
        Ok(out)
    }

    fn units_of(&self, range: &Range<u64>) -> Range<usize> {
        let first = (range.start / self.unit_size) as usize;
        let last = range.end.div_ceil(self.unit_size) as usize;
        first..last
    }
}

impl BlockSource for CompressedFile {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        self.volume.sector_size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len)?;
        let end = offset + buf.len() as u64;
        for u in self.units_of(&(offset..end)) {
            let us = u as u64 * self.unit_size;
            let s = offset.max(us);
            let e = end.min(us + self.unit_size);
            let b = self.unit_bytes(u)?;
            buf[(s - offset) as usize..(e - offset) as usize].copy_from_slice(&b[(s - us) as usize..(e - us) as usize]);
        }
        Ok(())
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let range = range.start..range.end.min(self.len);
        let broken = self.broken.lock().map(|b| b.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for u in self.units_of(&range) {
            let us = u as u64 * self.unit_size;
            let whole = range.start.max(us)..range.end.min(us + self.unit_size);
            match self.units.get(u) {
                Some(Unit::Plain(rs)) => {
                    // Plain: byte-exact mapping of the volume's unreadable bytes.
                    let mut fo = us;
                    for r in rs {
                        for bad in self.volume.unreadable(r.clone()) {
                            let s = fo + (bad.start - r.start);
                            let e = fo + (bad.end - r.start);
                            if s < whole.end && e > whole.start {
                                out.push(s.max(whole.start)..e.min(whole.end));
                            }
                        }
                        fo += r.end - r.start;
                    }
                }
                // Compressed: one bad byte spoils the unit.
                Some(Unit::Compressed(rs))
                    if broken.contains(&u) || rs.iter().any(|r| !self.volume.unreadable(r.clone()).is_empty()) =>
                {
                    out.push(whole);
                }
                _ => {}
            }
        }
        merge_ranges(out)
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let range = range.start..range.end.min(self.len);
        let mut out = Vec::new();
        for u in self.units_of(&range) {
            if !matches!(self.units.get(u), None | Some(Unit::Hole)) {
                let us = u as u64 * self.unit_size;
                out.push(range.start.max(us)..range.end.min(us + self.unit_size));
            }
        }
        merge_ranges(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lznt1_literals_references_and_plain_chunks() {
        // "abcabcabcabc": literals a b c, then a reference 3 back, length 9:
        // p = 3 → 4 offset bits, 12 length bits: ((3-1) << 12) | (9-3).
        let t: u16 = (2 << 12) | 6;
        let mut body = vec![0b0000_1000, b'a', b'b', b'c'];
        body.extend_from_slice(&t.to_le_bytes());
        let mut unit = (0xB000u16 | (body.len() as u16 - 1)).to_le_bytes().to_vec();
        unit.extend_from_slice(&body);
        assert_eq!(decompress(&unit, 65536).unwrap(), b"abcabcabcabc");
        // A stored chunk after it starts at the next 4 KiB of output.
        unit.extend_from_slice(&(0x3000u16 | 3).to_le_bytes());
        unit.extend_from_slice(b"WXYZ");
        let out = decompress(&unit, 65536).unwrap();
        assert_eq!((out.len(), &out[4096..]), (4100, &b"WXYZ"[..]));
        assert!(out[12..4096].iter().all(|&b| b == 0));
    }

    #[test]
    fn lznt1_hostile_input_errs_without_panic() {
        // A reference before any output.
        assert!(decompress(&[0x02, 0xB0, 0x01, 0x00, 0x00], 4096).unwrap_err().contains("before any output"));
        // A reference further back than the output.
        let t: u16 = 5 << 12;
        let mut b = vec![0x03, 0xB0, 0b10, b'a'];
        b.extend_from_slice(&t.to_le_bytes());
        assert!(decompress(&b, 4096).unwrap_err().contains("reaches"));
        // A chunk claiming more bytes than there are.
        assert!(decompress(&[0xFF, 0xBF, 0x00], 4096).unwrap_err().contains("past"));
        // A length running past the output cap stops at the cap.
        let t: u16 = 0x0FFF;
        let mut b = vec![0x03, 0xB0, 0b10, b'a'];
        b.extend_from_slice(&t.to_le_bytes());
        assert_eq!(decompress(&b, 100).unwrap(), vec![b'a'; 100]);
        // Random bytes: never a panic, never more than the cap.
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let v: Vec<u8> = (0..300)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if let Ok(o) = decompress(&v, 8192) {
                assert!(o.len() <= 8192);
            }
        }
    }
}
