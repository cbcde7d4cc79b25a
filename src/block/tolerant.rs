//! Bad-sector tolerant reading: retry, split down to the sector, zero-fill and record.

use super::{BadMap, BlockSource, ReadError, check_range};
use std::io;
use std::ops::Range;
use std::sync::Arc;

/// The minimal interface of a raw source: one `pread`.
pub trait RawSource: Send + Sync {
    /// Name for reports.
    fn name(&self) -> String;
    /// Size in bytes.
    fn len(&self) -> u64;
    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Logical sector size.
    fn sector_size(&self) -> u32;
    /// Read up to `buf.len()` bytes at `offset`; may return fewer (short read) or fail.
    fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The sub-ranges of `range` that may hold data, when the source knows its holes (a sparse
    /// image file); `None`: unknown, all of it may.
    fn data_ranges(&self, range: Range<u64>) -> Option<Vec<Range<u64>>> {
        let _ = range;
        None
    }
    /// A whole-source pass is about to read it in order (read-ahead hint; no effect on data).
    fn advise_sequential(&self) {}
}

/// How hard to try before a sector is declared unreadable.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts of the whole request before it is split.
    pub whole_attempts: u32,
    /// Attempts of each single sector once split.
    pub sector_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { whole_attempts: 2, sector_attempts: 3 }
    }
}

/// A [`RawSource`] made tolerant of read errors.
pub struct Tolerant<R> {
    raw: R,
    policy: RetryPolicy,
    bad: Arc<BadMap>,
}

impl<R: RawSource> Tolerant<R> {
    /// Wrap `raw` with the default retry policy.
    pub fn new(raw: R) -> Self {
        Self { raw, policy: RetryPolicy::default(), bad: Arc::new(BadMap::new()) }
    }

    /// Use another retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The map of unreadable ranges found so far.
    pub fn bad_map(&self) -> Arc<BadMap> {
        Arc::clone(&self.bad)
    }

    /// The wrapped raw source.
    pub fn raw(&self) -> &R {
        &self.raw
    }

    /// Read all of `buf` at `offset`, or fail with the error of the last attempt.
    fn read_full(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            match self.raw.pread(at, &mut buf[done..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read")),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn attempt(&self, offset: u64, buf: &mut [u8], attempts: u32) -> io::Result<()> {
        let mut last = None;
        for _ in 0..attempts.max(1) {
            match self.read_full(offset, buf) {
                Ok(()) => return Ok(()),
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no attempt made")))
    }

    /// Read sector by sector after the whole request failed. Splitting in halves first keeps
    /// the number of reads logarithmic when only a few sectors are bad.
    fn read_split(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let sector = u64::from(self.raw.sector_size().max(1));
        // Align the pieces to sector boundaries of the source.
        let first_end = ((offset / sector) + 1) * sector;
        let end = offset + buf.len() as u64;
        if end <= first_end {
            // One sector (or part of one): try it, else zero and record.
            match self.attempt(offset, buf, self.policy.sector_attempts) {
                Ok(()) => Ok(()),
                Err(e) if is_fatal(&e) => Err(self.io_err(offset, e)),
                Err(e) => {
                    tracing::warn!(source = %self.raw.name(), offset, len = buf.len(), error = %e, "unreadable");
                    buf.fill(0);
                    self.bad.insert(offset..end);
                    Ok(())
                }
            }
        } else {
            // Split at a sector boundary between the two halves (at least after the first
            // sector), so every piece but a lone partial sector starts on a boundary.
            let sectors = (end - offset).div_ceil(sector);
            let mid_sector = (offset / sector) + sectors / 2;
            let mid = (mid_sector * sector).clamp(first_end, end - 1);
            let mid = if mid.is_multiple_of(sector) { mid } else { first_end };
            let (a, b) = buf.split_at_mut((mid - offset) as usize);
            for (off, part) in [(offset, a), (mid, b)] {
                match self.attempt(off, part, 1) {
                    Ok(()) => {}
                    Err(e) if is_fatal(&e) => return Err(self.io_err(off, e)),
                    Err(_) => self.read_split(off, part)?,
                }
            }
            Ok(())
        }
    }

    fn io_err(&self, offset: u64, error: io::Error) -> ReadError {
        ReadError::Io { source_name: self.raw.name(), offset, error }
    }
}

/// Errors that no retry can cure.
fn is_fatal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBADF) | Some(libc::ENODEV) | Some(libc::ENXIO) | Some(libc::EINVAL))
}

impl<R: RawSource> BlockSource for Tolerant<R> {
    fn name(&self) -> String {
        self.raw.name()
    }
    fn len(&self) -> u64 {
        self.raw.len()
    }
    fn sector_size(&self) -> u32 {
        self.raw.sector_size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.raw.name(), offset, buf.len(), self.raw.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        match self.attempt(offset, buf, self.policy.whole_attempts) {
            Ok(()) => Ok(()),
            Err(e) if is_fatal(&e) => Err(self.io_err(offset, e)),
            Err(e) => {
                tracing::debug!(source = %self.raw.name(), offset, len = buf.len(), error = %e, "read failed, splitting");
                self.read_split(offset, buf)
            }
        }
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        self.bad.query(range)
    }
    fn advise_sequential(&self) {
        self.raw.advise_sequential();
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let range = range.start..range.end.min(self.raw.len());
        if range.start >= range.end {
            return Vec::new();
        }
        self.raw.data_ranges(range.clone()).unwrap_or_else(|| vec![range])
    }
}
