//! VirtualBox VDI images: normal (dynamic), fixed and differencing, header version 1.1.
//!
//! Layout: 64 bytes of pre-header text ("<<< Oracle VM VirtualBox Disk Image >>>"), the
//! signature 0xbeda107f at 0x40, the version, the header (its own size first), a block map of
//! u32 entries at `offset_bmap` (the block's index in the data area; 0xFFFFFFFF never written,
//! 0xFFFFFFFE a zero block), and the data area at `offset_data`: each block is `block_extra`
//! bytes of per-block data, then `block_size` bytes of the disk.
//!
//! A differencing image stores no parent file name, only the parent's creation UUID
//! (`uuidLinkage`): the chain finds the parent by searching the folder for that identity.

use super::error::{Result, VdiskError};
use super::grains::{Grain, GrainExtent, GrainFormat, Table, read_meta, u32_at, u64_at};
use super::image::{Format, Image, ParentRef, size_words};
use crate::block::Source;
use std::sync::Arc;

/// 0x40 `u32Signature`.
pub const SIGNATURE: u32 = 0xbeda_107f;
/// 0x44 `u32Version`: 1.1, the only version VirtualBox has written since 2008.
pub const VERSION_1_1: u32 = 0x0001_0001;
/// End of the fields read here (after `uuidParentModification`).
pub const HEADER_END: usize = 0x1c8;
/// Smallest `cbHeader` that holds those fields (it counts from 0x48).
const MIN_HEADER_SIZE: u32 = 0x180;
/// Largest block accepted (VirtualBox writes 1 MiB; larger is allowed by the format).
pub const MAX_BLOCK_SIZE: u32 = 64 << 20;
/// Most blocks a map may have (its byte size must fit a u32, as in VirtualBox and qemu).
pub const MAX_BLOCKS: u32 = 0x3fff_ffff;
/// Block-map entry: never written (the parent's, zeros at the base).
const BLOCK_FREE: u32 = 0xffff_ffff;
/// Block-map entry: discarded or written as zeros (hides the parent).
const BLOCK_ZERO: u32 = 0xffff_fffe;
/// Block-map entries decoded per table of the grain cache (4 KiB of map).
const MAP_CHUNK: u64 = 1024;

/// 0x4c `u32Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageType {
    /// 1: dynamic, blocks allocated on write.
    Normal,
    /// 2: every block allocated at creation.
    Fixed,
    /// 3: an old-style undo image over a parent (read like a differencing image).
    Undo,
    /// 4: a differencing image (a snapshot) over the parent named by `uuidLinkage`.
    Diff,
}

impl ImageType {
    fn words(self) -> &'static str {
        match self {
            ImageType::Normal => "dynamic",
            ImageType::Fixed => "fixed",
            ImageType::Undo => "undo",
            ImageType::Diff => "differencing",
        }
    }
}

/// The header fields this reader uses, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// 0x4c `u32Type`.
    pub image_type: ImageType,
    /// 0x154 `offBlocks`: byte offset of the block map (sector-aligned).
    pub offset_bmap: u32,
    /// 0x158 `offData`: byte offset of the data area.
    pub offset_data: u32,
    /// 0x170 `cbDisk`: the virtual size, rounded up to a sector as qemu does.
    pub disk_size: u64,
    /// 0x178 `cbBlock`: a power of two.
    pub block_size: u32,
    /// 0x17c `cbBlockExtra`: bytes before each block's data in the data area.
    pub block_extra: u32,
    /// 0x180 `cBlocks`: entries of the block map.
    pub blocks: u32,
    /// 0x184 `cBlocksAllocated`.
    pub allocated: u32,
    /// 0x188 `uuidCreate`: this image's identity.
    pub uuid_create: [u8; 16],
    /// 0x198 `uuidModify`: changes on every write session.
    pub uuid_modify: [u8; 16],
    /// 0x1a8 `uuidLinkage`: the parent's `uuidCreate` (differencing images).
    pub uuid_linkage: [u8; 16],
    /// 0x1b8 `uuidParentModification`: the parent's `uuidModify` when this child was made.
    pub uuid_parent_modify: [u8; 16],
}

fn uuid_at(b: &[u8], off: usize) -> [u8; 16] {
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[off..off + 16]);
    u
}

/// A VirtualBox UUID as text. VirtualBox stores RTUUID with its first three fields
/// little-endian (the Windows GUID layout), so they are reversed to print the usual form;
/// the id of an image and the parent id of its child go through this same function.
pub fn guid_text(u: &[u8; 16]) -> String {
    crate::container::partition::ondisk::Guid(*u).text()
}

impl Header {
    /// Parse and check the first [`HEADER_END`] bytes of `file`. Pure: no I/O.
    pub fn parse(file: &str, b: &[u8]) -> Result<Self> {
        let bad = |off: u64, what: String| Err(VdiskError::corrupt(file, "VDI header", off, what));
        let unsupported = |what: String| Err(VdiskError::Unsupported { file: file.into(), what });
        if b.len() < HEADER_END {
            return bad(0, format!("{} bytes, the header needs {HEADER_END}", b.len()));
        }
        let sig = u32_at(b, 0x40);
        if sig != SIGNATURE {
            return bad(0x40, format!("signature {sig:#010x}, expected {SIGNATURE:#010x}"));
        }
        let version = u32_at(b, 0x44);
        if version != VERSION_1_1 {
            return unsupported(format!("VDI header version {}.{}", version >> 16, version & 0xffff));
        }
        let header_size = u32_at(b, 0x48);
        if header_size < MIN_HEADER_SIZE {
            return bad(0x48, format!("header size {header_size:#x}, version 1.1 needs at least {MIN_HEADER_SIZE:#x}"));
        }
        let image_type = match u32_at(b, 0x4c) {
            1 => ImageType::Normal,
            2 => ImageType::Fixed,
            3 => ImageType::Undo,
            4 => ImageType::Diff,
            t => return bad(0x4c, format!("image type {t} (1 normal, 2 fixed, 3 undo, 4 differencing)")),
        };
        let offset_bmap = u32_at(b, 0x154);
        let offset_data = u32_at(b, 0x158);
        let sector_size = u32_at(b, 0x168);
        let raw_disk = u64_at(b, 0x170);
        let block_size = u32_at(b, 0x178);
        let block_extra = u32_at(b, 0x17c);
        let blocks = u32_at(b, 0x180);
        let allocated = u32_at(b, 0x184);
        if sector_size != 512 {
            return unsupported(format!("VDI sector size {sector_size} (only 512 exists)"));
        }
        if !block_size.is_power_of_two() || !(512..=MAX_BLOCK_SIZE).contains(&block_size) {
            return bad(0x178, format!("block size {block_size} (a power of two, 512..={MAX_BLOCK_SIZE})"));
        }
        if block_extra > MAX_BLOCK_SIZE {
            return bad(0x17c, format!("block extra data of {block_extra} bytes per block"));
        }
        if blocks > MAX_BLOCKS {
            return bad(0x180, format!("{blocks} blocks in the map (at most {MAX_BLOCKS})"));
        }
        if (offset_bmap as usize) < HEADER_END || !offset_bmap.is_multiple_of(512) {
            return bad(0x154, format!("block map offset {offset_bmap:#x} (sector-aligned, after the header)"));
        }
        let map_end = u64::from(offset_bmap) + u64::from(blocks) * 4;
        if u64::from(offset_data) < map_end {
            return bad(0x158, format!("data offset {offset_data:#x} inside the block map (ends at {map_end:#x})"));
        }
        // 'VBoxManage convertfromraw' writes odd sizes; the last sector is completed with zeros.
        let disk_size = raw_disk.div_ceil(512).saturating_mul(512);
        let room = u64::from(blocks) * u64::from(block_size);
        if disk_size > room {
            return bad(0x170, format!("disk size {raw_disk} but {blocks} blocks of {block_size} hold only {room}"));
        }
        Ok(Self {
            image_type,
            offset_bmap,
            offset_data,
            disk_size,
            block_size,
            block_extra,
            blocks,
            allocated,
            uuid_create: uuid_at(b, 0x188),
            uuid_modify: uuid_at(b, 0x198),
            uuid_linkage: uuid_at(b, 0x1a8),
            uuid_parent_modify: uuid_at(b, 0x1b8),
        })
    }

    /// Blocks the disk size needs (entries of the map that are used).
    fn used_blocks(&self) -> u64 {
        self.disk_size.div_ceil(u64::from(self.block_size))
    }
}

struct Vdi {
    file: Source,
    h: Header,
}

impl Vdi {
    fn entry(&self, e: u32) -> Grain {
        match e {
            BLOCK_FREE => Grain::Unallocated,
            BLOCK_ZERO => Grain::Zero,
            // An index past the map cannot be a block of this image: damaged entry.
            i if i >= self.h.blocks => Grain::Unreadable,
            i => {
                let stride = u64::from(self.h.block_size) + u64::from(self.h.block_extra);
                Grain::Data(u64::from(self.h.offset_data) + u64::from(i) * stride + u64::from(self.h.block_extra))
            }
        }
    }
}

impl GrainFormat for Vdi {
    fn grain_bytes(&self) -> u64 {
        u64::from(self.h.block_size)
    }
    fn table_grains(&self) -> u64 {
        MAP_CHUNK
    }
    fn capacity(&self) -> u64 {
        self.h.disk_size
    }
    fn load_table(&self, index: u64) -> Table {
        let first = index.saturating_mul(MAP_CHUNK);
        let n = self.h.used_blocks().saturating_sub(first).min(MAP_CHUNK);
        let at = u64::from(self.h.offset_bmap) + first * 4;
        let Some(b) = read_meta(&self.file, at, (n * 4) as usize) else { return Table::Uniform(Grain::Unreadable) };
        Table::Entries(Arc::new((0..n as usize).map(|i| self.entry(u32_at(&b, i * 4))).collect()))
    }
}

/// Open a VDI image.
pub fn open(name: &str, src: Source) -> Result<Image> {
    if src.len() < HEADER_END as u64 {
        return Err(VdiskError::corrupt(
            name,
            "VDI header",
            0,
            format!("file is {} bytes, the header alone is {HEADER_END}", src.len()),
        ));
    }
    let mut b = vec![0u8; HEADER_END];
    src.read_at(0, &mut b)?;
    let h = Header::parse(name, &b)?;
    let map_end = u64::from(h.offset_bmap) + h.used_blocks() * 4;
    if map_end > src.len() {
        return Err(VdiskError::corrupt(
            name,
            "VDI block map",
            u64::from(h.offset_bmap),
            format!("{} entries end at {map_end:#x}, past the end of the file ({:#x})", h.used_blocks(), src.len()),
        ));
    }
    let mut problems = Vec::new();
    if h.allocated > h.blocks {
        problems.push(format!("header says {} blocks allocated of {} in the map", h.allocated, h.blocks));
    }
    let null = [0u8; 16];
    let has_parent = matches!(h.image_type, ImageType::Diff | ImageType::Undo);
    let parent = if !has_parent {
        None
    } else if h.uuid_linkage == null {
        problems.push(format!("{} image without a parent UUID: read as a base", h.image_type.words()));
        None
    } else {
        Some(ParentRef { hints: Vec::new(), id: Some(guid_text(&h.uuid_linkage)), format: None })
    };
    let mut variant = h.image_type.words().to_string();
    if h.block_size != 1 << 20 {
        variant.push_str(&format!(", {} blocks", size_words(u64::from(h.block_size))));
    }
    let id = (h.uuid_create != null).then(|| guid_text(&h.uuid_create));
    let capacity = h.disk_size;
    let problems = problems.into_iter().map(|p| format!("VDI: {p}")).collect();
    let v = Vdi { file: src.clone(), h };
    Ok(Image {
        format: Format::Vdi,
        variant,
        capacity,
        reader: Box::new(GrainExtent::new(v, src, capacity, problems)),
        id,
        parent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use crate::vdisk::extent::Alloc;

    /// A header as VirtualBox lays it out (1 MiB blocks), followed by a block map of `blocks`
    /// zero entries up to the data area.
    fn header(disk: u64, blocks: u32) -> Vec<u8> {
        let mut b = vec![0u8; 0x200];
        b[..40].copy_from_slice(b"<<< Oracle VM VirtualBox Disk Image >>>\n");
        let put32 = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        put32(&mut b, 0x40, SIGNATURE);
        put32(&mut b, 0x44, VERSION_1_1);
        put32(&mut b, 0x48, 0x190);
        put32(&mut b, 0x4c, 1);
        put32(&mut b, 0x154, 0x200);
        put32(&mut b, 0x158, (0x200 + blocks * 4).div_ceil(512) * 512);
        put32(&mut b, 0x168, 512);
        b[0x170..0x178].copy_from_slice(&disk.to_le_bytes());
        put32(&mut b, 0x178, 1 << 20);
        put32(&mut b, 0x180, blocks);
        b[0x188..0x198].copy_from_slice(&[
            0x99, 0xf5, 0x4e, 0x87, 0xd0, 0x4f, 0x09, 0x4f, 0xa3, 0xee, 0xcb, 0x16, 0x1c, 0x1f, 0x8c, 0x41,
        ]);
        b.resize((0x200 + blocks as usize * 4).div_ceil(512) * 512, 0);
        b
    }

    fn kind(e: VdiskError) -> String {
        e.kind()
    }

    #[test]
    fn parses_a_good_header() {
        let h = Header::parse("t", &header(10 << 20, 10)).unwrap();
        assert_eq!(h.image_type, ImageType::Normal);
        assert_eq!((h.disk_size, h.blocks, h.block_size), (10 << 20, 10, 1 << 20));
        assert_eq!(guid_text(&h.uuid_create), "874ef599-4fd0-4f09-a3ee-cb161c1f8c41");
        // An odd size is completed to the sector.
        let mut b = header(10 << 20, 10);
        b[0x170..0x178].copy_from_slice(&((10u64 << 20) - 100).to_le_bytes());
        assert_eq!(Header::parse("t", &b).unwrap().disk_size, 10 << 20);
    }

    #[test]
    fn broken_fields_are_named() {
        let cases: [(usize, u32, &str); 9] = [
            (0x40, 0x1234, "VDI header@0x40"),
            (0x44, 0x0000_0001, "unsupported"),
            (0x48, 0x40, "VDI header@0x48"),
            (0x4c, 9, "VDI header@0x4c"),
            (0x168, 4096, "unsupported"),
            (0x178, 3 << 20, "VDI header@0x178"),
            (0x178, 1 << 30, "VDI header@0x178"),
            (0x180, 0x4000_0000, "VDI header@0x180"),
            (0x154, 0x10, "VDI header@0x154"),
        ];
        for (off, v, want) in cases {
            let mut b = header(10 << 20, 10);
            b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            assert_eq!(kind(Header::parse("t", &b).unwrap_err()), want, "field {off:#x} = {v:#x}");
        }
        // More disk than the map holds; a data area inside the map.
        let b = header(11 << 20, 10);
        assert_eq!(kind(Header::parse("t", &b).unwrap_err()), "VDI header@0x170");
        let mut b = header(10 << 20, 10);
        b[0x158..0x15c].copy_from_slice(&0x204u32.to_le_bytes());
        assert_eq!(kind(Header::parse("t", &b).unwrap_err()), "VDI header@0x158");
        assert_eq!(kind(Header::parse("t", &b[..0x100]).unwrap_err()), "VDI header@0x0");
    }

    #[test]
    fn block_map_entries() {
        // 4 blocks of 1 MiB: free, zero, data block 0, an index past the map.
        let mut b = header(4 << 20, 4);
        for (i, e) in [BLOCK_FREE, BLOCK_ZERO, 0, 7].iter().enumerate() {
            b[0x200 + i * 4..0x204 + i * 4].copy_from_slice(&e.to_le_bytes());
        }
        b.resize(0x400 + (1 << 20), 0x5a);
        let src: Source = Arc::new(Tolerant::new(MemSource::new("t.vdi", b)));
        let img = open("t.vdi", src).unwrap();
        assert_eq!(img.capacity, 4 << 20);
        assert_eq!(img.variant, "dynamic");
        assert!(img.parent.is_none());
        let m = img.reader.map(0..4 << 20).unwrap();
        let mb = 1u64 << 20;
        assert_eq!(
            m,
            vec![
                (0..mb, Alloc::Unallocated),
                (mb..2 * mb, Alloc::Zero),
                (2 * mb..3 * mb, Alloc::Data),
                (3 * mb..4 * mb, Alloc::Unreadable)
            ]
        );
        let mut x = vec![0u8; 4096];
        img.reader.read_data(2 * mb + 100, &mut x).unwrap();
        assert!(x.iter().all(|&v| v == 0x5a));
    }

    #[test]
    fn differencing_names_its_parent_by_uuid() {
        let mut b = header(1 << 20, 1);
        b[0x4c..0x50].copy_from_slice(&4u32.to_le_bytes());
        b[0x1a8..0x1b8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        b[0x200..0x204].copy_from_slice(&BLOCK_FREE.to_le_bytes());
        let src: Source = Arc::new(Tolerant::new(MemSource::new("c.vdi", b)));
        let img = open("c.vdi", src).unwrap();
        let p = img.parent.unwrap();
        assert!(p.hints.is_empty());
        assert_eq!(p.id.as_deref(), Some("04030201-0605-0807-090a-0b0c0d0e0f10"));
        assert_eq!(img.variant, "differencing");
    }

    #[test]
    fn block_map_past_the_end_is_refused() {
        let mut b = header(1 << 30, 1024);
        b.truncate(0x300);
        let src: Source = Arc::new(Tolerant::new(MemSource::new("t.vdi", b)));
        assert_eq!(kind(open("t.vdi", src).err().unwrap()), "VDI block map@0x200");
    }
}
