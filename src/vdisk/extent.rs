//! One extent of a VMDK link: how its bytes map to a backing file, and the simple kinds
//! (FLAT/VMFS with an offset, ZERO). The sparse kinds live in `sparse`, `cowd`, `sesparse`.

use super::error::Result;
use crate::block::Source;
use std::ops::Range;

/// What a link holds for a range of its virtual disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alloc {
    /// Bytes of this link.
    Data,
    /// Zeros that this link defines (a zero grain, a ZERO extent): never read from the parent.
    Zero,
    /// Not in this link: read from the parent (zeros at the base of the chain).
    Unallocated,
    /// This link's metadata for the range could not be read: zeros, reported.
    Unreadable,
}

/// Append piece `r` to a `map` answer, merging it with the last piece when they touch and
/// agree; empty pieces are dropped.
pub(crate) fn push_piece(out: &mut Vec<(Range<u64>, Alloc)>, r: Range<u64>, a: Alloc) {
    if r.start >= r.end {
        return;
    }
    if let Some((last, la)) = out.last_mut()
        && *la == a
        && last.end == r.start
    {
        last.end = r.end;
        return;
    }
    out.push((r, a));
}

/// An extent reader. Offsets are bytes from the extent's start.
pub trait ExtentReader: Send + Sync {
    /// Size of the extent in bytes (from the descriptor line).
    fn len(&self) -> u64;
    /// True when the extent has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The allocation of `range`: sorted, adjacent pieces that cover it exactly.
    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>>;
    /// Read bytes that `map` reported as `Data`.
    fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()>;
    /// Byte ranges (extent offsets) of the backing file that failed to read, inside `range`.
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let _ = range;
        Vec::new()
    }
    /// Problems found while opening (e.g. "primary grain directory damaged, used the redundant one").
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A FLAT or VMFS extent: bytes at `offset` in `file`; holes of the file are `Unallocated`
/// only when the file says so (thin VMFS files, sparse local files).
pub struct FlatExtent {
    pub file: Source,
    pub offset: u64,
    pub len: u64,
}

impl ExtentReader for FlatExtent {
    fn len(&self) -> u64 {
        self.len
    }
    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        // Data where the file has data; its holes read as zeros and are this link's zeros
        // (a flat extent hides its parent completely, so they are `Zero`, not `Unallocated`).
        let end = range.end.min(self.len);
        let avail = self.file.len().saturating_sub(self.offset);
        let mut out = Vec::new();
        let mut pos = range.start;
        let data_end = end.min(avail);
        if pos < data_end {
            for r in self.file.data_ranges(self.offset + pos..self.offset + data_end) {
                let (s, e) = (r.start - self.offset, r.end - self.offset);
                if s > pos {
                    out.push((pos..s, Alloc::Zero));
                }
                out.push((s..e, Alloc::Data));
                pos = e;
            }
        }
        if pos < end {
            out.push((pos..end, Alloc::Zero));
        }
        Ok(out)
    }
    fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        Ok(self.file.read_at(self.offset + off, buf)?)
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        self.file
            .unreadable(self.offset + range.start..self.offset + range.end)
            .into_iter()
            .map(|r| r.start - self.offset..r.end - self.offset)
            .collect()
    }
}

/// A ZERO extent.
pub struct ZeroExtent {
    pub len: u64,
}

impl ExtentReader for ZeroExtent {
    fn len(&self) -> u64 {
        self.len
    }
    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        Ok(vec![(range.start..range.end.min(self.len), Alloc::Zero)])
    }
    fn read_data(&self, _off: u64, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        Ok(())
    }
}
