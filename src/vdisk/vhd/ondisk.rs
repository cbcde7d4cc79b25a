//! VHD on-disk structures (Microsoft "Virtual Hard Disk Image Format Specification" 1.0):
//! the hard disk footer, the dynamic disk header and its parent locator entries. All fields are
//! big-endian. Pure `parse` / `encode`, no I/O; a parse error names the field's offset inside
//! the structure so the caller can report a file offset.

/// Size of the footer and of its copy at offset 0 of dynamic and differencing disks.
pub const FOOTER_SIZE: usize = 512;
/// Size of the dynamic disk header.
pub const HEADER_SIZE: usize = 1024;
/// "conectix" at footer offset 0x00.
pub const FOOTER_COOKIE: &[u8; 8] = b"conectix";
/// "cxsparse" at dynamic header offset 0x00.
pub const HEADER_COOKIE: &[u8; 8] = b"cxsparse";
/// A BAT entry of a block that is not in the file.
pub const BAT_UNUSED: u32 = 0xffff_ffff;
/// Parent locator entries in a dynamic header.
pub const LOCATORS: usize = 8;
/// Largest block accepted (the spec's default is 2 MiB; every known writer uses ≤ 2 MiB). It
/// bounds the sector bitmap, read whole per block, to 64 KiB.
pub const MAX_BLOCK: u32 = 256 << 20;
/// Largest virtual size accepted: 256 TiB, far above the format's 2040 GiB for dynamic disks.
pub const MAX_CAPACITY: u64 = 1 << 48;

/// A field that failed its check: offset inside the structure and what was wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct Bad {
    pub off: u64,
    pub what: String,
}

fn bad(off: u64, what: impl Into<String>) -> Bad {
    Bad { off, what: what.into() }
}

fn be16(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2).and_then(|s| s.try_into().ok()).map_or(0, u16::from_be_bytes)
}

fn be32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_be_bytes)
}

fn be64(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_be_bytes)
}

fn arr<const N: usize>(b: &[u8], o: usize) -> [u8; N] {
    b.get(o..o + N).and_then(|s| s.try_into().ok()).unwrap_or([0; N])
}

/// The VHD checksum: one's complement of the byte sum, the checksum field itself skipped.
pub fn checksum(b: &[u8], field: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(u32::from(x)));
    !sum
}

/// Footer field 0x3C `Disk Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskType {
    /// 2: the data, then the footer.
    Fixed,
    /// 3: footer copy, dynamic header, BAT, blocks, footer.
    Dynamic,
    /// 4: a dynamic disk whose unallocated sectors are the parent's.
    Differencing,
}

impl DiskType {
    pub fn name(self) -> &'static str {
        match self {
            DiskType::Fixed => "fixed",
            DiskType::Dynamic => "dynamic",
            DiskType::Differencing => "differencing",
        }
    }
}

/// The hard disk footer (512 bytes; 511 on images of Virtual PC before 2004).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footer {
    /// 0x08 `Features`: bit 1 "reserved, always set".
    pub features: u32,
    /// 0x0C `File Format Version`: 0x00010000.
    pub version: u32,
    /// 0x10 `Data Offset`: the dynamic header's file offset; all ones for a fixed disk.
    pub data_offset: u64,
    /// 0x18 `Time Stamp`: seconds since 2000-01-01 UTC.
    pub timestamp: u32,
    /// 0x1C `Creator Application`: "vpc ", "vs  ", "win ", "d2v ", "qemu", "qem2", "tap\0", ...
    pub creator_app: [u8; 4],
    /// 0x20 `Creator Version`.
    pub creator_version: u32,
    /// 0x24 `Creator Host OS`: "Wi2k" or "Mac ".
    pub creator_os: [u8; 4],
    /// 0x28 `Original Size` in bytes, at creation.
    pub original_size: u64,
    /// 0x30 `Current Size` in bytes: the virtual size.
    pub current_size: u64,
    /// 0x38 `Disk Geometry`: cylinders (u16), heads (u8), sectors per track (u8).
    pub cylinders: u16,
    pub heads: u8,
    pub sectors: u8,
    /// 0x3C `Disk Type`.
    pub disk_type: DiskType,
    /// 0x40 `Checksum`.
    pub checksum: u32,
    /// 0x44 `Unique Id`: the identity a differencing child stores as its parent's.
    pub unique_id: [u8; 16],
    /// 0x54 `Saved State`: 1 while the VM is in a saved state.
    pub saved_state: u8,
    /// Whether `checksum` matched the bytes it was read from.
    pub checksum_ok: bool,
}

impl Footer {
    pub const NAME: &'static str = "VHD footer";

    /// Decode a footer. Checks the cookie, the disk type and the size; the checksum result
    /// is kept in `checksum_ok` (the caller decides whether to fall back to the other copy).
    pub fn parse(b: &[u8; FOOTER_SIZE]) -> Result<Self, Bad> {
        if &b[..8] != FOOTER_COOKIE {
            return Err(bad(0, format!("cookie {:02x?}, not \"conectix\"", &b[..8])));
        }
        let disk_type = match be32(b, 0x3c) {
            2 => DiskType::Fixed,
            3 => DiskType::Dynamic,
            4 => DiskType::Differencing,
            t => return Err(bad(0x3c, format!("disk type {t} (2 fixed, 3 dynamic, 4 differencing)"))),
        };
        let current_size = be64(b, 0x30);
        if current_size > MAX_CAPACITY {
            return Err(bad(0x30, format!("current size {current_size} bytes (at most {MAX_CAPACITY})")));
        }
        let stored = be32(b, 0x40);
        Ok(Self {
            features: be32(b, 0x08),
            version: be32(b, 0x0c),
            data_offset: be64(b, 0x10),
            timestamp: be32(b, 0x18),
            creator_app: arr(b, 0x1c),
            creator_version: be32(b, 0x20),
            creator_os: arr(b, 0x24),
            original_size: be64(b, 0x28),
            current_size,
            cylinders: be16(b, 0x38),
            heads: b[0x3a],
            sectors: b[0x3b],
            disk_type,
            checksum: stored,
            unique_id: arr(b, 0x44),
            saved_state: b[0x54],
            checksum_ok: checksum(b, 0x40) == stored,
        })
    }

    /// Encode, with a fresh checksum (`checksum` and `checksum_ok` are ignored).
    pub fn encode(&self) -> [u8; FOOTER_SIZE] {
        let mut b = [0u8; FOOTER_SIZE];
        b[..8].copy_from_slice(FOOTER_COOKIE);
        b[0x08..0x0c].copy_from_slice(&self.features.to_be_bytes());
        b[0x0c..0x10].copy_from_slice(&self.version.to_be_bytes());
        b[0x10..0x18].copy_from_slice(&self.data_offset.to_be_bytes());
        b[0x18..0x1c].copy_from_slice(&self.timestamp.to_be_bytes());
        b[0x1c..0x20].copy_from_slice(&self.creator_app);
        b[0x20..0x24].copy_from_slice(&self.creator_version.to_be_bytes());
        b[0x24..0x28].copy_from_slice(&self.creator_os);
        b[0x28..0x30].copy_from_slice(&self.original_size.to_be_bytes());
        b[0x30..0x38].copy_from_slice(&self.current_size.to_be_bytes());
        b[0x38..0x3a].copy_from_slice(&self.cylinders.to_be_bytes());
        b[0x3a] = self.heads;
        b[0x3b] = self.sectors;
        let t: u32 = match self.disk_type {
            DiskType::Fixed => 2,
            DiskType::Dynamic => 3,
            DiskType::Differencing => 4,
        };
        b[0x3c..0x40].copy_from_slice(&t.to_be_bytes());
        b[0x44..0x54].copy_from_slice(&self.unique_id);
        b[0x54] = self.saved_state;
        let c = checksum(&b, 0x40);
        b[0x40..0x44].copy_from_slice(&c.to_be_bytes());
        b
    }

    /// Bytes the CHS geometry addresses (what Virtual PC's guests see).
    pub fn chs_bytes(&self) -> u64 {
        u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors) * 512
    }
}

/// One parent locator entry (24 bytes from dynamic header offset 0x240).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locator {
    /// +0x00 `Platform Code`: "W2ru" (relative, UTF-16LE), "W2ku" (absolute, UTF-16LE),
    /// "Wi2r"/"Wi2k" (deprecated), "Mac " (an alias blob), "MacX" (a UTF-8 file URL); 0 = unused.
    pub code: [u8; 4],
    /// +0x04 `Platform Data Space`: sectors reserved (some writers store bytes).
    pub space: u32,
    /// +0x08 `Platform Data Length`: bytes of the locator.
    pub length: u32,
    /// +0x10 `Platform Data Offset`: absolute file offset of the locator.
    pub offset: u64,
}

/// The dynamic disk header (1024 bytes at the footer's `data_offset`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicHeader {
    /// 0x10 `Table Offset`: file offset of the BAT.
    pub table_offset: u64,
    /// 0x18 `Header Version`: 0x00010000.
    pub version: u32,
    /// 0x1C `Max Table Entries`: BAT entries (one u32 per block).
    pub max_table_entries: u32,
    /// 0x20 `Block Size`: bytes per block, a power of two (2 MiB by default).
    pub block_size: u32,
    /// 0x24 `Checksum`.
    pub checksum: u32,
    /// 0x28 `Parent Unique ID`: the parent footer's unique id (differencing disks).
    pub parent_id: [u8; 16],
    /// 0x38 `Parent Time Stamp`.
    pub parent_timestamp: u32,
    /// 0x40 `Parent Unicode Name`: UTF-16BE, 512 bytes, NUL-padded.
    pub parent_name: String,
    /// 0x240 `Parent Locator Entries`: 8 × 24 bytes.
    pub locators: Vec<Locator>,
    /// Whether `checksum` matched.
    pub checksum_ok: bool,
}

impl DynamicHeader {
    pub const NAME: &'static str = "VHD dynamic header";

    pub fn parse(b: &[u8; HEADER_SIZE]) -> Result<Self, Bad> {
        if &b[..8] != HEADER_COOKIE {
            return Err(bad(0, format!("cookie {:02x?}, not \"cxsparse\"", &b[..8])));
        }
        let block_size = be32(b, 0x20);
        if !block_size.is_power_of_two() || !(512..=MAX_BLOCK).contains(&block_size) {
            return Err(bad(0x20, format!("block size {block_size} (a power of two, 512..={MAX_BLOCK})")));
        }
        let units: Vec<u16> = (0..256).map(|i| be16(b, 0x40 + 2 * i)).take_while(|&u| u != 0).collect();
        let locators = (0..LOCATORS)
            .map(|i| {
                let o = 0x240 + 24 * i;
                Locator { code: arr(b, o), space: be32(b, o + 4), length: be32(b, o + 8), offset: be64(b, o + 16) }
            })
            .collect();
        let stored = be32(b, 0x24);
        Ok(Self {
            table_offset: be64(b, 0x10),
            version: be32(b, 0x18),
            max_table_entries: be32(b, 0x1c),
            block_size,
            checksum: stored,
            parent_id: arr(b, 0x28),
            parent_timestamp: be32(b, 0x38),
            parent_name: String::from_utf16_lossy(&units),
            locators,
            checksum_ok: checksum(b, 0x24) == stored,
        })
    }

    /// Encode, with a fresh checksum.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[..8].copy_from_slice(HEADER_COOKIE);
        b[0x08..0x10].fill(0xff);
        b[0x10..0x18].copy_from_slice(&self.table_offset.to_be_bytes());
        b[0x18..0x1c].copy_from_slice(&self.version.to_be_bytes());
        b[0x1c..0x20].copy_from_slice(&self.max_table_entries.to_be_bytes());
        b[0x20..0x24].copy_from_slice(&self.block_size.to_be_bytes());
        b[0x28..0x38].copy_from_slice(&self.parent_id);
        b[0x38..0x3c].copy_from_slice(&self.parent_timestamp.to_be_bytes());
        for (i, u) in self.parent_name.encode_utf16().take(256).enumerate() {
            b[0x40 + 2 * i..0x42 + 2 * i].copy_from_slice(&u.to_be_bytes());
        }
        for (i, l) in self.locators.iter().take(LOCATORS).enumerate() {
            let o = 0x240 + 24 * i;
            b[o..o + 4].copy_from_slice(&l.code);
            b[o + 4..o + 8].copy_from_slice(&l.space.to_be_bytes());
            b[o + 8..o + 12].copy_from_slice(&l.length.to_be_bytes());
            b[o + 16..o + 24].copy_from_slice(&l.offset.to_be_bytes());
        }
        let c = checksum(&b, 0x24);
        b[0x24..0x28].copy_from_slice(&c.to_be_bytes());
        b
    }

    /// Bytes of the sector bitmap in front of each block: one bit per sector, padded to a sector.
    pub fn bitmap_bytes(&self) -> u64 {
        (u64::from(self.block_size) / 512).div_ceil(8).next_multiple_of(512)
    }
}

/// A 16-byte VHD unique id as lowercase hyphenated text, bytes in stored order (the parent id a
/// child stores is a byte copy of the parent's footer id, so both print the same).
pub fn uuid_text(id: &[u8; 16]) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer(t: DiskType, size: u64) -> Footer {
        Footer {
            features: 2,
            version: 0x1_0000,
            data_offset: if t == DiskType::Fixed { u64::MAX } else { 512 },
            timestamp: 0,
            creator_app: *b"test",
            creator_version: 1,
            creator_os: *b"Wi2k",
            original_size: size,
            current_size: size,
            cylinders: 20,
            heads: 16,
            sectors: 63,
            disk_type: t,
            checksum: 0,
            unique_id: [7; 16],
            saved_state: 0,
            checksum_ok: true,
        }
    }

    #[test]
    fn footer_round_trips_and_checks_fields() {
        let f = footer(DiskType::Dynamic, 10 << 20);
        let b = f.encode();
        let mut g = Footer::parse(&b).unwrap();
        g.checksum = 0;
        assert_eq!(g, f);
        let mut broken = b;
        broken[0x3f] = 9;
        assert_eq!(Footer::parse(&broken).unwrap_err().off, 0x3c);
        let mut broken = b;
        broken[0x30] = 0xff;
        assert_eq!(Footer::parse(&broken).unwrap_err().off, 0x30);
        let mut broken = b;
        broken[0] = b'C';
        assert_eq!(Footer::parse(&broken).unwrap_err().off, 0);
        let mut flipped = b;
        flipped[0x100] = 1;
        assert!(!Footer::parse(&flipped).unwrap().checksum_ok);
    }

    #[test]
    fn header_round_trips_and_checks_block_size() {
        let h = DynamicHeader {
            table_offset: 1536,
            version: 0x1_0000,
            max_table_entries: 5,
            block_size: 2 << 20,
            checksum: 0,
            parent_id: [3; 16],
            parent_timestamp: 9,
            parent_name: "base.vhd".into(),
            locators: vec![
                Locator { code: *b"W2ru", space: 1, length: 20, offset: 4096 },
                Locator::default(),
                Locator::default(),
                Locator::default(),
                Locator::default(),
                Locator::default(),
                Locator::default(),
                Locator::default(),
            ],
            checksum_ok: true,
        };
        let b = h.encode();
        let mut g = DynamicHeader::parse(&b).unwrap();
        g.checksum = 0;
        assert_eq!(g, h);
        assert_eq!(h.bitmap_bytes(), 512);
        let mut broken = b;
        broken[0x20..0x24].copy_from_slice(&3000u32.to_be_bytes());
        assert_eq!(DynamicHeader::parse(&broken).unwrap_err().off, 0x20);
        let mut broken = b;
        broken[0x20..0x24].copy_from_slice(&(1u32 << 30).to_be_bytes());
        assert_eq!(DynamicHeader::parse(&broken).unwrap_err().off, 0x20);
    }

    #[test]
    fn uuid_prints_in_stored_order() {
        let id: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(uuid_text(&id), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }
}
