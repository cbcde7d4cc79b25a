//! What a snapshot child wrote on top of its parent, and the child's merged view.
//!
//! A [`Delta`] is format-neutral: the COWD and SEsparse writers turn it into extents with their
//! own grain sizes, and [`Delta::merged`] gives the content a perfect reader of the child must
//! return, so ground-truth hashes do not depend on either writer being right.

use crate::block::{BlockSource, ReadError, Source, check_range, merge_ranges};
use crate::forge::ForgeError;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

/// The bytes a child link rewrote, over a parent's content.
#[derive(Clone)]
pub struct Delta {
    parent: Source,
    /// Disjoint, non-adjacent written regions, by start offset.
    writes: BTreeMap<u64, Vec<u8>>,
}

impl Delta {
    /// An empty delta over `parent` (the parent link's whole virtual disk content). Its length
    /// must be a whole number of 512-byte sectors, as every VMDK capacity is.
    pub fn new(parent: Source) -> Result<Self, ForgeError> {
        if parent.is_empty() || !parent.len().is_multiple_of(512) {
            return Err(ForgeError::Layout(format!(
                "delta parent {} is {} bytes, not a positive multiple of 512",
                parent.name(),
                parent.len()
            )));
        }
        Ok(Self { parent, writes: BTreeMap::new() })
    }

    /// The parent content.
    pub fn parent(&self) -> &Source {
        &self.parent
    }

    /// Virtual disk size in bytes (same as the parent's).
    pub fn capacity(&self) -> u64 {
        self.parent.len()
    }

    /// Virtual disk size in 512-byte sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.parent.len() / 512
    }

    /// Record that the child wrote `data` at `offset`; later writes win where they overlap.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), ForgeError> {
        let end = offset.checked_add(data.len() as u64).filter(|&e| e <= self.capacity()).ok_or_else(|| {
            ForgeError::Layout(format!(
                "delta write of {} bytes at {offset:#x} is past the disk end {:#x}",
                data.len(),
                self.capacity()
            ))
        })?;
        if data.is_empty() {
            return Ok(());
        }
        // Absorb every region that overlaps or touches [offset, end) into one buffer.
        let touching: Vec<u64> =
            self.writes.range(..=end).filter(|(s, d)| **s + d.len() as u64 >= offset).map(|(s, _)| *s).collect();
        let mut start = offset;
        let mut stop = end;
        for s in &touching {
            start = start.min(*s);
            stop = stop.max(s + self.writes[s].len() as u64);
        }
        let mut buf = vec![0u8; (stop - start) as usize];
        for s in touching {
            let old = self.writes.remove(&s).unwrap_or_default();
            let at = (s - start) as usize;
            buf[at..at + old.len()].copy_from_slice(&old);
        }
        let at = (offset - start) as usize;
        buf[at..at + data.len()].copy_from_slice(data);
        self.writes.insert(start, buf);
        Ok(())
    }

    /// The written byte ranges, sorted and disjoint.
    pub fn written(&self) -> Vec<Range<u64>> {
        self.writes.iter().map(|(s, d)| *s..*s + d.len() as u64).collect()
    }

    /// Indices of the `grain`-byte grains the child touched (a grain partly written is copied
    /// whole from the merged view, as ESXi copies the parent's rest on first write).
    pub fn grains(&self, grain: u64) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        for r in self.written() {
            let first = (r.start / grain).max(out.last().map_or(0, |l| l + 1));
            out.extend(first..r.end.div_ceil(grain));
        }
        out
    }

    /// The child's content: the parent overlaid with the writes.
    pub fn merged(&self) -> Source {
        Arc::new(Overlay { base: self.parent.clone(), top: Arc::new(self.writes.clone()) })
    }

    /// Read the merged content; the part of `buf` past the disk end is zero-filled.
    pub(crate) fn read_merged(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let cap = self.capacity();
        let n = cap.saturating_sub(offset).min(buf.len() as u64) as usize;
        buf[n..].fill(0);
        if n > 0 {
            self.parent.read_at(offset, &mut buf[..n])?;
            overlay(&self.writes, offset, &mut buf[..n]);
        }
        Ok(())
    }
}

/// Copy the parts of `regions` that fall inside `offset..offset+buf.len()` into `buf`.
fn overlay(regions: &BTreeMap<u64, Vec<u8>>, offset: u64, buf: &mut [u8]) {
    let end = offset + buf.len() as u64;
    for (&at, data) in regions.range(..end) {
        let r_end = at + data.len() as u64;
        if r_end <= offset {
            continue;
        }
        let s = at.max(offset);
        let e = r_end.min(end);
        buf[(s - offset) as usize..(e - offset) as usize].copy_from_slice(&data[(s - at) as usize..(e - at) as usize]);
    }
}

/// A source with stored regions laid over another source: a delta child's view of its disk.
pub struct Overlay {
    base: Source,
    top: Arc<BTreeMap<u64, Vec<u8>>>,
}

impl BlockSource for Overlay {
    fn name(&self) -> String {
        format!("overlay on {}", self.base.name())
    }
    fn len(&self) -> u64 {
        self.base.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len())?;
        self.base.read_at(offset, buf)?;
        overlay(&self.top, offset, buf);
        Ok(())
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        self.base.unreadable(range)
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut v = self.base.data_ranges(range.clone());
        for (&at, d) in self.top.range(..range.end) {
            let s = at.max(range.start);
            let e = (at + d.len() as u64).min(range.end);
            if s < e {
                v.push(s..e);
            }
        }
        merge_ranges(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::SparseMem;

    fn parent(len: u64) -> Source {
        let mut m = SparseMem { name: "p".into(), len, regions: BTreeMap::new() };
        m.regions.insert(0, vec![0xAA; 1000]);
        Arc::new(m)
    }

    #[test]
    fn writes_merge_and_overlay() {
        let mut d = Delta::new(parent(8192)).unwrap();
        d.write(100, &[1; 50]).unwrap();
        d.write(140, &[2; 20]).unwrap();
        d.write(4096, &[3; 10]).unwrap();
        assert_eq!(d.written(), vec![100..160, 4096..4106]);
        assert_eq!(d.grains(512), vec![0, 8]);
        assert_eq!(d.grains(64), vec![1, 2, 64]);
        let m = d.merged();
        let mut b = vec![0u8; 200];
        m.read_at(0, &mut b).unwrap();
        assert_eq!(&b[..100], &[0xAA; 100]);
        assert_eq!(&b[100..140], &[1; 40]);
        assert_eq!(&b[140..160], &[2; 20]);
        assert_eq!(&b[160..200], &[0xAA; 40]);
        assert!(d.write(8190, &[0; 4]).is_err());
        assert!(Delta::new(parent(1000)).is_err());
    }
}
