//! What the scan records: one [`Finding`] per recognised structure, with the source and byte
//! offset where it starts. Findings are small (text is capped) and serialisable: the scan index
//! is a JSON-lines file of them.

use serde::{Deserialize, Serialize};

/// A recognised structure at `offset` of source number `source` (the order given on the
/// command line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub source: usize,
    pub offset: u64,
    #[serde(flatten)]
    pub what: What,
}

/// One directory entry seen in a directory block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenEntry {
    /// Raw name bytes, lossily as UTF-8 (VMFS names are UTF-8).
    pub name: String,
    /// FD address the entry names.
    pub addr: u32,
    pub generation: u32,
    /// `FS3_DescriptorType` of the entry.
    pub kind: u32,
}

/// What was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum What {
    /// `LVM_DevMetadata` (magic 0xC001D00D) at device offset `offset` (the partition starts
    /// 0x100000 before it).
    LvmHeader { major: u32, dev_uuid: String, data_offset: u64, total_bytes: u64 },
    /// `FS3_Descriptor` (0x2FABF15E or the VMFS-L 0x2FABF15F): the volume starts 0x200000 before.
    FsDescriptor { major: u32, uuid: String, lv_uuid: String, label: String, block_size: u64 },
    /// A file descriptor: its lock block says type 0x10C00001 and its own volume offset, so the
    /// volume starts at `offset - self_offset`.
    Fd {
        self_offset: u64,
        addr: u32,
        generation: u32,
        links: u32,
        fd_type: u32,
        size: u64,
        zla: u32,
        block_size: u64,
        mtime: u32,
        ctime: u32,
        mode: u32,
        /// `parentFD` (VMFS6; 0 before).
        parent: u32,
        /// The VMFS6 "fdmd" signature is present.
        v6: bool,
    },
    /// A resource cluster header (lock type 0x10C00002..), with its own volume offset.
    ResourceCluster { lock_type: u32, self_offset: u64 },
    /// A heartbeat slot (its own volume offset).
    Heartbeat { self_offset: u64 },
    /// `count` resource cluster headers of one lock type, `stride` bytes apart within one scan
    /// chunk, the first with its own volume offset: a volume holds them by the thousand, and
    /// the index stores them as runs (as the scan records them).
    ResourceClusters { lock_type: u32, self_offset: u64, stride: u64, count: u32 },
    /// `count` heartbeat slots `stride` bytes apart within one scan chunk, the first with its
    /// own volume offset.
    Heartbeats { self_offset: u64, stride: u64, count: u32 },
    /// Directory entries of a VMFS3/5 directory block or a VMFS6 dirent block.
    DirEntries { v6: bool, entries: Vec<SeenEntry> },
    /// The `FS6_DirHeader` of a VMFS6 directory: the directory's own FD address and its parent's.
    DirHeader6 { addr: u32, parent: u32, num_entries: u32 },
    /// A VMDK text descriptor ("# Disk DescriptorFile"), up to the first NUL.
    VmdkDescriptor { text: String },
    /// A .vmx file's text.
    Vmx { text: String },
    /// A .vmsd file's text.
    Vmsd { text: String },
    /// The first line of a `vmware.log` (`<ISO time>| vmx| ...Log for VMware ...`), capped.
    VmwareLog { first: String },
    /// A `.nvram` file's "MRVN" header, with its format version.
    Nvram { version: u32 },
    /// A hosted sparse extent header: "KDMV", "COWD" or "SEsparse", with its capacity in bytes.
    SparseHeader { format: String, capacity: u64 },
    /// A guest structure at a 64 KiB boundary: "mbr", "gpt", "ntfs", "ext", "fat".
    Guest { fs: String, size: Option<u64> },
}

impl What {
    /// How many structures the finding stands for (a run stands for several).
    pub fn count(&self) -> u32 {
        match self {
            Self::ResourceClusters { count, .. } | Self::Heartbeats { count, .. } => *count,
            _ => 1,
        }
    }
}
