//! Damaged volumes: a clear error or a partial result naming the damage, never a panic or hang.
//! Each test forges its damage on a copy of a real ESXi volume from the corpus.

use crate::util::{SourceGuard, corpus_image, hex};
use crate::vmfs::bin;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, FaultySource, ImageFile, Source, Tolerant};
use vmfs_rescue::datastore;
use vmfs_rescue::vmfs::{ExtentKind, VmfsFile};

/// Volume byte 0 of the corpus partitions (after the LVM header area).
const DATA_OFFSET: u64 = 0x110_0000;

fn copy_of(label: &str, dir: &Path) -> Option<PathBuf> {
    let src = corpus_image(&format!("vmfs/dissect.vmfs-3.13/vmfs/{label}.bin.gz"))?;
    let dst = dir.join(format!("{label}.bin"));
    assert!(std::process::Command::new("cp").arg("--sparse=always").arg(&src).arg(&dst).status().unwrap().success());
    Some(dst)
}

fn patch(img: &Path, off: u64, bytes: &[u8]) {
    std::fs::OpenOptions::new().write(true).open(img).unwrap().write_all_at(bytes, off).unwrap();
}

fn run(args: &[&str], img: &Path) -> Output {
    let mut c = bin();
    c.arg(args[0]).arg(img).args(&args[1..]);
    let out = c.output().unwrap();
    assert_ne!(out.status.code(), Some(101), "panic: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.code().is_some(), "killed by a signal");
    out
}

fn fs_of(img: &Path) -> Arc<vmfs_rescue::vmfs::Vmfs> {
    let srcs = datastore::open_sources(&[img.to_path_buf()]).unwrap();
    let (stores, _) = datastore::find(&srcs);
    stores.into_iter().find_map(|d| d.fs.ok()).unwrap()
}

#[test]
fn zeroed_fs_descriptor_is_named_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let Some(img) = copy_of("vmfs5", dir.path()) else { return };
    patch(&img, DATA_OFFSET + 0x20_0000, &[0u8; 0x200]);
    let out = run(&["ls"], &img);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FS3_Descriptor at volume offset 0x200000") && err.contains("bad magic 0x00000000"), "{err}");
    // The volume itself is still found and described.
    let out = run(&["volumes", "--json"], &img);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["fs"]["error"].as_str().unwrap().contains("FS3_Descriptor"));
    assert_eq!(v["size"], 2147483648u64);
}

#[test]
fn truncated_image_gives_partial_results_and_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(img) = copy_of("vmfs5", dir.path()) else { return };
    let fs = fs_of(&img);
    // Cut the image in the middle of /bigger's data.
    let fd = fs.lookup("/bigger").unwrap();
    let file = VmfsFile::new(Arc::clone(&fs), fd, "/bigger");
    let ExtentKind::Data { vol_off } = file.extents(0..1).first().unwrap().kind else { panic!() };
    let cut = DATA_OFFSET + vol_off + 64 * (1 << 20);
    drop(file);
    drop(fs);
    std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len(cut).unwrap();
    let out = run(
        &["extract", "--to", dir.path().join("out").to_str().unwrap(), "--path", "/bigger", "--path", "/big"],
        &img,
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let m: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/manifest.json")).unwrap()).unwrap();
    let bigger = m.iter().find(|e| e["path"] == "/bigger").unwrap();
    let unreadable = bigger["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0][0], 64 << 20, "the damage starts where the image ends");
    assert_eq!(unreadable[0][1], 64 << 20);
    let big = m.iter().find(|e| e["path"] == "/big").unwrap();
    assert_eq!(big["unreadable"], serde_json::json!([]));
    assert_eq!(big["sha256"], "5053579a1aa6aa9c5be1e571efd58862f18bb57acd4625d7ad442a050eb8d0f9");
}

#[test]
fn directory_cycle_ends_the_branch_not_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let Some(img) = copy_of("vmfs5", dir.path()) else { return };
    let fs = fs_of(&img);
    // Point the first record of /collision (a 140-byte FS3_DirEntry) back at the root directory.
    let fd = fs.lookup("/collision").unwrap();
    let file = VmfsFile::new(Arc::clone(&fs), fd, "/collision");
    let ExtentKind::Data { vol_off } = file.extents(0..1).first().unwrap().kind else { panic!() };
    let mut rec = vec![0u8; 0x8c];
    rec[0..4].copy_from_slice(&2u32.to_le_bytes());
    rec[4..8].copy_from_slice(&4u32.to_le_bytes());
    rec[12..16].copy_from_slice(b"loop");
    patch(&img, DATA_OFFSET + vol_off + 2 * 0x8c, &rec);
    let out = run(&["ls", "-R", "--json"], &img);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("directory cycle through FD 0x4"), "{text}");
    assert!(text.contains("\"/directory/file99\""), "the rest of the tree is still listed");
}

#[test]
fn absurd_sizes_and_self_pointing_pointer_blocks_are_damage_not_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let Some(img) = copy_of("vmfs5", dir.path()) else { return };
    let fs = fs_of(&img);
    let geo = fs.geo.clone();
    // /bigger claims to be 16 EiB long.
    let bigger = fs.lookup("/bigger").unwrap();
    patch(&img, DATA_OFFSET + bigger.vol_offset() + geo.meta_off as u64 + 0x14, &u64::MAX.to_le_bytes());
    // The second-level pointer block of large-flat.vmdk points at itself.
    let large = fs.lookup("/large-flat.vmdk").unwrap();
    let top = large.pointers(&geo)[0];
    let l1 = fs.pointer_block(top, 0).unwrap();
    let l2_raw = l1[117];
    let l2_vol = fs.resource_volume_offset(l2_raw).unwrap();
    patch(&img, DATA_OFFSET + l2_vol + 4, &(l2_raw as u32).to_le_bytes());
    drop(fs);

    let out = run(&["ls", "-R", "--json"], &img);
    let listing: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let b = listing.iter().find(|e| e["path"] == "/bigger").unwrap();
    assert_eq!(b["size"], u64::MAX);
    assert_eq!(b["allocated"], 128u64 << 20, "what the pointers address is still there");

    let out = run(&["cat", "--path", "/bigger"], &img);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fileLength"), "{}", String::from_utf8_lossy(&out.stderr));

    let fs = fs_of(&img);
    let fd = fs.lookup("/large-flat.vmdk").unwrap();
    let file = VmfsFile::new(Arc::clone(&fs), fd, "/large-flat.vmdk");
    let at = 117u64 << 30;
    let mut buf = vec![0u8; 2 << 20];
    file.read_at(at, &mut buf).unwrap();
    assert_eq!(&buf[..512], &[0x42; 512][..], "the intact pointer still reads");
    assert!(buf[1 << 20..].iter().all(|&x| x == 0));
    assert_eq!(
        file.unreadable(at..at + (2 << 20)),
        vec![at + (1 << 20)..at + (2 << 20)],
        "the self-pointer is reported"
    );
}

#[test]
fn bad_sectors_are_zero_filled_and_reported_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let Some(img) = copy_of("vmfs6", dir.path()) else { return };
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let fs = fs_of(&img);
    let fd = fs.lookup("/bigger").unwrap();
    let file = VmfsFile::new(Arc::clone(&fs), fd, "/bigger");
    // Bad sectors: 3 sectors in /bigger's 5th MiB, as device offsets.
    let e = file.extents(4 << 20..5 << 20)[0];
    let ExtentKind::Data { vol_off } = e.kind else { panic!() };
    let bad_dev = DATA_OFFSET + vol_off + 4096..DATA_OFFSET + vol_off + 4096 + 1536;
    let mut clean = vec![0u8; 128 << 20];
    file.read_at(0, &mut clean).unwrap();
    drop(file);
    drop(fs);

    let raw = FaultySource::new(ImageFile::open(&img).unwrap(), vec![bad_dev]);
    let src: Source = Arc::new(Tolerant::new(raw));
    let (stores, _) = datastore::find(&[src]);
    let fs = stores.into_iter().find_map(|d| d.fs.ok()).unwrap();
    let file = VmfsFile::new(Arc::clone(&fs), fs.lookup("/bigger").unwrap(), "/bigger");
    let mut got = vec![0u8; 128 << 20];
    file.read_at(0, &mut got).unwrap();
    let bad = (4 << 20) + 4096..(4 << 20) + 4096 + 1536;
    assert_eq!(file.unreadable(0..128 << 20), vec![bad.clone()]);
    assert!(got[bad.start as usize..bad.end as usize].iter().all(|&x| x == 0));
    got[bad.start as usize..bad.end as usize].copy_from_slice(&clean[bad.start as usize..bad.end as usize]);
    assert_eq!(hex(&Sha256::digest(&got)), hex(&Sha256::digest(&clean)), "every other byte is intact");
    // Other files never touched the bad range.
    let big = VmfsFile::new(Arc::clone(&fs), fs.lookup("/big").unwrap(), "/big");
    assert!(big.unreadable(0..big.len()).is_empty());
}

#[test]
fn sources_that_are_not_disks_give_clear_errors_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.bin");
    let bytes: Vec<u8> = (0..4u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&garbage, &bytes).unwrap();
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    for (src, code, says) in [
        (dir.path().to_path_buf(), 2, "is a directory"),
        (dir.path().join("missing.bin"), 2, "No such file"),
        (garbage, 1, "no VMFS volume found"),
        (empty, 1, "no VMFS volume found"),
    ] {
        let out = run(&["ls"], &src);
        assert_eq!(out.status.code(), Some(code), "{}", src.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.contains(&*src.to_string_lossy()), "{err}");
    }
}
