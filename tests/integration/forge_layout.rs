//! The forge lays a volume out as ESXi does: an empty forged volume of the same version, size
//! and block size as a real ESXi image of the corpus is compared field by field (LVM header,
//! FS descriptor, system-file FDs, resource-file headers, cluster headers, root directory).
//! Every difference that is not a UUID, a time, a label, or the state of the real image's own
//! user files is named, and the test fails on any.

use crate::util::corpus_image;
use std::path::Path;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, read_vec};
use vmfs_rescue::forge::disk::Table;
use vmfs_rescue::forge::volume::{VolumeSpec, create};
use vmfs_rescue::vmfs::{Vmfs, VmfsFile};

/// Byte ranges (start, end, what) left out of a comparison, with the reason in the name.
type Skip = &'static [(usize, usize, &'static str)];

fn open(path: &Path) -> (Arc<Vmfs>, vmfs_rescue::block::Source) {
    let srcs = vmfs_rescue::datastore::open_sources(&[path.to_path_buf()]).unwrap();
    let dev = srcs[0].clone();
    let (stores, notes) = vmfs_rescue::datastore::find(&srcs);
    let fs = stores.into_iter().find_map(|d| d.fs.ok()).unwrap_or_else(|| panic!("{path:?}: {notes:?}"));
    (fs, dev)
}

/// Compare `a` (real) and `b` (forged) as little-endian u32 words, except `skip`.
fn diff_bytes(what: &str, a: &[u8], b: &[u8], skip: Skip, out: &mut Vec<String>) {
    let n = a.len().max(b.len());
    let mut i = 0;
    while i < n {
        if let Some(&(_, e, _)) = skip.iter().find(|(s, e, _)| *s <= i && i < *e) {
            i = e;
            continue;
        }
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        if x != y {
            let w = |v: &[u8]| v.get(i & !3..(i & !3) + 4).map(|s| format!("{:02x?}", s)).unwrap_or_default();
            out.push(format!("{what}+{:#x}: ESXi {} forge {}", i & !3, w(a), w(b)));
            i = (i & !3) + 4;
            continue;
        }
        i += 1;
    }
}

fn read_file(fs: &Arc<Vmfs>, path: &str, off: u64, len: u64) -> Vec<u8> {
    let fd = fs.lookup(path).unwrap();
    let f = VmfsFile::new(Arc::clone(fs), fd, path);
    let mut b = vec![0u8; len as usize];
    f.read_at(off, &mut b).unwrap();
    b
}

fn compare(real_rel: &str, version: u32) {
    let Some(real) = corpus_image(real_rel) else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("forged.img");
    let len = std::fs::metadata(&real).unwrap().len();
    let spec = VolumeSpec {
        version,
        disks: vec![(img.clone(), len)],
        table: Table::None,
        label: "forged".into(),
        seed: 1,
        time: 1_751_281_404,
    };
    create(&spec).unwrap().finish().unwrap();
    let (rfs, rdev) = open(&real);
    let (ffs, fdev) = open(&img);
    let mut d = Vec::new();

    // LVM device header and volume descriptor.
    let lvm_skip: Skip = &[
        (0x0C, 0x5A, "disk id"),
        (0x5E, 0x66, "device size"),
        (0x82, 0x92, "device UUID"),
        (0x92, 0xA2, "times"),
        (0x72, 0x7A, "generation (changes with every LVM update)"),
    ];
    let h = |dev: &vmfs_rescue::block::Source| read_vec(&**dev, 0x10_0000, 512).unwrap();
    diff_bytes("LVM_DevMetadata", &h(&rdev), &h(&fdev), lvm_skip, &mut d);
    let vt = if version == 6 { 0x10_1000 } else { 0x10_0200 };
    let vd_skip: Skip = &[(0x14, 0x64, "LV name and UUID"), (0x68, 0x70, "ctime"), (0x88, 0x90, "mtime")];
    let v = |dev: &vmfs_rescue::block::Source| read_vec(&**dev, vt, 512).unwrap();
    diff_bytes("LVM_VolDescriptor", &v(&rdev), &v(&fdev), vd_skip, &mut d);

    // FS descriptor.
    let fsd_skip: Skip = &[
        (0x09, 0x19, "FS UUID"),
        (0x1D, 0x9D, "label"),
        (0xA9, 0xAD, "creation time"),
        (0xB1, 0xC1, "LV UUID"),
        (0xED, 0xFD, "host UUID"),
    ];
    let fsd = |fs: &Arc<Vmfs>| read_vec(&*fs.vol, 0x20_0000, 0x200).unwrap();
    diff_bytes("FS3_Descriptor", &fsd(&rfs), &fsd(&ffs), fsd_skip, &mut d);

    // System FDs: lock type and self-offset, metadata, block pointers.
    let geo = &rfs.geo;
    let meta_skip: Skip = &[(0x2C, 0x38, "times")];
    let sys = [".fbb.sf", ".fdc.sf", ".pbc.sf", ".sbc.sf", ".vh.sf", ".pb2.sf", ".sdd.sf", ".jbc.sf", ".unmap.sf"];
    for name in sys.iter().filter(|n| version == 6 || !matches!(**n, ".jbc.sf" | ".unmap.sf")) {
        let path = format!("/{name}");
        let (Ok(a), Ok(b)) = (rfs.lookup(&path), ffs.lookup(&path)) else {
            d.push(format!(
                "{name}: present in ESXi {} forge {}",
                rfs.lookup(&path).is_ok(),
                ffs.lookup(&path).is_ok()
            ));
            continue;
        };
        if a.vol_offset() != b.vol_offset() {
            d.push(format!("{name}: FD at {:#x} in ESXi, {:#x} in forge", a.vol_offset(), b.vol_offset()));
        }
        let raw =
            |fs: &Arc<Vmfs>, fd: &vmfs_rescue::vmfs::Fd| read_vec(&*fs.vol, fd.vol_offset(), geo.fd_size).unwrap();
        let (ra, rb) = (raw(&rfs, &a), raw(&ffs, &b));
        diff_bytes(&format!("{name} lock"), &ra[..0x24], &rb[..0x24], &[(0x0C, 0x24, "lock holder state")], &mut d);
        let m = geo.meta_off;
        diff_bytes(&format!("{name} FS3_FileMetadata"), &ra[m..m + 0x170], &rb[m..m + 0x170], meta_skip, &mut d);
        if a.pointers(geo) != b.pointers(geo) {
            d.push(format!("{name}: block pointers differ: ESXi {:x?} forge {:x?}", a.pointers(geo), b.pointers(geo)));
        }
        // Resource-file header (and the VMFS6 SFB child header).
        if !matches!(*name, ".vh.sf" | ".sdd.sf") {
            let n = if version == 6 && *name == ".fbb.sf" { 0x1100 } else { 0x100 };
            let (ha, hb) = (read_file(&rfs, &path, 0, n), read_file(&ffs, &path, 0, n));
            diff_bytes(&format!("{name} FS3_ResFileMetadata"), &ha, &hb, &[], &mut d);
        }
    }

    // Cluster headers of the first cluster of every resource file: lock and metadata except the
    // allocation state, which depends on the files the real image holds.
    let hdr = geo.cluster_header_size;
    let md = geo.md as usize;
    let state: Skip = if version == 6 {
        &[
            (0x0C, 0x24, "lock holder state"),
            (0x22, 0x24, "free count"),
            (0x5C, 0x66, "MAC and time of the host that allocated"),
            (0x7C, 0x80, "next free"),
            (0x80, 0x800, "bitmap"),
        ]
    } else {
        &[(0x08, 0x10, "free count, next free"), (0x10, 0x200, "bitmap")]
    };
    for name in [".fdc.sf", ".sbc.sf", ".pbc.sf", ".pb2.sf", ".fbb.sf", ".jbc.sf"] {
        if version == 5 && name == ".jbc.sf" || version == 6 && name == ".pbc.sf" {
            continue;
        }
        let path = format!("/{name}");
        let (a, b) = (read_file(&rfs, &path, 0x10000, hdr), read_file(&ffs, &path, 0x10000, hdr));
        diff_bytes(
            &format!("{name} cluster 0 lock"),
            &a[..0x24],
            &b[..0x24],
            &[(0x04, 0x24, "self offset, holder")],
            &mut d,
        );
        diff_bytes(&format!("{name} cluster 0 meta"), &a[md..], &b[md..], state, &mut d);
    }

    // VMFS6: the first SFB cluster (all system files) with its 2-bit map and affinity table.
    if version == 6 {
        let (a, b) = (read_file(&rfs, "/.fbb.sf", 0x20000, hdr), read_file(&ffs, "/.fbb.sf", 0x20000, hdr));
        diff_bytes("SFB cluster 0 lock", &a[..0x24], &b[..0x24], &[(0x0C, 0x24, "lock holder state")], &mut d);
        diff_bytes("SFB cluster 0 meta", &a[md..], &b[md..], &[], &mut d);
    }

    // The root directory's bytes for ".", ".." and the system files (user entries differ).
    if version == 6 {
        let (a, b) = (read_file(&rfs, "/", 0, 0x5F8), read_file(&ffs, "/", 0, 0x5F8));
        diff_bytes("root FS6_DirHeader", &a, &b, &[(0x04, 0x0C, "entry counts")], &mut d);
        let slots = (0x5F8 + 15974 * 4) as u64;
        let (a, b) = (read_file(&rfs, "/", slots, 9 * 4), read_file(&ffs, "/", slots, 9 * 4));
        diff_bytes("root hash slots of the system files", &a, &b, &[], &mut d);
        let (a, b) = (read_file(&rfs, "/", 0x11040, 9 * 0x120), read_file(&ffs, "/", 0x11040, 9 * 0x120));
        diff_bytes("root dirents of the system files", &a, &b, &[], &mut d);
        // The map's header, and its own nibble (block 0); block 1 fills up with user files.
        let (mut a, mut b) = (read_file(&rfs, "/", 0x10000, 0x41), read_file(&ffs, "/", 0x10000, 0x41));
        a[0x40] &= 0xF0;
        b[0x40] &= 0xF0;
        diff_bytes("root allocation map", &a, &b, &[], &mut d);
    } else {
        let (a, b) = (read_file(&rfs, "/", 0, 9 * 140), read_file(&ffs, "/", 0, 9 * 140));
        diff_bytes("root FS3_DirEntry . .. and system files", &a, &b, &[], &mut d);
    }

    // The root directory lists the system files with the same FD addresses and types.
    let names = |fs: &Arc<Vmfs>| {
        let root = fs.root().unwrap();
        let mut v: Vec<(String, u32, u32)> = fs
            .read_dir(&root)
            .unwrap()
            .into_iter()
            .filter(|e| e.name.starts_with(b".") && e.name.ends_with(b".sf"))
            .map(|e| (e.name_lossy(), e.addr, e.kind.raw()))
            .collect();
        v.sort();
        v
    };
    if names(&rfs) != names(&ffs) {
        d.push(format!("root system entries: ESXi {:?} forge {:?}", names(&rfs), names(&ffs)));
    }
    assert!(d.is_empty(), "{} differences from {real_rel}:\n{}", d.len(), d.join("\n"));
}

#[test]
fn forged_vmfs5_matches_esxi_layout() {
    compare("vmfs/dissect.vmfs-3.13/vmfs/vmfs5.bin.gz", 5);
}

#[test]
fn forged_vmfs6_matches_esxi_layout() {
    compare("vmfs/dissect.vmfs-3.13/vmfs/vmfs6.bin.gz", 6);
}
