//! ESXi SEsparse deltas (constant magic 0xCAFEBABE), research/vmdk-format.md §6.
//!
//! A constant header (sector 0, 64-bit fields giving every region's sector offset and size),
//! a volatile header, a grain directory of u64 entries naming grain-table *slots* (the tables
//! are not in virtual order), and grain tables of 4096 u64 entries typed by their top nibble.

use super::error::{Result, VdiskError};
use super::extent::ExtentReader;
use super::grains::{Grain, GrainExtent, GrainFormat, Table, read_meta, u64_at};
use crate::block::Source;
use std::sync::Arc;

/// SEsparse constant header magic.
pub const SESPARSE_MAGIC: u64 = 0xCAFE_BABE;
/// Volatile header magic (the real sample; dissect's 0xCAFEBABE for it is wrong).
pub const VOLATILE_MAGIC: u64 = 0xCAFE_CAFE;
/// The only version seen ("2.1").
pub const VERSION: u64 = 0x0000_0002_0000_0001;
/// Sectors per grain (qemu requires 8).
pub const GRAIN_SECTORS: u64 = 8;
/// Sectors per grain table (qemu requires 64: 4096 u64 entries).
pub const GT_SECTORS: u64 = 64;
const GT_ENTRIES: u64 = GT_SECTORS * 512 / 8;

struct Ses {
    file: Source,
    capacity: u64,
    gd: Vec<u64>,
    /// Grain-table region (byte offset, number of table slots).
    gts: (u64, u64),
    /// Grain region (byte offset, number of grain slots).
    grains: (u64, u64),
}

impl Ses {
    /// The byte offset of the table a directory entry names, None when the entry is damaged.
    fn table_offset(&self, gde: u64) -> Option<u64> {
        if gde >> 60 != 1 || (gde >> 32) & 0x0FFF_FFFF != 0 {
            return None;
        }
        let slot = gde & 0xFFFF_FFFF;
        (slot < self.gts.1).then(|| self.gts.0 + slot * GT_SECTORS * 512)
    }

    fn entry(&self, gte: u64) -> Grain {
        match gte >> 60 {
            0 if gte == 0 => Grain::Unallocated,
            // Type 1 = a guest SCSI UNMAP: the guest discarded the range. qemu and XO read
            // zeros, dissect reads the parent; zeros is the safer reading (research §6.3).
            1 | 2 => Grain::Zero,
            3 => {
                let g = ((gte >> 48) & 0xFFF) | ((gte & 0x0000_FFFF_FFFF_FFFF) << 12);
                if g < self.grains.1 { Grain::Data(self.grains.0 + g * GRAIN_SECTORS * 512) } else { Grain::Unreadable }
            }
            _ => Grain::Unreadable,
        }
    }
}

impl GrainFormat for Ses {
    fn grain_bytes(&self) -> u64 {
        GRAIN_SECTORS * 512
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
        let Some(off) = self.table_offset(gde) else { return Table::Uniform(Grain::Unreadable) };
        let Some(b) = read_meta(&self.file, off, (GT_ENTRIES * 8) as usize) else {
            return Table::Uniform(Grain::Unreadable);
        };
        Table::Entries(Arc::new((0..GT_ENTRIES as usize).map(|i| self.entry(u64_at(&b, i * 8))).collect()))
    }
}

/// A region (offset, size) of the constant header, in bytes, checked for overflow.
fn region(name: &str, h: &[u8], at: usize) -> Result<(u64, u64)> {
    let (o, s) = (u64_at(h, at), u64_at(h, at + 8));
    match (o.checked_mul(512), s.checked_mul(512)) {
        (Some(ob), Some(sb)) if ob.checked_add(sb).is_some() => Ok((ob, sb)),
        _ => Err(VdiskError::corrupt(
            name,
            "SEsparse constant header",
            at as u64,
            format!("region offset {o:#x} size {s:#x} sectors overflows"),
        )),
    }
}

/// Open an SEsparse extent of `len` bytes (from the descriptor line).
pub fn open(name: &str, src: Source, len: u64) -> Result<Box<dyn ExtentReader>> {
    let corrupt = |off: u64, what: String| VdiskError::corrupt(name, "SEsparse constant header", off, what);
    if src.len() < 512 {
        return Err(corrupt(0, format!("file is {} bytes, shorter than the header", src.len())));
    }
    let mut h = vec![0u8; 512];
    src.read_at(0, &mut h)?;
    if u64_at(&h, 0) != SESPARSE_MAGIC {
        return Err(corrupt(0, format!("constMagic {:#x}, not {SESPARSE_MAGIC:#x}", u64_at(&h, 0))));
    }
    if u64_at(&h, 8) != VERSION {
        return Err(VdiskError::Unsupported {
            file: name.into(),
            what: format!("SEsparse version {:#x}", u64_at(&h, 8)),
        });
    }
    let cap_sectors = u64_at(&h, 16);
    for (at, want, what) in [(24, GRAIN_SECTORS, "grainSize"), (32, GT_SECTORS, "grainTableSize")] {
        if u64_at(&h, at) != want {
            return Err(corrupt(at as u64, format!("{what} {} sectors, not {want}", u64_at(&h, at))));
        }
    }
    if u64_at(&h, 40) != 0 {
        return Err(VdiskError::Unsupported {
            file: name.into(),
            what: format!("SEsparse flags {:#x}", u64_at(&h, 40)),
        });
    }
    let mut problems = Vec::new();
    // qemu also refuses non-zero reserved fields and padding; they change no offset we use, so
    // a recovery reader reports them and reads on.
    if h[48..80].iter().chain(&h[208..512]).any(|&b| b != 0) {
        problems.push("SEsparse constant header: reserved fields or padding not zero (qemu refuses this)".into());
    }
    let capacity = cap_sectors
        .checked_mul(512)
        .ok_or_else(|| corrupt(16, format!("capacity {cap_sectors:#x} sectors overflows")))?;
    let vol = region(name, &h, 80)?;
    let gd = region(name, &h, 128)?;
    let gts = region(name, &h, 144)?;
    let grains = region(name, &h, 192)?;

    let coverage = GT_ENTRIES * GRAIN_SECTORS * 512;
    let need = capacity.div_ceil(coverage);
    if need.saturating_mul(8) > gd.1 {
        return Err(corrupt(
            136,
            format!("grain directory of {} bytes; capacity {capacity} needs {need} entries", gd.1),
        ));
    }
    let gd_end = gd.0 + need * 8;
    if gd_end > src.len() {
        return Err(corrupt(
            128,
            format!("grain directory {:#x}..{gd_end:#x} ends past the file ({:#x})", gd.0, src.len()),
        ));
    }
    let gd_bytes = read_meta(&src, gd.0, (need * 8) as usize)
        .ok_or_else(|| VdiskError::corrupt(name, "SEsparse grain directory", gd.0, "unreadable sectors"))?;
    let gd_entries: Vec<u64> = (0..need as usize).map(|i| u64_at(&gd_bytes, i * 8)).collect();

    match read_meta(&src, vol.0, 512) {
        None => problems.push(format!("SEsparse volatile header at {:#x} unreadable", vol.0)),
        Some(v) => {
            if u64_at(&v, 0) != VOLATILE_MAGIC {
                problems.push(format!("SEsparse volatile header magic {:#x}, not {VOLATILE_MAGIC:#x}", u64_at(&v, 0)));
            }
            // qemu refuses a dirty extent. The journal format is undocumented, so we cannot
            // replay it; reading the tables as they are gives the state of the last metadata
            // checkpoint, which beats no data. Read anyway and say so.
            if u64_at(&v, 24) != 0 {
                problems.push(format!(
                    "SEsparse replayJournal = {:#x}: the journal was not replayed (format undocumented); writes \
                     still only in the journal are missing and may read from the parent",
                    u64_at(&v, 24)
                ));
            }
        }
    }
    if capacity != len {
        problems.push(format!(
            "SEsparse header capacity {capacity} bytes differs from the descriptor's {len}; {}",
            if capacity < len { "the rest falls through to the parent" } else { "the rest is ignored" }
        ));
    }
    let s = Ses {
        file: src.clone(),
        capacity,
        gd: gd_entries,
        gts: (gts.0, gts.1 / (GT_SECTORS * 512)),
        grains: (grains.0, grains.1 / (GRAIN_SECTORS * 512)),
    };
    let bad: Vec<usize> = (0..s.gd.len()).filter(|&i| s.gd[i] != 0 && s.table_offset(s.gd[i]).is_none()).collect();
    if let Some(&first) = bad.first() {
        problems.push(format!(
            "{} grain directory entries damaged (first: entry {first} = {:#018x}); their 16 MiB slices read as zeros",
            bad.len(),
            s.gd[first]
        ));
    }
    Ok(Box::new(GrainExtent::new(s, src, len, problems)))
}
