//! From findings to a catalogue: which volumes exist (opened as they are, or through a rebuilt
//! descriptor), which FDs each holds, and for every FD whether it is live, orphaned, deleted
//! or left from a file system formatted over it. Names come from every directory block the scan
//! saw; what has no name gets one made from what it contains, and says so.

mod carve;
mod carve_names;
mod carve_pb;
mod carve_sesparse;
mod carve_text;
pub mod item;
mod names;
mod regen;
pub mod synth;

pub use carve_sesparse::Layout as SesparseLayout;
pub use carve_text::nvram_len;
pub use item::{Confidence, Item, Kind, State};

use super::finding::{Finding, What};
use crate::block::{Slice, Source, read_vec};
use crate::datastore;
use crate::vmfs::ondisk::FdType;
use crate::vmfs::volume::ROOT_FD;
use crate::vmfs::{Fd, Vmfs, VmfsFile, WalkItem};
use names::Names;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// One volume the rebuild works on.
pub struct Volume {
    /// Name in the output tree: the label, or a made-up one.
    pub name: String,
    pub version: u32,
    /// How it was opened.
    pub how: String,
    pub fs: Arc<Vmfs>,
    /// True for a file system that was formatted over.
    pub previous: bool,
}

/// The result: volumes, items, and notes for the report.
#[derive(Default)]
pub struct Catalog {
    pub volumes: Vec<Volume>,
    pub items: Vec<Item>,
    pub notes: Vec<String>,
}

/// An FD finding, with the source it was seen on.
#[derive(Clone, Copy, Debug)]
struct SeenFd {
    source: usize,
    offset: u64,
    self_offset: u64,
    addr: u32,
    links: u32,
    fd_type: u32,
    block_size: u64,
    ctime: u32,
}

/// Rebuild what `findings` (of `sources`, in order) describe.
pub fn rebuild(sources: &[Source], findings: &[Finding]) -> Catalog {
    let mut cat = Catalog::default();
    let names = Names::from_findings(findings);
    let (stores, notes) = datastore::find(sources);
    cat.notes.extend(notes);
    // FD groups: one per (source, volume start, VMFS6 or not).
    let mut groups: BTreeMap<(usize, u64, bool), Vec<SeenFd>> = BTreeMap::new();
    for f in findings {
        if let What::Fd { self_offset, addr, links, fd_type, block_size, ctime, v6, .. } = f.what {
            let Some(start) = f.offset.checked_sub(self_offset) else { continue };
            let s = SeenFd { source: f.source, offset: f.offset, self_offset, addr, links, fd_type, block_size, ctime };
            groups.entry((f.source, start, v6)).or_default().push(s);
        }
    }
    let mut used_stores = HashSet::new();
    for ((src, start, v6), fds) in &groups {
        // Tiny groups are FD-shaped garbage or a lone copy: a volume has its system files.
        if fds.len() < 4 {
            continue;
        }
        let store = stores.iter().enumerate().find(|(_, s)| same_volume(sources, &s.volume.source, fds));
        // The volume as the reader opened it, or through a descriptor rebuilt from its FDs
        // (none readable, or the other flavour: a file system formatted over).
        let opened: Option<(Arc<Vmfs>, String)> = match store {
            Some((i, s)) => match &s.fs {
                Ok(fs) if fs.geo.v6 == *v6 => {
                    used_stores.insert(i);
                    Some((Arc::clone(fs), "FS descriptor".into()))
                }
                other => {
                    if let Err(e) = other {
                        cat.notes.push(format!("volume at {} offset {start:#x}: {e}", sources[*src].name()));
                    }
                    synthesize(&s.volume.source, *v6, fds, &mut cat.notes)
                }
            },
            None => {
                let len = sources[*src].len().saturating_sub(*start);
                let vol: Source = Arc::new(Slice::new(Arc::clone(&sources[*src]), *start, len));
                synthesize(&vol, *v6, fds, &mut cat.notes)
            }
        };
        let Some((fs, how)) = opened else { continue };
        let flavour_differs = store.is_some_and(|(_, s)| s.fs.as_ref().is_ok_and(|f| f.geo.v6 != *v6));
        volume_items(&mut cat, &names, fs, how, fds, flavour_differs);
    }
    // Datastores the scan saw no FDs of (a scan of another device, or FDs all unreadable).
    for (i, s) in stores.iter().enumerate() {
        if let (false, Ok(fs)) = (used_stores.contains(&i), &s.fs)
            && !cat.volumes.iter().any(|v| v.fs.desc.uuid == fs.desc.uuid && !v.previous)
        {
            volume_items(&mut cat, &names, Arc::clone(fs), "FS descriptor".into(), &[], false);
        }
    }
    carve::carve(&mut cat, sources, findings);
    carve::mark_overwritten(&mut cat, sources, findings);
    // After carving: a recovered extent may need its descriptor written.
    regen::regenerate(&mut cat.items);
    cat
}

/// Whether `vol` is the volume the FDs were seen on: the first FD's bytes read the same both ways.
fn same_volume(sources: &[Source], vol: &Source, fds: &[SeenFd]) -> bool {
    let Some(f) = fds.iter().find(|f| f.addr == ROOT_FD).or(fds.first()) else { return false };
    let (Ok(a), Ok(b)) =
        (read_vec(vol.as_ref(), f.self_offset, 512), read_vec(sources[f.source].as_ref(), f.offset, 512))
    else {
        return false;
    };
    a == b
}

fn synthesize(vol: &Source, v6: bool, fds: &[SeenFd], notes: &mut Vec<String>) -> Option<(Arc<Vmfs>, String)> {
    let sys: Vec<synth::SystemFd> = fds
        .iter()
        .filter(|f| f.fd_type == FdType::SysFile.raw())
        .map(|f| synth::SystemFd { addr: f.addr, self_offset: f.self_offset, block_size: f.block_size })
        .collect();
    match synth::open(vol, v6, &sys) {
        Ok(s) => Some((s.fs, s.how)),
        Err(e) => {
            notes.push(format!(
                "{}: VMFS{} volume seen by its FDs, not opened: {e}",
                vol.name(),
                if v6 { 6 } else { 5 }
            ));
            None
        }
    }
}

/// Everything one volume offers: the live tree, orphans, deleted FDs, and FDs older than the
/// file system (a re-format) as a previous volume on the same geometry.
fn volume_items(cat: &mut Catalog, names: &Names, fs: Arc<Vmfs>, how: String, fds: &[SeenFd], all_previous: bool) {
    let label = volume_name(cat, &fs, all_previous);
    let mut reached: HashSet<u32> = HashSet::new();
    reached.insert(ROOT_FD);
    if !all_previous {
        live_tree(cat, &fs, &label, &mut reached);
    }
    // Unreached FDs, read through this volume's geometry (a stale copy at an address the
    // geometry puts elsewhere is not this volume's).
    let mut orphans = Vec::new();
    let mut previous = Vec::new();
    let mut deleted = Vec::new();
    let created = fs.desc.creation_time;
    for f in fds {
        if reached.contains(&f.addr) || f.fd_type == FdType::SysFile.raw() {
            continue;
        }
        let Ok(raw) = read_vec(fs.vol.as_ref(), f.self_offset, fs.geo.fd_size) else { continue };
        let Ok(fd) = Fd::parse(raw, f.addr, f.self_offset, &fs.geo) else { continue };
        if fs.read_fd(f.addr).map(|x| x.vol_offset()).ok() != Some(f.self_offset) {
            continue;
        }
        if f.links == 0 {
            deleted.push(fd);
        } else if all_previous || (created > 0 && f.ctime + 60 < created) {
            previous.push(fd);
        } else {
            orphans.push(fd);
        }
    }
    let vol = Volume {
        name: label.clone(),
        version: fs.desc.vmfs_version(),
        how: how.clone(),
        fs: Arc::clone(&fs),
        previous: all_previous,
    };
    cat.volumes.push(vol);
    if !orphans.is_empty() {
        detached(cat, names, &fs, &label, &orphans, State::Orphaned, &["lost+found".to_string(), label.clone()]);
    }
    if !previous.is_empty() {
        let prev_name = if all_previous { label.clone() } else { format!("{label}-before-reformat") };
        if !all_previous {
            cat.volumes.push(Volume {
                name: prev_name.clone(),
                version: fs.desc.vmfs_version(),
                how: format!("FDs older than the file system ({how}); read with its geometry"),
                fs: Arc::clone(&fs),
                previous: true,
            });
        }
        detached(cat, names, &fs, &prev_name, &previous, State::Previous, &["previous".to_string(), prev_name.clone()]);
    }
    for fd in deleted {
        cat.items.push(deleted_item(names, &label, &fd));
    }
}

fn volume_name(cat: &Catalog, fs: &Vmfs, previous: bool) -> String {
    let base = if fs.desc.label.is_empty() {
        format!("vmfs{}-{}", fs.desc.vmfs_version(), if previous { "previous" } else { "rebuilt" })
    } else {
        fs.desc.label.clone()
    };
    let mut name = base.clone();
    let mut n = 1;
    while cat.volumes.iter().any(|v| v.name == name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    name
}

fn live_tree(cat: &mut Catalog, fs: &Arc<Vmfs>, label: &str, reached: &mut HashSet<u32>) {
    let root = match fs.root() {
        Ok(r) => r,
        Err(e) => {
            cat.notes.push(format!("{label}: root directory: {e}"));
            return;
        }
    };
    let prefix = vec!["volumes".to_string(), label.to_string()];
    walk_into(cat, fs, label, &root, "", &prefix, State::Live, "listed by its directory", Confidence::High, reached);
}

/// Items for everything under directory `dir` (not `dir` itself).
#[allow(clippy::too_many_arguments)]
fn walk_into(
    cat: &mut Catalog,
    fs: &Arc<Vmfs>,
    label: &str,
    dir: &Fd,
    base: &str,
    prefix: &[String],
    state: State,
    method: &str,
    confidence: Confidence,
    reached: &mut HashSet<u32>,
) {
    let mut errors = Vec::new();
    fs.walk(dir, if base.is_empty() { "/" } else { base }, true, &mut |w| match w {
        WalkItem::Entry { path, components, fd } => {
            reached.insert(fd.addr);
            if fd.meta.kind == FdType::SysFile {
                return;
            }
            let p = out_path(prefix, &components);
            cat.items.push(fd_item(fs, label, &fd, p, Some(path), state, method.into(), confidence));
        }
        WalkItem::Error { path, error, entry } => {
            if let Some(e) = entry {
                let p = out_path(prefix, &e.components);
                cat.items.push(damaged_item(label, p, path.clone(), e.addr, &error.to_string()));
            }
            errors.push(format!("{label}:{path}: {error}"));
        }
    });
    cat.notes.extend(errors);
}

/// `prefix` followed by the walk's name components (lossily decoded).
fn out_path(prefix: &[String], components: &[Vec<u8>]) -> Vec<String> {
    let mut p = prefix.to_vec();
    p.extend(components.iter().map(|c| String::from_utf8_lossy(c).into_owned()));
    p
}

/// An entry whose FD cannot be read: its name survives, its type, size and block map do not.
/// Offered as a file (most entries are); the carving pass may find its content.
fn damaged_item(label: &str, path: Vec<String>, original: String, addr: u32, why: &str) -> Item {
    Item {
        path,
        kind: Kind::File,
        state: State::Damaged,
        original: Some(original),
        volume: label.into(),
        fd: Some(addr),
        size: 0,
        mtime: 0,
        method: "listed by its directory; its FD is unreadable".into(),
        confidence: Confidence::Medium,
        content: None,
        missing: vec![format!("its FD ({addr:#x}) is unreadable: {why}; type, size and block map lost")],
    }
}

#[allow(clippy::too_many_arguments)]
fn fd_item(
    fs: &Arc<Vmfs>,
    label: &str,
    fd: &Fd,
    path: Vec<String>,
    original: Option<String>,
    state: State,
    method: String,
    confidence: Confidence,
) -> Item {
    let kind = match fd.meta.kind {
        FdType::Directory => Kind::Dir,
        FdType::Symlink => Kind::Symlink,
        _ => Kind::File,
    };
    let content: Option<Source> = (kind == Kind::File && fd.meta.kind == FdType::File)
        .then(|| Arc::new(VmfsFile::new(Arc::clone(fs), fd.clone(), original.clone().unwrap_or_default())) as Source);
    let mut missing = Vec::new();
    if kind == Kind::File && content.is_none() {
        missing.push(format!("{:?} FD: no file content to copy", fd.meta.kind));
    }
    Item {
        path,
        kind,
        state,
        original,
        volume: label.into(),
        fd: Some(fd.addr),
        size: fd.meta.size,
        mtime: fd.meta.mtime,
        method,
        confidence,
        content,
        missing,
    }
}

/// Orphaned or previous FDs: the ones no other of them lists are the tops; each top gets its
/// name from a surviving directory entry, or one made from its content.
fn detached(
    cat: &mut Catalog,
    names: &Names,
    fs: &Arc<Vmfs>,
    label: &str,
    fds: &[Fd],
    state: State,
    prefix: &[String],
) {
    let mut listed: HashSet<u32> = HashSet::new();
    for fd in fds.iter().filter(|f| f.is_dir()) {
        if let Ok(es) = fs.read_dir(fd) {
            listed.extend(es.iter().filter(|e| e.name != b"." && e.name != b"..").map(|e| e.addr));
        }
    }
    let mut taken: HashMap<String, u32> = HashMap::new();
    for fd in fds.iter().filter(|f| !listed.contains(&f.addr)) {
        let (name, how, conf) = match names.name_of(fd.addr, fd.meta.generation) {
            Some(n) => (n.to_string(), "name from a surviving directory entry", Confidence::High),
            None => {
                let (n, h) = names::infer(fs, fd);
                (n, h, Confidence::Medium)
            }
        };
        let name = unique(&mut taken, name, fd.addr);
        let mut p = prefix.to_vec();
        p.push(name.clone());
        let what = if state == State::Previous {
            "FD of the file system formatted over"
        } else {
            "FD with no directory entry"
        };
        let method = format!("{what}; {how}");
        cat.items.push(fd_item(fs, label, fd, p.clone(), Some(format!("/{name}")), state, method.clone(), conf));
        if fd.is_dir() {
            let mut seen = HashSet::new();
            walk_into(cat, fs, label, fd, &format!("/{name}"), &p, state, &method, conf, &mut seen);
        }
    }
}

fn unique(taken: &mut HashMap<String, u32>, name: String, addr: u32) -> String {
    if taken.contains_key(&name) {
        let n = format!("{name}~fd-{addr:#x}");
        taken.insert(n.clone(), addr);
        return n;
    }
    taken.insert(name.clone(), addr);
    name
}

/// A freed FD: type, mode and times survive, the block map does not. Its name and folder come
/// from directory blocks; its content is left to the carving pass.
fn deleted_item(names: &Names, label: &str, fd: &Fd) -> Item {
    let (path, original, conf) = match names.path_of(fd.addr, fd.meta.generation, fd.meta.parent_fd) {
        Some((p, exact)) => {
            let mut v = vec!["volumes".to_string(), label.to_string()];
            v.extend(p.iter().cloned());
            let conf = if exact { Confidence::High } else { Confidence::Medium };
            (v, Some(format!("/{}", p.join("/"))), conf)
        }
        None => (
            vec!["lost+found".into(), label.into(), "deleted".into(), format!("fd-{:#x}", fd.addr)],
            None,
            Confidence::Low,
        ),
    };
    let kind = if fd.is_dir() { Kind::Dir } else { Kind::File };
    let mut missing = Vec::new();
    if kind == Kind::File {
        missing.push("deleted: its block map was cleared when it was freed".into());
    }
    Item {
        path,
        kind,
        state: State::Deleted,
        original,
        volume: label.into(),
        fd: Some(fd.addr),
        size: 0,
        mtime: fd.meta.mtime,
        method: if conf == Confidence::High {
            "freed FD; name and folder from surviving directory entries".into()
        } else {
            "freed FD; names partly made up (see path)".into()
        },
        confidence: conf,
        content: None,
        missing,
    }
}
