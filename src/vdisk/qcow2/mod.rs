//! qcow2 images (QEMU), versions 2 and 3: the active layer (the header's L1 table) read as one
//! [`Image`], with its backing file as the parent, zero clusters, compressed clusters (zlib or
//! zstd), extended L2 entries (subclusters) and an external data file. Internal snapshots are
//! listed, not read. Encrypted images and unknown incompatible features are refused; the dirty
//! and corrupt bits are noted and the image is read anyway (refcounts do not matter to a reader).
//!
//! Every size in the header is checked against the file before anything is allocated from it;
//! damage found later (an unreadable L2 table, a cluster that does not decompress) makes only
//! its own range unreadable.

mod compress;
pub mod ondisk;
mod reader;

use super::error::{Result, VdiskError};
use super::files::{Files, resolve};
use super::image::{Format, Image, ParentRef};
use crate::block::Source;
use ondisk::{Compression, Extensions, HEADER, Header, SnapshotEntry};
use reader::{L1_UNREADABLE, Layout, Qcow2Reader};

/// Snapshot names shown in the variant; the count is always shown.
const SHOWN_SNAPSHOTS: u32 = 8;

fn read(src: &Source, off: u64, len: u64) -> Result<Vec<u8>> {
    let mut b = vec![0u8; len as usize];
    src.read_at(off, &mut b)?;
    Ok(b)
}

/// "512 B", "64 KiB", "2 MiB".
fn size_words(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// Open the qcow2 image `src` (the file at `path`). `files` opens its external data file.
pub fn open(files: &dyn Files, path: &str, src: Source) -> Result<Image> {
    let flen = src.len();
    let head = read(&src, 0, flen.min(Header::READ as u64))?;
    let h = Header::parse(path, &head)?;
    let mut problems = Vec::new();

    // Header extensions: from the end of the header to the backing file name or the end of
    // the first cluster (or of the file, when it is shorter).
    let start = h.header_length as u64;
    if start > flen {
        let what = format!("header_length {start} is past the end of the {flen}-byte file");
        return Err(VdiskError::corrupt(path, HEADER, 0x64, what));
    }
    let area = read(&src, start, h.extensions_end().min(flen).saturating_sub(start))?;
    let ext = Extensions::parse(path, &area, start)?;

    let compression = features(path, &h, &ext, &mut problems)?;

    let parent = backing(path, &src, &h, &ext, &mut problems)?;
    let (data, data_name) = data_file(files, path, &src, &h, &ext, &mut problems)?;
    let layout = Layout {
        cluster_bits: h.cluster_bits,
        extended_l2: h.extended_l2(),
        external: data_name.is_some(),
        compression,
        capacity: h.size,
    };
    let l1 = l1_table(path, &src, &h, &mut problems)?;
    let snapshots = snapshot_names(&src, &h).unwrap_or_else(|e| {
        problems.push(format!("snapshot table at {:#x}: {e} (the active layer is not affected)", h.snapshots_offset));
        Vec::new()
    });

    let problems = problems.into_iter().map(|p| format!("qcow2: {p}")).collect();
    Ok(Image {
        format: Format::Qcow2,
        variant: variant(&h, compression, data_name.as_deref(), &snapshots),
        capacity: h.size,
        reader: Box::new(Qcow2Reader::new(path, src, data, layout, l1, problems)),
        id: None,
        parent,
    })
}

/// Decide on the feature bits: refuse what cannot be read (unknown incompatible features,
/// encryption), note what is read anyway (dirty, corrupt); the compression of the clusters.
fn features(path: &str, h: &Header, ext: &Extensions, problems: &mut Vec<String>) -> Result<Compression> {
    let corrupt = |off: u64, what: String| VdiskError::corrupt(path, HEADER, off, what);
    let unsupported = |what: String| VdiskError::Unsupported { file: path.into(), what };
    let unknown = h.incompatible & !ondisk::INCOMPAT_KNOWN;
    if unknown != 0 {
        let names: Vec<String> = (0..64u8)
            .filter(|b| unknown & (1 << b) != 0)
            .map(|b| match ext.feature_name(0, b) {
                Some(n) => format!("bit {b} ({n})"),
                None => format!("bit {b}"),
            })
            .collect();
        return Err(unsupported(format!("unknown incompatible qcow2 features: {}", names.join(", "))));
    }
    if h.crypt_method != 0 {
        let how = match h.crypt_method {
            1 => "AES".to_string(),
            2 => "LUKS".to_string(),
            m => format!("method {m}"),
        };
        return Err(unsupported(format!("encrypted qcow2 ({how}): the data cannot be read without the key")));
    }
    if h.extended_l2() && h.cluster_bits < ondisk::MIN_EXTENDED_L2_CLUSTER_BITS {
        return Err(corrupt(0x14, format!("extended L2 entries with {}-byte clusters", h.cluster_bytes())));
    }
    let has_type_bit = h.incompatible & ondisk::INCOMPAT_COMPRESSION != 0;
    let compression = match h.compression_type {
        0 => Compression::Zlib,
        1 => Compression::Zstd,
        t => return Err(unsupported(format!("compression type {t}"))),
    };
    if has_type_bit != (compression != Compression::Zlib) {
        problems.push(format!(
            "compression type {} with the compression-type feature bit {}: {} used",
            h.compression_type,
            if has_type_bit { "set" } else { "clear" },
            compression.name()
        ));
    }
    if h.incompatible & ondisk::INCOMPAT_DIRTY != 0 {
        let lazy = h.compatible & ondisk::COMPAT_LAZY_REFCOUNTS != 0;
        problems.push(format!(
            "dirty bit set{}: not closed cleanly, refcounts may be stale (not used for reading)",
            if lazy { " (lazy refcounts)" } else { "" }
        ));
    }
    if h.incompatible & ondisk::INCOMPAT_CORRUPT != 0 {
        problems.push("marked corrupt by qemu: read anyway; ranges with damaged metadata read as unreadable".into());
    }
    if h.refcount_order > ondisk::MAX_REFCOUNT_ORDER {
        problems.push(format!("refcount_order {} out of range (not used for reading)", h.refcount_order));
    }
    Ok(compression)
}

/// The variant in words: "v3, zstd, 64 KiB clusters, 2 internal snapshots: "a", "b"".
fn variant(h: &Header, compression: Compression, data_name: Option<&str>, snapshots: &[String]) -> String {
    let mut words = vec![format!("v{}", h.version), compression.name().into()];
    words.push(format!("{} clusters", size_words(h.cluster_bytes())));
    if h.extended_l2() {
        words.push("extended L2 (subclusters)".into());
    }
    if let Some(d) = data_name {
        words.push(format!("external data file {d}"));
    }
    if h.compatible & ondisk::COMPAT_LAZY_REFCOUNTS != 0 {
        words.push("lazy refcounts".into());
    }
    if h.nb_snapshots > 0 {
        let mut names: Vec<String> = snapshots.iter().map(|n| format!("{n:?}")).collect();
        if h.nb_snapshots > names.len() as u32 && !names.is_empty() {
            names.push("...".into());
        }
        let list = if names.is_empty() { String::new() } else { format!(": {}", names.join(", ")) };
        let s = if h.nb_snapshots == 1 { "" } else { "s" };
        words.push(format!("{} internal snapshot{s}{list}", h.nb_snapshots));
    }
    words.join(", ")
}

/// The backing file (name and format), if any.
fn backing(
    path: &str,
    src: &Source,
    h: &Header,
    ext: &Extensions,
    problems: &mut Vec<String>,
) -> Result<Option<ParentRef>> {
    if h.backing_file_offset == 0 || h.backing_file_size == 0 {
        return Ok(None);
    }
    let end = h.backing_file_offset + h.backing_file_size as u64;
    if end > src.len() {
        return Err(VdiskError::corrupt(
            path,
            HEADER,
            0x08,
            format!("backing file name at {:#x} is cut by the end of the file", h.backing_file_offset),
        ));
    }
    let raw = read(src, h.backing_file_offset, h.backing_file_size as u64)?;
    let name = String::from_utf8_lossy(&raw).replace('\\', "/");
    // qemu accepts a "file:" protocol prefix on a plain path.
    let name = name.strip_prefix("file:").map(str::to_string).unwrap_or(name);
    let format = match ext.backing_format.as_deref() {
        None => None,
        Some(f) => {
            let known = Format::from_name(f);
            if known.is_none() {
                problems
                    .push(format!("backing file format {f:?} is unknown here: the backing file's own header decides"));
            }
            known
        }
    };
    Ok(Some(ParentRef { hints: vec![name], id: None, format }))
}

/// Where guest clusters are: the external data file (opened through `files`, relative to the
/// image), or the image itself.
fn data_file(
    files: &dyn Files,
    path: &str,
    src: &Source,
    h: &Header,
    ext: &Extensions,
    problems: &mut Vec<String>,
) -> Result<(Source, Option<String>)> {
    if h.incompatible & ondisk::INCOMPAT_DATA_FILE == 0 {
        if let Some(d) = &ext.data_file {
            problems.push(format!("names data file {d:?} without the external-data-file feature bit: not used"));
        }
        return Ok((src.clone(), None));
    }
    let Some(name) = &ext.data_file else {
        return Err(VdiskError::Missing {
            file: path.into(),
            why: "clusters are in an external data file the image does not name (no extension 0x44415441)".into(),
        });
    };
    let full = resolve(path, name);
    let data = files.open(&full).map_err(|e| {
        let why = match e {
            VdiskError::Missing { why, .. } => why,
            e => e.to_string(),
        };
        VdiskError::Missing { file: full.clone(), why: format!("the external data file {path} names {name:?}: {why}") }
    })?;
    Ok((data, Some(name.clone())))
}

/// The active L1 table, as far as the file holds it: entries on unreadable sectors become
/// [`L1_UNREADABLE`], entries the size needs but the table or file lacks are left out (their
/// range reads as unreadable).
fn l1_table(path: &str, src: &Source, h: &Header, problems: &mut Vec<String>) -> Result<Vec<u64>> {
    let cb = h.cluster_bytes();
    let span = cb * (cb / if h.extended_l2() { 16 } else { 8 });
    let needed = h.size.div_ceil(span);
    let count = needed.min(h.l1_size as u64);
    if (h.l1_size as u64) < needed {
        problems.push(format!(
            "L1 table has {} entries, the virtual size needs {needed}: the rest reads as unreadable",
            h.l1_size
        ));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    let off = h.l1_table_offset;
    let flen = src.len();
    if off >= flen {
        return Err(VdiskError::corrupt(
            path,
            HEADER,
            0x28,
            format!("L1 table at {off:#x} is past the end of the {flen}-byte file"),
        ));
    }
    if !off.is_multiple_of(cb) {
        problems.push(format!("L1 table at {off:#x} is not aligned to a cluster"));
    }
    let avail = ((flen - off) / 8).min(count);
    if avail < count {
        problems.push(format!(
            "L1 table cut by the end of the file: {avail} of {count} entries; the rest reads as unreadable"
        ));
    }
    let bytes = read(src, off, avail * 8)?;
    let bad = src.unreadable(off..off + avail * 8);
    if !bad.is_empty() {
        problems.push(format!("L1 table at {off:#x} is on unreadable sectors: their ranges read as unreadable"));
    }
    let mut l1: Vec<u64> = bytes
        .chunks_exact(8)
        .enumerate()
        .map(|(i, c)| {
            let at = off + i as u64 * 8;
            if bad.iter().any(|r| r.start < at + 8 && at < r.end) {
                L1_UNREADABLE
            } else {
                u64::from_be_bytes(c.try_into().unwrap_or([0; 8]))
            }
        })
        .collect();
    // An L2 table maps one range only: entries sharing one are damaged, and would let a small
    // hostile file make one table cover the disk many times over.
    let mut tables: Vec<u64> =
        l1.iter().filter(|&&e| e != L1_UNREADABLE).map(|&e| ondisk::l1_offset(e)).filter(|&o| o != 0).collect();
    tables.sort_unstable();
    let shared: std::collections::HashSet<u64> = tables.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    if !shared.is_empty() {
        let mut n = 0;
        for e in l1.iter_mut().filter(|e| **e != L1_UNREADABLE && shared.contains(&ondisk::l1_offset(**e))) {
            *e = L1_UNREADABLE;
            n += 1;
        }
        problems.push(format!("{n} L1 entries share {} L2 tables: their ranges read as unreadable", shared.len()));
    }
    Ok(l1)
}

/// Names of the first internal snapshots (the table is only listed, never read as a disk).
fn snapshot_names(src: &Source, h: &Header) -> Result<Vec<String>, String> {
    let flen = src.len();
    let mut at = h.snapshots_offset;
    if h.nb_snapshots > 0 && (at == 0 || !at.is_multiple_of(h.cluster_bytes())) {
        // Cluster 0 is the header; the table starts on a cluster of its own.
        return Err(format!("{} entries at {at:#x}, not a cluster after the header", h.nb_snapshots));
    }
    let mut names = Vec::new();
    for i in 0..h.nb_snapshots.min(SHOWN_SNAPSHOTS) {
        let fixed_end = at.checked_add(SnapshotEntry::SIZE as u64).filter(|&e| e <= flen);
        if fixed_end.is_none() {
            return Err(format!("entry {i} at {at:#x} is past the end of the file"));
        }
        let mut b = [0u8; SnapshotEntry::SIZE];
        src.read_at(at, &mut b).map_err(|e| e.to_string())?;
        let e = SnapshotEntry::parse(&b);
        if e.extra_len > SnapshotEntry::MAX_EXTRA {
            return Err(format!("entry {i} at {at:#x}: {} bytes of extra data", e.extra_len));
        }
        let name_at = at + e.name_at();
        if name_at + e.name_len as u64 > flen {
            return Err(format!("entry {i} at {at:#x}: name past the end of the file"));
        }
        let mut n = vec![0u8; e.name_len as usize];
        src.read_at(name_at, &mut n).map_err(|e| e.to_string())?;
        names.push(String::from_utf8_lossy(&n).into_owned());
        at += e.total_len();
    }
    Ok(names)
}
