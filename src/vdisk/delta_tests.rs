//! Hand-built COWD and SEsparse extents (bytes written here from research §5–6, not by the
//! forge): entry types, bounds, and hostile headers that must fail cleanly.

use super::cowd;
use super::extent::Alloc;
use super::sesparse;
use crate::block::{Source, SparseMem};
use std::sync::Arc;

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
fn src(b: Vec<u8>) -> Source {
    Arc::new(SparseMem::from_bytes("t", b))
}

/// 4 MiB COWD, 1-sector grains: GD at 4 (2 entries), GT at 5, data sector 37 = 0xAB.
fn cowd_bytes() -> Vec<u8> {
    let mut b = vec![0u8; 38 * 512];
    b[0..4].copy_from_slice(b"COWD");
    for (off, v) in [(4, 1), (8, 3), (12, 8192), (16, 1), (20, 4), (24, 2), (28, 38)] {
        put32(&mut b, off, v);
    }
    put32(&mut b, 4 * 512, 5);
    for (i, v) in [37u32, 1, 2, 0, 37].into_iter().enumerate() {
        put32(&mut b, 5 * 512 + i * 4, v);
    }
    b[37 * 512..].fill(0xAB);
    b
}

#[test]
fn cowd_entries() {
    let e = cowd::open("t", src(cowd_bytes()), 4 << 20).unwrap();
    assert!(e.problems().is_empty(), "{:?}", e.problems());
    let m = e.map(0..4 << 20).unwrap();
    let want = vec![
        (0..512, Alloc::Data),
        (512..1024, Alloc::Zero),        // GTE 1: zero grain (our choice, see cowd.rs)
        (1024..1536, Alloc::Unreadable), // GTE 2: inside the header
        (1536..2048, Alloc::Unallocated),
        (2048..2560, Alloc::Data),
        (2560..4 << 20, Alloc::Unallocated),
    ];
    assert_eq!(m, want);
    let mut buf = vec![0u8; 512];
    e.read_data(2048, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0xAB));
}

#[test]
fn cowd_hostile_headers() {
    let bad = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = cowd_bytes();
        f(&mut b);
        cowd::open("t", src(b), 4 << 20).err().map(|e| e.to_string())
    };
    assert!(bad(&|b| b.truncate(2000)).unwrap().contains("header"));
    assert!(bad(&|b| b[0] = b'X').unwrap().contains("magic"));
    assert!(bad(&|b| put32(b, 16, 0)).unwrap().contains("grainSize"));
    assert!(bad(&|b| put32(b, 16, 1 << 30)).unwrap().contains("grainSize"));
    assert!(bad(&|b| put32(b, 20, 1)).unwrap().contains("gdOffset"));
    assert!(bad(&|b| put32(b, 24, u32::MAX)).unwrap().contains("past the file"));
    assert!(bad(&|b| put32(b, 12, u32::MAX)).unwrap().contains("numGDEntries"));
    assert!(bad(&|b| put32(b, 20, u32::MAX)).unwrap().contains("past the file"));
    // A GT past the end of the file: reported, its slice unreadable, the rest readable.
    let mut b = cowd_bytes();
    put32(&mut b, 4 * 512 + 4, 1_000_000);
    let e = cowd::open("t", src(b), 4 << 20).unwrap();
    assert_eq!(e.problems().len(), 1, "{:?}", e.problems());
    assert_eq!(e.map(2 << 20..4 << 20).unwrap(), vec![(2 << 20..4 << 20, Alloc::Unreadable)]);
    // Header capacity smaller than the descriptor's: reported, the rest from the parent.
    let e = cowd::open("t", src(cowd_bytes()), 8 << 20).unwrap();
    assert_eq!(e.problems().len(), 1);
    assert_eq!(e.map(4 << 20..8 << 20).unwrap(), vec![(4 << 20..8 << 20, Alloc::Unallocated)]);
}

/// 16 MiB SEsparse: volatile header at 1, GD at 2 (1 sector), GTs at 3 (one 64-sector slot),
/// grains at 67 (8 slots of 8 sectors); grain slot 1 = 0xCD.
fn ses_bytes() -> Vec<u8> {
    let mut b = vec![0u8; (67 + 64) * 512];
    let hdr =
        [0xCAFE_BABE, 0x2_0000_0001, 0x8000, 8, 64, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 2, 1, 3, 64, 0, 0, 0, 0, 67, 64];
    for (i, v) in hdr.into_iter().enumerate() {
        put64(&mut b, i * 8, v);
    }
    put64(&mut b, 512, 0xCAFE_CAFE);
    put64(&mut b, 2 * 512, 1 << 60);
    let gt = [
        (3 << 60) | (1 << 48),         // allocated, grain slot 1
        1 << 60,                       // unmapped
        2 << 60,                       // zero
        0,                             // unallocated
        5 << 60,                       // bad type
        (3 << 60) | (0xFFF << 48) | 5, // slot past the grain region
        7,                             // type 0 with bits set
        (3 << 60) | (4 << 48),         // allocated, grain slot 4
    ];
    for (i, v) in gt.into_iter().enumerate() {
        put64(&mut b, 3 * 512 + i * 8, v);
    }
    b[(67 + 8) * 512..(67 + 16) * 512].fill(0xCD);
    b
}

#[test]
fn sesparse_entries() {
    let e = sesparse::open("t", src(ses_bytes()), 16 << 20).unwrap();
    assert!(e.problems().is_empty(), "{:?}", e.problems());
    let g = 4096;
    let want = vec![
        (0..g, Alloc::Data),
        (g..3 * g, Alloc::Zero),
        (3 * g..4 * g, Alloc::Unallocated),
        (4 * g..7 * g, Alloc::Unreadable),
        (7 * g..8 * g, Alloc::Data),
        (8 * g..16 << 20, Alloc::Unallocated),
    ];
    assert_eq!(e.map(0..16 << 20).unwrap(), want);
    let mut buf = vec![0u8; 4096];
    e.read_data(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0xCD));
}

#[test]
fn sesparse_hostile_headers() {
    let bad = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = ses_bytes();
        f(&mut b);
        sesparse::open("t", src(b), 16 << 20).map(|e| e.problems())
    };
    assert!(bad(&|b| b[0] = 0).unwrap_err().to_string().contains("constMagic"));
    assert!(bad(&|b| put64(b, 32, 32)).unwrap_err().to_string().contains("grainTableSize"));
    assert!(bad(&|b| put64(b, 24, 16)).unwrap_err().to_string().contains("grainSize"));
    assert!(bad(&|b| put64(b, 16, u64::MAX)).is_err());
    assert!(bad(&|b| put64(b, 16, 1 << 50)).is_err());
    assert!(bad(&|b| put64(b, 128, u64::MAX / 2)).is_err());
    assert!(bad(&|b| put64(b, 128, 1 << 40)).unwrap_err().to_string().contains("past the file"));
    // Dirty journal: read anyway, reported. Damaged GDE: reported, its slice unreadable.
    assert!(bad(&|b| put64(b, 512 + 24, 1)).unwrap()[0].contains("replayJournal"));
    assert!(bad(&|b| put64(b, 1024, (1 << 60) | (1 << 40))).unwrap()[0].contains("grain directory"));
    assert!(bad(&|b| put64(b, 56, 1)).unwrap()[0].contains("reserved"));
    let mut b = ses_bytes();
    put64(&mut b, 1024, 2 << 60);
    let e = sesparse::open("t", src(b), 16 << 20).unwrap();
    assert_eq!(e.map(0..16 << 20).unwrap(), vec![(0..16 << 20, Alloc::Unreadable)]);
}
