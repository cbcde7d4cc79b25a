//! Content for deleted files, where it survives in free space. A freed VMFS FD keeps its type,
//! addressing mode (ZLA) and block size, but its length and block map are cleared: content is
//! found again by what it starts with (a guest boot structure, .vmx/.vmsd/descriptor text, a
//! COWD header) at an allocation boundary in blocks no surviving file uses, and its length from
//! its own structures. Content is attached to a deleted item only when the match is unambiguous;
//! otherwise it becomes a `carved/` item of its own.

use super::{Catalog, Confidence, Item, Kind, State};
use crate::block::{Slice, Source, merge_ranges, read_vec};
use crate::le::{u32_at, u64_at};
use crate::recover::finding::{Finding, What};
use crate::vdisk::descriptor::Descriptor;
use crate::vdisk::snapshot::parse_dict;
use crate::vmfs::blockmap::ExtentKind;
use crate::vmfs::ondisk::{FS_DESCRIPTOR_OFFSET, FdType, Zla};
use crate::vmfs::{Vmfs, VmfsFile};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Longest text file taken from free space (a .vmx or descriptor is a few KiB).
pub(super) const TEXT_CAP: u64 = 64 * 1024;
/// Guest partitions end on MiB boundaries; the disk is at least that long.
const MIB: u64 = 1 << 20;
/// Largest COWD grain directory read (entries); real ones hold a few thousand.
const COWD_MAX_GDE: u64 = 1 << 20;
/// COWD grain tables hold 4096 entries of 4 bytes.
const COWD_GT_ENTRIES: u64 = 4096;

const RESIDENT_LOST: &str = "deleted: its data lived inside the FD (resident) and was cleared with it";

/// Find the content of the deleted files of every volume of `cat`, from the `findings` of
/// `sources`; attach it to the deleted items, or add `carved/` items.
pub fn carve(cat: &mut Catalog, sources: &[Source], findings: &[Finding]) {
    // Every distinct file system, where it starts, and what its surviving files use.
    let mut vols: Vec<FsSpace> = Vec::new();
    for vi in 0..cat.volumes.len() {
        let fs = Arc::clone(&cat.volumes[vi].fs);
        if vols.iter().any(|v| Arc::ptr_eq(&v.0, &fs)) {
            continue;
        }
        let labels: Vec<String> =
            cat.volumes.iter().filter(|v| Arc::ptr_eq(&v.fs, &fs)).map(|v| v.name.clone()).collect();
        let label = cat
            .volumes
            .iter()
            .find(|v| Arc::ptr_eq(&v.fs, &fs) && !v.previous)
            .map_or_else(|| cat.volumes[vi].name.clone(), |v| v.name.clone());
        let start = volume_start(&fs, sources, findings);
        let used = used_ranges(cat, &fs, &labels);
        vols.push((fs, labels, label, start, used));
    }
    for (fs, labels, label, start, used) in &vols {
        let Some((src, start)) = *start else {
            cat.notes.push(format!("{label}: volume start on the sources unknown; deleted files not carved"));
            continue;
        };
        // A file system formatted over another one at the same place: the older one's surviving
        // files are not free space of the newer one (nor the other way round).
        let mut all = used.clone();
        for (other, _, _, ostart, oused) in &vols {
            if !Arc::ptr_eq(other, fs) && *ostart == Some((src, start)) {
                all.extend(oused.iter().cloned());
            }
        }
        let mut v = Vol { fs: Arc::clone(fs), label: label.clone(), used: merge_ranges(all), found: Vec::new() };
        v.found = local_findings(&v, &sources[src], src, start, findings);
        carve_volume(cat, &v, labels);
    }
}

/// A file system, its volume names, its label, where it starts and what its files use.
type FsSpace = (Arc<Vmfs>, Vec<String>, String, Option<(usize, u64)>, Vec<Range<u64>>);

/// One volume being carved.
pub(super) struct Vol {
    pub(super) fs: Arc<Vmfs>,
    pub(super) label: String,
    /// Volume ranges surviving files (and the system files) use, merged.
    used: Vec<Range<u64>>,
    /// Findings on this volume, in volume offsets, sorted, lying in free space.
    pub(super) found: Vec<(u64, What)>,
}

impl Vol {
    pub(super) fn is_free(&self, r: &Range<u64>) -> bool {
        let i = self.used.partition_point(|u| u.end <= r.start);
        r.end <= self.fs.vol.len() && self.used.get(i).is_none_or(|u| u.start >= r.end)
    }
    /// Where the free run starting at `off` ends (the next used range or the volume end).
    pub(super) fn free_end(&self, off: u64) -> u64 {
        let i = self.used.partition_point(|u| u.end <= off);
        self.used.get(i).map_or(self.fs.vol.len(), |u| u.start.max(off))
    }
    pub(super) fn slice(&self, off: u64, len: u64) -> Source {
        Arc::new(Slice::new(Arc::clone(&self.fs.vol), off, len))
    }
}

/// The source and offset where the volume starts: from an FS descriptor or FD finding, checked
/// by reading the root FD both ways (a volume spanning devices maps its first device only).
fn volume_start(fs: &Vmfs, sources: &[Source], findings: &[Finding]) -> Option<(usize, u64)> {
    let root = fs.root().ok()?.vol_offset();
    let want = read_vec(fs.vol.as_ref(), root, 512).ok()?;
    let mut tried: Vec<(usize, u64)> = Vec::new();
    for f in findings {
        let start = match &f.what {
            What::FsDescriptor { uuid, .. } if *uuid == fs.desc.uuid.to_string() => {
                f.offset.checked_sub(FS_DESCRIPTOR_OFFSET)
            }
            What::Fd { self_offset, .. } => f.offset.checked_sub(*self_offset),
            _ => None,
        };
        let Some(start) = start else { continue };
        if tried.contains(&(f.source, start)) || tried.len() > 64 {
            continue;
        }
        tried.push((f.source, start));
        let Some(src) = sources.get(f.source) else { continue };
        if start.checked_add(root).is_some_and(|at| read_vec(src.as_ref(), at, 512).is_ok_and(|b| b == want)) {
            return Some((f.source, start));
        }
    }
    None
}

/// Volume ranges of every surviving file of this file system: live, orphaned and previous
/// items, and the system files (the FD area, bitmaps) the walk leaves out.
fn used_ranges(cat: &Catalog, fs: &Arc<Vmfs>, labels: &[String]) -> Vec<Range<u64>> {
    let mut addrs: Vec<u32> = cat
        .items
        .iter()
        .filter(|i| !matches!(i.state, State::Deleted | State::Carved) && labels.contains(&i.volume))
        .filter_map(|i| i.fd)
        .collect();
    // The sub-block file holds free sub-blocks too: the files in it count, not the file.
    if let Ok(root) = fs.root() {
        addrs.push(root.addr);
        if let Ok(es) = fs.read_dir(&root) {
            addrs.extend(es.iter().filter(|e| e.name != b".sbc.sf").map(|e| e.addr));
        }
    }
    // The system files also by their fixed addresses (FD cluster 0), for when the root
    // directory that lists them is lost: the FD area holds every resident file.
    addrs.extend(
        (0..16)
            .map(|r| crate::vmfs::address::make_fd(0, r))
            .filter(|&a| a != crate::vmfs::volume::SBC_FD)
            .filter(|&a| fs.read_fd(a).is_ok_and(|fd| fd.meta.kind == FdType::SysFile)),
    );
    addrs.sort_unstable();
    addrs.dedup();
    let mut out = Vec::new();
    for a in addrs {
        let Ok(fd) = fs.read_fd(a) else { continue };
        let f = VmfsFile::new(Arc::clone(fs), fd, format!("fd-{a:#x}"));
        let size = f.fd().meta.size;
        f.for_extents(0..size, |e| {
            if let ExtentKind::Data { vol_off } = e.kind {
                out.push(vol_off..vol_off.saturating_add(e.len));
            }
        });
    }
    merge_ranges(out)
}

/// The findings of interest on this volume, in volume offsets, in free space, each checked to
/// read the same through the volume as on the source.
fn local_findings(v: &Vol, src: &Source, si: usize, start: u64, findings: &[Finding]) -> Vec<(u64, What)> {
    let mut out = Vec::new();
    for f in findings.iter().filter(|f| f.source == si) {
        let wanted = matches!(
            f.what,
            What::Guest { .. }
                | What::Vmx { .. }
                | What::VmwareLog { .. }
                | What::Nvram { .. }
                | What::Vmsd { .. }
                | What::VmdkDescriptor { .. }
                | What::SparseHeader { .. }
        );
        let Some(off) = f.offset.checked_sub(start) else { continue };
        if !wanted || !v.is_free(&(off..off + 512)) {
            continue;
        }
        let same = match (read_vec(v.fs.vol.as_ref(), off, 512), read_vec(src.as_ref(), f.offset, 512)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same {
            out.push((off, f.what.clone()));
        }
    }
    out.sort_by_key(|(o, _)| *o);
    out
}

/// A deleted (or damaged) item of this volume still without content, with its freed FD's
/// addressing (`None`: the FD is unreadable).
#[derive(Clone)]
pub(super) struct Deleted {
    pub(super) idx: usize,
    pub(super) zla: Option<Zla>,
    pub(super) block_size: u64,
    pub(super) name: Option<String>,
    pub(super) folder: Option<String>,
}

/// Something found in free space, to attach or carve.
pub(super) struct Found {
    /// Volume offset where it starts, and its length.
    pub(super) off: u64,
    pub(super) len: u64,
    /// The content when it is not the `len` bytes at `off` (a thin file with holes).
    pub(super) content: Option<Source>,
    /// The volume bytes it takes (for overlap checks): `len` bytes at `off` unless set.
    pub(super) span: Option<u64>,
    /// The deleted item it belongs to, when known.
    pub(super) target: Option<usize>,
    /// Stem and extension for a `carved/` item's name.
    pub(super) carved_name: (String, String),
    pub(super) method: String,
    pub(super) confidence: Confidence,
    /// Volume offsets of the snapshot delta headers whose capacity gave its size.
    pub(super) sized_by: Vec<u64>,
}

impl Found {
    /// Whether volume offset `at` lies in the bytes it takes.
    pub(super) fn covers(&self, at: u64) -> bool {
        self.off <= at && at < self.off.saturating_add(self.span.unwrap_or(self.len))
    }
}

fn carve_volume(cat: &mut Catalog, v: &Vol, labels: &[String]) {
    let mut deleted = Vec::new();
    for (idx, it) in cat.items.iter_mut().enumerate() {
        let wanted = matches!(it.state, State::Deleted | State::Damaged);
        if !wanted || it.kind != Kind::File || it.content.is_some() || !labels.contains(&it.volume) {
            continue;
        }
        let Some(addr) = it.fd else { continue };
        // A damaged entry's FD is unreadable: its addressing is unknown, its unit at most a
        // file block.
        let (zla, block_size) = if it.state == State::Damaged {
            (None, v.fs.geo.fbs)
        } else {
            let Ok(fd) = v.fs.read_fd(addr) else { continue };
            if fd.meta.kind != FdType::File {
                continue;
            }
            if fd.meta.zla == Zla::Resident {
                it.missing = vec![RESIDENT_LOST.into()];
                continue;
            }
            (Some(fd.meta.zla), fd.meta.block_size)
        };
        // A name the rebuild made up from the FD address is no name.
        let (folder, name) = match it.original.as_deref().and_then(|o| o.rsplit_once('/')) {
            Some((d, n)) if n != format!("fd-{addr:#x}") => {
                (Some(d.rsplit('/').next().unwrap_or(d).to_string()), Some(n.to_string()))
            }
            _ => (None, None),
        };
        deleted.push(Deleted { idx, zla, block_size, name, folder });
    }
    let mut out = texts(v, &deleted);
    out.extend(super::carve_text::logs(v, &deleted));
    out.extend(super::carve_text::nvram(v, &deleted));
    let (ses, ses_why) = super::carve_sesparse::sesparse(v, &deleted);
    out.extend(ses);
    let mut descs = descriptor_sizes(v);
    let missing = super::carve_names::missing_extents(cat, labels);
    descs.extend(missing.iter().map(|m| m.0.clone()));
    let first_carved = cat.items.len();
    // Pointer blocks that survive map a disk exactly (thin ones too): they come first.
    let (thin, thin_notes) = super::carve_pb::thin_disks(v, &deleted, &descs);
    cat.notes.extend(thin_notes);
    let thin: Vec<Found> = thin.into_iter().filter(|d| !out.iter().any(|f| f.covers(d.off))).collect();
    out.extend(thin);
    let left: Vec<Deleted> = deleted.iter().filter(|d| !out.iter().any(|f| f.target == Some(d.idx))).cloned().collect();
    let found_disks = disks(v, &left, &descs);
    // A guest table inside a delta's grains is the delta's, not a disk of its own.
    let found_disks: Vec<Found> = found_disks.into_iter().filter(|d| !out.iter().any(|f| f.covers(d.off))).collect();
    out.extend(found_disks);
    out.extend(cowd(v, &deleted, &out));
    super::carve_names::tie_to_delta_folders(&mut out, &deleted, v);
    // One finding per item: two claims on one deleted file mean neither is sure.
    let mut claims: HashMap<usize, usize> = HashMap::new();
    for f in &out {
        if let Some(t) = f.target {
            *claims.entry(t).or_default() += 1;
        }
    }
    let mut carved_names = Vec::new();
    for f in out {
        let content = f.content.clone().unwrap_or_else(|| v.slice(f.off, f.len));
        match f.target.filter(|t| claims.get(t) == Some(&1)) {
            Some(t) => {
                let it = &mut cat.items[t];
                it.content = Some(content);
                it.size = f.len;
                it.method = format!("{}; {}", it.method, f.method);
                it.confidence = it.confidence.min(f.confidence);
                it.missing.clear();
            }
            None => {
                let name = format!("{}-at-{:#x}{}", f.carved_name.0, f.off, f.carved_name.1);
                carved_names.push(format!("carved/{}/{name}", v.label));
                cat.items.push(Item {
                    path: vec!["carved".into(), v.label.clone(), name],
                    kind: Kind::File,
                    state: State::Carved,
                    original: None,
                    volume: v.label.clone(),
                    fd: None,
                    size: f.len,
                    mtime: 0,
                    method: f.method,
                    confidence: f.confidence,
                    content: Some(content),
                    missing: Vec::new(),
                });
            }
        }
    }
    super::carve_names::name_by_missing_extents(cat, v, &missing, first_carved);
    super::carve_names::name_by_vmx(cat, v, labels, first_carved);
    // Deleted files left without content: say why, and where a carved copy may be.
    for d in &deleted {
        let it = &mut cat.items[d.idx];
        if it.content.is_some() {
            continue;
        }
        let name = d.name.as_deref().unwrap_or("");
        if name.ends_with("-sesparse.vmdk") {
            if ses_why.is_empty() {
                it.missing.push("SEsparse delta: no SEsparse header in free space".into());
            }
            it.missing.extend(ses_why.iter().cloned());
        } else if !carved_names.is_empty() && is_flat_candidate(d) {
            it.missing.push(format!("not matched for sure to a carved copy; candidates: {}", carved_names.join(", ")));
        } else if matches!(d.zla, Some(Zla::SubBlock | Zla::FileBlock) | None) {
            it.missing.push("no structure in free space identifies its first block and length".into());
        }
    }
}

// ---- text files -------------------------------------------------------------------------

/// .vmx, .vmsd and descriptor text in free space, matched to the deleted file of its folder.
fn texts(v: &Vol, deleted: &[Deleted]) -> Vec<Found> {
    let mut out = Vec::new();
    for (off, what) in &v.found {
        let (kind, ext) = match what {
            What::Vmx { .. } => ("vmx", ".vmx"),
            What::Vmsd { .. } => ("vmsd", ".vmsd"),
            What::VmdkDescriptor { .. } => ("descriptor", ".vmdk"),
            _ => continue,
        };
        let Some(text) = read_text(v, *off) else { continue };
        let matches: Vec<&Deleted> = deleted
            .iter()
            .filter(|d| d.name.as_deref().is_some_and(|n| n.ends_with(ext)) && names_it(what, &text, d))
            .collect();
        // Text longer than the freed file's allocation unit continued elsewhere: not all here.
        let target = match matches.as_slice() {
            [d] if text.len() as u64 <= d.block_size && d.zla != Some(Zla::Resident) => Some(d.idx),
            _ => None,
        };
        out.push(Found {
            content: None,
            span: None,
            off: *off,
            len: text.len() as u64,
            target,
            carved_name: (kind.to_string(), ext.to_string()),
            method: format!("{kind} text found in free space at volume offset {off:#x}, up to its first NUL"),
            confidence: Confidence::Medium,
            sized_by: Vec::new(),
        });
    }
    out
}

/// The text at `off`, up to the first NUL, the cap or the end of the free run.
pub(super) fn read_text(v: &Vol, off: u64) -> Option<Vec<u8>> {
    let end = v.free_end(off).min(off.saturating_add(TEXT_CAP));
    let len = usize::try_from(end.checked_sub(off)?).ok()?;
    let mut b = read_vec(v.fs.vol.as_ref(), off, len).ok()?;
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b.truncate(n);
    (!b.is_empty()).then_some(b)
}

/// Whether the text names deleted file `d`: a .vmx by its display or disk names and the VM
/// folder, a .vmsd by its snapshot file names, a descriptor by its extent files.
fn names_it(what: &What, text: &[u8], d: &Deleted) -> bool {
    let (Some(name), Some(folder)) = (d.name.as_deref(), d.folder.as_deref()) else { return false };
    let s = String::from_utf8_lossy(text);
    match what {
        What::Vmx { .. } => {
            let dict = parse_dict(&s);
            let stem = name.trim_end_matches(".vmx");
            dict.get("displayname").or_else(|| dict.get("displayName")).is_some_and(|n| n == folder || n == stem)
                || dict.iter().any(|(k, val)| k.to_ascii_lowercase().ends_with(".filename") && val.starts_with(folder))
        }
        What::Vmsd { .. } => {
            let stem = name.trim_end_matches(".vmsd");
            let dict = parse_dict(&s);
            dict.iter().any(|(k, val)| {
                k.to_ascii_lowercase().ends_with(".filename") && val.starts_with(&format!("{stem}-Snapshot"))
            })
        }
        What::VmdkDescriptor { .. } => Descriptor::parse(name, text).is_ok_and(|desc| {
            desc.extents.iter().any(|e| e.file.as_deref().is_some_and(|f| descriptor_name(f) == name))
        }),
        _ => false,
    }
}

/// The descriptor that names an extent file: "vm-flat.vmdk" → "vm.vmdk".
fn descriptor_name(extent: &str) -> String {
    let stem = extent.trim_end_matches(".vmdk");
    let stem = ["-flat", "-delta", "-sesparse"].iter().find_map(|s| stem.strip_suffix(s)).unwrap_or(stem);
    format!("{stem}.vmdk")
}

/// A flat extent a descriptor names: file name, bytes, and which descriptor says so.
pub(super) type ExtentSize = (String, u64, String);

/// Flat extents named by descriptors in free space.
fn descriptor_sizes(v: &Vol) -> Vec<ExtentSize> {
    let mut out = Vec::new();
    for (off, what) in &v.found {
        let What::VmdkDescriptor { .. } = what else { continue };
        let Some(text) = read_text(v, *off) else { continue };
        let Ok(d) = Descriptor::parse("carved", &text) else { continue };
        for (f, len) in flat_extents(&d) {
            out.push((f, len, format!("the deleted descriptor at volume offset {off:#x}")));
        }
    }
    out
}

/// The flat extents a descriptor names: file name and bytes.
pub(super) fn flat_extents(d: &Descriptor) -> impl Iterator<Item = (String, u64)> + '_ {
    d.extents
        .iter()
        .filter(|e| e.kind == "VMFS" || e.kind == "FLAT")
        .filter_map(|e| Some((e.file.clone()?, e.sectors.checked_mul(512)?)))
}

// ---- flat disks -------------------------------------------------------------------------

/// A deleted file that may be a flat disk: named so, or unnamed, and addressed by file blocks.
pub(super) fn is_flat_candidate(d: &Deleted) -> bool {
    let named = d.name.as_deref().is_none_or(|n| n.ends_with("-flat.vmdk"));
    named && !matches!(d.zla, Some(Zla::SubBlock | Zla::Resident))
}

/// Guest disks (MBR or GPT) starting on a file block in free space, each a contiguous run.
fn disks(v: &Vol, deleted: &[Deleted], descs: &[ExtentSize]) -> Vec<Found> {
    let fbs = v.fs.geo.fbs.max(512);
    let vol_len = v.fs.vol.len();
    // Starts of other structures bound a disk that has no exact size of its own.
    let starts: Vec<u64> = v
        .found
        .iter()
        .filter(|(o, w)| match w {
            What::Guest { fs, .. } => (fs == "mbr" || fs == "gpt") && o % fbs == 0,
            What::SparseHeader { .. } => true,
            _ => false,
        })
        .map(|(o, _)| *o)
        .collect();
    let capacities: Vec<(u64, u64)> = v
        .found
        .iter()
        .filter_map(|(o, w)| if let What::SparseHeader { capacity, .. } = w { Some((*capacity, *o)) } else { None })
        .collect();
    let mut out: Vec<Found> = Vec::new();
    for (off, what) in &v.found {
        let What::Guest { fs, size: Some(size) } = what else { continue };
        if off % fbs != 0 || !(fs == "mbr" || fs == "gpt") {
            continue;
        }
        // Inside a disk already taken (a nested table, or a copy in a delta's grain).
        if out.iter().any(|f| f.covers(*off)) {
            continue;
        }
        let free_end = v.free_end(*off);
        let next = starts.iter().copied().filter(|s| s > off).min().unwrap_or(vol_len);
        let run = free_end.min(next) - off;
        let mut sized_by = Vec::new();
        let (len, mut how, mut conf) = if fs == "gpt" {
            if !gpt_backup_ok(v, *off, *size) {
                continue;
            }
            (*size, "size from the GPT backup header".to_string(), Confidence::Medium)
        } else {
            let least = size.div_ceil(MIB).saturating_mul(MIB);
            match delta_capacity(&capacities, least, run) {
                Some((c, by)) => {
                    sized_by = by;
                    (
                        c,
                        "size from the capacity of a snapshot delta header in free space, above the last partition's end and within the free run".to_string(),
                        Confidence::Low,
                    )
                }
                None => (
                    least,
                    "size from the end of the last MBR partition, rounded up to 1 MiB".to_string(),
                    Confidence::Low,
                ),
            }
        };
        // A descriptor in free space naming a deleted flat file of a size that fits wins.
        let mut target = None;
        let mut len = len;
        let room = free_end - off;
        if let Some(n) = by_descriptor(descs, deleted, |d| if fs == "gpt" { d == len } else { d >= len && d <= room }) {
            (len, how, target) = n;
            conf = Confidence::Medium;
            sized_by.clear();
        }
        if len == 0 || len > vol_len || !v.is_free(&(*off..off.saturating_add(len))) {
            continue;
        }
        out.push(Found {
            content: None,
            span: None,
            off: *off,
            len,
            target,
            carved_name: ("disk".into(), ".vmdk-flat".into()),
            method: format!("contiguous run from the guest {} at volume offset {off:#x}; {how}", fs.to_uppercase()),
            confidence: conf,
            sized_by,
        });
    }
    // With no name to go by, one unmatched disk and one deleted flat file are each other's.
    let flats: Vec<&Deleted> =
        deleted.iter().filter(|d| is_flat_candidate(d) && !out.iter().any(|f| f.target == Some(d.idx))).collect();
    let loose: Vec<usize> = (0..out.len()).filter(|&i| out[i].target.is_none()).collect();
    if let ([d], [i]) = (flats.as_slice(), loose.as_slice()) {
        out[*i].target = Some(d.idx);
        out[*i].method.push_str("; the only deleted flat disk of the volume without content");
    }
    out
}

/// The one capacity among snapshot delta headers (capacity, header offset) between `least` and
/// `most`, and the headers that give it.
pub(super) fn delta_capacity(caps: &[(u64, u64)], least: u64, most: u64) -> Option<(u64, Vec<u64>)> {
    let fit: Vec<&(u64, u64)> = caps.iter().filter(|(c, _)| *c >= least && *c <= most).collect();
    let first = fit.first()?.0;
    fit.iter().all(|(c, _)| *c == first).then(|| (first, fit.iter().map(|(_, o)| *o).collect()))
}

/// The one descriptor extent in free space whose size `fits`: that size, how it was found, and
/// the deleted file it names when exactly one has that name.
pub(super) fn by_descriptor(
    descs: &[ExtentSize],
    deleted: &[Deleted],
    fits: impl Fn(u64) -> bool,
) -> Option<(u64, String, Option<usize>)> {
    let found: Vec<&ExtentSize> = descs.iter().filter(|(_, d, _)| fits(*d)).collect();
    let [(name, d, which)] = found.as_slice() else { return None };
    let named: Vec<&Deleted> = deleted.iter().filter(|x| x.name.as_deref() == Some(name.as_str())).collect();
    let target = if let [x] = named.as_slice() { Some(x.idx) } else { None };
    Some((*d, format!("size from {which}, naming {name}"), target))
}

/// The GPT backup header sits in the disk's last sector and names itself there.
fn gpt_backup_ok(v: &Vol, off: u64, size: u64) -> bool {
    if size < 2 * 512 || !size.is_multiple_of(512) {
        return false;
    }
    let Some(at) = off.checked_add(size - 512) else { return false };
    if at.saturating_add(512) > v.fs.vol.len() {
        return false;
    }
    read_vec(v.fs.vol.as_ref(), at, 512)
        .is_ok_and(|b| b.starts_with(b"EFI PART") && u64_at(&b, 0x18) == Some(size / 512 - 1))
}

// ---- COWD deltas ------------------------------------------------------------------------

/// COWD (vmfsSparse) deltas in free space: the header's `freeSector` is the file's end; every
/// grain directory and table entry must point inside it, and the run must be free.
fn cowd(v: &Vol, deleted: &[Deleted], taken: &[Found]) -> Vec<Found> {
    let mut out = Vec::new();
    for (off, what) in &v.found {
        let What::SparseHeader { format, .. } = what else { continue };
        if format != "COWD" || taken.iter().any(|f| f.covers(*off)) {
            continue;
        }
        let Some(len) = cowd_len(v, *off) else { continue };
        let one_block = off % v.fs.geo.fbs.max(1) + len <= v.fs.geo.fbs;
        let deltas: Vec<&Deleted> = deleted
            .iter()
            .filter(|d| d.name.as_deref().is_some_and(|n| n.ends_with("-delta.vmdk")) && d.zla != Some(Zla::SubBlock))
            .collect();
        let target = match deltas.as_slice() {
            [d] => Some(d.idx),
            _ => None,
        };
        out.push(Found {
            content: None,
            span: None,
            off: *off,
            len,
            target,
            carved_name: ("delta".into(), "-delta.vmdk".into()),
            method: format!(
                "COWD header at volume offset {off:#x}; length from its freeSector, every grain inside it{}",
                if one_block { "" } else { "; assumed contiguous over several blocks" }
            ),
            confidence: if one_block { Confidence::Medium } else { Confidence::Low },
            sized_by: Vec::new(),
        });
    }
    out
}

fn cowd_len(v: &Vol, off: u64) -> Option<u64> {
    let h = read_vec(v.fs.vol.as_ref(), off, 512).ok()?;
    let (grain, gd, gde, free) = (
        u64::from(u32_at(&h, 16)?),
        u64::from(u32_at(&h, 20)?),
        u64::from(u32_at(&h, 24)?),
        u64::from(u32_at(&h, 28)?),
    );
    let len = free.checked_mul(512)?;
    if grain == 0 || gd < 4 || gde == 0 || gde > COWD_MAX_GDE || len == 0 || !v.is_free(&(off..off.checked_add(len)?)) {
        return None;
    }
    if v.free_end(off) < off + len || (gd + (gde * 4).div_ceil(512)) > free {
        return None;
    }
    let gdb = read_vec(v.fs.vol.as_ref(), off + gd * 512, usize::try_from(gde * 4).ok()?).ok()?;
    // No more tables than fit in the file: a hostile directory naming one table a million
    // times is not read a million times.
    let mut tables = len / (COWD_GT_ENTRIES * 4) + 1;
    for e in gdb.chunks_exact(4).map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))) {
        if e == 0 {
            continue;
        }
        tables = tables.checked_sub(1)?;
        if e < gd || e + COWD_GT_ENTRIES * 4 / 512 > free {
            return None;
        }
        let gt = read_vec(v.fs.vol.as_ref(), off + e * 512, (COWD_GT_ENTRIES * 4) as usize).ok()?;
        for g in gt.chunks_exact(4).map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))) {
            // 0: in the parent; 1: a zeroed grain (see `vdisk::cowd`).
            if g > 1 && (g < gd || g + grain > free) {
                return None;
            }
        }
    }
    Some(len)
}

/// Files of a file system that was formatted over: the bytes of theirs where the scan saw
/// metadata of the new one at its own place (cluster headers, FDs, heartbeats: each names its
/// own volume offset) or where the new file system's files now lie were overwritten. They are
/// copied as they read now, and each such range is named in the item's `missing`.
pub(super) fn mark_overwritten(cat: &mut Catalog, sources: &[Source], findings: &[Finding]) {
    let prev: Vec<(String, Arc<Vmfs>)> =
        cat.volumes.iter().filter(|v| v.previous).map(|v| (v.name.clone(), Arc::clone(&v.fs))).collect();
    for (name, pfs) in prev {
        let Some((src, start)) = volume_start(&pfs, sources, findings) else { continue };
        let current: Vec<(String, Arc<Vmfs>)> = cat
            .volumes
            .iter()
            .filter(|v| !v.previous && volume_start(&v.fs, sources, findings) == Some((src, start)))
            .map(|v| (v.name.clone(), Arc::clone(&v.fs)))
            .collect();
        let Some((_, cur)) = current.first() else { continue };
        let mut taken = Vec::new();
        for f in findings.iter().filter(|f| f.source == src && f.offset >= start) {
            let at = f.offset - start;
            let len = match &f.what {
                What::ResourceCluster { self_offset, .. } if *self_offset == at => cur.geo.cluster_header_size,
                What::Fd { self_offset, .. } if *self_offset == at => cur.geo.fd_size as u64,
                What::Heartbeat { self_offset } if *self_offset == at => 512,
                _ => continue,
            };
            taken.push(at..at + len);
        }
        // The new root directory, and the header sector each new system file starts with.
        if let Ok(root) = cur.root() {
            let mut heads: Vec<(crate::vmfs::Fd, u64)> = vec![(root.clone(), root.meta.size)];
            if let Ok(es) = cur.read_dir(&root) {
                heads.extend(
                    es.iter()
                        .filter(|e| e.kind == FdType::SysFile)
                        .filter_map(|e| cur.read_fd(e.addr).ok())
                        .map(|fd| (fd, 512)),
                );
            }
            for (fd, len) in heads {
                let len = len.min(fd.meta.size);
                VmfsFile::new(Arc::clone(cur), fd, String::new()).for_extents(0..len, |e| {
                    if let ExtentKind::Data { vol_off } = e.kind {
                        taken.push(vol_off..vol_off + e.len);
                    }
                });
            }
        }
        // The new file system's own files.
        let labels: Vec<String> = current.iter().map(|c| c.0.clone()).collect();
        for item in cat.items.iter().filter(|i| labels.contains(&i.volume) && i.state == State::Live) {
            let Some(fd) = item.fd.and_then(|a| cur.read_fd(a).ok()) else { continue };
            VmfsFile::new(Arc::clone(cur), fd, String::new()).for_extents(0..item.size, |e| {
                if let ExtentKind::Data { vol_off } = e.kind {
                    taken.push(vol_off..vol_off + e.len);
                }
            });
        }
        let taken = merge_ranges(taken);
        if taken.is_empty() {
            continue;
        }
        for item in cat.items.iter_mut().filter(|i| i.state == State::Previous && i.volume == name) {
            let Some(fd) = item.fd.and_then(|a| pfs.read_fd(a).ok()) else { continue };
            let f = VmfsFile::new(Arc::clone(&pfs), fd, name.clone());
            let mut hit = Vec::new();
            f.for_extents(0..item.size, |e| {
                if let ExtentKind::Data { vol_off } = e.kind {
                    let i = taken.partition_point(|t| t.end <= vol_off);
                    for t in taken[i..].iter().take_while(|t| t.start < vol_off + e.len) {
                        let s = t.start.max(vol_off);
                        let en = t.end.min(vol_off + e.len);
                        hit.push(e.file_off + (s - vol_off)..e.file_off + (en - vol_off));
                    }
                }
            });
            let hit = merge_ranges(hit);
            if !hit.is_empty() {
                let list: Vec<String> = hit.iter().take(8).map(|r| format!("{:#x}..{:#x}", r.start, r.end)).collect();
                item.missing.push(format!(
                    "overwritten: bytes {}{} hold the new file system's metadata or files now (copied as they read)",
                    list.join(", "),
                    if hit.len() > 8 { ", ..." } else { "" }
                ));
                item.confidence = item.confidence.min(Confidence::Medium);
            }
        }
    }
}
