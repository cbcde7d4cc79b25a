//! NTFS guests (issue 9): volumes made by `mkntfs` and filled through an `ntfs-3g` FUSE mount
//! (nested folders, long and non-ASCII names, hundreds of files, a sparse file, compressed
//! files, an alternate data stream, a fragmented file, a file removed with `rm`), read from the
//! raw volume, qemu-img VMDK variants and an MBR disk with the volume at 1 MiB; a zeroed boot
//! sector (backup used) and random damage; the CLI's `guest ls -R --json` and `guest extract`.
//!
//! The FUSE mount needs root and /dev/fuse: CI runs as root, so a missing FUSE fails the test.

use crate::util::hex;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, MemSource, Source, Tolerant};
use vmfs_rescue::extract::{CopyOptions, Sink, copy};
use vmfs_rescue::guest::{self, Confidence, GuestFs, Kind};
use vmfs_rescue::vdisk::{self, LocalFiles};

fn run(cmd: &mut Command) -> std::process::Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

fn sha(src: &dyn BlockSource) -> String {
    copy(src, Sink::Null, CopyOptions::default()).unwrap().sha256.unwrap()
}

fn sum(d: &[u8]) -> String {
    hex(&Sha256::digest(d))
}

/// Unmounts the FUSE mount when dropped (also when the test panics).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// What was written to the NTFS volume.
pub struct NtfsImage {
    /// The raw volume.
    pub img: PathBuf,
    /// Live files: guest path and content.
    pub files: Vec<(String, Vec<u8>)>,
    /// The file removed with `rm`: path and content.
    pub deleted: (String, Vec<u8>),
    /// The file with an alternate data stream, the stream's name and content.
    pub ads: (String, String, Vec<u8>),
    /// Compressed files (paths).
    pub compressed: Vec<String>,
    /// The sparse file's path.
    pub sparse: String,
}

/// Set an extended attribute through ntfs-3g (python's `os.setxattr`; no `setfattr` here).
/// `scratch` is a file outside the mount to pass the value through.
fn setxattr(path: &Path, name: &str, value: &[u8], scratch: &Path) {
    std::fs::write(scratch, value).unwrap();
    run(Command::new("python3")
        .args(["-c", "import os,sys; os.setxattr(sys.argv[1], sys.argv[2], open(sys.argv[3],'rb').read())"])
        .arg(path)
        .arg(name)
        .arg(scratch));
}

/// Make an NTFS volume of `size` bytes in `dir` and fill it through ntfs-3g. `many` small
/// files go into one folder (hundreds: the index spills into `$INDEX_ALLOCATION` and the MFT
/// grows). `fragment`: fill the volume and make a fragmented file in `/frag`.
pub fn ntfs_image(dir: &Path, size: u64, many: usize, fragment: bool) -> NtfsImage {
    assert!(
        Path::new("/dev/fuse").exists(),
        "NTFS guest tests need FUSE (/dev/fuse) and root to mount the volume with ntfs-3g; CI provides both"
    );
    std::fs::create_dir_all(dir).unwrap();
    let img = dir.join("ntfs.img");
    std::fs::File::create(&img).unwrap().set_len(size).unwrap();
    run(Command::new("mkntfs").args(["-F", "-Q", "-q", "-L", "NTFSG"]).arg(&img));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let o = Command::new("ntfs-3g")
        .args(["-o", "streams_interface=xattr,compression"])
        .arg(&img)
        .arg(&mnt)
        .output()
        .expect("ntfs-3g is installed");
    assert!(o.status.success(), "ntfs-3g mount failed (FUSE and root needed): {}", String::from_utf8_lossy(&o.stderr));
    let guard = Mount(mnt.clone());
    let scratch = dir.join("xattr-value");
    let mut rng = vmfs_rescue::forge::vmdk::SplitMix64::new(11, 3);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let put = |rel: &str, data: Vec<u8>, files: &mut Vec<(String, Vec<u8>)>| {
        let p = mnt.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &data).unwrap();
        files.push((format!("/{rel}"), data));
    };
    let deep = "Dokumente/Projekte 2024/Übersicht – ein sehr langer Ordnername mit Leerzeichen";
    put(&format!("{deep}/日本語のファイル名.txt"), "こんにちは\n".repeat(700).into_bytes(), &mut files);
    put(&format!("{deep}/Zusammenfassung für den Vorstand.docx"), rng.bytes(1_234_567), &mut files);
    put("README", b"plain\n".to_vec(), &mut files);
    put("empty", Vec::new(), &mut files);
    put("tiny resident.txt", b"lives in the MFT record".to_vec(), &mut files);
    put("a:b?.txt", b"windows cannot hold this name".to_vec(), &mut files);
    put("con", b"a reserved name".to_vec(), &mut files);
    for i in 0..many {
        put(&format!("many/file number {i:04} with a long name.dat"), rng.bytes(100 + (i * 997) % 9000), &mut files);
    }
    // Sparse: 8 MiB with 70000 bytes of data at 5 MiB.
    let mut sparse = vec![0u8; 8 << 20];
    let mid = rng.bytes(70_000);
    sparse[5 << 20..(5 << 20) + mid.len()].copy_from_slice(&mid);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(mnt.join("sparse.bin")).unwrap();
        f.set_len(8 << 20).unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(&mid).unwrap();
    }
    files.push(("/sparse.bin".into(), sparse));
    // Compressed: the directory's compressed attribute (0x800) is inherited by new files.
    std::fs::create_dir_all(mnt.join("komprimiert")).unwrap();
    setxattr(&mnt.join("komprimiert"), "system.ntfs_attrib_be", &0x800u32.to_be_bytes(), &scratch);
    let mut compressed = Vec::new();
    let text: Vec<u8> = (0..40_000).flat_map(|i| format!("line {i}: the quick brown fox\n").into_bytes()).collect();
    let mut mixed = rng.bytes(100_000);
    mixed.extend(vec![0u8; 200_000]);
    mixed.extend(b"abc".repeat(50_000));
    mixed.extend(rng.bytes(33_333));
    for (n, d) in
        [("log.txt", text), ("random.bin", rng.bytes(300_000)), ("mixed.bin", mixed), ("small.txt", b"x".repeat(5000))]
    {
        put(&format!("komprimiert/{n}"), d, &mut files);
        compressed.push(format!("/komprimiert/{n}"));
    }
    // An alternate data stream.
    let ads_data = rng.bytes(20_000);
    put("with stream.txt", b"main stream".to_vec(), &mut files);
    setxattr(&mnt.join("with stream.txt"), "user.Zone.Identifier", &ads_data, &scratch);
    if fragment {
        // Fragmentation: fill the volume with 1 MiB files, remove every other, then write a
        // file larger than any gap (ntfs-3g appends after its last allocation while it can).
        std::fs::create_dir_all(mnt.join("frag")).unwrap();
        let mut n = 0;
        while n < 1000 {
            let p = mnt.join(format!("frag/filler {n:03}"));
            if std::fs::write(&p, rng.bytes(1 << 20)).is_err() {
                let _ = std::fs::remove_file(&p);
                break;
            }
            n += 1;
        }
        for i in (0..n).step_by(2) {
            std::fs::remove_file(mnt.join(format!("frag/filler {i:03}"))).unwrap();
        }
        for i in (1..n).step_by(2) {
            let p = format!("frag/filler {i:03}");
            files.push((format!("/{p}"), std::fs::read(mnt.join(&p)).unwrap()));
        }
        put("frag/fragmented.bin", rng.bytes(3_500_000), &mut files);
    }
    // Removed with rm: its record and clusters are freed, the bytes stay.
    let gone = rng.bytes(300_000);
    std::fs::write(mnt.join("Dokumente/gone.bin"), &gone).unwrap();
    std::fs::remove_file(mnt.join("Dokumente/gone.bin")).unwrap();
    drop(guard);
    NtfsImage {
        img,
        files,
        deleted: ("/Dokumente/gone.bin".into(), gone),
        ads: ("/with stream.txt".into(), "Zone.Identifier".into(), ads_data),
        compressed,
        sparse: "/sparse.bin".into(),
    }
}

fn convert(raw: &Path, out: &Path, subformat: &str) {
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "vmdk", "-o", &format!("subformat={subformat}")])
        .arg(raw)
        .arg(out));
}

/// A raw disk with an MBR and the volume as partition 1 at 1 MiB (type 0x07).
fn mbr_disk(vol: &Path, out: &Path) {
    let v = std::fs::read(vol).unwrap();
    let sectors = (v.len() / 512) as u32;
    let mut d = vec![0u8; 1 << 20];
    let e = &mut d[446..462];
    e[4] = 0x07;
    e[8..12].copy_from_slice(&2048u32.to_le_bytes());
    e[12..16].copy_from_slice(&sectors.to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xAA;
    d.extend_from_slice(&v);
    d.resize(d.len() + (1 << 20), 0);
    std::fs::write(out, d).unwrap();
}

/// Every file byte-exact, the deleted one listed and recovered, the stream listed and
/// byte-exact, the sparse file's hole skipped. Returns the count of files checked.
fn check_ntfs(what: &str, fs: &dyn GuestFs, t: &NtfsImage) -> usize {
    assert_eq!((fs.fs_type().as_str(), fs.label().as_deref()), ("NTFS", Some("NTFSG")), "{what}");
    for (p, d) in &t.files {
        let e = guest::lookup(fs, p).unwrap_or_else(|e| panic!("{what}: {p}: {e}"));
        assert!(!e.deleted && e.kind == Kind::File && e.size == d.len() as u64, "{what}: {p}: {e:?}");
        let src = fs.open(&e, None).unwrap();
        assert_eq!(sha(&*src), sum(d), "{what}: {p}");
        assert!(src.unreadable(0..src.len()).is_empty(), "{what}: {p}");
    }
    // DOS 8.3 names are hidden behind the long ones.
    let many = fs.list(&guest::lookup(fs, "/many").unwrap()).unwrap();
    assert!(many.iter().all(|e| !e.name.contains('~')), "{what}: a DOS name is listed");
    // The sparse file: the hole is not data.
    let e = guest::lookup(fs, &t.sparse).unwrap();
    let f = fs.open(&e, None).unwrap();
    let data: u64 = f.data_ranges(0..f.len()).iter().map(|r| r.end - r.start).sum();
    assert!(data <= 256 << 10, "{what}: the sparse file's hole is skipped: {data} data bytes");
    // The stream.
    let (p, s, d) = &t.ads;
    let e = guest::lookup(fs, p).unwrap();
    assert_eq!(e.streams, vec![s.clone()], "{what}");
    assert_eq!(sha(&*fs.open(&e, Some(s)).unwrap()), sum(d), "{what}: stream");
    assert!(fs.open(&e, Some("nope")).is_err());
    // The deleted file, under its folder, its clusters still free.
    let (p, d) = &t.deleted;
    let (parent, name) = p.rsplit_once('/').unwrap();
    let list = fs.list(&guest::lookup(fs, parent).unwrap()).unwrap();
    let e = list.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{what}: {p} not listed"));
    assert!(e.deleted && e.size == d.len() as u64, "{what}: {e:?}");
    assert_eq!(e.confidence, Some(Confidence::High), "{what}");
    assert_eq!(sha(&*fs.open(e, None).unwrap()), sum(d), "{what}: deleted file");
    t.files.len()
}

/// The volume raw (partitionless), as monolithicSparse and streamOptimized VMDKs, and inside
/// an MBR disk; compressed files really compressed; the deleted filler files listed.
#[test]
fn guest_ntfs_raw_vmdk_and_partitioned() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let t = ntfs_image(dir.path(), 96 << 20, 400, true);
    let made = started.elapsed();
    let sparse = dir.path().join("sparse.vmdk");
    let stream = dir.path().join("stream.vmdk");
    let mbr = dir.path().join("mbr.img");
    convert(&t.img, &sparse, "monolithicSparse");
    convert(&t.img, &stream, "streamOptimized");
    mbr_disk(&t.img, &mbr);
    let open_v = |p: &Path| -> Source { Arc::new(vdisk::open(&LocalFiles, &vdisk::files::local_path(p)).unwrap()) };
    let raw: Source = vmfs_rescue::block::open_path(&t.img).unwrap();
    let sources: Vec<(&str, Source)> = vec![
        ("raw", raw.clone()),
        ("monolithicSparse", open_v(&sparse)),
        ("streamOptimized", open_v(&stream)),
        ("mbr", vmfs_rescue::block::open_path(&mbr).unwrap()),
    ];
    for (what, src) in sources {
        let g = guest::open_disk(&src).unwrap();
        assert_eq!(g.volumes.len(), 1, "{what}");
        assert_eq!(g.table.is_some(), what == "mbr", "{what}");
        let fs = guest::open_fs(&g.volumes[0].source).unwrap();
        let n = check_ntfs(what, &*fs, &t);
        eprintln!("{what}: {n} NTFS files byte-exact, 1 deleted file and 1 stream");
    }
    // Compression really happened (the attribute's flag and compression unit), and the
    // fillers removed for fragmentation are listed as deleted.
    let fs = guest::ntfs::Ntfs::open(raw).unwrap();
    for p in &t.compressed {
        let e = guest::lookup(&fs, p).unwrap();
        assert!(fs.is_compressed(&e, None).unwrap(), "{p} is compressed");
    }
    let e = guest::lookup(&fs, "/frag/fragmented.bin").unwrap();
    let runs = fs.fragments(&e).unwrap();
    assert!(runs > 1, "the file took the fillers' gaps: {runs} runs");
    // The fillers removed for fragmentation: listed as deleted while ntfs-3g has not given
    // their MFT records to later files; their clusters went to the fragmented file.
    let frag = fs.list(&guest::lookup(&fs, "/frag").unwrap()).unwrap();
    let gone: Vec<_> = frag.iter().filter(|e| e.deleted).collect();
    assert!(gone.iter().all(|e| e.name.starts_with("filler")), "{gone:?}");
    eprintln!(
        "{} deleted fillers listed ({} low confidence); volume made in {made:?}, all checks in {:?}",
        gone.len(),
        gone.iter().filter(|e| e.confidence == Some(Confidence::Low)).count(),
        started.elapsed()
    );
}

/// A zeroed primary boot sector: the backup at the volume's end opens the same files;
/// random damage to the boot sector and the MFT gives errors or output, never a panic.
#[test]
fn guest_ntfs_backup_boot_sector() {
    let dir = tempfile::tempdir().unwrap();
    let t = ntfs_image(dir.path(), 64 << 20, 40, false);
    let mut b = std::fs::read(&t.img).unwrap();
    b[..512].fill(0);
    let src: Source = Arc::new(Tolerant::new(MemSource::new("zeroed-boot", b)));
    let g = guest::open_disk(&src).unwrap();
    let fs = guest::open_fs(&g.volumes[0].source).unwrap();
    check_ntfs("zeroed boot sector", &*fs, &t);
}

/// `guest ls -R --json` and `guest extract` on the NTFS disk: every file byte-exact, names
/// with `:` and reserved names sanitized on output, the manifest keeping the originals; the
/// alternate data stream written beside its file as `NAME@STREAM`, byte-exact.
#[test]
fn guest_ntfs_cli() {
    let dir = tempfile::tempdir().unwrap();
    let t = ntfs_image(dir.path(), 64 << 20, 30, false);
    let disk = dir.path().join("disk.vmdk");
    let mbr = dir.path().join("mbr.img");
    mbr_disk(&t.img, &mbr);
    convert(&mbr, &disk, "monolithicSparse");
    let bin = env!("CARGO_BIN_EXE_vmfs-rescue");
    let ls = run(Command::new(bin).args(["guest", "ls", "-R", "--json", "--part", "1"]).arg(&disk));
    let text = String::from_utf8_lossy(&ls.stdout);
    // One JSON object a line.
    assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{text}");
    for (p, _) in &t.files {
        assert!(text.contains(&serde_json::to_string(p).unwrap()), "{p} listed: {text}");
    }
    assert!(text.contains("Zone.Identifier"), "the stream is listed");
    let out = dir.path().join("out");
    let o = Command::new(bin).args(["guest", "extract", "--part", "1", "--to"]).arg(&out).arg(&disk).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    for (p, d) in &t.files {
        let e = m.iter().find(|e| e["path"] == p.as_str()).unwrap_or_else(|| panic!("{p} not in manifest"));
        assert_eq!(e["sha256"], sum(d).as_str(), "{p}");
        let file = out.join(e["output"].as_str().unwrap());
        assert_eq!(crate::util::sha256_file(&file), sum(d), "{p}");
    }
    let out_of = |p: &str| m.iter().find(|e| e["path"] == p).unwrap()["output"].as_str().unwrap().to_string();
    assert!(out_of("/a:b?.txt").ends_with("a_b_.txt"), "{}", out_of("/a:b?.txt"));
    assert!(out_of("/con").ends_with("_con"), "{}", out_of("/con"));
    assert!(m.iter().any(|e| e["deleted"] == true && e["name"] == "gone.bin"));
    // The alternate data stream: a sibling file NAME@STREAM with its own manifest entry.
    let (p, s, d) = &t.ads;
    let e = m
        .iter()
        .find(|e| e["path"] == p.as_str() && e["stream"] == s.as_str())
        .unwrap_or_else(|| panic!("{p}:{s} not in manifest"));
    assert_eq!(e["output"], "with stream.txt@Zone.Identifier");
    assert_eq!(e["name"], "with stream.txt");
    assert_eq!(e["size"], d.len());
    assert_eq!(e["sha256"], sum(d).as_str(), "stream hash in the manifest");
    assert_eq!(crate::util::sha256_file(&out.join("with stream.txt@Zone.Identifier")), sum(d), "stream file");
    // The main stream is still the file itself.
    assert_eq!(std::fs::read(out.join("with stream.txt")).unwrap(), b"main stream");
}
