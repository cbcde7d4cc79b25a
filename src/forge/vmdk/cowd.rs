//! vmfsSparse ("COWD") delta extents as ESXi writes them (reference §5): a 4-sector header, the
//! grain directory at sector 4, then each grain table (4096 u32 entries) allocated on first use
//! and followed by the data sectors of its entries. Grains are one sector.

use super::delta::Delta;
use crate::block::SparseMem;
use crate::forge::ForgeError;
use crate::le::put_u32;
use std::collections::BTreeMap;

/// "COWD" read as a little-endian u32.
pub const COWD_MAGIC: u32 = 0x4457_4F43;
/// Header length in sectors; the GD follows it.
pub const COWD_GD_SECTOR: u32 = 4;
/// Entries per grain table (not stored in the header: fixed by every implementation).
pub const COWD_GT_ENTRIES: u64 = 4096;
/// `flags` seen on ESXi deltas: ROOT (0x1) | CHECKCAPABLE (0x2).
pub const COWD_FLAGS: u32 = 3;

/// Header fields a forge may want to vary.
#[derive(Clone, Debug, Default)]
pub struct CowdOptions {
    /// 0x424 `generation`.
    pub generation: u32,
    /// 0x420 `parentGeneration`.
    pub parent_generation: u32,
    /// 0x20 legacy `parentFileName` (empty on modern ESXi).
    pub parent_file_name: String,
    /// Set 0x670 `uncleanShutdown` (and leave `savedGeneration` behind `generation`).
    pub dirty: bool,
}

/// The COWD extent of `delta`: written sectors in LBA order, one GT per touched 2 MiB slice.
pub fn vmfs_sparse_extent(delta: &Delta, opts: &CowdOptions) -> Result<SparseMem, ForgeError> {
    let cap = delta.capacity_sectors();
    let num_sectors = u32::try_from(cap)
        .map_err(|_| ForgeError::Layout(format!("COWD capacity {cap} sectors exceeds 2^32-1 (use SEsparse)")))?;
    if opts.parent_file_name.len() >= 1024 {
        return Err(ForgeError::Layout("COWD parentFileName longer than 1023 bytes".into()));
    }
    let num_gde = cap.div_ceil(COWD_GT_ENTRIES);
    let gd_sectors = (num_gde * 4).div_ceil(512);
    let mut free = u64::from(COWD_GD_SECTOR) + gd_sectors;
    let mut gd = vec![0u8; (gd_sectors * 512) as usize];
    let mut regions = BTreeMap::new();

    let sectors = delta.grains(512);
    let mut i = 0;
    while i < sectors.len() {
        let slice = sectors[i] / COWD_GT_ENTRIES;
        let mut j = i;
        while j < sectors.len() && sectors[j] / COWD_GT_ENTRIES == slice {
            j += 1;
        }
        let group = &sectors[i..j];
        let gt_sector = free;
        let data_sector = gt_sector + COWD_GT_ENTRIES * 4 / 512;
        put_u32(&mut gd, (slice * 4) as usize, sector_u32(gt_sector)?);
        let mut gt = vec![0u8; (COWD_GT_ENTRIES * 4) as usize];
        let mut data = vec![0u8; group.len() * 512];
        for (k, &s) in group.iter().enumerate() {
            put_u32(&mut gt, ((s % COWD_GT_ENTRIES) * 4) as usize, sector_u32(data_sector + k as u64)?);
            delta.read_merged(s * 512, &mut data[k * 512..(k + 1) * 512])?;
        }
        regions.insert(gt_sector * 512, gt);
        regions.insert(data_sector * 512, data);
        free = data_sector + group.len() as u64;
        i = j;
    }

    let mut h = vec![0u8; 2048];
    put_u32(&mut h, 0x00, COWD_MAGIC);
    put_u32(&mut h, 0x04, 1);
    put_u32(&mut h, 0x08, COWD_FLAGS);
    put_u32(&mut h, 0x0C, num_sectors);
    put_u32(&mut h, 0x10, 1);
    put_u32(&mut h, 0x14, COWD_GD_SECTOR);
    put_u32(&mut h, 0x18, sector_u32(num_gde)?);
    put_u32(&mut h, 0x1C, sector_u32(free)?);
    h[0x20..0x20 + opts.parent_file_name.len()].copy_from_slice(opts.parent_file_name.as_bytes());
    put_u32(&mut h, 0x420, opts.parent_generation);
    put_u32(&mut h, 0x424, opts.generation);
    let saved = if opts.dirty { opts.generation.wrapping_sub(1) } else { opts.generation };
    put_u32(&mut h, 0x664, saved);
    put_u32(&mut h, 0x670, u32::from(opts.dirty));
    regions.insert(0, h);
    regions.insert(u64::from(COWD_GD_SECTOR) * 512, gd);
    Ok(SparseMem { name: "COWD delta".into(), len: free * 512, regions })
}

fn sector_u32(s: u64) -> Result<u32, ForgeError> {
    u32::try_from(s).map_err(|_| ForgeError::Layout(format!("COWD sector {s} does not fit in 32 bits")))
}
