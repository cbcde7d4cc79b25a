//! Sizes and offsets that follow from the FS descriptor: never constants where the disk says.

use super::error::{CorruptKind, Error, Result};
use super::ondisk::{CONFIG_DENSE_SBPC, FS_DESCRIPTOR_OFFSET, FsDescriptor};

/// Derived layout of one volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// VMFS6 layout (64-bit pointers, md blocks, hashed directories).
    pub v6: bool,
    /// SB addresses carry two extra resource bits.
    pub dense_sbpc: bool,
    /// File block (FB / SFB) size.
    pub fbs: u64,
    /// Sub-block size.
    pub sbs: u64,
    /// Large file block size (VMFS6), 0 before.
    pub lfb: u64,
    /// Metadata alignment (VMFS6), 512 on VMFS3/5.
    pub md: u64,
    /// Size of one FD.
    pub fd_size: usize,
    /// Offset of `FS3_FileMetadata` inside an FD.
    pub meta_off: usize,
    /// Offset and size of the resident data area inside an FD.
    pub data_off: usize,
    /// See `data_off`.
    pub data_size: usize,
    /// Offset of the block-pointer array inside an FD.
    pub ptrs_off: usize,
    /// Number of block pointers in an FD.
    pub ptrs_count: usize,
    /// Bytes per pointer: 4 (VMFS3/5) or 8 (VMFS6).
    pub ptr_width: usize,
    /// Pointers per pointer block.
    pub pb_entries: u64,
    /// Size of one cluster header (lock + cluster metadata) in a resource file.
    pub cluster_header_size: u64,
}

impl Geometry {
    /// Derive the layout from a validated descriptor (`Vol3OpenStage1VMFS5/6`).
    pub fn from_descriptor(d: &FsDescriptor) -> Result<Self> {
        let v6 = d.is_vmfs6();
        let dense_sbpc = d.config & CONFIG_DENSE_SBPC != 0;
        if v6 {
            let md = u64::from(d.md_alignment);
            let fd_size = 2 * md as usize;
            let data_size = md as usize - 512;
            let ptrs_size = if md <= 0x1000 { 2560 } else { (md >> 1) as usize };
            let lfb = d.file_block_size.checked_shl(d.sfb_to_lfb_shift.into()).unwrap_or(0);
            if lfb == 0 || lfb > (1 << 40) {
                return Err(Error::corrupt(
                    FsDescriptor::NAME,
                    FS_DESCRIPTOR_OFFSET,
                    CorruptKind::BadSize { field: "sfbToLfbShift", value: d.sfb_to_lfb_shift.into() },
                ));
            }
            Ok(Self {
                v6,
                dense_sbpc,
                fbs: d.file_block_size,
                sbs: d.sub_block_size.into(),
                lfb,
                md,
                fd_size,
                meta_off: md as usize,
                data_off: fd_size - data_size,
                data_size,
                ptrs_off: fd_size - ptrs_size,
                ptrs_count: ptrs_size / 8,
                ptr_width: 8,
                pb_entries: if md < 0x10000 { 8192 } else { md >> 3 },
                cluster_header_size: 2 * md,
            })
        } else {
            Ok(Self {
                v6,
                dense_sbpc,
                fbs: d.file_block_size,
                sbs: d.sub_block_size.into(),
                lfb: 0,
                md: 512,
                fd_size: 2048,
                meta_off: 512,
                data_off: 1024,
                data_size: 1024,
                ptrs_off: 1024,
                ptrs_count: 256,
                ptr_width: 4,
                pb_entries: 1024,
                cluster_header_size: 1024,
            })
        }
    }

    /// Volume offset of system FD number `resource` (cluster 0), found without .fdc.sf
    /// (`Res3_GetSFDOffset`): the bootstrap of the whole file system.
    pub fn system_fd_offset(&self, d: &FsDescriptor, fd_addr: u32) -> Option<u64> {
        let resource = u64::from((fd_addr >> 22) & 0x3FF);
        let cgo = u64::from(d.fdc_cluster_group_offset);
        let cpg = u64::from(d.fdc_clusters_per_group);
        if self.v6 {
            // The .fdc.sf starts at the first MiB boundary after the heartbeat region.
            let base = ((self.md << 10) + 0x3F_FFFF) & !0xF_FFFF;
            let rsz = 2 * self.md;
            return Some(base + cgo + cpg * rsz + resource * rsz);
        }
        if !self.dense_sbpc {
            // Volumes upgraded from VMFS3 keep these two FDs where the descriptor says.
            if fd_addr == d.pb2_fd_addr && d.pb2_vol_addr != 0 {
                return Some(d.pb2_vol_addr);
            }
            if fd_addr == d.sdd_fd_addr && d.sdd_vol_addr != 0 {
                return Some(d.sdd_vol_addr);
            }
        }
        // .fdc.sf starts at the first file block at or after 4 MiB.
        let base = self.fbs.checked_mul(self.fbs.checked_add(0x3F_FFFF)? / self.fbs)?;
        Some(base + cgo + cpg * 1024 + (resource << 11))
    }
}
