//! `vdisk convert --format qcow2` and `vdisk verify`: corpus VMDKs and a forged datastore's
//! snapshot chain exported to qcow2 (checked by qemu-img check and compare, and by the known
//! content hashes), then compared by `vdisk verify`, with planted differences it must find.

use crate::util::{SourceGuard, corpus};
use crate::vmfs::bin;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::forge::truth::Truth;
use vmfs_rescue::vdisk::{LocalFiles, files::local_path, open};

/// The corpus VMDKs exported here, with the files each reads and its README raw sha256.
const CORPUS: [(&str, &[&str], &str); 3] = [
    ("ref-monolithicSparse.vmdk", &[], "8ee5056a39bfbb292c5e449772c421a5c3afaa06a37033b0194293f669fed07d"),
    ("ref-streamOptimized-vmdkstream.vmdk", &[], "4e23753f3a10878dd27c83233e6d90263234f420d949b7c7a7c7b653bc6ed9d0"),
    (
        "chain-snap2.vmdk",
        &["chain-snap1.vmdk", "chain-base.vmdk"],
        "c4d7331068144b026ed38fde4b490b1032e2a118a77f6eb4043a486919f1c56d",
    ),
];

fn generated() -> Option<PathBuf> {
    let dir = corpus()?.join("vdisk/generated");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: no vdisk corpus");
        None
    }
}

fn have_qemu() -> bool {
    let ok = Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok || std::env::var_os("CI").is_none(), "qemu-img missing in CI");
    if !ok {
        eprintln!("SKIP: qemu-img not installed");
    }
    ok
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `vdisk convert ARGS --to OUT --format FORMAT`; returns the printed SHA-256.
fn convert(args: &[&str], out: &Path, format: &str) -> String {
    let o =
        bin().args(["vdisk", "convert"]).args(args).arg("--to").arg(out).args(["--format", format]).output().unwrap();
    assert!(o.status.success(), "convert {args:?} to {format}: {}", text(&o));
    let mut p = out.as_os_str().to_owned();
    p.push(".partial");
    assert!(!Path::new(&p).exists(), "temporary file left behind");
    let stdout = String::from_utf8(o.stdout).unwrap();
    stdout.split_whitespace().next().unwrap_or_default().to_string()
}

/// qemu-img check is clean, and qemu-img compare says `qcow2` holds what `src` (in `fmt`) holds.
fn qemu_agrees(src: &Path, fmt: &str, qcow2: &Path) {
    let o = Command::new("qemu-img").arg("check").arg(qcow2).output().unwrap();
    assert!(o.status.success() && text(&o).contains("No errors"), "qemu-img check {}: {}", qcow2.display(), text(&o));
    let o = Command::new("qemu-img").args(["compare", "-f", fmt]).arg(src).args(["-F", "qcow2"]).arg(qcow2).output();
    let o = o.unwrap();
    assert!(o.status.success(), "qemu-img compare {} {}: {}", src.display(), qcow2.display(), text(&o));
    assert!(text(&o).contains("identical"), "{}", text(&o));
}

/// `vdisk verify A --against B` (plus `args` before A's options): exit code and output.
fn verify(a: &[&str], against: &Path) -> (i32, String) {
    let o = bin().args(["vdisk", "verify"]).args(a).arg("--against").arg(against).output().unwrap();
    (o.status.code().unwrap_or(-1), text(&o))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn corpus_vmdks_export_to_qcow2() {
    let Some(dir) = generated() else { return };
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (name, parents, sha) in CORPUS {
        let src = dir.join(name);
        let files: Vec<PathBuf> = std::iter::once(src.clone()).chain(parents.iter().map(|p| dir.join(p))).collect();
        let _guard = SourceGuard::new(&files);
        let out = tmp.path().join(format!("{name}.qcow2"));
        assert_eq!(convert(&[s(&src)], &out, "qcow2"), sha, "{name}: printed SHA-256");
        qemu_agrees(&src, "vmdk", &out);
        // Only non-zero clusters are stored: the image is not much larger than the data.
        let d = open(&LocalFiles, &local_path(&src)).unwrap();
        let data: u64 = d.data_ranges(0..d.len()).iter().map(|r| r.end - r.start).sum();
        let size = std::fs::metadata(&out).unwrap().len();
        assert!(size <= data + (1 << 20), "{name}: {size} bytes of qcow2 for {data} bytes of data ranges");
    }
}

/// A snapshot chain read in place on a forged VMFS6 datastore: raw and qcow2 exports hold the
/// ground truth's content, qemu-img agrees, and `vdisk verify` says the exports equal the chain.
#[test]
fn forged_chain_exports_to_qcow2_and_verifies() {
    if !have_qemu() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("ds6.img");
    let forge = ["forge", "--small", "--scenario", "healthy", "--version", "6", "--size", "3G"];
    let o = bin().args(forge).arg(&img).output().unwrap();
    assert!(o.status.success(), "forge: {}", text(&o));
    let truth = Truth::load(&Truth::path_for(&img)).unwrap();
    let disk = truth.disks.iter().filter(|d| d.status == "ok").max_by_key(|d| d.chain.len()).unwrap();
    assert!(disk.chain.len() >= 2, "the healthy scenario has snapshots");
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let leaf = disk.chain[0].as_str();

    let raw = tmp.path().join("disk.raw");
    let q = tmp.path().join("disk.qcow2");
    assert_eq!(convert(&[s(&img), "--path", leaf], &raw, "raw"), disk.sha256, "{leaf}: raw export");
    assert_eq!(convert(&[s(&img), "--path", leaf], &q, "qcow2"), disk.sha256, "{leaf}: qcow2 export");
    qemu_agrees(&raw, "raw", &q);

    let (code, out) = verify(&[s(&img), "--path", leaf], &raw);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("identical"), "{out}");
    // Against the qcow2 export, read back by our own qcow2 reader.
    let (code, out) = verify(&[s(&img), "--path", leaf], &q);
    assert!(code == 0 && out.contains("identical"), "{code}: {out}");
}

/// `vdisk verify` on corpus disks: equal content in two VMDK layouts and in a raw export;
/// a planted byte in data, and one in a hole of the VMDK, found with their offsets.
#[test]
fn verify_finds_planted_differences() {
    let Some(dir) = generated() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let sparse = dir.join("ref-monolithicSparse.vmdk");
    let (so, so_vmware) = (dir.join("ref-streamOptimized.vmdk"), dir.join("ref-streamOptimized-vmdkstream.vmdk"));
    let _guard = SourceGuard::new(&[sparse.clone(), so.clone(), so_vmware.clone(), dir.join("chain-base.vmdk")]);

    // Two layouts of the same content; two different disks.
    let (code, out) = verify(&[s(&so)], &so_vmware);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("identical: 67108864 bytes"), "{out}");
    let (code, out) = verify(&[s(&sparse)], &dir.join("chain-base.vmdk"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("different: first difference at byte"), "{out}");

    // The raw export, sparse: identical, and the note says it was taken as raw.
    let raw = tmp.path().join("sparse.raw");
    convert(&[s(&sparse)], &raw, "raw");
    let (code, out) = verify(&[s(&sparse)], &raw);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("compared as a raw image") && out.contains("identical"), "{out}");

    let d = open(&LocalFiles, &local_path(&sparse)).unwrap();
    let data = d.data_ranges(0..d.len());
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&raw).unwrap();
    // 1. One byte flipped inside data.
    let at = data[0].start + 4097;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
    let (code, out) = verify(&[s(&sparse)], &raw);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("first difference at byte {at} ({at:#x})")), "{out}");
    assert!(out.contains("1 byte(s) differ in 1 range(s)"), "{out}");
    f.write_all_at(&b, at).unwrap();

    // 2. One byte written where the VMDK has a hole (so has the sparse export, until now), and
    //    the same with the sides swapped.
    let hole = data.iter().find(|r| r.start > 1 << 20).map(|r| r.start).unwrap() - 1000;
    assert!(d.data_ranges(hole..hole + 1).is_empty());
    f.write_all_at(&[0x5a], hole).unwrap();
    drop(f);
    for (a, other) in [(&sparse, &raw), (&raw, &sparse)] {
        let (code, out) = verify(&[s(a)], other);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&format!("first difference at byte {hole} ({hole:#x})")), "{out}");
        assert!(out.contains(&format!("  {hole:#x}..{:#x} (1 bytes)", hole + 1)), "{out}");
    }

    // 3. Sizes differ: a raw file one sector longer.
    let longer = tmp.path().join("longer.raw");
    convert(&[s(&sparse)], &longer, "raw");
    std::fs::OpenOptions::new().write(true).open(&longer).unwrap().set_len(d.len() + 512).unwrap();
    let (code, out) = verify(&[s(&sparse)], &longer);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("sizes differ"), "{out}");

    // 4. Errors: a missing file, a damaged sparse extent (never compared as raw).
    let (code, out) = verify(&[s(&sparse)], &tmp.path().join("missing.raw"));
    assert_eq!(code, 2, "{out}");
    let mut bytes = std::fs::read(&sparse).unwrap();
    bytes[0x200..0x400].fill(0); // no embedded descriptor any more
    let broken = tmp.path().join("broken.vmdk");
    std::fs::write(&broken, &bytes).unwrap();
    let (code, out) = verify(&[s(&sparse)], &broken);
    assert_eq!(code, 2, "{out}");
    assert!(!out.contains("compared as a raw image"), "{out}");
}
