//! A sub-range of another source: a partition, an LVM physical extent run.

use super::{BlockSource, ReadError, Source, check_range};
use std::ops::Range;

/// Bytes `start..start+len` of `inner`.
pub struct Slice {
    inner: Source,
    start: u64,
    len: u64,
    label: String,
}

impl Slice {
    /// A window on `inner`. The window is clamped to the inner source's size.
    pub fn new(inner: Source, start: u64, len: u64) -> Self {
        let avail = inner.len().saturating_sub(start);
        let label = format!("{}@{start:#x}", inner.name());
        Self { inner, start, len: len.min(avail), label }
    }
}

impl BlockSource for Slice {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len)?;
        self.inner.read_at(self.start + offset, buf)
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let end = range.end.min(self.len);
        if range.start >= end {
            return Vec::new();
        }
        self.inner
            .unreadable(self.start + range.start..self.start + end)
            .into_iter()
            .map(|r| r.start - self.start..r.end - self.start)
            .collect()
    }
}
