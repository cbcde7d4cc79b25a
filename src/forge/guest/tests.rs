//! Each file system is read back by its own tools (debugfs and e2fsck, mtools, ntfscat) and
//! every file's SHA-256 compared; the table is read by our own partition parser.

use super::*;
use crate::container::partition::{PartKind, Scheme, read_partition_table};
use std::process::Command;

fn tools_present(names: &[&str]) -> bool {
    for n in names {
        if let Err(e) = find_tool(n, "?") {
            eprintln!("skipped: {e}");
            return false;
        }
    }
    true
}

fn sha(b: &[u8]) -> String {
    crate::extract::hex(&Sha256::digest(b))
}

fn tool_out(name: &str, args: &[&str]) -> Vec<u8> {
    let exe = find_tool(name, "?").unwrap();
    let o = Command::new(exe).args(args).env("MTOOLS_SKIP_CHECK", "1").output().unwrap();
    assert!(o.status.success(), "{name} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// Build, check the table and the FS signature at the partition offset, extract the partition.
fn build(fs: FsKind, table: TableKind, dir: &Path) -> (GuestDisk, PathBuf) {
    let spec = GuestSpec { name: "guest01".into(), size: 64 << 20, table, fs, seed: 77 };
    let disk = build_guest_disk(dir, &spec).unwrap();
    assert_eq!(disk.files, build_guest_disk(&dir.join("again").tap_mkdir(), &spec).unwrap().files);
    let src = disk.open().unwrap();
    assert_eq!(src.len(), 64 << 20);
    let t = read_partition_table(src.as_ref()).unwrap().expect("a partition table");
    assert!(!t.damaged, "{:?}", t.notes);
    assert_eq!(t.partitions.len(), 1);
    let p = &t.partitions[0];
    assert_eq!((p.start, p.len), (disk.partition_offset, disk.partition_len));
    match (table, &p.kind) {
        (TableKind::Mbr, PartKind::Mbr { type_byte, .. }) => {
            assert_eq!(t.scheme, Scheme::Mbr);
            assert_eq!(*type_byte, [0x83, 0x0C, 0x07][fs as usize]);
        }
        (TableKind::Gpt, PartKind::Gpt { type_guid, .. }) => {
            assert_eq!(t.scheme, Scheme::Gpt { sector_size: 512, backup: false });
            let want = if fs == FsKind::Ext4 { GPT_TYPE_LINUX_DATA } else { GPT_TYPE_MS_BASIC_DATA };
            assert_eq!(*type_guid, want);
        }
        other => panic!("wrong table kind {other:?}"),
    }
    // An independent GPT check when gdisk is installed (CRCs, backup header, overlaps).
    if table == TableKind::Gpt && find_tool("sgdisk", "gdisk").is_ok() {
        let v = String::from_utf8(tool_out("sgdisk", &["-v", disk.image.to_str().unwrap()])).unwrap();
        assert!(v.contains("No problems found"), "{v}");
    }
    let mut boot = vec![0u8; 2048];
    src.read_at(disk.partition_offset, &mut boot).unwrap();
    match fs {
        FsKind::Ext4 => assert_eq!(&boot[1080..1082], &[0x53, 0xEF]),
        FsKind::Fat32 => assert_eq!(&boot[0x52..0x5A], b"FAT32   "),
        FsKind::Ntfs => assert_eq!(&boot[3..11], b"NTFS    "),
    }
    let part = dir.join("part.bin");
    let mut bytes = vec![0u8; disk.partition_len as usize];
    src.read_at(disk.partition_offset, &mut bytes).unwrap();
    std::fs::write(&part, bytes).unwrap();
    (disk, part)
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn ext4_gpt_read_back_by_debugfs() {
    if !tools_present(&["mke2fs", "debugfs", "e2fsck"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (disk, part) = build(FsKind::Ext4, TableKind::Gpt, dir.path());
    let p = part.to_str().unwrap();
    let fsck = Command::new(find_tool("e2fsck", "e2fsprogs").unwrap()).args(["-fn", p]).output().unwrap();
    assert!(fsck.status.success(), "e2fsck: {}", String::from_utf8_lossy(&fsck.stdout));
    assert!(disk.files.len() >= 8);
    for f in &disk.files {
        let got = tool_out("debugfs", &["-R", &format!("cat \"{}\"", f.path), p]);
        assert_eq!((f.size, sha(&got)), (got.len() as u64, f.sha256.clone()), "{}", f.path);
    }
    // The sparse file keeps its hole: fewer blocks than its size needs.
    let stat = String::from_utf8(tool_out("debugfs", &["-R", "stat /var/lib/vm/disk-cache.img", p])).unwrap();
    assert!(stat.contains("(0-15):") && !stat.contains("(0-255)"), "{stat}");
}

#[test]
fn fat32_mbr_read_back_by_mtools() {
    if !tools_present(&["mkfs.fat", "mcopy", "mmd"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (disk, _) = build(FsKind::Fat32, TableKind::Mbr, dir.path());
    let img = format!("{}@@{}", disk.image.display(), disk.partition_offset);
    for f in &disk.files {
        let got = tool_out("mtype", &["-i", &img, &format!("::{}", f.path)]);
        assert_eq!(sha(&got), f.sha256, "{}", f.path);
    }
    assert!(disk.files.iter().any(|f| f.path.matches('/').count() > 2));
}

#[test]
fn ntfs_gpt_read_back_by_ntfscat() {
    if !tools_present(&["mkntfs", "ntfscp", "ntfscat"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (disk, part) = build(FsKind::Ntfs, TableKind::Gpt, dir.path());
    for f in &disk.files {
        let got = tool_out("ntfscat", &[part.to_str().unwrap(), &f.path]);
        assert_eq!(sha(&got), f.sha256, "{}", f.path);
    }
}

#[test]
fn bad_specs_are_layout_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = GuestSpec { name: "g".into(), size: (8 << 20) + 1, table: TableKind::Mbr, fs: FsKind::Ext4, seed: 1 };
    assert!(matches!(build_guest_disk(dir.path(), &spec), Err(ForgeError::Layout(_))));
    let spec = GuestSpec { name: "a/b".into(), size: 8 << 20, ..spec };
    assert!(matches!(build_guest_disk(dir.path(), &spec), Err(ForgeError::Layout(_))));
    assert!(matches!(find_tool("no-such-mkfs", "pkg"), Err(ForgeError::Tool { .. })));
}
