//! Parallels (and OpenVZ ploop) expanding images: "WithoutFreeSpace" (v1) and
//! "WithouFreSpacExt" (v2, for disks of 2 TiB and more).
//!
//! Layout: a 64-byte little-endian header, then the BAT: one u32 per cluster of `tracks`
//! sectors, 0 = not allocated (zeros), else where the cluster lies, in sectors (v1) or in
//! clusters (v2). A v2 header may point at a format extension (dirty bitmaps written by
//! Parallels and qemu); it says nothing about the data and is ignored.

use super::error::{Result, VdiskError};
use super::grains::{Grain, GrainExtent, GrainFormat, Table, read_meta, u32_at, u64_at};
use super::image::{Format, Image, size_words};
use crate::block::Source;
use std::sync::Arc;

/// 0x00 magic of v1 images: BAT entries count sectors.
pub const MAGIC_V1: &[u8; 16] = b"WithoutFreeSpace";
/// 0x00 magic of v2 images: BAT entries count clusters.
pub const MAGIC_V2: &[u8; 16] = b"WithouFreSpacExt";
/// 0x10 `version`: 2 in both.
pub const VERSION: u32 = 2;
/// Header size; the BAT follows it.
pub const HEADER_BYTES: usize = 64;
/// 0x2c `inuse` while an image is open for writing ("Ynot"): left set by a crash.
pub const INUSE_MAGIC: u32 = 0x746f_6e59;
/// Largest cluster accepted, in sectors (1 GiB; Parallels writes 1 MiB, qemu allows 2 GiB).
pub const MAX_CLUSTER_SECTORS: u32 = 1 << 21;
/// BAT entries decoded per table of the grain cache.
const BAT_CHUNK: u64 = 1024;

/// The header, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// v2 ("WithouFreSpacExt"): BAT entries count clusters, not sectors.
    pub v2: bool,
    /// 0x1c `tracks`: sectors per cluster.
    pub tracks: u32,
    /// 0x20 `bat_entries`.
    pub bat_entries: u32,
    /// 0x24 `nb_sectors`: the virtual size in sectors (v1: the low 32 bits only, as qemu).
    pub sectors: u64,
    /// 0x2c `inuse`.
    pub inuse: u32,
    /// 0x38 `ext_off`: sector of the format extension, 0 for none.
    pub ext_off: u64,
}

impl Header {
    /// Parse and check the 64-byte header of `file`. Pure: no I/O.
    pub fn parse(file: &str, b: &[u8]) -> Result<Self> {
        let bad = |off: u64, what: String| Err(VdiskError::corrupt(file, "Parallels header", off, what));
        if b.len() < HEADER_BYTES {
            return bad(0, format!("{} bytes, the header needs {HEADER_BYTES}", b.len()));
        }
        let v2 = match &b[..16] {
            m if m == MAGIC_V1 => false,
            m if m == MAGIC_V2 => true,
            m => return bad(0, format!("magic {:?}", String::from_utf8_lossy(m))),
        };
        let version = u32_at(b, 0x10);
        if version != VERSION {
            return Err(VdiskError::Unsupported { file: file.into(), what: format!("Parallels version {version}") });
        }
        let tracks = u32_at(b, 0x1c);
        if tracks == 0 || tracks > MAX_CLUSTER_SECTORS {
            return bad(0x1c, format!("{tracks} sectors per cluster (1..={MAX_CLUSTER_SECTORS})"));
        }
        let bat_entries = u32_at(b, 0x20);
        let raw = u64_at(b, 0x24);
        let sectors = if v2 { raw } else { raw & 0xffff_ffff };
        let covered = u64::from(bat_entries) * u64::from(tracks);
        if sectors > covered {
            return bad(
                0x24,
                format!("{sectors} sectors, but {bat_entries} BAT entries of {tracks} sectors cover only {covered}"),
            );
        }
        Ok(Self { v2, tracks, bat_entries, sectors, inuse: u32_at(b, 0x2c), ext_off: u64_at(b, 0x38) })
    }

    /// End of the BAT in the file.
    fn bat_end(&self) -> u64 {
        HEADER_BYTES as u64 + u64::from(self.bat_entries) * 4
    }
}

struct Parallels {
    file: Source,
    h: Header,
}

impl Parallels {
    fn entry(&self, e: u32) -> Grain {
        if e == 0 {
            return Grain::Unallocated;
        }
        let unit = if self.h.v2 { u64::from(self.h.tracks) } else { 1 };
        let at = u64::from(e) * unit * 512;
        // Data never lies in the header or the BAT: such an entry is damaged.
        if at < self.h.bat_end() { Grain::Unreadable } else { Grain::Data(at) }
    }
}

impl GrainFormat for Parallels {
    fn grain_bytes(&self) -> u64 {
        u64::from(self.h.tracks) * 512
    }
    fn table_grains(&self) -> u64 {
        BAT_CHUNK
    }
    fn capacity(&self) -> u64 {
        self.h.sectors * 512
    }
    fn load_table(&self, index: u64) -> Table {
        let first = index.saturating_mul(BAT_CHUNK);
        let n = u64::from(self.h.bat_entries).saturating_sub(first).min(BAT_CHUNK);
        let at = HEADER_BYTES as u64 + first * 4;
        let Some(b) = read_meta(&self.file, at, (n * 4) as usize) else { return Table::Uniform(Grain::Unreadable) };
        Table::Entries(Arc::new((0..n as usize).map(|i| self.entry(u32_at(&b, i * 4))).collect()))
    }
}

/// Open a Parallels image.
pub fn open(name: &str, src: Source) -> Result<Image> {
    let mut b = [0u8; HEADER_BYTES];
    if src.len() < HEADER_BYTES as u64 {
        return Err(VdiskError::corrupt(name, "Parallels header", 0, format!("file is {} bytes", src.len())));
    }
    src.read_at(0, &mut b)?;
    let h = Header::parse(name, &b)?;
    if h.bat_end() > src.len() {
        return Err(VdiskError::corrupt(
            name,
            "Parallels BAT",
            HEADER_BYTES as u64,
            format!("{} entries end at {:#x}, past the end of the file ({:#x})", h.bat_entries, h.bat_end(), src.len()),
        ));
    }
    let mut problems = Vec::new();
    if h.inuse == INUSE_MAGIC {
        problems.push("Parallels: image was not closed cleanly (inuse set): the BAT may be stale".to_string());
    }
    let mut variant = format!("{}, {} clusters", if h.v2 { "v2" } else { "v1" }, size_words(u64::from(h.tracks) * 512));
    if h.ext_off != 0 {
        variant.push_str(", format extension (dirty bitmaps, ignored)");
    }
    let capacity = h.sectors * 512;
    let p = Parallels { file: src.clone(), h };
    Ok(Image {
        format: Format::Parallels,
        variant,
        capacity,
        reader: Box::new(GrainExtent::new(p, src, capacity, problems)),
        id: None,
        parent: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use crate::vdisk::extent::Alloc;

    fn header(v2: bool, tracks: u32, entries: u32, sectors: u64) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_BYTES];
        b[..16].copy_from_slice(if v2 { MAGIC_V2 } else { MAGIC_V1 });
        b[0x10..0x14].copy_from_slice(&VERSION.to_le_bytes());
        b[0x1c..0x20].copy_from_slice(&tracks.to_le_bytes());
        b[0x20..0x24].copy_from_slice(&entries.to_le_bytes());
        b[0x24..0x2c].copy_from_slice(&sectors.to_le_bytes());
        b
    }

    fn kind(e: VdiskError) -> String {
        e.kind()
    }

    #[test]
    fn broken_fields_are_named() {
        let ok = header(true, 8, 4, 32);
        assert!(Header::parse("t", &ok).is_ok());
        let mut b = ok.clone();
        b[0] = b'X';
        assert_eq!(kind(Header::parse("t", &b).unwrap_err()), "Parallels header@0x0");
        let mut b = ok.clone();
        b[0x10] = 3;
        assert_eq!(kind(Header::parse("t", &b).unwrap_err()), "unsupported");
        assert_eq!(kind(Header::parse("t", &header(true, 0, 4, 32)).unwrap_err()), "Parallels header@0x1c");
        assert_eq!(kind(Header::parse("t", &header(true, u32::MAX, 4, 32)).unwrap_err()), "Parallels header@0x1c");
        assert_eq!(kind(Header::parse("t", &header(true, 8, 4, 33)).unwrap_err()), "Parallels header@0x24");
        // v1 keeps only the low 32 bits of the size.
        let h = Header::parse("t", &header(false, 8, 4, (7u64 << 32) | 32)).unwrap();
        assert_eq!(h.sectors, 32);
    }

    #[test]
    fn bat_entries_in_sectors_and_clusters() {
        for v2 in [false, true] {
            // 4 clusters of 4 KiB: data at byte 4096, free, free, data past the end of the file.
            let entries: [u32; 4] = if v2 { [1, 0, 0, 100] } else { [8, 0, 0, 800] };
            let mut b = header(v2, 8, 4, 32);
            for e in entries {
                b.extend_from_slice(&e.to_le_bytes());
            }
            b.resize(4096, 0);
            b.resize(8192, 0x77);
            let src: Source = Arc::new(Tolerant::new(MemSource::new("p", b)));
            let img = open("p", src).unwrap();
            let m = img.reader.map(0..16384).unwrap();
            assert_eq!(
                m,
                vec![(0..4096, Alloc::Data), (4096..12288, Alloc::Unallocated), (12288..16384, Alloc::Unreadable)],
                "v2 {v2}"
            );
            let mut x = vec![0u8; 4096];
            img.reader.read_data(0, &mut x).unwrap();
            assert!(x.iter().all(|&v| v == 0x77));
        }
    }

    #[test]
    fn bat_past_the_end_is_refused() {
        let b = header(true, 8, 1 << 20, 8 << 20);
        let src: Source = Arc::new(Tolerant::new(MemSource::new("p", b)));
        assert_eq!(kind(open("p", src).err().unwrap()), "Parallels BAT@0x40");
    }
}
