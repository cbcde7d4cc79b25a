//! The part COWD and SEsparse extents share: a two-level map (directory → tables → grains)
//! from virtual grains to grains of the backing file. Each format decodes its own tables into
//! [`Grain`]s; this module turns them into `ExtentReader` answers, with a bounded table cache.

use super::error::Result;
use super::extent::push_piece as push;
use super::extent::{Alloc, ExtentReader};
use crate::block::Source;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// One decoded grain-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grain {
    /// Not in this link: the parent's.
    Unallocated,
    /// Zeros defined by this link.
    Zero,
    /// The grain's bytes start at this byte offset of the backing file.
    Data(u64),
    /// The entry (or its table) cannot be used.
    Unreadable,
}

/// One grain table: every entry the same (absent or unreadable table), or decoded entries.
#[derive(Clone)]
pub enum Table {
    Uniform(Grain),
    Entries(Arc<Vec<Grain>>),
}

/// What a format provides.
pub trait GrainFormat: Send + Sync {
    /// Bytes per grain (> 0).
    fn grain_bytes(&self) -> u64;
    /// Grains per table (> 0).
    fn table_grains(&self) -> u64;
    /// Bytes of the virtual disk the format's metadata describes (its header capacity).
    fn capacity(&self) -> u64;
    /// Read and decode table `index` (index < ceil(capacity / table coverage)).
    fn load_table(&self, index: u64) -> Table;
}

/// Tables kept in memory (COWD: 16 KiB each, SEsparse: 32 KiB each, decoded to 16 B/entry).
const CACHE_TABLES: usize = 256;

/// An extent read through a [`GrainFormat`].
pub struct GrainExtent<F: GrainFormat> {
    pub format: F,
    pub file: Source,
    /// Extent length from the descriptor line.
    pub len: u64,
    pub problems: Vec<String>,
    cache: Mutex<HashMap<u64, Table>>,
}

impl<F: GrainFormat> GrainExtent<F> {
    pub fn new(format: F, file: Source, len: u64, problems: Vec<String>) -> Self {
        Self { format, file, len, problems, cache: Mutex::new(HashMap::new()) }
    }

    fn table(&self, index: u64) -> Table {
        if let Some(t) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&index) {
            return t.clone();
        }
        let t = self.format.load_table(index);
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= CACHE_TABLES {
            c.clear();
        }
        c.insert(index, t.clone());
        t
    }

    /// Walk `range` grain by grain: `f(piece, grain, offset in the grain)`. Past the header's
    /// capacity everything is `Unallocated`.
    fn walk(&self, range: Range<u64>, mut f: impl FnMut(Range<u64>, Grain, u64)) {
        let gb = self.format.grain_bytes();
        let tg = self.format.table_grains();
        let cap = self.format.capacity();
        let end = range.end.min(self.len);
        let mut pos = range.start;
        let mut cur: Option<(u64, Table)> = None;
        while pos < end {
            if pos >= cap {
                f(pos..end, Grain::Unallocated, 0);
                return;
            }
            let g = pos / gb;
            let inner = pos % gb;
            let piece_end = ((g + 1) * gb).min(end).min(cap);
            let ti = g / tg;
            if cur.as_ref().is_none_or(|(i, _)| *i != ti) {
                cur = Some((ti, self.table(ti)));
            }
            // A table that is one kind throughout (absent, unreadable) is one piece, not one
            // per grain: small grains (512-byte Bochs sectors) would otherwise cost a call each.
            if let Some((_, Table::Uniform(u))) = &cur
                && !matches!(u, Grain::Data(_))
            {
                let table_end = ti.saturating_add(1).saturating_mul(tg).saturating_mul(gb).min(end).min(cap);
                f(pos..table_end, *u, inner);
                pos = table_end;
                continue;
            }
            let grain = match cur.as_ref().map(|(_, t)| t) {
                Some(Table::Entries(e)) => e.get((g % tg) as usize).copied().unwrap_or(Grain::Unreadable),
                Some(Table::Uniform(u)) => *u,
                None => Grain::Unreadable,
            };
            f(pos..piece_end, grain, inner);
            pos = piece_end;
        }
    }
}

impl<F: GrainFormat> ExtentReader for GrainExtent<F> {
    fn len(&self) -> u64 {
        self.len
    }

    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        let flen = self.file.len();
        let mut out = Vec::new();
        self.walk(range, |r, g, inner| match g {
            Grain::Unallocated => push(&mut out, r, Alloc::Unallocated),
            Grain::Zero => push(&mut out, r, Alloc::Zero),
            Grain::Unreadable => push(&mut out, r, Alloc::Unreadable),
            Grain::Data(fo) => {
                // A grain reaching past the end of the file (truncated copy): the part inside
                // the file is data, the rest unreadable.
                let start = fo.saturating_add(inner);
                let avail = flen.saturating_sub(start).min(r.end - r.start);
                push(&mut out, r.start..r.start + avail, Alloc::Data);
                push(&mut out, r.start + avail..r.end, Alloc::Unreadable);
            }
        });
        Ok(out)
    }

    fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let mut pieces = Vec::new();
        self.walk(off..off.saturating_add(buf.len() as u64), |r, g, inner| pieces.push((r, g, inner)));
        let flen = self.file.len();
        let mut done = 0u64;
        for (r, g, inner) in pieces {
            let b = &mut buf[(r.start - off) as usize..(r.end - off) as usize];
            done = r.end - off;
            match g {
                Grain::Data(fo) => {
                    let start = fo.saturating_add(inner);
                    let avail = flen.saturating_sub(start).min(b.len() as u64) as usize;
                    self.file.read_at(start, &mut b[..avail])?;
                    b[avail..].fill(0);
                }
                _ => b.fill(0),
            }
        }
        buf[done as usize..].fill(0);
        Ok(())
    }

    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        self.walk(range, |r, g, inner| {
            if let Grain::Data(fo) = g {
                let start = fo.saturating_add(inner);
                for u in self.file.unreadable(start..start.saturating_add(r.end - r.start)) {
                    out.push(u.start - start + r.start..u.end - start + r.start);
                }
            }
        });
        out
    }

    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }
}

/// Little-endian readers over a byte slice (callers check the length).
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Read `len` bytes at `off` of `file`, or None when they lie (partly) outside it or a sector
/// of them is unreadable.
pub fn read_meta(file: &Source, off: u64, len: usize) -> Option<Vec<u8>> {
    let end = off.checked_add(len as u64)?;
    if end > file.len() || !file.unreadable(off..end).is_empty() {
        return None;
    }
    let mut b = vec![0u8; len];
    file.read_at(off, &mut b).ok()?;
    Some(b)
}
