//! VHDX on-disk structures ([MS-VHDX] 2.2–2.6): the file type identifier, the two headers, the
//! region table, the metadata table and its items, BAT entries, and the log's entry header,
//! descriptors and data sectors. All fields are little-endian; GUIDs are stored in Microsoft's
//! mixed-endian order. Pure `parse` (and `encode` where tests build images), no I/O; a parse
//! error names the field's offset inside the structure.

use super::crc32c;
use crate::le::utf16le;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
/// "vhdxfile" at offset 0.
pub const FILE_SIGNATURE: &[u8; 8] = b"vhdxfile";
/// The two headers and the two region tables, each in its own 64 KiB.
pub const HEADER_OFFSETS: [u64; 2] = [64 * KIB, 128 * KIB];
pub const REGION_OFFSETS: [u64; 2] = [192 * KIB, 256 * KIB];
/// Bytes of a header covered by its checksum.
pub const HEADER_SIZE: usize = 4096;
/// Bytes of a region table and of a metadata table.
pub const TABLE_SIZE: usize = 64 << 10;
/// Most entries a region or metadata table may have.
pub const MAX_TABLE_ENTRIES: u32 = 2047;
/// Log sectors, data sectors and descriptor sectors are 4 KiB.
pub const LOG_SECTOR: usize = 4096;
/// Block sizes allowed by the spec.
pub const MIN_BLOCK: u32 = 1 << 20;
pub const MAX_BLOCK: u32 = 256 << 20;
/// Largest virtual disk the spec allows (64 TiB).
pub const MAX_VIRTUAL_SIZE: u64 = 64 << 40;

/// A field that failed its check: offset inside the structure and what was wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct Bad {
    pub off: u64,
    pub what: String,
}

pub fn bad(off: u64, what: impl Into<String>) -> Bad {
    Bad { off, what: what.into() }
}

pub fn le16(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2).and_then(|s| s.try_into().ok()).map_or(0, u16::from_le_bytes)
}

pub fn le32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}

pub fn le64(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// GUIDs as stored (first three fields little-endian): the same type as GPT's.
pub use crate::container::partition::ondisk::Guid;

/// Region 2DC27766-F623-4200-9D64-115E9BFD4A08: the block allocation table.
pub const BAT_REGION: Guid =
    Guid::from_fields(0x2DC2_7766, 0xF623, 0x4200, [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08]);
/// Region 8B7CA206-4790-4B9A-B8FE-575F050F886E: the metadata region.
pub const METADATA_REGION: Guid =
    Guid::from_fields(0x8B7C_A206, 0x4790, 0x4B9A, [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E]);
/// Metadata items.
pub const FILE_PARAMETERS: Guid =
    Guid::from_fields(0xCAA1_6737, 0xFA36, 0x4D43, [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B]);
pub const VIRTUAL_DISK_SIZE: Guid =
    Guid::from_fields(0x2FA5_4224, 0xCD1B, 0x4876, [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8]);
/// "Page 83 Data": the virtual disk id a guest sees (SCSI VPD page 0x83).
pub const PAGE_83_DATA: Guid =
    Guid::from_fields(0xBECA_12AB, 0xB2E6, 0x4523, [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46]);
pub const LOGICAL_SECTOR_SIZE: Guid =
    Guid::from_fields(0x8141_BF1D, 0xA96F, 0x4709, [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F]);
pub const PHYSICAL_SECTOR_SIZE: Guid =
    Guid::from_fields(0xCDA3_48C7, 0x445D, 0x4471, [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56]);
pub const PARENT_LOCATOR: Guid =
    Guid::from_fields(0xA8D3_5F2D, 0xB30B, 0x454D, [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C]);
/// Locator type of a VHDX parent.
pub const VHDX_PARENT_LOCATOR: Guid =
    Guid::from_fields(0xB04A_EFB7, 0xD19E, 0x4A81, [0xB7, 0x89, 0x25, 0xB8, 0xE9, 0x44, 0x59, 0x13]);

/// A header (4 KiB at 64 KiB and at 128 KiB).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// 0x04 `Checksum`: CRC-32C of the 4 KiB with this field zero.
    pub checksum: u32,
    /// 0x08 `SequenceNumber`: the valid header with the larger one is current.
    pub sequence: u64,
    /// 0x10 `FileWriteGuid`: changes whenever the file is opened for writing.
    pub file_write: Guid,
    /// 0x20 `DataWriteGuid`: changes whenever the virtual disk's data changes; a child's
    /// `parent_linkage` names its parent by it.
    pub data_write: Guid,
    /// 0x30 `LogGuid`: non-zero when the log holds entries to replay.
    pub log_guid: Guid,
    /// 0x40 `LogVersion`: 0.
    pub log_version: u16,
    /// 0x42 `Version`: 1.
    pub version: u16,
    /// 0x44 `LogLength`: a multiple of 1 MiB.
    pub log_length: u32,
    /// 0x48 `LogOffset`: a multiple of 1 MiB, at least 1 MiB.
    pub log_offset: u64,
    /// Whether `checksum` matched.
    pub checksum_ok: bool,
}

impl Header {
    pub const NAME: &'static str = "VHDX header";

    /// Decode 4 KiB; only the signature is checked here (validity = signature + checksum).
    pub fn parse(b: &[u8]) -> Result<Self, Bad> {
        if b.get(..4) != Some(b"head") || b.len() < HEADER_SIZE {
            return Err(bad(0, "signature is not \"head\""));
        }
        let checksum = le32(b, 4);
        Ok(Self {
            checksum,
            sequence: le64(b, 8),
            file_write: Guid::at(b, 0x10),
            data_write: Guid::at(b, 0x20),
            log_guid: Guid::at(b, 0x30),
            log_version: le16(b, 0x40),
            version: le16(b, 0x42),
            log_length: le32(b, 0x44),
            log_offset: le64(b, 0x48),
            checksum_ok: crc32c::with_zeroed_field(&b[..HEADER_SIZE], 4) == checksum,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE];
        b[..4].copy_from_slice(b"head");
        b[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        b[0x10..0x20].copy_from_slice(&self.file_write.0);
        b[0x20..0x30].copy_from_slice(&self.data_write.0);
        b[0x30..0x40].copy_from_slice(&self.log_guid.0);
        b[0x40..0x42].copy_from_slice(&self.log_version.to_le_bytes());
        b[0x42..0x44].copy_from_slice(&self.version.to_le_bytes());
        b[0x44..0x48].copy_from_slice(&self.log_length.to_le_bytes());
        b[0x48..0x50].copy_from_slice(&self.log_offset.to_le_bytes());
        let c = crc32c::update(0, &b);
        b[4..8].copy_from_slice(&c.to_le_bytes());
        b
    }
}

/// One region table entry (32 bytes from table offset 16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// +0x00 `Guid`: what the region is.
    pub guid: Guid,
    /// +0x10 `FileOffset`: a multiple of 1 MiB.
    pub offset: u64,
    /// +0x18 `Length`: a multiple of 1 MiB.
    pub length: u32,
    /// +0x1C bit 0 `Required`: a reader that does not know the region must refuse the file.
    pub required: bool,
}

/// The region table (64 KiB at 192 KiB, a copy at 256 KiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionTable {
    pub regions: Vec<Region>,
    pub checksum_ok: bool,
}

impl RegionTable {
    pub const NAME: &'static str = "VHDX region table";

    /// 0x00 `Signature` "regi", 0x04 `Checksum` (CRC-32C of the 64 KiB), 0x08 `EntryCount`
    /// (≤ 2047), entries from 0x10.
    pub fn parse(b: &[u8]) -> Result<Self, Bad> {
        if b.get(..4) != Some(b"regi") || b.len() < TABLE_SIZE {
            return Err(bad(0, "signature is not \"regi\""));
        }
        let count = le32(b, 8);
        if count > MAX_TABLE_ENTRIES {
            return Err(bad(8, format!("entry count {count} (at most {MAX_TABLE_ENTRIES})")));
        }
        let regions = (0..count as usize)
            .map(|i| {
                let o = 16 + 32 * i;
                Region {
                    guid: Guid::at(b, o),
                    offset: le64(b, o + 16),
                    length: le32(b, o + 24),
                    required: le32(b, o + 28) & 1 != 0,
                }
            })
            .collect();
        Ok(Self { regions, checksum_ok: crc32c::with_zeroed_field(&b[..TABLE_SIZE], 4) == le32(b, 4) })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; TABLE_SIZE];
        b[..4].copy_from_slice(b"regi");
        b[8..12].copy_from_slice(&(self.regions.len() as u32).to_le_bytes());
        for (i, r) in self.regions.iter().enumerate() {
            let o = 16 + 32 * i;
            b[o..o + 16].copy_from_slice(&r.guid.0);
            b[o + 16..o + 24].copy_from_slice(&r.offset.to_le_bytes());
            b[o + 24..o + 28].copy_from_slice(&r.length.to_le_bytes());
            b[o + 28..o + 32].copy_from_slice(&u32::from(r.required).to_le_bytes());
        }
        let c = crc32c::update(0, &b);
        b[4..8].copy_from_slice(&c.to_le_bytes());
        b
    }
}

/// One metadata table entry (32 bytes from table offset 32).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// +0x00 `ItemId`.
    pub id: Guid,
    /// +0x10 `Offset`: from the start of the metadata region, at least 64 KiB (0 only when
    /// `length` is 0).
    pub offset: u32,
    /// +0x14 `Length`.
    pub length: u32,
    /// +0x18 bit 0 `IsUser`, bit 1 `IsVirtualDisk`, bit 2 `IsRequired`.
    pub user: bool,
    pub required: bool,
}

/// The metadata table (64 KiB at the start of the metadata region).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataTable {
    pub items: Vec<Item>,
}

impl MetadataTable {
    pub const NAME: &'static str = "VHDX metadata table";

    /// 0x00 `Signature` "metadata", 0x0A `EntryCount` (≤ 2047), entries from 0x20.
    pub fn parse(b: &[u8]) -> Result<Self, Bad> {
        if b.get(..8) != Some(b"metadata") || b.len() < TABLE_SIZE {
            return Err(bad(0, "signature is not \"metadata\""));
        }
        let count = le16(b, 10);
        if u32::from(count) > MAX_TABLE_ENTRIES {
            return Err(bad(10, format!("entry count {count} (at most {MAX_TABLE_ENTRIES})")));
        }
        let items = (0..usize::from(count))
            .map(|i| {
                let o = 32 + 32 * i;
                let flags = le32(b, o + 24);
                Item {
                    id: Guid::at(b, o),
                    offset: le32(b, o + 16),
                    length: le32(b, o + 20),
                    user: flags & 1 != 0,
                    required: flags & 4 != 0,
                }
            })
            .collect();
        Ok(Self { items })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; TABLE_SIZE];
        b[..8].copy_from_slice(b"metadata");
        b[10..12].copy_from_slice(&(self.items.len() as u16).to_le_bytes());
        for (i, it) in self.items.iter().enumerate() {
            let o = 32 + 32 * i;
            b[o..o + 16].copy_from_slice(&it.id.0);
            b[o + 16..o + 20].copy_from_slice(&it.offset.to_le_bytes());
            b[o + 20..o + 24].copy_from_slice(&it.length.to_le_bytes());
            let flags = u32::from(it.user) | 2 | (u32::from(it.required) << 2);
            b[o + 24..o + 28].copy_from_slice(&flags.to_le_bytes());
        }
        b
    }
}

/// The parent locator item: a type GUID and key/value pairs of UTF-16LE text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParentLocator {
    /// 0x00 `LocatorType`: [`VHDX_PARENT_LOCATOR`] for a VHDX parent.
    pub kind: Guid,
    /// From 0x14, 12 bytes each: `KeyOffset`, `ValueOffset` (u32, from the item's start),
    /// `KeyLength`, `ValueLength` (u16, bytes). Keys: `parent_linkage`, `parent_linkage2`,
    /// `relative_path`, `volume_path`, `absolute_win32_path`.
    pub entries: Vec<(String, String)>,
}

impl ParentLocator {
    pub const NAME: &'static str = "VHDX parent locator";

    pub fn parse(b: &[u8]) -> Result<Self, Bad> {
        if b.len() < 20 {
            return Err(bad(0, format!("{} bytes, the header alone is 20", b.len())));
        }
        let count = usize::from(le16(b, 18));
        if 20 + 12 * count > b.len() {
            return Err(bad(18, format!("{count} key/value entries do not fit in {} bytes", b.len())));
        }
        let field = |off: u32, len: u16, at: usize| {
            let (s, e) = (off as usize, off as usize + usize::from(len));
            b.get(s..e).map(utf16le).ok_or_else(|| bad(at as u64, format!("{s:#x}..{e:#x} past the item's end")))
        };
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let o = 20 + 12 * i;
            let key = field(le32(b, o), le16(b, o + 8), o)?;
            let value = field(le32(b, o + 4), le16(b, o + 10), o + 4)?;
            entries.push((key, value));
        }
        Ok(Self { kind: Guid::at(b, 0), entries })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; 20 + 12 * self.entries.len()];
        b[..16].copy_from_slice(&self.kind.0);
        b[18..20].copy_from_slice(&(self.entries.len() as u16).to_le_bytes());
        for (i, (k, v)) in self.entries.iter().enumerate() {
            let o = 20 + 12 * i;
            let mut put = |s: &str| {
                let at = b.len() as u32;
                let bytes: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
                let n = bytes.len() as u16;
                b.extend_from_slice(&bytes);
                (at, n)
            };
            let (ko, kl) = put(k);
            let (vo, vl) = put(v);
            b[o..o + 4].copy_from_slice(&ko.to_le_bytes());
            b[o + 4..o + 8].copy_from_slice(&vo.to_le_bytes());
            b[o + 8..o + 10].copy_from_slice(&kl.to_le_bytes());
            b[o + 10..o + 12].copy_from_slice(&vl.to_le_bytes());
        }
        b
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// BAT entry bits 0–2 `State`; bits 20–63 `FileOffsetMB`.
pub mod state {
    /// Payload: not in this file (a differencing disk's parent holds it; zeros otherwise).
    pub const NOT_PRESENT: u64 = 0;
    /// Payload: contents undefined; read as zeros.
    pub const UNDEFINED: u64 = 1;
    /// Payload: zeros.
    pub const ZERO: u64 = 2;
    /// Payload: unmapped (trimmed); read as zeros.
    pub const UNMAPPED: u64 = 3;
    /// Payload: every sector in the file.
    pub const FULLY_PRESENT: u64 = 6;
    /// Payload of a differencing disk: the chunk's sector bitmap says which sectors are here.
    pub const PARTIALLY_PRESENT: u64 = 7;
    /// Sector bitmap block: present (6); 0 = not present.
    pub const BITMAP_PRESENT: u64 = 6;
}

/// Split a BAT entry into (state, file offset in bytes).
pub fn bat_entry(e: u64) -> (u64, u64) {
    (e & 7, (e >> 20) << 20)
}

/// A BAT entry for `state` at `offset` (a multiple of 1 MiB).
pub fn encode_bat_entry(state: u64, offset: u64) -> u64 {
    (offset & !(MIB - 1)) | (state & 7)
}

/// The log entry header (64 bytes at the start of an entry's first sector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntryHeader {
    /// 0x04 `Checksum`: CRC-32C of the whole entry (`entry_length` bytes), this field zero.
    pub checksum: u32,
    /// 0x08 `EntryLength`: a multiple of 4 KiB.
    pub entry_length: u32,
    /// 0x0C `Tail`: log offset of the oldest entry not yet applied to the file.
    pub tail: u32,
    /// 0x10 `SequenceNumber`: non-zero, one more than the previous entry's.
    pub sequence: u64,
    /// 0x18 `DescriptorCount`.
    pub descriptors: u32,
    /// 0x20 `LogGuid`: must equal the header's.
    pub log_guid: Guid,
    /// 0x30 `FlushedFileOffset`: the file was at least this long when the entry was written.
    pub flushed_file_offset: u64,
    /// 0x38 `LastFileOffset`: the file must be at least this long once the entry is applied.
    pub last_file_offset: u64,
}

impl LogEntryHeader {
    pub const NAME: &'static str = "VHDX log entry";

    /// 0x00 `Signature` "loge".
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.get(..4) != Some(b"loge") || b.len() < 64 {
            return None;
        }
        Some(Self {
            checksum: le32(b, 4),
            entry_length: le32(b, 8),
            tail: le32(b, 12),
            sequence: le64(b, 16),
            descriptors: le32(b, 24),
            log_guid: Guid::at(b, 32),
            flushed_file_offset: le64(b, 48),
            last_file_offset: le64(b, 56),
        })
    }

    /// 4 KiB sectors holding the header and `descriptors` 32-byte descriptors.
    pub fn descriptor_sectors(&self) -> u64 {
        (u64::from(self.descriptors) * 32 + 64).div_ceil(LOG_SECTOR as u64)
    }

    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[..4].copy_from_slice(b"loge");
        b[4..8].copy_from_slice(&self.checksum.to_le_bytes());
        b[8..12].copy_from_slice(&self.entry_length.to_le_bytes());
        b[12..16].copy_from_slice(&self.tail.to_le_bytes());
        b[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        b[24..28].copy_from_slice(&self.descriptors.to_le_bytes());
        b[32..48].copy_from_slice(&self.log_guid.0);
        b[48..56].copy_from_slice(&self.flushed_file_offset.to_le_bytes());
        b[56..64].copy_from_slice(&self.last_file_offset.to_le_bytes());
        b
    }
}

/// A log descriptor (32 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Descriptor {
    /// "zero": 0x08 `ZeroLength`, 0x10 `FileOffset`, 0x18 `SequenceNumber`.
    Zero { length: u64, offset: u64, sequence: u64 },
    /// "desc": 0x04 `TrailingBytes` (the sector's last 4), 0x08 `LeadingBytes` (its first 8),
    /// 0x10 `FileOffset`, 0x18 `SequenceNumber`; the other 4084 bytes are in a data sector.
    Data { trailing: [u8; 4], leading: [u8; 8], offset: u64, sequence: u64 },
}

impl Descriptor {
    pub fn parse(b: &[u8]) -> Option<Self> {
        let (offset, sequence) = (le64(b, 16), le64(b, 24));
        match b.get(..4)? {
            b"zero" => Some(Self::Zero { length: le64(b, 8), offset, sequence }),
            b"desc" => Some(Self::Data {
                trailing: b.get(4..8)?.try_into().ok()?,
                leading: b.get(8..16)?.try_into().ok()?,
                offset,
                sequence,
            }),
            _ => None,
        }
    }

    pub fn encode(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        let (offset, sequence) = match self {
            Self::Zero { length, offset, sequence } => {
                b[..4].copy_from_slice(b"zero");
                b[8..16].copy_from_slice(&length.to_le_bytes());
                (offset, sequence)
            }
            Self::Data { trailing, leading, offset, sequence } => {
                b[..4].copy_from_slice(b"desc");
                b[4..8].copy_from_slice(trailing);
                b[8..16].copy_from_slice(leading);
                (offset, sequence)
            }
        };
        b[16..24].copy_from_slice(&offset.to_le_bytes());
        b[24..32].copy_from_slice(&sequence.to_le_bytes());
        b
    }
}

/// A data sector's sequence number: 0x04 `SequenceHigh`, 0x0FFC `SequenceLow`, after the
/// signature "data" at 0x00; `None` without the signature.
pub fn data_sector_sequence(b: &[u8]) -> Option<u64> {
    if b.get(..4) != Some(b"data") || b.len() < LOG_SECTOR {
        return None;
    }
    Some((u64::from(le32(b, 4)) << 32) | u64::from(le32(b, LOG_SECTOR - 4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_print_and_parse_in_windows_order() {
        // The BAT region GUID as it sits in every VHDX file.
        let raw = [0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08];
        assert_eq!(BAT_REGION, Guid(raw));
        assert_eq!(BAT_REGION.text(), "2dc27766-f623-4200-9d64-115e9bfd4a08");
        assert_eq!(Guid::parse_text("{2DC27766-F623-4200-9D64-115E9BFD4A08}"), Some(BAT_REGION));
        assert_eq!(Guid::parse_text("2dc27766-f623-4200-9d64-115e9bfd4a0"), None);
        assert_eq!(Guid::parse_text("zdc27766-f623-4200-9d64-115e9bfd4a08"), None);
    }

    #[test]
    fn header_round_trips_and_checksum_catches_a_flip() {
        let h = Header {
            sequence: 5,
            data_write: Guid([1; 16]),
            log_guid: Guid([2; 16]),
            version: 1,
            log_length: MIB as u32,
            log_offset: MIB,
            ..Default::default()
        };
        let mut b = h.encode();
        let g = Header::parse(&b).unwrap();
        assert!(g.checksum_ok);
        assert_eq!(Header { checksum: 0, checksum_ok: false, ..g }, Header { checksum_ok: false, ..h });
        b[0x100] = 1;
        assert!(!Header::parse(&b).unwrap().checksum_ok);
        b[0] = b'H';
        assert_eq!(Header::parse(&b).unwrap_err().off, 0);
    }

    #[test]
    fn tables_round_trip_and_limit_counts() {
        let t = RegionTable {
            regions: vec![Region { guid: BAT_REGION, offset: 2 * MIB, length: MIB as u32, required: true }],
            checksum_ok: true,
        };
        let mut b = t.encode();
        assert_eq!(RegionTable::parse(&b).unwrap(), t);
        b[8..12].copy_from_slice(&5000u32.to_le_bytes());
        assert_eq!(RegionTable::parse(&b).unwrap_err().off, 8);
        let m = MetadataTable {
            items: vec![Item { id: FILE_PARAMETERS, offset: 0x10000, length: 8, user: false, required: true }],
        };
        let mut b = m.encode();
        assert_eq!(MetadataTable::parse(&b).unwrap(), m);
        b[10..12].copy_from_slice(&4000u16.to_le_bytes());
        assert_eq!(MetadataTable::parse(&b).unwrap_err().off, 10);
    }

    #[test]
    fn parent_locator_round_trips_and_bounds_entries() {
        let p = ParentLocator {
            kind: VHDX_PARENT_LOCATOR,
            entries: vec![("parent_linkage".into(), "{x}".into()), ("relative_path".into(), "..\\a.vhdx".into())],
        };
        let mut b = p.encode();
        assert_eq!(ParentLocator::parse(&b).unwrap(), p);
        assert_eq!(p.get("relative_path"), Some("..\\a.vhdx"));
        b[20..24].copy_from_slice(&0xfff0u32.to_le_bytes());
        assert_eq!(ParentLocator::parse(&b).unwrap_err().off, 20);
        b[18..20].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(ParentLocator::parse(&b).unwrap_err().off, 18);
    }

    #[test]
    fn log_structures_round_trip() {
        let h = LogEntryHeader {
            checksum: 1,
            entry_length: 8192,
            tail: 0,
            sequence: 7,
            descriptors: 127,
            log_guid: Guid([3; 16]),
            flushed_file_offset: 4 * MIB,
            last_file_offset: 5 * MIB,
        };
        assert_eq!(LogEntryHeader::parse(&h.encode()), Some(h.clone()));
        assert_eq!(h.descriptor_sectors(), 2);
        for d in [
            Descriptor::Zero { length: 8192, offset: 4096, sequence: 7 },
            Descriptor::Data { trailing: [1, 2, 3, 4], leading: [5; 8], offset: 0, sequence: 7 },
        ] {
            assert_eq!(Descriptor::parse(&d.encode()), Some(d));
        }
        let mut s = vec![0u8; LOG_SECTOR];
        s[..4].copy_from_slice(b"data");
        s[4..8].copy_from_slice(&1u32.to_le_bytes());
        s[LOG_SECTOR - 4..].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(data_sector_sequence(&s), Some((1 << 32) | 2));
        assert_eq!(bat_entry(encode_bat_entry(state::FULLY_PRESENT, 3 * MIB)), (6, 3 * MIB));
    }
}
