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
    capacity: u64,
}

impl VmfsFile {
    /// Open `fd` of `fs` for reading; `label` names it in errors (usually its path).
    pub fn new(fs: Arc<Vmfs>, fd: Fd, label: impl Into<String>) -> Self {
        let capacity = fs.capacity(&fd);
        Self { fs, fd, label: label.into(), capacity }
    }

    /// The file's FD.
    pub fn fd(&self) -> &Fd {
        &self.fd
    }

    /// The extents of `range`, or one damaged extent if the map cannot be built at all.
    /// Bytes past what the pointer tree can address (an absurd `fileLength`) are damaged.
    pub fn extents(&self, range: Range<u64>) -> Vec<Extent> {
        let size = self.fd.meta.size;
        let cap = self.capacity.min(size);
        let end = range.end.min(size);
        if range.start >= cap {
            return if range.start < end {
                vec![Extent { file_off: range.start, len: end - range.start, kind: ExtentKind::Damaged }]
            } else {
                Vec::new()
            };
        }
        if end > cap {
            let mut v = self.extents(range.start..cap);
            v.push(Extent { file_off: cap, len: end - cap, kind: ExtentKind::Damaged });
            return v;
        }
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
        self.for_extents(0..self.fd.meta.size, |e| {
            if !matches!(e.kind, ExtentKind::Hole | ExtentKind::Damaged) {
                total += e.len;
            }
        });
        total
    }

    /// Visit the extents of `range` in order, a window at a time. A window that is one hole
    /// makes the next window twice as large, so a huge, nearly empty file costs few walks.
    pub fn for_extents(&self, range: Range<u64>, mut f: impl FnMut(&Extent)) {
        let end = range.end.min(self.fd.meta.size);
        let mapped_end = end.min(self.capacity);
        let mut pos = range.start;
        let mut window = MAP_WINDOW;
        while pos < mapped_end {
            let wend = pos.saturating_add(window).min(mapped_end);
            let v = self.extents(pos..wend);
            let all_hole = v.len() == 1 && v[0].kind == ExtentKind::Hole;
            v.iter().for_each(&mut f);
            window = if all_hole { window.saturating_mul(2) } else { MAP_WINDOW };
            pos = wend;
        }
        // Past what the pointer tree can address: one damaged extent, however large.
        let start = range.start.max(mapped_end);
        if start < end {
            f(&Extent { file_off: start, len: end - start, kind: ExtentKind::Damaged });
        }
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
        let mut result = Ok(());
        self.for_extents(offset..offset + buf.len() as u64, |e| {
            let dst = &mut buf[(e.file_off - offset) as usize..(e.file_off - offset + e.len) as usize];
            match e.kind {
                ExtentKind::Data { vol_off } if result.is_ok() => result = self.fs.vol.read_at(vol_off, dst),
                ExtentKind::Data { .. } => {}
                _ => {
                    if self.fs.fill(&self.fd, *e, dst).is_err() {
                        dst.fill(0);
                    }
                }
            }
        });
        result
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let end = range.end.min(self.len()).min(self.capacity);
        let mut out: Vec<Range<u64>> = Vec::new();
        self.for_extents(range.start..end, |e| {
            if matches!(e.kind, ExtentKind::Data { .. } | ExtentKind::Resident { .. }) {
                match out.last_mut() {
                    Some(last) if last.end == e.file_off => last.end += e.len,
                    _ => out.push(e.file_off..e.file_off + e.len),
                }
            }
        });
        out
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut end = range.end.min(self.len());
        let mut out = Vec::new();
        if end > self.capacity {
            out.push(self.capacity.max(range.start)..end);
            end = self.capacity;
        }
        self.for_extents(range.start..end, |e| match e.kind {
            ExtentKind::Data { vol_off } => {
                for b in self.fs.vol.unreadable(vol_off..vol_off + e.len) {
                    out.push(e.file_off + (b.start - vol_off)..e.file_off + (b.end - vol_off));
                }
            }
            ExtentKind::Damaged => out.push(e.file_off..e.file_off + e.len),
            _ => {}
        });
        merge_ranges(out)
    }
}
