//! qcow2 images: every corpus qcow2 with a known raw sha256, differential checks against
//! qemu-img on images made here (versions, cluster sizes, compression, zero clusters, extended
//! L2, internal snapshots, backing chains over raw, vmdk and qcow2 bases), and damaged images.

use crate::util::{SourceGuard, corpus, corpus_image, sha256_file};
use crate::vdisk::{disk_sha, have_qemu, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::vdisk::{Alloc, Format, LocalFiles, VdiskError, VirtualDisk, files::local_path, open};

const BASIC: &str = "3c86a52ad19ebbe34acffb812d276817ddca56522eb72de2b984d70ffb20582f";

fn try_open(p: &Path) -> Result<VirtualDisk, VdiskError> {
    open(&LocalFiles, &local_path(p))
}

fn open_path(p: &Path) -> VirtualDisk {
    try_open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn corpus_qcow2_match_readme() {
    let Some(root) = corpus() else { return };
    let dir = root.join("vdisk/real/dissect-hypervisor");
    if !dir.is_dir() {
        eprintln!("SKIP: no dissect-hypervisor corpus");
        return;
    }
    let want = [
        ("basic.qcow2", BASIC, 1),
        ("basic-zstd.qcow2", BASIC, 1),
        ("backing-chain-1.qcow2", "186334af67c1acb54b08ded0b6a419571000755d4c810c8b768a30281e2ab074", 3),
        ("backing-chain-2.qcow2", "8e2e850f2a31828f6f053f70f1fbfa71a42ce0571c6d8cd2a7ca0e21e1db8341", 2),
        ("backing-chain-3.qcow2", "4a57a3a5c273c7c1144743ecafc7b23181f6e23c8abad104493a63a3599bd276", 1),
    ];
    let paths: Vec<PathBuf> = want.iter().map(|(n, _, _)| dir.join(n)).collect();
    let _guard = SourceGuard::new(&paths);
    for (name, sha, links) in want {
        let d = open_path(&dir.join(name));
        assert_eq!(d.len(), 536870912, "{name}");
        assert_eq!(d.layers.len(), links, "{name}");
        assert!(d.layers.iter().all(|l| l.format == Format::Qcow2), "{name}");
        assert_eq!(disk_sha(&d), sha, "{name}");
        assert!(d.problems.is_empty(), "{name}: {:?}", d.problems);
        assert!(d.unreadable(0..d.len()).is_empty(), "{name}");
    }
    let d = open_path(&dir.join("basic-zstd.qcow2"));
    assert!(d.layers[0].variant.starts_with("v3, zstd, 64 KiB clusters"), "{}", d.layers[0].variant);
    let p = d.layers[0].parent.as_ref();
    assert!(p.is_none());
    let d = open_path(&dir.join("backing-chain-1.qcow2"));
    let p = d.layers[0].parent.as_ref().unwrap();
    assert_eq!((p.hints.as_slice(), p.format), (&["backing-chain-2.qcow2".to_string()][..], Some(Format::Qcow2)));

    // Internal snapshots: the active layer is read, the snapshots are named.
    let snap = corpus_image("vdisk/real/dissect-hypervisor/snapshot.qcow2.gz").unwrap();
    let d = open_path(&snap);
    assert_eq!(disk_sha(&d), "9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767");
    let v = &d.layers[0].variant;
    assert!(
        v.contains("2 internal snapshots") && v.contains("\"you can't see me\"") && v.contains("\"confused\""),
        "{v}"
    );
    assert!(d.problems.is_empty(), "{:?}", d.problems);

    // The flattened VMDK chain of the generated set.
    let flat = root.join("vdisk/generated/chain-snap2-flattened.qcow2");
    if flat.is_file() {
        let d = open_path(&flat);
        assert_eq!(disk_sha(&d), "c4d7331068144b026ed38fde4b490b1032e2a118a77f6eb4043a486919f1c56d");
    }
}

/// The external data file is opened next to the image (a copy, beside the decompressed data),
/// and its absence is an error that names it.
#[test]
fn corpus_external_data_file() {
    let Some(root) = corpus() else { return };
    let src = root.join("vdisk/real/dissect-hypervisor/data-file.qcow2");
    if !src.is_file() {
        eprintln!("SKIP: no data-file.qcow2");
        return;
    }
    let _guard = SourceGuard::new(std::slice::from_ref(&src));
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("data-file.qcow2");
    std::fs::copy(&src, &img).unwrap();
    match try_open(&img) {
        Err(VdiskError::Missing { file, why }) => {
            assert!(file.ends_with("/data-file.bin"), "{file}");
            assert!(why.contains("external data file"), "{why}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened without its data file"),
    }
    let bin = corpus_image("vdisk/real/dissect-hypervisor/data-file.bin.gz").unwrap();
    std::os::unix::fs::symlink(&bin, tmp.path().join("data-file.bin")).unwrap();
    let d = open_path(&img);
    assert!(d.layers[0].variant.contains("external data file data-file.bin"), "{}", d.layers[0].variant);
    assert_eq!(disk_sha(&d), BASIC);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
}

fn qemu_img(args: &[&str]) {
    run(Command::new("qemu-img").args(args));
}

fn qemu_io(fmt: &str, img: &Path, cmds: &[&str]) {
    let mut c = Command::new("qemu-io");
    c.args(["-f", fmt]);
    for w in cmds {
        c.args(["-c", w]);
    }
    run(c.arg(img));
}

fn p(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// qemu's raw view of `img` (following its backing chain), hashed.
fn qemu_sha(img: &Path) -> String {
    let raw = img.with_extension("qemu.raw");
    qemu_img(&["convert", "-O", "raw", p(img), p(&raw)]);
    let d = sha256_file(&raw);
    std::fs::remove_file(raw).unwrap();
    d
}

/// Our read of `img` equals qemu's; problems only as `expect` says.
fn check(case: &str, img: &Path, expect: Option<&str>) -> VirtualDisk {
    let d = open_path(img);
    assert_eq!(disk_sha(&d), qemu_sha(img), "{case}");
    match expect {
        None => assert!(d.problems.is_empty(), "{case}: {:?}", d.problems),
        Some(w) => assert!(d.problems.iter().any(|p| p.contains(w)), "{case}: {w:?} not in {:?}", d.problems),
    }
    assert!(d.unreadable(0..d.len()).is_empty(), "{case}");
    d
}

/// Writes at odd offsets, across cluster and L2-table boundaries, and at the end of 64 MiB.
const WRITES: [&str; 6] = [
    "write -P 0x61 1234567 70000",
    "write -P 0x62 33553920 2048",
    "write -P 0x63 0 511",
    "write -P 0x64 5000000 3000000",
    "write -P 0x65 67108352 512",
    "write -P 0x66 16777216 4194304",
];

/// Zero writes: over data (the cluster keeps its allocation or is unmapped) and over holes.
const ZERO_WRITES: [&str; 3] = ["write -z 5242880 1048576", "write -z 16777216 65536", "write -z 40000000 131072"];

/// Standalone images of each version and cluster size, with zero clusters.
#[test]
fn differential_layouts() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (case, opts) in [
        ("v2", "compat=0.10"),
        ("v3-512", "cluster_size=512"),
        ("v3-64k", "cluster_size=65536"),
        ("v3-2M", "cluster_size=2097152"),
        ("v3-extended-l2", "extended_l2=on,cluster_size=65536"),
        ("v3-extended-l2-16k", "extended_l2=on,cluster_size=16384"),
    ] {
        let img = tmp.path().join(format!("{case}.qcow2"));
        qemu_img(&["create", "-q", "-f", "qcow2", "-o", opts, p(&img), "64M"]);
        qemu_io("qcow2", &img, &WRITES);
        qemu_io("qcow2", &img, &ZERO_WRITES);
        let d = check(case, &img, None);
        let v = &d.layers[0].variant;
        assert!(v.starts_with(if case == "v2" { "v2, " } else { "v3, " }), "{case}: {v}");
        if case.starts_with("v3") && case != "v3-2M" {
            // Zeros written over data are this image's zeros, not holes.
            let m = d.map(5242880..6291456).unwrap();
            assert!(m.iter().all(|(_, a, _)| *a == Alloc::Zero), "{case}: {m:?}");
        }
    }
}

/// A raw file with incompressible, compressible and empty stretches.
fn mixed_raw(path: &Path, len: usize) {
    let mut b = vec![0u8; len];
    let mut x = 0x1234_5678_9abc_def0u64;
    for (i, chunk) in b.chunks_mut(1 << 20).enumerate() {
        match i % 4 {
            0 => chunk.iter_mut().for_each(|v| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }),
            1 => chunk.iter_mut().enumerate().for_each(|(j, v)| *v = b"qcow2 compressed cluster "[j % 25]),
            2 => {}
            _ => chunk[..1000].fill(0x77),
        }
    }
    std::fs::write(path, b).unwrap();
}

/// Compressed clusters (`qemu-img convert -c`) with zlib and zstd, small and large clusters.
#[test]
fn differential_compressed() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("src.raw");
    mixed_raw(&raw, 24 << 20);
    let probe = tmp.path().join("probe.qcow2");
    let zstd = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", p(&probe), "1M"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !zstd {
        eprintln!("SKIP: this qemu-img has no zstd compression; zstd cases not run");
    }
    for (ty, cluster) in [("zlib", "65536"), ("zlib", "2097152"), ("zlib", "4096"), ("zstd", "65536"), ("zstd", "4096")]
    {
        if ty == "zstd" && !zstd {
            continue;
        }
        let case = format!("{ty}-{cluster}");
        let img = tmp.path().join(format!("{case}.qcow2"));
        let o = format!("compression_type={ty},cluster_size={cluster}");
        qemu_img(&["convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", &o, p(&raw), p(&img)]);
        let d = check(&case, &img, None);
        assert!(d.layers[0].variant.contains(ty), "{case}: {}", d.layers[0].variant);
        // Over the disk, what is read equals the source raw file.
        let want = std::fs::read(&raw).unwrap();
        let mut got = vec![0u8; want.len()];
        d.read_at(0, &mut got).unwrap();
        assert!(got == want, "{case}: content differs from the source");
    }
}

/// Find header extension `kind` of a qcow2 file and change its type, so it is ignored.
fn drop_extension(img: &Path, kind: u32) {
    let mut b = std::fs::read(img).unwrap();
    let be32 = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
    let mut at = be32(&b, 100) as usize;
    loop {
        let (k, len) = (be32(&b, at), be32(&b, at + 4) as usize);
        assert_ne!(k, 0, "extension {kind:#x} not found");
        if k == kind {
            b[at..at + 4].copy_from_slice(&0x7e57_0000u32.to_be_bytes());
            break;
        }
        at += 8 + len.div_ceil(8) * 8;
    }
    std::fs::write(img, b).unwrap();
}

/// Backing chains: raw, vmdk and qcow2 bases, bases shorter than their children, zero clusters
/// over the base's data, extended L2 subclusters falling through, `backing_fmt` absent.
#[test]
fn differential_chains() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = |n: &str| tmp.path().join(n);
    // raw base (48 MiB) <- mid qcow2 (56 MiB, backing_fmt raw) <- leaf qcow2 (64 MiB).
    std::fs::write(t("base.raw"), vec![0x11u8; 48 << 20]).unwrap();
    qemu_img(&["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p(&t("mid.qcow2")), "56M"]);
    qemu_io("qcow2", &t("mid.qcow2"), &["write -P 0x22 0 1M", "write -P 0x23 50M 3M", "write -z 8M 1M"]);
    qemu_img(&["create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", p(&t("leaf.qcow2")), "64M"]);
    qemu_io("qcow2", &t("leaf.qcow2"), &WRITES);
    qemu_io("qcow2", &t("leaf.qcow2"), &["write -z 12M 2M", "write -z 512k 64k"]);
    let d = check("raw<-qcow2<-qcow2", &t("leaf.qcow2"), None);
    assert_eq!(d.layers.len(), 3);
    assert_eq!((d.layers[1].capacity, d.layers[2].capacity), (56 << 20, 48 << 20));
    assert_eq!(d.layers[2].format, Format::Raw);
    // Zero clusters of the leaf hide the base's 0x11; past the base's end, zeros.
    let mut b = vec![0xffu8; 2 << 20];
    d.read_at(12 << 20, &mut b).unwrap();
    assert!(b.iter().all(|&v| v == 0));
    d.read_at(54 << 20, &mut b).unwrap();
    assert!(b.iter().all(|&v| v == 0));
    d.read_at(46 << 20, &mut b).unwrap();
    assert!(b.iter().all(|&v| v == 0x11));
    let m = d.map(12 << 20..14 << 20).unwrap();
    assert!(m.iter().all(|(_, a, l)| *a == Alloc::Zero && *l == 0), "{m:?}");

    // An extended-L2 leaf over the raw base: unallocated subclusters fall through.
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "extended_l2=on",
        "-b",
        "base.raw",
        "-F",
        "raw",
        p(&t("ext.qcow2")),
        "64M",
    ]);
    qemu_io(
        "qcow2",
        &t("ext.qcow2"),
        &["write -P 0x33 4096 2048", "write -z 10240 4096", "write -P 0x34 1000000 5000"],
    );
    check("raw<-extended-l2", &t("ext.qcow2"), None);

    // A vmdk base.
    qemu_img(&["create", "-q", "-f", "vmdk", p(&t("base.vmdk")), "64M"]);
    qemu_io("vmdk", &t("base.vmdk"), &["write -P 0x44 0 10M", "write -P 0x45 60M 4M"]);
    qemu_img(&["create", "-q", "-f", "qcow2", "-b", "base.vmdk", "-F", "vmdk", p(&t("onvmdk.qcow2")), "64M"]);
    qemu_io("qcow2", &t("onvmdk.qcow2"), &["write -P 0x46 1M 100k", "write -z 2M 1M"]);
    let d = check("vmdk<-qcow2", &t("onvmdk.qcow2"), None);
    assert_eq!(d.layers[1].format, Format::Vmdk);

    // backing_fmt absent: a qcow2 base is recognised, a raw one read as raw (and said so).
    qemu_img(&["create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", p(&t("nofmt.qcow2")), "64M"]);
    qemu_io("qcow2", &t("nofmt.qcow2"), &["write -P 0x55 3M 1M"]);
    drop_extension(&t("nofmt.qcow2"), 0xe279_2aca);
    let d = check("qcow2<-qcow2 without backing_fmt", &t("nofmt.qcow2"), None);
    assert_eq!(d.layers[0].parent.as_ref().unwrap().format, None);
    drop_extension(&t("mid.qcow2"), 0xe279_2aca);
    check("raw<-qcow2 without backing_fmt", &t("mid.qcow2"), Some("read as raw"));

    // Old-style v2 chain.
    qemu_img(&["create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", "base.raw", "-F", "raw", p(&t("v2.qcow2"))]);
    qemu_io("qcow2", &t("v2.qcow2"), &["write -P 0x66 7M 300k"]);
    check("raw<-v2", &t("v2.qcow2"), None);
}

/// Internal snapshots are listed; a dirty image (lazy refcounts, qemu killed) is read and noted.
#[test]
fn differential_snapshots_and_dirty() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("s.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", p(&img), "64M"]);
    qemu_io("qcow2", &img, &["write -P 0x11 0 4M"]);
    qemu_img(&["snapshot", "-c", "before upgrade", p(&img)]);
    qemu_io("qcow2", &img, &["write -P 0x12 1M 1M", "write -z 3M 64k"]);
    qemu_img(&["snapshot", "-c", "after", p(&img)]);
    qemu_io("qcow2", &img, &["write -P 0x13 2M 64k"]);
    let d = check("snapshots", &img, None);
    let v = &d.layers[0].variant;
    assert!(v.ends_with("2 internal snapshots: \"before upgrade\", \"after\""), "{v}");

    let dirty = tmp.path().join("dirty.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", p(&dirty), "64M"]);
    // qemu-io's abort leaves the image open: the dirty bit stays set.
    let o = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", "write -P 0x21 1M 3M", "-c", "flush", "-c", "abort", p(&dirty)])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let b = std::fs::read(&dirty).unwrap();
    assert_eq!(b[79] & 1, 1, "qemu-io abort did not leave the dirty bit");
    let d = check("dirty", &dirty, Some("dirty bit set (lazy refcounts)"));
    assert!(d.layers[0].variant.contains("lazy refcounts"));
}

fn be_put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

fn be64(b: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(b[off..off + 8].try_into().unwrap())
}

/// Open `bytes` written as a file; whatever happens, reading the whole disk must not panic,
/// must be fast, and reads only what the file holds.
fn damaged(dir: &Path, name: &str, bytes: &[u8]) -> Result<VirtualDisk, VdiskError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let t = Instant::now();
    let r = try_open(&path);
    if let Ok(d) = &r {
        let len = d.len();
        let _ = d.data_ranges(0..len);
        let _ = d.unreadable(0..len.min(1 << 30));
        let mut buf = vec![0u8; 1 << 20];
        for off in [0, len / 2, len.saturating_sub(1 << 20)] {
            let n = (len - off.min(len)).min(1 << 20) as usize;
            d.read_at(off.min(len), &mut buf[..n]).unwrap();
        }
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{name}: {:?}", t.elapsed());
    r
}

fn corrupt_at(r: Result<VirtualDisk, VdiskError>) -> (&'static str, u64) {
    match r {
        Err(VdiskError::Corrupt { structure, offset, .. }) => (structure, offset),
        Err(e) => panic!("expected a corrupt structure, got {e}"),
        Ok(_) => panic!("expected a corrupt structure, it opened"),
    }
}

/// Hostile headers fail with the structure and offset named; damaged tables and clusters map
/// as unreadable; truncations never panic.
#[test]
fn damaged_qcow2() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let img = dir.join("good.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", p(&img), "8M"]);
    qemu_io("qcow2", &img, &["write -P 0x61 0 1M", "write -P 0x62 6M 64k"]);
    let good = std::fs::read(&img).unwrap();
    let l1 = be64(&good, 0x28) as usize;
    let l2 = (be64(&good, l1) & 0x00ff_ffff_ffff_fe00) as usize;

    let set = |off: usize, v: &[u8]| {
        let mut b = good.clone();
        be_put(&mut b, off, v);
        b
    };
    assert_eq!(corrupt_at(damaged(dir, "bits", &set(0x14, &40u32.to_be_bytes()))), ("QCowHeader", 0x14));
    assert_eq!(corrupt_at(damaged(dir, "l1size", &set(0x24, &u32::MAX.to_be_bytes()))), ("QCowHeader", 0x24));
    assert_eq!(corrupt_at(damaged(dir, "hlen", &set(0x64, &0xffff_fff8u32.to_be_bytes()))), ("QCowHeader", 0x64));
    assert_eq!(corrupt_at(damaged(dir, "snaps", &set(0x3c, &u32::MAX.to_be_bytes()))), ("QCowHeader", 0x3c));
    let mut b = set(0x08, &0x200u64.to_be_bytes());
    be_put(&mut b, 0x10, &5000u32.to_be_bytes());
    assert_eq!(corrupt_at(damaged(dir, "backing", &b)), ("QCowHeader", 0x10));
    let ext = u32::from_be_bytes(good[100..104].try_into().unwrap()) as usize;
    assert_eq!(
        corrupt_at(damaged(dir, "ext", &set(ext + 4, &u32::MAX.to_be_bytes()))),
        ("QCowHeaderExtension", ext as u64)
    );
    assert_eq!(corrupt_at(damaged(dir, "l1-past-eof", &set(0x28, &(1u64 << 40).to_be_bytes()))), ("QCowHeader", 0x28));
    assert_eq!(corrupt_at(damaged(dir, "short", &good[..100])), ("QCowHeader", 0));
    assert_eq!(corrupt_at(damaged(dir, "no-l1", &good[..l1])), ("QCowHeader", 0x28));
    match damaged(dir, "crypt", &set(0x20, &2u32.to_be_bytes())) {
        Err(VdiskError::Unsupported { what, .. }) => assert!(what.contains("LUKS"), "{what}"),
        r => panic!("{:?}", r.err()),
    }
    match damaged(dir, "incompat", &set(0x48, &(1u64 << 9).to_be_bytes())) {
        Err(VdiskError::Unsupported { what, .. }) => assert!(what.contains("bit 9"), "{what}"),
        r => panic!("{:?}", r.err()),
    }

    // Read anyway, with a note.
    let d = damaged(dir, "dirty", &set(0x48, &1u64.to_be_bytes())).unwrap();
    assert!(d.problems.iter().any(|p| p.contains("dirty bit")), "{:?}", d.problems);
    let d = damaged(dir, "corrupt-bit", &set(0x48, &2u64.to_be_bytes())).unwrap();
    assert!(d.problems.iter().any(|p| p.contains("marked corrupt")), "{:?}", d.problems);
    let d = damaged(dir, "snap-table", &set(0x3c, &3u32.to_be_bytes())).unwrap();
    assert!(d.problems.iter().any(|p| p.contains("snapshot table")), "{:?}", d.problems);
    assert_eq!(disk_sha(&d), disk_sha(&open_path(&img)));

    // A virtual size far beyond the L1 table: the rest is unreadable, nothing is allocated for it.
    let d = damaged(dir, "size", &set(0x18, &(1u64 << 60).to_be_bytes())).unwrap();
    assert!(d.problems.iter().any(|p| p.contains("L1 table has 1 entries")), "{:?}", d.problems);
    assert_eq!(d.unreadable(0..d.len()), vec![512 << 20..1 << 60]);

    // L1 entry past the end of the file: its whole range is unreadable.
    let d = damaged(dir, "l1-entry", &set(l1, &(0x8000_0000_0000_0000u64 | 1 << 40).to_be_bytes())).unwrap();
    assert_eq!(d.unreadable(0..d.len()), vec![0..8 << 20]);
    // An unaligned L2 entry: that cluster only.
    let d = damaged(dir, "l2-entry", &set(l2, &(0x8000_0000_0000_0000u64 | 0x50200).to_be_bytes())).unwrap();
    assert_eq!(d.unreadable(0..d.len()), vec![0..65536]);
    let mut x = vec![0xffu8; 65536 * 2];
    d.read_at(0, &mut x).unwrap();
    assert!(x[..65536].iter().all(|&v| v == 0) && x[65536..].iter().all(|&v| v == 0x61));

    // Two L1 entries sharing one L2 table: both ranges are unreadable.
    let two = dir.join("two.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", p(&two), "1G"]);
    qemu_io("qcow2", &two, &["write -P 0x71 0 64k", "write -P 0x72 600M 64k"]);
    let mut b = std::fs::read(&two).unwrap();
    let t1 = be64(&b, 0x28) as usize;
    let first = b[t1..t1 + 8].to_vec();
    be_put(&mut b, t1 + 8, &first);
    let d = damaged(dir, "shared-l2", &b).unwrap();
    assert!(d.problems.iter().any(|p| p.contains("2 L1 entries share 1 L2 tables")), "{:?}", d.problems);
    assert_eq!(d.unreadable(0..d.len()), vec![0..1 << 30]);

    // Truncated anywhere: open fails cleanly or maps what is missing as unreadable.
    for cut in [104, 112, 4096, l1 + 4, l1 + 8, l2, l2 + 4096, good.len() / 2, good.len() - 1] {
        if let Ok(d) = damaged(dir, "cut", &good[..cut]) {
            let bad: u64 = d.unreadable(0..d.len()).iter().map(|r| r.end - r.start).sum();
            assert!(bad > 0 || cut >= good.len() - 65536, "cut at {cut}: nothing reported");
        }
    }
}

/// A compressed cluster damaged in place reads as zeros and is reported; its neighbours read.
#[test]
fn damaged_compressed_cluster() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("src.raw");
    mixed_raw(&raw, 4 << 20);
    for ty in ["zlib", "zstd"] {
        let img = tmp.path().join(format!("{ty}.qcow2"));
        let o = format!("compression_type={ty}");
        let ok = Command::new("qemu-img")
            .args(["convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", &o, p(&raw), p(&img)])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP: qemu-img cannot write {ty} clusters");
            continue;
        }
        let mut b = std::fs::read(&img).unwrap();
        // The L2 entry of guest cluster 16 (MiB 1: compressible text), 64 KiB clusters: x = 54.
        let l1 = be64(&b, 0x28) as usize;
        let l2 = (be64(&b, l1) & 0x00ff_ffff_ffff_fe00) as usize;
        let e = be64(&b, l2 + 16 * 8);
        assert_eq!(e >> 62, 1, "{ty}: cluster 16 is not compressed");
        let off = (e & ((1 << 54) - 1)) as usize;
        // A reserved deflate block type, a broken zstd magic: neither can decode.
        if ty == "zlib" {
            b[off] |= 0x06;
        } else {
            b[off] ^= 0xff;
        }
        let bad = tmp.path().join(format!("{ty}-bad.qcow2"));
        std::fs::write(&bad, &b).unwrap();
        let d = open_path(&bad);
        let mut x = vec![0xffu8; 3 << 16];
        d.read_at(15 << 16, &mut x).unwrap();
        let want = std::fs::read(&raw).unwrap();
        assert_eq!(&x[..65536], &want[15 << 16..16 << 16], "{ty}");
        assert!(x[65536..131072].iter().all(|&v| v == 0), "{ty}: damaged cluster reads as zeros");
        assert_eq!(&x[131072..], &want[17 << 16..18 << 16], "{ty}");
        assert_eq!(d.unreadable(0..d.len()), vec![16 << 16..17 << 16], "{ty}");
        let m = d.map(16 << 16..17 << 16).unwrap();
        assert_eq!(m, vec![(16 << 16..17 << 16, Alloc::Unreadable, 0)], "{ty}");
    }
}
