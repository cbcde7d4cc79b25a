//! A fault-injecting source: reads that touch listed ranges fail with EIO, like a bad disk.

use super::RawSource;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// Wraps a raw source; any read overlapping a bad range fails with `EIO`.
pub struct FaultySource<R> {
    inner: R,
    bad: Vec<Range<u64>>,
    reads: AtomicU64,
}

impl<R: RawSource> FaultySource<R> {
    /// `bad` lists the byte ranges that cannot be read.
    pub fn new(inner: R, bad: Vec<Range<u64>>) -> Self {
        Self { inner, bad, reads: AtomicU64::new(0) }
    }

    /// How many `pread` calls reached this source (tests use it to check splitting).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl<R: RawSource> RawSource for FaultySource<R> {
    fn name(&self) -> String {
        format!("faulty:{}", self.inner.name())
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let end = offset.saturating_add(buf.len() as u64);
        if self.bad.iter().any(|r| r.start < end && offset < r.end) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.inner.pread(offset, buf)
    }
    /// The inner source's holes, except where a bad range lies: a failing sector is met by
    /// whoever reads it, hole or not.
    fn data_ranges(&self, range: std::ops::Range<u64>) -> Option<Vec<std::ops::Range<u64>>> {
        let mut v = self.inner.data_ranges(range.clone())?;
        v.extend(self.bad.iter().map(|r| r.start.max(range.start)..r.end.min(range.end)));
        Some(super::merge_ranges(v))
    }
    fn advise_sequential(&self) {
        self.inner.advise_sequential();
    }
}
