//! Partition tables: MBR (with the extended-partition chain) and GPT (primary header at LBA 1,
//! else the backup at the last LBA), at the source's sector size and then at the other of
//! 512 / 4096.
//!
//! Own parser rather than the `gpt` / `mbrman` crates (both in Cargo.toml for other uses): this
//! is about 300 lines we fully control, works on any [`BlockSource`] instead of `Read + Seek`,
//! never allocates from a disk count (entry count ≤ 1024, entry size 128..=4096, the EBR chain
//! ≤ 128 links with a visited set), keeps going past one bad copy to the other and tells which
//! copy it used and why, and accepts a GPT whose entry array fails its CRC as a last resort
//! (for recovery a damaged table is evidence, not a reason to stop) — behaviour those crates
//! do not offer and that is easy to fuzz here as pure functions over bytes.
#![deny(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]

use super::error::{CorruptKind, Error, Space, read_struct};
use crate::block::BlockSource;
use crate::le::{bytes, u8_at, u16_at, u32_at, u64_at};
use std::collections::HashSet;
use std::fmt;

/// MBR boot signature `55 AA` at 0x1FE, read as a little-endian u16.
pub const MBR_SIGNATURE: u16 = 0xAA55;
/// MBR partition type of a VMFS partition.
pub const MBR_TYPE_VMFS: u8 = 0xFB;
/// MBR partition type of a vmkcore (ESX diagnostic) partition.
pub const MBR_TYPE_VMKCORE: u8 = 0xFC;
/// MBR partition type of a GPT protective entry.
pub const MBR_TYPE_GPT_PROTECTIVE: u8 = 0xEE;
/// MBR partition types of an extended partition (CHS, LBA, Linux).
pub const MBR_TYPES_EXTENDED: [u8; 3] = [0x05, 0x0F, 0x85];
/// Cap on logical partitions followed through the EBR chain.
pub const MAX_LOGICAL_PARTITIONS: usize = 128;
/// GPT header signature.
pub const GPT_SIGNATURE: [u8; 8] = *b"EFI PART";
/// Smallest GPT header (revision 1.0).
pub const GPT_HEADER_MIN_SIZE: u32 = 92;
/// Cap on GPT partition entries (the spec's minimum array holds 128; 1024 leaves room).
pub const MAX_GPT_ENTRIES: u32 = 1024;
/// Smallest GPT partition entry.
pub const GPT_ENTRY_MIN_SIZE: u32 = 128;
/// Largest GPT partition entry accepted.
pub const GPT_ENTRY_MAX_SIZE: u32 = 4096;
/// Sector sizes tried for GPT.
pub const SECTOR_SIZES: [u32; 2] = [512, 4096];

/// A GUID as stored in GPT: the first three fields little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From the text form's fields (`AA31E02A-400F-11DB-9590-000C2911D1B8` is
    /// `from_fields(0xAA31E02A, 0x400F, 0x11DB, [0x95, 0x90, 0x00, 0x0C, 0x29, 0x11, 0xD1, 0xB8])`).
    pub const fn from_fields(a: u32, b: u16, c: u16, d: [u8; 8]) -> Self {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Guid([a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
    /// Whether all bytes are zero (an unused entry).
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        let a = u32_at(g, 0).unwrap_or(0);
        let b = u16_at(g, 4).unwrap_or(0);
        let c = u16_at(g, 6).unwrap_or(0);
        write!(f, "{a:08X}-{b:04X}-{c:04X}-")?;
        for (i, x) in g.iter().enumerate().skip(8) {
            if i == 10 {
                f.write_str("-")?;
            }
            write!(f, "{x:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// GPT type of a VMFS partition: `AA31E02A-400F-11DB-9590-000C2911D1B8`.
pub const GPT_TYPE_VMFS: Guid =
    Guid::from_fields(0xAA31_E02A, 0x400F, 0x11DB, [0x95, 0x90, 0x00, 0x0C, 0x29, 0x11, 0xD1, 0xB8]);
/// GPT type of a vmkcore partition: `9D275380-40AD-11DB-BF97-000C2911D1B8`.
pub const GPT_TYPE_VMKCORE: Guid =
    Guid::from_fields(0x9D27_5380, 0x40AD, 0x11DB, [0xBF, 0x97, 0x00, 0x0C, 0x29, 0x11, 0xD1, 0xB8]);

/// One MBR partition entry (16 bytes at 0x1BE + 16·i).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbrEntry {
    /// 0x00 status (0x80 bootable).
    pub status: u8,
    /// 0x04 partition type.
    pub kind: u8,
    /// 0x08 first LBA.
    pub first_lba: u32,
    /// 0x0C number of sectors.
    pub sectors: u32,
}

/// Parse an MBR (or EBR) sector: the four entries, `None` for unused ones. Fails without the
/// 0x55AA signature.
pub fn parse_mbr(sector: &[u8]) -> Result<[Option<MbrEntry>; 4], CorruptKind> {
    let short = || CorruptKind::TooShort { need: 512, have: sector.len() };
    let sig = u16_at(sector, 0x1FE).ok_or_else(short)?;
    if sig != MBR_SIGNATURE {
        return Err(CorruptKind::BadMagic { found: u32::from(sig) });
    }
    let mut out = [None; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let base = i.checked_mul(16).and_then(|x| x.checked_add(0x1BE)).ok_or_else(short)?;
        let at = |o: usize| base.saturating_add(o);
        let e = MbrEntry {
            status: u8_at(sector, base).ok_or_else(short)?,
            kind: u8_at(sector, at(4)).ok_or_else(short)?,
            first_lba: u32_at(sector, at(8)).ok_or_else(short)?,
            sectors: u32_at(sector, at(12)).ok_or_else(short)?,
        };
        if e.kind != 0 && e.sectors != 0 {
            *slot = Some(e);
        }
    }
    Ok(out)
}

/// A GPT header (UEFI spec, revision 1.0 fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GptHeader {
    /// 0x08 revision.
    pub revision: u32,
    /// 0x0C header size (92..=sector size).
    pub header_size: u32,
    /// 0x10 header CRC32 (over `header_size` bytes with this field zeroed).
    pub header_crc32: u32,
    /// 0x18 LBA of this header.
    pub my_lba: u64,
    /// 0x20 LBA of the other header.
    pub alternate_lba: u64,
    /// 0x28 first usable LBA.
    pub first_usable_lba: u64,
    /// 0x30 last usable LBA.
    pub last_usable_lba: u64,
    /// 0x38 disk GUID.
    pub disk_guid: Guid,
    /// 0x48 first LBA of the partition entry array.
    pub entries_lba: u64,
    /// 0x50 number of partition entries (≤ [`MAX_GPT_ENTRIES`]).
    pub num_entries: u32,
    /// 0x54 size of one entry (multiple of 8 in 128..=4096).
    pub entry_size: u32,
    /// 0x58 CRC32 of the entry array.
    pub entries_crc32: u32,
}

impl GptHeader {
    /// Structure name for errors.
    pub const NAME: &'static str = "GPT header";

    /// Parse and check a header read at LBA `lba` from a sector `b` (sector-size bytes).
    pub fn parse(b: &[u8], lba: u64) -> Result<Self, CorruptKind> {
        let short = || CorruptKind::TooShort { need: 92, have: b.len() };
        let sig = bytes::<8>(b, 0).ok_or_else(short)?;
        if sig != GPT_SIGNATURE {
            return Err(CorruptKind::BadSignature { found: u64::from_le_bytes(sig) });
        }
        let r32 = |o| u32_at(b, o).ok_or_else(short);
        let r64 = |o| u64_at(b, o).ok_or_else(short);
        let header_size = r32(0x0C)?;
        let hs = usize::try_from(header_size).unwrap_or(usize::MAX);
        if header_size < GPT_HEADER_MIN_SIZE || hs > b.len() {
            return Err(CorruptKind::HeaderSize(header_size));
        }
        let stored = r32(0x10)?;
        let computed = header_crc(b.get(..hs).ok_or_else(short)?);
        if stored != computed {
            return Err(CorruptKind::HeaderCrc { stored, computed });
        }
        let h = Self {
            revision: r32(0x08)?,
            header_size,
            header_crc32: stored,
            my_lba: r64(0x18)?,
            alternate_lba: r64(0x20)?,
            first_usable_lba: r64(0x28)?,
            last_usable_lba: r64(0x30)?,
            disk_guid: Guid(bytes::<16>(b, 0x38).ok_or_else(short)?),
            entries_lba: r64(0x48)?,
            num_entries: r32(0x50)?,
            entry_size: r32(0x54)?,
            entries_crc32: r32(0x58)?,
        };
        if h.my_lba != lba {
            return Err(CorruptKind::SelfLba { found: h.my_lba, expected: lba });
        }
        if h.num_entries > MAX_GPT_ENTRIES {
            return Err(CorruptKind::EntryCount { found: h.num_entries, max: MAX_GPT_ENTRIES });
        }
        if !(GPT_ENTRY_MIN_SIZE..=GPT_ENTRY_MAX_SIZE).contains(&h.entry_size) || !h.entry_size.is_multiple_of(8) {
            return Err(CorruptKind::EntrySize(h.entry_size));
        }
        Ok(h)
    }

    /// Bytes of the entry array (≤ 1024 × 4096 once parsed).
    pub fn entries_bytes(&self) -> usize {
        let n = usize::try_from(self.num_entries).unwrap_or(0);
        let s = usize::try_from(self.entry_size).unwrap_or(0);
        n.saturating_mul(s)
    }

    /// The header as 92 bytes with its CRC computed (for tests and the forge; `entries_crc32`
    /// is written as given).
    #[allow(clippy::indexing_slicing)] // constant offsets inside a constant-size buffer
    pub fn encode(&self) -> [u8; 92] {
        use crate::le::{put_u32, put_u64};
        let mut b = [0u8; 92];
        b[..8].copy_from_slice(&GPT_SIGNATURE);
        put_u32(&mut b, 0x08, self.revision);
        put_u32(&mut b, 0x0C, 92);
        put_u64(&mut b, 0x18, self.my_lba);
        put_u64(&mut b, 0x20, self.alternate_lba);
        put_u64(&mut b, 0x28, self.first_usable_lba);
        put_u64(&mut b, 0x30, self.last_usable_lba);
        b[0x38..0x48].copy_from_slice(&self.disk_guid.0);
        put_u64(&mut b, 0x48, self.entries_lba);
        put_u32(&mut b, 0x50, self.num_entries);
        put_u32(&mut b, 0x54, self.entry_size);
        put_u32(&mut b, 0x58, self.entries_crc32);
        let crc = header_crc(&b);
        put_u32(&mut b, 0x10, crc);
        b
    }
}

/// CRC32 of a header with its CRC field (0x10..0x14) taken as zero.
fn header_crc(h: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(h.get(..0x10).unwrap_or(h));
    c.update(&[0; 4]);
    c.update(h.get(0x14..).unwrap_or(&[]));
    c.finalize()
}

/// Check the entry array's CRC32 against the header.
pub fn check_entries_crc(array: &[u8], h: &GptHeader) -> Result<(), CorruptKind> {
    let computed = crc32fast::hash(array);
    if computed == h.entries_crc32 {
        Ok(())
    } else {
        Err(CorruptKind::EntriesCrc { stored: h.entries_crc32, computed })
    }
}

/// One used GPT partition entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptEntry {
    /// Index in the array, from 1 (as `sdX1`).
    pub index: u32,
    /// 0x00 partition type GUID.
    pub type_guid: Guid,
    /// 0x10 unique partition GUID.
    pub unique_guid: Guid,
    /// 0x20 first LBA.
    pub first_lba: u64,
    /// 0x28 last LBA (inclusive).
    pub last_lba: u64,
    /// 0x30 attribute flags.
    pub attributes: u64,
    /// 0x38 name, UTF-16LE, 36 code units.
    pub name: String,
}

/// The used entries (non-nil type) of an entry array of `entry_size`-byte entries.
pub fn parse_gpt_entries(array: &[u8], entry_size: u32) -> Vec<GptEntry> {
    let size = usize::try_from(entry_size).unwrap_or(usize::MAX).max(1);
    let mut out = Vec::new();
    for (i, e) in array.chunks_exact(size).enumerate() {
        let Some(type_guid) = bytes::<16>(e, 0).map(Guid) else { continue };
        if type_guid.is_nil() {
            continue;
        }
        let units: Vec<u16> = (0..36).map_while(|k: usize| u16_at(e, k.checked_mul(2)?.checked_add(0x38)?)).collect();
        let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
        out.push(GptEntry {
            index: u32::try_from(i).unwrap_or(u32::MAX).saturating_add(1),
            type_guid,
            unique_guid: bytes::<16>(e, 0x10).map(Guid).unwrap_or_default(),
            first_lba: u64_at(e, 0x20).unwrap_or(0),
            last_lba: u64_at(e, 0x28).unwrap_or(0),
            attributes: u64_at(e, 0x30).unwrap_or(0),
            name: String::from_utf16_lossy(units.get(..end).unwrap_or(&[])),
        });
    }
    out
}

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

/// The sectors of a GPT disk of `disk_len` bytes (protective MBR, both headers and entry
/// arrays) as `(offset, bytes)` regions, for tests. `parts` are `(type, first LBA, last LBA)`.
#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
pub(crate) fn forge_gpt(disk_len: u64, ss: usize, parts: &[(Guid, u64, u64)]) -> Vec<(u64, Vec<u8>)> {
    use crate::le::{put_u32, put_u64};
    let sectors = disk_len / ss as u64;
    let mut arr = vec![0u8; 128 * 128];
    for (i, (g, first, last)) in parts.iter().enumerate() {
        let e = &mut arr[i * 128..(i + 1) * 128];
        e[..16].copy_from_slice(&g.0);
        e[16] = i as u8 + 1;
        put_u64(e, 0x20, *first);
        put_u64(e, 0x28, *last);
        for (k, c) in "vmfs".encode_utf16().enumerate() {
            crate::le::put_u16(e, 0x38 + 2 * k, c);
        }
    }
    let arr_sectors = (arr.len() / ss) as u64;
    let crc = crc32fast::hash(&arr);
    let mut h = GptHeader {
        revision: 0x10000,
        header_size: 92,
        header_crc32: 0,
        my_lba: 1,
        alternate_lba: sectors - 1,
        first_usable_lba: 2 + arr_sectors,
        last_usable_lba: sectors - 2 - arr_sectors,
        disk_guid: Guid([7; 16]),
        entries_lba: 2,
        num_entries: 128,
        entry_size: 128,
        entries_crc32: crc,
    };
    let mut out = Vec::new();
    let mut mbr = vec![0u8; 512];
    mbr[0x1BE + 4] = MBR_TYPE_GPT_PROTECTIVE;
    put_u32(&mut mbr, 0x1BE + 8, 1);
    put_u32(&mut mbr, 0x1BE + 12, u32::try_from(sectors - 1).unwrap_or(u32::MAX));
    mbr[0x1FE] = 0x55;
    mbr[0x1FF] = 0xAA;
    out.push((0, mbr));
    out.push((ss as u64, h.encode().to_vec()));
    out.push((2 * ss as u64, arr.clone()));
    h.my_lba = sectors - 1;
    h.alternate_lba = 1;
    h.entries_lba = sectors - 1 - arr_sectors;
    out.push(((sectors - 1) * ss as u64, h.encode().to_vec()));
    out.push((h.entries_lba * ss as u64, arr));
    out
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use crate::le::put_u32;

    fn src(data: Vec<u8>) -> Tolerant<MemSource> {
        Tolerant::new(MemSource::new("disk.img", data))
    }

    #[test]
    fn guid_text_and_bytes() {
        assert_eq!(GPT_TYPE_VMFS.to_string(), "AA31E02A-400F-11DB-9590-000C2911D1B8");
        assert_eq!(&GPT_TYPE_VMFS.0[..4], &[0x2A, 0xE0, 0x31, 0xAA]);
        assert_eq!(GPT_TYPE_VMKCORE.to_string(), "9D275380-40AD-11DB-BF97-000C2911D1B8");
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

    fn gpt_disk(ss: usize) -> Vec<u8> {
        let mut d = vec![0u8; 64 << 20];
        let lba = |b: u64| b / ss as u64;
        for (off, b) in forge_gpt(d.len() as u64, ss, &[(GPT_TYPE_VMFS, lba(1 << 20), lba(33 << 20) - 1)]) {
            d[off as usize..off as usize + b.len()].copy_from_slice(&b);
        }
        d
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
    fn gpt_header_breaks_give_their_kind() {
        let d = gpt_disk(512);
        let good: Vec<u8> = d[512..1024].to_vec();
        assert!(GptHeader::parse(&good, 1).is_ok());
        assert!(matches!(GptHeader::parse(&good, 2), Err(CorruptKind::SelfLba { found: 1, expected: 2 })));
        let mut b = good.clone();
        b[0] = b'X';
        assert!(matches!(GptHeader::parse(&b, 1), Err(CorruptKind::BadSignature { .. })));
        let mut b = good.clone();
        b[0x58] ^= 1;
        assert!(matches!(GptHeader::parse(&b, 1), Err(CorruptKind::HeaderCrc { .. })));
        let reseal = |b: &mut Vec<u8>| {
            b[0x10..0x14].fill(0);
            let crc = header_crc(&b[..92]);
            put_u32(b, 0x10, crc);
        };
        let mut b = good.clone();
        put_u32(&mut b, 0x50, 100_000);
        reseal(&mut b);
        assert_eq!(GptHeader::parse(&b, 1), Err(CorruptKind::EntryCount { found: 100_000, max: MAX_GPT_ENTRIES }));
        let mut b = good.clone();
        put_u32(&mut b, 0x54, 8192);
        reseal(&mut b);
        assert_eq!(GptHeader::parse(&b, 1), Err(CorruptKind::EntrySize(8192)));
        let mut b = good.clone();
        put_u32(&mut b, 0x54, 130);
        reseal(&mut b);
        assert_eq!(GptHeader::parse(&b, 1), Err(CorruptKind::EntrySize(130)));
        let mut b = good.clone();
        put_u32(&mut b, 0x0C, 4096);
        assert_eq!(GptHeader::parse(&b, 1), Err(CorruptKind::HeaderSize(4096)));
        let mut b = good;
        put_u32(&mut b, 0x0C, 12);
        assert_eq!(GptHeader::parse(&b, 1), Err(CorruptKind::HeaderSize(12)));
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
