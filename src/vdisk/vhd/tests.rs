//! VHD images built in memory: every disk type, the bitmap rules, footer fallbacks and hostile
//! headers.

use super::ondisk::{DiskType, DynamicHeader, Footer, Locator};
use super::*;
use crate::block::{MemSource, Tolerant};
use crate::vdisk::extent::Alloc;

fn src(b: Vec<u8>) -> Source {
    Arc::new(Tolerant::new(MemSource::new("t.vhd", b)))
}

fn footer(t: DiskType, size: u64) -> Footer {
    Footer {
        features: 2,
        version: 0x1_0000,
        data_offset: if t == DiskType::Fixed { u64::MAX } else { 512 },
        timestamp: 0,
        creator_app: *b"test",
        creator_version: 0x1_0002,
        creator_os: *b"Wi2k",
        original_size: size,
        current_size: size,
        cylinders: 1,
        heads: 1,
        sectors: 1,
        disk_type: t,
        checksum: 0,
        unique_id: [0xab; 16],
        saved_state: 0,
        checksum_ok: true,
    }
}

const BLOCK: u32 = 4096;
/// Relative parent locator of `child()`.
const PARENT: &str = "..\\base\\base.vhd";

/// A dynamic (or differencing) disk of `size` bytes with 4 KiB blocks: block `i` of `blocks`
/// holds `(bitmap byte, data byte)`, `None` = not allocated.
fn dynamic(t: DiskType, size: u64, blocks: &[Option<(u8, u8)>]) -> Vec<u8> {
    let entries = size.div_ceil(u64::from(BLOCK)) as u32;
    let table = 1536u64;
    let loc_at = (table + u64::from(entries) * 4).next_multiple_of(512);
    let loc: Vec<u8> = PARENT.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let mut locators = vec![Locator::default(); 8];
    locators[0] = Locator { code: *b"W2ru", space: 1, length: loc.len() as u32, offset: loc_at };
    let h = DynamicHeader {
        table_offset: table,
        version: 0x1_0000,
        max_table_entries: entries,
        block_size: BLOCK,
        checksum: 0,
        parent_id: [0x5a; 16],
        parent_timestamp: 0,
        parent_name: "base.vhd".into(),
        locators,
        checksum_ok: true,
    };
    let f = footer(t, size).encode();
    let mut b = Vec::new();
    b.extend_from_slice(&f);
    b.extend_from_slice(&h.encode());
    b.resize(loc_at as usize, 0xff);
    b.extend_from_slice(&loc);
    b.resize(b.len().next_multiple_of(512), 0);
    for (i, blk) in blocks.iter().enumerate() {
        let e = match blk {
            None => u32::MAX,
            Some((bits, data)) => {
                let s = (b.len() / 512) as u32;
                b.extend(std::iter::repeat_n(*bits, 512));
                b.extend(std::iter::repeat_n(*data, BLOCK as usize));
                s
            }
        };
        b[table as usize + 4 * i..table as usize + 4 * i + 4].copy_from_slice(&e.to_be_bytes());
    }
    b.extend_from_slice(&f);
    b
}

fn read(img: &Image, off: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (r, a) in img.reader.map(off..off + len as u64).unwrap() {
        if a == Alloc::Data {
            img.reader.read_data(r.start, &mut out[(r.start - off) as usize..(r.end - off) as usize]).unwrap();
        }
    }
    out
}

#[test]
fn dynamic_disk_reads_blocks_and_bitmaps() {
    // Block 0: all sectors present; block 1 absent; block 2: only sector 0 of each 8 present.
    let b = dynamic(DiskType::Dynamic, 3 * 4096, &[Some((0xff, 0x11)), None, Some((0x80, 0x33))]);
    let img = open("t.vhd", src(b)).unwrap();
    assert_eq!(img.format, Format::Vhd);
    assert_eq!(img.capacity, 3 * 4096);
    assert!(img.variant.starts_with("dynamic, 4 KiB blocks"), "{}", img.variant);
    assert_eq!(img.id.as_deref(), Some("abababab-abab-abab-abab-abababababab"));
    assert!(img.parent.is_none());
    assert!(img.reader.problems().is_empty(), "{:?}", img.reader.problems());
    let m = img.reader.map(0..3 * 4096).unwrap();
    assert_eq!(
        m,
        vec![
            (0..4096, Alloc::Data),
            (4096..8192, Alloc::Unallocated),
            (8192..8704, Alloc::Data),
            (8704..12288, Alloc::Unallocated)
        ]
    );
    assert!(read(&img, 0, 4096).iter().all(|&x| x == 0x11));
    let r = read(&img, 8192, 4096);
    assert!(r[..512].iter().all(|&x| x == 0x33) && r[512..].iter().all(|&x| x == 0));
}

#[test]
fn differencing_disk_names_its_parent() {
    let b = dynamic(DiskType::Differencing, 2 * 4096, &[Some((0x40, 0x22)), None]);
    let img = open("/d/child.vhd", src(b)).unwrap();
    let p = img.parent.unwrap();
    assert_eq!(p.hints, vec!["../base/base.vhd".to_string(), "base.vhd".to_string()]);
    assert_eq!(p.id.as_deref(), Some("5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a"));
    assert_eq!(p.format, Some(Format::Vhd));
    // Sector 1 is this file's, the rest the parent's.
    assert_eq!(
        img.reader.map(0..8192).unwrap(),
        vec![(0..512, Alloc::Unallocated), (512..1024, Alloc::Data), (1024..8192, Alloc::Unallocated)]
    );
}

#[test]
fn bad_end_footer_falls_back_to_the_copy() {
    let mut b = dynamic(DiskType::Dynamic, 4096, &[Some((0xff, 1))]);
    let n = b.len();
    b[n - 100] ^= 1;
    let img = open("t.vhd", src(b.clone())).unwrap();
    let p = img.reader.problems();
    assert!(p.iter().any(|x| x.contains("fails its checksum: used the copy at offset 0")), "{p:?}");
    // Cut off the end footer and half the block: the copy is used, the lost half unreadable.
    b.truncate(n - 512 - 2048);
    let img = open("t.vhd", src(b)).unwrap();
    let p = img.reader.problems();
    assert!(p.iter().any(|x| x.contains("no footer at the end")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("1 blocks reach past the end")), "{p:?}");
    assert_eq!(img.reader.map(0..4096).unwrap(), vec![(0..2048, Alloc::Data), (2048..4096, Alloc::Unreadable)]);
}

#[test]
fn huge_bat_is_refused_before_allocating() {
    let mut b = dynamic(DiskType::Dynamic, 4096, &[None]);
    // afl5.img's value.
    b[512 + 0x1c..512 + 0x20].copy_from_slice(&0x4000_0001u32.to_be_bytes());
    let h: [u8; 1024] = b[512..1536].try_into().unwrap();
    let c = ondisk::checksum(&h, 0x24);
    b[512 + 0x24..512 + 0x28].copy_from_slice(&c.to_be_bytes());
    let e = open("t.vhd", src(b)).err().unwrap();
    match e {
        VdiskError::Corrupt { structure, offset, what, .. } => {
            assert_eq!(structure, DynamicHeader::NAME);
            assert_eq!(offset, 512 + 0x1c);
            assert!(what.contains("max table entries 0x40000001"), "{what}");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn bat_into_metadata_or_past_eof_is_unreadable() {
    let mut b = dynamic(DiskType::Dynamic, 2 * 4096, &[Some((0xff, 1)), Some((0xff, 2))]);
    b[1536..1540].copy_from_slice(&2u32.to_be_bytes()); // inside the header
    b[1540..1544].copy_from_slice(&0x00ff_0000u32.to_be_bytes()); // far past the end
    let img = open("t.vhd", src(b)).unwrap();
    let p = img.reader.problems();
    assert!(p.iter().any(|x| x.contains("1 BAT entries point into the file's own metadata")), "{p:?}");
    assert_eq!(img.reader.map(0..8192).unwrap(), vec![(0..8192, Alloc::Unreadable)]);
    assert!(read(&img, 0, 8192).iter().all(|&x| x == 0));
}

#[test]
fn fixed_disk_and_truncated_copy() {
    let mut b = vec![0x77u8; 8192];
    b.extend_from_slice(&footer(DiskType::Fixed, 8192).encode());
    let img = open("t.vhd", src(b.clone())).unwrap();
    assert!(img.variant.starts_with("fixed"));
    assert_eq!(img.reader.map(0..8192).unwrap(), vec![(0..8192, Alloc::Data)]);
    assert!(read(&img, 4096, 4096).iter().all(|&x| x == 0x77));
    // An old 511-byte footer.
    let mut old = b.clone();
    old.pop();
    assert_eq!(open("t.vhd", src(old)).unwrap().capacity, 8192);
    // A footer that claims more than the file holds.
    let mut short = vec![0x77u8; 4096];
    short.extend_from_slice(&footer(DiskType::Fixed, 8192).encode());
    let img = open("t.vhd", src(short)).unwrap();
    assert_eq!(img.reader.map(0..8192).unwrap(), vec![(0..4096, Alloc::Data), (4096..8192, Alloc::Unreadable)]);
}

#[test]
fn broken_only_footer_is_refused_or_reported() {
    let mut b = vec![0u8; 4096];
    let mut f = footer(DiskType::Fixed, 4096).encode();
    f[0x3f] = 7;
    b.extend_from_slice(&f);
    let e = open("t.vhd", src(b)).err().unwrap();
    assert!(matches!(e, VdiskError::Corrupt { offset: 0x103c, .. }), "{e}");
    let mut b = vec![0u8; 4096];
    let mut f = footer(DiskType::Fixed, 4096).encode();
    f[0x100] = 1;
    b.extend_from_slice(&f);
    let img = open("t.vhd", src(b)).unwrap();
    assert!(img.reader.problems()[0].contains("fails its checksum"));
}

#[test]
fn locators_decode() {
    assert_eq!(
        decode_locator(b"MacX", b"file://localhost/Users/a/My%20Disk.vhd\0").as_deref(),
        Some("/Users/a/My Disk.vhd")
    );
    let w: Vec<u8> = "C:\\VMs\\base.vhd\0".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    assert_eq!(decode_locator(b"W2ku", &w).as_deref(), Some("C:/VMs/base.vhd"));
    assert_eq!(decode_locator(b"Mac ", b"alias"), None);
    assert_eq!(decode_locator(b"MacX", b"http://x"), None);
}
