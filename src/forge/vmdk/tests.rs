//! Cross-checks against qemu's vmdk driver: a base (VMFS flat) plus a COWD child and an
//! SEsparse child, converted to raw by `qemu-img`, must hash like [`Delta::merged`].

use super::*;
use crate::block::{Source, SparseMem};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

const CAP: u64 = 40 << 20;

fn parent(seed: u64) -> Source {
    let mut g = SplitMix64::new(seed, 1);
    let mut m = SparseMem { name: "base".into(), len: CAP, regions: BTreeMap::new() };
    for at in [0u64, 1 << 20, 15 << 20, 33 << 20] {
        m.regions.insert(at + g.below(4096), g.bytes(300_000));
    }
    Arc::new(m)
}

fn delta(seed: u64) -> Delta {
    let mut g = SplitMix64::new(seed, 2);
    let mut d = Delta::new(parent(seed)).unwrap();
    // Unaligned, across a COWD GT (2 MiB), across an SEsparse GT (16 MiB), overlapping, at the end.
    let writes: [(u64, usize); 7] = [
        (100, 1000),
        ((2 << 20) - 300, 600),
        ((16 << 20) - 4096, 8192 + 17),
        (30 << 20, 256 << 10),
        ((30 << 20) + 1000, 5000),
        (CAP - 100, 100),
        (7 << 20, 1),
    ];
    for (off, len) in writes {
        d.write(off, &g.bytes(len)).unwrap();
    }
    d
}

fn qemu_img() -> Option<PathBuf> {
    let ok = Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success());
    if ok { Some(PathBuf::from("qemu-img")) } else { None }
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run qemu-img");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{cmd:?} failed: {text}");
    text
}

/// Write base + one child of `kind`, convert the child with qemu-img, compare hashes.
fn check_child(kind: DiskKind) {
    let Some(qemu) = qemu_img() else {
        eprintln!("skipped: qemu-img not installed (Debian package qemu-utils)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = delta(9);
    let base = Descriptor::base("base", d.capacity_sectors(), DiskKind::Thin, [3; 16]).unwrap();
    std::fs::write(dir.path().join("base.vmdk"), base.text()).unwrap();
    write_sparse_file(&dir.path().join(&base.extent_file), d.parent().as_ref()).unwrap();
    let child = Descriptor::delta("base-000001", &base, "base.vmdk", kind, 0x5a5a_1234, [4; 12]).unwrap();
    std::fs::write(dir.path().join("base-000001.vmdk"), child.text()).unwrap();
    let extent = match kind {
        DiskKind::VmfsSparse => vmfs_sparse_extent(&d, &CowdOptions::default()).unwrap(),
        _ => sesparse_extent(&d, &SesparseOptions::default()).unwrap(),
    };
    write_sparse_file(&dir.path().join(&child.extent_file), &extent).unwrap();

    let child_path = dir.path().join("base-000001.vmdk");
    let info = run(Command::new(&qemu).args(["info", "--backing-chain"]).arg(&child_path));
    assert!(info.contains("virtual size: 40 MiB"), "{info}");
    // qemu's vmdk check follows every allocated grain and flags pointers past the file end.
    let check = run(Command::new(&qemu).arg("check").arg(&child_path));
    assert!(check.contains("No errors were found"), "{check}");
    let raw = dir.path().join("out.raw");
    run(Command::new(&qemu).args(["convert", "-O", "raw"]).arg(&child_path).arg(&raw));
    let got = crate::block::ImageFile::open(&raw).map(crate::block::Tolerant::new).unwrap();
    assert_eq!(sha256_source(&got).unwrap(), sha256_source(d.merged().as_ref()).unwrap(), "{kind:?}");
    // The parent alone must still read as the parent.
    let raw0 = dir.path().join("base.raw");
    run(Command::new(&qemu).args(["convert", "-O", "raw"]).arg(dir.path().join("base.vmdk")).arg(&raw0));
    let got0 = crate::block::ImageFile::open(&raw0).map(crate::block::Tolerant::new).unwrap();
    assert_eq!(sha256_source(&got0).unwrap(), sha256_source(d.parent().as_ref()).unwrap());
}

#[test]
fn qemu_reads_cowd_child() {
    check_child(DiskKind::VmfsSparse);
}

#[test]
fn qemu_reads_sesparse_child() {
    check_child(DiskKind::SeSparse);
}

#[test]
fn cowd_layout() {
    let d = delta(5);
    let e = vmfs_sparse_extent(&d, &CowdOptions::default()).unwrap();
    let mut h = [0u8; 2048];
    e.read_at(0, &mut h).unwrap();
    assert_eq!(&h[..4], b"COWD");
    let le = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().unwrap());
    assert_eq!((le(4), le(8), le(12), le(16), le(20)), (1, 3, (CAP / 512) as u32, 1, 4));
    assert_eq!(le(24), 20); // 40 MiB / 2 MiB per GT
    assert_eq!(u64::from(le(28)) * 512, e.len);
    // First GT right after the 1-sector GD, its data right after it.
    let mut gd = [0u8; 4];
    e.read_at(4 * 512, &mut gd).unwrap();
    assert_eq!(u32::from_le_bytes(gd), 5);
    let mut gte = [0u8; 4];
    e.read_at(5 * 512, &mut gte).unwrap();
    assert_eq!(u32::from_le_bytes(gte), 5 + 32);
}

#[test]
fn sesparse_layout() {
    let d = delta(5);
    let e = sesparse_extent(&d, &SesparseOptions::default()).unwrap();
    let l = SesLayout::for_capacity(CAP / 512);
    let grains = d.grains(4096).len() as u64;
    assert_eq!(e.len, (l.grains.0 + grains * 8) * 512);
    let mut b = [0u8; 8];
    e.read_at(l.gd.0 * 512, &mut b).unwrap();
    assert_eq!(u64::from_le_bytes(b), 1 << 60);
    e.read_at(l.gd.0 * 512 + 8, &mut b).unwrap();
    assert_eq!(u64::from_le_bytes(b), (1 << 60) | 1);
    e.read_at(512 + 8, &mut b).unwrap();
    assert_eq!(u64::from_le_bytes(b), 3); // GT slots used: slices 0, 1, 2
}
