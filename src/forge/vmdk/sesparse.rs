//! SEsparse delta extents (reference §6): constant header, volatile header, journal header,
//! then journal, grain directory, grain tables, free bitmap, back map and grain area, each
//! region 1 MiB-aligned and sized for the capacity as in the real ESXi sample (512 MiB disk:
//! 2048 sectors each). Grains are 4 KiB; the file ends after the last used grain.

use super::delta::Delta;
use crate::block::SparseMem;
use crate::forge::ForgeError;
use crate::le::put_u64;
use std::collections::BTreeMap;

/// Constant header magic (0x00).
pub const SES_MAGIC: u64 = 0xCAFE_BABE;
/// Version "2.1" (0x08).
pub const SES_VERSION: u64 = 0x0000_0002_0000_0001;
/// Volatile header magic.
pub const SES_VOLATILE_MAGIC: u64 = 0xCAFE_CAFE;
/// Journal header magic (sector 2 of the sample).
pub const SES_JOURNAL_HEADER_MAGIC: u64 = 0xDEAF_C0DE;
/// Grain size in sectors (qemu requires 8).
pub const SES_GRAIN_SECTORS: u64 = 8;
/// Grain table size in sectors (qemu requires 64): 4096 u64 entries.
pub const SES_GT_SECTORS: u64 = 64;
/// Grains per grain table.
pub const SES_GT_ENTRIES: u64 = SES_GT_SECTORS * 512 / 8;
/// Region alignment and minimum size: 1 MiB in sectors.
const REGION: u64 = 2048;

/// GTE / GDE type nibbles (bits 60..63).
const TYPE_GT_PRESENT: u64 = 1;
const TYPE_ALLOCATED: u64 = 3;
/// Back-map entries carry type 1 (observed).
const TYPE_BACKMAP: u64 = 1;

/// Header fields a forge may want to vary.
#[derive(Clone, Debug)]
pub struct SesparseOptions {
    /// Volatile header `nextTxnSeqNumber`, echoed in the journal header (sample: 0x24).
    pub next_txn: u64,
    /// Set the volatile header's `replayJournal` (a dirty extent qemu refuses).
    pub dirty: bool,
}

impl Default for SesparseOptions {
    fn default() -> Self {
        Self { next_txn: 0x24, dirty: false }
    }
}

/// Sector offsets and sizes of the regions, derived from the capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SesLayout {
    /// Capacity in sectors.
    pub capacity: u64,
    /// Journal (offset, size).
    pub journal: (u64, u64),
    /// Grain directory (offset, size).
    pub gd: (u64, u64),
    /// Grain tables (offset, size).
    pub gts: (u64, u64),
    /// Free bitmap (offset, size).
    pub bitmap: (u64, u64),
    /// Back map (offset, size).
    pub backmap: (u64, u64),
    /// Grain area (offset, size).
    pub grains: (u64, u64),
}

impl SesLayout {
    /// Each region holds what the capacity needs, rounded up to 1 MiB: for 512 MiB this gives
    /// the sample's 2048/4096/6144/8192/10240/12288 layout.
    pub fn for_capacity(capacity: u64) -> Self {
        let grains = capacity.div_ceil(SES_GRAIN_SECTORS);
        let tables = grains.div_ceil(SES_GT_ENTRIES);
        let round = |sectors: u64| sectors.div_ceil(REGION).max(1) * REGION;
        let journal = (REGION, REGION);
        let gd = (journal.0 + journal.1, round((tables * 8).div_ceil(512)));
        let gts = (gd.0 + gd.1, round(tables * SES_GT_SECTORS));
        let bitmap = (gts.0 + gts.1, round(grains.div_ceil(8).div_ceil(512)));
        let backmap = (bitmap.0 + bitmap.1, round((grains * 8).div_ceil(512)));
        let area = (backmap.0 + backmap.1, grains * SES_GRAIN_SECTORS);
        Self { capacity, journal, gd, gts, bitmap, backmap, grains: area }
    }
}

/// Encode a grain index the way GTEs and back-map entries hold it: low 12 bits in 48..59,
/// the rest in 0..47, type in 60..63.
pub fn shuffle(kind: u64, index: u64) -> u64 {
    (kind << 60) | ((index & 0xFFF) << 48) | ((index >> 12) & 0xFFFF_FFFF_FFFF)
}

/// The SEsparse extent of `delta`: touched 4 KiB grains in LBA order, GT slots in slice order.
pub fn sesparse_extent(delta: &Delta, opts: &SesparseOptions) -> Result<SparseMem, ForgeError> {
    let cap = delta.capacity_sectors();
    let l = SesLayout::for_capacity(cap);
    if cap.div_ceil(SES_GRAIN_SECTORS) >= 1 << 60 {
        return Err(ForgeError::Layout(format!("SEsparse capacity {cap} sectors is too large")));
    }
    let grains = delta.grains(SES_GRAIN_SECTORS * 512);
    let mut regions = BTreeMap::new();
    let mut gd = vec![0u8; (cap.div_ceil(SES_GRAIN_SECTORS).div_ceil(SES_GT_ENTRIES) * 8) as usize];
    let mut bitmap = vec![0u8; grains.len().div_ceil(8)];
    let mut backmap = vec![0u8; grains.len() * 8];
    let mut data = vec![0u8; grains.len() * 4096];
    let mut gt_slots: u64 = 0;
    let mut i = 0;
    while i < grains.len() {
        let slice = grains[i] / SES_GT_ENTRIES;
        let mut gt = vec![0u8; (SES_GT_ENTRIES * 8) as usize];
        while i < grains.len() && grains[i] / SES_GT_ENTRIES == slice {
            let g = grains[i];
            let slot = i as u64;
            put_u64(&mut gt, ((g % SES_GT_ENTRIES) * 8) as usize, shuffle(TYPE_ALLOCATED, slot));
            put_u64(&mut backmap, i * 8, shuffle(TYPE_BACKMAP, g));
            bitmap[i / 8] |= 1 << (i % 8);
            delta.read_merged(g * 4096, &mut data[i * 4096..(i + 1) * 4096])?;
            i += 1;
        }
        put_u64(&mut gd, (slice * 8) as usize, (TYPE_GT_PRESENT << 60) | gt_slots);
        regions.insert((l.gts.0 + gt_slots * SES_GT_SECTORS) * 512, gt);
        gt_slots += 1;
    }

    let mut h = vec![0u8; 512];
    let fields: [(usize, u64); 21] = [
        (0, SES_MAGIC),
        (8, SES_VERSION),
        (16, cap),
        (24, SES_GRAIN_SECTORS),
        (32, SES_GT_SECTORS),
        (80, 1),
        (88, 1),
        (96, 2),
        (104, 2),
        (112, l.journal.0),
        (120, l.journal.1),
        (128, l.gd.0),
        (136, l.gd.1),
        (144, l.gts.0),
        (152, l.gts.1),
        (160, l.bitmap.0),
        (168, l.bitmap.1),
        (176, l.backmap.0),
        (184, l.backmap.1),
        (192, l.grains.0),
        (200, l.grains.1),
    ];
    for (off, v) in fields {
        put_u64(&mut h, off, v);
    }
    let mut vol = vec![0u8; 512];
    put_u64(&mut vol, 0, SES_VOLATILE_MAGIC);
    put_u64(&mut vol, 8, gt_slots);
    put_u64(&mut vol, 16, opts.next_txn);
    put_u64(&mut vol, 24, u64::from(opts.dirty));
    let mut jh = vec![0u8; 1024];
    put_u64(&mut jh, 0, SES_JOURNAL_HEADER_MAGIC);
    put_u64(&mut jh, 8, opts.next_txn);
    put_u64(&mut jh, 16, 1);

    regions.insert(0, h);
    regions.insert(512, vol);
    regions.insert(1024, jh);
    regions.insert(l.gd.0 * 512, gd);
    regions.insert(l.bitmap.0 * 512, bitmap);
    regions.insert(l.backmap.0 * 512, backmap);
    regions.insert(l.grains.0 * 512, data);
    let len = (l.grains.0 + grains.len() as u64 * SES_GRAIN_SECTORS) * 512;
    Ok(SparseMem { name: "SEsparse delta".into(), len, regions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_esxi_sample() {
        let l = SesLayout::for_capacity(0x10_0000);
        assert_eq!(l.journal, (2048, 2048));
        assert_eq!(l.gd, (4096, 2048));
        assert_eq!(l.gts, (6144, 2048));
        assert_eq!(l.bitmap, (8192, 2048));
        assert_eq!(l.backmap, (10240, 2048));
        assert_eq!(l.grains, (12288, 0x10_0000));
        // Sample GT entry 1 and back-map entry 4095.
        assert_eq!(shuffle(3, 1), 0x3001_0000_0000_0000);
        assert_eq!(shuffle(1, 4095), 0x1FFF_0000_0000_0000);
        assert_eq!(shuffle(3, 4096), 0x3000_0000_0000_0001);
    }
}
