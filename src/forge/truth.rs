//! The ground truth a forged scenario writes beside its images: what is on the disks, what a
//! perfect recovery returns, and what was damaged where.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Files larger than this get per-block hashes of their data instead of one whole-file
/// SHA-256 (hashing terabytes of holes proves nothing and takes an hour).
pub const WHOLE_HASH_LIMIT: u64 = 16 << 30;

/// Everything a test or a recovery needs to know about a forged datastore.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Truth {
    pub scenario: String,
    /// One line on what happened to the datastore.
    pub story: String,
    /// VMFS version (5 or 6) of the datastore the files were written to.
    pub version: u32,
    pub label: String,
    pub fs_uuid: String,
    pub lv_uuid: String,
    pub block_size: u64,
    pub volume_size: u64,
    pub images: Vec<TruthImage>,
    /// Every file and directory of the datastore (system files excluded), with its state.
    pub files: Vec<TruthFile>,
    /// VMDK chains: what each virtual disk reads as.
    pub disks: Vec<TruthDisk>,
    /// Files inside the guest file systems of the virtual disks.
    pub guest_files: Vec<TruthGuestFile>,
    /// What was damaged, where, and whom it touches.
    pub damage: Vec<TruthDamage>,
    /// Unreadable ranges for a fault-injecting reader (`vmfs-rescue --bad-sectors`).
    pub bad_sectors: Vec<TruthRange>,
    /// Another file system that was on the same disks before (re-format scenarios).
    pub previous: Option<Box<Truth>>,
}

/// One disk image.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TruthImage {
    /// File name (images sit beside the truth file).
    pub name: String,
    pub size: u64,
    /// Byte offset of the VMFS partition (the LVM device), whether or not a table still says so.
    pub partition_offset: u64,
    /// Partition table written: "gpt", "mbr" or "none".
    pub table: String,
}

/// A file or directory of the datastore.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TruthFile {
    /// Absolute, "/"-separated.
    pub path: String,
    /// "file", "dir" or "symlink".
    pub kind: String,
    pub size: u64,
    /// "live" (listed by its directory), "deleted" (unlinked and freed, data left in place),
    /// "orphaned" (FD intact, directory entry lost), "unreachable" (FD destroyed).
    pub state: String,
    /// SHA-256 of the content, for files up to [`WHOLE_HASH_LIMIT`].
    pub sha256: Option<String>,
    /// For larger files: SHA-256 of every allocated data block, by file offset.
    pub block_hashes: Vec<TruthRange>,
    /// thin, lazy-thick, eager-thick (regular files only).
    pub provisioning: Option<String>,
    /// FD address and its volume offset.
    pub fd: String,
    pub fd_offset: u64,
    /// ZLA and block size the forge chose.
    pub zla: String,
    pub block_size: u64,
    /// Volume ranges of the file's allocated units: [file offset, volume offset, length].
    pub extents: Vec<[u64; 3]>,
    pub symlink_target: Option<String>,
    /// Byte ranges of the content that later writes destroyed (re-format, damage, and a
    /// resident file's bytes when its FD is freed or overwritten).
    pub overwritten: Vec<[u64; 2]>,
}

/// A virtual disk (the leaf of a chain) and what it reads as.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TruthDisk {
    /// VM folder.
    pub vm: String,
    /// Descriptor files from the leaf to the base.
    pub chain: Vec<String>,
    /// Extent files from the leaf to the base.
    pub extents: Vec<String>,
    /// createType of every link, leaf first.
    pub kinds: Vec<String>,
    pub capacity: u64,
    /// SHA-256 of the leaf's merged view.
    pub sha256: String,
    /// SHA-256 of the base disk alone.
    pub base_sha256: String,
    /// "ok", "cid-mismatch", "parent-missing", "descriptor-lost".
    pub status: String,
    /// Guest file system on the disk: ext4, fat32, ntfs, or none.
    pub guest_fs: String,
    /// Byte offset of the guest partition in the virtual disk.
    pub guest_partition_offset: u64,
}

/// A file inside a guest file system.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TruthGuestFile {
    /// The leaf descriptor of the disk it lives on.
    pub disk: String,
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A damaged region.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TruthDamage {
    /// What broke, e.g. "fs-descriptor-zeroed".
    pub kind: String,
    pub description: String,
    /// Image name, offset and length of every damaged range.
    pub ranges: Vec<TruthRange>,
    /// Datastore paths whose metadata or data it hits.
    pub affects: Vec<String>,
    /// Words the reader's report should contain when it meets this damage.
    pub reader_reports: Vec<String>,
}

/// A byte range on an image (or in a file, for block hashes).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TruthRange {
    /// Image name; empty for ranges inside a file.
    pub image: String,
    pub offset: u64,
    pub len: u64,
    pub sha256: Option<String>,
}

impl Truth {
    /// The truth file written beside the first image `first`: `<first>.truth.json`.
    pub fn path_for(first: &Path) -> std::path::PathBuf {
        let mut s = first.as_os_str().to_owned();
        s.push(".truth.json");
        s.into()
    }

    /// Write as pretty JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<(), super::ForgeError> {
        let text =
            serde_json::to_string_pretty(self).map_err(|e| super::ForgeError::Layout(format!("ground truth: {e}")))?;
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, text).map_err(|e| super::ForgeError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| super::ForgeError::io(path, e))
    }

    /// Read a truth file.
    pub fn load(path: &Path) -> Result<Self, super::ForgeError> {
        let text = std::fs::read_to_string(path).map_err(|e| super::ForgeError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| super::ForgeError::Layout(format!("{}: {e}", path.display())))
    }

    /// The file at `path`, if listed.
    pub fn file(&self, path: &str) -> Option<&TruthFile> {
        self.files.iter().find(|f| f.path == path)
    }
}
