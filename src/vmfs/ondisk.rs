//! VMFS on-disk layouts: pure parsers (and encoders for tests and the forge), nothing else.
//!
//! Offsets are hexadecimal and relative to the start of each structure; names in backticks are
//! VMware's (as recovered by dissect.vmfs from ESXi symbols). See
//! `../shared/research/vmfs-format.md` §3–§11 for sources and observations.

use super::error::CorruptKind;
use crate::le::{VmwareUuid, cstr_at, u8_at, u16_at, u32_at, u64_at};

/// Volume offset of the FS3 descriptor (`FS3_FS_HEADER_OFFSET`).
pub const FS_DESCRIPTOR_OFFSET: u64 = 0x20_0000;
/// `VMFS_MAGIC_NUMBER`.
pub const VMFS_MAGIC: u32 = 0x2FAB_F15E;
/// `VMFSL_MAGIC_NUMBER` (VMFS-L, ESXi OSDATA volumes).
pub const VMFSL_MAGIC: u32 = 0x2FAB_F15F;
/// First FS major version with the VMFS6 layout (`FS3_VMFS6_MAJOR_VERSION`).
pub const VMFS6_MAJOR: u32 = 24;
/// Bytes of the descriptor we parse.
pub const FS_DESCRIPTOR_SIZE: usize = 0x170;
/// `FS3_Config` bit: more sub-blocks per cluster (two extra resource bits in SB addresses).
pub const CONFIG_DENSE_SBPC: u32 = 0x4;

/// The FS3 descriptor ("superblock"), at volume offset 0x200000.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsDescriptor {
    /// 0x00 `magic`: [`VMFS_MAGIC`] or [`VMFSL_MAGIC`].
    pub magic: u32,
    /// 0x04 `majorVersion`: 4 (VMFS3), 14 (VMFS5), 24 (VMFS6).
    pub major: u32,
    /// 0x08 `minorVersion`.
    pub minor: u8,
    /// 0x09 `uuid`.
    pub uuid: VmwareUuid,
    /// 0x19 `config` flags.
    pub config: u32,
    /// 0x1d `fsLabel[128]`.
    pub label: String,
    /// 0x9d `diskBlockSize`.
    pub disk_block_size: u32,
    /// 0xa1 `fileBlockSize`: FB (VMFS3/5) or SFB (VMFS6) size, a power of two.
    pub file_block_size: u64,
    /// 0xa9 `creationTime`, Unix seconds.
    pub creation_time: u32,
    /// 0xb1 `volInfo.uuid`: the LVM logical-volume UUID.
    pub lv_uuid: VmwareUuid,
    /// 0xd1 `fdcClusterGroupOffset`.
    pub fdc_cluster_group_offset: u32,
    /// 0xd5 `fdcClustersPerGroup`.
    pub fdc_clusters_per_group: u32,
    /// 0xd9 `subBlockSize`.
    pub sub_block_size: u32,
    /// 0xe1 `pb2VolAddr`: volume offset of the .pb2.sf FD.
    pub pb2_vol_addr: u64,
    /// 0xe9 `pb2FDAddr`.
    pub pb2_fd_addr: u32,
    /// 0x105 `sddVolAddr`.
    pub sdd_vol_addr: u64,
    /// 0x10d `sddFDAddr`.
    pub sdd_fd_addr: u32,
    /// 0x130 `physDiskBlockSize` (VMFS6).
    pub phys_disk_block_size: u32,
    /// 0x134 `mdAlignment`: metadata block size on VMFS6 (4096), 0 before.
    pub md_alignment: u32,
    /// 0x138 `sfbToLfbShift`: LFB = SFB << this (VMFS6).
    pub sfb_to_lfb_shift: u16,
}

fn need(b: &[u8], n: usize) -> Result<(), CorruptKind> {
    if b.len() < n { Err(CorruptKind::Truncated { have: b.len(), need: n }) } else { Ok(()) }
}

fn pow2_in(field: &'static str, v: u64, min: u64, max: u64) -> Result<u64, CorruptKind> {
    if v.is_power_of_two() && (min..=max).contains(&v) { Ok(v) } else { Err(CorruptKind::BadSize { field, value: v }) }
}

impl FsDescriptor {
    /// VMware's name.
    pub const NAME: &'static str = "FS3_Descriptor";

    /// Parse and validate. Every size used later for arithmetic is checked here.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        need(b, FS_DESCRIPTOR_SIZE)?;
        let g32 = |o| u32_at(b, o).unwrap_or(0);
        let g64 = |o| u64_at(b, o).unwrap_or(0);
        let magic = g32(0x00);
        if magic != VMFS_MAGIC && magic != VMFSL_MAGIC {
            return Err(CorruptKind::BadMagic { found: magic });
        }
        let major = g32(0x04);
        if !(3..=40).contains(&major) {
            return Err(CorruptKind::OutOfRange { field: "majorVersion", value: major.into(), limit: 40 });
        }
        let d = Self {
            magic,
            major,
            minor: u8_at(b, 0x08).unwrap_or(0),
            uuid: VmwareUuid::at(b, 0x09).unwrap_or_default(),
            config: g32(0x19),
            label: cstr_at(b, 0x1d, 128).unwrap_or_default(),
            disk_block_size: g32(0x9d),
            file_block_size: pow2_in("fileBlockSize", g64(0xa1), 4096, 64 << 20)?,
            creation_time: g32(0xa9),
            lv_uuid: VmwareUuid::at(b, 0xb1).unwrap_or_default(),
            fdc_cluster_group_offset: g32(0xd1),
            fdc_clusters_per_group: g32(0xd5),
            sub_block_size: pow2_in("subBlockSize", g32(0xd9).into(), 512, 1 << 24)? as u32,
            pb2_vol_addr: g64(0xe1),
            pb2_fd_addr: g32(0xe9),
            sdd_vol_addr: g64(0x105),
            sdd_fd_addr: g32(0x10d),
            phys_disk_block_size: g32(0x130),
            md_alignment: g32(0x134),
            sfb_to_lfb_shift: u16_at(b, 0x138).unwrap_or(0),
        };
        if d.fdc_cluster_group_offset > (1 << 26) {
            return Err(CorruptKind::OutOfRange {
                field: "fdcClusterGroupOffset",
                value: d.fdc_cluster_group_offset.into(),
                limit: 1 << 26,
            });
        }
        if d.fdc_clusters_per_group == 0 || d.fdc_clusters_per_group > 4096 {
            return Err(CorruptKind::OutOfRange {
                field: "fdcClustersPerGroup",
                value: d.fdc_clusters_per_group.into(),
                limit: 4096,
            });
        }
        if d.is_vmfs6() {
            pow2_in("mdAlignment", d.md_alignment.into(), 4096, 1 << 20)?;
            if d.sfb_to_lfb_shift > 16 {
                return Err(CorruptKind::OutOfRange {
                    field: "sfbToLfbShift",
                    value: d.sfb_to_lfb_shift.into(),
                    limit: 16,
                });
            }
        }
        Ok(d)
    }

    /// Whether the VMFS6 layout applies.
    pub fn is_vmfs6(&self) -> bool {
        self.major >= VMFS6_MAJOR
    }

    /// Whether this is VMFS-L.
    pub fn is_vmfs_l(&self) -> bool {
        self.magic == VMFSL_MAGIC
    }

    /// The version the way admins say it: 3, 5 or 6.
    pub fn vmfs_version(&self) -> u32 {
        match self.major {
            0..=13 => 3,
            14..=23 => 5,
            _ => 6,
        }
    }

    /// Encode (for tests and the forge). The inverse of [`FsDescriptor::parse`].
    pub fn encode(&self) -> Vec<u8> {
        use crate::le::{put_u16, put_u32, put_u64};
        let mut b = vec![0u8; FS_DESCRIPTOR_SIZE];
        put_u32(&mut b, 0x00, self.magic);
        put_u32(&mut b, 0x04, self.major);
        b[0x08] = self.minor;
        b[0x09..0x19].copy_from_slice(&self.uuid.0);
        put_u32(&mut b, 0x19, self.config);
        let l = self.label.as_bytes();
        let n = l.len().min(127);
        b[0x1d..0x1d + n].copy_from_slice(&l[..n]);
        put_u32(&mut b, 0x9d, self.disk_block_size);
        put_u64(&mut b, 0xa1, self.file_block_size);
        put_u32(&mut b, 0xa9, self.creation_time);
        put_u32(&mut b, 0xad, 1);
        b[0xb1..0xc1].copy_from_slice(&self.lv_uuid.0);
        put_u32(&mut b, 0xd1, self.fdc_cluster_group_offset);
        put_u32(&mut b, 0xd5, self.fdc_clusters_per_group);
        put_u32(&mut b, 0xd9, self.sub_block_size);
        put_u64(&mut b, 0xe1, self.pb2_vol_addr);
        put_u32(&mut b, 0xe9, self.pb2_fd_addr);
        put_u64(&mut b, 0x105, self.sdd_vol_addr);
        put_u32(&mut b, 0x10d, self.sdd_fd_addr);
        put_u32(&mut b, 0x130, self.phys_disk_block_size);
        put_u32(&mut b, 0x134, self.md_alignment);
        put_u16(&mut b, 0x138, self.sfb_to_lfb_shift);
        b
    }
}

/// `FS3_DiskLock`: the lock block at the start of every FD and cluster header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskLock {
    /// 0x00 `type`: 0x10C00001 FD, 0x10C00002.. resource clusters.
    pub kind: u32,
    /// 0x04 `addr.offset`: the volume offset of this very block.
    pub self_offset: u64,
}

/// Lock type of a file descriptor.
pub const LOCK_TYPE_FD: u32 = 0x10C0_0001;

impl DiskLock {
    /// Parse the first 12 bytes.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        need(b, 12)?;
        Ok(Self { kind: u32_at(b, 0).unwrap_or(0), self_offset: u64_at(b, 4).unwrap_or(0) })
    }
}

/// `FS3_DescriptorType`: what an FD describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FdType {
    /// 1 `VOLUME`.
    Volume,
    /// 2 `DIRECTORY`.
    Directory,
    /// 3 `REGFILE`.
    File,
    /// 4 `SYMLINK`.
    Symlink,
    /// 5 `SYSFILE`.
    SysFile,
    /// 6 `RDM`.
    Rdm,
    /// Anything else (kept, never guessed).
    Other(u32),
}

impl FdType {
    /// From the raw value.
    pub fn from_raw(v: u32) -> Self {
        match v {
            1 => Self::Volume,
            2 => Self::Directory,
            3 => Self::File,
            4 => Self::Symlink,
            5 => Self::SysFile,
            6 => Self::Rdm,
            o => Self::Other(o),
        }
    }
    /// The raw value.
    pub fn raw(self) -> u32 {
        match self {
            Self::Volume => 1,
            Self::Directory => 2,
            Self::File => 3,
            Self::Symlink => 4,
            Self::SysFile => 5,
            Self::Rdm => 6,
            Self::Other(o) => o,
        }
    }
}

/// `FS3_ZeroLevelAddrType`: how an FD's pointer array is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zla {
    /// 0: no data (RDM).
    None,
    /// 1 `FILE_BLOCK`: pointers are FB/SFB/LFB.
    FileBlock,
    /// 2 `SUB_BLOCK`: pointers are SBs.
    SubBlock,
    /// 3 `POINTER_BLOCK`: single indirect.
    PointerBlock,
    /// 5 `POINTER2_BLOCK`: single indirect through PB2s.
    Pointer2Block,
    /// 0x10D0: double indirect.
    PointerBlockDouble,
    /// 0x10D1: data resident in the FD.
    Resident,
    /// Unknown value (kept).
    Other(u32),
}

impl Zla {
    /// From the raw value.
    pub fn from_raw(v: u32) -> Self {
        match v {
            0 => Self::None,
            1 => Self::FileBlock,
            2 => Self::SubBlock,
            3 => Self::PointerBlock,
            5 => Self::Pointer2Block,
            0x10D0 => Self::PointerBlockDouble,
            0x10D1 => Self::Resident,
            o => Self::Other(o),
        }
    }
    /// The raw value.
    pub fn raw(self) -> u32 {
        match self {
            Self::None => 0,
            Self::FileBlock => 1,
            Self::SubBlock => 2,
            Self::PointerBlock => 3,
            Self::Pointer2Block => 5,
            Self::PointerBlockDouble => 0x10D0,
            Self::Resident => 0x10D1,
            Self::Other(o) => o,
        }
    }
}

/// `FS3_FileMetadata`: the inode part of an FD (offsets relative to the metadata block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// 0x00 `descAddr`: the FD's own address.
    pub desc_addr: u32,
    /// 0x04 `generation`.
    pub generation: u32,
    /// 0x08 `linkCount`: 0 in freed FDs.
    pub link_count: u32,
    /// 0x0c `type`.
    pub kind: FdType,
    /// 0x10 `flags`.
    pub flags: u32,
    /// 0x14 `fileLength`.
    pub size: u64,
    /// 0x1c `blockSize`: allocation unit of this file.
    pub block_size: u64,
    /// 0x24 `numBlocks`.
    pub num_blocks: u64,
    /// 0x2c `mtime`.
    pub mtime: u32,
    /// 0x30 `ctime`.
    pub ctime: u32,
    /// 0x34 `atime`.
    pub atime: u32,
    /// 0x38 `uid`.
    pub uid: u32,
    /// 0x3c `gid`.
    pub gid: u32,
    /// 0x40 `mode`.
    pub mode: u32,
    /// 0x44 `zeroLevelAddrType`.
    pub zla: Zla,
    /// 0x48 / 0x54 `numTBZBlocksLo/Hi`.
    pub num_tbz: u64,
    /// 0x70 `parentFD` (VMFS6).
    pub parent_fd: u32,
    /// 0x89 `blockOffsetShift` (0 on VMFS3).
    pub block_offset_shift: u8,
}

/// Bytes of `FS3_FileMetadata` we parse.
pub const FILE_META_SIZE: usize = 0x90;

impl FileMeta {
    /// VMware's name.
    pub const NAME: &'static str = "FS3_FileMetadata";

    /// Parse the metadata block. Values are checked where they drive arithmetic.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        need(b, FILE_META_SIZE)?;
        let g32 = |o| u32_at(b, o).unwrap_or(0);
        let g64 = |o| u64_at(b, o).unwrap_or(0);
        Ok(Self {
            desc_addr: g32(0x00),
            generation: g32(0x04),
            link_count: g32(0x08),
            kind: FdType::from_raw(g32(0x0c)),
            flags: g32(0x10),
            size: g64(0x14),
            block_size: g64(0x1c),
            num_blocks: g64(0x24),
            mtime: g32(0x2c),
            ctime: g32(0x30),
            atime: g32(0x34),
            uid: g32(0x38),
            gid: g32(0x3c),
            mode: g32(0x40),
            zla: Zla::from_raw(g32(0x44)),
            num_tbz: u64::from(g32(0x48)) | (u64::from(g32(0x54)) << 32),
            parent_fd: g32(0x70),
            block_offset_shift: u8_at(b, 0x89).unwrap_or(0),
        })
    }
}

/// `FS3_ResFileMetadata`: the header of a resource (.sf) file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResFileMeta {
    /// 0x00 `resourcesPerCluster` (R).
    pub resources_per_cluster: u32,
    /// 0x04 `clustersPerGroup` (C).
    pub clusters_per_group: u32,
    /// 0x08 `clusterGroupOffset`: file offset of cluster group 0.
    pub cluster_group_offset: u32,
    /// 0x0c `resourceSize`: bytes per resource (0: bitmap only).
    pub resource_size: u32,
    /// 0x10 `clusterGroupSize`.
    pub cluster_group_size: u32,
    /// 0x14 / 0x1c `numResourcesLo/Hi`.
    pub num_resources: u64,
    /// 0x18 `numClusterGroups`.
    pub num_cluster_groups: u32,
    /// 0x20 `signature`: "rfmd" on VMFS6.
    pub signature: u32,
    /// 0x28 `flags`: 0x2 has a parent (VMFS6 SFB child of .fbb.sf).
    pub flags: u32,
    /// 0x34 `childMetaOffset`.
    pub child_meta_offset: u32,
    /// 0x38 `parentResourcesPerCluster`.
    pub parent_resources_per_cluster: u32,
    /// 0x3c `parentClustersPerGroup`.
    pub parent_clusters_per_group: u32,
    /// 0x40 `parentClusterGroupSize`.
    pub parent_cluster_group_size: u32,
}

/// `FS3_RFMD_SIGNATURE` ("rfmd" read as a little-endian u32).
pub const RFMD_SIGNATURE: u32 = 0x7266_6D64;
/// Bytes of `FS3_ResFileMetadata` we parse.
pub const RES_FILE_META_SIZE: usize = 0x58;

impl ResFileMeta {
    /// VMware's name.
    pub const NAME: &'static str = "FS3_ResFileMetadata";

    /// Parse; sizes that drive offsets are checked against generous caps.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        need(b, RES_FILE_META_SIZE)?;
        let g32 = |o| u32_at(b, o).unwrap_or(0);
        let m = Self {
            resources_per_cluster: g32(0x00),
            clusters_per_group: g32(0x04),
            cluster_group_offset: g32(0x08),
            resource_size: g32(0x0c),
            cluster_group_size: g32(0x10),
            num_resources: u64::from(g32(0x14)) | (u64::from(g32(0x1c)) << 32),
            num_cluster_groups: g32(0x18),
            signature: g32(0x20),
            flags: g32(0x28),
            child_meta_offset: g32(0x34),
            parent_resources_per_cluster: g32(0x38),
            parent_clusters_per_group: g32(0x3c),
            parent_cluster_group_size: g32(0x40),
        };
        let caps: [(&'static str, u32, u32); 4] = [
            ("resourcesPerCluster", m.resources_per_cluster, 1 << 16),
            ("clustersPerGroup", m.clusters_per_group, 1 << 16),
            ("resourceSize", m.resource_size, 1 << 26),
            ("clusterGroupOffset", m.cluster_group_offset, 1 << 26),
        ];
        for (field, value, limit) in caps {
            if value > limit {
                return Err(CorruptKind::OutOfRange { field, value: value.into(), limit: limit.into() });
            }
        }
        Ok(m)
    }
}

/// `FS3_DirEntry`: a VMFS3/5 directory record (0x8c bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry5 {
    /// 0x00 `type`.
    pub kind: FdType,
    /// 0x04 `descAddr`: FD address (0 = unused slot).
    pub desc_addr: u32,
    /// 0x08 `generation`.
    pub generation: u32,
    /// 0x0c `name[128]`, NUL padded.
    pub name: Vec<u8>,
}

/// Size of [`DirEntry5`].
pub const DIR_ENTRY5_SIZE: usize = 0x8c;

impl DirEntry5 {
    /// VMware's name.
    pub const NAME: &'static str = "FS3_DirEntry";
    /// Parse one record.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        need(b, DIR_ENTRY5_SIZE)?;
        Ok(Self {
            kind: FdType::from_raw(u32_at(b, 0).unwrap_or(0)),
            desc_addr: u32_at(b, 4).unwrap_or(0),
            generation: u32_at(b, 8).unwrap_or(0),
            name: raw_name(&b[0x0c..DIR_ENTRY5_SIZE]),
        })
    }
}

/// The bytes of a NUL-padded name up to the first NUL.
fn raw_name(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b[..end].to_vec()
}

/// `FS6_DIR_HEADER_VERSION`.
pub const DIR6_VERSION: u32 = 0x00F5_0001;
/// `FS6_DIR_HEADER_DEBUG_VERSION`.
pub const DIR6_DEBUG_VERSION: u32 = 0x00FD_C001;
/// `FS6_DIR_HEADER_BLOCK_SIZE`: directory blocks start after this header block.
pub const DIR6_HEADER_BLOCK_SIZE: u64 = 0x10000;
/// Size of `FS6_DirBlockHeader`.
pub const DIR6_BLOCK_HEADER_SIZE: usize = 0x40;
/// Size of `FS6_DirEntry`.
pub const DIR6_ENTRY_SIZE: usize = 0x120;
/// Bytes of `FS6_DirHeader`.
pub const DIR6_HEADER_SIZE: usize = 0x5f8;
/// Entries in `allocationMapBlocks`.
pub const DIR6_MAX_ALLOC_MAP_BLOCKS: usize = 128;

/// `FS6_DirEntry` (0x120 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry6 {
    /// 0x00 `type`.
    pub kind: FdType,
    /// 0x04 `address`: FD address.
    pub desc_addr: u32,
    /// 0x08 `generation`.
    pub generation: u32,
    /// 0x10 `offset`: the entry's own offset in the directory file.
    pub self_offset: u64,
    /// 0x18 `name[256]`.
    pub name: Vec<u8>,
}

impl DirEntry6 {
    /// VMware's name.
    pub const NAME: &'static str = "FS6_DirEntry";
    /// Parse one entry.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        need(b, DIR6_ENTRY_SIZE)?;
        Ok(Self {
            kind: FdType::from_raw(u32_at(b, 0).unwrap_or(0)),
            desc_addr: u32_at(b, 4).unwrap_or(0),
            generation: u32_at(b, 8).unwrap_or(0),
            self_offset: u64_at(b, 0x10).unwrap_or(0),
            name: raw_name(&b[0x18..0x118]),
        })
    }
}

/// `FS6_DirHeader`, at offset 0 of a VMFS6 directory file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirHeader6 {
    /// 0x00 `version`.
    pub version: u32,
    /// 0x04 `numEntries` (including . and ..).
    pub num_entries: u32,
    /// 0x10 `allocationMapBlocks[numAllocationMapBlocks]` (count at 0x0c).
    pub alloc_map_blocks: Vec<u32>,
    /// 0x3b8 `selfEntry`.
    pub self_entry: DirEntry6,
    /// 0x4d8 `parentEntry`.
    pub parent_entry: DirEntry6,
}

impl DirHeader6 {
    /// VMware's name.
    pub const NAME: &'static str = "FS6_DirHeader";
    /// Parse the header.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        need(b, DIR6_HEADER_SIZE)?;
        let version = u32_at(b, 0).unwrap_or(0);
        if version != DIR6_VERSION && version != DIR6_DEBUG_VERSION {
            return Err(CorruptKind::BadMagic { found: version });
        }
        let n = u32_at(b, 0x0c).unwrap_or(0);
        if n as usize > DIR6_MAX_ALLOC_MAP_BLOCKS {
            return Err(CorruptKind::OutOfRange {
                field: "numAllocationMapBlocks",
                value: n.into(),
                limit: DIR6_MAX_ALLOC_MAP_BLOCKS as u64,
            });
        }
        let alloc_map_blocks = (0..n as usize).filter_map(|i| u32_at(b, 0x10 + 4 * i)).collect();
        Ok(Self {
            version,
            num_entries: u32_at(b, 4).unwrap_or(0),
            alloc_map_blocks,
            self_entry: DirEntry6::parse(&b[0x3b8..])?,
            parent_entry: DirEntry6::parse(&b[0x4d8..])?,
        })
    }
}

/// `FS6_DirBlockHeader` (0x40 bytes) at the start of every directory block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirBlockHeader6 {
    /// 0x02 `type`: 1 dirent, 2 link, 3 allocation map.
    pub kind: u16,
    /// 0x04 `totalSlots`.
    pub total_slots: u16,
    /// 0x08 `bitmap[56]`: bit set = slot free.
    pub bitmap: [u8; 56],
}

impl DirBlockHeader6 {
    /// VMware's name.
    pub const NAME: &'static str = "FS6_DirBlockHeader";
    /// Parse a block header.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        need(b, DIR6_BLOCK_HEADER_SIZE)?;
        let mut bitmap = [0u8; 56];
        bitmap.copy_from_slice(&b[8..64]);
        Ok(Self { kind: u16_at(b, 2).unwrap_or(0), total_slots: u16_at(b, 4).unwrap_or(0), bitmap })
    }
    /// Whether slot `i` holds an entry.
    pub fn slot_used(&self, i: usize) -> bool {
        self.bitmap.get(i / 8).is_some_and(|byte| byte >> (i % 8) & 1 == 0)
    }
}

/// `SCSI_DiskId` as stored in an RDM FD's data area: which LUN the mapping points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiDiskId {
    /// 0x06 `vendor[8]`.
    pub vendor: String,
    /// 0x0e `model[16]`.
    pub model: String,
    /// 0x22 `id[44]` (the device identifier bytes, shown as text where printable).
    pub id: String,
    /// 0x02 `lun`.
    pub lun: u16,
}

impl ScsiDiskId {
    /// Parse from the FD data area.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        need(b, 0x4e)?;
        let text = |o: usize, n: usize| {
            let raw = &b[o..o + n];
            raw.iter()
                .map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { ' ' })
                .collect::<String>()
                .trim()
                .to_string()
        };
        Ok(Self { vendor: text(6, 8), model: text(0x0e, 16), id: text(0x22, 44), lun: u16_at(b, 2).unwrap_or(0) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FsDescriptor {
        FsDescriptor {
            magic: VMFS_MAGIC,
            major: 24,
            minor: 82,
            uuid: VmwareUuid([7; 16]),
            config: 0x4006,
            label: "ds1".into(),
            disk_block_size: 512,
            file_block_size: 1 << 20,
            creation_time: 1,
            lv_uuid: VmwareUuid([9; 16]),
            fdc_cluster_group_offset: 0x10000,
            fdc_clusters_per_group: 8,
            sub_block_size: 0x10000,
            pb2_vol_addr: 0x72c000,
            pb2_fd_addr: 0x0180_0004,
            sdd_vol_addr: 0,
            sdd_fd_addr: 0x01c0_0004,
            phys_disk_block_size: 512,
            md_alignment: 4096,
            sfb_to_lfb_shift: 9,
        }
    }

    #[test]
    fn descriptor_round_trips() {
        let d = sample();
        assert_eq!(FsDescriptor::parse(&d.encode()).unwrap(), d);
    }

    #[test]
    fn descriptor_rejects_each_broken_field() {
        let good = sample().encode();
        let mut b = good.clone();
        b[0..4].fill(0);
        assert_eq!(FsDescriptor::parse(&b), Err(CorruptKind::BadMagic { found: 0 }));
        let mut b = good.clone();
        crate::le::put_u64(&mut b, 0xa1, 3 << 20);
        assert_eq!(FsDescriptor::parse(&b), Err(CorruptKind::BadSize { field: "fileBlockSize", value: 3 << 20 }));
        for md in [0, 512, 3 << 12] {
            let mut b = good.clone();
            crate::le::put_u32(&mut b, 0x134, md);
            assert_eq!(FsDescriptor::parse(&b), Err(CorruptKind::BadSize { field: "mdAlignment", value: md.into() }));
        }
        let mut b = good.clone();
        crate::le::put_u32(&mut b, 0xd5, 0);
        assert!(matches!(FsDescriptor::parse(&b), Err(CorruptKind::OutOfRange { field: "fdcClustersPerGroup", .. })));
        assert_eq!(
            FsDescriptor::parse(&good[..100]),
            Err(CorruptKind::Truncated { have: 100, need: FS_DESCRIPTOR_SIZE })
        );
    }

    #[test]
    fn dir_header_rejects_absurd_map_count() {
        let mut b = vec![0u8; DIR6_HEADER_SIZE];
        crate::le::put_u32(&mut b, 0, DIR6_VERSION);
        crate::le::put_u32(&mut b, 0x0c, 1_000_000);
        assert!(matches!(DirHeader6::parse(&b), Err(CorruptKind::OutOfRange { .. })));
    }
}
