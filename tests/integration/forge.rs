//! The forge writes volumes our reader and dissect.vmfs read back exactly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, SparseMem};
use vmfs_rescue::forge::disk::Table;
use vmfs_rescue::forge::vmfs::{Provisioning, ROOT};
use vmfs_rescue::forge::volume::{VolumeSpec, create};

const MIB: u64 = 1 << 20;

fn content(len: u64, regions: &[(u64, u64, u8)]) -> SparseMem {
    let mut m = SparseMem::zeros("c", len);
    for &(off, n, tag) in regions {
        let b: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31) ^ tag).collect();
        m.regions.insert(off, b);
    }
    m
}

/// Forge a small volume; returns the image paths and (path -> expected content).
pub(crate) fn small_volume(
    dir: &std::path::Path,
    version: u32,
    disks: usize,
) -> (Vec<PathBuf>, BTreeMap<String, SparseMem>) {
    let paths: Vec<PathBuf> = (0..disks).map(|i| dir.join(format!("v{version}-{disks}-{i}.img"))).collect();
    let spec = VolumeSpec {
        version,
        disks: paths.iter().map(|p| (p.clone(), 3 << 30)).collect(),
        table: Table::Gpt,
        label: format!("forge{version}"),
        seed: 7,
        time: 1_750_000_000,
    };
    let mut w = create(&spec).unwrap();
    let mut truth = BTreeMap::new();
    let vm = w.mkdir(ROOT, "vm1").unwrap();
    let files: Vec<(&str, u32, SparseMem, Provisioning)> = vec![
        ("vm1.vmx", vm, content(900, &[(0, 900, 1)]), Provisioning::Thin),
        ("vm1.log", vm, content(6000, &[(0, 6000, 2)]), Provisioning::Thin),
        ("vm1-flat.vmdk", vm, content(300 * MIB, &[(0, MIB, 3), (100 * MIB + 5, 3 * MIB, 4)]), Provisioning::Thin),
        ("thick-flat.vmdk", vm, content(40 * MIB + 512, &[(MIB, 2 * MIB, 5)]), Provisioning::LazyThick),
        ("eager-flat.vmdk", vm, content(10 * MIB, &[(0, 512, 6)]), Provisioning::EagerThick),
        ("big.bin", ROOT, content(1200 * MIB, &[(0, 10, 7), (1100 * MIB, MIB, 8)]), Provisioning::LazyThick),
    ];
    for (name, parent, c, prov) in files {
        w.add_file(parent, name, &c, prov, 0o600).unwrap();
        let p = if parent == ROOT { format!("/{name}") } else { format!("/vm1/{name}") };
        truth.insert(p, c);
    }
    w.finish().unwrap();
    (paths, truth)
}

fn check(version: u32, disks: usize) {
    let dir = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("FORGE_KEEP").map(PathBuf::from);
    let base = keep.clone().unwrap_or_else(|| dir.path().to_path_buf());
    let (paths, truth) = small_volume(&base, version, disks);
    let srcs = vmfs_rescue::datastore::open_sources(&paths).unwrap();
    let (stores, notes) = vmfs_rescue::datastore::find(&srcs);
    let fs = stores.into_iter().find_map(|d| d.fs.ok()).unwrap_or_else(|| panic!("no volume: {notes:?}"));
    for (path, c) in &truth {
        let fd = fs.lookup(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(fd.meta.size, c.len(), "{path}");
        let f = vmfs_rescue::vmfs::VmfsFile::new(Arc::clone(&fs), fd, path);
        let mut a = vec![0u8; MIB as usize];
        let mut b = vec![0u8; MIB as usize];
        let mut off = 0;
        while off < c.len() {
            let n = (c.len() - off).min(MIB) as usize;
            f.read_at(off, &mut a[..n]).unwrap();
            c.read_at(off, &mut b[..n]).unwrap();
            assert!(a[..n] == b[..n], "{path} at {off}");
            off += n as u64;
        }
    }
}

#[test]
fn forged_vmfs5_reads_back() {
    check(5, 1);
}

#[test]
fn forged_vmfs6_reads_back() {
    check(6, 1);
}

#[test]
fn forged_span_reads_back() {
    check(6, 2);
}
