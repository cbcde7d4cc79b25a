//! Reading a VHDX through its BAT ([MS-VHDX] 2.5): payload block entries interleaved with one
//! sector bitmap entry after every `chunk_ratio` of them. BAT pages and sector bitmaps are read
//! on demand through small caches; the file is the log-replayed view when there was a log.

use super::ondisk::{MIB, bat_entry, state};
use crate::block::Source;
use crate::vdisk::bitmap::{BitOrder, sector_pieces};
use crate::vdisk::error::Result;
use crate::vdisk::extent::push_piece as push;
use crate::vdisk::extent::{Alloc, ExtentReader};
use crate::vdisk::grains::read_meta;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// BAT entries per cached page (4 KiB).
const PAGE: u64 = 512;
/// BAT pages and block bitmaps kept in memory.
const CACHE: usize = 1024;
/// No block lies past this file offset (a 44-bit MiB count reaches 2^64: sums would overflow).
const MAX_OFFSET: u64 = 1 << 52;

/// The geometry the metadata gave.
#[derive(Clone, Debug)]
pub struct Layout {
    pub capacity: u64,
    /// Payload block size (1..=256 MiB, a power of two).
    pub block: u64,
    /// Logical sector size (512 or 4096).
    pub sector: u64,
    /// Payload blocks per sector bitmap block: 2^23 · sector / block.
    pub chunk_ratio: u64,
    /// File offset of the BAT and its number of entries.
    pub bat_offset: u64,
    pub bat_entries: u64,
    pub differencing: bool,
}

impl Layout {
    /// BAT entries the spec gives a disk of this geometry.
    pub fn entries_needed(capacity: u64, block: u64, chunk_ratio: u64, differencing: bool) -> u64 {
        let blocks = capacity.div_ceil(block);
        if differencing {
            blocks.div_ceil(chunk_ratio) * (chunk_ratio + 1)
        } else {
            blocks + blocks.saturating_sub(1) / chunk_ratio
        }
    }
}

/// What a payload block entry says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payload {
    Absent,
    Zero,
    /// Every sector at this file offset.
    Full(u64),
    /// Sectors at this file offset where the chunk's sector bitmap has their bit set.
    Partial(u64),
    /// Unknown state, an offset inside the headers, or an unreadable BAT page.
    Bad,
}

#[derive(Clone)]
enum Bits {
    Some(Arc<Vec<u8>>),
    Unreadable,
}

pub struct Bat {
    file: Source,
    l: Layout,
    pages: Mutex<HashMap<u64, Option<Arc<Vec<u64>>>>>,
    bitmaps: Mutex<HashMap<u64, Bits>>,
    problems: Vec<String>,
}

fn cached<K: std::hash::Hash + Eq + Copy, V: Clone>(m: &Mutex<HashMap<K, V>>, k: K, load: impl FnOnce() -> V) -> V {
    if let Some(v) = m.lock().unwrap_or_else(|e| e.into_inner()).get(&k) {
        return v.clone();
    }
    let v = load();
    let mut c = m.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() >= CACHE {
        c.clear();
    }
    c.insert(k, v.clone());
    v
}

impl Bat {
    pub fn new(file: Source, l: Layout, mut problems: Vec<String>) -> Self {
        let mut b =
            Self { file, l, pages: Mutex::new(HashMap::new()), bitmaps: Mutex::new(HashMap::new()), problems: vec![] };
        b.survey(&mut problems);
        b.problems = problems;
        b
    }

    /// Count damaged entries once, for the report (skipped on huge BATs: it would read them whole).
    fn survey(&self, problems: &mut Vec<String>) {
        let blocks = self.l.capacity.div_ceil(self.l.block);
        if blocks > 1 << 22 {
            return;
        }
        let flen = self.file.len();
        let (mut bad, mut past, mut partial) = (0u64, 0u64, 0u64);
        for b in 0..blocks {
            match self.payload(b) {
                Payload::Bad => bad += 1,
                Payload::Full(o) | Payload::Partial(o) if o.saturating_add(self.l.block) > flen => past += 1,
                _ => {}
            }
            if matches!(self.payload(b), Payload::Partial(_)) && !self.l.differencing {
                partial += 1;
            }
        }
        if bad > 0 {
            problems.push(format!(
                "{bad} BAT entries are unusable (unknown state, an offset inside the headers or past any file, or unreadable): those blocks \
                 are unreadable"
            ));
        }
        if past > 0 {
            problems.push(format!(
                "{past} blocks reach past the end of the file (truncated copy?): the rest is unreadable"
            ));
        }
        if partial > 0 {
            problems.push(format!(
                "{partial} blocks are marked partially present in a disk without a parent: read as fully present"
            ));
        }
    }

    fn entry(&self, idx: u64) -> Option<u64> {
        if idx >= self.l.bat_entries {
            return None;
        }
        let page = idx / PAGE;
        let p = cached(&self.pages, page, || {
            let n = PAGE.min(self.l.bat_entries - page * PAGE);
            let b = read_meta(&self.file, self.l.bat_offset + page * PAGE * 8, (n * 8) as usize)?;
            Some(Arc::new(b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()))
        })?;
        p.get((idx % PAGE) as usize).copied()
    }

    fn payload(&self, block: u64) -> Payload {
        let Some(e) = self.entry(block + block / self.l.chunk_ratio) else { return Payload::Bad };
        let (st, off) = bat_entry(e);
        match st {
            state::NOT_PRESENT => Payload::Absent,
            state::UNDEFINED | state::ZERO | state::UNMAPPED => Payload::Zero,
            state::FULLY_PRESENT | state::PARTIALLY_PRESENT if !(MIB..MAX_OFFSET).contains(&off) => Payload::Bad,
            state::FULLY_PRESENT => Payload::Full(off),
            state::PARTIALLY_PRESENT if self.l.differencing => Payload::Partial(off),
            state::PARTIALLY_PRESENT => Payload::Full(off),
            _ => Payload::Bad,
        }
    }

    /// The sector bits of payload block `block`, from its chunk's sector bitmap block.
    fn bits(&self, block: u64) -> Bits {
        cached(&self.bitmaps, block, || {
            let cr = self.l.chunk_ratio;
            let chunk = block / cr;
            let Some(e) = self.entry(chunk * (cr + 1) + cr) else { return Bits::Unreadable };
            let (st, off) = bat_entry(e);
            if st != state::BITMAP_PRESENT || !(MIB..MAX_OFFSET).contains(&off) {
                return Bits::Unreadable;
            }
            let bytes = self.l.block / self.l.sector / 8;
            match read_meta(&self.file, off + (block % cr) * bytes, bytes as usize) {
                Some(b) => Bits::Some(Arc::new(b)),
                None => Bits::Unreadable,
            }
        })
    }

    /// Walk `range` block by block: `f(piece, block, offset in the block)`.
    fn walk(&self, range: Range<u64>, mut f: impl FnMut(Range<u64>, u64, u64)) {
        let end = range.end.min(self.l.capacity);
        let mut pos = range.start;
        while pos < end {
            let (bi, inner) = (pos / self.l.block, pos % self.l.block);
            let piece_end = ((bi + 1) * self.l.block).min(end);
            f(pos..piece_end, bi, inner);
            pos = piece_end;
        }
    }
}

impl ExtentReader for Bat {
    fn len(&self) -> u64 {
        self.l.capacity
    }

    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        let flen = self.file.len();
        let mut out = Vec::new();
        self.walk(range, |r, bi, inner| {
            let data = |at: u64, l: Range<u64>, out: &mut Vec<_>| {
                let avail = flen.saturating_sub(at + l.start).min(l.end - l.start);
                let s = r.start + (l.start - inner);
                push(out, s..s + avail, Alloc::Data);
                push(out, s + avail..s + (l.end - l.start), Alloc::Unreadable);
            };
            let local = inner..inner + (r.end - r.start);
            match self.payload(bi) {
                Payload::Absent => push(&mut out, r, Alloc::Unallocated),
                Payload::Zero => push(&mut out, r, Alloc::Zero),
                Payload::Bad => push(&mut out, r, Alloc::Unreadable),
                Payload::Full(at) => data(at, local, &mut out),
                Payload::Partial(at) => match self.bits(bi) {
                    Bits::Unreadable => push(&mut out, r, Alloc::Unreadable),
                    Bits::Some(b) => sector_pieces(&b, self.l.sector, local, BitOrder::LsbFirst, |l, set| {
                        if set {
                            data(at, l, &mut out);
                        } else {
                            let s = r.start + (l.start - inner);
                            push(&mut out, s..s + (l.end - l.start), Alloc::Unallocated);
                        }
                    }),
                },
            }
        });
        Ok(out)
    }

    fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let flen = self.file.len();
        let mut err = None;
        let mut done = 0usize;
        self.walk(off..off.saturating_add(buf.len() as u64), |r, bi, inner| {
            let b = &mut buf[(r.start - off) as usize..(r.end - off) as usize];
            done = (r.end - off) as usize;
            match self.payload(bi) {
                Payload::Full(at) | Payload::Partial(at) => {
                    let start = at + inner;
                    let avail = flen.saturating_sub(start).min(b.len() as u64) as usize;
                    if let Err(e) = self.file.read_at(start, &mut b[..avail]) {
                        err.get_or_insert(e);
                    }
                    b[avail..].fill(0);
                }
                _ => b.fill(0),
            }
        });
        buf[done..].fill(0);
        match err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        self.walk(range, |r, bi, inner| {
            if let Payload::Full(at) | Payload::Partial(at) = self.payload(bi) {
                let start = at + inner;
                for u in self.file.unreadable(start..start + (r.end - r.start)) {
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
