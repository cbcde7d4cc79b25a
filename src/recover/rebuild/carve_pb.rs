//! Deleted (or unreachable) disks whose pointer blocks survive. Deleting a file clears its FD's
//! pointers and frees its pointer blocks in the bitmap, but leaves their entries in place: each
//! still maps one window (entries × block size) of the file, holes and to-be-zeroed blocks
//! included. That is what a thin disk needs, whose blocks are not one contiguous run.
//!
//! A pointer block is orphaned when every entry is a file block and every block it names is
//! free. Which file and which window it was is lost with the FD; a disk is assembled only when
//! each window is pinned by the disk's own structures: the first by a guest partition table at
//! the start of its first block, the last (when there is more than one) by the GPT backup header
//! in the disk's last sector. Windows between the two are taken as holes only when no other
//! freed pointer block is left on the volume (low confidence); otherwise the disk is named in
//! the report as not assembled.

use super::Confidence;
use super::carve::{Deleted, ExtentSize, Found, Vol, by_descriptor, delta_capacity};
use crate::block::{Concat, Piece, Source, SparseMem, read_vec};
use crate::le::{u32_at, u64_at};
use crate::recover::finding::What;
use crate::vmfs::ondisk::Zla;
use crate::vmfs::volume::ResKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Resource clusters read at most per resource file (a hostile header cannot make the pass
/// endless; real .pbc.sf and .sbc.sf files have a few thousand).
const MAX_CLUSTERS: u64 = 1 << 20;
const MIB: u64 = 1 << 20;

/// A pointer block whose file is gone.
struct Orphan {
    /// Resource file, cluster and resource it was read from (for the report).
    at: ResAt,
    /// Allocated entries: index in the block, and the block's volume offset (`None`: to be
    /// zeroed, reads as zeros).
    leaves: Vec<(u64, Option<u64>)>,
    /// Size of the blocks its entries name.
    bs: u64,
}

impl Orphan {
    fn leaf(&self, idx: u64) -> Option<Option<u64>> {
        self.leaves.binary_search_by_key(&idx, |l| l.0).ok().map(|i| self.leaves[i].1)
    }
    fn describe(&self) -> String {
        describe(self.at)
    }
    /// The first data block it names.
    fn first_data(&self) -> Option<u64> {
        self.leaves.iter().find_map(|l| l.1)
    }
}

/// "<resource file> cluster C resource R", for the report.
fn describe((kind, c, r): ResAt) -> String {
    format!("{} cluster {c} resource {r}", kind.file_name())
}

/// The guest partition table (its kind, "gpt" or "mbr", and the disk size it implies) the scan
/// found at volume offset `off`.
fn guest_table(v: &Vol, off: u64) -> Option<(&str, u64)> {
    let i = v.found.binary_search_by_key(&off, |(o, _)| *o).ok()?;
    match &v.found[i].1 {
        What::Guest { fs, size: Some(size) } if fs == "gpt" || fs == "mbr" => Some((fs.as_str(), *size)),
        _ => None,
    }
}

/// Disks rebuilt from orphaned pointer blocks, and notes on what could not be placed.
pub(super) fn thin_disks(v: &Vol, deleted: &[Deleted], descs: &[ExtentSize]) -> (Vec<Found>, Vec<String>) {
    let (orphans, reused, uppers) = orphans(v);
    let mut notes = Vec::new();
    if reused > 0 {
        notes.push(format!(
            "{}: {reused} freed pointer block(s) name blocks now used by other files; not used",
            v.label
        ));
    }
    if orphans.is_empty() {
        return (Vec::new(), notes);
    }
    let geo = &v.fs.geo;
    let mut claimed = vec![false; orphans.len()];
    // Files mapped through a double-indirect block: every window is placed by it.
    let mut plans = double_indirect(v, &orphans, &uppers, deleted, descs, &mut claimed, &mut notes);
    for (hi, h) in orphans.iter().enumerate() {
        if claimed[hi] {
            continue;
        }
        let Some(Some(first)) = h.leaf(0) else { continue };
        let Some((fs, size)) = guest_table(v, first) else { continue };
        let window = geo.pb_entries.saturating_mul(h.bs);
        let reach = (geo.ptrs_count as u64).saturating_mul(window);
        let (mut len, mut how, mut conf, mut sized_by) = if fs == "gpt" {
            (size, "size from the GPT header".to_string(), Confidence::Medium, Vec::new())
        } else {
            mbr_size(v, h, size, window)
        };
        let mut target = None;
        let most = len.saturating_add(window);
        if let Some(n) = by_descriptor(descs, deleted, |d| if fs == "gpt" { d == len } else { d >= len && d <= most }) {
            (len, how, target) = n;
            conf = Confidence::Medium;
            sized_by.clear();
        }
        if len == 0 || len > reach {
            continue;
        }
        claimed[hi] = true;
        let wins = BTreeMap::from([(0, hi)]);
        plans.push(Plan { head: hi, len, window, wins, how, target, conf, exact: false, sized_by });
    }
    // The last window: the one pointer block whose entry for the disk's last sector names a
    // block holding the GPT backup header for exactly this size.
    for p in plans.iter_mut().filter(|p| !p.exact) {
        let last = (p.len - 1) / p.window;
        if last == 0 {
            continue;
        }
        let at = p.len - 512;
        let idx = (at % p.window) / orphans[p.head].bs;
        let in_block = at % orphans[p.head].bs;
        let tails: Vec<usize> = (0..orphans.len())
            .filter(|&o| !claimed[o] && orphans[o].bs == orphans[p.head].bs)
            .filter(|&o| {
                orphans[o].leaf(idx).flatten().is_some_and(|b| {
                    read_vec(v.fs.vol.as_ref(), b + in_block, 512)
                        .is_ok_and(|s| s.starts_with(b"EFI PART") && u64_at(&s, 0x18) == Some(p.len / 512 - 1))
                })
            })
            .collect();
        if let [t] = tails.as_slice() {
            claimed[*t] = true;
            p.wins.insert(last, *t);
            p.how.push_str("; last window from the pointer block naming the GPT backup header");
        }
    }
    let unplaced = claimed.iter().filter(|c| !**c).count();
    let mut out = Vec::new();
    for p in plans {
        let n = p.len.div_ceil(p.window);
        let head_off = orphans[p.head].first_data().unwrap_or(0);
        if !p.exact && n >= 2 && !p.wins.contains_key(&(n - 1)) {
            notes.push(format!(
                "{}: disk at volume offset {head_off:#x} ({} bytes, {n} pointer-block windows): its last window \
                 could not be identified; not assembled",
                v.label, p.len
            ));
            continue;
        }
        let mut how = p.how;
        let mut conf = p.conf;
        if n >= 3 && !p.exact {
            if unplaced > 0 || reused > 0 {
                notes.push(format!(
                    "{}: disk at volume offset {head_off:#x} ({} bytes): windows 1..{} cannot be placed among \
                     {unplaced} other orphaned and {reused} reused pointer block(s); not assembled",
                    v.label,
                    p.len,
                    n - 2
                ));
                continue;
            }
            how.push_str(&format!(
                "; windows 1..{} held no pointer block (no other orphaned pointer block on the volume): holes",
                n - 2
            ));
            conf = Confidence::Low;
        }
        let mut used: Vec<String> = p.wins.values().take(4).map(|&o| orphans[o].describe()).collect();
        if p.wins.len() > 4 {
            used.push(format!("and {} more", p.wins.len() - 4));
        }
        let content = assemble(v, &orphans, &p.wins, p.window, p.len, head_off);
        let first = if p.exact {
            "first window from the double-indirect block's first entry"
        } else {
            "first window from the guest partition table"
        };
        let data = p.wins.values().map(|&o| orphans[o].leaves.iter().filter(|l| l.1.is_some()).count()).sum::<usize>();
        out.push(Found {
            off: head_off,
            len: p.len,
            content: Some(content),
            span: Some(orphans[p.head].bs),
            target: p.target,
            carved_name: ("disk".into(), ".vmdk-flat".into()),
            method: format!(
                "block map from orphaned pointer block(s) {} ({data} data blocks); {first} at volume offset \
                 {head_off:#x}; {how}",
                used.join(", ")
            ),
            confidence: conf,
            sized_by: p.sized_by,
        });
    }
    // With no name to go by, one disk and one deleted file that was addressed through pointer
    // blocks are each other's.
    let flats: Vec<&Deleted> = deleted
        .iter()
        .filter(|d| {
            d.name.as_deref().is_none_or(|n| n.ends_with("-flat.vmdk"))
                && matches!(d.zla, Some(Zla::PointerBlock | Zla::Pointer2Block) | None)
                && !out.iter().any(|f| f.target == Some(d.idx))
        })
        .collect();
    let loose: Vec<usize> = (0..out.len()).filter(|&i| out[i].target.is_none()).collect();
    if let ([d], [i]) = (flats.as_slice(), loose.as_slice()) {
        out[*i].target = Some(d.idx);
        out[*i].method.push_str("; the only deleted disk of the volume addressed through pointer blocks");
    }
    let left = claimed.iter().filter(|c| !**c).count();
    if left > 0 {
        notes.push(format!(
            "{}: {left} orphaned pointer block(s) of deleted or unreachable files belong to no disk that could be \
             assembled",
            v.label
        ));
    }
    (out, notes)
}

/// A disk to assemble: its first window's pointer block, size, windows placed so far.
struct Plan {
    head: usize,
    len: u64,
    window: u64,
    wins: BTreeMap<u64, usize>,
    how: String,
    target: Option<usize>,
    conf: Confidence,
    /// Every window is placed (by a double-indirect block): no window is left to guess.
    exact: bool,
    /// Delta headers whose capacity gave the size.
    sized_by: Vec<u64>,
}

/// Disks whose double-indirect pointer block survives: its entries place every leaf pointer
/// block (entry i maps window i), so the order is the file's, holes included. The size comes
/// from a guest partition table at its first block, a descriptor, or (when this is the only
/// such block on the volume) the end of the last block it allocates.
fn double_indirect(
    v: &Vol,
    orphans: &[Orphan],
    uppers: &[Upper],
    deleted: &[Deleted],
    descs: &[ExtentSize],
    claimed: &mut [bool],
    notes: &mut Vec<String>,
) -> Vec<Plan> {
    let geo = &v.fs.geo;
    let mut plans = Vec::new();
    for u in uppers {
        let at = describe(u.at);
        if u.children.iter().any(|c| claimed[c.1]) {
            continue;
        }
        let Some(&(0, head)) = u.children.first() else {
            // A later part of a file over what one double-indirect block maps: not placed.
            notes.push(format!(
                "{}: double-indirect pointer block {at} of a deleted file does not start it; not used",
                v.label
            ));
            continue;
        };
        let bs = orphans[head].bs;
        let window = geo.pb_entries.saturating_mul(bs);
        let (last_w, last_o) = u.children[u.children.len() - 1];
        let alloc_end = orphans[last_o]
            .leaves
            .last()
            .map_or(0, |l| last_w.saturating_mul(window).saturating_add((l.0 + 1).saturating_mul(bs)));
        let most = (last_w + 1).saturating_mul(window);
        let guest = orphans[head].leaf(0).flatten().and_then(|first| guest_table(v, first));
        let mut target = None;
        let (len, how, conf) = match guest {
            Some((fs, size)) if fs == "gpt" && size >= alloc_end && size <= most => {
                (size, "size from the GPT header".to_string(), Confidence::Medium)
            }
            _ => {
                let fits = |d: u64| d >= alloc_end && d <= most;
                if let Some((d, how, t)) = by_descriptor(descs, deleted, fits) {
                    target = t;
                    (d, how, Confidence::Medium)
                } else if uppers.len() == 1 {
                    (
                        alloc_end,
                        "size from the last block it allocates (the disk may be longer)".into(),
                        Confidence::Low,
                    )
                } else {
                    notes.push(format!(
                        "{}: deleted disk mapped by double-indirect pointer block {at}: its size is unknown; not assembled",
                        v.label
                    ));
                    continue;
                }
            }
        };
        if len == 0 || alloc_end > len {
            continue;
        }
        let mut how = how;
        if target.is_none() {
            // Only a file addressed through double-indirect blocks had one.
            let doubles: Vec<&Deleted> = deleted
                .iter()
                .filter(|d| {
                    d.zla == Some(Zla::PointerBlockDouble)
                        && d.name.as_deref().is_none_or(|n| n.ends_with("-flat.vmdk"))
                })
                .collect();
            if let [d] = doubles.as_slice() {
                target = Some(d.idx);
                how.push_str("; the only deleted file of the volume addressed through double-indirect pointer blocks");
            }
        }
        for c in &u.children {
            claimed[c.1] = true;
        }
        let wins: BTreeMap<u64, usize> = u.children.iter().copied().collect();
        plans.push(Plan {
            head,
            len,
            window,
            wins,
            how: format!("windows ordered by the orphaned double-indirect pointer block {at}; {how}"),
            target,
            conf,
            exact: true,
            sized_by: Vec::new(),
        });
    }
    plans
}

/// An MBR disk's size, which its table does not give: the capacity of a snapshot delta header in
/// free space that fits, else the end of the last block the first window allocates (exact for a
/// thick disk), else the end of the last partition rounded up to 1 MiB.
/// Also gives the delta headers whose capacity it is.
fn mbr_size(v: &Vol, head: &Orphan, part_end: u64, window: u64) -> (u64, String, Confidence, Vec<u64>) {
    let least = part_end.div_ceil(MIB).saturating_mul(MIB);
    let caps: Vec<(u64, u64)> = v
        .found
        .iter()
        .filter_map(|(o, w)| if let What::SparseHeader { capacity, .. } = w { Some((*capacity, *o)) } else { None })
        .collect();
    if let Some((c, by)) = delta_capacity(&caps, least, least.saturating_add(window)) {
        return (c, "size from the capacity of a snapshot delta header in free space".into(), Confidence::Low, by);
    }
    let allocated = head.leaves.last().map_or(0, |l| (l.0 + 1).saturating_mul(head.bs));
    if allocated >= least && allocated < window {
        return (allocated, "size from the last block its pointer block allocates".into(), Confidence::Low, Vec::new());
    }
    (least, "size from the end of the last MBR partition, rounded up to 1 MiB".into(), Confidence::Low, Vec::new())
}

/// The disk's bytes: each window's data blocks from the volume, everything else zeros.
fn assemble(v: &Vol, orphans: &[Orphan], wins: &BTreeMap<u64, usize>, window: u64, len: u64, head: u64) -> Source {
    let zeros: Source = Arc::new(SparseMem { name: "hole".into(), len, regions: Default::default() });
    let mut data: Vec<(u64, u64, u64)> = Vec::new();
    for (&w, &o) in wins {
        let bs = orphans[o].bs;
        for &(idx, b) in &orphans[o].leaves {
            let Some(b) = b else { continue };
            let at = w * window + idx * bs;
            if at >= len {
                continue;
            }
            let n = bs.min(len - at);
            match data.last_mut() {
                Some(last) if last.0 + last.2 == at && last.1 + last.2 == b => last.2 += n,
                _ => data.push((at, b, n)),
            }
        }
    }
    let mut pieces = Vec::new();
    let mut pos = 0;
    for (at, b, n) in data {
        if at > pos {
            pieces.push(Piece { offset: pos, len: at - pos, src: Some((Arc::clone(&zeros), pos)) });
        }
        pieces.push(Piece { offset: at, len: n, src: Some((Arc::clone(&v.fs.vol), b)) });
        pos = at + n;
    }
    if pos < len {
        pieces.push(Piece { offset: pos, len: len - pos, src: Some((Arc::clone(&zeros), pos)) });
    }
    Arc::new(Concat::new(format!("disk-at-{head:#x}"), pieces, len))
}

/// Where a resource lives: its file, cluster and number.
type ResAt = (ResKind, u64, u64);

/// A double-indirect pointer block whose file is gone: window number → the orphaned leaf
/// pointer block that maps it.
struct Upper {
    at: ResAt,
    children: Vec<(u64, usize)>,
}

/// Every orphaned leaf pointer block of the volume, how many freed ones name reused blocks, and
/// the double-indirect blocks whose every entry names one of those orphans.
fn orphans(v: &Vol) -> (Vec<Orphan>, usize, Vec<Upper>) {
    let fs = &v.fs;
    let geo = &fs.geo;
    let w = geo.ptr_width;
    let rec_len = geo.pb_entries as usize * w;
    // VMFS6 keeps pointer blocks in sub-blocks (and, on some volumes, in .pbc.sf).
    let kinds: &[ResKind] =
        if geo.v6 { &[ResKind::Sb, ResKind::Pb, ResKind::Pb2] } else { &[ResKind::Pb, ResKind::Pb2] };
    let mut out = Vec::new();
    let mut reused = 0;
    let mut pointing: Vec<(ResAt, Vec<(u64, ResAt)>)> = Vec::new();
    // Pointer blocks the system files map themselves through (VMFS6 .sbc.sf through .pb2.sf):
    // theirs, not a deleted file's, whatever the blocks they name look like.
    let system: std::collections::HashSet<ResAt> = (0..16)
        .filter_map(|r| fs.read_fd(crate::vmfs::address::make_fd(0, r)).ok())
        .filter(|fd| fd.meta.kind == crate::vmfs::FdType::SysFile)
        .flat_map(|fd| {
            fd.pointers(geo).into_iter().filter_map(|p| (p != 0).then(|| fs.pointer_block_location(p)).flatten())
        })
        .collect();
    for &kind in kinds {
        let Ok(res) = fs.resource_file(kind) else { continue };
        if res.meta.resource_size as usize != rec_len || rec_len == 0 {
            continue;
        }
        let Ok(clusters) = fs.resource_clusters(kind) else { continue };
        for c in 0..clusters.min(MAX_CLUSTERS) {
            let Ok(bytes) = fs.cluster_resources(kind, c) else { continue };
            for (r, rec) in bytes.chunks_exact(rec_len).enumerate() {
                if rec.iter().all(|&b| b == 0) || system.contains(&(kind, c, r as u64)) {
                    continue;
                }
                match leaf_block(v, rec, w) {
                    Shape::Orphan(leaves, bs) => out.push(Orphan { at: (kind, c, r as u64), leaves, bs }),
                    Shape::Reused => reused += 1,
                    Shape::Upper(children) => pointing.push(((kind, c, r as u64), children)),
                    Shape::Not => {}
                }
            }
        }
    }
    let index: std::collections::HashMap<ResAt, usize> = out.iter().enumerate().map(|(i, o)| (o.at, i)).collect();
    let uppers = pointing
        .into_iter()
        .filter_map(|(at, children)| {
            let children: Option<Vec<(u64, usize)>> =
                children.iter().map(|(i, loc)| index.get(loc).map(|&o| (*i, o))).collect();
            let children = children?;
            // Each leaf once, all of one block size.
            let mut leaves: Vec<usize> = children.iter().map(|c| c.1).collect();
            leaves.sort_unstable();
            leaves.dedup();
            let same_bs = children.iter().all(|c| out[c.1].bs == out[children[0].1].bs);
            (leaves.len() == children.len() && same_bs).then_some(Upper { at, children })
        })
        .collect();
    (out, reused, uppers)
}

/// The entries of a record whose every non-zero entry is a pointer-block address.
fn upper_block(v: &Vol, rec: &[u8], w: usize) -> Option<Vec<(u64, ResAt)>> {
    let mut out = Vec::new();
    for (i, e) in rec.chunks_exact(w).enumerate() {
        let raw = if w == 8 { u64_at(e, 0).unwrap_or(0) } else { u32_at(e, 0).map_or(0, u64::from) };
        if raw == 0 {
            continue;
        }
        out.push((i as u64, v.fs.pointer_block_location(raw)?));
    }
    (!out.is_empty()).then_some(out)
}

enum Shape {
    /// A leaf pointer block whose data blocks are all free.
    Orphan(Vec<(u64, Option<u64>)>, u64),
    /// A leaf pointer block whose data blocks are partly in use: freed, then reallocated.
    Reused,
    /// Every entry names a pointer block: a double-indirect block (its entries are checked
    /// against the orphaned leaves later).
    Upper(Vec<(u64, ResAt)>),
    /// Not an orphaned pointer block (another record, or one a surviving file still uses).
    Not,
}

fn leaf_block(v: &Vol, rec: &[u8], w: usize) -> Shape {
    if let Some(children) = upper_block(v, rec, w) {
        return Shape::Upper(children);
    }
    let vol_len = v.fs.vol.len();
    let mut leaves = Vec::new();
    let mut bs = 0;
    let (mut free, mut used) = (0usize, 0usize);
    for (i, e) in rec.chunks_exact(w).enumerate() {
        let raw = if w == 8 { u64_at(e, 0).unwrap_or(0) } else { u32_at(e, 0).map_or(0, u64::from) };
        if raw == 0 {
            continue;
        }
        let Some(u) = v.fs.file_block(raw) else { return Shape::Not };
        let Some(off) = u.vol_off else { return Shape::Not };
        if (bs != 0 && bs != u.len) || off.checked_add(u.len).is_none_or(|end| end > vol_len) {
            return Shape::Not;
        }
        bs = u.len;
        if u.tbz {
            leaves.push((i as u64, None));
        } else {
            if v.is_free(&(off..off + u.len)) {
                free += 1;
            } else {
                used += 1;
            }
            leaves.push((i as u64, Some(off)));
        }
    }
    let mut blocks: Vec<u64> = leaves.iter().filter_map(|l| l.1).collect();
    blocks.sort_unstable();
    blocks.dedup();
    if free == 0 || blocks.len() != free + used {
        return Shape::Not;
    }
    if used > 0 { Shape::Reused } else { Shape::Orphan(leaves, bs) }
}
