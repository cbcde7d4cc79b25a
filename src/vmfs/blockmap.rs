//! Where each byte of a file lives: the ZLA-driven walk of pointer arrays and pointer blocks.
//!
//! A file maps to a sorted list of [`Extent`]s: data at a volume offset, a hole, a to-be-zeroed
//! block (allocated, reads as zeros), or data resident in the FD. Holes at any level of the
//! pointer tree are skipped whole, so a 42 TiB thin file with one block costs one walk step per
//! allocated pointer block, not one per block.

use super::address::{Addr, decode};
use super::error::{CorruptKind, Error, Result};
use super::fd::Fd;
use super::ondisk::{FileMeta, Zla};
use super::volume::Vmfs;
use std::ops::Range;

/// What backs a run of file bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtentKind {
    /// Bytes at this volume offset.
    Data {
        /// Volume offset of the first byte of the extent.
        vol_off: u64,
    },
    /// Not allocated (thin): reads as zeros.
    Hole,
    /// Allocated but never written (lazy-zeroed thick): reads as zeros.
    ToBeZeroed,
    /// Stored in the FD itself, starting at this offset of its data area.
    Resident {
        /// Offset in the FD's data area.
        data_off: u64,
    },
    /// The metadata that maps these bytes is damaged (bad pointer, unreadable pointer block):
    /// reads as zeros and is reported as unreadable.
    Damaged,
}

/// A run of file bytes with one backing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First file byte.
    pub file_off: u64,
    /// Length in bytes.
    pub len: u64,
    /// Backing.
    pub kind: ExtentKind,
}

impl Extent {
    /// Whether the extent's bytes come from the volume.
    pub fn is_data(&self) -> bool {
        matches!(self.kind, ExtentKind::Data { .. })
    }
}

/// Appends extents, merging a new one into the last when they continue each other.
#[derive(Default)]
struct Builder {
    out: Vec<Extent>,
}

impl Builder {
    fn push(&mut self, e: Extent) {
        if e.len == 0 {
            return;
        }
        if let Some(last) = self.out.last_mut()
            && last.file_off + last.len == e.file_off
        {
            let merged = match (last.kind, e.kind) {
                (ExtentKind::Data { vol_off: a }, ExtentKind::Data { vol_off: b }) => {
                    a.checked_add(last.len) == Some(b)
                }
                (ExtentKind::Hole, ExtentKind::Hole)
                | (ExtentKind::ToBeZeroed, ExtentKind::ToBeZeroed)
                | (ExtentKind::Damaged, ExtentKind::Damaged) => true,
                _ => false,
            };
            if merged {
                last.len += e.len;
                return;
            }
        }
        self.out.push(e);
    }
}

/// A file block a leaf pointer names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileBlockUnit {
    /// Volume offset of its first byte (`None` when the address overflows).
    pub vol_off: Option<u64>,
    /// Its size: the file block size, or the large file block size.
    pub len: u64,
    /// To be zeroed: allocated, reads as zeros.
    pub tbz: bool,
}

impl Vmfs {
    /// The file block (FB, SFB or LFB) leaf pointer `raw` names; `None` for any other type.
    pub fn file_block(&self, raw: u64) -> Option<FileBlockUnit> {
        let geo = &self.geo;
        let (vol_off, len, tbz) = match decode(raw, geo.v6, geo.dense_sbpc) {
            Addr::FileBlock { block, tbz } => (block.checked_mul(geo.fbs), geo.fbs, tbz),
            Addr::SmallFileBlock { cluster, resource, tbz } => {
                let b = cluster.checked_mul(self.sfb_per_cluster).and_then(|x| x.checked_add(resource));
                (b.and_then(|b| b.checked_mul(geo.fbs)), geo.fbs, tbz != 0)
            }
            Addr::LargeFileBlock { block, tbz } => (block.checked_mul(geo.lfb), geo.lfb, tbz != 0),
            _ => return None,
        };
        Some(FileBlockUnit { vol_off, len, tbz })
    }

    /// The extents covering `range` of the file (clamped to its size), sorted and merged.
    pub fn extents(&self, fd: &Fd, range: Range<u64>) -> Result<Vec<Extent>> {
        self.extents_depth(fd, range, 0)
    }

    /// How many bytes the FD's pointer tree can address: a larger `fileLength` is damage.
    pub fn capacity(&self, fd: &Fd) -> u64 {
        let geo = &self.geo;
        let ptrs = geo.ptrs_count as u64;
        let n = geo.pb_entries;
        let Ok(bs) = fd.block_size(geo) else { return 0 };
        let blocks = match fd.meta.zla {
            Zla::Resident => return geo.data_size as u64,
            Zla::None => return u64::MAX,
            Zla::FileBlock | Zla::SubBlock => ptrs,
            Zla::PointerBlock | Zla::Pointer2Block => ptrs.saturating_mul(n),
            Zla::PointerBlockDouble => ptrs.saturating_mul(n).saturating_mul(n),
            Zla::Other(_) => 0,
        };
        blocks.saturating_mul(bs)
    }

    /// An error naming the FD when its `fileLength` is more than its pointer tree can address
    /// (the bytes past that are damage, never data).
    pub fn check_size(&self, fd: &Fd) -> Result<()> {
        let capacity = self.capacity(fd);
        if fd.meta.size > capacity {
            return Err(Error::corrupt(
                FileMeta::NAME,
                fd.vol_offset() + self.geo.meta_off as u64,
                CorruptKind::OutOfRange { field: "fileLength", value: fd.meta.size, limit: capacity },
            ));
        }
        Ok(())
    }

    pub(super) fn extents_depth(&self, fd: &Fd, range: Range<u64>, depth: u32) -> Result<Vec<Extent>> {
        let geo = &self.geo;
        let end = range.end.min(fd.meta.size);
        let start = range.start.min(end);
        let mut b = Builder::default();
        if start == end {
            return Ok(b.out);
        }
        if fd.meta.zla == Zla::Resident {
            let cap = geo.data_size as u64;
            if end > cap {
                return Err(Error::corrupt(
                    FileMeta::NAME,
                    fd.vol_offset() + geo.meta_off as u64,
                    CorruptKind::OutOfRange { field: "fileLength (resident)", value: fd.meta.size, limit: cap },
                ));
            }
            b.push(Extent { file_off: start, len: end - start, kind: ExtentKind::Resident { data_off: start } });
            return Ok(b.out);
        }
        let bs = fd.block_size(geo)?;
        let ptrs = fd.pointers(geo);
        let n = geo.pb_entries;
        let first = start / bs;
        let last = (end - 1) / bs;
        // Per level: how many file blocks one pointer of that level covers.
        let (levels, span): (u32, u64) = match fd.meta.zla {
            Zla::FileBlock | Zla::SubBlock => (0, 1),
            Zla::PointerBlock | Zla::Pointer2Block => (1, n),
            Zla::PointerBlockDouble => (2, n * n),
            Zla::None => {
                b.push(Extent { file_off: start, len: end - start, kind: ExtentKind::Hole });
                return Ok(b.out);
            }
            Zla::Resident => unreachable!("handled above"),
            Zla::Other(v) => {
                return Err(Error::Unsupported(format!("zero-level address type {v:#x} in FD {:#x}", fd.addr)));
            }
        };
        let top_first = first / span;
        let top_last = last / span;
        if top_last >= ptrs.len() as u64 {
            return Err(Error::corrupt(
                FileMeta::NAME,
                fd.vol_offset() + geo.meta_off as u64,
                CorruptKind::OutOfRange { field: "fileLength (blocks)", value: top_last, limit: ptrs.len() as u64 },
            ));
        }
        let mut ctx = Walk { fs: self, fd, bs, first, last, start, end, depth, b: &mut b };
        for top in top_first..=top_last {
            let raw = ptrs[top as usize];
            ctx.node(raw, levels, top * span, span)?;
        }
        Ok(b.out)
    }
}

/// State of one walk over a pointer tree.
struct Walk<'a> {
    fs: &'a Vmfs,
    fd: &'a Fd,
    bs: u64,
    first: u64,
    last: u64,
    start: u64,
    end: u64,
    depth: u32,
    b: &'a mut Builder,
}

impl Walk<'_> {
    /// Emit the extents under pointer `raw`, which covers `span` blocks from block `base`.
    fn node(&mut self, raw: u64, level: u32, base: u64, span: u64) -> Result<()> {
        let lo = base.max(self.first);
        let hi = (base + span - 1).min(self.last);
        if raw == 0 {
            self.emit(lo, hi, ExtentKind::Hole);
            return Ok(());
        }
        if level == 0 {
            if let Err(err) = self.leaf(raw, lo) {
                tracing::warn!(fd = format_args!("{:#x}", self.fd.addr), block = lo, error = %err, "block pointer unusable");
                self.emit(lo, lo, ExtentKind::Damaged);
            }
            return Ok(());
        }
        let entries = match self.fs.pointer_block(raw, self.depth) {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(fd = format_args!("{:#x}", self.fd.addr), error = %err, "pointer block unusable");
                self.emit(lo, hi, ExtentKind::Damaged);
                return Ok(());
            }
        };
        let child_span = span / self.fs.geo.pb_entries;
        let i_first = (lo - base) / child_span;
        let i_last = (hi - base) / child_span;
        for i in i_first..=i_last {
            let child = entries.get(i as usize).copied().unwrap_or(0);
            self.node(child, level - 1, base + i * child_span, child_span)?;
        }
        Ok(())
    }

    /// Emit block range `lo..=hi` (file blocks) with one backing.
    fn emit(&mut self, lo: u64, hi: u64, kind: ExtentKind) {
        let s = (lo * self.bs).max(self.start);
        let e = ((hi + 1) * self.bs).min(self.end);
        if s < e {
            self.b.push(Extent { file_off: s, len: e - s, kind });
        }
    }

    /// Emit the one file block `blk` mapped by leaf address `raw`.
    fn leaf(&mut self, raw: u64, blk: u64) -> Result<()> {
        let s = (blk * self.bs).max(self.start);
        let e = ((blk + 1) * self.bs).min(self.end);
        let geo = &self.fs.geo;
        // (volume offset of the unit, unit size, tbz)
        let (base, unit, tbz) = match decode(raw, geo.v6, geo.dense_sbpc) {
            Addr::FileBlock { .. } | Addr::SmallFileBlock { .. } | Addr::LargeFileBlock { .. } => {
                match self.fs.file_block(raw) {
                    Some(u) => (u.vol_off, u.len, u.tbz),
                    None => (None, geo.fbs, false),
                }
            }
            Addr::SubBlock { cluster, resource } => {
                // Sub-blocks live inside .sbc.sf: map through that file.
                let sbc = self.fs.resource_file(super::volume::ResKind::Sb)?;
                let off = sbc.resource_offset(cluster, resource)?;
                let unit = geo.sbs;
                let in_unit = s - blk * self.bs;
                let mut pos = s;
                for x in self.fs.extents_depth(
                    &sbc.fd,
                    off + (in_unit % unit)..off + (in_unit % unit) + (e - s),
                    self.depth + 1,
                )? {
                    self.b.push(Extent { file_off: pos, len: x.len, kind: x.kind });
                    pos += x.len;
                }
                if pos < e {
                    return Err(Error::corrupt_in_file(
                        "sub-block",
                        sbc.fd.addr,
                        off,
                        CorruptKind::OutOfRange { field: "sub-block", value: off, limit: sbc.fd.meta.size },
                    ));
                }
                return Ok(());
            }
            _ => {
                return Err(Error::corrupt(
                    "block pointer",
                    self.fd.vol_offset(),
                    CorruptKind::BadAddress { addr: raw, kind: (raw & 7) as u8 },
                ));
            }
        };
        let base = base.ok_or_else(|| {
            Error::corrupt(
                "block pointer",
                self.fd.vol_offset(),
                CorruptKind::BadAddress { addr: raw, kind: (raw & 7) as u8 },
            )
        })?;
        if tbz {
            self.b.push(Extent { file_off: s, len: e - s, kind: ExtentKind::ToBeZeroed });
            return Ok(());
        }
        // The unit may be smaller than the file's block (hostile data): split at unit edges.
        let mut pos = s;
        while pos < e {
            let in_unit = pos % unit;
            let n = (unit - in_unit).min(e - pos);
            let vol_off = base.checked_add(in_unit).ok_or_else(|| {
                Error::corrupt(
                    "block pointer",
                    self.fd.vol_offset(),
                    CorruptKind::BadAddress { addr: raw, kind: (raw & 7) as u8 },
                )
            })?;
            if vol_off.checked_add(n).is_none_or(|x| x > self.fs.vol.len()) {
                return Err(Error::corrupt(
                    "block pointer",
                    self.fd.vol_offset(),
                    CorruptKind::OutOfRange { field: "block address", value: vol_off, limit: self.fs.vol.len() },
                ));
            }
            self.b.push(Extent { file_off: pos, len: n, kind: ExtentKind::Data { vol_off } });
            pos += n;
        }
        Ok(())
    }
}
