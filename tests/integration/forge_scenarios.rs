//! Forged datastores against their ground truth: dissect.vmfs (the independent reader) and
//! ours list the same tree, sizes and content; qemu-img reads the VMDK chains as the truth
//! says; debugfs finds the guest files; every damage scenario writes its truth and the reader
//! reports the damage it meets.

use crate::forged_double_indirect::oracle_python;
use crate::util::{SourceGuard, hex};
use crate::vmfs::bin;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::forge::truth::Truth;
use vmfs_rescue::vmfs::{Vmfs, VmfsFile};

pub fn forge(
    dir: &Path,
    scenario: &str,
    version: u32,
    size: &str,
    outs: &[&str],
    small: bool,
) -> (Vec<PathBuf>, Truth) {
    forge_seeded(dir, scenario, version, size, outs, small, 1)
}

/// `vmfs-rescue forge` into `dir`: the images and their ground truth.
pub fn forge_seeded(
    dir: &Path,
    scenario: &str,
    version: u32,
    size: &str,
    outs: &[&str],
    small: bool,
    seed: u64,
) -> (Vec<PathBuf>, Truth) {
    let outs: Vec<PathBuf> = outs.iter().map(|o| dir.join(o)).collect();
    let mut cmd = bin();
    cmd.args(["forge", "--scenario", scenario, "--version", &version.to_string(), "--size", size]);
    cmd.args(["--seed", &seed.to_string()]);
    if small {
        cmd.arg("--small");
    }
    let out = cmd.args(&outs).output().unwrap();
    assert!(out.status.success(), "forge {scenario}: {}", String::from_utf8_lossy(&out.stderr));
    let truth = Truth::load(&Truth::path_for(&outs[0])).unwrap();
    assert_eq!(truth.scenario, scenario);
    (outs, truth)
}

fn open(images: &[PathBuf]) -> Arc<Vmfs> {
    let srcs = vmfs_rescue::datastore::open_sources(images).unwrap();
    let (stores, notes) = vmfs_rescue::datastore::find(&srcs);
    stores.into_iter().find_map(|d| d.fs.ok()).unwrap_or_else(|| panic!("no volume: {notes:?}"))
}

fn sha_range(f: &VmfsFile, off: u64, len: u64) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = off;
    while pos < off + len {
        let n = (off + len - pos).min(buf.len() as u64) as usize;
        f.read_at(pos, &mut buf[..n]).unwrap();
        h.update(&buf[..n]);
        pos += n as u64;
    }
    hex(&h.finalize())
}

/// Our reader lists every live file of the truth with its size and content, and nothing else.
fn ours_matches(images: &[PathBuf], truth: &Truth) {
    let fs = open(images);
    let mut listed = Vec::new();
    let root = fs.root().unwrap();
    fs.walk(&root, "", true, &mut |item| {
        if let vmfs_rescue::vmfs::WalkItem::Entry { path, fd, .. } = item
            && fd.meta.kind != vmfs_rescue::vmfs::FdType::SysFile
        {
            listed.push(path);
        }
    });
    listed.sort();
    let mut live: Vec<String> = truth.files.iter().filter(|f| f.state == "live").map(|f| f.path.clone()).collect();
    live.sort();
    assert_eq!(listed, live, "tree");
    for t in truth.files.iter().filter(|f| f.state == "live" && f.kind == "file") {
        let fd = fs.lookup(&t.path).unwrap();
        assert_eq!(fd.meta.size, t.size, "{}", t.path);
        let f = VmfsFile::new(Arc::clone(&fs), fd, &t.path);
        if let Some(s) = &t.sha256 {
            assert_eq!(&sha_range(&f, 0, t.size), s, "{}", t.path);
        }
        for b in &t.block_hashes {
            assert_eq!(Some(sha_range(&f, b.offset, b.len)), b.sha256, "{} block at {}", t.path, b.offset);
        }
    }
}

/// dissect.vmfs lists the same (skipped, loudly, without the oracle venv).
fn oracle_matches(images: &[PathBuf], truth: &Truth) {
    let Some(py) = oracle_python() else {
        eprintln!("SKIP dissect.vmfs check: no oracle venv (scripts/setup-oracle.sh)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/vmfs_list.py");
    let args: Vec<String> =
        images.iter().zip(&truth.images).map(|(p, i)| format!("{}@{}", p.display(), i.partition_offset)).collect();
    let out = Command::new(py)
        .arg(script)
        .args(&args)
        .args(["--hash", "--truth"])
        .arg(Truth::path_for(&images[0]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dissect.vmfs disagrees with the ground truth:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copy a datastore folder out with our CLI.
fn extract(images: &[PathBuf], path: &str, to: &Path) {
    let out = bin().arg("extract").args(images).args(["--to"]).arg(to).args(["--path", path]).output().unwrap();
    assert!(out.status.success(), "extract {path}: {}", String::from_utf8_lossy(&out.stderr));
}

fn file_sha(p: &Path) -> String {
    crate::util::sha256_file(p)
}

/// qemu-img, reading the extracted chain, returns what the truth says each virtual disk holds.
fn qemu_reads_chains(images: &[PathBuf], truth: &Truth, dir: &Path) {
    if Command::new("qemu-img").arg("--version").output().is_err() {
        eprintln!("SKIP qemu-img check: qemu-img not installed");
        return;
    }
    for d in &truth.disks {
        let out = dir.join(format!("x-{}", d.vm));
        extract(images, &format!("/{}", d.vm), &out);
        let leaf = out.join(d.chain[0].trim_start_matches('/'));
        let raw = dir.join(format!("{}.raw", d.vm));
        let r = Command::new("qemu-img").args(["convert", "-O", "raw"]).arg(&leaf).arg(&raw).output().unwrap();
        match d.status.as_str() {
            "ok" => {
                assert!(r.status.success(), "qemu-img {}: {}", leaf.display(), String::from_utf8_lossy(&r.stderr));
                assert_eq!(file_sha(&raw), d.sha256, "{} through qemu-img", d.chain[0]);
            }
            // qemu refuses a chain whose parent CID changed, or whose parent is missing.
            _ => assert!(!r.status.success(), "qemu-img read the broken chain {}", d.chain[0]),
        }
        if d.guest_fs == "ext4" && d.status == "ok" {
            debugfs_finds_guest_files(&raw, d, truth, dir);
        }
        let _ = std::fs::remove_file(&raw);
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// The ext4 guest's files, read by e2fsprogs' debugfs, hash as the truth says.
fn debugfs_finds_guest_files(raw: &Path, d: &vmfs_rescue::forge::truth::TruthDisk, truth: &Truth, dir: &Path) {
    let Some(debugfs) = ["/usr/sbin/debugfs", "/sbin/debugfs"].into_iter().map(PathBuf::from).find(|p| p.exists())
    else {
        eprintln!("SKIP guest check: debugfs not installed");
        return;
    };
    // debugfs reads a file system image: cut the partition out.
    let part = dir.join("guest.part");
    let data = std::fs::read(raw).unwrap();
    std::fs::write(&part, &data[d.guest_partition_offset as usize..]).unwrap();
    let mut checked = 0;
    for g in truth.guest_files.iter().filter(|g| g.disk == d.chain[0]) {
        let out = Command::new(&debugfs).arg("-R").arg(format!("cat \"{}\"", g.path)).arg(&part).output().unwrap();
        assert_eq!(hex(&Sha256::digest(&out.stdout)), g.sha256, "guest file {} on {}", g.path, d.chain[0]);
        checked += 1;
    }
    assert!(checked > 3, "guest files checked: {checked}");
    let _ = std::fs::remove_file(&part);
}

fn healthy(version: u32, outs: &[&str], small: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), "healthy", version, "16G", outs, small);
    assert_eq!(truth.version, version);
    assert!(truth.files.len() > 25 && truth.disks.len() == 3 && truth.guest_files.len() > 10);
    ours_matches(&images, &truth);
    oracle_matches(&images, &truth);
    qemu_reads_chains(&images, &truth, dir.path());
}

#[test]
fn healthy_vmfs5_agrees_with_dissect_qemu_and_debugfs() {
    healthy(5, &["ds5.img"], false);
}

#[test]
fn healthy_vmfs6_agrees_with_dissect_qemu_and_debugfs() {
    healthy(6, &["ds6.img"], false);
}

#[test]
fn healthy_vmfs3_agrees_with_dissect_qemu_and_debugfs() {
    healthy(3, &["ds3.img"], false);
}

#[test]
fn healthy_spanned_volumes_agree_with_dissect() {
    healthy(5, &["span5-a.img", "span5-b.img"], true);
    healthy(6, &["span6-a.img", "span6-b.img"], true);
}

/// Run the CLI on the images; stdout and stderr together, and the exit status.
fn run(images: &[PathBuf], pre: &[&str], args: &[&str]) -> (String, i32) {
    let out = bin().args(pre).args(args).args(images).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (text, out.status.code().unwrap_or(-1))
}

fn listed(images: &[PathBuf]) -> Vec<String> {
    let (text, _) = run(images, &[], &["ls", "-R", "--json"]);
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] != "sysfile")
        .filter_map(|v| v["path"].as_str().map(String::from))
        .collect()
}

fn damaged(scenario: &str, version: u32) {
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), scenario, version, "3G", &["d.img"], true);
    let guard = SourceGuard::new(&images);
    let is_damage =
        !matches!(scenario, "deleted" | "deleted-thin" | "deleted-flat" | "descriptor-lost" | "snapshot-chain-broken");
    assert_eq!(!truth.damage.is_empty(), is_damage, "{scenario}: damage records {:?}", truth.damage);
    let pre: Vec<String> = if truth.bad_sectors.is_empty() {
        Vec::new()
    } else {
        vec!["--bad-sectors".into(), Truth::path_for(&images[0]).display().to_string()]
    };
    let pre: Vec<&str> = pre.iter().map(String::as_str).collect();
    let (vols, _) = run(&images, &pre, &["volumes"]);
    let (ls, ls_status) = run(&images, &pre, &["ls", "-R"]);
    let seen = format!("{vols}\n{ls}");
    for d in &truth.damage {
        for word in &d.reader_reports {
            assert!(seen.contains(word.as_str()), "{scenario} v{version}: no {word:?} in the reader's report:\n{seen}");
        }
        for r in &d.ranges {
            assert!(r.len > 0 && images.iter().any(|i| crate::util::file_name(i) == r.image), "{r:?}");
        }
    }
    let gone: Vec<&str> = truth.files.iter().filter(|f| f.state == "deleted").map(|f| f.path.as_str()).collect();
    let now = listed(&images);
    for g in &gone {
        assert!(!now.iter().any(|p| p == g), "{scenario}: deleted {g} still listed");
    }
    match scenario {
        "deleted" => assert!(gone.contains(&"/db01") && gone.contains(&"/win01/win01-flat.vmdk")),
        "deleted-flat" => {
            assert_eq!(gone, ["/win01/win01-flat.vmdk"]);
            assert!(now.iter().any(|p| p == "/win01/win01.vmdk"));
        }
        "deleted-thin" => {
            let flat = truth.files.iter().find(|f| f.path == "/web01/web01-flat.vmdk").unwrap();
            // Thin, and past what the FD addresses directly: its map lived in pointer blocks.
            assert!(gone.contains(&"/web01") && flat.size > 1 << 30 && flat.zla == "0x3", "{flat:?}");
        }
        "descriptor-lost" => {
            assert!(gone.iter().any(|p| p.ends_with(".vmx")) && gone.iter().any(|p| p.ends_with("/web01.vmdk")));
            assert!(now.iter().any(|p| p.ends_with("-flat.vmdk")));
        }
        "snapshot-chain-broken" => {
            assert!(truth.disks.iter().any(|d| d.status.contains("cid-mismatch")));
            assert!(truth.disks.iter().any(|d| d.status.contains("parent-missing")));
            qemu_reads_chains(&images, &truth, dir.path());
        }
        s if s.starts_with("reformatted") => {
            let prev = truth.previous.as_ref().expect("previous file system in the truth");
            assert_eq!(prev.version, if s == "reformatted" { version } else { 6 });
            assert!(prev.files.len() > 20 && truth.files.is_empty());
            assert!(prev.files.iter().all(|f| f.state == "reformatted"));
            assert!(now.is_empty(), "the new file system is empty: {now:?}");
        }
        "bad-sectors" => {
            assert_eq!(ls_status, 1, "ls over bad sectors exits 1");
            assert!(truth.bad_sectors.len() >= 4);
            let meta = truth.damage.iter().filter(|d| d.description.contains("FD") || d.description.contains("root"));
            assert!(meta.count() >= 2, "bad sectors in metadata");
        }
        "fd-cluster-corrupt" | "root-dir-lost" | "fs-descriptor-zeroed" => {
            assert_ne!(ls_status, 0, "{scenario}: ls exit status");
        }
        _ => {}
    }
    drop(guard);
}

#[test]
fn every_damage_scenario_on_vmfs6() {
    for s in vmfs_rescue::forge::scenario::SCENARIOS.iter().map(|s| s.name) {
        if !matches!(s, "healthy" | "demo") {
            damaged(s, 6);
        }
    }
}

#[test]
fn every_damage_scenario_on_vmfs5() {
    for s in vmfs_rescue::forge::scenario::SCENARIOS.iter().map(|s| s.name) {
        if !matches!(s, "healthy" | "demo" | "reformatted-5-over-6") {
            damaged(s, 5);
        }
    }
}

#[test]
fn every_damage_scenario_on_vmfs3() {
    for s in vmfs_rescue::forge::scenario::SCENARIOS.iter().map(|s| s.name) {
        if !matches!(s, "healthy" | "demo" | "reformatted-5-over-6") {
            damaged(s, 3);
        }
    }
}

#[test]
fn demo_builds_and_lists_a_damaged_datastore() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().args(["demo", "--dir"]).arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let (listing, recovery) = text.split_once("$ vmfs-rescue scan").expect("the demo scans");
    assert!(listing.contains("/web01/web01-flat.vmdk") && !listing.contains("/db01/"), "{text}");
    assert!(listing.contains("/db01 was deleted") && listing.contains("cid-mismatch"), "{text}");
    // The deleted VM's disk comes back, byte for byte.
    assert!(recovery.contains("Not recovered:"), "{text}");
    let truth = Truth::load(&Truth::path_for(&dir.path().join("datastore1.img"))).unwrap();
    let want = truth.file("/db01/db01-flat.vmdk").unwrap().sha256.clone().unwrap();
    let got = file_sha(&dir.path().join("recovered/volumes/datastore6/db01/db01-flat.vmdk"));
    assert_eq!(got, want);
}
