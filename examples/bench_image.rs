//! Make a benchmark image: a copy of a real VMFS5 volume whose `/normal-flat.vmdk` is turned
//! into a 1 GiB fully allocated file (its one pointer block filled with free file blocks, which
//! get pseudo-random data). Used by `scripts/bench-extract.sh` until the forge makes such images.
//!
//! Usage: bench_image SOURCE_IMAGE OUT_IMAGE   (prints the file's path and its first byte's
//! offset in OUT_IMAGE)

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use vmfs_rescue::vmfs::address::make_fb;
use vmfs_rescue::vmfs::{ExtentKind, VmfsFile, WalkItem};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (src, out) = (&args[1], &args[2]);
    assert!(std::process::Command::new("cp").args(["--sparse=always", src, out]).status().unwrap().success());
    let srcs = vmfs_rescue::datastore::open_sources(&[out.into()]).unwrap();
    let (stores, _) = vmfs_rescue::datastore::find(&srcs);
    let d = stores.into_iter().find(|d| d.fs.is_ok()).expect("a VMFS volume");
    let base = d.volume.parts[0].device_offset + d.volume.parts[0].runs[0].1;
    let fs = d.fs.unwrap();
    assert!(!fs.geo.v6, "VMFS5 source expected");
    let fbs = fs.geo.fbs;
    // Every block some file uses.
    let mut used = vec![false; (fs.vol.len() / fbs) as usize];
    let root = fs.root().unwrap();
    fs.walk(&root, "/", true, &mut |item| {
        if let WalkItem::Entry { path, fd, .. } = item {
            let f = VmfsFile::new(Arc::clone(&fs), fd.clone(), path);
            f.for_extents(0..fd.meta.size.min(1 << 40), |e| {
                if let ExtentKind::Data { vol_off } = e.kind {
                    for b in vol_off / fbs..(vol_off + e.len).div_ceil(fbs) {
                        used[b as usize] = true;
                    }
                }
            });
        }
    });
    used[..8].iter_mut().for_each(|u| *u = true); // descriptor and heartbeat area
    let free: Vec<u64> = (0..used.len() as u64).filter(|&b| !used[b as usize]).take(1024).collect();
    assert_eq!(free.len(), 1024, "not enough free blocks");
    let fd = fs.lookup("/normal-flat.vmdk").unwrap();
    let ptrs = fd.pointers(&fs.geo);
    let pb = ptrs[42];
    let pb_vol = fs.resource_volume_offset(pb).unwrap();
    let img = std::fs::OpenOptions::new().write(true).open(out).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; fbs as usize];
    let mut entries = Vec::with_capacity(4096);
    for &b in &free {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        img.write_all_at(&block, base + b * fbs).unwrap();
        entries.extend_from_slice(&make_fb(b as u32, false).to_le_bytes());
    }
    img.write_all_at(&entries, base + pb_vol).unwrap();
    let ptr_area = base + fd.vol_offset() + fs.geo.ptrs_off as u64;
    img.write_all_at(&(pb as u32).to_le_bytes(), ptr_area).unwrap();
    img.write_all_at(&0u32.to_le_bytes(), ptr_area + 42 * 4).unwrap();
    let size: u64 = 1 << 30;
    img.write_all_at(&size.to_le_bytes(), base + fd.vol_offset() + fs.geo.meta_off as u64 + 0x14).unwrap();
    img.sync_all().unwrap();
    println!("/normal-flat.vmdk {}", base + free[0] * fbs);
}
