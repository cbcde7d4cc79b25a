//! Bochs growing images ("Bochs Virtual HD Image", type "Redolog", subtype "Growing").
//!
//! Layout: a 512-byte little-endian header; at `header` bytes the catalog, one u32 per extent
//! of the disk (0xFFFFFFFF = never written, else the extent's index in the data area); the
//! data area follows the catalog directly. Each stored extent is a bitmap of `bitmap` bytes
//! (padded to whole sectors), one bit per sector, least significant bit first, then the
//! extent's sectors. A clear bit means the sector was never written: it reads as zeros.
//!
//! The other redolog subtypes ("Undoable", "Volatile") lie over a flat base image that the
//! file does not name; they are refused.

use super::error::{Result, VdiskError};
use super::grains::{Grain, GrainExtent, GrainFormat, Table, read_meta, u32_at, u64_at};
use super::image::{Format, Image, size_words};
use crate::block::Source;
use std::collections::HashSet;
use std::sync::Arc;

/// 0x00 `magic`, NUL-padded to 32 bytes.
pub const MAGIC: &str = "Bochs Virtual HD Image";
/// 0x20 `type`.
pub const TYPE_REDOLOG: &str = "Redolog";
/// 0x30 `subtype` of a stand-alone growing image.
pub const SUBTYPE_GROWING: &str = "Growing";
/// 0x40 `version` of the current header (a 4-byte field before the disk size).
pub const VERSION_2: u32 = 0x0002_0000;
/// 0x40 `version` of the first header (the disk size right after `extent`).
pub const VERSION_1: u32 = 0x0001_0000;
/// Header size (the catalog may start later, at `header`).
pub const HEADER_BYTES: usize = 512;
/// Largest extent accepted (qemu's limit; bximage writes 32 KiB..).
pub const MAX_EXTENT: u32 = 8 << 20;
/// Catalog entry of an extent never written.
const FREE: u32 = 0xffff_ffff;

/// The header, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    /// 0x44 `header`: where the catalog starts.
    pub header: u32,
    /// 0x48 `catalog`: entries (extents of the disk).
    pub catalog: u32,
    /// 0x4c `bitmap`: bytes of each extent's bitmap.
    pub bitmap: u32,
    /// 0x50 `extent`: bytes of disk per extent, a power of two.
    pub extent: u32,
    /// 0x58 (v2) or 0x54 (v1) `disk`: the virtual size, whole sectors.
    pub disk: u64,
}

/// The NUL-terminated text of `b`.
fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

impl Header {
    /// Parse and check the 512-byte header of `file`. Pure: no I/O.
    pub fn parse(file: &str, b: &[u8]) -> Result<Self> {
        let bad = |off: u64, what: String| Err(VdiskError::corrupt(file, "Bochs header", off, what));
        if b.len() < HEADER_BYTES {
            return bad(0, format!("{} bytes, the header needs {HEADER_BYTES}", b.len()));
        }
        if cstr(&b[..32]) != MAGIC.as_bytes() {
            return bad(0, format!("magic {:?}", String::from_utf8_lossy(cstr(&b[..32]))));
        }
        let (kind, sub) = (cstr(&b[0x20..0x30]), cstr(&b[0x30..0x40]));
        if kind != TYPE_REDOLOG.as_bytes() {
            return bad(0x20, format!("type {:?}, expected {TYPE_REDOLOG:?}", String::from_utf8_lossy(kind)));
        }
        if sub != SUBTYPE_GROWING.as_bytes() {
            return Err(VdiskError::Unsupported {
                file: file.into(),
                what: format!(
                    "Bochs redolog subtype {:?}: a log over a flat base image it does not name",
                    String::from_utf8_lossy(sub)
                ),
            });
        }
        let version = u32_at(b, 0x40);
        let disk = match version {
            VERSION_2 => u64_at(b, 0x58),
            VERSION_1 => u64_at(b, 0x54),
            v => return Err(VdiskError::Unsupported { file: file.into(), what: format!("Bochs version {v:#x}") }),
        };
        let header = u32_at(b, 0x44);
        let catalog = u32_at(b, 0x48);
        let bitmap = u32_at(b, 0x4c);
        let extent = u32_at(b, 0x50);
        if (header as usize) < HEADER_BYTES {
            return bad(0x44, format!("catalog at {header:#x}, inside the {HEADER_BYTES}-byte header"));
        }
        if !extent.is_power_of_two() || !(512..=MAX_EXTENT).contains(&extent) {
            return bad(0x50, format!("extent of {extent} bytes (a power of two, 512..={MAX_EXTENT})"));
        }
        let need_bitmap = (extent / 512).div_ceil(8);
        if bitmap < need_bitmap || bitmap > MAX_EXTENT {
            return bad(0x4c, format!("bitmap of {bitmap} bytes for {} sectors per extent", extent / 512));
        }
        let disk = disk / 512 * 512;
        let room = u64::from(catalog) * u64::from(extent);
        if disk > room {
            return bad(0x48, format!("{catalog} catalog entries of {extent} bytes cannot hold a disk of {disk}"));
        }
        Ok(Self { version, header, catalog, bitmap, extent, disk })
    }

    /// Where the data area (extent 0's bitmap) starts.
    fn data_offset(&self) -> u64 {
        u64::from(self.header) + u64::from(self.catalog) * 4
    }

    /// Bytes of one stored extent: its bitmap and its data, each in whole sectors.
    fn stride(&self) -> u64 {
        u64::from(self.bitmap).div_ceil(512) * 512 + u64::from(self.extent).div_ceil(512) * 512
    }
}

struct Bochs {
    file: Source,
    h: Header,
    /// Catalog entries; a repeated index (two extents in one place) is replaced by `None`.
    catalog: Vec<Option<u32>>,
}

impl GrainFormat for Bochs {
    fn grain_bytes(&self) -> u64 {
        512
    }
    fn table_grains(&self) -> u64 {
        u64::from(self.h.extent) / 512
    }
    fn capacity(&self) -> u64 {
        self.h.disk
    }
    fn load_table(&self, index: u64) -> Table {
        let e = match self.catalog.get(index as usize) {
            Some(Some(FREE)) => return Table::Uniform(Grain::Unallocated),
            Some(Some(e)) => *e,
            _ => return Table::Uniform(Grain::Unreadable),
        };
        let sectors = self.table_grains();
        let at = self.h.data_offset() + u64::from(e) * self.h.stride();
        let Some(bits) = read_meta(&self.file, at, sectors.div_ceil(8) as usize) else {
            return Table::Uniform(Grain::Unreadable);
        };
        if bits.iter().all(|&b| b == 0) {
            return Table::Uniform(Grain::Unallocated);
        }
        let data = at + u64::from(self.h.bitmap).div_ceil(512) * 512;
        Table::Entries(Arc::new(
            (0..sectors)
                .map(|s| {
                    if bits[(s / 8) as usize] >> (s % 8) & 1 == 1 {
                        Grain::Data(data + s * 512)
                    } else {
                        Grain::Unallocated
                    }
                })
                .collect(),
        ))
    }
}

/// Open a Bochs growing image.
pub fn open(name: &str, src: Source) -> Result<Image> {
    if src.len() < HEADER_BYTES as u64 {
        return Err(VdiskError::corrupt(name, "Bochs header", 0, format!("file is {} bytes", src.len())));
    }
    let mut b = vec![0u8; HEADER_BYTES];
    src.read_at(0, &mut b)?;
    let h = Header::parse(name, &b)?;
    if h.data_offset() > src.len() {
        return Err(VdiskError::corrupt(
            name,
            "Bochs catalog",
            u64::from(h.header),
            format!("{} entries end at {:#x}, past the end of the file ({:#x})", h.catalog, h.data_offset(), src.len()),
        ));
    }
    let raw = read_meta(&src, u64::from(h.header), h.catalog as usize * 4)
        .ok_or_else(|| VdiskError::corrupt(name, "Bochs catalog", u64::from(h.header), "unreadable sectors"))?;
    let mut seen = HashSet::new();
    let mut repeated = 0usize;
    let catalog = (0..h.catalog as usize)
        .map(|i| match u32_at(&raw, i * 4) {
            FREE => Some(FREE),
            e if seen.insert(e) => Some(e),
            _ => {
                repeated += 1;
                None
            }
        })
        .collect();
    let mut problems = Vec::new();
    if repeated > 0 {
        problems.push(format!(
            "Bochs: {repeated} catalog entries name an extent already used by another; they read as zeros"
        ));
    }
    let v1 = if h.version == VERSION_1 { ", v1 header" } else { "" };
    let variant = format!("growing, {} extents{v1}", size_words(u64::from(h.extent)));
    let capacity = h.disk;
    let g = Bochs { file: src.clone(), h, catalog };
    Ok(Image {
        format: Format::Bochs,
        variant,
        capacity,
        reader: Box::new(GrainExtent::new(g, src, capacity, problems)),
        id: None,
        parent: None,
    })
}

/// A growing image built byte by byte from the format description (qemu cannot write Bochs
/// images), for tests: `extents` catalog entries of 4 KiB extents (8 sectors, a 1-byte bitmap
/// padded to a sector), `catalog` their entries (missing ones free), `stored` the extents of
/// the data area in file order as (bitmap byte, fill byte of the 4 KiB).
#[cfg(test)]
pub(crate) fn build(extents: u32, disk: u64, catalog: &[u32], stored: &[(u8, u8)]) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_BYTES];
    b[..MAGIC.len()].copy_from_slice(MAGIC.as_bytes());
    b[0x20..0x20 + TYPE_REDOLOG.len()].copy_from_slice(TYPE_REDOLOG.as_bytes());
    b[0x30..0x30 + SUBTYPE_GROWING.len()].copy_from_slice(SUBTYPE_GROWING.as_bytes());
    b[0x40..0x44].copy_from_slice(&VERSION_2.to_le_bytes());
    b[0x44..0x48].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
    b[0x48..0x4c].copy_from_slice(&extents.to_le_bytes());
    b[0x4c..0x50].copy_from_slice(&1u32.to_le_bytes());
    b[0x50..0x54].copy_from_slice(&4096u32.to_le_bytes());
    b[0x58..0x60].copy_from_slice(&disk.to_le_bytes());
    for i in 0..extents as usize {
        b.extend_from_slice(&catalog.get(i).copied().unwrap_or(FREE).to_le_bytes());
    }
    for &(bits, fill) in stored {
        let mut bitmap = [0u8; 512];
        bitmap[0] = bits;
        b.extend_from_slice(&bitmap);
        b.extend(std::iter::repeat_n(fill, 4096));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use crate::vdisk::extent::Alloc;

    fn kind(e: VdiskError) -> String {
        match e {
            VdiskError::Corrupt { structure, offset, .. } => format!("{structure}@{offset:#x}"),
            VdiskError::Unsupported { .. } => "unsupported".into(),
            e => e.to_string(),
        }
    }

    fn open_bytes(b: Vec<u8>) -> Result<Image> {
        open("b", Arc::new(Tolerant::new(MemSource::new("b", b))))
    }

    #[test]
    fn broken_fields_are_named() {
        let good = build(4, 16384, &[], &[]);
        assert!(Header::parse("t", &good).is_ok());
        let cases: [(usize, &[u8], &str); 7] = [
            (0, b"Bochs Virtual HD Imagf", "Bochs header@0x0"),
            (0x20, b"Redolof", "Bochs header@0x20"),
            (0x30, b"Undoable", "unsupported"),
            (0x40, &0x0003_0000u32.to_le_bytes(), "unsupported"),
            (0x44, &0x100u32.to_le_bytes(), "Bochs header@0x44"),
            (0x50, &3000u32.to_le_bytes(), "Bochs header@0x50"),
            (0x4c, &0u32.to_le_bytes(), "Bochs header@0x4c"),
        ];
        for (off, v, want) in cases {
            let mut b = good.clone();
            b[off..off + v.len()].copy_from_slice(v);
            assert_eq!(kind(Header::parse("t", &b).unwrap_err()), want, "field {off:#x}");
        }
        // A disk larger than the catalog covers.
        assert_eq!(kind(Header::parse("t", &build(4, 16385 + 511, &[], &[])).unwrap_err()), "Bochs header@0x48");
        // A catalog past the end of the file.
        let mut b = good.clone();
        b[0x48..0x4c].copy_from_slice(&0x10_0000u32.to_le_bytes());
        b[0x58..0x60].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(kind(open_bytes(b).err().unwrap()), "Bochs catalog@0x200");
    }

    #[test]
    fn catalog_and_bitmaps() {
        // Extent 0 free; extent 1 stored first with sectors 0 and 7 written; extent 2 stored
        // second with nothing written; extent 3 repeats extent 1's index (damaged).
        let img = open_bytes(build(4, 16384, &[FREE, 0, 1, 0], &[(0x81, 0xa1), (0x00, 0xa2)])).unwrap();
        assert_eq!(img.capacity, 16384);
        let m = img.reader.map(0..16384).unwrap();
        assert_eq!(
            m,
            vec![
                (0..4096, Alloc::Unallocated),
                (4096..4608, Alloc::Data),
                (4608..7680, Alloc::Unallocated),
                (7680..8192, Alloc::Data),
                (8192..12288, Alloc::Unallocated),
                (12288..16384, Alloc::Unreadable),
            ]
        );
        let mut x = vec![0u8; 512];
        img.reader.read_data(7680, &mut x).unwrap();
        assert!(x.iter().all(|&v| v == 0xa1));
        assert!(img.reader.problems().iter().any(|p| p.contains("already used")));
    }
}
