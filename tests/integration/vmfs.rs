//! The reader against the real ESXi-made corpus: every entry and every content hash must match
//! `vmfs/manifest.json` (made with dissect.vmfs, an independent reader).

use crate::util::{SourceGuard, hex, images, manifest};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::datastore;
use vmfs_rescue::vmfs::VmfsFile;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmfs-rescue"))
}

fn type_word(name: &str) -> &'static str {
    match name {
        "DIRECTORY" => "dir",
        "REGFILE" => "file",
        "SYMLINK" => "symlink",
        "RDM" => "rdm",
        "SYSFILE" => "sysfile",
        other => panic!("unknown type {other}"),
    }
}

fn ls_json(sources: &[PathBuf]) -> HashMap<String, Value> {
    let out = bin().args(["ls", "-R", "--json"]).args(sources).output().unwrap();
    assert!(out.status.success(), "ls failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["path"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn check_listing(label: &str, entry: &Value, listed: &HashMap<String, Value>) {
    let files = entry["fs_files"].as_array().unwrap();
    assert_eq!(listed.len(), files.len(), "{label}: entry count");
    for f in files {
        let path = f["path"].as_str().unwrap();
        let got = listed.get(path).unwrap_or_else(|| panic!("{label}: {path} not listed"));
        assert_eq!(got["type"], type_word(f["type_name"].as_str().unwrap()), "{label}: {path} type");
        assert_eq!(got["size"], f["size"], "{label}: {path} size");
        let mode = u32::from_str_radix(f["mode"].as_str().unwrap().trim_start_matches("0o"), 8).unwrap();
        assert_eq!(got["mode"], mode, "{label}: {path} mode");
        assert_eq!(got["mtime"], f["mtime"], "{label}: {path} mtime");
        assert_eq!(got["fd_addr"], f["fd_addr"], "{label}: {path} fd address");
        assert_eq!(got["zla"], f["zla"], "{label}: {path} zla");
        if let Some(t) = f.get("symlink_target") {
            assert_eq!(&got["symlink_target"], t, "{label}: {path} symlink target");
        }
    }
}

/// Content check through the library: full hashes, and block-by-block for huge sparse files.
fn check_content(label: &str, entry: &Value, sources: &[PathBuf]) {
    let srcs = datastore::open_sources(sources).unwrap();
    let (stores, _) = datastore::find(&srcs);
    let fs = stores.iter().find_map(|d| d.fs.as_ref().ok()).unwrap_or_else(|| panic!("{label}: no file system"));
    for f in entry["fs_files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        if !matches!(f["type_name"].as_str(), Some("REGFILE" | "SYSFILE")) || f.get("entries").is_some() {
            continue;
        }
        let fd = fs.lookup(path).unwrap();
        let file = VmfsFile::new(Arc::clone(fs), fd, path);
        if let Some(sha) = f["sha256"].as_str() {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 8 << 20];
            let mut off = 0;
            while off < file.len() {
                let n = (file.len() - off).min(buf.len() as u64) as usize;
                file.read_at(off, &mut buf[..n]).unwrap();
                h.update(&buf[..n]);
                off += n as u64;
            }
            assert_eq!(hex(&h.finalize()), sha, "{label}: {path} content");
        } else {
            let blocks = f["allocated_sample"].as_array().unwrap();
            let count = f["allocated_blocks"].as_u64().unwrap();
            let mut block_len = 0;
            for b in blocks {
                let off = b["file_offset"].as_u64().unwrap();
                let len = b["length"].as_u64().unwrap();
                let mut buf = vec![0u8; len as usize];
                file.read_at(off, &mut buf).unwrap();
                assert_eq!(
                    hex(&Sha256::digest(&buf)),
                    b["sha256"].as_str().unwrap(),
                    "{label}: {path} block at {off:#x}"
                );
                block_len = len;
            }
            // The manifest lists a sample of the allocated blocks and their count; the last
            // block may be cut by the file size.
            let data: u64 = file.data_ranges(0..file.len()).iter().map(|r| r.end - r.start).sum();
            assert!(
                data > (count - 1) * block_len && data <= count * block_len,
                "{label}: {path}: {data} data bytes for {count} allocated blocks"
            );
            assert!(file.unreadable(0..file.len()).is_empty());
        }
    }
}

#[test]
fn every_corpus_volume_lists_and_reads_like_the_manifest() {
    let Some(m) = manifest() else { return };
    let mut checked = 0;
    for entry in m.iter().filter(|e| e["kind"] == "vmfs") {
        let imgs = images(entry);
        let label = entry["vmfs"]["label"].as_str().unwrap().to_string();
        let _guard = SourceGuard::new(&imgs);
        check_listing(&label, entry, &ls_json(&imgs));
        if imgs.len() > 1 {
            // Spanned volumes assemble from their parts in any order.
            let mut rev = imgs.clone();
            rev.reverse();
            check_listing(&format!("{label} (parts reversed)"), entry, &ls_json(&rev));
        }
        check_content(&label, entry, &imgs);
        checked += 1;
    }
    assert_eq!(checked, 13, "every VMFS image of the corpus was checked");
}

#[test]
fn extract_writes_sparse_files_and_a_manifest_that_matches() {
    let Some(m) = manifest() else { return };
    for label in ["vmfs5", "vmfs6"] {
        let entry = m.iter().find(|e| e["vmfs"]["label"] == label).unwrap();
        let imgs = images(entry);
        let _guard = SourceGuard::new(&imgs);
        let dir = tempfile::tempdir().unwrap();
        let out = bin()
            .arg("extract")
            .args(&imgs)
            .arg("--to")
            .arg(dir.path())
            .args(["--path", "/directory", "--path", "/bigger", "--path", "/small", "--path", "/normal-flat.vmdk"])
            .args(["--path", "/symlink", "--path", "/rdm-rdm.vmdk", "--path", "/collision"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{label}: extract failed: {}", String::from_utf8_lossy(&out.stderr));
        let written: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap()).unwrap();
        let expected: HashMap<&str, &Value> =
            entry["fs_files"].as_array().unwrap().iter().map(|f| (f["path"].as_str().unwrap(), f)).collect();
        let mut files = 0;
        for w in &written {
            let path = w["path"].as_str().unwrap();
            let exp = expected[path];
            assert_eq!(w["size"], exp["size"], "{label}: {path}");
            assert_eq!(w["unreadable"], serde_json::json!([]), "{label}: {path}");
            if w["type"] != "file" {
                continue;
            }
            files += 1;
            let on_disk = dir.path().join(w["output"].as_str().unwrap());
            let meta = std::fs::metadata(&on_disk).unwrap();
            assert_eq!(meta.len(), exp["size"].as_u64().unwrap(), "{label}: {path} written size");
            if let Some(sha) = exp["sha256"].as_str() {
                assert_eq!(w["sha256"], sha, "{label}: {path} manifest hash");
                assert_eq!(crate::util::sha256_file(&on_disk), sha, "{label}: {path} written content");
            } else {
                // 69 GiB thin file with one 1 MiB block: hashed per data range, written sparse.
                let ranges = w["data_ranges"].as_array().unwrap();
                let sample = &exp["allocated_sample"][0];
                assert_eq!(ranges.len(), 1);
                assert_eq!(ranges[0]["offset"], sample["file_offset"]);
                assert_eq!(ranges[0]["sha256"], sample["sha256"]);
                use std::os::unix::fs::MetadataExt;
                assert!(meta.blocks() * 512 < 64 << 20, "{label}: {path} is not sparse ({} blocks)", meta.blocks());
            }
        }
        assert_eq!(files, 100 + 19 + 3, "{label}: files extracted");
    }
}

#[test]
fn cat_streams_a_file() {
    let Some(m) = manifest() else { return };
    let entry = m.iter().find(|e| e["vmfs"]["label"] == "vmfs6").unwrap();
    let imgs = images(entry);
    let _guard = SourceGuard::new(&imgs);
    let out = bin().arg("cat").args(&imgs).args(["--path", "/big"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 1048577);
    assert_eq!(hex(&Sha256::digest(&out.stdout)), "5053579a1aa6aa9c5be1e571efd58862f18bb57acd4625d7ad442a050eb8d0f9");
}

#[test]
fn vmfs6_hash_table_finds_every_name_the_listing_shows() {
    use vmfs_rescue::vmfs::dirhash::hash_slot;
    let Some(m) = manifest() else { return };
    let mut names = 0;
    for entry in m.iter().filter(|e| e["kind"] == "vmfs" && e["vmfs"]["major"] == 24) {
        let imgs = images(entry);
        let srcs = datastore::open_sources(&imgs).unwrap();
        let (stores, _) = datastore::find(&srcs);
        let fs = stores.into_iter().find_map(|d| d.fs.ok()).unwrap();
        let root = fs.root().unwrap();
        let mut dirs = vec![(root.clone(), true)];
        fs.walk(&root, "/", true, &mut |item| {
            if let vmfs_rescue::vmfs::WalkItem::Entry { fd, .. } = item
                && fd.is_dir()
            {
                dirs.push((fd, false));
            }
        });
        for (dir, in_root) in dirs {
            for e in fs.read_dir(&dir).unwrap() {
                let found = fs.lookup_hashed(&dir, &e.name, in_root).unwrap();
                assert_eq!(
                    found.map(|f| f.desc_addr),
                    Some(e.addr),
                    "{}: {:?}",
                    entry["vmfs"]["label"],
                    e.name_lossy()
                );
                names += 1;
            }
        }
    }
    assert!(names > 0);
    // The corpus's /collision names were made to share one hash-table slot (link groups).
    let Some(entry) = m.iter().find(|e| e["vmfs"]["label"] == "vmfs6") else { return };
    let colliding: Vec<&str> = entry["fs_files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str()?.strip_prefix("/collision/"))
        .collect();
    assert_eq!(colliding.len(), 19);
    for n in colliding {
        assert_eq!(hash_slot(n.as_bytes(), false).1, 0x26F7, "{n}");
    }
}

#[test]
fn extract_resumes_after_an_interrupted_run() {
    let Some(m) = manifest() else { return };
    let entry = m.iter().find(|e| e["vmfs"]["label"] == "vmfs6").unwrap();
    let imgs = images(entry);
    let _guard = SourceGuard::new(&imgs);
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = bin()
            .arg("extract")
            .args(&imgs)
            .arg("--to")
            .arg(dir.path())
            .args(["--path", "/bigger", "--path", "/big", "--path", "/directory"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let kept = String::from_utf8_lossy(&out.stderr).matches("already extracted by an earlier run").count();
        let m: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap()).unwrap();
        (kept, m)
    };
    let (kept, first) = run();
    assert_eq!(kept, 0);
    // A crash: the manifest never got written, /big's output was cut short, and a half-written
    // temporary file lies around.
    std::fs::remove_file(dir.path().join("manifest.json")).unwrap();
    std::fs::OpenOptions::new().write(true).open(dir.path().join("big")).unwrap().set_len(10).unwrap();
    std::fs::write(dir.path().join("bigger.partial"), b"garbage").unwrap();
    let (kept, second) = run();
    assert_eq!(kept, 1 + 100, "/bigger and the 100 files of /directory are kept, /big is copied again");
    assert_eq!(first, second, "the resumed run's manifest equals the first one");
    assert_eq!(crate::util::sha256_file(&dir.path().join("big")), first[1]["sha256"].as_str().unwrap());
}
