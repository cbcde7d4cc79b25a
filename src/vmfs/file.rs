//! A VMFS file as a [`BlockSource`]: reads go through its block map; holes read as zeros.

use super::blockmap::{Extent, ExtentKind};
use super::fd::Fd;
use super::volume::Vmfs;
use crate::block::{BlockSource, ReadError, check_range, merge_ranges};
use std::ops::Range;
use std::sync::Arc;

/// Largest piece of the block map resolved at once while reading.
const MAP_WINDOW: u64 = 1 << 30;

/// An open file on a VMFS volume.
pub struct VmfsFile {
    fs: Arc<Vmfs>,
    fd: Fd,
    label: String,
}

impl VmfsFile {
    /// Open `fd` of `fs` for reading; `label` names it in errors (usually its path).
    pub fn new(fs: Arc<Vmfs>, fd: Fd, label: impl Into<String>) -> Self {
        Self { fs, fd, label: label.into() }
    }

    /// The file's FD.
    pub fn fd(&self) -> &Fd {
        &self.fd
    }

    /// The extents of `range`, or one damaged extent if the map cannot be built at all.
    pub fn extents(&self, range: Range<u64>) -> Vec<Extent> {
        match self.fs.extents(&self.fd, range.clone()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(file = %self.label, error = %e, "block map unreadable");
                let end = range.end.min(self.fd.meta.size);
                vec![Extent { file_off: range.start, len: end.saturating_sub(range.start), kind: ExtentKind::Damaged }]
            }
        }
    }

    /// Bytes backed by volume blocks (data, to-be-zeroed or resident), as `ls` reports "allocated".
    pub fn allocated_bytes(&self) -> u64 {
        let mut total = 0;
        let mut pos = 0;
        let size = self.fd.meta.size;
        while pos < size {
            let end = (pos + MAP_WINDOW).min(size);
            total += self.extents(pos..end).iter().filter(|e| !matches!(e.kind, ExtentKind::Hole)).map(|e| e.len).sum::<u64>();
            pos = end;
        }
        total
    }
}

impl BlockSource for VmfsFile {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn len(&self) -> u64 {
        self.fd.meta.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len())?;
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        while pos < end {
            let wend = (pos + MAP_WINDOW).min(end);
            for e in self.extents(pos..wend) {
                let dst = &mut buf[(e.file_off - offset) as usize..(e.file_off - offset + e.len) as usize];
                match e.kind {
                    ExtentKind::Data { vol_off } => self.fs.vol.read_at(vol_off, dst)?,
                    _ => {
                        if self.fs.fill(&self.fd, e, dst).is_err() {
                            dst.fill(0);
                        }
                    }
                }
            }
            pos = wend;
        }
        Ok(())
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let end = range.end.min(self.len());
        let mut out: Vec<Range<u64>> = Vec::new();
        let mut pos = range.start;
        while pos < end {
            let wend = (pos + MAP_WINDOW).min(end);
            for e in self.extents(pos..wend) {
                if matches!(e.kind, ExtentKind::Data { .. } | ExtentKind::Resident { .. }) {
                    match out.last_mut() {
                        Some(last) if last.end == e.file_off => last.end += e.len,
                        _ => out.push(e.file_off..e.file_off + e.len),
                    }
                }
            }
            pos = wend;
        }
        out
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let end = range.end.min(self.len());
        let mut out = Vec::new();
        let mut pos = range.start;
        while pos < end {
            let wend = (pos + MAP_WINDOW).min(end);
            for e in self.extents(pos..wend) {
                match e.kind {
                    ExtentKind::Data { vol_off } => {
                        for b in self.fs.vol.unreadable(vol_off..vol_off + e.len) {
                            out.push(e.file_off + (b.start - vol_off)..e.file_off + (b.end - vol_off));
                        }
                    }
                    ExtentKind::Damaged => out.push(e.file_off..e.file_off + e.len),
                    _ => {}
                }
            }
            pos = wend;
        }
        merge_ranges(out)
    }
}
