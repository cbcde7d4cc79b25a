//! Guest files (issue 9): FAT32 guest disks made by mkfs.vfat + mtools, read through the guest
//! layer from raw images, qemu-img VMDK variants, and a forged VMFS datastore (a snapshot chain
//! included); files deleted with mdel listed and recovered; damaged tables and garbage.

use crate::util::hex;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, MemSource, Source, Tolerant};
use vmfs_rescue::extract::{CopyOptions, Sink, copy};
use vmfs_rescue::forge::guest::{FsKind, GuestDisk, GuestSpec, TableKind, build_guest_disk};
use vmfs_rescue::guest::{self, Confidence, GuestError, GuestFs, Kind};
use vmfs_rescue::vdisk::{self, LocalFiles, VmfsFiles};

/// Open `vol` and read every file it lists (damaged volumes: errors are fine, panics are not).
fn read_everything(vol: &Source) {
    let Ok(fs) = guest::open_fs(vol) else { return };
    let mut errs = Vec::new();
    guest::walk(
        &*fs,
        &fs.root(),
        "",
        &mut |_, e| {
            if e.kind == Kind::File
                && e.size < (16 << 20)
                && let Ok(s) = fs.open(e, None)
            {
                let _ = sha(&*s);
            }
        },
        &mut errs,
    );
}

fn sha(src: &dyn BlockSource) -> String {
    copy(src, Sink::Null, CopyOptions::default()).unwrap().sha256.unwrap()
}

/// The file system of the one partition of `disk`.
fn fs_of(disk: &Source) -> Box<dyn GuestFs> {
    let g = guest::open_disk(disk).unwrap();
    assert_eq!(g.volumes.len(), 1, "one partition");
    guest::open_fs(&g.volumes[0].source).unwrap()
}

/// Every `(path, sha256)` of `want` is found in `fs` with that content; returns how many.
fn check_files<'a>(fs: &dyn GuestFs, want: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    let mut n = 0;
    for (path, sum) in want {
        let e = guest::lookup(fs, path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!e.deleted, "{path}");
        let src = fs.open(&e, None).unwrap();
        assert_eq!(sha(&*src), sum, "{path}");
        assert!(src.unreadable(0..src.len()).is_empty(), "{path}");
        n += 1;
    }
    n
}

fn run(cmd: &mut Command) -> std::process::Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A FAT32 guest disk with a GPT or MBR, a deep tree with long and non-ASCII names added with mcopy,
/// and one file deleted with mdel. Returns the disk, the extra files, the deleted file's data.
/// Guest files added to a disk: path and content.
pub(crate) type Added = Vec<(String, Vec<u8>)>;

pub(crate) fn fat_disk(dir: &Path, table: TableKind) -> (GuestDisk, Added, Vec<u8>) {
    let spec = GuestSpec { name: "fatguest".into(), size: 64 << 20, table, fs: FsKind::Fat32, seed: 9 };
    let disk = build_guest_disk(dir, &spec).unwrap();
    let stage = dir.join("stage");
    let deep = stage.join("Projects/2024/Quartalsbericht – Übersicht/very long folder name beyond eight dot three");
    std::fs::create_dir_all(&deep).unwrap();
    let mut extra = Vec::new();
    let mut put = |rel: &str, data: Vec<u8>| {
        std::fs::write(stage.join(rel), &data).unwrap();
        extra.push((format!("/{rel}"), data));
    };
    let mut rng = vmfs_rescue::forge::vmdk::SplitMix64::new(9, 1);
    put("Projects/2024/Quartalsbericht – Übersicht/Zusammenfassung für Vorstand.docx", rng.bytes(200_000));
    put(
        "Projects/2024/Quartalsbericht – Übersicht/very long folder name beyond eight dot three/日本語のファイル名.txt",
        "こんにちは\n".repeat(500).into_bytes(),
    );
    put("Projects/README", b"plain\n".to_vec());
    for i in 0..40 {
        put(&format!("Projects/2024/log file number {i:03}.txt"), rng.bytes(1000 + i * 517));
    }
    let deleted = rng.bytes(777_777);
    std::fs::write(stage.join("to be deleted.bin"), &deleted).unwrap();
    let img = format!("{}@@{}", disk.image.display(), disk.partition_offset);
    let env = [("MTOOLS_SKIP_CHECK", "1")];
    let mut mcopy = Command::new("mcopy");
    mcopy.envs(env).args(["-s", "-i", &img]);
    for e in std::fs::read_dir(&stage).unwrap() {
        mcopy.arg(e.unwrap().path());
    }
    run(mcopy.arg("::/"));
    run(Command::new("mdel").envs(env).args(["-i", &img, "::/to be deleted.bin"]));
    (disk, extra, deleted)
}

fn convert(raw: &Path, out: &Path, subformat: &str) {
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "vmdk", "-o", &format!("subformat={subformat}")])
        .arg(raw)
        .arg(out));
}

/// The guest disk's files (the forge's and ours) from the raw image and two VMDK variants;
/// the deleted file listed as deleted and recovered byte-exact.
#[test]
fn guest_fat_raw_and_vmdk_variants() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, extra, deleted) = fat_disk(dir.path(), TableKind::Gpt);
    let sparse = dir.path().join("sparse.vmdk");
    let stream = dir.path().join("stream.vmdk");
    convert(&disk.image, &sparse, "monolithicSparse");
    convert(&disk.image, &stream, "streamOptimized");
    let mut sources: Vec<(&str, Source)> = vec![("raw", disk.open().unwrap())];
    for (n, p) in [("monolithicSparse", &sparse), ("streamOptimized", &stream)] {
        sources.push((n, Arc::new(vdisk::open(&LocalFiles, &vdisk::files::local_path(p)).unwrap())));
    }
    let extra_sums: Vec<(String, String)> = extra.iter().map(|(p, d)| (p.clone(), hex(&Sha256::digest(d)))).collect();
    for (what, src) in sources {
        let fs = fs_of(&src);
        assert_eq!(fs.fs_type(), "FAT32", "{what}");
        let n = check_files(&*fs, disk.files.iter().map(|f| (f.path.as_str(), f.sha256.as_str())))
            + check_files(&*fs, extra_sums.iter().map(|(p, s)| (p.as_str(), s.as_str())));
        // The deleted file: listed as deleted under its long name, content from its first
        // cluster on, and mdel freed its clusters (nothing reused them).
        let root = fs.list(&fs.root()).unwrap();
        let d = root.iter().find(|e| e.name == "to be deleted.bin").expect("deleted file listed");
        assert!(d.deleted && d.kind == Kind::File && d.size == deleted.len() as u64);
        assert_eq!(d.confidence, Some(Confidence::Medium));
        assert_eq!(sha(&*fs.open(d, None).unwrap()), hex(&Sha256::digest(&deleted)), "{what}: deleted file");
        eprintln!("{what}: {n} files byte-exact, 1 deleted file recovered");
        assert!(n >= 45, "{n}");
    }
}

/// `guest ls` lists the partitions; `guest extract` writes every file with the manifest's and
/// the truth's SHA-256, sanitizing names; `guest cat` streams one file.
#[test]
fn guest_cli_ls_cat_extract() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, extra, _) = fat_disk(dir.path(), TableKind::Gpt);
    let stream = dir.path().join("stream.vmdk");
    convert(&disk.image, &stream, "streamOptimized");
    let bin = env!("CARGO_BIN_EXE_vmfs-rescue");
    let ls = run(Command::new(bin).args(["guest", "ls"]).arg(&stream));
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains("GPT partition 1") && ls.contains("FAT32"), "{ls}");
    let out = dir.path().join("out");
    let o =
        Command::new(bin).args(["guest", "extract", "--part", "1", "--to"]).arg(&out).arg(&stream).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let by_path = |p: &str| m.iter().find(|e| e["path"] == p).unwrap_or_else(|| panic!("{p} not in manifest"));
    let mut n = 0;
    let all = disk
        .files
        .iter()
        .map(|f| (f.path.clone(), f.sha256.clone()))
        .chain(extra.iter().map(|(p, d)| (p.clone(), hex(&Sha256::digest(d)))));
    for (p, sum) in all {
        let e = by_path(&p);
        assert_eq!(e["sha256"], sum.as_str(), "{p}");
        let file = out.join(e["output"].as_str().unwrap());
        assert_eq!(crate::util::sha256_file(&file), sum, "{p}");
        n += 1;
    }
    assert!(m.iter().any(|e| e["deleted"] == true && e["name"] == "to be deleted.bin"));
    eprintln!("guest extract: {n} files byte-exact through the CLI");
    let (p, data) = &extra[0];
    let one = dir.path().join("one");
    run(Command::new(bin).args(["guest", "extract", "--part", "1", "--guest-path", p, "--to"]).arg(&one).arg(&stream));
    let name = p.rsplit('/').next().unwrap();
    assert_eq!(&std::fs::read(one.join(name)).unwrap(), data, "a single file lands in DIR");
    let o = run(Command::new(bin).args(["guest", "cat", "--part", "1", "--guest-path", p]).arg(&stream));
    assert_eq!(&o.stdout, data);
    let o = Command::new(bin).args(["guest", "cat", "--guest-path", "/nope"]).arg(&stream).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("/nope"));
}

/// The forge's FAT32 (db01) and ext4 (web01) guests inside a forged VMFS6 datastore, read
/// through their snapshot chains in place on the volume and at their snapshot; the ext4 sparse
/// file keeps its hole.
#[test]
fn guest_fat_and_ext4_in_forged_datastore_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut imgs, truth) = crate::forge_scenarios::forge(dir.path(), "healthy", 6, "3G", &["ds.img"], true);
    let img: PathBuf = imgs.remove(0);
    let srcs = vmfs_rescue::datastore::open_sources(&[img]).unwrap();
    let (stores, _) = vmfs_rescue::datastore::find(&srcs);
    let files = VmfsFiles(stores.into_iter().find_map(|d| d.fs.ok()).unwrap());
    let mut checked = 0;
    let mut kinds = Vec::new();
    for d in truth.disks.iter().filter(|d| d.guest_fs == "fat32" || d.guest_fs == "ext4") {
        kinds.push(d.guest_fs.clone());
        let want: Vec<_> = truth.guest_files.iter().filter(|g| g.disk == d.chain[0]).collect();
        let leaf = vdisk::open(&files, &d.chain[0]).unwrap();
        let snap = d.chain.len() > 1;
        let mut views: Vec<Source> = vec![Arc::new(leaf)];
        if snap {
            let leaf = vdisk::open(&files, &d.chain[0]).unwrap();
            views.push(Arc::new(vdisk::snapshot::at_snapshot(&files, leaf, "before upgrade").unwrap()));
        }
        for v in views {
            let fs = fs_of(&v);
            checked += check_files(&*fs, want.iter().map(|g| (g.path.as_str(), g.sha256.as_str())));
            if d.guest_fs == "ext4" {
                let e = guest::lookup(&*fs, "/var/lib/vm/disk-cache.img").unwrap();
                let f = fs.open(&e, None).unwrap();
                let data: u64 = f.data_ranges(0..f.len()).iter().map(|r| r.end - r.start).sum();
                assert!(data < f.len() / 2, "the sparse file's hole is a hole: {data} of {} bytes", f.len());
            }
        }
        assert!(snap, "the guest sits under a snapshot");
    }
    kinds.sort();
    assert_eq!(kinds, ["ext4", "fat32"]);
    eprintln!("forged datastore: {checked} guest files byte-exact (leaf and snapshot views)");
}

/// A broken primary GPT header: the backup opens the same files. Garbage gives a clear error,
/// and broken boot sectors name the field and offset; random damage (FAT, ext4, NTFS) never
/// panics.
#[test]
fn guest_damage() {
    let dir = tempfile::tempdir().unwrap();
    let spec = GuestSpec { name: "dmg".into(), size: 48 << 20, table: TableKind::Gpt, fs: FsKind::Fat32, seed: 3 };
    let disk = build_guest_disk(dir.path(), &spec).unwrap();
    let mut bytes = std::fs::read(&disk.image).unwrap();
    let good = bytes.clone();
    bytes[512..1024].fill(0xAA);
    let src: Source = Arc::new(Tolerant::new(MemSource::new("broken-gpt", bytes.clone())));
    let g = guest::open_disk(&src).unwrap();
    assert!(g.table.as_ref().unwrap().damaged, "the damage is noted");
    let fs = guest::open_fs(&g.volumes[0].source).unwrap();
    assert_eq!(check_files(&*fs, disk.files.iter().map(|f| (f.path.as_str(), f.sha256.as_str()))), disk.files.len());

    // Garbage: no table, no file system.
    let mut rng = vmfs_rescue::forge::vmdk::SplitMix64::new(5, 5);
    let junk: Source = Arc::new(Tolerant::new(MemSource::new("junk", rng.bytes(4 << 20))));
    let g = guest::open_disk(&junk).unwrap();
    let e = guest::open_fs(&g.volumes[0].source).err().unwrap();
    assert!(matches!(e, GuestError::UnknownFs { .. }), "{e}");
    assert!(e.to_string().contains("junk"), "{e}");

    // A FAT boot sector whose cluster size is broken: recognised no more, the field is named
    // when it is opened as FAT.
    let part = disk.partition_offset as usize;
    let mut b = good.clone();
    b[part + 0x0D] = 3;
    let vol: Source = Arc::new(Tolerant::new(MemSource::new("badbpb", b[part..].to_vec())));
    let e = guest::fat::Fat::open(vol).err().unwrap().to_string();
    assert!(e.contains("0x0D") && e.contains("offset 0x0"), "{e}");

    // ext: a broken superblock field is named with its offset; random damage never panics.
    let src = dir.path().join("extsrc/a/b");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f.bin"), rng.bytes(300_000)).unwrap();
    std::fs::write(src.join("g.txt"), b"hello").unwrap();
    let ext = dir.path().join("ext.img");
    std::fs::File::create(&ext).unwrap().set_len(8 << 20).unwrap();
    run(Command::new("mkfs.ext4").args(["-q", "-d"]).arg(dir.path().join("extsrc")).arg(&ext));
    let good_ext = std::fs::read(&ext).unwrap();
    let mut b = good_ext.clone();
    b[1024 + 0x18] = 9;
    let vol: Source = Arc::new(Tolerant::new(MemSource::new("badsb", b)));
    let e = guest::open_fs(&vol).err().unwrap().to_string();
    assert!(e.contains("0x18") && e.contains("offset 0x400") && e.contains("ext superblock"), "{e}");
    for round in 0..200u64 {
        let mut b = good_ext.clone();
        let mut r = vmfs_rescue::forge::vmdk::SplitMix64::new(round, 78);
        for _ in 0..1 + r.below(60) {
            // Superblock, group descriptors, inode tables and early data blocks.
            let span = if r.below(2) == 0 { 8192 } else { 1 << 20 };
            let at = r.below(span) as usize;
            b[at] = r.next_u32() as u8;
        }
        let vol: Source = Arc::new(Tolerant::new(MemSource::new("fuzz-ext", b)));
        read_everything(&vol);
    }

    // Random damage to the boot sector, FAT and root directory: errors or output, no panic.
    for round in 0..200u64 {
        let mut b = good[part..part + (8 << 20)].to_vec();
        let mut r = vmfs_rescue::forge::vmdk::SplitMix64::new(round, 77);
        for _ in 0..1 + r.below(40) {
            let at = if r.below(2) == 0 { r.below(1024) } else { r.below(b.len() as u64 / 4) } as usize;
            b[at] = r.next_u32() as u8;
        }
        let vol: Source = Arc::new(Tolerant::new(MemSource::new("fuzz", b)));
        read_everything(&vol);
    }

    // NTFS (made by mkntfs, filled through ntfs-3g): random damage to the boot sector and the
    // MFT (at 16 KiB): errors or output, no panic.
    let t = crate::guest_ntfs::ntfs_image(&dir.path().join("ntfs"), 24 << 20, 20, false);
    let good_ntfs = std::fs::read(&t.img).unwrap();
    for round in 0..100u64 {
        let mut b = good_ntfs.clone();
        let mut r = vmfs_rescue::forge::vmdk::SplitMix64::new(round, 79);
        for _ in 0..1 + r.below(60) {
            let at = if r.below(4) == 0 { r.below(512) } else { 0x4000 + r.below(256 << 10) } as usize;
            b[at] = r.next_u32() as u8;
        }
        let vol: Source = Arc::new(Tolerant::new(MemSource::new("fuzz-ntfs", b)));
        read_everything(&vol);
    }
}

/// A partitionless ext4 made by `mkfs.ext4 -d` (nested folders, UTF-8 names, a sparse file),
/// one file removed by `debugfs rm`, read from a streamOptimized VMDK: every file byte-exact,
/// the removed one listed as deleted under its name and recovered byte-exact.
#[test]
fn guest_ext4_partitionless_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let deep = src.join("home/админ/Документы/very long folder name with spaces and more");
    std::fs::create_dir_all(&deep).unwrap();
    let mut rng = vmfs_rescue::forge::vmdk::SplitMix64::new(4, 4);
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    let mut put = |rel: &str, data: Vec<u8>| {
        std::fs::write(src.join(rel), &data).unwrap();
        want.push((format!("/{rel}"), data));
    };
    put("home/админ/Документы/very long folder name with spaces and more/отчёт 2024.odt", rng.bytes(3_000_000));
    for i in 0..30 {
        put(&format!("home/админ/file-{i}.txt"), rng.bytes(100 + i * 4099));
    }
    put("empty", Vec::new());
    // Sparse: 64 KiB, a 4 MiB hole, 4 KiB.
    let mut sparse = rng.bytes(65536);
    sparse.resize(65536 + (4 << 20), 0);
    sparse.extend(rng.bytes(4096));
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(src.join("sparse.img")).unwrap();
        f.write_all(&sparse[..65536]).unwrap();
        f.seek(SeekFrom::Start(65536 + (4 << 20))).unwrap();
        f.write_all(&sparse[65536 + (4 << 20)..]).unwrap();
    }
    want.push(("/sparse.img".into(), sparse));
    let gone = rng.bytes(500_000);
    std::fs::write(src.join("gone.bin"), &gone).unwrap();
    std::fs::write(src.join("home/overwritten.bin"), rng.bytes(300_000)).unwrap();
    let img = dir.path().join("ext.img");
    std::fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    run(Command::new("mkfs.ext4").args(["-q", "-L", "EXTG", "-d"]).arg(&src).arg(&img));
    // overwritten.bin's blocks are taken again by a file written after it was removed (its
    // inode is held in the bitmap meanwhile, so the new file gets another one).
    let newer = rng.bytes(300_000);
    std::fs::write(dir.path().join("newer.bin"), &newer).unwrap();
    want.push(("/newer.bin".into(), newer));
    let ino = inode_of(&img, "/home/overwritten.bin");
    let script = format!("rm /home/overwritten.bin\nseti <{ino}>\nwrite newer.bin newer.bin\nfreei <{ino}>\n");
    std::fs::write(dir.path().join("debugfs.cmd"), script).unwrap();
    run(Command::new("debugfs").current_dir(dir.path()).args(["-w", "-f", "debugfs.cmd"]).arg(&img));
    run(Command::new("debugfs").args(["-w", "-R", "rm /gone.bin"]).arg(&img));
    let vmdk = dir.path().join("ext.vmdk");
    convert(&img, &vmdk, "streamOptimized");
    let disk: Source = Arc::new(vdisk::open(&LocalFiles, &vdisk::files::local_path(&vmdk)).unwrap());
    let g = guest::open_disk(&disk).unwrap();
    assert!(g.table.is_none(), "partitionless");
    let fs = guest::open_fs(&g.volumes[0].source).unwrap();
    assert_eq!((fs.fs_type().as_str(), fs.label().as_deref()), ("ext4", Some("EXTG")));
    let sums: Vec<(String, String)> = want.iter().map(|(p, d)| (p.clone(), hex(&Sha256::digest(d)))).collect();
    let n = check_files(&*fs, sums.iter().map(|(p, s)| (p.as_str(), s.as_str())));
    let e = guest::lookup(&*fs, "/sparse.img").unwrap();
    let f = fs.open(&e, None).unwrap();
    let data: u64 = f.data_ranges(0..f.len()).iter().map(|r| r.end - r.start).sum();
    assert!(data <= 65536 + 8192, "the hole is skipped: {data} data bytes");
    let root = fs.list(&fs.root()).unwrap();
    let d = root.iter().find(|e| e.name == "gone.bin").expect("deleted file listed by its name");
    assert!(d.deleted && d.size == gone.len() as u64);
    assert_eq!(d.confidence, Some(Confidence::High), "its blocks are free in the bitmaps");
    assert_eq!(sha(&*fs.open(d, None).unwrap()), hex(&Sha256::digest(&gone)));
    let home = fs.list(&guest::lookup(&*fs, "/home").unwrap()).unwrap();
    let o = home.iter().find(|e| e.name == "overwritten.bin").expect("overwritten file listed by its name");
    assert!(o.deleted);
    assert_eq!(o.confidence, Some(Confidence::Low), "its blocks belong to newer.bin now");
    eprintln!("ext4: {n} files byte-exact, 1 deleted file recovered, 1 overwritten one marked low");
}

/// A guest file over 4 GiB, on a partition that starts past 4 GiB of the disk: a sparse
/// 4.5 GiB file (data at its start, across the 4 GiB mark, and at its odd-sized end) copied in
/// by `mkfs.ext4 -d`, the file system placed at 5 GiB of an MBR disk, read from the raw disk
/// and from a monolithicSparse VMDK. The whole content's SHA-256 equals the original's, and the
/// holes are not read.
#[test]
fn guest_file_over_4_gib_past_4_gib_of_disk() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let len: u64 = (4608 << 20) + 12345;
    let mut rng = vmfs_rescue::forge::vmdk::SplitMix64::new(45, 45);
    let pieces: Vec<(u64, Vec<u8>)> = vec![
        (0, rng.bytes(1 << 20)),
        ((4 << 30) - (512 << 10), rng.bytes(1 << 20)),
        (len - 1_000_000, rng.bytes(1_000_000)),
    ];
    {
        let mut f = std::fs::File::create(src.join("big.bin")).unwrap();
        f.set_len(len).unwrap();
        for (at, d) in &pieces {
            f.seek(SeekFrom::Start(*at)).unwrap();
            f.write_all(d).unwrap();
        }
    }
    // The expected hash, from the pieces and zeros (the staged file is not read back).
    let mut h = Sha256::new();
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0u64;
    for (start, d) in &pieces {
        while at < *start {
            let n = (*start - at).min(zeros.len() as u64) as usize;
            h.update(&zeros[..n]);
            at += n as u64;
        }
        h.update(d);
        at += d.len() as u64;
    }
    assert_eq!(at, len);
    let want = hex(&h.finalize());
    std::fs::write(src.join("small.txt"), b"next to a big one\n").unwrap();

    let fs_img = dir.path().join("fs.img");
    std::fs::File::create(&fs_img).unwrap().set_len(256 << 20).unwrap();
    run(Command::new("mkfs.ext4").args(["-q", "-L", "BIG", "-d"]).arg(&src).arg(&fs_img));
    std::fs::remove_dir_all(&src).unwrap();
    // An MBR disk of 6 GiB whose one partition starts at 5 GiB.
    let raw = dir.path().join("disk.raw");
    crate::guest_exfat::write_mbr(&raw, 6 << 30, 5 << 30, 0x83);
    run(Command::new("dd").arg(format!("if={}", fs_img.display())).arg(format!("of={}", raw.display())).args([
        "bs=1M",
        "seek=5120",
        "conv=notrunc,sparse",
        "status=none",
    ]));
    std::fs::remove_file(&fs_img).unwrap();
    let vmdk = dir.path().join("disk.vmdk");
    convert(&raw, &vmdk, "monolithicSparse");

    let from_raw: Source = vmfs_rescue::block::open_path(&raw).unwrap();
    let from_vmdk: Source = Arc::new(vdisk::open(&LocalFiles, &vdisk::files::local_path(&vmdk)).unwrap());
    for disk in [from_raw, from_vmdk] {
        let g = guest::open_disk(&disk).unwrap();
        assert_eq!(g.volumes.len(), 1);
        assert_eq!(g.volumes[0].start, 5 << 30);
        let fs = guest::open_fs(&g.volumes[0].source).unwrap();
        let e = guest::lookup(&*fs, "/big.bin").unwrap();
        assert_eq!(e.size, len);
        let f = fs.open(&e, None).unwrap();
        let data: u64 = f.data_ranges(0..f.len()).iter().map(|r| r.end - r.start).sum();
        assert!(data < 4 << 20, "{}: holes are skipped ({data} data bytes)", disk.name());
        assert_eq!(sha(&*f), want, "{}", disk.name());
        let small = guest::lookup(&*fs, "/small.txt").unwrap();
        let mut b = vec![0u8; small.size as usize];
        fs.open(&small, None).unwrap().read_at(0, &mut b).unwrap();
        assert_eq!(b, b"next to a big one\n");
    }
}

/// ext4 with meta_bg (descriptors in each meta group's first group, as big or resized volumes
/// have them): 1 KiB blocks, 1024 blocks and 32 inodes per group, so 600 files reach inode
/// tables whose descriptors live past the first meta group. Every file byte-exact.
#[test]
fn guest_ext4_meta_bg() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("many")).unwrap();
    let mut rng = vmfs_rescue::forge::vmdk::SplitMix64::new(16, 16);
    let mut want: Vec<(String, String)> = Vec::new();
    for i in 0..600 {
        let data = rng.bytes(100 + i * 37);
        std::fs::write(src.join(format!("many/f{i:03}")), &data).unwrap();
        want.push((format!("/many/f{i:03}"), hex(&Sha256::digest(&data))));
    }
    let big = rng.bytes(5 << 20);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    want.push(("/big.bin".into(), hex(&Sha256::digest(&big))));
    let img = dir.path().join("meta.img");
    std::fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-b", "1024", "-g", "1024", "-N", "2048", "-O", "meta_bg,^resize_inode,64bit", "-d"])
        .arg(&src)
        .arg(&img));
    let inode = inode_of(&img, "/many/f599");
    assert!(inode > 16 * 32, "f599 is in a group of a later meta group (inode {inode})");
    let disk: Source = vmfs_rescue::block::open_path(&img).unwrap();
    let fs = guest::open_fs(&disk).unwrap();
    let n = check_files(&*fs, want.iter().map(|(p, s)| (p.as_str(), s.as_str())));
    assert_eq!(n, 601);
}

/// The inode number of `path` in the ext image, by debugfs.
fn inode_of(img: &Path, path: &str) -> u64 {
    let o = run(Command::new("debugfs").args(["-R", &format!("stat {path}")]).arg(img));
    let stat = String::from_utf8_lossy(&o.stdout);
    let n = stat.split("Inode: ").nth(1).and_then(|s| s.split_whitespace().next());
    n.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("debugfs stat {path}: {stat}"))
}
