//! Guest files on exFAT (issue 9): a disk with an MBR and one exFAT partition made by
//! `mkfs.exfat` (exfatprogs) and filled through a FUSE mount (`mount.exfat-fuse` over a loop
//! device: exfat-fuse refuses a plain file), read through `open_disk`/`open_fs` from the raw
//! image and a streamOptimized VMDK; a file removed with `rm` listed and recovered; the main
//! boot sector zeroed and the volume read from its backup boot region.
//!
//! Needs root, a loop device and FUSE (CI runs as root on such a machine): without them the
//! test fails and says why, never skips.

use crate::util::hex;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, Source};
use vmfs_rescue::extract::{CopyOptions, Sink, copy};
use vmfs_rescue::guest::{self, Confidence, GuestFs, Kind};
use vmfs_rescue::vdisk::{self, LocalFiles};

/// The partition's start on the test disk (1 MiB, as partitioning tools align it).
const PART_START: u64 = 1 << 20;
/// The disk's size.
const DISK_SIZE: u64 = 40 << 20;

pub(crate) fn run(cmd: &mut Command) -> std::process::Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup-tools.sh installs the tools)"));
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

pub(crate) fn sha(src: &dyn BlockSource) -> String {
    copy(src, Sink::Null, CopyOptions::default()).unwrap().sha256.unwrap()
}

/// A loop device over part of a file, detached when dropped.
pub(crate) struct Loop(pub String);

impl Loop {
    pub(crate) fn new(file: &Path, offset: u64, size: u64) -> Self {
        let o = Command::new("losetup")
            .args(["-f", "--show", "-o", &offset.to_string(), "--sizelimit", &size.to_string()])
            .arg(file)
            .output()
            .expect("losetup (util-linux) runs");
        assert!(
            o.status.success(),
            "losetup failed: this test needs root and a free loop device: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Loop(String::from_utf8_lossy(&o.stdout).trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// A FUSE mount, unmounted when dropped (a failed test leaves nothing mounted).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Write an MBR with one partition of `type_byte` from `start` to the end of a `size`-byte disk.
pub(crate) fn write_mbr(path: &Path, size: u64, start: u64, type_byte: u8) {
    let f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(path).unwrap();
    f.set_len(size).unwrap();
    let mut mbr = [0u8; 512];
    let e = &mut mbr[0x1BE..0x1CE];
    e[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    e[4] = type_byte;
    e[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    e[8..12].copy_from_slice(&((start / 512) as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(((size - start) / 512) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    std::os::unix::fs::FileExt::write_all_at(&f, &mbr, 0).unwrap();
}

/// Files written: guest path and content.
type Written = Vec<(String, Vec<u8>)>;

/// Build the exFAT disk: returns the image, the files that must read back, and the deleted
/// file's path and content.
fn exfat_disk(dir: &Path) -> (PathBuf, Written, (String, Vec<u8>)) {
    let img = dir.join("exfat.img");
    write_mbr(&img, DISK_SIZE, PART_START, 0x07);
    let dev = Loop::new(&img, PART_START, DISK_SIZE - PART_START);
    run(Command::new("mkfs.exfat").args(["-L", "Ärchiv", "-c", "4096"]).arg(&dev.0));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let o = Command::new("mount.exfat-fuse").arg(&dev.0).arg(&mnt).output();
    let ok = o.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "mount.exfat-fuse failed: this test needs FUSE (/dev/fuse, root) and exfat-fuse: {:?}",
        o.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
    );
    let m = Mount(mnt.clone());
    let mut rng = vmfs_rescue::forge::vmdk::SplitMix64::new(17, 3);
    let mut files: Written = Vec::new();
    let mut put = |rel: &str, data: Vec<u8>| {
        let p = mnt.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &data).unwrap();
        files.push((format!("/{rel}"), data));
    };
    put("Berichte/2024/Quartalsbericht – Übersicht für den Vorstand.docx", rng.bytes(300_000));
    put("Berichte/2024/日本語のファイル名とても長い名前.txt", "こんにちは\n".repeat(700).into_bytes());
    put("a/b/c/d/e/deep.bin", rng.bytes(5000));
    put("empty.txt", Vec::new());
    put("one cluster exactly.bin", rng.bytes(4096));
    // A directory spanning many clusters: 300 entry sets of 4 entries (128 bytes) each.
    for i in 0..300 {
        put(&format!("many/a rather long file name number {i:04} to fill entries.txt"), rng.bytes(100 + i * 13));
    }
    // Two files appended in turns: their clusters interleave, so each needs a FAT chain.
    {
        use std::io::Write;
        let (pa, pb) = (mnt.join("frag/A.bin"), mnt.join("frag/B.bin"));
        std::fs::create_dir_all(mnt.join("frag")).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..24 {
            let (ca, cb) = (rng.bytes(6000), rng.bytes(7000));
            std::fs::OpenOptions::new().create(true).append(true).open(&pa).unwrap().write_all(&ca).unwrap();
            std::fs::OpenOptions::new().create(true).append(true).open(&pb).unwrap().write_all(&cb).unwrap();
            a.extend(ca);
            b.extend(cb);
        }
        files.push(("/frag/A.bin".into(), a));
        files.push(("/frag/B.bin".into(), b));
    }
    // Two more interleaved files; C.bin is deleted below (a deleted FAT-chained file).
    {
        use std::io::Write;
        for _ in 0..8 {
            for n in ["C.bin", "D.bin"] {
                let p = mnt.join("frag").join(n);
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap()
                    .write_all(&rng.bytes(5000))
                    .unwrap();
            }
        }
    }
    // Three clusters whose ValidDataLength is cut to 5000 after unmount (as Windows leaves a
    // preallocated file): bytes past it read as zeros.
    let prealloc = rng.bytes(3 * 4096);
    std::fs::write(mnt.join("prealloc.bin"), &prealloc).unwrap();
    let mut want = prealloc[..PREALLOC_VALID].to_vec();
    want.resize(prealloc.len(), 0);
    files.push(("/prealloc.bin".into(), want));
    let deleted = rng.bytes(654_321);
    std::fs::write(mnt.join("to be deleted.bin"), &deleted).unwrap();
    std::fs::write(mnt.join("after the deleted one.txt"), b"still here\n").unwrap();
    files.push(("/after the deleted one.txt".into(), b"still here\n".to_vec()));
    run(&mut Command::new("sync"));
    std::fs::remove_file(mnt.join("to be deleted.bin")).unwrap();
    std::fs::remove_file(mnt.join("frag/C.bin")).unwrap();
    drop(m);
    drop(dev);
    set_valid_data_length(&img, "prealloc.bin", PREALLOC_VALID as u64);
    (img, files, ("/to be deleted.bin".into(), deleted))
}

/// ValidDataLength given to `/prealloc.bin`.
const PREALLOC_VALID: usize = 5000;

/// Set the ValidDataLength of the root file `name` (at most 15 characters: one name entry) in
/// the image's exFAT partition, and recompute its entry set's checksum.
fn set_valid_data_length(img: &Path, name: &str, valid: u64) {
    let mut disk = std::fs::read(img).unwrap();
    let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert!(name.len() <= 15);
    // The name entry (0xC1) holds the name from byte 2; the set is File, Stream, Name.
    let set_at = (PART_START as usize..disk.len() - 64)
        .step_by(32)
        .find(|&e| disk[e] == 0xC1 && disk[e + 2..].starts_with(&utf16) && disk[e - 64] == 0x85)
        .map(|e| e - 64)
        .unwrap_or_else(|| panic!("{name}: entry set not found"));
    let set = &mut disk[set_at..set_at + 96];
    assert_eq!((set[1], set[32]), (2, 0xC0), "{name}: one stream and one name entry");
    set[32 + 8..32 + 16].copy_from_slice(&valid.to_le_bytes());
    let sum = set
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2 && *i != 3)
        .fold(0u16, |s, (_, &b)| s.rotate_right(1).wrapping_add(u16::from(b)));
    set[2..4].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(img, disk).unwrap();
}

fn exfat_of(disk: &Source) -> Box<dyn GuestFs> {
    let g = guest::open_disk(disk).unwrap();
    assert_eq!(g.volumes.len(), 1, "one partition");
    guest::open_fs(&g.volumes[0].source).unwrap()
}

/// Every written file reads back with its SHA-256; the deleted one is listed and recovered.
fn check(what: &str, fs: &dyn GuestFs, files: &Written, deleted: &(String, Vec<u8>)) -> usize {
    assert_eq!(fs.fs_type(), "exFAT", "{what}");
    assert_eq!(fs.label().as_deref(), Some("Ärchiv"), "{what}");
    for (path, data) in files {
        let e = guest::lookup(fs, path).unwrap_or_else(|e| panic!("{what}: {path}: {e}"));
        assert!(!e.deleted && e.kind == Kind::File, "{what}: {path}");
        assert_eq!(e.size, data.len() as u64, "{what}: {path}");
        let src = fs.open(&e, None).unwrap();
        assert_eq!(sha(&*src), hex(&Sha256::digest(data)), "{what}: {path}");
        assert!(src.unreadable(0..src.len()).is_empty(), "{what}: {path}");
    }
    // The interleaved files are FAT-chained: bit 32 of an exFAT entry's id marks NoFatChain.
    for p in ["/frag/A.bin", "/frag/B.bin"] {
        assert_eq!(guest::lookup(fs, p).unwrap().id >> 32, 0, "{what}: {p} should need a FAT chain");
    }
    let many = fs.list(&guest::lookup(fs, "/many").unwrap()).unwrap();
    assert_eq!(many.iter().filter(|e| !e.deleted).count(), 300, "{what}: the multi-cluster directory");
    let root = fs.list(&fs.root()).unwrap();
    let name = deleted.0.trim_start_matches('/');
    let d = root.iter().find(|e| e.name == name && e.deleted).unwrap_or_else(|| panic!("{what}: deleted file listed"));
    assert_eq!(d.size, deleted.1.len() as u64);
    assert!(d.confidence.is_some(), "{what}");
    assert_eq!(sha(&*fs.open(d, None).unwrap()), hex(&Sha256::digest(&deleted.1)), "{what}: deleted file");
    // Past ValidDataLength: not data (a hole), read as zeros (checked with the files above).
    let pre = fs.open(&guest::lookup(fs, "/prealloc.bin").unwrap(), None).unwrap();
    let data: u64 = pre.data_ranges(0..pre.len()).iter().map(|r| r.end - r.start).sum();
    assert_eq!(data, PREALLOC_VALID as u64, "{what}: prealloc.bin data stops at ValidDataLength");
    // A deleted FAT-chained file: exfat-fuse frees its FAT chain with it, so where its clusters
    // were is unknown. It is listed, never with High confidence, and never as another file.
    let frag = fs.list(&guest::lookup(fs, "/frag").unwrap()).unwrap();
    let c = frag.iter().find(|e| e.name == "C.bin").unwrap_or_else(|| panic!("{what}: deleted C.bin listed"));
    assert!(c.deleted && c.size == 40_000, "{what}: {c:?}");
    assert!(matches!(c.confidence, Some(Confidence::Medium | Confidence::Low)), "{what}: {c:?}");
    assert!(frag.iter().any(|e| e.name == "D.bin" && !e.deleted), "{what}");
    eprintln!("{what}: {} files byte-exact, deleted file recovered ({:?})", files.len(), d.confidence);
    files.len()
}

/// exFAT from the raw disk, a streamOptimized VMDK of it, and with its main boot sector zeroed.
#[test]
fn guest_exfat_fuse_raw_vmdk_and_backup_boot() {
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let (img, files, deleted) = exfat_disk(dir.path());
    eprintln!("exFAT disk built in {:?}", t.elapsed());
    let raw: Source = vmfs_rescue::block::open_path(&img).unwrap();
    check("raw", &*exfat_of(&raw), &files, &deleted);

    let stream = dir.path().join("stream.vmdk");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized"])
        .arg(&img)
        .arg(&stream));
    let vmdk: Source = Arc::new(vdisk::open(&LocalFiles, &vdisk::files::local_path(&stream)).unwrap());
    check("streamOptimized", &*exfat_of(&vmdk), &files, &deleted);

    // The main boot sector zeroed: the backup boot region (sector 12) opens the volume.
    let damaged = dir.path().join("damaged.img");
    std::fs::copy(&img, &damaged).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&damaged).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 512], PART_START).unwrap();
    drop(f);
    let src: Source = vmfs_rescue::block::open_path(&damaged).unwrap();
    check("main boot sector zeroed", &*exfat_of(&src), &files, &deleted);
    // And with both boot regions gone, a clear error.
    let f = std::fs::OpenOptions::new().write(true).open(&damaged).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 24 * 512], PART_START).unwrap();
    drop(f);
    let src: Source = vmfs_rescue::block::open_path(&damaged).unwrap();
    let g = guest::open_disk(&src).unwrap();
    assert!(guest::open_fs(&g.volumes[0].source).is_err());
    eprintln!("exFAT test done in {:?}", t.elapsed());
}
