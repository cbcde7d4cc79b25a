//! Partition tables: MBR (with the extended-partition chain) and GPT (primary header at LBA 1,
//! else the backup at the last LBA), at the source's sector size and then at the other of
//! 512 / 4096.
//!
//! [`ondisk`] holds the layouts (MBR / EBR entries, GPT header and entries, GUIDs, type codes,
//! caps) and their pure parse / encode functions; this file reads them from a source and builds
//! the [`PartitionTable`]: which copy is used, what is clamped, what is noted as damage.
//!
//! Own parser rather than the `gpt` / `mbrman` crates (both in Cargo.toml for other uses): this
//! is about 300 lines we fully control, works on any [`BlockSource`] instead of `Read + Seek`,
//! never allocates from a disk count (entry count ≤ 1024, entry size 128..=4096, the EBR chain
//! ≤ 128 links with a visited set), keeps going past one bad copy to the other and tells which
//! copy it used and why, and accepts a GPT whose entry array fails its CRC as a last resort
//! (for recovery a damaged table is evidence, not a reason to stop) — behaviour those crates
//! do not offer and that is easy to fuzz here as pure functions over bytes.
#![deny(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]

pub mod ondisk;

pub use ondisk::*;

use super::error::{CorruptKind, Error, Space, read_struct};
use crate::block::BlockSource;
use std::collections::HashSet;

/// Which table a partition came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// An MBR entry (primary or logical).
    Mbr {
        /// Partition type byte.
        type_byte: u8,
        /// Whether it is a logical partition inside an extended one.
        logical: bool,
    },
    /// A GPT entry.
    Gpt {
        /// Partition type GUID.
        type_guid: Guid,
        /// Partition name.
        name: String,
    },
}

/// A partition, in bytes on the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Number as the OS would give it (GPT entry index; MBR 1-4 primary, 5+ logical).
    pub index: u32,
    /// Byte offset on the source.
    pub start: u64,
    /// Byte length (clamped to the source).
    pub len: u64,
    /// Table and type.
    pub kind: PartKind,
}

impl Partition {
    /// Whether the table marks it as VMFS.
    pub fn is_vmfs(&self) -> bool {
        match &self.kind {
            PartKind::Mbr { type_byte, .. } => *type_byte == MBR_TYPE_VMFS,
            PartKind::Gpt { type_guid, .. } => *type_guid == GPT_TYPE_VMFS,
        }
    }

    /// A short description: `GPT partition 1`, `MBR partition 2 type 0xfb`.
    pub fn describe(&self) -> String {
        match &self.kind {
            PartKind::Mbr { type_byte, .. } => format!("MBR partition {} type {type_byte:#04x}", self.index),
            PartKind::Gpt { type_guid, name } if *type_guid == GPT_TYPE_VMFS => {
                format!(
                    "GPT partition {} (VMFS{})",
                    self.index,
                    if name.is_empty() { String::new() } else { format!(" \"{name}\"") }
                )
            }
            PartKind::Gpt { type_guid, .. } if *type_guid == GPT_TYPE_VMKCORE => {
                format!("GPT partition {} (vmkcore)", self.index)
            }
            PartKind::Gpt { type_guid, .. } => format!("GPT partition {} (type {type_guid})", self.index),
        }
    }
}

/// The kind of table found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// MBR (possibly with logical partitions).
    Mbr,
    /// GPT.
    Gpt {
        /// Sector size its LBAs are in.
        sector_size: u32,
        /// Whether the backup header (last LBA) was used.
        backup: bool,
    },
}

/// A partition table as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionTable {
    /// MBR or GPT.
    pub scheme: Scheme,
    /// Partitions in table order.
    pub partitions: Vec<Partition>,
    /// Whether something was wrong (a bad copy, a CRC mismatch, entries out of range).
    pub damaged: bool,
    /// What was wrong, and what was done about it.
    pub notes: Vec<String>,
}

/// Read the partition table of `src`: GPT (primary, else backup; at the source's sector size,
/// then the other of 512/4096), else MBR. `Ok(None)` when there is no table at all; `Err` only
/// when the source cannot be read.
pub fn read_partition_table(src: &dyn BlockSource) -> Result<Option<PartitionTable>, Error> {
    if src.len() < 512 {
        return Ok(None);
    }
    let sector0 = read_struct(src, Space::Disk, "MBR", 0, 512)?;
    let mbr = parse_mbr(&sector0).ok();
    let protective = mbr.is_some_and(|m| m.iter().flatten().any(|e| e.kind == MBR_TYPE_GPT_PROTECTIVE));
    let native = src.sector_size();
    let mut sizes = vec![native];
    sizes.extend(SECTOR_SIZES.iter().copied().filter(|&s| s != native));
    let mut notes = Vec::new();
    for &ss in &sizes {
        match read_gpt(src, ss)? {
            GptAttempt::Found(t) => return Ok(Some(t)),
            // Say why a GPT was not used only where one was expected or partly there.
            GptAttempt::NotFound { notes: n, seen } if seen || protective => notes.extend(n),
            GptAttempt::NotFound { .. } => {}
        }
    }
    if protective {
        notes.push("protective MBR (type 0xee) but no readable GPT at 512- or 4096-byte sectors".into());
    }
    match mbr {
        Some(entries) => {
            let mut t = read_mbr(src, &entries, native)?;
            t.damaged |= protective || !notes.is_empty();
            t.notes.splice(0..0, notes);
            Ok(Some(t))
        }
        None if !notes.is_empty() => {
            Ok(Some(PartitionTable { scheme: Scheme::Mbr, partitions: Vec::new(), damaged: true, notes }))
        }
        None => Ok(None),
    }
}

/// What one GPT attempt at one sector size gave.
enum GptAttempt {
    /// A usable table (possibly from the backup, possibly damaged).
    Found(PartitionTable),
    /// No usable table; why, and whether any GPT signature was seen.
    NotFound { notes: Vec<String>, seen: bool },
}

/// Try GPT at sector size `ss`: primary at LBA 1, then the backup at the last LBA; a copy whose
/// header is intact but whose entry array fails its CRC is used only when no copy is intact.
fn read_gpt(src: &dyn BlockSource, ss: u32) -> Result<GptAttempt, Error> {
    let ss64 = u64::from(ss);
    let sectors = src.len().checked_div(ss64).unwrap_or(0);
    if sectors < 3 {
        return Ok(GptAttempt::NotFound { notes: Vec::new(), seen: false });
    }
    let ss_len = usize::try_from(ss).unwrap_or(512);
    let last = sectors.saturating_sub(1);
    let mut fallback: Option<(GptHeader, Vec<u8>, bool)> = None;
    let mut notes = Vec::new();
    let mut seen = false;
    for (lba, backup) in [(1u64, false), (last, true)] {
        let off = lba.saturating_mul(ss64);
        let b = read_struct(src, Space::Disk, GptHeader::NAME, off, ss_len)?;
        let which = if backup { "backup" } else { "primary" };
        let h = match GptHeader::parse(&b, lba) {
            Ok(h) => h,
            Err(k) => {
                seen |= !matches!(k, CorruptKind::BadSignature { .. });
                notes.push(format!("GPT {which} header at disk offset {off:#x} ({ss}-byte sectors): {k}"));
                continue;
            }
        };
        seen = true;
        let arr_len = h.entries_bytes();
        let arr_off = h
            .entries_lba
            .checked_mul(ss64)
            .filter(|o| o.checked_add(u64::try_from(arr_len).unwrap_or(u64::MAX)).is_some_and(|e| e <= src.len()));
        let Some(arr_off) = arr_off else {
            notes.push(format!("GPT {which} header: entry array at LBA {} lies outside the disk", h.entries_lba));
            continue;
        };
        let arr = read_struct(src, Space::Disk, "GPT partition entry array", arr_off, arr_len)?;
        match check_entries_crc(&arr, &h) {
            Ok(()) => {
                if backup {
                    notes.push(format!("used the backup GPT header at LBA {lba}"));
                }
                let damaged = backup;
                return Ok(GptAttempt::Found(gpt_table(src, &h, &arr, ss, backup, damaged, notes)));
            }
            Err(k) => {
                notes.push(format!("GPT {which} entry array at disk offset {arr_off:#x}: {k}"));
                if fallback.is_none() {
                    fallback = Some((h, arr, backup));
                }
            }
        }
    }
    if let Some((h, arr, backup)) = fallback {
        notes.push(
            "no GPT copy is intact; the entries of the first readable copy are used despite the CRC mismatch".into(),
        );
        return Ok(GptAttempt::Found(gpt_table(src, &h, &arr, ss, backup, true, notes)));
    }
    Ok(GptAttempt::NotFound { notes, seen })
}

fn gpt_table(
    src: &dyn BlockSource,
    h: &GptHeader,
    arr: &[u8],
    ss: u32,
    backup: bool,
    damaged: bool,
    mut notes: Vec<String>,
) -> PartitionTable {
    let ss64 = u64::from(ss);
    let mut partitions = Vec::new();
    let mut damaged = damaged;
    for e in parse_gpt_entries(arr, h.entry_size) {
        let start = e.first_lba.checked_mul(ss64);
        let end = e.last_lba.checked_add(1).and_then(|l| l.checked_mul(ss64));
        let (Some(start), Some(end)) = (start, end) else {
            notes.push(format!("GPT entry {}: LBAs {}..={} overflow", e.index, e.first_lba, e.last_lba));
            damaged = true;
            continue;
        };
        if end <= start || start >= src.len() {
            notes.push(format!("GPT entry {}: LBAs {}..={} outside the disk", e.index, e.first_lba, e.last_lba));
            damaged = true;
            continue;
        }
        if end > src.len() {
            notes.push(format!("GPT entry {}: ends past the end of the disk; clamped", e.index));
            damaged = true;
        }
        let len = end.min(src.len()).saturating_sub(start);
        partitions.push(Partition {
            index: e.index,
            start,
            len,
            kind: PartKind::Gpt { type_guid: e.type_guid, name: e.name },
        });
    }
    PartitionTable { scheme: Scheme::Gpt { sector_size: ss, backup }, partitions, damaged, notes }
}

fn read_mbr(src: &dyn BlockSource, entries: &[Option<MbrEntry>; 4], ss: u32) -> Result<PartitionTable, Error> {
    let ss64 = u64::from(ss);
    let mut t = PartitionTable { scheme: Scheme::Mbr, partitions: Vec::new(), damaged: false, notes: Vec::new() };
    let mut extended = None;
    for (i, e) in entries.iter().enumerate() {
        let Some(e) = e else { continue };
        let index = u32::try_from(i).unwrap_or(0).saturating_add(1);
        if MBR_TYPES_EXTENDED.contains(&e.kind) {
            extended = extended.or(Some(*e));
            continue;
        }
        push_mbr(src, &mut t, index, u64::from(e.first_lba), e, ss64, false);
    }
    if let Some(ext) = extended {
        let base = u64::from(ext.first_lba);
        let mut ebr_lba = base;
        let mut seen = HashSet::new();
        let mut index = 5u32;
        loop {
            if seen.len() >= MAX_LOGICAL_PARTITIONS {
                t.notes.push(format!("extended partition chain longer than {MAX_LOGICAL_PARTITIONS} links; stopped"));
                t.damaged = true;
                break;
            }
            if !seen.insert(ebr_lba) {
                t.notes.push(format!("extended partition chain loops back to LBA {ebr_lba}; stopped"));
                t.damaged = true;
                break;
            }
            let off = ebr_lba.saturating_mul(ss64);
            if off.checked_add(512).is_none_or(|e| e > src.len()) {
                t.notes.push(format!("EBR at LBA {ebr_lba} lies past the end of the disk"));
                t.damaged = true;
                break;
            }
            let b = read_struct(src, Space::Disk, "EBR", off, 512)?;
            let Ok(ebr) = parse_mbr(&b) else {
                t.notes.push(format!("EBR at disk offset {off:#x} has no 0x55AA signature; chain stopped"));
                t.damaged = true;
                break;
            };
            if let Some(e) = ebr[0] {
                push_mbr(src, &mut t, index, ebr_lba.saturating_add(u64::from(e.first_lba)), &e, ss64, true);
                index = index.saturating_add(1);
            }
            match ebr[1] {
                Some(next) if MBR_TYPES_EXTENDED.contains(&next.kind) => {
                    ebr_lba = base.saturating_add(u64::from(next.first_lba));
                }
                _ => break,
            }
        }
    }
    Ok(t)
}

fn push_mbr(src: &dyn BlockSource, t: &mut PartitionTable, index: u32, lba: u64, e: &MbrEntry, ss: u64, logical: bool) {
    let start = lba.saturating_mul(ss);
    let len = u64::from(e.sectors).saturating_mul(ss);
    if start >= src.len() {
        t.notes.push(format!("MBR partition {index}: starts past the end of the disk (LBA {lba})"));
        t.damaged = true;
        return;
    }
    let avail = src.len().saturating_sub(start);
    if len > avail {
        t.notes.push(format!("MBR partition {index}: ends past the end of the disk; clamped"));
        t.damaged = true;
    }
    t.partitions.push(Partition {
        index,
        start,
        len: len.min(avail),
        kind: PartKind::Mbr { type_byte: e.kind, logical },
    });
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
mod tests {
    use super::ondisk::tests::gpt_disk;
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use crate::le::put_u32;

    fn src(data: Vec<u8>) -> Tolerant<MemSource> {
        Tolerant::new(MemSource::new("disk.img", data))
    }

    fn mbr_disk() -> Vec<u8> {
        let mut d = vec![0u8; 64 << 20];
        // Partition 1: VMFS at LBA 2048, 16 MiB; partition 2: extended at LBA 40960 with one
        // logical Linux partition and a second EBR that loops back to the first.
        d[0x1BE + 4] = MBR_TYPE_VMFS;
        put_u32(&mut d, 0x1BE + 8, 2048);
        put_u32(&mut d, 0x1BE + 12, 32768);
        d[0x1CE + 4] = 0x0F;
        put_u32(&mut d, 0x1CE + 8, 40960);
        put_u32(&mut d, 0x1CE + 12, 40960);
        d[0x1FE] = 0x55;
        d[0x1FF] = 0xAA;
        let ebr = 40960 * 512;
        d[ebr + 0x1BE + 4] = 0x83;
        put_u32(&mut d, ebr + 0x1BE + 8, 63);
        put_u32(&mut d, ebr + 0x1BE + 12, 1000);
        d[ebr + 0x1CE + 4] = 0x05;
        put_u32(&mut d, ebr + 0x1CE + 8, 0); // loops to itself
        put_u32(&mut d, ebr + 0x1CE + 12, 1);
        d[ebr + 0x1FE] = 0x55;
        d[ebr + 0x1FF] = 0xAA;
        d
    }

    #[test]
    fn mbr_with_logical_partitions_and_a_looping_chain() {
        let t = read_partition_table(&src(mbr_disk())).unwrap().unwrap();
        assert_eq!(t.scheme, Scheme::Mbr);
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(t.partitions[0].start, 0x100000);
        assert_eq!(t.partitions[0].len, 16 << 20);
        assert!(t.partitions[0].is_vmfs());
        assert_eq!(t.partitions[0].describe(), "MBR partition 1 type 0xfb");
        assert_eq!(t.partitions[1].index, 5);
        assert_eq!(t.partitions[1].start, (40960 + 63) * 512);
        assert!(t.damaged, "the loop is damage");
        assert!(t.notes.iter().any(|n| n.contains("loops back")), "{:?}", t.notes);
    }

    #[test]
    fn mbr_without_signature_is_no_table() {
        let mut d = mbr_disk();
        d[0x1FE] = 0;
        assert_eq!(read_partition_table(&src(d.clone())).unwrap(), None);
        assert_eq!(parse_mbr(&d[..512]), Err(CorruptKind::BadMagic { found: 0xAA00 }));
        assert_eq!(parse_mbr(&d[..100]), Err(CorruptKind::TooShort { need: 512, have: 100 }));
    }

    #[test]
    fn gpt_primary() {
        let t = read_partition_table(&src(gpt_disk(512))).unwrap().unwrap();
        assert_eq!(t.scheme, Scheme::Gpt { sector_size: 512, backup: false });
        assert!(!t.damaged, "{:?}", t.notes);
        assert_eq!(t.partitions.len(), 1);
        let p = &t.partitions[0];
        assert_eq!((p.index, p.start, p.len), (1, 1 << 20, 32 << 20));
        assert!(p.is_vmfs());
        assert_eq!(p.describe(), "GPT partition 1 (VMFS \"vmfs\")");
    }

    #[test]
    fn gpt_at_4096_byte_sectors_on_a_512_source() {
        let t = read_partition_table(&src(gpt_disk(4096))).unwrap().unwrap();
        assert_eq!(t.scheme, Scheme::Gpt { sector_size: 4096, backup: false });
        assert_eq!(t.partitions[0].start, 1 << 20);
    }

    #[test]
    fn gpt_bad_primary_header_falls_back_to_backup() {
        let mut d = gpt_disk(512);
        d[512 + 0x20] ^= 1; // alternate_lba: breaks the header CRC
        let t = read_partition_table(&src(d)).unwrap().unwrap();
        assert_eq!(t.scheme, Scheme::Gpt { sector_size: 512, backup: true });
        assert!(t.damaged);
        assert!(t.notes.iter().any(|n| n.contains("header CRC32")), "{:?}", t.notes);
        assert_eq!(t.partitions[0].start, 1 << 20);
    }

    #[test]
    fn gpt_bad_primary_array_falls_back_to_backup() {
        let mut d = gpt_disk(512);
        d[1024 + 0x20] ^= 1; // first entry's first LBA, primary copy
        let t = read_partition_table(&src(d)).unwrap().unwrap();
        assert_eq!(t.scheme, Scheme::Gpt { sector_size: 512, backup: true });
        assert_eq!(t.partitions[0].start, 1 << 20);
        assert!(t.notes.iter().any(|n| n.contains("entry array CRC32")), "{:?}", t.notes);
    }

    #[test]
    fn gpt_both_arrays_bad_uses_entries_anyway() {
        let mut d = gpt_disk(512);
        let n = d.len();
        d[1024 + 0x30] ^= 1; // attributes, primary
        let backup_arr = n - 512 - 128 * 128;
        d[backup_arr + 0x30] ^= 1;
        let t = read_partition_table(&src(d)).unwrap().unwrap();
        assert!(t.damaged);
        assert_eq!(t.partitions.len(), 1);
    }

    #[test]
    fn protective_mbr_without_gpt_is_damaged_and_empty() {
        let mut d = gpt_disk(512);
        let n = d.len();
        d[512..1024].fill(0);
        d[n - 512..].fill(0);
        let t = read_partition_table(&src(d)).unwrap().unwrap();
        assert!(t.damaged);
        assert!(t.partitions.iter().all(|p| !p.is_vmfs()));
        assert!(t.notes.iter().any(|n| n.contains("protective MBR")), "{:?}", t.notes);
    }

    #[test]
    fn hostile_entry_array_offsets_do_not_panic() {
        let mut d = gpt_disk(512);
        // Entry array LBA far past the end, resealed.
        let mut b = d[512..1024].to_vec();
        crate::le::put_u64(&mut b, 0x48, u64::MAX / 3);
        b[0x10..0x14].fill(0);
        let crc = header_crc(&b[..92]);
        put_u32(&mut b, 0x10, crc);
        d[512..1024].copy_from_slice(&b);
        let t = read_partition_table(&src(d)).unwrap().unwrap();
        assert_eq!(t.scheme, Scheme::Gpt { sector_size: 512, backup: true });
        // Truncated source: nothing to read.
        assert_eq!(read_partition_table(&src(vec![0; 100])).unwrap(), None);
    }
}
