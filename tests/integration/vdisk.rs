//! Virtual disks: every corpus VMDK with a known raw sha256, hostile input, and differential
//! checks against qemu-img on images made here.

use crate::util::corpus;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::vdisk::{LocalFiles, VirtualDisk, files::local_path, open};

static ZEROS: [u8; 1 << 20] = [0u8; 1 << 20];

/// SHA-256 of the whole virtual content: data ranges read in 1 MiB pieces, holes hashed as zeros.
pub(crate) fn disk_sha(d: &VirtualDisk) -> String {
    let len = d.len();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    for r in d.data_ranges(0..len) {
        let mut p = r.start;
        while pos < p {
            let n = (p - pos).min(ZEROS.len() as u64) as usize;
            h.update(&ZEROS[..n]);
            pos += n as u64;
        }
        while p < r.end {
            let n = (r.end - p).min(buf.len() as u64) as usize;
            d.read_at(p, &mut buf[..n]).expect("read");
            h.update(&buf[..n]);
            p += n as u64;
        }
        pos = r.end;
    }
    while pos < len {
        let n = (len - pos).min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..n]);
        pos += n as u64;
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn open_path(p: &Path) -> VirtualDisk {
    open(&LocalFiles, &local_path(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn corpus_vmdks_match_qemu() {
    let Some(root) = corpus() else { return };
    let dir = root.join("vdisk/generated");
    if !dir.is_dir() {
        eprintln!("SKIP: no vdisk corpus");
        return;
    }
    let want = [
        ("ref-monolithicSparse.vmdk", 67108864, "8ee5056a39bfbb292c5e449772c421a5c3afaa06a37033b0194293f669fed07d"),
        ("ref-zeroedGrain.vmdk", 8388608, "068c5bb41a6c7e6942d9d6393c0c02b2d02a75792f739801e94fcfee6e6e6e46"),
        ("ref-monolithicFlat.vmdk", 4194304, "3d2111a58778040c2bd6886e81f2127c5ec14033751302158ebc4e84c8112534"),
        ("ref-twoGbMaxExtentFlat.vmdk", 4194304, "4ce652a306d86d954e5ab30ad9a663c236c07a7e44201ca018528d5987922ee9"),
        (
            "ref-twoGbMaxExtentSparse.vmdk",
            2684354560,
            "9782f25aca5294ee9d43bc579c02081f8af11e60d86890b585b4e5e4fb333e63",
        ),
        ("ref-streamOptimized.vmdk", 67108864, "4e23753f3a10878dd27c83233e6d90263234f420d949b7c7a7c7b653bc6ed9d0"),
        (
            "ref-streamOptimized-vmdkstream.vmdk",
            67108864,
            "4e23753f3a10878dd27c83233e6d90263234f420d949b7c7a7c7b653bc6ed9d0",
        ),
        ("chain-base.vmdk", 67108864, "527e1a8c960fed874b59cf619c46bf0febdb8277ae94b71c9e07e002f32caba7"),
        ("chain-snap1.vmdk", 67108864, "ad4f6b110319d5c6ca5693e3dfcc931e8a2925dc1257aed863bb820b540004e2"),
        ("chain-snap2.vmdk", 67108864, "c4d7331068144b026ed38fde4b490b1032e2a118a77f6eb4043a486919f1c56d"),
    ];
    for (name, len, sha) in want {
        let d = open_path(&dir.join(name));
        assert_eq!(d.len(), len, "{name}");
        assert_eq!(disk_sha(&d), sha, "{name}");
        assert!(d.unreadable(0..len).is_empty(), "{name}: {:?}", d.unreadable(0..len));
        // Holes are skipped: the whole-disk data ranges cover a small part of these disks.
        let data: u64 = d.data_ranges(0..len).iter().map(|r| r.end - r.start).sum();
        assert!(name.contains("Flat") || data < len / 4, "{name}: {data} bytes of data ranges");
    }
    // The zero grains of snap2 hide the base's 0xa2 (GTE 1 does not fall through).
    let d = open_path(&dir.join("chain-snap2.vmdk"));
    assert_eq!(d.layers.len(), 3);
    let mut b = vec![0xffu8; 128 << 10];
    d.read_at(8 << 20, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0));
}

#[test]
fn corrupt_vmdk_fails_cleanly() {
    let Some(root) = corpus() else { return };
    let p = root.join("vdisk/real/qemu-iotests/afl9.vmdk");
    if !p.is_file() {
        eprintln!("SKIP: no afl9.vmdk");
        return;
    }
    let t = std::time::Instant::now();
    let e = open(&LocalFiles, &local_path(&p)).err().expect("afl9.vmdk must be rejected");
    assert!(e.to_string().contains("SparseExtentHeader"), "{e}");
    assert!(t.elapsed().as_secs() < 2);
}

fn have_qemu() -> bool {
    let ok = Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: qemu-img not installed");
    }
    ok
}

fn run(cmd: &mut Command) {
    let o = cmd.output().expect("run");
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn raw_sha(img: &Path, dir: &Path) -> String {
    let raw = dir.join("out.raw");
    run(Command::new("qemu-img").args(["convert", "-f", "vmdk", "-O", "raw"]).arg(img).arg(&raw));
    let d = crate::util::sha256_file(&raw);
    std::fs::remove_file(raw).unwrap();
    d
}

/// Writes at odd offsets, across grain and grain-table boundaries.
const WRITES: [&str; 5] = [
    "write -P 0x61 1234567 70000",
    "write -P 0x62 33553920 2048",
    "write -P 0x63 0 511",
    "write -P 0x64 5000000 300000",
    "write -P 0x65 67108352 512",
];

#[test]
fn differential_vs_qemu() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for sub in ["monolithicSparse", "monolithicSparse,zeroed_grain=on", "streamOptimized"] {
        let img = tmp.path().join("d.vmdk");
        let _ = std::fs::remove_file(&img);
        let src = if sub == "streamOptimized" { tmp.path().join("s.raw") } else { img.clone() };
        let fmt = if sub == "streamOptimized" { "raw" } else { "vmdk" };
        let mut c = Command::new("qemu-img");
        c.args(["create", "-q", "-f", fmt]);
        if fmt == "vmdk" {
            c.args(["-o", &format!("subformat={sub}")]);
        }
        run(c.arg(&src).arg("64M"));
        let mut io = Command::new("qemu-io");
        io.args(["-f", fmt]);
        for w in WRITES {
            io.args(["-c", w]);
        }
        if sub.contains("zeroed_grain") {
            io.args(["-c", "write -z 1179648 131072"]);
        }
        run(io.arg(&src));
        if sub == "streamOptimized" {
            run(Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized"])
                .arg(&src)
                .arg(&img));
        }
        let d = open_path(&img);
        assert_eq!(disk_sha(&d), raw_sha(&img, tmp.path()), "{sub}");
        assert!(d.problems.is_empty(), "{sub}: {:?}", d.problems);

        if sub == "streamOptimized" {
            truncated_stream(&img, tmp.path());
        }
    }
}

/// A streamOptimized file cut in the middle: grains before the cut read right, the rest is
/// unallocated or reported unreadable, nothing panics.
fn truncated_stream(img: &Path, dir: &Path) {
    let full = open_path(img);
    let bytes = std::fs::read(img).unwrap();
    let cut = dir.join("cut.vmdk");
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 100]).unwrap();
    let d = open_path(&cut);
    let len = d.len();
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    let (mut same, mut lost) = (0u64, 0u64);
    let bad = d.unreadable(0..len);
    let mut pos = 0;
    while pos < len {
        full.read_at(pos, &mut a).unwrap();
        d.read_at(pos, &mut b).unwrap();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            if x == y {
                same += 1;
            } else {
                // A differing byte is zero in the cut file, and reported or a lost grain.
                assert_eq!(*y, 0, "byte {}", pos + i as u64);
                lost += 1;
            }
        }
        pos += 1 << 20;
    }
    // The first written grains are intact.
    let mut x = vec![0u8; 70000];
    d.read_at(1234567, &mut x).unwrap();
    assert!(x.iter().all(|&v| v == 0x61));
    assert!(lost > 0, "the cut lost nothing?");
    let _ = (same, bad);
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Damage: a primary GD pointing outside the file (the redundant copy is used), a VMware-layout
/// stream cut before its footer (the grain map is rebuilt from the markers), and a compressed
/// grain that no longer inflates (zeros, reported).
#[test]
fn damaged_sparse_files() {
    let Some(root) = corpus() else { return };
    let dir = root.join("vdisk/generated");
    if !dir.is_dir() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();

    // 1. Primary GD of ref-monolithicSparse (gdOffset at header byte 56) overwritten.
    let mut b = std::fs::read(dir.join("ref-monolithicSparse.vmdk")).unwrap();
    let gd = le64(&b, 56) as usize * 512;
    b[gd..gd + 8].copy_from_slice(&[0xf0, 0xff, 0xff, 0x7f, 0xf0, 0xff, 0xff, 0x7f]);
    let p = tmp.path().join("gd.vmdk");
    std::fs::write(&p, &b).unwrap();
    let d = open_path(&p);
    assert_eq!(disk_sha(&d), "8ee5056a39bfbb292c5e449772c421a5c3afaa06a37033b0194293f669fed07d");
    assert!(d.problems.iter().any(|p| p.contains("redundant")), "{:?}", d.problems);

    // 2. The VMDKstream file (grains of 85 compressed bytes, one sector each, from byte 0x10000)
    //    cut inside its 41st grain: footer gone, the 40 grains before the cut still read.
    let full = open_path(&dir.join("ref-streamOptimized-vmdkstream.vmdk"));
    let b = std::fs::read(dir.join("ref-streamOptimized-vmdkstream.vmdk")).unwrap();
    let p = tmp.path().join("cut.vmdk");
    std::fs::write(&p, &b[..0x10000 + 40 * 512 + 50]).unwrap();
    let d = open_path(&p);
    assert!(d.problems.iter().any(|p| p.contains("rebuilt from the stream markers")), "{:?}", d.problems);
    let mut x = vec![0u8; 3 << 20];
    d.read_at(0, &mut x).unwrap();
    assert!(x[..40 << 16].iter().all(|&v| v == 0x61), "the first 40 grains must survive");
    assert!(x[40 << 16..].iter().all(|&v| v == 0), "grains after the cut are lost");
    let (mut a, mut c) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    for m in 0..64u64 {
        full.read_at(m << 20, &mut a).unwrap();
        d.read_at(m << 20, &mut c).unwrap();
        assert!(a.iter().zip(&c).all(|(x, y)| x == y || *y == 0), "MiB {m}");
    }
    assert_ne!(disk_sha(&d), disk_sha(&full), "the cut must lose the last grains");

    // 3. A compressed grain damaged in place: its 64 KiB read as zeros and are reported.
    let mut b = std::fs::read(dir.join("ref-streamOptimized.vmdk")).unwrap();
    let over = le64(&b, 64) as usize * 512; // first grain marker (LBA 0)
    assert_eq!(le64(&b, over), 0);
    for v in &mut b[over + 20..over + 60] {
        *v ^= 0x55;
    }
    let p = tmp.path().join("bad-grain.vmdk");
    std::fs::write(&p, &b).unwrap();
    let d = open_path(&p);
    let mut x = vec![0xffu8; 128 << 10];
    d.read_at(0, &mut x).unwrap();
    assert!(x[..64 << 10].iter().all(|&v| v == 0), "damaged grain reads as zeros");
    assert!(x[64 << 10..].iter().all(|&v| v == 0x61), "the next grain is intact");
    assert_eq!(d.unreadable(0..d.len()), vec![0..65536]);
}
