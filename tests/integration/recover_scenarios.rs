//! The recovery engine against the forge's ground truth: every damage scenario on VMFS5 and
//! VMFS6 is scanned and recovered, and every file the truth says survived comes back with its
//! SHA-256; nothing is written that was not on the datastore; what is lost is reported.

use crate::forge_scenarios::forge;
use crate::util::SourceGuard;
use crate::vmfs::bin;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vmfs_rescue::forge::truth::{Truth, TruthFile};

/// Scan `images` into `state` with the `scan` command (through the truth's bad sectors, if any).
pub fn scan(images: &[PathBuf], truth: &Truth, state: &Path) {
    let mut cmd = bin();
    if !truth.bad_sectors.is_empty() {
        cmd.arg("--bad-sectors").arg(Truth::path_for(&images[0]));
    }
    let out = cmd.arg("scan").args(images).arg("--state").arg(state).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || (code == 1 && !truth.bad_sectors.is_empty()),
        "scan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn recover(images: &[PathBuf], truth: &Truth, state: &Path, to: &Path) -> (Value, i32) {
    let mut cmd = bin();
    if !truth.bad_sectors.is_empty() {
        cmd.arg("--bad-sectors").arg(Truth::path_for(&images[0]));
    }
    let out = cmd.arg("recover").args(images).arg("--state").arg(state).arg("--to").arg(to).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "recover: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(to.join("report.json")).unwrap()).unwrap();
    (report, code)
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Files of a truth and of the file system it replaced.
fn all_files(t: &Truth) -> Vec<&TruthFile> {
    let mut v: Vec<&TruthFile> = t.files.iter().collect();
    if let Some(p) = &t.previous {
        v.extend(p.files.iter());
    }
    v
}

/// Whether the output file of a huge thin disk (hashed per data range in the report) holds
/// every data block the truth hashes.
fn blocks_match(out: &Path, f: &TruthFile) -> bool {
    use sha2::Digest;
    use std::os::unix::fs::FileExt;
    let Ok(file) = std::fs::File::open(out) else { return false };
    !f.block_hashes.is_empty()
        && f.block_hashes.iter().all(|b| {
            let mut buf = vec![0u8; b.len as usize];
            file.read_exact_at(&mut buf, b.offset).is_ok()
                && Some(crate::util::hex(&sha2::Sha256::digest(&buf))) == b.sha256
        })
}

fn check(scenario: &str, version: u32, big: bool, outs: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (size, small) = if big { ("16G", false) } else { ("3G", true) };
    let (images, truth) = forge(dir.path(), scenario, version, size, outs, small);
    let guard = SourceGuard::new(&images);
    let state = dir.path().join("state");
    let out = dir.path().join("out");
    scan(&images, &truth, &state);
    let (report, _) = recover(&images, &truth, &state, &out);
    let items = report["items"].as_array().unwrap();
    let written: Vec<&Value> = items.iter().filter(|i| i["sha256"].is_string()).collect();
    let files = all_files(&truth);
    let hit: std::collections::HashSet<String> = truth.damage.iter().flat_map(|d| d.affects.iter().cloned()).collect();
    let ctx = format!("{scenario} v{version}");
    // No carved copy of a file that came back with its FD.
    let with_fd: std::collections::HashSet<&str> =
        written.iter().filter(|w| w["state"] != "carved").filter_map(|w| w["sha256"].as_str()).collect();
    for w in written.iter().filter(|w| w["state"] == "carved") {
        assert!(!with_fd.contains(w["sha256"].as_str().unwrap()), "{ctx}: carved {} duplicates a file", w["path"]);
    }
    // Nothing invented: every written file is a file of the datastore, by name and content.
    for w in written.iter().filter(|w| w["state"] != "regenerated") {
        let name = base(w["path"].as_str().unwrap());
        let sha = w["sha256"].as_str().unwrap();
        let damaged = w["unreadable"].as_array().is_some_and(|u| !u.is_empty());
        // A name made from the FD address ("fd-0x..") when no directory entry survived.
        let known = files.iter().any(|f| {
            f.sha256.as_deref() == Some(sha)
                && (base(&f.path) == name || w["state"] == "carved" || name.starts_with("fd-"))
        });
        let same_name = files.iter().any(|f| base(&f.path) == name || name.starts_with("fd-"));
        // A file partly overwritten by a re-format: the report says which bytes.
        let said = w["missing"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x.as_str().is_some_and(|t| t.starts_with("overwritten"))));
        let overwritten = files.iter().any(|f| base(&f.path) == name && !f.overwritten.is_empty());
        assert!(
            known || (damaged && same_name) || (said && overwritten),
            "{ctx}: {} was not on the datastore (sha {sha})",
            w["path"]
        );
        assert_eq!(crate::util::sha256_file(&out.join(w["output"].as_str().unwrap())), sha, "{ctx}: {}", w["path"]);
    }
    // What we wrote ourselves says so, and only where an original was lost.
    for w in written.iter().filter(|w| w["state"] == "regenerated") {
        let text = std::fs::read_to_string(out.join(w["output"].as_str().unwrap())).unwrap();
        assert!(text.contains("Regenerated by vmfs-rescue"), "{ctx}: {}", w["path"]);
        let name = base(w["path"].as_str().unwrap());
        let live_twin = files.iter().any(|f| {
            f.state == "live"
                && !hit.contains(&f.path)
                && base(&f.path) == name
                && w["path"].as_str().unwrap().ends_with(&f.path)
        });
        assert!(!live_twin, "{ctx}: regenerated {} although the original is there", w["path"]);
    }
    // Everything that survived comes back.
    let mut by_sha: HashMap<&str, Vec<&Value>> = HashMap::new();
    for w in &written {
        by_sha.entry(w["sha256"].as_str().unwrap()).or_default().push(w);
    }
    let mut recovered = 0;
    for f in files.iter().filter(|f| f.kind == "file") {
        let must = matches!(f.state.as_str(), "live" | "orphaned" | "reformatted")
            && f.overwritten.is_empty()
            && !hit.contains(&f.path);
        let Some(sha) = f.sha256.as_deref() else {
            // A disk too sparse to hash whole: its data blocks, read back from the output.
            let got = items
                .iter()
                .filter(|i| i["data_ranges"].is_array() && base(i["path"].as_str().unwrap()) == base(&f.path))
                .any(|i| blocks_match(&out.join(i["output"].as_str().unwrap()), f));
            assert!(got || !must, "{ctx}: {} ({}) not recovered (block hashes)", f.path, f.state);
            recovered += usize::from(got);
            continue;
        };
        let got = by_sha.get(sha).is_some_and(|v| {
            v.iter().any(|w| {
                base(w["path"].as_str().unwrap()) == base(&f.path) || w["path"].as_str().unwrap().contains("/fd-")
            })
        });
        if must {
            assert!(got, "{ctx}: {} ({}) not recovered; report items: {}", f.path, f.state, items.len());
        }
        recovered += usize::from(got);
    }
    // Bytes a re-format overwrote are named.
    for f in files.iter().filter(|f| f.kind == "file" && f.state == "reformatted" && !f.overwritten.is_empty()) {
        let said = items.iter().filter(|i| base(i["path"].as_str().unwrap()) == base(&f.path)).any(|i| {
            i["missing"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x.as_str().is_some_and(|t| t.starts_with("overwritten"))))
        });
        assert!(said, "{ctx}: {} was partly overwritten ({:?}); the report does not say so", f.path, f.overwritten);
        let ranges: Vec<(u64, u64)> = items
            .iter()
            .filter(|i| base(i["path"].as_str().unwrap()) == base(&f.path))
            .flat_map(|i| {
                i["missing"].as_array().unwrap().iter().filter_map(|m| m.as_str()).map(String::from).collect::<Vec<_>>()
            })
            .filter_map(|m| Some(m.strip_prefix("overwritten: bytes ")?.split(" hold").next()?.to_string()))
            .flat_map(|list| list.split(", ").map(String::from).collect::<Vec<_>>())
            .filter_map(|r| {
                let (a, b) = r.split_once("..")?;
                Some((
                    u64::from_str_radix(a.trim_start_matches("0x"), 16).ok()?,
                    u64::from_str_radix(b.trim_start_matches("0x"), 16).ok()?,
                ))
            })
            .collect();
        for &[off, len] in &f.overwritten {
            assert!(
                ranges.iter().any(|&(a, b)| a <= off && off + len <= b),
                "{ctx}: {}: overwritten {off:#x}+{len:#x} not among the reported {ranges:x?}",
                f.path
            );
        }
    }
    // What is lost is named, with a reason.
    let text = serde_json::to_string(&report).unwrap();
    for f in files.iter().filter(|f| f.kind == "file" && matches!(f.state.as_str(), "deleted" | "unreachable")) {
        let offered = f.sha256.as_deref().is_some_and(|s| by_sha.contains_key(s));
        if !offered {
            // By name, or (when the name itself was lost with its directory entry) by its FD.
            let fd = format!("\"fd\":\"{}\"", f.fd);
            assert!(
                text.contains(base(&f.path)) || text.contains(&fd),
                "{ctx}: lost {} is not named in the report",
                f.path
            );
        }
    }
    for i in items.iter().filter(|i| i["kind"] == "file" && i["output"].is_null()) {
        assert!(!i["missing"].as_array().unwrap().is_empty(), "{ctx}: {} not written, no reason", i["path"]);
    }
    assert!(recovered > 0, "{ctx}: nothing recovered");
    // A deleted thin disk comes back from its orphaned pointer blocks, under its own name.
    if scenario == "deleted-thin" {
        let flat = files.iter().find(|f| f.path == "/web01/web01-flat.vmdk").unwrap();
        let back = written.iter().find(|w| w["path"].as_str().unwrap().ends_with("/web01/web01-flat.vmdk"));
        let back = back.unwrap_or_else(|| panic!("{ctx}: the deleted thin disk is not recovered: {}", report["notes"]));
        assert_eq!(back["sha256"].as_str(), flat.sha256.as_deref(), "{ctx}: {back}");
        assert_eq!(back["state"], "deleted", "{ctx}: {back}");
        assert!(back["method"].as_str().unwrap().contains("pointer block"), "{ctx}: {back}");
    }
    // The huge thin disk (double-indirect) deleted with its folder: every data block comes back
    // at its place, through the orphaned double-indirect pointer block.
    if let Some(huge) = files.iter().find(|f| f.path == "/archive01/archive01-flat.vmdk" && f.state == "deleted") {
        let back = items.iter().find(|i| i["path"].as_str().unwrap().ends_with("/archive01/archive01-flat.vmdk"));
        let back = back.unwrap_or_else(|| panic!("{ctx}: the deleted huge disk is not named: {}", report["notes"]));
        let output = back["output"].as_str().unwrap_or_else(|| panic!("{ctx}: not written: {back}"));
        assert!(blocks_match(&out.join(output), huge), "{ctx}: {back}");
        assert!(back["method"].as_str().unwrap().contains("double-indirect"), "{ctx}: {back}");
        assert_eq!(back["size"].as_u64(), Some(huge.size), "{ctx}: {back}");
    }
    // Every deleted disk comes back under its name: db01's sized by its deleted delta's
    // capacity (full size: the delta's folder names it), win01's (its entry removed, its
    // descriptor gone) named after what the surviving .vmx refers to.
    if scenario == "deleted" {
        let disks: &[&str] =
            if big { &["/db01/db01-flat.vmdk", "/win01/win01-flat.vmdk"] } else { &["/win01/win01-flat.vmdk"] };
        for path in disks {
            let flat = files.iter().find(|f| f.path == *path).unwrap();
            let back = written.iter().find(|w| w["path"].as_str().unwrap().ends_with(path));
            let back = back.unwrap_or_else(|| panic!("{ctx}: {path} not back under its name: {items:?}"));
            assert_eq!(back["sha256"].as_str(), flat.sha256.as_deref(), "{ctx}: {back}");
        }
    }
    // A flat removed with rm: its directory entry is gone, its descriptor names it.
    if scenario == "deleted-flat" {
        let flat = files.iter().find(|f| f.path == "/win01/win01-flat.vmdk").unwrap();
        let back = written.iter().find(|w| w["path"].as_str().unwrap().ends_with("/win01/win01-flat.vmdk"));
        let back = back.unwrap_or_else(|| panic!("{ctx}: the removed flat is not back under its name: {items:?}"));
        assert_eq!(back["sha256"].as_str(), flat.sha256.as_deref(), "{ctx}: {back}");
        assert_eq!(back["state"], "deleted", "{ctx}: {back}");
        assert!(back["method"].as_str().unwrap().contains("surviving descriptor"), "{ctx}: {back}");
    }
    // Files whose FDs were destroyed keep the names their directory still lists: what comes
    // back comes back there (a flat disk too: through its descriptor or pointer blocks).
    if scenario == "fd-cluster-corrupt" {
        let mut named = 0;
        for f in files.iter().filter(|f| f.state == "unreachable" && f.kind == "file") {
            let Some(sha) = f.sha256.as_deref().filter(|s| by_sha.contains_key(s)) else { continue };
            let own = by_sha[sha].iter().any(|w| {
                w["state"] == "damaged" && w["path"].as_str().unwrap().ends_with(&format!("{}{}", truth.label, f.path))
            });
            assert!(own, "{ctx}: {} came back, not under its own name: {:?}", f.path, by_sha[sha]);
            named += 1;
        }
        // Small content: the nvram and the delta (the rest is resident, or has no header).
        assert!(named >= 2, "{ctx}: only {named} files of the damaged folder came back");
        // Full-size guests start with a partition table: the flat disk is found by it.
        let flat = files.iter().find(|f| f.path.ends_with("-flat.vmdk") && f.state == "unreachable");
        if let Some(flat) = flat.filter(|f| big && f.overwritten.is_empty()) {
            assert!(
                flat.sha256.as_deref().is_some_and(|s| by_sha.contains_key(s)),
                "{ctx}: {} (FD destroyed) not recovered: {}",
                flat.path,
                report["notes"]
            );
        }
    }
    if scenario == "descriptor-lost" {
        regenerated_chains_read_as_truth(&truth, &out, dir.path(), &ctx);
    }
    drop(guard);
}

/// qemu-img (the independent reader) reads every VM's disk through the descriptors and .vmx we
/// regenerated to the content the truth records.
fn regenerated_chains_read_as_truth(truth: &Truth, out: &Path, tmp: &Path, ctx: &str) {
    let vol = out.join("volumes").join(&truth.label);
    for d in &truth.disks {
        let vmx = std::fs::read_to_string(vol.join(&d.vm).join(format!("{}.vmx", d.vm))).unwrap();
        assert!(vmx.starts_with("# Regenerated by vmfs-rescue"), "{ctx}: {vmx}");
        let leaf = vmx.lines().find_map(|l| l.strip_prefix("scsi0:0.fileName = \"")).unwrap().trim_end_matches('"');
        let raw = tmp.join("disk.raw");
        let st = std::process::Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(vol.join(&d.vm).join(leaf))
            .arg(&raw)
            .status()
            .unwrap();
        assert!(st.success(), "{ctx}: qemu-img cannot read the regenerated {}/{leaf}", d.vm);
        let sha = crate::util::hex(&<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&raw).unwrap()));
        assert_eq!(sha, d.sha256, "{ctx}: {} read through regenerated descriptors", d.vm);
        std::fs::remove_file(&raw).unwrap();
    }
}

/// Every scenario, or only those named in `VMFS_RESCUE_SCENARIOS` (comma-separated: for
/// working on one).
fn scenarios(version: u32, big: bool) {
    let only = std::env::var("VMFS_RESCUE_SCENARIOS").unwrap_or_default();
    for s in vmfs_rescue::forge::scenario::SCENARIOS.iter().map(|s| s.name) {
        if !only.is_empty() && !only.split(',').any(|o| o == s) {
            continue;
        }
        // deleted-thin's disk is over 1 GiB already: the full-size content adds nothing to it.
        if s == "demo" || (s == "reformatted-5-over-6" && version != 5) || (s == "deleted-thin" && big) {
            continue;
        }
        check(s, version, big, &["d.img"]);
    }
}

#[test]
fn every_scenario_recovers_per_truth_on_vmfs6() {
    scenarios(6, false);
}

#[test]
fn every_scenario_recovers_per_truth_on_vmfs5() {
    scenarios(5, false);
}

/// A volume spanned over two disks, its root directory lost, and a deletion on it.
#[test]
fn spanned_volumes_recover_per_truth() {
    for (s, v) in [("root-dir-lost", 6), ("deleted", 5)] {
        check(s, v, false, &["a.img", "b.img"]);
    }
}

/// VMFS3 (the forge makes it: ESX 3.x MBR layout, no resident files): a deleted VM folder and a
/// re-format recover per the truth, as on VMFS5 and VMFS6.
#[test]
fn vmfs3_deleted_and_reformatted_recover_per_truth() {
    for s in ["deleted", "reformatted"] {
        check(s, 3, false, &["d.img"]);
    }
}

/// The same with the full-size content (1.4 to 2 GiB of data, thin disks of terabytes): a slow
/// suite, run by `.ci/run` (`cargo test -- --ignored`).
#[test]
#[ignore = "slow: run by .ci/run"]
fn every_scenario_recovers_per_truth_with_gigabytes_on_vmfs6() {
    scenarios(6, true);
}

#[test]
#[ignore = "slow: run by .ci/run"]
fn every_scenario_recovers_per_truth_with_gigabytes_on_vmfs5() {
    scenarios(5, true);
}

/// A recovery killed in the middle and run again ends exactly as an uninterrupted one, and
/// does not copy again what it had completed.
#[test]
fn recovery_resumes_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), "root-dir-lost", 6, "3G", &["d.img"], true);
    let guard = SourceGuard::new(&images);
    let state = dir.path().join("state");
    scan(&images, &truth, &state);
    let (whole, _) = recover(&images, &truth, &state, &dir.path().join("whole"));
    let to = dir.path().join("killed");
    let mut child = bin()
        .env("VMFS_RESCUE_TEST_PAUSE_MS", "400")
        .arg("recover")
        .args(&images)
        .arg("--state")
        .arg(&state)
        .arg("--to")
        .arg(&to)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = to.join(vmfs_rescue::recover::output::JOURNAL);
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&journal).map_or(0, |t| t.lines().count()) < 3 {
        assert!(t0.elapsed().as_secs() < 60, "recovery made no progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!to.join("report.json").exists(), "killed too late: the recovery had finished");
    let (again, _) = recover(&images, &truth, &state, &to);
    assert!(again["summary"]["resumed"].as_u64().unwrap() >= 3, "{}", again["summary"]);
    let key = |r: &Value| -> Vec<(String, Value)> {
        r["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["path"].as_str().unwrap().to_string(), i["sha256"].clone()))
            .collect()
    };
    assert_eq!(key(&again), key(&whole));
    let partial = walk_names(&to).into_iter().filter(|n| n.ends_with(".partial")).count();
    assert_eq!(partial, 0);
    drop(guard);
}

fn walk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.display().to_string());
        if p.is_dir() {
            out.extend(walk_names(&p));
        }
    }
    out
}

/// `ls`, `cat` and `extract` browse what the scan found with `--state`.
#[test]
fn ls_cat_and_extract_browse_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), "deleted", 6, "3G", &["d.img"], true);
    let guard = SourceGuard::new(&images);
    let state = dir.path().join("state");
    scan(&images, &truth, &state);
    let run = |args: &[&str]| {
        let out = bin().args(args).args(&images).arg("--state").arg(&state).output().unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let listed: Vec<Value> =
        String::from_utf8(run(&["ls", "--json"])).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let deleted: Vec<&str> =
        listed.iter().filter(|v| v["state"] == "deleted").filter_map(|v| v["path"].as_str()).collect();
    assert!(deleted.iter().any(|p| p.ends_with("/db01/db01.vmx")), "{deleted:?}");
    // win01's flat lost its name with its directory entry: its content is found, and the name
    // the surviving .vmx implies is given back.
    let flat = |v: &&Value| v["path"].as_str().is_some_and(|p| p.ends_with("/win01/win01-flat.vmdk"));
    assert!(listed.iter().filter(flat).any(|v| v["state"] == "deleted" && v["recoverable"] == true), "{listed:?}");
    let vmx = truth.file("/web01/web01.vmx").unwrap();
    let text = run(&["cat", "--path", "/web01/web01.vmx"]);
    assert_eq!(crate::util::hex(&<sha2::Sha256 as sha2::Digest>::digest(&text)), vmx.sha256.clone().unwrap());
    let to = dir.path().join("out");
    run(&["extract", "--to", to.to_str().unwrap(), "--path", "/db01"]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(to.join("report.json")).unwrap()).unwrap();
    let items = report["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.iter().all(|i| i["path"].as_str().unwrap().contains("/db01")), "{items:?}");
    drop(guard);
}
