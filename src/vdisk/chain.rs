//! Chains: a leaf and its parents, followed by the names the child stores (a VMDK
//! `parentFileNameHint`, a qcow2 backing file, VHD/VHDX parent locators), then the same folder,
//! then a search of the folder for the identity the child expects (VMDK CID, parent UUID); a
//! child that records only an identity (VDI) goes straight to that search.
//! The assembled disk is a [`BlockSource`]: data comes from the first link that holds it, zero
//! grains stop the fall-through, and what no link holds reads as zeros.

use super::error::{Result, VdiskError};
use super::extent::Alloc;
use super::files::{Files, resolve};
use super::image::{Format, ParentRef};
use super::layer::Layer;
use crate::block::{BlockSource, ReadError};
use std::ops::Range;

/// Links followed before a chain is called a loop.
pub const MAX_CHAIN: usize = 256;

/// A chain of links, leaf first, read as one disk.
pub struct VirtualDisk {
    pub layers: Vec<Layer>,
    /// Chain problems (CID mismatch, missing parent, size mismatch), one line each.
    pub problems: Vec<String>,
}

/// File names that are extents or data of a link, never a link themselves.
pub fn is_extent_name(n: &str) -> bool {
    ["-flat.vmdk", "-delta.vmdk", "-sesparse.vmdk", "-rdm.vmdk", "-rdmp.vmdk", "-ctk.vmdk"]
        .iter()
        .any(|s| n.ends_with(s))
        || n.rsplit_once("-s").is_some_and(|(_, t)| t.len() == 8 && t.ends_with(".vmdk"))
        || n.rsplit_once("-f").is_some_and(|(_, t)| t.len() == 8 && t.ends_with(".vmdk"))
}

/// File endings a parent of `child` may have.
fn parent_endings(child: Format) -> &'static [&'static str] {
    match child {
        Format::Vmdk => &[".vmdk"],
        Format::Vhd => &[".vhd"],
        Format::Vhdx => &[".vhdx", ".avhdx"],
        Format::Vdi => &[".vdi"],
        // A qcow2 backing file can be anything: its name is all there is (no identity to search by).
        _ => &[],
    }
}

/// Where the parent named by `p` (of `child`, a link of format `fmt`) may be, most likely first.
fn parent_candidates(files: &dyn Files, child: &str, fmt: Format, p: &ParentRef) -> Vec<String> {
    let mut c = Vec::new();
    for hint in &p.hints {
        c.push(resolve(child, hint));
        let base = hint.rsplit('/').next().unwrap_or(hint);
        c.push(resolve(child, base));
        if let Some(dir) = hint.rsplit('/').nth(1).filter(|d| !d.is_empty()) {
            c.push(resolve(child, &format!("../{dir}/{base}")));
        }
    }
    // Last: any link in the child's folder with the wanted identity.
    if p.id.is_some() {
        let dir = child.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
        let endings = parent_endings(fmt);
        let mut names = files.list(dir).unwrap_or_default();
        names.sort();
        for n in names {
            if endings.iter().any(|e| n.to_ascii_lowercase().ends_with(e)) && !is_extent_name(&n) {
                c.push(resolve(child, &n));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    c.retain(|x| seen.insert(x.clone()));
    c
}

/// Open the parent candidate `path` of a `child_fmt` link. A qcow2 child that does not record
/// its backing file's format lets qemu probe it, and qemu reads a file with no known header as
/// raw: so does this, and says so.
fn open_parent(files: &dyn Files, path: &str, pref: &ParentRef, child_fmt: Format) -> Result<Layer> {
    match Layer::open_as(files, path, pref.format) {
        Err(VdiskError::UnknownFormat { .. }) if pref.format.is_none() && child_fmt == Format::Qcow2 => {
            let mut l = Layer::open_as(files, path, Some(Format::Raw))?;
            l.problems.push("backing file format not recorded and no image header found: read as raw".into());
            Ok(l)
        }
        r => r,
    }
}

/// Open the disk whose leaf is `path` (a VMDK descriptor or an image of another format),
/// with its whole chain.
pub fn open(files: &dyn Files, path: &str) -> Result<VirtualDisk> {
    open_leaf(files, Layer::open(files, path)?)
}

/// The chain below an already opened leaf.
pub fn open_leaf(files: &dyn Files, leaf: Layer) -> Result<VirtualDisk> {
    let mut layers = vec![leaf];
    let mut problems = Vec::new();
    while layers.len() < MAX_CHAIN {
        let Some(child) = layers.last() else { break };
        let Some(pref) = child.parent.clone() else { break };
        let (child_path, child_fmt) = (child.path.clone(), child.format);
        // A parent known only by its identity (VDI stores no file name) is searched for in
        // the child's folder; with neither a name nor an identity there is nothing to look for.
        let Some(want) = pref.hints.first().cloned().or_else(|| pref.id.clone()) else {
            problems.push(format!("{child_path}: parent expected but neither its file name nor its identity recorded"));
            break;
        };
        let mut found = None;
        let mut fallback = None;
        for cand in parent_candidates(files, &child_path, child_fmt, &pref) {
            if cand == child_path || layers.iter().any(|l| l.path == cand) {
                continue;
            }
            let Ok(p) = open_parent(files, &cand, &pref, child_fmt) else { continue };
            if pref.id.is_none() || p.id == pref.id {
                found = Some(p);
                break;
            }
            if fallback.is_none() && pref.hints.iter().any(|h| resolve(&child_path, h) == cand) {
                fallback = Some(p);
            }
        }
        match (found, fallback) {
            (Some(p), _) => {
                // Found by the folder search, not by a stored name: say so (the name is stale).
                let by_name = pref.hints.iter().any(|h| {
                    let base = h.rsplit('/').next().unwrap_or(h);
                    p.path.rsplit('/').next() == Some(base)
                });
                if !by_name && let Some(first) = pref.hints.first() {
                    problems.push(format!(
                        "{child_path}: parent {first:?} not found; parent {} chosen by its {}",
                        p.path,
                        if p.format == Format::Vmdk { "CID" } else { "identity" }
                    ));
                }
                layers.push(p);
            }
            (None, Some(p)) => {
                let what = if p.format == Format::Vmdk { "CID" } else { "parent identity" };
                problems.push(format!(
                    "{what} mismatch: {child_path} expects parent {} {}, {} has {}; reading it anyway (the parent \
                     was modified after the snapshot)",
                    if p.format == Format::Vmdk { "CID" } else { "id" },
                    pref.id.as_deref().unwrap_or("?"),
                    p.path,
                    p.id.as_deref().unwrap_or("none")
                ));
                layers.push(p);
            }
            (None, None) => {
                problems.push(if pref.hints.is_empty() {
                    format!(
                        "parent of {child_path} not found: no file in its folder has identity {want} (the image \
                         records no parent file name); what the parent held reads as zeros"
                    )
                } else {
                    let named = resolve(&child_path, &want);
                    format!("parent of {child_path} not found (named {named:?}); what the parent held reads as zeros")
                });
                break;
            }
        }
    }
    if layers.len() >= MAX_CHAIN {
        problems.push(format!("chain longer than {MAX_CHAIN} links: cut there"));
    }
    let cap = layers[0].capacity;
    for w in layers.windows(2) {
        // A qcow2 backing file may be smaller or larger than its child (zeros past its end).
        if w[1].capacity != cap && w[0].format != Format::Qcow2 {
            problems.push(format!("{}: capacity {} differs from the leaf's {cap}", w[1].path, w[1].capacity));
        }
    }
    for l in &layers {
        problems.extend(l.problems.iter().map(|p| format!("{}: {p}", l.path)));
    }
    Ok(VirtualDisk { layers, problems })
}

/// How the assembled disk's bytes are held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    /// Bytes some link holds as data.
    pub data: u64,
    /// Bytes a link defines as zeros (zero grains, ZERO extents, holes of flat files).
    pub zero: u64,
    /// Bytes no link holds: zeros.
    pub unallocated: u64,
    /// Bytes whose metadata could not be read: zeros, reported.
    pub unreadable: u64,
    /// Data bytes per link, leaf first.
    pub data_per_link: Vec<u64>,
    /// Number of separate data ranges.
    pub data_ranges: u64,
}

impl VirtualDisk {
    /// The allocation of the whole disk, walked in windows so a huge disk needs little memory.
    pub fn allocation(&self) -> Result<Allocation> {
        const WINDOW: u64 = 1 << 32;
        let mut a = Allocation { data_per_link: vec![0; self.layers.len()], ..Default::default() };
        let mut last_data_end = None;
        let mut pos = 0;
        let mut window = WINDOW;
        while pos < self.capacity() {
            let end = pos.saturating_add(window).min(self.capacity());
            let pieces = self.map(pos..end)?;
            // A window that is one piece (a hole, a damaged size): the next one twice as large,
            // so an absurd virtual size costs few calls.
            window = if pieces.len() <= 1 { window.saturating_mul(2) } else { WINDOW };
            for (r, kind, level) in pieces {
                let n = r.end - r.start;
                match kind {
                    Alloc::Data => {
                        a.data += n;
                        if let Some(l) = a.data_per_link.get_mut(level) {
                            *l += n;
                        }
                        if last_data_end != Some(r.start) {
                            a.data_ranges += 1;
                        }
                        last_data_end = Some(r.end);
                    }
                    // Past the last link: nothing holds it.
                    Alloc::Zero if level >= self.layers.len() => a.unallocated += n,
                    Alloc::Zero => a.zero += n,
                    Alloc::Unallocated => a.unallocated += n,
                    Alloc::Unreadable => a.unreadable += n,
                }
            }
            pos = end;
        }
        Ok(a)
    }

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
        // Past the end of a parent shorter than its child: zeros (qcow2 allows it).
        let covered = range.end.min(layer.capacity).max(range.start);
        let mut pos = range.start;
        for (r, a) in layer.map(range.start..covered)? {
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
        if pos < covered {
            self.map_from(level + 1, pos..covered, out)?;
        }
        if covered < range.end {
            out.push((covered..range.end, Alloc::Zero, level));
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
