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

/// Scan `images` into `state` (the reference scan, written as the index's findings).
pub fn scan(images: &[PathBuf], state: &Path) {
    std::fs::create_dir_all(state).unwrap();
    let srcs: Vec<_> = images.iter().map(|p| vmfs_rescue::block::open_path(p).unwrap()).collect();
    let refs: Vec<&dyn vmfs_rescue::block::BlockSource> = srcs.iter().map(|s| s.as_ref()).collect();
    let found = vmfs_rescue::recover::reference_scan(&refs);
    let text: String = found.iter().map(|f| serde_json::to_string(f).unwrap() + "\n").collect();
    std::fs::write(state.join("findings.jsonl"), text).unwrap();
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

fn check(scenario: &str, version: u32) {
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), scenario, version, "3G", &["d.img"], true);
    let guard = SourceGuard::new(&images);
    let state = dir.path().join("state");
    let out = dir.path().join("out");
    scan(&images, &state);
    let (report, _) = recover(&images, &truth, &state, &out);
    let items = report["items"].as_array().unwrap();
    let written: Vec<&Value> = items.iter().filter(|i| i["sha256"].is_string()).collect();
    let files = all_files(&truth);
    let hit: std::collections::HashSet<String> = truth.damage.iter().flat_map(|d| d.affects.iter().cloned()).collect();
    let ctx = format!("{scenario} v{version}");
    // Nothing invented: every written file is a file of the datastore, by name and content.
    for w in &written {
        let name = base(w["path"].as_str().unwrap());
        let sha = w["sha256"].as_str().unwrap();
        let damaged = w["unreadable"].as_array().is_some_and(|u| !u.is_empty());
        let known =
            files.iter().any(|f| f.sha256.as_deref() == Some(sha) && (base(&f.path) == name || w["state"] == "carved"));
        let same_name = files.iter().any(|f| base(&f.path) == name || name.starts_with("fd-"));
        assert!(known || (damaged && same_name), "{ctx}: {} was not on the datastore (sha {sha})", w["path"]);
        let on_disk = std::fs::read(out.join(w["output"].as_str().unwrap())).unwrap();
        assert_eq!(crate::util::hex(&<sha2::Sha256 as sha2::Digest>::digest(&on_disk)), sha, "{ctx}: {}", w["path"]);
    }
    // Everything that survived comes back.
    let mut by_sha: HashMap<&str, Vec<&Value>> = HashMap::new();
    for w in &written {
        by_sha.entry(w["sha256"].as_str().unwrap()).or_default().push(w);
    }
    let mut recovered = 0;
    for f in files.iter().filter(|f| f.kind == "file") {
        let Some(sha) = f.sha256.as_deref() else { continue };
        let must = matches!(f.state.as_str(), "live" | "orphaned" | "reformatted")
            && f.overwritten.is_empty()
            && !hit.contains(&f.path);
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
    drop(guard);
}

fn scenarios(version: u32) {
    for s in vmfs_rescue::forge::scenario::SCENARIOS.iter().map(|s| s.name) {
        if s == "demo" || (s == "reformatted-5-over-6" && version != 5) {
            continue;
        }
        check(s, version);
    }
}

#[test]
fn every_scenario_recovers_per_truth_on_vmfs6() {
    scenarios(6);
}

#[test]
fn every_scenario_recovers_per_truth_on_vmfs5() {
    scenarios(5);
}

/// A recovery killed in the middle and run again ends exactly as an uninterrupted one, and
/// does not copy again what it had completed.
#[test]
fn recovery_resumes_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), "root-dir-lost", 6, "3G", &["d.img"], true);
    let guard = SourceGuard::new(&images);
    let state = dir.path().join("state");
    scan(&images, &state);
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
