//! Partition table layouts: the MBR / EBR sector and its entries, the GPT header and entry
//! array, GUIDs, type codes and caps, as pure parse / encode functions over bytes (no I/O, no
//! allocation sized by a disk field). [`super`] reads them from a source and builds the
//! [`PartitionTable`](super::PartitionTable).
#![deny(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]

use crate::container::error::CorruptKind;
use crate::le::{bytes, u8_at, u16_at, u32_at, u64_at};
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

    /// The 16 bytes at `o` of `b` (zeros where `b` is too short).
    pub fn at(b: &[u8], o: usize) -> Self {
        Self(o.checked_add(16).and_then(|e| b.get(o..e)).and_then(|s| s.try_into().ok()).unwrap_or([0; 16]))
    }

    /// Lowercase hyphenated text, as Windows prints it (without braces).
    pub fn text(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }

    /// Parse "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" (braces optional).
    pub fn parse_text(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('{').trim_end_matches('}');
        let parts: Vec<&str> = s.split('-').collect();
        let [p1, p2, p3, p4, p5] = parts.as_slice() else { return None };
        let lens = [p1.len(), p2.len(), p3.len(), p4.len(), p5.len()];
        if lens != [8, 4, 4, 4, 12] || !s.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
            return None;
        }
        let d1 = u32::from_str_radix(p1, 16).ok()?;
        let d2 = u16::from_str_radix(p2, 16).ok()?;
        let d3 = u16::from_str_radix(p3, 16).ok()?;
        let tail = format!("{p4}{p5}");
        let mut d4 = [0u8; 8];
        for (d, pair) in d4.iter_mut().zip(tail.as_bytes().chunks_exact(2)) {
            *d = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Self::from_fields(d1, d2, d3, d4))
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
pub(super) fn header_crc(h: &[u8]) -> u32 {
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

/// The sectors of a GPT disk of `disk_len` bytes (protective MBR, both headers and entry
/// arrays) as `(offset, bytes)` regions, for tests and the forge. `parts` are `(type, first
/// LBA, last LBA)`; every partition is named "vmfs" and gets a unique GUID derived from
/// `disk_guid`.
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
pub fn gpt_regions(disk_len: u64, ss: usize, disk_guid: Guid, parts: &[(Guid, u64, u64)]) -> Vec<(u64, Vec<u8>)> {
    use crate::le::{put_u32, put_u64};
    let sectors = disk_len / ss as u64;
    let mut arr = vec![0u8; 128 * 128];
    for (i, (g, first, last)) in parts.iter().enumerate() {
        let e = &mut arr[i * 128..(i + 1) * 128];
        e[..16].copy_from_slice(&g.0);
        e[16..32].copy_from_slice(&disk_guid.0);
        e[16] ^= i as u8 + 1;
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
        disk_guid,
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
pub(crate) mod tests {
    use super::*;
    use crate::le::put_u32;

    #[test]
    fn guid_text_and_bytes() {
        assert_eq!(GPT_TYPE_VMFS.to_string(), "AA31E02A-400F-11DB-9590-000C2911D1B8");
        assert_eq!(&GPT_TYPE_VMFS.0[..4], &[0x2A, 0xE0, 0x31, 0xAA]);
        assert_eq!(GPT_TYPE_VMKCORE.to_string(), "9D275380-40AD-11DB-BF97-000C2911D1B8");
    }

    /// A 64 MiB disk with a GPT at `ss`-byte sectors and one VMFS partition at 1..33 MiB.
    pub(crate) fn gpt_disk(ss: usize) -> Vec<u8> {
        let mut d = vec![0u8; 64 << 20];
        let lba = |b: u64| b / ss as u64;
        for (off, b) in
            gpt_regions(d.len() as u64, ss, Guid([7; 16]), &[(GPT_TYPE_VMFS, lba(1 << 20), lba(33 << 20) - 1)])
        {
            d[off as usize..off as usize + b.len()].copy_from_slice(&b);
        }
        d
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
}
