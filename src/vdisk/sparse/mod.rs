//! Hosted sparse extents (magic "KDMV"): monolithicSparse, twoGbMaxExtentSparse parts and
//! streamOptimized (compressed grains, markers), research/vmdk-format.md §3–4.
//!
//! Every size in the header is checked against the file before anything is allocated from it.
//! A damaged primary grain directory falls back to the redundant copy; a streamOptimized file
//! without a usable directory (truncated tail) is read by walking its grain markers. A grain
//! that cannot be read (metadata damaged, past the end of the file, failing to inflate) reads
//! as zeros and is reported, never an error for the whole disk.

mod header;
mod stream;
mod tables;

use super::descriptor::MAX_DESCRIPTOR;
use super::error::{Result, VdiskError};
use super::extent::push_piece as push;
use super::extent::{Alloc, ExtentReader};
use crate::block::Source;
use header::{GD_AT_END, Header};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use tables::Tables;

/// "KDMV" at offset 0, little-endian.
pub const KDMV_MAGIC: u32 = 0x564D_444B;
/// Inflated grains kept in memory.
const GRAIN_CACHE: usize = 32;

fn read_header(src: &Source, at: u64) -> Result<Option<Header>> {
    if src.len() < at.saturating_add(512) {
        return Ok(None);
    }
    let mut b = [0u8; 512];
    src.read_at(at, &mut b)?;
    Ok(Header::decode(&b))
}

/// The embedded descriptor of a KDMV file, if it has one (NUL-terminated text at
/// descriptorOffset, descriptorSize sectors; §2.1).
pub fn embedded_descriptor(src: &Source) -> Result<Option<Vec<u8>>> {
    let Some(h) = read_header(src, 0)? else { return Ok(None) };
    if h.descriptor_offset == 0 || h.descriptor_size == 0 {
        return Ok(None);
    }
    let name = src.name();
    let at = h.descriptor_offset.checked_mul(512).filter(|&a| a < src.len()).ok_or_else(|| {
        VdiskError::corrupt(
            &name,
            "SparseExtentHeader",
            28,
            format!("descriptor at sector {} past the end of the file", h.descriptor_offset),
        )
    })?;
    let len = h.descriptor_size.saturating_mul(512).min(MAX_DESCRIPTOR as u64).min(src.len() - at);
    let mut b = vec![0u8; len as usize];
    src.read_at(at, &mut b)?;
    if let Some(nul) = b.iter().position(|&c| c == 0) {
        b.truncate(nul);
    }
    Ok(Some(b))
}

/// True for a KDMV file that only carries a descriptor (capacity 0, descriptor present): its
/// extents are other files (§2.1, qemu `vmdk_open_vmdk4`).
pub fn is_descriptor_container(src: &Source) -> bool {
    matches!(read_header(src, 0), Ok(Some(h)) if h.capacity == 0 && h.descriptor_offset != 0)
}

/// Inflated grains: FIFO order and contents.
type GrainCache = (VecDeque<u64>, HashMap<u64, Arc<Vec<u8>>>);

/// How grains are found.
enum Index {
    Tables(Tables),
    /// Grain index → marker sector, from walking a stream.
    Walk(BTreeMap<u64, u64>),
}

/// What one grain holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Grain {
    Unallocated,
    Zero,
    Bad,
    At(u64),
}

struct SparseExtent {
    name: String,
    src: Source,
    len: u64,
    h: Header,
    index: Index,
    problems: Vec<String>,
    /// Inflated grains (FIFO, bounded).
    inflated: Mutex<GrainCache>,
    /// Grains that failed to inflate.
    failed: Mutex<BTreeSet<u64>>,
}

/// Open a KDMV extent of `len` bytes (from the descriptor line).
pub fn open(name: &str, src: Source, len: u64) -> Result<Box<dyn ExtentReader>> {
    let corrupt = |at: u64, what: String| VdiskError::corrupt(name, "SparseExtentHeader", at, what);
    let mut h = read_header(&src, 0)?.ok_or_else(|| corrupt(0, "no KDMV magic".into()))?;
    h.check(name, 0, src.len())?;
    if h.capacity == 0 {
        return Err(corrupt(12, "capacity 0: a descriptor container, not an extent".into()));
    }
    let mut problems = Vec::new();
    if h.unclean {
        problems.push("not closed cleanly (uncleanShutdown set): the grain tables may be stale".into());
    }
    if h.flags & header::FLAG_NEWLINE != 0 && !h.newline_ok {
        problems.push("newline-detection bytes damaged: the file went through a text-mode transfer".into());
    }
    if h.compressed() && !h.markers() {
        problems.push("compressed grains without markers (no known writer): read as bare zlib streams".into());
    }
    let mut gd_offset = h.gd_offset;
    if gd_offset == GD_AT_END {
        match stream::footer(&src) {
            Ok(f) => match f.check(name, src.len() - 1024, src.len()) {
                Ok(())
                    if f.grain_size == h.grain_size && f.gtes_per_gt == h.gtes_per_gt && f.capacity == h.capacity =>
                {
                    gd_offset = f.gd_offset;
                    h.rgd_offset = f.rgd_offset;
                }
                Ok(()) => problems.push("footer disagrees with the header on the geometry: ignored".into()),
                Err(e) => problems.push(format!("footer: {e}")),
            },
            Err(e) => problems.push(format!("grain directory at the end, but {e}")),
        }
    }
    let index = if gd_offset == GD_AT_END {
        None
    } else {
        match Tables::load(&src, &h, gd_offset, &mut problems) {
            Ok(t) => Some(Index::Tables(t)),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    };
    let index = match index {
        Some(i) => i,
        None if h.markers() => {
            let w = stream::walk(&src, &h);
            problems.push(format!("grain map rebuilt from the stream markers: {} grains found", w.grains.len()));
            problems.extend(w.problems);
            Index::Walk(w.grains)
        }
        None => {
            return Err(corrupt(
                56,
                format!("no usable grain directory (gdOffset {gd_offset:#x}, rgdOffset {:#x})", h.rgd_offset),
            ));
        }
    };
    if h.capacity.saturating_mul(512) != len {
        problems.push(format!("header capacity {} sectors, descriptor line {} sectors", h.capacity, len / 512));
    }
    let problems = problems.into_iter().map(|p| format!("{name}: {p}")).collect();
    Ok(Box::new(SparseExtent {
        name: name.into(),
        src,
        len,
        h,
        index,
        problems,
        inflated: Mutex::new((VecDeque::new(), HashMap::new())),
        failed: Mutex::new(BTreeSet::new()),
    }))
}

impl SparseExtent {
    fn gb(&self) -> u64 {
        self.h.grain_bytes()
    }

    fn grain(&self, g: u64) -> Grain {
        let e = match &self.index {
            Index::Walk(m) => return m.get(&g).map_or(Grain::Unallocated, |&s| Grain::At(s)),
            Index::Tables(t) => {
                let gti = g / t.gtes() as u64;
                match t.gde(gti) {
                    0 => return Grain::Unallocated,
                    _ => match t.gt(&self.src, gti) {
                        None => return Grain::Bad,
                        Some(gt) => gt[(g % t.gtes() as u64) as usize],
                    },
                }
            }
        };
        match e {
            0 => Grain::Unallocated,
            1 if self.h.zeroed_grain() => Grain::Zero,
            1 => Grain::Bad,
            s => Grain::At(s as u64),
        }
    }

    /// Grains (from `g`) known to be unallocated without looking at each: the rest of an
    /// absent grain table, or up to the next grain found by a stream walk.
    fn hole_end(&self, g: u64) -> Option<u64> {
        match &self.index {
            Index::Tables(t) => {
                let n = t.gtes() as u64;
                if t.gde(g / n) == 0 {
                    return Some((g / n + 1) * n);
                }
                // A present table whose entries from `g` on are 0 (qemu preallocates every
                // table of a huge, almost empty disk): one scan of the table, not one call a grain.
                let gt = t.gt(&self.src, g / n)?;
                let i = (g % n) as usize;
                let zeros = gt.get(i..)?.iter().take_while(|&&e| e == 0).count() as u64;
                (zeros > 0).then_some(g + zeros)
            }
            Index::Walk(m) => (!m.contains_key(&g)).then(|| m.range(g..).next().map_or(u64::MAX, |(&k, _)| k)),
        }
    }

    /// The grain `g` inflated, from the cache or the file; `None` if it cannot be.
    fn inflated(&self, g: u64, sector: u64) -> Option<Arc<Vec<u8>>> {
        if let Some(d) = self.inflated.lock().unwrap_or_else(|e| e.into_inner()).1.get(&g) {
            return Some(Arc::clone(d));
        }
        match stream::inflate_grain(&self.src, sector, g * self.h.grain_size, &self.h) {
            Ok(d) => {
                let d = Arc::new(d);
                let mut c = self.inflated.lock().unwrap_or_else(|e| e.into_inner());
                if c.0.len() >= GRAIN_CACHE
                    && let Some(old) = c.0.pop_front()
                {
                    c.1.remove(&old);
                }
                if c.1.insert(g, Arc::clone(&d)).is_none() {
                    c.0.push_back(g);
                }
                Some(d)
            }
            Err(e) => {
                if self.failed.lock().unwrap_or_else(|e| e.into_inner()).insert(g) {
                    tracing::warn!("{}: grain {g}: {e}", self.name);
                }
                None
            }
        }
    }
}

impl SparseExtent {
    /// Read compressed grains: each grain of `buf` is inflated on the rayon pool (inflating is
    /// the CPU work of a streamOptimized disk; the reads are small and stay in file order per
    /// grain), then copied into place. Grains that fail read as zeros and are remembered.
    fn read_compressed(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        use rayon::prelude::*;
        let gb = self.gb();
        let mut jobs = Vec::new();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let g = pos / gb;
            let inner = pos - g * gb;
            let n = ((gb - inner) as usize).min(buf.len() - done);
            jobs.push((g, inner as usize, done, n));
            done += n;
        }
        let grains: Vec<Option<Arc<Vec<u8>>>> = jobs
            .par_iter()
            .map(|&(g, ..)| match self.grain(g) {
                Grain::At(s) => self.inflated(g, s),
                _ => None,
            })
            .collect();
        for ((_, inner, at, n), d) in jobs.into_iter().zip(grains) {
            let b = &mut buf[at..at + n];
            match d {
                Some(d) => b.copy_from_slice(&d[inner..inner + n]),
                None => b.fill(0),
            }
        }
        Ok(())
    }
}

impl ExtentReader for SparseExtent {
    fn len(&self) -> u64 {
        self.len
    }

    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        let end = range.end.min(self.len);
        let gb = self.gb();
        let flen = self.src.len();
        let mut out = Vec::new();
        let mut pos = range.start;
        while pos < end {
            let g = pos / gb;
            if let Some(h) = self.hole_end(g) {
                let e = h.saturating_mul(gb).min(end);
                push(&mut out, pos..e, Alloc::Unallocated);
                pos = e;
                continue;
            }
            let gend = ((g + 1) * gb).min(end);
            match self.grain(g) {
                Grain::Unallocated => push(&mut out, pos..gend, Alloc::Unallocated),
                Grain::Zero => push(&mut out, pos..gend, Alloc::Zero),
                Grain::Bad => push(&mut out, pos..gend, Alloc::Unreadable),
                Grain::At(_)
                    if self.h.compressed() && self.failed.lock().unwrap_or_else(|e| e.into_inner()).contains(&g) =>
                {
                    push(&mut out, pos..gend, Alloc::Unreadable)
                }
                Grain::At(s) if self.h.compressed() => {
                    let a =
                        if s.saturating_mul(512).saturating_add(12) <= flen { Alloc::Data } else { Alloc::Unreadable };
                    push(&mut out, pos..gend, a)
                }
                Grain::At(s) => {
                    // Data as far as the file goes; a grain cut by the end of the file is unreadable.
                    let file_end = g * gb + flen.saturating_sub(s.saturating_mul(512));
                    let split = file_end.clamp(pos, gend);
                    push(&mut out, pos..split, Alloc::Data);
                    push(&mut out, split..gend, Alloc::Unreadable);
                }
            }
            pos = gend;
        }
        Ok(out)
    }

    fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let gb = self.gb();
        if self.h.compressed() {
            return self.read_compressed(off, buf);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let g = pos / gb;
            let inner = pos - g * gb;
            let n = ((gb - inner) as usize).min(buf.len() - done);
            let Grain::At(s) = self.grain(g) else {
                buf[done..done + n].fill(0);
                done += n;
                continue;
            };
            // Following grains stored right after this one in the file are read with it,
            // in one call (a file cut short cuts the run as it would each grain).
            let mut n = n;
            let mut next = s.saturating_add(gb / 512);
            while done + n < buf.len() && self.grain(g + (n as u64 + inner) / gb) == Grain::At(next) {
                n += (gb as usize).min(buf.len() - done - n);
                next = next.saturating_add(gb / 512);
            }
            let b = &mut buf[done..done + n];
            let at = s.saturating_mul(512).saturating_add(inner);
            let avail = self.src.len().saturating_sub(at).min(n as u64) as usize;
            if avail > 0 {
                self.src.read_at(at, &mut b[..avail])?;
            }
            b[avail..].fill(0);
            done += n;
        }
        Ok(())
    }

    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let gb = self.gb();
        let mut out = Vec::new();
        if self.h.compressed() {
            let first = range.start / gb;
            let last = range.end.div_ceil(gb);
            for &g in self.failed.lock().unwrap_or_else(|e| e.into_inner()).range(first..last) {
                out.push((g * gb).max(range.start)..((g + 1) * gb).min(range.end));
            }
            return out;
        }
        let Ok(m) = self.map(range) else { return out };
        for (r, _) in m.into_iter().filter(|(_, a)| *a == Alloc::Data) {
            let mut pos = r.start;
            while pos < r.end {
                let g = pos / gb;
                let e = ((g + 1) * gb).min(r.end);
                if let Grain::At(s) = self.grain(g) {
                    let base = s * 512;
                    let inner = pos - g * gb;
                    for u in self.src.unreadable(base + inner..base + (e - g * gb)) {
                        out.push(u.start - base + g * gb..u.end - base + g * gb);
                    }
                }
                pos = e;
            }
        }
        out
    }

    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }
}
