//! Deleted SEsparse deltas (VMFS6 snapshots) from free space. The freed FD has lost the block
//! map, so the file is rebuilt from its own header: the constant header gives every region's
//! place and size, the grain directory and tables say which grain slots are used, and the
//! file ends after the last used grain. A thin delta allocates only the file blocks that hold
//! data, so its blocks are assumed to follow each other on the volume from the header on (as
//! thin allocation within a resource cluster does), and file blocks holding nothing (an empty
//! journal, the unused tail of a region) are holes. Each placement of the journal's blocks is
//! tried; one is taken only when the directory, every table, the back map and the free bitmap
//! read through it agree with each other, and it is the only one that does.

use super::carve::{Deleted, Found, Vol};
use super::item::Confidence;
use crate::block::{BlockSource, Concat, Piece, Source, SparseMem, read_vec};
use crate::le::u64_at;
use crate::vdisk::sesparse::{GRAIN_SECTORS, GT_SECTORS, SESPARSE_MAGIC, VERSION, VOLATILE_MAGIC};
use crate::vmfs::ondisk::Zla;
use std::ops::Range;
use std::sync::Arc;

const GRAIN: u64 = GRAIN_SECTORS * 512;
const GT_BYTES: u64 = GT_SECTORS * 512;
const GT_ENTRIES: u64 = GT_BYTES / 8;
/// Most journal placements tried (journal blocks that may be holes).
const MAX_JOURNAL_BLOCKS: u64 = 64;
/// Largest grain directory read (entries): 2^20 tables of 16 MiB = 16 TiB of capacity.
const MAX_GD_ENTRIES: u64 = 1 << 20;

/// The constant header's regions, in bytes: journal, GD, GTs, bitmap, back map, grains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Virtual size in bytes.
    pub capacity: u64,
    /// Journal, grain directory, grain tables, free bitmap, back map, grains: (offset, size) in bytes.
    pub regions: [(u64, u64); 6],
}

const JOURNAL: usize = 0;
const GD: usize = 1;
const GTS: usize = 2;
const BITMAP: usize = 3;
const BACKMAP: usize = 4;
const GRAINS: usize = 5;

impl Layout {
    /// Parse and check a constant header (512 bytes): the known magic, version, grain and
    /// table sizes, and regions in their order, each after the one before, none overflowing.
    pub fn parse(h: &[u8]) -> Option<Layout> {
        if u64_at(h, 0)? != SESPARSE_MAGIC || u64_at(h, 8)? != VERSION {
            return None;
        }
        let capacity = u64_at(h, 16)?;
        if capacity == 0 || capacity >= 1 << 40 || u64_at(h, 24)? != GRAIN_SECTORS || u64_at(h, 32)? != GT_SECTORS {
            return None;
        }
        let mut regions = [(0u64, 0u64); 6];
        let mut end = 1u64; // sectors: the header itself
        for (i, r) in regions.iter_mut().enumerate() {
            let (o, s) = (u64_at(h, 112 + 16 * i)?, u64_at(h, 120 + 16 * i)?);
            if o < end || s >= 1 << 40 || o >= 1 << 40 {
                return None;
            }
            end = o + s;
            *r = (o * 512, s * 512);
        }
        let l = Layout { capacity: capacity * 512, regions };
        // The directory must hold an entry per table the capacity needs.
        (l.gd_entries() * 8 <= l.regions[GD].1 && l.gd_entries() <= MAX_GD_ENTRIES).then_some(l)
    }

    fn gd_entries(&self) -> u64 {
        self.capacity.div_ceil(GRAIN).div_ceil(GT_ENTRIES)
    }

    /// File byte ranges that hold data, given the journal bytes used, the GT slots used and
    /// the grain slots used. Everything else of the file reads as zeros.
    fn data(&self, journal: u64, tables: u64, grains: u64) -> Vec<Range<u64>> {
        let r = &self.regions;
        let at = |i: usize, len: u64| r[i].0..r[i].0 + len.min(r[i].1);
        vec![
            0..512,
            at(JOURNAL, journal),
            at(GD, self.gd_entries() * 8),
            at(GTS, tables * GT_BYTES),
            at(BITMAP, grains.div_ceil(8)),
            at(BACKMAP, grains * 8),
            r[GRAINS].0..r[GRAINS].0 + grains * GRAIN,
        ]
    }
}

/// File blocks of size `bs` holding data: the block indices covered by `data`.
fn data_blocks(data: &[Range<u64>], bs: u64) -> Vec<u64> {
    let mut v: Vec<u64> = Vec::new();
    for d in data.iter().filter(|d| d.start < d.end) {
        for b in d.start / bs..d.end.div_ceil(bs) {
            v.push(b);
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// A placement: file block → volume offset, for the data blocks in order from `off`.
struct Map {
    off: u64,
    bs: u64,
    blocks: Vec<u64>,
}

impl Map {
    /// Read `len` file bytes at `at` (all inside data blocks), or None.
    fn read(&self, vol: &dyn BlockSource, at: u64, len: u64) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(len).ok()?);
        let mut pos = at;
        while pos < at + len {
            let b = pos / self.bs;
            let i = self.blocks.binary_search(&b).ok()? as u64;
            let n = (self.bs - pos % self.bs).min(at + len - pos);
            let v = self.off + i * self.bs + pos % self.bs;
            out.extend(read_vec(vol, v, usize::try_from(n).ok()?).ok()?);
            pos += n;
        }
        Some(out)
    }
}

/// What a checked placement gives.
struct Placed {
    blocks: Vec<u64>,
    len: u64,
    journal: u64,
}

/// Decode a GT or back-map entry's grain index (low 12 bits in 48..59, the rest in 0..47).
fn index(e: u64) -> u64 {
    ((e >> 48) & 0xFFF) | ((e & 0x0000_FFFF_FFFF_FFFF) << 12)
}

/// Try one placement of the journal (`journal` bytes of it hold data). Returns the checked
/// placement, or why it does not hold.
fn try_place(v: &Vol, off: u64, l: &Layout, journal: u64, room: u64) -> Result<Placed, String> {
    let bs = v.fs.geo.fbs.max(512);
    let vol = v.fs.vol.as_ref();
    // Pass 1: the directory, placed with the tables and grains still unknown.
    let map = |tables: u64, grains: u64| Map { off, bs, blocks: data_blocks(&l.data(journal, tables, grains), bs) };
    let fits = |m: &Map| (m.blocks.len() as u64).saturating_mul(bs) <= room;
    let m = map(0, 0);
    let gd = m.read(vol, l.regions[GD].0, l.gd_entries() * 8).ok_or("grain directory outside the free run")?;
    let slots = l.regions[GTS].1 / GT_BYTES;
    let mut tables: Vec<(u64, u64)> = Vec::new(); // (directory index, GT slot)
    for (i, e) in gd.chunks_exact(8).map(|c| u64_at(c, 0).unwrap_or(0)).enumerate() {
        if e == 0 {
            continue;
        }
        let slot = e & 0xFFFF_FFFF;
        if e >> 60 != 1 || (e >> 32) & 0x0FFF_FFFF != 0 || slot >= slots {
            return Err(format!("grain directory entry {i} ({e:#x}) is not a table slot"));
        }
        if tables.iter().any(|t| t.1 == slot) {
            return Err(format!("grain directory names table slot {slot} twice"));
        }
        // No more tables than the free run can hold: a hostile directory is not read forever.
        if (tables.len() as u64 + 1) * GT_BYTES > room {
            return Err("more grain tables than the free run holds".into());
        }
        tables.push((i as u64, slot));
    }
    let n_tables = tables.iter().map(|t| t.1 + 1).max().ok_or("the grain directory is empty")?;
    if n_tables != tables.len() as u64 {
        return Err("grain table slots are not used from the first on".into());
    }
    let vh = m.read(vol, 512, 16).ok_or("volatile header unreadable")?;
    if u64_at(&vh, 0) == Some(VOLATILE_MAGIC) && u64_at(&vh, 8).is_some_and(|n| n < n_tables) {
        return Err("the volatile header counts fewer grain tables than the directory names".into());
    }
    // Pass 2: the tables, placed with the directory known.
    let m = map(n_tables, 0);
    if !fits(&m) {
        return Err("the tables reach past the free run".into());
    }
    let mut grains: Vec<(u64, u64)> = Vec::new(); // (virtual grain, grain slot)
    let max_grains = room / GRAIN;
    for &(i, slot) in &tables {
        let gt = m.read(vol, l.regions[GTS].0 + slot * GT_BYTES, GT_BYTES).ok_or("grain table outside the free run")?;
        for (k, e) in gt.chunks_exact(8).map(|c| u64_at(c, 0).unwrap_or(0)).enumerate() {
            match e >> 60 {
                0 if e == 0 => {}
                0 => return Err(format!("grain table slot {slot}: entry {k} is damaged ({e:#x})")),
                1 | 2 => {}
                3 => {
                    if grains.len() as u64 >= max_grains {
                        return Err("more grains than the free run holds".into());
                    }
                    grains.push((i * GT_ENTRIES + k as u64, index(e)));
                }
                _ => return Err(format!("grain table slot {slot}: entry {k} has type {}", e >> 60)),
            }
        }
    }
    let used = grains.iter().map(|g| g.1 + 1).max().ok_or("no grain allocated")?;
    if used > l.regions[GRAINS].1 / GRAIN || used > max_grains {
        return Err(format!("grain slot {} past the grain area", used - 1));
    }
    let mut seen = vec![false; usize::try_from(used).map_err(|_| "too many grains")?];
    for g in &grains {
        let s = &mut seen[g.1 as usize];
        if *s {
            return Err(format!("grain slot {} used twice", g.1));
        }
        *s = true;
    }
    // Pass 3: everything, checked by the back map and the bitmap.
    let m = map(n_tables, used);
    if !fits(&m) {
        return Err(format!("{} blocks of data do not fit the free run", m.blocks.len()));
    }
    let back = m.read(vol, l.regions[BACKMAP].0, used * 8).ok_or("back map outside the free run")?;
    let bits = m.read(vol, l.regions[BITMAP].0, used.div_ceil(8)).ok_or("free bitmap outside the free run")?;
    for &(lba, slot) in &grains {
        let e = u64_at(&back, (slot * 8) as usize).unwrap_or(0);
        if e == 0 || index(e) != lba {
            return Err(format!("back map entry {slot} does not name grain {lba}"));
        }
        if bits[(slot / 8) as usize] & (1 << (slot % 8)) == 0 {
            return Err(format!("free bitmap bit {slot} is clear for a used grain"));
        }
    }
    let len = l.regions[GRAINS].0 + used * GRAIN;
    Ok(Placed { blocks: m.blocks, len, journal })
}

/// SEsparse deltas in free space: each header on a file block, its file rebuilt and checked;
/// with the reasons the ones that do not check out were left.
pub(super) fn sesparse(v: &Vol, deleted: &[Deleted]) -> (Vec<Found>, Vec<String>) {
    let mut out = Vec::new();
    let mut why = Vec::new();
    let bs = v.fs.geo.fbs.max(512);
    for (off, what) in &v.found {
        let crate::recover::finding::What::SparseHeader { format, .. } = what else { continue };
        if format != "SEsparse" {
            continue;
        }
        if off % bs != 0 {
            why.push(format!("SEsparse header at volume offset {off:#x} is not at a file block start"));
            continue;
        }
        let Some(l) = read_vec(v.fs.vol.as_ref(), *off, 512).ok().and_then(|h| Layout::parse(&h)) else {
            why.push(format!("SEsparse header at volume offset {off:#x}: regions out of order or unknown sizes"));
            continue;
        };
        let room = v.free_end(*off) - off;
        // The journal's bytes: none used, or its first blocks (it is written from its start).
        let jr = l.regions[JOURNAL];
        let jblocks = (jr.0 + jr.1).div_ceil(bs).saturating_sub(jr.0 / bs).min(MAX_JOURNAL_BLOCKS);
        let mut good: Vec<Placed> = Vec::new();
        let mut errs: Vec<String> = Vec::new();
        for j in 0..=jblocks {
            let journal = (j * bs).saturating_sub(jr.0 % bs).min(jr.1);
            if j > 0 && journal == 0 {
                continue;
            }
            match try_place(v, *off, &l, journal, room) {
                Ok(p) => {
                    if !good.iter().any(|g| g.blocks == p.blocks && g.len == p.len) {
                        good.push(p);
                    }
                }
                Err(e) => errs.push(format!("with {journal} journal bytes used: {e}")),
            }
        }
        let p = match good.len() {
            1 => good.remove(0),
            0 => {
                errs.truncate(4);
                why.push(format!(
                    "SEsparse header at volume offset {off:#x}: its tables do not check out ({})",
                    errs.join("; ")
                ));
                continue;
            }
            n => {
                why.push(format!(
                    "SEsparse header at volume offset {off:#x}: {n} placements of its journal check out; not carved"
                ));
                continue;
            }
        };
        let zeros: Source = Arc::new(SparseMem { name: "hole".into(), len: p.len, regions: Default::default() });
        let mut pieces = Vec::new();
        let mut pos = 0u64;
        for (i, b) in p.blocks.iter().enumerate() {
            let start = b * bs;
            if start >= p.len {
                break;
            }
            if start > pos {
                pieces.push(Piece { offset: pos, len: start - pos, src: Some((Arc::clone(&zeros), pos)) });
            }
            let n = bs.min(p.len - start);
            pieces.push(Piece { offset: start, len: n, src: Some((Arc::clone(&v.fs.vol), off + i as u64 * bs)) });
            pos = start + n;
        }
        let span = p.blocks.len() as u64 * bs;
        let holes = p.len.div_ceil(bs) - p.blocks.iter().filter(|b| **b * bs < p.len).count() as u64;
        let content: Source = Arc::new(Concat::new(format!("sesparse-at-{off:#x}"), pieces, p.len));
        let deltas: Vec<&Deleted> = deleted
            .iter()
            .filter(|d| {
                d.name.as_deref().is_some_and(|n| n.ends_with("-sesparse.vmdk"))
                    && !matches!(d.zla, Some(Zla::SubBlock | Zla::Resident))
            })
            .collect();
        let target = match deltas.as_slice() {
            [d] => Some(d.idx),
            _ => None,
        };
        out.push(Found {
            off: *off,
            len: p.len,
            content: Some(content),
            span: Some(span),
            target,
            carved_name: ("sesparse".into(), "-sesparse.vmdk".into()),
            method: format!(
                "SEsparse header at volume offset {off:#x}; length from the last used grain; its {} blocks of data \
                 taken as contiguous from the header, {holes} empty block(s) as holes ({} journal bytes used); \
                 directory, tables, back map and bitmap agree{}",
                p.blocks.len(),
                p.journal,
                if target.is_some() { "; the only deleted SEsparse delta of the volume" } else { "" }
            ),
            confidence: Confidence::Medium,
            sized_by: Vec::new(),
        });
    }
    (out, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::le::put_u64;

    fn header(regions: [(u64, u64); 6]) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        for (off, v) in [(0, SESPARSE_MAGIC), (8, VERSION), (16, 0x2_0000), (24, GRAIN_SECTORS), (32, GT_SECTORS)] {
            put_u64(&mut h, off, v);
        }
        for (i, (o, s)) in regions.iter().enumerate() {
            put_u64(&mut h, 112 + 16 * i, *o);
            put_u64(&mut h, 120 + 16 * i, *s);
        }
        h
    }

    const FORGE: [(u64, u64); 6] =
        [(2048, 2048), (4096, 2048), (6144, 2048), (8192, 2048), (10240, 2048), (12288, 0x2_0000)];

    #[test]
    fn layout_and_data_blocks() {
        let l = Layout::parse(&header(FORGE)).unwrap();
        assert_eq!(l.capacity, 64 << 20);
        // No journal, one table, 22 grains: header, GD, GT, bitmap, back map, grains; the
        // journal's block is a hole.
        let b = data_blocks(&l.data(0, 1, 22), 1 << 20);
        assert_eq!(b, [0, 2, 3, 4, 5, 6]);
        assert_eq!(data_blocks(&l.data(1 << 20, 1, 22), 1 << 20), [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(index(0x3001_0000_0000_0000), 1);
        assert_eq!(index(0x3000_0000_0000_0001), 4096);
    }

    #[test]
    fn hostile_headers_are_refused() {
        let mut r = FORGE;
        r.swap(1, 2); // regions out of order
        assert!(Layout::parse(&header(r)).is_none());
        let mut r = FORGE;
        r[GD].1 = 0; // no room for the directory
        assert!(Layout::parse(&header(r)).is_none());
        let mut r = FORGE;
        r[GRAINS] = (u64::MAX / 512, u64::MAX);
        assert!(Layout::parse(&header(r)).is_none());
        let mut h = header(FORGE);
        put_u64(&mut h, 24, 16); // grain size qemu does not read
        assert!(Layout::parse(&h).is_none());
        assert!(Layout::parse(&h[..100]).is_none());
    }
}
