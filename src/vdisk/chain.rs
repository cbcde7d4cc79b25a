//! VMDK links and chains: a link is a descriptor with its extents; a chain follows
//! `parentFileNameHint` (then the same folder, then a CID search) from a leaf to its base.
//! The assembled disk is a [`BlockSource`]: data comes from the first link that holds it, zero
//! grains stop the fall-through, and what no link holds reads as zeros.

use super::descriptor::{Descriptor, looks_like_descriptor};
use super::error::{Result, VdiskError};
use super::extent::{Alloc, ExtentReader, FlatExtent, ZeroExtent};
use super::files::{Files, resolve};
use crate::block::{BlockSource, ReadError, Source};
use std::ops::Range;

/// Links followed before a chain is called a loop.
pub const MAX_CHAIN: usize = 256;

/// One link of a chain.
pub struct Layer {
    /// Path of the descriptor (or of the sparse file holding it).
    pub path: String,
    pub desc: Descriptor,
    /// (start byte, extent), in descriptor order.
    extents: Vec<(u64, Box<dyn ExtentReader>)>,
    pub capacity: u64,
    /// What opening found wrong but could work around.
    pub problems: Vec<String>,
}

fn magic(src: &Source) -> Result<[u8; 8]> {
    let mut m = [0u8; 8];
    let n = src.len().min(8) as usize;
    src.read_at(0, &mut m[..n])?;
    Ok(m)
}

impl Layer {
    /// Open the link whose descriptor (or monolithic sparse file) is `path`.
    pub fn open(files: &dyn Files, path: &str) -> Result<Self> {
        let src = files.open(path)?;
        let m = magic(&src)?;
        let kdmv = u32::from_le_bytes([m[0], m[1], m[2], m[3]]) == super::sparse::KDMV_MAGIC;
        let raw = if kdmv {
            super::sparse::embedded_descriptor(&src)?.ok_or_else(|| VdiskError::Descriptor {
                file: path.into(),
                what: "sparse extent without an embedded descriptor".into(),
            })?
        } else {
            if src.len() > super::descriptor::MAX_DESCRIPTOR as u64 {
                return Err(VdiskError::Descriptor {
                    file: path.into(),
                    what: format!("{} bytes: an extent, not a descriptor (open its .vmdk descriptor)", src.len()),
                });
            }
            let mut b = vec![0u8; src.len() as usize];
            src.read_at(0, &mut b)?;
            if !looks_like_descriptor(&b) {
                return Err(VdiskError::Descriptor { file: path.into(), what: "not a VMDK descriptor".into() });
            }
            b
        };
        let desc = Descriptor::parse(path, &raw)?;
        let mut extents: Vec<(u64, Box<dyn ExtentReader>)> = Vec::new();
        let mut start = 0u64;
        for (i, e) in desc.extents.iter().enumerate() {
            let len = e.sectors * 512;
            let name = e.file.as_deref().map(|f| resolve(path, f)).unwrap_or_default();
            let reader: Box<dyn ExtentReader> = match e.kind.as_str() {
                "ZERO" => Box::new(ZeroExtent { len }),
                "FLAT" | "VMFS" => Box::new(FlatExtent { file: files.open(&name)?, offset: e.offset * 512, len }),
                "SPARSE" => {
                    // A monolithic sparse file holds its own (only) extent: the name in its
                    // embedded descriptor is often wrong (streamOptimized).
                    // A descriptor container (capacity 0) holds no grains: its extents are other files.
                    let own = kdmv && desc.extents.len() == 1 && !super::sparse::is_descriptor_container(&src);
                    let f = if own { src.clone() } else { files.open(&name)? };
                    super::sparse::open(&name, f, len)?
                }
                "VMFSSPARSE" => super::cowd::open(&name, files.open(&name)?, len)?,
                "SESPARSE" => super::sesparse::open(&name, files.open(&name)?, len)?,
                "VMFSRDM" | "VMFSRAW" => {
                    return Err(VdiskError::Unsupported {
                        file: path.into(),
                        what: format!("extent {}: raw device mapping {name:?}: the data is on the mapped LUN", i + 1),
                    });
                }
                k => {
                    return Err(VdiskError::Unsupported { file: path.into(), what: format!("extent type {k}") });
                }
            };
            extents.push((start, reader));
            start = start.saturating_add(len);
        }
        let problems = extents.iter().flat_map(|(_, e)| e.problems()).collect();
        Ok(Self { path: path.into(), capacity: start, desc, extents, problems })
    }

    /// The allocation of `range` in this link alone.
    pub fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        let mut out = Vec::new();
        for (start, e) in &self.extents {
            let (s, end) = (*start, start + e.len());
            let lo = range.start.max(s);
            let hi = range.end.min(end);
            if lo >= hi {
                continue;
            }
            for (r, a) in e.map(lo - s..hi - s)? {
                out.push((r.start + s..r.end + s, a));
            }
        }
        Ok(out)
    }

    /// Read `buf` at `off`, which `map` said is `Data`.
    pub fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let (s, e) =
                self.extents.iter().find(|(s, e)| *s <= pos && pos < s + e.len()).ok_or_else(|| {
                    VdiskError::corrupt(&self.path, "extent list", pos, "offset past the last extent")
                })?;
            let n = ((s + e.len() - pos) as usize).min(buf.len() - done);
            e.read_data(pos - s, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Backing-file bytes this link failed to read in `range`.
    pub fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        for (s, e) in &self.extents {
            let lo = range.start.max(*s);
            let hi = range.end.min(s + e.len());
            if lo < hi {
                out.extend(e.unreadable(lo - s..hi - s).into_iter().map(|r| r.start + s..r.end + s));
            }
        }
        out
    }
}

/// A chain of links, leaf first, read as one disk.
pub struct VirtualDisk {
    pub layers: Vec<Layer>,
    /// Chain problems (CID mismatch, missing parent, size mismatch), one line each.
    pub problems: Vec<String>,
}

/// Where the parent of `child` (a descriptor path) may be, most likely first.
fn parent_candidates(files: &dyn Files, child: &str, hint: &str, want_cid: Option<u32>) -> Vec<String> {
    let base = hint.rsplit('/').next().unwrap_or(hint);
    let mut c = vec![resolve(child, hint), resolve(child, base)];
    if let Some(dir) = hint.rsplit('/').nth(1).filter(|d| !d.is_empty()) {
        c.push(resolve(child, &format!("../{dir}/{base}")));
    }
    // Last: any descriptor in the child's folder with the wanted CID.
    if want_cid.is_some() {
        let dir = child.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
        for n in files.list(dir).unwrap_or_default() {
            if n.ends_with(".vmdk") && !["-flat.vmdk", "-delta.vmdk", "-sesparse.vmdk"].iter().any(|s| n.ends_with(s)) {
                c.push(resolve(child, &n));
            }
        }
    }
    c.dedup();
    c
}

/// Open the disk whose leaf descriptor is `path`, with its whole chain.
pub fn open(files: &dyn Files, path: &str) -> Result<VirtualDisk> {
    let leaf = Layer::open(files, path)?;
    let mut layers = vec![leaf];
    let mut problems = Vec::new();
    while layers.len() < MAX_CHAIN {
        let child = layers.last().map(|l| (l.path.clone(), l.desc.parent_cid(), l.desc.parent_hint()));
        let Some((child_path, want, hint)) = child else { break };
        let Some(hint) = hint else {
            if want.is_some() {
                problems.push(format!("{child_path}: parentCID {:08x} but no parentFileNameHint", want.unwrap_or(0)));
            }
            break;
        };
        let mut found = None;
        let mut fallback = None;
        for cand in parent_candidates(files, &child_path, &hint, want) {
            if cand == child_path || layers.iter().any(|l| l.path == cand) {
                continue;
            }
            let Ok(p) = Layer::open(files, &cand) else { continue };
            if want.is_none() || p.desc.cid() == want {
                found = Some(p);
                break;
            }
            if fallback.is_none() && (cand == resolve(&child_path, &hint)) {
                fallback = Some(p);
            }
        }
        match (found, fallback) {
            (Some(p), _) => {
                // Found by the folder's CID search, not by the hint: say so (the hint is stale).
                let base = hint.rsplit('/').next().unwrap_or(&hint);
                if p.path.rsplit('/').next() != Some(base) {
                    problems.push(format!(
                        "{child_path}: parentFileNameHint {hint:?} not found; parent {} chosen by its CID",
                        p.path
                    ));
                }
                layers.push(p);
            }
            (None, Some(p)) => {
                problems.push(format!(
                    "CID mismatch: {child_path} expects parent CID {:08x}, {} has {}; reading it anyway (the parent was \
                     modified after the snapshot)",
                    want.unwrap_or(0),
                    p.path,
                    p.desc.cid().map_or("none".into(), |c| format!("{c:08x}"))
                ));
                layers.push(p);
            }
            (None, None) => {
                problems.push(format!(
                    "parent of {child_path} not found (hint {hint:?}); what the parent held reads as zeros"
                ));
                break;
            }
        }
    }
    if layers.len() >= MAX_CHAIN {
        problems.push(format!("chain longer than {MAX_CHAIN} links: cut there"));
    }
    let cap = layers[0].capacity;
    for l in &layers[1..] {
        if l.capacity != cap {
            problems.push(format!("{}: capacity {} differs from the leaf's {cap}", l.path, l.capacity));
        }
    }
    for l in &layers {
        problems.extend(l.problems.iter().map(|p| format!("{}: {p}", l.path)));
    }
    Ok(VirtualDisk { layers, problems })
}

impl VirtualDisk {
    /// Virtual size (the leaf's).
    pub fn capacity(&self) -> u64 {
        self.layers.first().map_or(0, |l| l.capacity)
    }

    /// The allocation of `range` through the chain: (range, what, link index).
    pub fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc, usize)>> {
        let mut out = Vec::new();
        self.map_from(0, range, &mut out)?;
        Ok(out)
    }

    fn map_from(&self, level: usize, range: Range<u64>, out: &mut Vec<(Range<u64>, Alloc, usize)>) -> Result<()> {
        let Some(layer) = self.layers.get(level) else {
            out.push((range, Alloc::Zero, level));
            return Ok(());
        };
        let mut pos = range.start;
        for (r, a) in layer.map(range.start..range.end.min(layer.capacity))? {
            if r.start > pos {
                // Not covered by this link's extents: fall through.
                self.map_from(level + 1, pos..r.start, out)?;
            }
            match a {
                Alloc::Unallocated => self.map_from(level + 1, r.clone(), out)?,
                a => out.push((r.clone(), a, level)),
            }
            pos = r.end;
        }
        if pos < range.end {
            self.map_from(level + 1, pos..range.end, out)?;
        }
        Ok(())
    }
}

fn to_read_error(name: &str, off: u64, e: VdiskError) -> ReadError {
    ReadError::Io { source_name: name.into(), offset: off, error: std::io::Error::other(e.to_string()) }
}

impl BlockSource for VirtualDisk {
    fn name(&self) -> String {
        self.layers.first().map_or_else(String::new, |l| l.path.clone())
    }
    fn len(&self) -> u64 {
        self.capacity()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::result::Result<(), ReadError> {
        crate::block::check_range(&|| self.name(), offset, buf.len(), self.len())?;
        let end = offset + buf.len() as u64;
        for (r, a, level) in self.map(offset..end).map_err(|e| to_read_error(&self.name(), offset, e))? {
            let b = &mut buf[(r.start - offset) as usize..(r.end - offset) as usize];
            match a {
                Alloc::Data => {
                    self.layers[level].read_data(r.start, b).map_err(|e| to_read_error(&self.name(), r.start, e))?
                }
                _ => b.fill(0),
            }
        }
        Ok(())
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let Ok(m) = self.map(range) else { return Vec::new() };
        let mut out = Vec::new();
        for (r, a, level) in m {
            match a {
                Alloc::Unreadable => out.push(r),
                Alloc::Data => out.extend(self.layers[level].unreadable(r)),
                _ => {}
            }
        }
        crate::block::merge_ranges(out)
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let Ok(m) = self.map(range.clone()) else { return vec![range] };
        crate::block::merge_ranges(m.into_iter().filter(|(_, a, _)| *a == Alloc::Data).map(|(r, _, _)| r).collect())
    }
}
