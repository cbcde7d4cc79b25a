//! A whole VMFS volume built from fuzz input: open it, walk every directory, read every file.
//!
//! The volume is 64 MiB of zeros with the input laid over it in pieces: each piece is a
//! (selector, bytes) pair, and the selector places the bytes at one of the places the reader
//! looks (the FS descriptor, FD cluster 0 of VMFS5 or VMFS6, resource-file headers, pointer
//! blocks, directory blocks) or anywhere; some inputs also go through the recovery engine's
//! rebuild and carving. Nothing may panic, loop without end, or allocate from
//! an unchecked size; errors are fine.
// fuzz-smoke: -max_len=131072 -timeout=20
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, Source, SparseMem};
use vmfs_rescue::recover::{rebuild, reference_scan};
use vmfs_rescue::vmfs::{Vmfs, VmfsFile, WalkItem};

const SIZE: u64 = 64 << 20;

/// Places the reader looks at on small volumes.
const SPOTS: [u64; 12] = [
    0x20_0000, // FS descriptor
    0x40_0000, // VMFS5 .fdc.sf start
    0x41_0000, // VMFS5 FD cluster group 0
    0x42_0000, // VMFS5 system FDs
    0x42_1000, 0x70_0000, // VMFS6 .fdc.sf start
    0x71_0000, 0x72_0000, // VMFS6 system FDs
    0x72_4000, 0x80_0000, 0x100_0000, 0x180_0000,
];

fuzz_target!(|data: &[u8]| {
    let mut pieces = Vec::new();
    let mut rest = data;
    while rest.len() >= 4 {
        let sel = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let at = if usize::from(sel) < SPOTS.len() * 16 {
            SPOTS[usize::from(sel) / 16] + u64::from(sel % 16) * 0x800
        } else {
            u64::from(sel) * 1024
        };
        pieces.push((at.min(SIZE - 1), rest[4..4 + len].to_vec()));
        rest = &rest[4 + len..];
    }
    for p in &mut pieces {
        let max = (SIZE - p.0) as usize;
        p.1.truncate(max);
    }
    let vol = Arc::new(SparseMem { name: "fuzz".into(), len: SIZE, regions: pieces.into_iter().collect() });
    let Ok(fs) = Vmfs::open(vol) else { return };
    let fs = Arc::new(fs);
    let Ok(root) = fs.root() else { return };
    let mut files = Vec::new();
    fs.walk(&root, "/", true, &mut |item| {
        if let WalkItem::Entry { path, fd, .. } = item {
            if files.len() < 64 {
                files.push((path, fd));
            }
        }
    });
    // Now and then, the recovery engine over the same volume: scan, rebuild, carve (freed
    // FDs, orphaned pointer blocks, free-space structures). Gated so the reader's cases stay fast.
    if data.len() % 16 == 5 {
        let src: Source = fs.vol.clone();
        let found = reference_scan(&[src.as_ref()]);
        let cat = rebuild::rebuild(&[src], &found);
        for i in &cat.items {
            let _ = i.out_path();
            if let Some(c) = &i.content {
                let mut buf = vec![0u8; 4096];
                let n = c.len().min(4096) as usize;
                let _ = c.read_at(0, &mut buf[..n]);
            }
        }
    }
    for (path, fd) in files {
        let f = VmfsFile::new(Arc::clone(&fs), fd, path);
        let _ = f.allocated_bytes();
        let mut buf = vec![0u8; 4096];
        let n = f.len().min(4096) as usize;
        let _ = f.read_at(0, &mut buf[..n]);
        let _ = f.unreadable(0..f.len());
        let _ = f.data_ranges(0..f.len().min(1 << 40));
    }
});
