//! Images of other formats (VDI, Parallels, Bochs, cloop, DMG, raw): every corpus file with
//! a raw sha256 reads to that hash, VDI and Parallels images made by qemu read as qemu reads
//! them, a VDI snapshot chain is found by identity, and damaged files fail cleanly and fast.

use crate::util::{corpus, corpus_image, sha256_file};
use crate::vdisk::disk_sha;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::vdisk::{self, Format, Layer, LocalFiles, VdiskError, VirtualDisk, files::local_path, image};

fn open_path(p: &Path) -> VirtualDisk {
    vdisk::open(&LocalFiles, &local_path(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn open_err(p: &Path) -> VdiskError {
    match vdisk::open(&LocalFiles, &local_path(p)) {
        Ok(d) => panic!("{}: opened ({} bytes, problems {:?})", p.display(), d.len(), d.problems),
        Err(e) => e,
    }
}

/// The corpus file `rel` under vdisk/, decompressed when it is a .gz.
fn corpus_file(rel: &str) -> Option<PathBuf> {
    let root = corpus()?;
    let p = root.join("vdisk").join(rel);
    if !p.is_file() {
        eprintln!("SKIP: {} missing", p.display());
        return None;
    }
    if rel.ends_with(".gz") { corpus_image(&format!("vdisk/{rel}")) } else { Some(p) }
}

/// (file under vdisk/, format, virtual size, raw sha256 from the corpus README).
const CORPUS: [(&str, Format, u64, &str); 6] = [
    (
        "real/dissect-hypervisor/basic.vdi.gz",
        Format::Vdi,
        10485760,
        "92d551781f9b62f3c8601ffd375cc7547efb1127e3cd2acc652f50f2d31afb8c",
    ),
    (
        "real/qemu-iotests/parallels-v1",
        Format::Parallels,
        2097152,
        "15faf41ebc93b5f734341cb7a2d909001e3f7306960f9d8bc63894f2a8e5bc45",
    ),
    (
        "real/qemu-iotests/parallels-v2",
        Format::Parallels,
        2097152,
        "15faf41ebc93b5f734341cb7a2d909001e3f7306960f9d8bc63894f2a8e5bc45",
    ),
    (
        "real/qemu-iotests/empty.bochs",
        Format::Bochs,
        1032192,
        "85e614bc2ef17bec493b849dbeea34687ba52d7b1fedc4e5fc3729b0fb059aad",
    ),
    (
        "real/qemu-iotests/simple-pattern.cloop",
        Format::Cloop,
        1048576,
        "7c77af2771e0f86b7ec9707374c7416037fedae45cb0e6e27fbdf55688a5dd12",
    ),
    (
        "real/qemu-iotests/simple-dmg.dmg",
        Format::Dmg,
        1799168,
        "20647e0a98a830a6a250b91e0e6d7200a872caea07b87a3c19611f3dd031c9df",
    ),
];

fn check_corpus(rel: &str, format: Format, len: u64, sha: &str) {
    let Some(p) = corpus_file(rel) else { return };
    let src = vmfs_rescue::block::open_path(&p).unwrap();
    assert_eq!(image::detect(&src).unwrap(), Some(format), "{rel}: detected format");
    let d = open_path(&p);
    assert_eq!(d.layers[0].format, format, "{rel}");
    assert_eq!(d.len(), len, "{rel}");
    assert_eq!(disk_sha(&d), sha, "{rel}");
    assert!(d.unreadable(0..len).is_empty(), "{rel}: {:?}", d.unreadable(0..len));
    assert!(d.problems.is_empty(), "{rel}: {:?}", d.problems);
}

#[test]
fn corpus_formats_match_their_hashes() {
    for (rel, format, len, sha) in CORPUS {
        check_corpus(rel, format, len, sha);
    }
}

/// 64 GiB of virtual disk (a few MiB of data): hashing its zeros is the whole cost (about a
/// minute on one core), so it runs as its own test beside the others.
#[test]
fn parallels_with_bitmap_matches_its_hash() {
    check_corpus(
        "real/qemu-iotests/parallels-with-bitmap",
        Format::Parallels,
        68719476736,
        "57b295ba06757c81edca2d1e299133b2f059bea28e6cf9f438d7741611c36541",
    );
}

/// A plain image is never recognised; opened as raw on purpose it reads as itself.
#[test]
fn raw_is_opened_only_on_request() {
    let Some(p) = corpus_file("real/qemu-iotests/grub_mbr.raw") else { return };
    let e = open_err(&p);
    assert!(matches!(e, VdiskError::UnknownFormat { .. }), "{e}");
    assert!(e.to_string().contains("not a known virtual-disk format") && e.to_string().contains("raw"), "{e}");
    let path = local_path(&p);
    let leaf = Layer::open_as(&LocalFiles, &path, Some(Format::Raw)).unwrap();
    let d = vdisk::open_leaf(&LocalFiles, leaf).unwrap();
    assert_eq!(d.len(), 512);
    assert_eq!(disk_sha(&d), "3cc502da6ecbbb8ae090212ed77ee5aadf942d2c26897753f871cdfc23e359b6");
    assert_eq!(disk_sha(&d), sha256_file(&p));
}

/// The CLI's -f/--input-format: raw on request, an unknown name is a usage error.
#[test]
fn cli_input_format() {
    let Some(p) = corpus_file("real/qemu-iotests/grub_mbr.raw") else { return };
    let bin = env!("CARGO_BIN_EXE_vmfs-rescue");
    let o = Command::new(bin).args(["vdisk", "info"]).arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--input-format raw"));
    let o = Command::new(bin).args(["vdisk", "info", "--json", "-f", "raw"]).arg(&p).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["format"].as_str(), v["virtual_size"].as_u64()), (Some("raw"), Some(512)));
    let o = Command::new(bin).args(["vdisk", "info", "--input-format", "nosuch"]).arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

fn have_qemu() -> bool {
    let ok = Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success())
        && Command::new("qemu-io").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: qemu-img/qemu-io not installed");
    }
    ok
}

fn run(cmd: &mut Command) {
    let o = cmd.output().expect("run");
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn qemu_raw_sha(img: &Path, fmt: &str, dir: &Path) -> String {
    let raw = dir.join("qemu-out.raw");
    run(Command::new("qemu-img").args(["convert", "-f", fmt, "-O", "raw"]).arg(img).arg(&raw));
    let d = sha256_file(&raw);
    std::fs::remove_file(raw).unwrap();
    d
}

/// Writes at odd offsets, across block and cluster boundaries, on a 64 MiB disk; the last
/// writes zeros over data.
const WRITES: [&str; 7] = [
    "write -P 0x61 1234567 70000",
    "write -P 0x62 33553920 2048",
    "write -P 0x63 0 511",
    "write -P 0x64 5000000 3000000",
    "write -P 0x65 67108352 512",
    "write -P 0x66 20971520 1048576",
    "write -z 21000000 4096",
];

fn qemu_image(dir: &Path, name: &str, fmt: &str, opts: &str) -> PathBuf {
    let img = dir.join(name);
    let _ = std::fs::remove_file(&img);
    let mut c = Command::new("qemu-img");
    c.args(["create", "-q", "-f", fmt]);
    if !opts.is_empty() {
        c.args(["-o", opts]);
    }
    run(c.arg(&img).arg("64M"));
    let mut io = Command::new("qemu-io");
    io.args(["-f", fmt]);
    for w in WRITES {
        io.args(["-c", w]);
    }
    run(io.arg(&img));
    img
}

#[test]
fn vdi_and_parallels_differential_vs_qemu() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (fmt, opts, variant) in [
        ("vdi", "", "dynamic"),
        ("vdi", "static=on", "fixed"),
        ("parallels", "", "v2, 1 MiB clusters"),
        ("parallels", "cluster_size=64k", "v2, 64 KiB clusters"),
    ] {
        let img = qemu_image(tmp.path(), &format!("d.{fmt}"), fmt, opts);
        let d = open_path(&img);
        let what = format!("{fmt} {opts}");
        assert_eq!(d.layers[0].variant, variant, "{what}");
        assert_eq!(d.len(), 64 << 20, "{what}");
        assert_eq!(disk_sha(&d), qemu_raw_sha(&img, fmt, tmp.path()), "{what}");
        assert!(d.problems.is_empty(), "{what}: {:?}", d.problems);
        assert!(d.unreadable(0..d.len()).is_empty(), "{what}");
        // A dynamic image's holes are skipped.
        let data: u64 = d.data_ranges(0..d.len()).iter().map(|r| r.end - r.start).sum();
        assert!(opts.contains("static") || data < 32 << 20, "{what}: {data} bytes of data");
    }
}

// --- a VDI snapshot chain, the child built here (qemu cannot write VDI differencing images) ---

const MIB: usize = 1 << 20;

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// A differencing child of the VDI `base`: the same geometry, type 4, a new uuidCreate, the
/// base's uuidCreate as uuidLinkage and its uuidModify as uuidParentModification; block 0 holds
/// 0xc1, block 5 is a zero block (hides the base's data there), the rest is the base's.
fn vdi_child(base: &[u8]) -> Vec<u8> {
    let bmap = le32(base, 0x154) as usize;
    let data = le32(base, 0x158) as usize;
    let blocks = le32(base, 0x180) as usize;
    let mut c = base[..data].to_vec();
    c[0x4c..0x50].copy_from_slice(&4u32.to_le_bytes());
    c[0x184..0x188].copy_from_slice(&1u32.to_le_bytes());
    c.copy_within(0x188..0x198, 0x1a8);
    c.copy_within(0x198..0x1a8, 0x1b8);
    c[0x188..0x198].copy_from_slice(b"child-uuid-12345");
    for i in 0..blocks {
        let e: u32 = match i {
            0 => 0,
            5 => 0xffff_fffe,
            _ => 0xffff_ffff,
        };
        c[bmap + i * 4..bmap + i * 4 + 4].copy_from_slice(&e.to_le_bytes());
    }
    c.resize(data + MIB, 0xc1);
    c
}

#[test]
fn vdi_chain_found_by_identity() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vm");
    std::fs::create_dir(&dir).unwrap();
    let base = qemu_image(&dir, "base.vdi", "vdi", "");
    let full = open_path(&base);
    let base_bytes = std::fs::read(&base).unwrap();
    // A sibling of the same geometry but another identity must not be taken for the parent.
    let mut other = base_bytes.clone();
    other[0x188] ^= 0xff;
    std::fs::write(dir.join("a-other.vdi"), &other).unwrap();
    let child = dir.join("{1234-snapshot}.vdi");
    std::fs::write(&child, vdi_child(&base_bytes)).unwrap();

    let d = open_path(&child);
    assert_eq!(d.layers.len(), 2, "{:?}", d.problems);
    assert_eq!(d.layers[1].path, local_path(&base));
    assert_eq!(d.layers[0].parent.as_ref().unwrap().id, d.layers[1].id);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    let mut a = vec![0u8; 8 * MIB];
    let mut b = vec![0u8; 8 * MIB];
    d.read_at(0, &mut a).unwrap();
    full.read_at(0, &mut b).unwrap();
    assert!(a[..MIB].iter().all(|&v| v == 0xc1), "block 0 is the child's");
    assert!(a[MIB..5 * MIB] == b[MIB..5 * MIB], "blocks 1-4 fall through to the base");
    assert!(b[MIB..2 * MIB].contains(&0x61));
    assert!(a[5 * MIB..6 * MIB].iter().all(|&v| v == 0), "block 5 is a zero block");
    assert!(b[5 * MIB..6 * MIB].iter().any(|&v| v != 0), "... over base data");
    assert!(a[6 * MIB..] == b[6 * MIB..]);

    // Without the parent: reported, and the child's own blocks still read.
    std::fs::remove_file(&base).unwrap();
    let d = open_path(&child);
    assert_eq!(d.layers.len(), 1);
    assert!(d.problems.iter().any(|p| p.contains("no file in its folder has identity")), "{:?}", d.problems);
    let mut x = vec![0u8; MIB];
    d.read_at(0, &mut x).unwrap();
    assert!(x.iter().all(|&v| v == 0xc1));
}

// --- Bochs: qemu cannot write it, so an image is built here from the format description ---

/// A Bochs growing image: 512-byte header ("Bochs Virtual HD Image", "Redolog", "Growing",
/// version 2, catalog at 512), 8 catalog entries of 32 KiB extents (64 sectors, an 8-byte
/// bitmap padded to one sector); extent 5 is stored first with its sectors 0..=9 and 63
/// written, extent 1 second with sector 3 written.
fn bochs_image() -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..22].copy_from_slice(b"Bochs Virtual HD Image");
    b[0x20..0x27].copy_from_slice(b"Redolog");
    b[0x30..0x37].copy_from_slice(b"Growing");
    for (o, v) in [(0x40, 0x0002_0000u32), (0x44, 512), (0x48, 8), (0x4c, 8), (0x50, 32768)] {
        b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    b[0x58..0x60].copy_from_slice(&(8u64 * 32768).to_le_bytes());
    let catalog: [u32; 8] = [u32::MAX, 1, u32::MAX, u32::MAX, u32::MAX, 0, u32::MAX, u32::MAX];
    for e in catalog {
        b.extend_from_slice(&e.to_le_bytes());
    }
    for (bits, fill) in [([0xff, 0x03, 0, 0, 0, 0, 0, 0x80], 0x55u8), ([0x08, 0, 0, 0, 0, 0, 0, 0], 0x11)] {
        let mut bitmap = [0u8; 512];
        bitmap[..8].copy_from_slice(&bits);
        b.extend_from_slice(&bitmap);
        b.extend(std::iter::repeat_n(fill, 32768));
    }
    b
}

#[test]
fn bochs_built_from_the_format() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("hd.img");
    std::fs::write(&p, bochs_image()).unwrap();
    let d = open_path(&p);
    assert_eq!((d.layers[0].format, d.len()), (Format::Bochs, 8 * 32768));
    let mut want = vec![0u8; 8 * 32768];
    want[32768 + 3 * 512..32768 + 4 * 512].fill(0x11);
    want[5 * 32768..5 * 32768 + 10 * 512].fill(0x55);
    want[6 * 32768 - 512..6 * 32768].fill(0x55);
    let mut got = vec![0xeeu8; want.len()];
    d.read_at(0, &mut got).unwrap();
    assert!(got == want);
    let data: Vec<_> = d.data_ranges(0..d.len());
    assert_eq!(data, vec![34304..34816, 163840..168960, 196096..196608]);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
}

// --- damaged files ---

/// Edit `bytes` and open the result; it must fail fast, and the error must name the file.
fn refused(dir: &Path, name: &str, bytes: &[u8], what: &str) -> VdiskError {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let t = Instant::now();
    let e = open_err(&p);
    assert!(t.elapsed() < Duration::from_secs(2), "{what}: {:?}", t.elapsed());
    assert!(e.to_string().contains(name), "{what}: {e}");
    e
}

fn set(b: &[u8], at: usize, v: &[u8]) -> Vec<u8> {
    let mut b = b.to_vec();
    b[at..at + v.len()].copy_from_slice(v);
    b
}

/// The structure and offset a `Corrupt` error names.
type Where = Option<(&'static str, u64)>;

fn corrupt_at(e: &VdiskError) -> Where {
    match e {
        VdiskError::Corrupt { structure, offset, .. } => Some((structure, *offset)),
        _ => None,
    }
}

#[test]
fn damaged_headers_fail_cleanly_and_fast() {
    let (Some(vdi), Some(par), Some(bochs), Some(cloop), Some(dmg)) = (
        corpus_file("real/dissect-hypervisor/basic.vdi.gz"),
        corpus_file("real/qemu-iotests/parallels-v2"),
        corpus_file("real/qemu-iotests/empty.bochs"),
        corpus_file("real/qemu-iotests/simple-pattern.cloop"),
        corpus_file("real/qemu-iotests/simple-dmg.dmg"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (vdi, par, bochs, cloop, dmg) = (
        std::fs::read(vdi).unwrap(),
        std::fs::read(par).unwrap(),
        std::fs::read(bochs).unwrap(),
        std::fs::read(cloop).unwrap(),
        std::fs::read(dmg).unwrap(),
    );
    let max = u32::MAX.to_le_bytes();
    let cases: Vec<(&str, Vec<u8>, Where)> = vec![
        ("vdi-truncated.vdi", vdi[..0x100].to_vec(), Some(("VDI header", 0))),
        ("vdi-blocks.vdi", set(&set(&vdi, 0x180, &0x3fff_ffffu32.to_le_bytes()), 0x170, &[0xff; 8]), None),
        (
            "vdi-map-past-eof.vdi",
            set(&set(&vdi, 0x154, &0x7fff_fe00u32.to_le_bytes()), 0x158, &0x8000_0000u32.to_le_bytes()),
            Some(("VDI block map", 0x7fff_fe00)),
        ),
        ("vdi-block-size.vdi", set(&vdi, 0x178, &3u32.to_le_bytes()), Some(("VDI header", 0x178))),
        ("par-truncated", par[..40].to_vec(), Some(("Parallels header", 0))),
        ("par-bat", set(&par, 0x20, &max), Some(("Parallels BAT", 0x40))),
        ("par-tracks", set(&par, 0x1c, &0u32.to_le_bytes()), Some(("Parallels header", 0x1c))),
        ("par-size", set(&par, 0x24, &u64::MAX.to_le_bytes()), Some(("Parallels header", 0x24))),
        ("bochs-catalog", set(&bochs, 0x48, &max), Some(("Bochs catalog", 0x200))),
        ("bochs-extent", set(&bochs, 0x50, &0u32.to_le_bytes()), Some(("Bochs header", 0x50))),
        ("bochs-truncated", bochs[..300].to_vec(), Some(("Bochs header", 0))),
        ("cloop-blocks", set(&cloop, 132, &max), Some(("cloop offsets", 136))),
        ("cloop-block-size", set(&cloop, 128, &0x7fff_fe00u32.to_be_bytes()), Some(("cloop header", 128))),
        ("d-sectors.dmg", set(&dmg, dmg.len() - 512 + 0x1ec, &[0x7f; 8]), None),
        ("d-xml.dmg", set(&dmg, dmg.len() - 512 + 0xd8, &u64::MAX.to_be_bytes()), None),
        ("d-truncated.dmg", dmg[..dmg.len() - 100].to_vec(), None),
    ];
    for (name, bytes, want) in cases {
        let e = refused(t, name, &bytes, name);
        if let Some(w) = want {
            assert_eq!(corrupt_at(&e), Some(w), "{name}: {e}");
        }
    }
}

/// Data cut off or pointed past the end: the image opens, what is missing reads as zeros
/// and is reported, the rest reads right.
#[test]
fn damaged_data_reads_what_is_there() {
    let (Some(vdi_p), Some(par_p), Some(cloop_p)) = (
        corpus_file("real/dissect-hypervisor/basic.vdi.gz"),
        corpus_file("real/qemu-iotests/parallels-v1"),
        corpus_file("real/qemu-iotests/simple-pattern.cloop"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for (src, cut, name) in
        [(vdi_p, 5 * MIB + 300, "cut.vdi"), (par_p, 200_000, "cut.par"), (cloop_p, 1200, "cut.cloop")]
    {
        let full = open_path(&src);
        let b = std::fs::read(&src).unwrap();
        let p = tmp.path().join(name);
        std::fs::write(&p, &b[..cut]).unwrap();
        let d = open_path(&p);
        let len = d.len();
        assert_eq!(len, full.len());
        let bad = d.unreadable(0..len);
        assert!(!bad.is_empty(), "{name}: the cut must be reported");
        let mut x = vec![0u8; len as usize];
        let mut y = vec![0u8; len as usize];
        d.read_at(0, &mut x).unwrap();
        full.read_at(0, &mut y).unwrap();
        let mut lost = 0;
        for (i, (a, b)) in x.iter().zip(&y).enumerate() {
            if a != b {
                assert_eq!(*a, 0, "{name}: byte {i}");
                assert!(bad.iter().any(|r| r.contains(&(i as u64))), "{name}: byte {i} lost but not reported");
                lost += 1;
            }
        }
        assert!(lost > 0, "{name}");
    }
}
