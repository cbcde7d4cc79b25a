//! NTFS: our own reader, because content must come as runs over our source (clusters mapped,
//! sparse runs kept as holes, compressed units decompressed from their clusters) and MFT
//! records no longer in use must be readable. The `ntfs` crate (0.4) reads through its own
//! `Read + Seek`, gives no volume positions for content we could hand to the block layer's
//! per-file bad-sector report, and does not list free records.
//!
//! The boot sector ([`ondisk::Boot`]) is read at volume offset 0, else the backup at the
//! volume's last sector (or the sector after the NTFS's own sector count). `$MFT` is read
//! through its own runlist (record 0, or record 0 of `$MFTMirr` when damaged), extended by the
//! records its `$ATTRIBUTE_LIST` names, so a fragmented MFT is followed.
//!
//! **Directories come from one scan of the MFT**, not from the `$I30` indexes: each record's
//! `$FILE_NAME` attributes name its parent (record and sequence number), and the tree is built
//! from those references. A recovery tool has to list what a damaged or stale index no longer
//! holds, and deleted files are only ever found this way (their index entries are gone). The
//! scan is done once, on first use, bounded by [`MAX_RECORDS`]. Win32 (and POSIX) names are
//! shown; a DOS 8.3 name is hidden when the record has a long name in the same directory.
//! System files (records 0–23, `$Extend` and what is under it) are not listed.
//!
//! Deleted files: records not in use whose `$FILE_NAME` survives are listed (`deleted`) under
//! their parent when the parent record is still that directory (same sequence number, or one
//! more when the parent was deleted too, as freeing a record increments it); otherwise, and
//! for live records whose parent is gone, under `$Orphans` in the root (a directory that does
//! not exist on the volume, id [`ORPHANS`]). Deleted records with content but no surviving
//! name are listed there as `#<record>`. Confidence is High when every cluster of the unnamed
//! `$DATA` is free in `$Bitmap`, Low when some are allocated again.
//!
//! Alternate data streams are listed in [`Entry::streams`] and opened by name.

pub mod lznt1;
pub mod ondisk;

use super::bitmap::Bitmap;
use super::error::corrupt;
use super::{Confidence, Entry, GuestError, GuestFs, Kind, Run, RunFile, Target};
use crate::block::{MemSource, Source, Tolerant, read_vec};
use lznt1::{CompressedFile, Unit};
use ondisk::{AT_ATTRIBUTE_LIST, AT_DATA, AT_FILE_NAME, AT_STANDARD_INFORMATION, AT_VOLUME_NAME};
use ondisk::{Attr, Boot, FileName, RecordHeader, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

pub use ondisk::looks_like_ntfs;

/// Most MFT records scanned (16 Mi records: 16 GiB of MFT at 1 KiB each).
pub const MAX_RECORDS: u64 = 16 << 20;
/// Most extension records followed from one `$ATTRIBUTE_LIST`.
const MAX_EXTENSIONS: usize = 256;
/// Largest resident or non-resident `$ATTRIBUTE_LIST` read.
const MAX_ATTR_LIST: u64 = 4 << 20;
/// Largest `$Bitmap` read (2 Gi clusters).
const MAX_BITMAP: u64 = 256 << 20;
/// Most clusters of one deleted file checked against `$Bitmap`.
const MAX_CONFIDENCE_CLUSTERS: u64 = 1 << 26;
/// Most compression units of one stream (256 GiB at 64 KiB units).
const MAX_UNITS: u64 = 4 << 20;
/// The id of the `$Orphans` directory (no MFT record number has bit 63).
pub const ORPHANS: u64 = 1 << 63;
/// The root directory's record.
const ROOT: u64 = 5;
/// Records below this are system files or reserved.
const FIRST_USER: u64 = 24;

/// Where a run of clusters lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lcn {
    At(u64),
    Sparse,
    Missing,
}

/// A non-resident stream: its cluster runs from VCN 0 and sizes.
struct Stream {
    runs: Vec<(u64, Lcn)>,
    size: u64,
    init: u64,
    /// Compression unit in clusters (0: not compressed).
    cu_clusters: u64,
}

/// What the MFT scan keeps of a record.
#[derive(Clone, Debug, Default)]
struct Node {
    seq: u16,
    in_use: bool,
    is_dir: bool,
    names: Vec<FileName>,
    std: Option<([u64; 3], u32)>,
    size: u64,
    has_data: bool,
    streams: Vec<String>,
}

/// The directory tree from the MFT scan.
struct Tree {
    children: HashMap<u64, Vec<Entry>>,
    orphans: Vec<Entry>,
}

/// An open NTFS volume.
pub struct Ntfs {
    vol: Source,
    boot: Boot,
    /// The MFT as a file over the volume.
    mft: Source,
    records: u64,
    label: Option<String>,
    tree: OnceLock<Tree>,
    bitmap: OnceLock<Option<Bitmap>>,
}

impl Ntfs {
    /// Open the NTFS on `vol`: boot sector (or its backup), then `$MFT`.
    pub fn open(vol: Source) -> Result<Self, GuestError> {
        let name = vol.name();
        let (boot, boot_at) = Self::boot(&vol)?;
        if boot_at != 0 {
            tracing::warn!("{name}: the NTFS boot sector is damaged; the backup at {boot_at:#x} is used");
        }
        let rs = boot.record_size;
        let mut last = None;
        for (what, lcn) in [("$MFT", boot.mft_lcn), ("$MFTMirr", boot.mftmirr_lcn)] {
            let at = lcn.saturating_mul(boot.cluster_size);
            match Self::bootstrap_mft(&vol, &boot, at) {
                Ok((mft, len)) => {
                    if what != "$MFT" {
                        tracing::warn!("{name}: MFT record 0 is damaged; $MFTMirr's copy is used");
                    }
                    let mut fs = Self {
                        vol,
                        boot,
                        mft,
                        records: (len / rs).min(MAX_RECORDS),
                        label: None,
                        tree: OnceLock::new(),
                        bitmap: OnceLock::new(),
                    };
                    fs.label = fs.volume_label();
                    return Ok(fs);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| corrupt("NTFS $MFT", 0, &name, "no MFT")))
    }

    /// The boot sector at 0, else the backup.
    fn boot(vol: &Source) -> Result<(Boot, u64), GuestError> {
        let name = vol.name();
        if vol.len() < 4096 {
            return Err(corrupt("NTFS boot sector", 0, &name, "the volume is shorter than 4 KiB"));
        }
        let first = read_vec(&**vol, 0, 512)?;
        let err = match Boot::parse(&first) {
            Ok(b) => return Ok((b, 0)),
            Err(e) => e,
        };
        for at in backup_candidates(vol.len(), &first) {
            if let Ok(b) = read_vec(&**vol, at, 512)
                && let Ok(boot) = Boot::parse(&b)
            {
                return Ok((boot, at));
            }
        }
        Err(corrupt("NTFS boot sector", 0, &name, format!("{err}, and no backup boot sector at the volume's end")))
    }

    /// `$MFT` from record 0 at volume offset `at`: its `$DATA` runs, followed into the
    /// extension records its `$ATTRIBUTE_LIST` names. Returns the MFT file and its length.
    fn bootstrap_mft(vol: &Source, boot: &Boot, at: u64) -> Result<(Source, u64), GuestError> {
        let name = vol.name();
        let rs = boot.record_size;
        if at.checked_add(rs).is_none_or(|e| e > vol.len()) {
            return Err(corrupt("NTFS $MFT record 0", at, &name, "lies outside the volume"));
        }
        let mut rec = read_vec(&**vol, at, rs as usize)?;
        ondisk::apply_fixups(&mut rec).map_err(|w| corrupt("NTFS $MFT record 0", at, &name, w))?;
        let h = RecordHeader::parse(&rec).map_err(|w| corrupt("NTFS $MFT record 0", at, &name, w))?;
        let (mut attrs, err) = ondisk::attributes(&rec, &h);
        if let Some(e) = err {
            tracing::warn!("{name}: $MFT record 0: {e}");
        }
        let first = stream_of(&attrs, "", &boot.clusters())
            .ok_or_else(|| corrupt("NTFS $MFT record 0", at, &name, "no non-resident $DATA"))?;
        let mk = |s: &Stream| -> Source {
            Arc::new(RunFile::new(format!("{name}:$MFT"), Arc::clone(vol), runs_of(s, boot.cluster_size), s.size))
        };
        let mut mft = mk(&first);
        if let Some(list) = attrs.iter().find(|a| a.kind == AT_ATTRIBUTE_LIST).cloned() {
            let bytes = value_bytes(vol, &list, boot.cluster_size, &boot.clusters());
            // Extension records of $MFT name record 0 as their base: 0, like a base record.
            for r in ondisk::attribute_list_records(&bytes).into_iter().filter(|&r| r != 0).take(MAX_EXTENSIONS) {
                if let Ok((eh, ea)) = read_record(&mft, rs, r)
                    && eh.base == 0
                    && eh.in_use()
                {
                    attrs.extend(ea);
                }
            }
            if let Some(full) = stream_of(&attrs, "", &boot.clusters()) {
                mft = mk(&full);
            }
        }
        // The MFT holds no more than its mapped clusters and the volume: a hostile size must
        // not make the scan read gigabytes of nothing.
        let len = mft.len().min(mapped_bytes(&attrs, boot)).min(vol.len());
        if len < rs.saturating_mul(16) {
            return Err(corrupt("NTFS $MFT record 0", at, &name, format!("$MFT is {len} bytes, under 16 records")));
        }
        Ok((mft, len))
    }

    fn volume_label(&self) -> Option<String> {
        let (_, attrs) = self.attrs_of(3).ok()?;
        attrs.iter().find(|a| a.kind == AT_VOLUME_NAME).and_then(|a| match &a.value {
            Value::Resident(v) => Some(crate::le::utf16le(v)).filter(|s| !s.is_empty()),
            _ => None,
        })
    }

    /// A record's header and attributes, extension records (from `$ATTRIBUTE_LIST`) included.
    fn attrs_of(&self, id: u64) -> Result<(RecordHeader, Vec<Attr>), GuestError> {
        let name = self.vol.name();
        if id >= self.records {
            return Err(corrupt(
                "NTFS MFT record",
                0,
                &name,
                format!("record {id} is past the MFT's {}", self.records),
            ));
        }
        let (h, mut attrs) = read_record(&self.mft, self.boot.record_size, id).map_err(|w| {
            corrupt("NTFS MFT record", id.saturating_mul(self.boot.record_size), &name, format!("record {id}: {w}"))
        })?;
        if let Some(list) = attrs.iter().find(|a| a.kind == AT_ATTRIBUTE_LIST).cloned() {
            let bytes = value_bytes(&self.vol, &list, self.boot.cluster_size, &self.boot.clusters());
            for r in ondisk::attribute_list_records(&bytes).into_iter().filter(|&r| r != id).take(MAX_EXTENSIONS) {
                if let Ok((eh, ea)) = read_record(&self.mft, self.boot.record_size, r)
                    && eh.base == id
                {
                    attrs.extend(ea);
                }
            }
        }
        Ok((h, attrs))
    }

    /// The scan of every MFT record, once.
    fn tree(&self) -> &Tree {
        self.tree.get_or_init(|| self.scan())
    }

    fn scan(&self) -> Tree {
        let rs = self.boot.record_size;
        let mut nodes: HashMap<u64, Node> = HashMap::new();
        // Contributions of extension records: (base, in use, node part).
        let mut ext: Vec<(u64, bool, Node)> = Vec::new();
        let per_read = ((1u64 << 20) / rs).max(1);
        let mut first = 0u64;
        while first < self.records {
            let n = per_read.min(self.records - first);
            let Ok(buf) = read_vec(&*self.mft, first * rs, (n * rs) as usize) else {
                first += n;
                continue;
            };
            for (i, raw) in buf.chunks_exact(rs as usize).enumerate() {
                let id = first + i as u64;
                if raw.get(0..4) != Some(b"FILE".as_slice()) {
                    continue;
                }
                let mut rec = raw.to_vec();
                if ondisk::apply_fixups(&mut rec).is_err() {
                    continue;
                }
                let Ok(h) = RecordHeader::parse(&rec) else { continue };
                let (attrs, _) = ondisk::attributes(&rec, &h);
                let mut node = Node { seq: h.seq, in_use: h.in_use(), is_dir: h.is_dir(), ..Node::default() };
                absorb(&mut node, &attrs);
                if h.base != 0 && h.base != id {
                    ext.push((h.base, h.in_use(), node));
                } else {
                    nodes.insert(id, node);
                }
            }
            first += n;
        }
        for (base, in_use, part) in ext {
            if let Some(n) = nodes.get_mut(&base)
                && n.in_use == in_use
            {
                n.names.extend(part.names);
                if part.has_data {
                    n.has_data = true;
                    n.size = n.size.max(part.size);
                }
                for s in part.streams {
                    if !n.streams.contains(&s) {
                        n.streams.push(s);
                    }
                }
            }
        }
        let mut children: HashMap<u64, Vec<Entry>> = HashMap::new();
        let mut orphans = Vec::new();
        let mut ids: Vec<&u64> = nodes.keys().collect();
        ids.sort();
        for &id in ids {
            let Some(node) = nodes.get(&id) else { continue };
            if id < FIRST_USER || (!node.in_use && node.names.is_empty() && !node.has_data) {
                continue;
            }
            let names = visible_names(&node.names);
            if names.is_empty() {
                if !node.in_use && !node.is_dir && node.has_data && node.size > 0 {
                    orphans.push(self.entry(id, node, &format!("#{id}"), None));
                }
                continue;
            }
            for f in names {
                let e = self.entry(id, node, &f.name, Some(f));
                let attach = nodes.get(&f.parent).is_some_and(|p| {
                    p.is_dir
                        && f.parent != id
                        && (p.seq == f.parent_seq
                            || f.parent_seq == 0
                            || (!p.in_use && p.seq == f.parent_seq.wrapping_add(1)))
                });
                if attach {
                    children.entry(f.parent).or_default().push(e);
                } else {
                    orphans.push(e);
                }
            }
        }
        Tree { children, orphans }
    }

    fn entry(&self, id: u64, node: &Node, name: &str, f: Option<&FileName>) -> Entry {
        let (times, attrs) = match (node.std, f) {
            (Some(s), _) => s,
            (None, Some(f)) => (f.times, 0),
            (None, None) => ([0; 3], 0),
        };
        let kind = if node.is_dir { Kind::Dir } else { Kind::File };
        let deleted = !node.in_use;
        Entry {
            name: name.to_string(),
            raw_name: None,
            kind,
            size: if kind == Kind::Dir { 0 } else { node.size },
            mtime: ondisk::unix_time(times[1]),
            atime: ondisk::unix_time(times[2]),
            ctime: ondisk::unix_time(times[0]),
            // Read-only (0x1) drops the write bits.
            mode: Some(match (kind, attrs & 1 != 0) {
                (Kind::Dir, _) => 0o040_755,
                (_, true) => 0o100_444,
                _ => 0o100_644,
            }),
            deleted,
            confidence: deleted.then(|| self.confidence(id)),
            streams: node.streams.clone(),
            id,
        }
    }

    /// High when the deleted record's unnamed `$DATA` clusters are all free in `$Bitmap`.
    fn confidence(&self, id: u64) -> Confidence {
        let Some(bm) = self.bitmap.get_or_init(|| self.read_bitmap()).as_ref() else { return Confidence::Low };
        let Ok((_, attrs)) = self.attrs_of(id) else { return Confidence::Low };
        let Some(s) = stream_of(&attrs, "", &self.boot.clusters()) else {
            return Confidence::High; // resident: it lives in the record itself
        };
        // At most MAX_CONFIDENCE_CLUSTERS looked at; beyond them the answer is Low.
        let mut budget = MAX_CONFIDENCE_CLUSTERS;
        for &(n, lcn) in &s.runs {
            if let Lcn::At(l) = lcn {
                if n > budget {
                    return Confidence::Low;
                }
                budget -= n;
                if bm.allocated(l, l.saturating_add(n)) != Some(0) {
                    return Confidence::Low;
                }
            }
        }
        Confidence::High
    }

    fn read_bitmap(&self) -> Option<Bitmap> {
        let (_, attrs) = self.attrs_of(6).ok()?;
        let s = stream_of(&attrs, "", &self.boot.clusters())?;
        let len = s.size.min(self.boot.clusters().div_ceil(8)).min(self.vol.len()).min(MAX_BITMAP);
        let f = RunFile::new("$Bitmap", Arc::clone(&self.vol), runs_of(&s, self.boot.cluster_size), len);
        read_vec(&f, 0, len as usize).ok().map(Bitmap::new)
    }

    /// How many runs of clusters the unnamed `$DATA` of `file` has (0 when resident): a
    /// fragmented file has more than one. For tests and reports.
    pub fn fragments(&self, file: &Entry) -> Result<usize, GuestError> {
        let (_, attrs) = self.attrs_of(file.id)?;
        let s = stream_of(&attrs, "", &self.boot.clusters());
        Ok(s.map_or(0, |s| s.runs.iter().filter(|r| matches!(r.1, Lcn::At(_))).count()))
    }

    /// Whether a stream is compressed (its attribute's flag 0x0001 and a compression unit):
    /// for tests and reports.
    pub fn is_compressed(&self, file: &Entry, stream: Option<&str>) -> Result<bool, GuestError> {
        let (_, attrs) = self.attrs_of(file.id)?;
        let want = stream.unwrap_or("");
        Ok(attrs.iter().any(|a| {
            a.kind == AT_DATA
                && a.name == want
                && a.flags & 1 != 0
                && matches!(a.value, Value::NonResident { start_vcn: 0, cu_shift: 1.., .. })
        }))
    }
}

/// Bytes of the unnamed `$DATA` mapped to clusters (not sparse, not missing).
fn mapped_bytes(attrs: &[Attr], boot: &Boot) -> u64 {
    stream_of(attrs, "", &boot.clusters()).map_or(0, |s| {
        s.runs
            .iter()
            .filter(|r| matches!(r.1, Lcn::At(_)))
            .fold(0u64, |a, r| a.saturating_add(r.0.saturating_mul(boot.cluster_size)))
    })
}

/// Where a backup boot sector may be: the volume's last 512-byte sector, the sector after
/// the primary's sector count (when it is readable), and the last 4 KiB sector.
fn backup_candidates(len: u64, first: &[u8]) -> Vec<u64> {
    let mut v = vec![(len / 512).saturating_sub(1) * 512];
    if let (Some(ts), Some(bps)) = (crate::le::u64_at(first, 0x28), crate::le::u16_at(first, 0x0B))
        && let Some(at) = ts.checked_mul(u64::from(bps)).filter(|&a| a > 0 && a.saturating_add(512) <= len)
    {
        v.push(at);
    }
    v.push((len / 4096).saturating_sub(1) * 4096);
    v.dedup();
    v
}

/// Read record `id` of the MFT, fixed up, with its attributes.
fn read_record(mft: &Source, rs: u64, id: u64) -> Result<(RecordHeader, Vec<Attr>), String> {
    let at = id.checked_mul(rs).filter(|&a| a.saturating_add(rs) <= mft.len()).ok_or("past the MFT")?;
    let mut rec = read_vec(&**mft, at, rs as usize).map_err(|e| e.to_string())?;
    ondisk::apply_fixups(&mut rec)?;
    let h = RecordHeader::parse(&rec)?;
    let (attrs, err) = ondisk::attributes(&rec, &h);
    if let Some(e) = err {
        tracing::debug!("MFT record {id}: {e}");
    }
    Ok((h, attrs))
}

/// Fold a record's attributes into the scan's node.
fn absorb(node: &mut Node, attrs: &[Attr]) {
    for a in attrs {
        match a.kind {
            AT_FILE_NAME => {
                if let Value::Resident(v) = &a.value
                    && let Ok(f) = FileName::parse(v)
                {
                    node.names.push(f);
                }
            }
            AT_STANDARD_INFORMATION => {
                if let Value::Resident(v) = &a.value {
                    node.std = Some(ondisk::std_info(v));
                }
            }
            AT_DATA if !a.name.is_empty() && !node.streams.contains(&a.name) => node.streams.push(a.name.clone()),
            AT_DATA if !a.name.is_empty() => {}
            AT_DATA => match &a.value {
                Value::Resident(v) => {
                    node.has_data = true;
                    node.size = v.len() as u64;
                }
                Value::NonResident { start_vcn: 0, size, .. } => {
                    node.has_data = true;
                    node.size = *size;
                }
                Value::NonResident { .. } => {}
            },
            _ => {}
        }
    }
}

/// The names a record shows: per parent, its long names; a DOS 8.3 name only when the record
/// has no other name in that parent. Duplicates dropped.
fn visible_names(names: &[FileName]) -> Vec<&FileName> {
    let mut out: Vec<&FileName> = Vec::new();
    for f in names {
        let long_in_parent = names.iter().any(|g| g.parent == f.parent && g.namespace != 2);
        if (f.namespace == 2 && long_in_parent) || out.iter().any(|g| g.parent == f.parent && g.name == f.name) {
            continue;
        }
        out.push(f);
    }
    out
}

/// One non-resident piece of a stream: start VCN, compression shift, size, initialized size,
/// runs.
type Piece<'a> = (u64, u16, u64, u64, &'a Vec<(u64, Option<u64>)>);

/// The non-resident stream `name` (`""`: the unnamed `$DATA`) from its pieces, sorted by
/// starting VCN; gaps between pieces are missing clusters. Runs past the volume are missing.
fn stream_of(attrs: &[Attr], name: &str, clusters: &u64) -> Option<Stream> {
    let mut pieces: Vec<Piece> = attrs
        .iter()
        .filter(|a| a.kind == AT_DATA && a.name == name)
        .filter_map(|a| match &a.value {
            Value::NonResident { start_vcn, cu_shift, size, init, runs } => {
                let cu = if a.flags & 1 != 0 { *cu_shift } else { 0 };
                Some((*start_vcn, cu, *size, *init, runs))
            }
            Value::Resident(_) => None,
        })
        .collect();
    pieces.sort_by_key(|p| p.0);
    let &(v0, cu, size, init, _) = pieces.first()?;
    if v0 != 0 {
        return None;
    }
    let mut runs = Vec::new();
    let mut vcn = 0u64;
    for (start, _, _, _, rl) in pieces {
        if start < vcn {
            continue; // overlapping pieces: the first wins
        }
        if start > vcn {
            runs.push((start - vcn, Lcn::Missing));
        }
        vcn = start;
        for &(n, lcn) in rl {
            let l = match lcn {
                None => Lcn::Sparse,
                Some(l) if l.checked_add(n).is_some_and(|e| e <= *clusters) => Lcn::At(l),
                Some(_) => Lcn::Missing,
            };
            runs.push((n, l));
            vcn = vcn.saturating_add(n);
        }
    }
    let cu_clusters = if cu == 0 || cu > 16 { 0 } else { 1u64 << cu };
    Some(Stream { runs, size, init: init.min(size), cu_clusters })
}

/// A stream's runs in bytes: data up to the initialized size, zeros (a hole) after it.
fn runs_of(s: &Stream, cs: u64) -> Vec<Run> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for &(n, lcn) in &s.runs {
        if pos >= s.init {
            break;
        }
        let len = n.saturating_mul(cs).min(s.init - pos);
        let target = match lcn {
            Lcn::At(l) => Target::Volume(l * cs),
            Lcn::Sparse => Target::Hole,
            Lcn::Missing => Target::Missing,
        };
        out.push(Run { offset: pos, len, target });
        pos += len;
    }
    if pos < s.size && pos >= s.init {
        out.push(Run { offset: pos, len: s.size - pos, target: Target::Hole });
    }
    out
}

/// An attribute's value bytes (resident, or non-resident read through its runs), capped.
fn value_bytes(vol: &Source, a: &Attr, cs: u64, clusters: &u64) -> Vec<u8> {
    match &a.value {
        Value::Resident(v) => v.clone(),
        Value::NonResident { .. } => {
            let Some(s) = stream_of(
                std::slice::from_ref(&Attr { kind: AT_DATA, name: String::new(), flags: 0, ..a.clone() }),
                "",
                clusters,
            ) else {
                return Vec::new();
            };
            let len = s.size.min(MAX_ATTR_LIST).min(vol.len());
            let f = RunFile::new("attribute list", Arc::clone(vol), runs_of(&s, cs), len);
            read_vec(&f, 0, len as usize).unwrap_or_default()
        }
    }
}

/// Units of a compressed stream from its runs; units after the runs end are holes (and not
/// kept).
fn units_of(s: &Stream, cs: u64) -> Vec<Unit> {
    let cu = s.cu_clusters;
    let total = s.size.div_ceil(cs.saturating_mul(cu).max(1)).min(MAX_UNITS);
    let mut units = Vec::new();
    let mut runs = s.runs.iter().copied();
    let mut cur: Option<(u64, Lcn)> = None;
    for _ in 0..total {
        if cur.is_none() && runs.len() == 0 {
            break;
        }
        let mut need = cu;
        let mut ranges = Vec::new();
        let mut sparse = 0u64;
        let mut missing = false;
        while need > 0 {
            let (n, l) = match cur.take() {
                Some(c) => c,
                None => match runs.next() {
                    Some(r) => r,
                    None => (need, Lcn::Sparse),
                },
            };
            let take = n.min(need);
            match l {
                Lcn::At(x) => ranges.push(x * cs..(x + take) * cs),
                Lcn::Sparse => sparse += take,
                Lcn::Missing => missing = true,
            }
            if n > take {
                cur = Some((n - take, if let Lcn::At(x) = l { Lcn::At(x + take) } else { l }));
            }
            need -= take;
        }
        units.push(if missing || (ranges.is_empty() && sparse == cu) {
            Unit::Hole
        } else if sparse == 0 {
            Unit::Plain(ranges)
        } else {
            Unit::Compressed(ranges)
        });
    }
    units
}

impl GuestFs for Ntfs {
    fn fs_type(&self) -> String {
        "NTFS".into()
    }
    fn label(&self) -> Option<String> {
        self.label.clone()
    }
    fn root(&self) -> Entry {
        Entry::bare_root(ROOT, Some(0o040_755))
    }
    fn list(&self, dir: &Entry) -> Result<Vec<Entry>, GuestError> {
        let t = self.tree();
        if dir.id == ORPHANS {
            return Ok(t.orphans.clone());
        }
        if dir.kind != Kind::Dir {
            return Err(GuestError::NotADirectory { path: dir.name.clone() });
        }
        let mut v = t.children.get(&dir.id).cloned().unwrap_or_default();
        if dir.id == ROOT && !t.orphans.is_empty() {
            v.push(Entry { name: "$Orphans".into(), ..Entry::bare_root(ORPHANS, Some(0o040_755)) });
        }
        Ok(v)
    }
    fn open(&self, file: &Entry, stream: Option<&str>) -> Result<Source, GuestError> {
        let (_, attrs) = self.attrs_of(file.id)?;
        let want = stream.unwrap_or("");
        let name = match stream {
            Some(s) => format!("{}:{}:{s}", self.vol.name(), file.name),
            None => format!("{}:{}", self.vol.name(), file.name),
        };
        let cs = self.boot.cluster_size;
        if let Some(v) = attrs.iter().find_map(|a| match &a.value {
            Value::Resident(v) if a.kind == AT_DATA && a.name == want => Some(v),
            _ => None,
        }) {
            return Ok(Arc::new(Tolerant::new(MemSource::new(name, v.clone()))));
        }
        let Some(s) = stream_of(&attrs, want, &self.boot.clusters()) else {
            let path = match stream {
                Some(st) => format!("{}:{st}", file.name),
                None => file.name.clone(),
            };
            return Err(GuestError::NotFound { path });
        };
        if attrs.iter().any(|a| a.kind == AT_DATA && a.name == want && a.flags & 0x4000 != 0) {
            tracing::warn!("{name}: encrypted (EFS); the raw ciphertext is read");
        }
        if s.cu_clusters > 0 {
            let unit = cs.saturating_mul(s.cu_clusters);
            if unit > 4 << 20 || s.size.div_ceil(unit) > MAX_UNITS {
                return Err(GuestError::Unsupported {
                    volume: self.vol.name(),
                    what: format!("{name}: compressed, {} bytes in units of {unit} bytes", s.size),
                });
            }
            return Ok(Arc::new(CompressedFile::new(name, Arc::clone(&self.vol), units_of(&s, cs), unit, s.size)));
        }
        Ok(Arc::new(RunFile::new(name, Arc::clone(&self.vol), runs_of(&s, cs), s.size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_tell_hole_plain_and_compressed_apart() {
        let s = Stream {
            // Unit 0: 4 clusters of data then 12 sparse (compressed); unit 1: all sparse;
            // unit 2: 16 allocated in two runs (plain).
            runs: vec![(4, Lcn::At(100)), (28, Lcn::Sparse), (10, Lcn::At(200)), (6, Lcn::At(300))],
            size: 3 * 16 * 512,
            init: 3 * 16 * 512,
            cu_clusters: 16,
        };
        let u = units_of(&s, 512);
        let first = 100 * 512..104 * 512;
        assert_eq!(u[0], Unit::Compressed(std::iter::once(first).collect()));
        assert_eq!(u[1], Unit::Hole);
        assert_eq!(u[2], Unit::Plain(vec![200 * 512..210 * 512, 300 * 512..306 * 512]));
    }

    #[test]
    fn dos_names_hide_behind_long_ones() {
        let f = |name: &str, ns, parent| FileName {
            parent,
            parent_seq: 1,
            flags: 0,
            size: 0,
            namespace: ns,
            name: name.into(),
            times: [0; 3],
        };
        let names = [f("LONGNA~1.TXT", 2, 5), f("long name.txt", 1, 5), f("OTHER~1", 2, 40)];
        let v: Vec<&str> = visible_names(&names).iter().map(|n| n.name.as_str()).collect();
        assert_eq!(v, ["long name.txt", "OTHER~1"]);
    }
}
