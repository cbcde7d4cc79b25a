//! Images made of independently stored chunks (cloop blocks, DMG `blkx` runs): a sorted
//! table from virtual ranges to zeros, stored bytes, or a zlib stream that inflates to the
//! chunk's length. Each format builds the table; this module answers `ExtentReader` calls.
//!
//! A chunk that cannot be used (unknown compression, damaged entry) is `Bad`: zeros, reported.
//! A zlib chunk that fails to inflate reads as zeros, is remembered and is reported from then
//! on, as the streamOptimized reader does with its grains.

use super::error::Result;
use super::extent::{Alloc, ExtentReader, push_piece as push};
use crate::block::Source;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Largest chunk inflated in memory (qemu's limit for DMG and cloop).
pub const MAX_INFLATED: u64 = 64 << 20;
/// Largest compressed chunk read in memory.
pub const MAX_COMPRESSED: u64 = 2 * MAX_INFLATED;
/// Inflated bytes kept in memory.
const CACHE_BYTES: usize = 64 << 20;

/// What one chunk holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Zeros that the image defines.
    Zero,
    /// The chunk's bytes, stored as they are from this file offset.
    Raw { at: u64 },
    /// A zlib stream of `size` bytes at `at` that inflates to the chunk's length.
    Zlib { at: u64, size: u64 },
    /// Cannot be read (the reason is in the image's problems): zeros, reported.
    Bad,
}

/// One entry of the table: `kind` for virtual bytes `start..start + len`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub len: u64,
    pub kind: Chunk,
}

impl Piece {
    fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

type Cache = (VecDeque<usize>, HashMap<usize, Arc<Vec<u8>>>, usize);

/// An extent read through a chunk table.
pub struct ChunkExtent {
    name: String,
    file: Source,
    len: u64,
    /// Sorted by `start`, not overlapping; a range no piece covers reads as `Bad`.
    pieces: Vec<Piece>,
    problems: Vec<String>,
    /// Inflated chunks by index (FIFO, bounded by bytes), with their total size.
    cache: Mutex<Cache>,
    /// Chunks that failed to inflate.
    failed: Mutex<BTreeSet<usize>>,
}

impl ChunkExtent {
    /// A reader of `len` bytes over `pieces`. Pieces are sorted here; one overlapping an
    /// earlier piece is dropped (the caller reports overlaps it cares about).
    pub fn new(name: &str, file: Source, len: u64, mut pieces: Vec<Piece>, problems: Vec<String>) -> Self {
        pieces.sort_by_key(|p| p.start);
        let mut kept: Vec<Piece> = Vec::with_capacity(pieces.len());
        for p in pieces {
            if p.len == 0 || kept.last().is_some_and(|l| l.end() > p.start) {
                continue;
            }
            kept.push(p);
        }
        Self {
            name: name.into(),
            file,
            len,
            pieces: kept,
            problems,
            cache: Mutex::new((VecDeque::new(), HashMap::new(), 0)),
            failed: Mutex::new(BTreeSet::new()),
        }
    }

    /// Visit `range` as (virtual piece, index of the chunk or None for a gap).
    fn walk(&self, range: Range<u64>, mut f: impl FnMut(Range<u64>, Option<usize>)) {
        let end = range.end.min(self.len);
        let mut pos = range.start;
        let mut i = self.pieces.partition_point(|p| p.end() <= pos);
        while pos < end {
            match self.pieces.get(i) {
                Some(p) if p.start <= pos => {
                    let e = p.end().min(end);
                    f(pos..e, Some(i));
                    pos = e;
                    i += 1;
                }
                Some(p) => {
                    let e = p.start.min(end);
                    f(pos..e, None);
                    pos = e;
                }
                None => {
                    f(pos..end, None);
                    pos = end;
                }
            }
        }
    }

    fn is_failed(&self, i: usize) -> bool {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).contains(&i)
    }

    /// Chunk `i` inflated, from the cache or the file; `None` when it cannot be (recorded).
    fn inflated(&self, i: usize, at: u64, size: u64, len: u64) -> Option<Arc<Vec<u8>>> {
        if let Some(d) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).1.get(&i) {
            return Some(Arc::clone(d));
        }
        match self.inflate(at, size, len) {
            Ok(d) => {
                let d = Arc::new(d);
                let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                while c.2 + d.len() > CACHE_BYTES
                    && let Some(old) = c.0.pop_front()
                {
                    if let Some(o) = c.1.remove(&old) {
                        c.2 -= o.len();
                    }
                }
                if c.1.insert(i, Arc::clone(&d)).is_none() {
                    c.0.push_back(i);
                    c.2 += d.len();
                }
                Some(d)
            }
            Err(e) => {
                if self.failed.lock().unwrap_or_else(|e| e.into_inner()).insert(i) {
                    tracing::warn!("{}: chunk {i}: {e}", self.name);
                }
                None
            }
        }
    }

    fn inflate(&self, at: u64, size: u64, len: u64) -> std::result::Result<Vec<u8>, String> {
        let end = at.checked_add(size).ok_or("offset overflows")?;
        if size > MAX_COMPRESSED || len > MAX_INFLATED {
            return Err(format!("{size} compressed bytes for {len}: too large"));
        }
        if end > self.file.len() {
            return Err(format!("compressed bytes {at:#x}..{end:#x} end past the file ({:#x})", self.file.len()));
        }
        let mut comp = vec![0u8; size as usize];
        self.file.read_at(at, &mut comp).map_err(|e| e.to_string())?;
        if !self.file.unreadable(at..end).is_empty() {
            return Err(format!("compressed bytes at {at:#x} are on unreadable sectors"));
        }
        let mut out = vec![0u8; len as usize];
        let mut d = flate2::Decompress::new(true);
        match d.decompress(&comp, &mut out, flate2::FlushDecompress::Finish) {
            // A full output is all the chunk holds: whatever the stream has beyond is ignored.
            Ok(_) if d.total_out() == len => Ok(out),
            Ok(_) => Err(format!("zlib stream at {at:#x} ends early ({} of {len} bytes)", d.total_out())),
            Err(e) => Err(format!("zlib stream at {at:#x}: {e}")),
        }
    }
}

impl ExtentReader for ChunkExtent {
    fn len(&self) -> u64 {
        self.len
    }

    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        let flen = self.file.len();
        let mut out = Vec::new();
        self.walk(range, |r, i| {
            let Some(p) = i.and_then(|i| self.pieces.get(i)) else {
                push(&mut out, r, Alloc::Unreadable);
                return;
            };
            match p.kind {
                Chunk::Zero => push(&mut out, r, Alloc::Zero),
                Chunk::Bad => push(&mut out, r, Alloc::Unreadable),
                Chunk::Zlib { .. } if i.is_some_and(|i| self.is_failed(i)) => push(&mut out, r, Alloc::Unreadable),
                Chunk::Zlib { .. } => push(&mut out, r, Alloc::Data),
                Chunk::Raw { at } => {
                    // Stored bytes as far as the file goes; past its end, unreadable.
                    let file_end = p.start.saturating_add(flen.saturating_sub(at));
                    let split = file_end.clamp(r.start, r.end);
                    push(&mut out, r.start..split, Alloc::Data);
                    push(&mut out, split..r.end, Alloc::Unreadable);
                }
            }
        });
        Ok(out)
    }

    fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        let mut todo = Vec::new();
        self.walk(off..off.saturating_add(buf.len() as u64), |r, i| todo.push((r, i)));
        for (r, i) in todo {
            let Some((i, p)) = i.and_then(|i| self.pieces.get(i).map(|p| (i, p))) else { continue };
            let b = &mut buf[(r.start - off) as usize..(r.end - off) as usize];
            let inner = r.start - p.start;
            match p.kind {
                Chunk::Raw { at } => {
                    let from = at.saturating_add(inner);
                    let avail = self.file.len().saturating_sub(from).min(b.len() as u64) as usize;
                    if avail > 0 {
                        self.file.read_at(from, &mut b[..avail])?;
                    }
                }
                Chunk::Zlib { at, size } => {
                    if let Some(d) = self.inflated(i, at, size, p.len) {
                        b.copy_from_slice(&d[inner as usize..inner as usize + b.len()]);
                    }
                }
                Chunk::Zero | Chunk::Bad => {}
            }
        }
        Ok(())
    }

    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        self.walk(range, |r, i| {
            let Some((i, p)) = i.and_then(|i| self.pieces.get(i).map(|p| (i, p))) else { return };
            match p.kind {
                Chunk::Zlib { .. } if self.is_failed(i) => out.push(r),
                Chunk::Raw { at } => {
                    let base = at.saturating_add(r.start - p.start);
                    for u in self.file.unreadable(base..base.saturating_add(r.end - r.start)) {
                        out.push(u.start - base + r.start..u.end - base + r.start);
                    }
                }
                _ => {}
            }
        });
        out
    }

    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }
}

/// zlib-compress `b` (tests of the chunked formats build their images with it).
#[cfg(test)]
pub(crate) fn zlib(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};

    #[test]
    fn pieces_gaps_and_a_failing_chunk() {
        let good = zlib(&[0x11; 1024]);
        let mut file = vec![0x22u8; 512];
        file.extend_from_slice(&good);
        let bad_at = file.len() as u64;
        file.extend_from_slice(&[0x78, 0x9c, 1, 2, 3, 4]);
        let src: Source = Arc::new(Tolerant::new(MemSource::new("c", file)));
        let pieces = vec![
            Piece { start: 0, len: 512, kind: Chunk::Raw { at: 0 } },
            Piece { start: 512, len: 1024, kind: Chunk::Zlib { at: 512, size: good.len() as u64 } },
            Piece { start: 1536, len: 512, kind: Chunk::Zero },
            // 2048..2560 is a gap
            Piece { start: 2560, len: 1024, kind: Chunk::Zlib { at: bad_at, size: 6 } },
            Piece { start: 3584, len: 512, kind: Chunk::Bad },
        ];
        let c = ChunkExtent::new("c", src, 4096, pieces, Vec::new());
        let m = c.map(0..4096).unwrap();
        assert_eq!(
            m,
            vec![
                (0..1536, Alloc::Data),
                (1536..2048, Alloc::Zero),
                (2048..2560, Alloc::Unreadable),
                (2560..3584, Alloc::Data),
                (3584..4096, Alloc::Unreadable)
            ]
        );
        let mut b = vec![0xffu8; 4096];
        c.read_data(0, &mut b).unwrap();
        assert!(b[..512].iter().all(|&v| v == 0x22));
        assert!(b[512..1536].iter().all(|&v| v == 0x11));
        assert!(b[1536..].iter().all(|&v| v == 0));
        // The failed chunk is now reported and mapped unreadable.
        assert_eq!(c.unreadable(0..4096), vec![2560..3584]);
        assert!(c.map(2560..3584).unwrap() == vec![(2560..3584, Alloc::Unreadable)]);
    }

    #[test]
    fn overlapping_pieces_keep_the_first() {
        let src: Source = Arc::new(Tolerant::new(MemSource::new("c", vec![0u8; 16])));
        let pieces = vec![
            Piece { start: 0, len: 100, kind: Chunk::Zero },
            Piece { start: 50, len: 100, kind: Chunk::Raw { at: 0 } },
        ];
        let c = ChunkExtent::new("c", src, 200, pieces, Vec::new());
        assert_eq!(c.map(0..200).unwrap(), vec![(0..100, Alloc::Zero), (100..200, Alloc::Unreadable)]);
    }
}
