//! Guest files: the partitions and file systems inside a virtual disk (or any source), read
//! without a mount and without writing.
//!
//! [`open_disk`] finds the volumes of a guest disk: the partitions of its MBR (with logical
//! partitions) or GPT (the backup header when the primary is damaged), through
//! [`crate::container::partition`], or the whole disk when it holds a file system without a
//! table. [`open_fs`] recognises a volume's file system by its boot block or superblock and
//! returns a [`GuestFs`]: list a directory, stat, and open a file's content as a
//! [`BlockSource`] whose runs point into the volume, so unreadable sectors are reported per guest
//! file and holes are skipped by copies.
//!
//! Readers: [`fat`] (FAT12/16/32, deleted entries), [`exfat`] (deleted entry sets, the backup
//! boot region), [`ext4`] (ext2/3/4, deleted inodes), [`ntfs`] (NTFS: tree from an MFT scan,
//! sparse, compressed and fragmented files, alternate data streams, deleted records, the backup
//! boot sector). [`lvm2`] turns the Linux LVM2 physical volumes among the partitions (or a whole
//! disk) into one volume per linear logical volume, numbered after the partitions. [`extract`]
//! writes chosen entries out (streams as sibling files) with a manifest of the original names.

mod bitmap;
mod error;
pub mod exfat;
pub mod ext4;
pub mod extract;
pub mod fat;
pub mod lvm2;
pub mod ntfs;
mod runs;

pub use error::GuestError;
pub use runs::{Run, RunFile, Target};

use crate::block::{Slice, Source, read_vec};
use crate::container::partition::{PartitionTable, read_partition_table};
use std::sync::Arc;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (its content is the target).
    Symlink,
    /// Anything else (device, socket, fifo).
    Other,
}

/// How sure a reader is of a deleted file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// The content's place is known from surviving metadata and nothing else claims it.
    High,
    /// The content's place is assumed (contiguity after the first cluster) and free.
    Medium,
    /// Assumed, and part of it is now used by other files: probably overwritten.
    Low,
}

/// One directory entry with its metadata. Times are Unix seconds as the file system stores
/// them (FAT stores local time and is read as if it were UTC).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// The name as stored, decoded (FAT: long name, else the 8.3 name; ext: the bytes, lossy UTF-8).
    pub name: String,
    /// The name's raw bytes when they are not valid UTF-8 (ext names may hold any byte).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_name: Option<Vec<u8>>,
    /// File, directory, ...
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub mtime: Option<i64>,
    /// Last access.
    pub atime: Option<i64>,
    /// Creation (FAT, NTFS) or inode change (ext).
    pub ctime: Option<i64>,
    /// Unix mode bits (ext), or FAT attributes mapped to them.
    pub mode: Option<u32>,
    /// Whether the entry was deleted (and is listed from what survives).
    pub deleted: bool,
    /// For deleted entries: how sure the content is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// Names of alternate data streams (NTFS); empty elsewhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<String>,
    /// The reader's handle: FAT first cluster, ext inode, NTFS MFT record.
    pub id: u64,
}

impl Entry {
    /// A root directory known only by its reader's handle (no metadata read).
    pub fn bare_root(id: u64, mode: Option<u32>) -> Self {
        Entry {
            name: String::new(),
            raw_name: None,
            kind: Kind::Dir,
            size: 0,
            mtime: None,
            atime: None,
            ctime: None,
            mode,
            deleted: false,
            confidence: None,
            streams: Vec::new(),
            id,
        }
    }
}

/// A guest file system, read-only. NTFS and exFAT readers fit behind it the same way.
pub trait GuestFs: Send + Sync {
    /// Short type name (`FAT32`, `ext4`).
    fn fs_type(&self) -> String;
    /// Volume label, when there is one.
    fn label(&self) -> Option<String>;
    /// The root directory.
    fn root(&self) -> Entry;
    /// The entries of a directory, deleted ones included (marked), without `.` and `..`.
    fn list(&self, dir: &Entry) -> Result<Vec<Entry>, GuestError>;
    /// The content of a file (or of stream `stream` of it), as a source over the volume.
    fn open(&self, file: &Entry, stream: Option<&str>) -> Result<Source, GuestError>;
}

/// A volume of a guest disk.
#[derive(Clone)]
pub struct Volume {
    /// Number: the partition's number, or 0 for a disk without a table.
    pub index: u32,
    /// What the table says it is (`GPT partition 1 (type ...)`), or `whole disk`.
    pub describe: String,
    /// Byte offset on the disk.
    pub start: u64,
    /// Its bytes.
    pub source: Source,
}

/// A guest disk: its table (if any) and its volumes.
pub struct GuestDisk {
    /// The partition table, `None` when there is none.
    pub table: Option<PartitionTable>,
    /// Partitions in table order, or the whole disk; then the Linux LVM2 logical volumes of the
    /// physical volumes among them, numbered after the highest partition number.
    pub volumes: Vec<Volume>,
    /// What could not be opened as a volume (an LVM2 LV of an unsupported kind, damage).
    pub notes: Vec<String>,
}

/// Find the volumes of a guest disk: the partitions of its table, else the whole disk.
pub fn open_disk(disk: &Source) -> Result<GuestDisk, GuestError> {
    // A file-system boot sector carries 0x55AA like an MBR: when sector 0 is one, its "table"
    // is boot code, and the disk is partitionless. An MBR/GPT with no partitions too.
    let head = read_vec(&**disk, 0, disk.len().min(512) as usize)?;
    let boot_sector = fat::looks_like_fat(&head) || matches!(head.get(3..11), Some(b"NTFS    " | b"EXFAT   "));
    let table = if boot_sector { None } else { read_partition_table(&**disk)?.filter(|t| !t.partitions.is_empty()) };
    let mut volumes: Vec<Volume> = match &table {
        Some(t) => t
            .partitions
            .iter()
            .filter(|p| p.len > 0)
            .map(|p| Volume {
                index: p.index,
                describe: p.describe(),
                start: p.start,
                source: Arc::new(Slice::new(Arc::clone(disk), p.start, p.len)) as Source,
            })
            .collect(),
        None => vec![Volume { index: 0, describe: "whole disk".into(), start: 0, source: Arc::clone(disk) }],
    };
    let first_lv = volumes.iter().map(|v| v.index).max().unwrap_or(0).saturating_add(1);
    let (lvs, notes) = lvm2::logical_volumes(&volumes, first_lv);
    volumes.extend(lvs);
    Ok(GuestDisk { table, volumes, notes })
}

/// Recognise the file system of `volume` and open it.
pub fn open_fs(volume: &Source) -> Result<Box<dyn GuestFs>, GuestError> {
    let name = volume.name();
    let head_len = volume.len().min(4096) as usize;
    let head = read_vec(&**volume, 0, head_len)?;
    if fat::looks_like_fat(&head) {
        return Ok(Box::new(fat::Fat::open(Arc::clone(volume))?));
    }
    if head.get(1024..).is_some_and(ext4::looks_like_ext) {
        return Ok(Box::new(ext4::Ext::open(Arc::clone(volume))?));
    }
    // exFAT: also when only the backup boot region (sector 12) survives.
    if head.get(3..11) == Some(b"EXFAT   ".as_slice()) || exfat::has_backup_boot(&**volume) {
        return Ok(Box::new(exfat::Exfat::open(Arc::clone(volume))?));
    }
    // NTFS, also when only the backup boot sector (the volume's last sector) survives.
    let backup = volume.len().checked_sub(512).map(|at| read_vec(&**volume, at & !511, 512)).transpose()?;
    if ntfs::looks_like_ntfs(&head) || backup.as_deref().is_some_and(ntfs::looks_like_ntfs) {
        return Ok(Box::new(ntfs::Ntfs::open(Arc::clone(volume))?));
    }
    if lvm2::label_sector(&head).is_some() {
        let what = "a Linux LVM2 physical volume: its logical volumes are volumes of their own".into();
        return Err(GuestError::Unsupported { volume: name, what });
    }
    let hex: String = head.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Err(GuestError::UnknownFs { volume: name, head: hex })
}

/// Split a guest path into its components (`/` separated; empty ones and `.` dropped).
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Find the entry at `path` from the root. A live entry wins over a deleted one of the same
/// name; names match exactly, else ignoring ASCII case (FAT and NTFS are case-insensitive).
pub fn lookup(fs: &dyn GuestFs, path: &str) -> Result<Entry, GuestError> {
    let mut cur = fs.root();
    let mut walked = String::new();
    for c in components(path) {
        if cur.kind != Kind::Dir {
            return Err(GuestError::NotADirectory { path: walked });
        }
        walked.push('/');
        walked.push_str(c);
        let entries = fs.list(&cur)?;
        let pick = |exact: bool| {
            let m = |e: &&Entry| if exact { e.name == c } else { e.name.eq_ignore_ascii_case(c) };
            entries.iter().filter(m).find(|e| !e.deleted).or_else(|| entries.iter().find(m)).cloned()
        };
        cur = pick(true).or_else(|| pick(false)).ok_or_else(|| GuestError::NotFound { path: walked.clone() })?;
    }
    Ok(cur)
}

/// Visit the tree under `dir` (deleted entries too), depth first, with each entry's path below
/// `prefix`. Directories are entered once (by id) so a looping tree ends; `max_depth` bounds it.
pub fn walk(fs: &dyn GuestFs, dir: &Entry, prefix: &str, f: &mut dyn FnMut(&str, &Entry), errors: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    walk_inner(fs, dir, prefix, f, errors, &mut seen, 0);
}

/// Deepest directory nesting followed (a looping or absurd tree stops here).
const MAX_DEPTH: u32 = 256;

fn walk_inner(
    fs: &dyn GuestFs,
    dir: &Entry,
    prefix: &str,
    f: &mut dyn FnMut(&str, &Entry),
    errors: &mut Vec<String>,
    seen: &mut std::collections::HashSet<(u64, bool)>,
    depth: u32,
) {
    if depth > MAX_DEPTH || !seen.insert((dir.id, dir.deleted)) {
        return;
    }
    let entries = match fs.list(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!("{prefix}/: {e}"));
            return;
        }
    };
    for e in entries {
        let path = format!("{prefix}/{}", e.name);
        f(&path, &e);
        if e.kind == Kind::Dir {
            walk_inner(fs, &e, &path, f, errors, seen, depth + 1);
        }
    }
}
