//! ESXi vmfsSparse deltas (magic "COWD"), research/vmdk-format.md §5.
//!
//! Layout: a 2048-byte header (4 sectors), the grain directory at `gdOffset` (u32 sector of
//! each grain table, 0 = none), grain tables of 4096 u32 entries (sector of the grain, 0 = in
//! the parent), allocated lazily between the data.

use super::error::{Result, VdiskError};
use super::extent::ExtentReader;
use super::grains::{Grain, GrainExtent, GrainFormat, Table, read_meta, u32_at};
use crate::block::Source;
use std::sync::Arc;

/// "COWD" at offset 0, little-endian.
pub const COWD_MAGIC: u32 = 0x4457_4F43;
/// Header size in bytes.
pub const HEADER_BYTES: usize = 2048;
/// Entries per grain table (not stored in the header; every source agrees).
pub const GT_ENTRIES: u64 = 4096;
/// Largest grain: "one sector to 1MB" (VMware technote).
pub const MAX_GRAIN_SECTORS: u32 = 2048;
/// Header flag: the extent was left inconsistent.
const FLAG_INCONSISTENT: u32 = 0x4;

struct Cowd {
    file: Source,
    capacity: u64,
    grain_sectors: u64,
    /// First sector after the header and the grain directory: no grain or table lies before it.
    meta_end: u64,
    gd: Vec<u32>,
}

impl Cowd {
    fn gt_ok(&self, sector: u32) -> bool {
        let off = u64::from(sector) * 512;
        u64::from(sector) >= self.meta_end && off + GT_ENTRIES * 4 <= self.file.len()
    }
}

impl GrainFormat for Cowd {
    fn grain_bytes(&self) -> u64 {
        self.grain_sectors * 512
    }
    fn table_grains(&self) -> u64 {
        GT_ENTRIES
    }
    fn capacity(&self) -> u64 {
        self.capacity
    }
    fn load_table(&self, index: u64) -> Table {
        let Some(&gde) = self.gd.get(index as usize) else { return Table::Uniform(Grain::Unreadable) };
        if gde == 0 {
            return Table::Uniform(Grain::Unallocated);
        }
        if !self.gt_ok(gde) {
            return Table::Uniform(Grain::Unreadable);
        }
        let Some(b) = read_meta(&self.file, u64::from(gde) * 512, (GT_ENTRIES * 4) as usize) else {
            return Table::Uniform(Grain::Unreadable);
        };
        let entries = (0..GT_ENTRIES as usize)
            .map(|i| match u32_at(&b, i * 4) {
                0 => Grain::Unallocated,
                // GTE 1 would put the grain in sector 1, inside this header: it cannot be a
                // pointer. The technote defines 1 = "zeroed grain" only for hosted sparse and
                // qemu/dissect would read header bytes; we follow XO and the hosted-sparse
                // rule (research §5.2, §10): zeros that hide the parent.
                1 => Grain::Zero,
                s if u64::from(s) < self.meta_end => Grain::Unreadable,
                s => Grain::Data(u64::from(s) * 512),
            })
            .collect();
        Table::Entries(Arc::new(entries))
    }
}

/// Open a COWD extent of `len` bytes (from the descriptor line).
pub fn open(name: &str, src: Source, len: u64) -> Result<Box<dyn ExtentReader>> {
    let corrupt = |off: u64, what: String| VdiskError::corrupt(name, "COWDisk_Header", off, what);
    if src.len() < HEADER_BYTES as u64 {
        return Err(corrupt(0, format!("file is {} bytes, the header alone is {HEADER_BYTES}", src.len())));
    }
    let mut h = vec![0u8; HEADER_BYTES];
    src.read_at(0, &mut h)?;
    if u32_at(&h, 0) != COWD_MAGIC {
        return Err(corrupt(0, format!("magic {:#010x}, not \"COWD\"", u32_at(&h, 0))));
    }
    let version = u32_at(&h, 4);
    if version != 1 {
        return Err(VdiskError::Unsupported { file: name.into(), what: format!("COWD version {version}") });
    }
    let flags = u32_at(&h, 8);
    let num_sectors = u32_at(&h, 12);
    let grain = u32_at(&h, 16);
    let gd_offset = u32_at(&h, 20);
    let num_gde = u32_at(&h, 24);
    if grain == 0 || grain > MAX_GRAIN_SECTORS {
        return Err(corrupt(16, format!("grainSize {grain} sectors (1..={MAX_GRAIN_SECTORS})")));
    }
    if gd_offset < 4 {
        return Err(corrupt(20, format!("gdOffset {gd_offset}: inside the 4-sector header")));
    }
    let coverage = GT_ENTRIES * u64::from(grain);
    let need = u64::from(num_sectors).div_ceil(coverage);
    if u64::from(num_gde) < need {
        return Err(corrupt(24, format!("numGDEntries {num_gde}: numSectors {num_sectors} needs {need}")));
    }
    let gd_start = u64::from(gd_offset) * 512;
    // Only the entries the capacity needs are used, but the directory the header claims must fit.
    let gd_end = gd_start + u64::from(num_gde) * 4;
    if gd_end > src.len() {
        return Err(corrupt(
            24,
            format!(
                "grain directory {gd_start:#x}..{gd_end:#x} ({num_gde} entries) ends past the file ({:#x})",
                src.len()
            ),
        ));
    }
    let gd_bytes = read_meta(&src, gd_start, (need * 4) as usize)
        .ok_or_else(|| VdiskError::corrupt(name, "COWD grain directory", gd_start, "unreadable sectors"))?;
    let gd: Vec<u32> = (0..need as usize).map(|i| u32_at(&gd_bytes, i * 4)).collect();
    let meta_end = gd_end.div_ceil(512);

    let mut problems = Vec::new();
    let capacity = u64::from(num_sectors) * 512;
    if capacity != len {
        problems.push(format!(
            "COWD header capacity {capacity} bytes differs from the descriptor's {len}; {}",
            if capacity < len { "the rest falls through to the parent" } else { "the rest is ignored" }
        ));
    }
    if flags & FLAG_INCONSISTENT != 0 {
        problems.push(format!("COWD flags {flags:#x}: marked inconsistent"));
    }
    if u32_at(&h, 1648) != 0 {
        problems.push("COWD uncleanShutdown set: the delta was not closed cleanly".into());
    }
    let c = Cowd { file: src.clone(), capacity, grain_sectors: u64::from(grain), meta_end, gd };
    let bad: Vec<usize> = (0..c.gd.len()).filter(|&i| c.gd[i] != 0 && !c.gt_ok(c.gd[i])).collect();
    if let Some(&first) = bad.first() {
        problems.push(format!(
            "{} grain directory entries point outside the file (first: entry {first} = sector {}); their {} MiB \
             slices read as zeros",
            bad.len(),
            c.gd[first],
            coverage / 2048
        ));
    }
    Ok(Box::new(GrainExtent::new(c, src, len, problems)))
}
