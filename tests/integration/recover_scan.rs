//! The recovery scan on forged datastores: every structure at its place, a kill -9 resumed to
//! the same findings byte for byte, bad sectors recorded without failing, and the state
//! directory's refusals (on a source, of other sources).

use crate::util::SourceGuard;
use crate::vmfs::bin;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use vmfs_rescue::forge::truth::Truth;
use vmfs_rescue::recover::{ScanIndex, What};

fn forge(dir: &Path, scenario: &str, version: u32, name: &str) -> (PathBuf, Truth) {
    forge_seed(dir, scenario, version, name, 1)
}

fn forge_seed(dir: &Path, scenario: &str, version: u32, name: &str, seed: u64) -> (PathBuf, Truth) {
    let (mut imgs, truth) = crate::forge_scenarios::forge_seeded(dir, scenario, version, "3G", &[name], true, seed);
    (imgs.remove(0), truth)
}

fn scan_cmd(pre: &[&str], img: &Path, state: &Path) -> Command {
    let mut c = bin();
    c.args(pre).arg("scan").arg(img).arg("--state").arg(state).arg("--json");
    c
}

/// Run a scan; its JSON summary and exit status.
fn scan(pre: &[&str], img: &Path, state: &Path) -> (Value, i32) {
    let out = scan_cmd(pre, img, state).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scan summary ({e}): {}{}", text(&out), String::from_utf8_lossy(&out.stdout)));
    (v, code)
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Source offsets where the volume, its LVM header and its FS descriptor start, from the truth
/// and the LVM header found (its data offset is relative to the partition).
fn check_layout(idx: &ScanIndex, truth: &Truth) -> u64 {
    let all = idx.all_findings().unwrap();
    let part = truth.images[0].partition_offset;
    let lvm: Vec<_> = all.iter().filter(|f| matches!(f.what, What::LvmHeader { .. })).collect();
    assert!(!lvm.is_empty(), "no LVM header found");
    assert!(lvm.iter().all(|f| f.offset == part + 0x10_0000), "LVM headers at {lvm:?}");
    let What::LvmHeader { data_offset, .. } = lvm[0].what else { unreachable!() };
    let volume = part + data_offset;
    let fsd: Vec<_> = all.iter().filter(|f| matches!(f.what, What::FsDescriptor { .. })).collect();
    assert_eq!(fsd.len(), 1, "FS descriptors: {fsd:?}");
    assert_eq!(fsd[0].offset, volume + 0x20_0000);
    let What::FsDescriptor { ref uuid, .. } = fsd[0].what else { unreachable!() };
    assert_eq!(uuid, &truth.fs_uuid);
    volume
}

/// FDs found at the volume offsets the truth gives, except those touching `bad` ranges.
fn check_fds(idx: &ScanIndex, truth: &Truth, volume: u64, bad: &[(u64, u64)]) {
    let all = idx.all_findings().unwrap();
    let fds: Vec<(u64, u64)> = all
        .iter()
        .filter_map(|f| match f.what {
            What::Fd { self_offset, .. } => Some((f.offset, self_offset)),
            _ => None,
        })
        .collect();
    assert!(fds.len() >= truth.files.len(), "{} FDs for {} files", fds.len(), truth.files.len());
    assert!(fds.iter().all(|(off, own)| off - volume == *own), "an FD's own offset disagrees with its place");
    let mut missed = 0;
    for f in &truth.files {
        let at = volume + f.fd_offset;
        if fds.iter().any(|(off, _)| *off == at) {
            continue;
        }
        assert!(bad.iter().any(|(o, l)| *o < at + 0x2000 && at < o + l), "FD of {} at {at:#x} not found", f.path);
        missed += 1;
    }
    assert!(missed <= bad.len(), "{missed} FDs lost to {} bad ranges", bad.len());
}

#[test]
fn recover_scan_finds_structures_at_their_places() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forge(dir.path(), "healthy", 6, "h6.img");
    let guard = SourceGuard::new(std::slice::from_ref(&img));
    let state = dir.path().join("state");
    let (sum, code) = scan(&[], &img, &state);
    assert_eq!(code, 0, "{sum}");
    assert_eq!(sum["unreadable_bytes"], 0);
    assert_eq!(sum["scanned"], sum["total"]);
    assert_eq!(sum["read_this_run"], sum["total"]);
    // Holes are never read: a 3 GiB sparse image holds well under 1 GiB of data.
    assert!(sum["total"].as_u64().unwrap() < 1 << 30, "{sum}");
    let idx = ScanIndex::load(&state).unwrap();
    assert!(idx.finished());
    assert_eq!(idx.sources().len(), 1);
    assert_eq!(idx.sources()[0].name, "h6.img");
    let volume = check_layout(&idx, &truth);
    check_fds(&idx, &truth, volume, &[]);
    // Findings come in source-offset order, the same as the one-thread reference scan's.
    let offs: Vec<u64> = idx.findings().unwrap().map(|f| f.unwrap().offset).collect();
    assert!(offs.windows(2).all(|w| w[0] < w[1]));
    let srcs = vmfs_rescue::datastore::open_sources(std::slice::from_ref(&img)).unwrap();
    let refs: Vec<&dyn vmfs_rescue::block::BlockSource> = srcs.iter().map(|s| s.as_ref()).collect();
    assert!(idx.all_findings().unwrap() == vmfs_rescue::recover::reference_scan(&refs), "differs from reference_scan");
    // A finished scan run again reads nothing and says the same.
    let (again, code) = scan(&[], &img, &state);
    assert_eq!(code, 0);
    assert_eq!(again["already_finished"], true);
    assert_eq!(again["read_this_run"], 0);
    assert_eq!(again["findings"], sum["findings"]);
    drop(guard);
}

/// The scanned byte count in `DIR/scan.json`, once it is there and readable.
fn checkpointed(state: &Path) -> u64 {
    std::fs::read(state.join("scan.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<Value>(&t).ok())
        .and_then(|v| v["sources"][0]["scanned"].as_u64())
        .unwrap_or(0)
}

#[test]
fn recover_scan_resumes_after_kill_with_identical_findings() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _truth) = forge(dir.path(), "healthy", 5, "h5.img");
    let guard = SourceGuard::new(std::slice::from_ref(&img));
    let whole = dir.path().join("whole");
    let (full, code) = scan(&[], &img, &whole);
    assert_eq!(code, 0, "{full}");
    let total = full["total"].as_u64().unwrap();

    // Slowed down (1 MiB chunks, 100 ms each) so the kill lands after a checkpoint and long
    // before the end.
    let state = dir.path().join("killed");
    let mut child = scan_cmd(&[], &img, &state)
        .args(["--chunk-kib", "1024"])
        .env("VMFS_RESCUE_SCAN_THROTTLE", "100")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while checkpointed(&state) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint");
        assert!(child.try_wait().unwrap().is_none(), "the scan ended before it was killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = checkpointed(&state);
    assert!(at_kill < total, "killed after the end ({at_kill} of {total})");
    // A half-written line past the checkpoint, as a crash mid-append leaves.
    let mut f = std::fs::OpenOptions::new().append(true).open(state.join("findings.jsonl")).unwrap();
    std::io::Write::write_all(&mut f, b"{\"source\":0,\"offs").unwrap();
    drop(f);

    let (resumed, code) = scan(&[], &img, &state);
    assert_eq!(code, 0, "{resumed}");
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["scanned"], total);
    let read = resumed["read_this_run"].as_u64().unwrap();
    assert!(read < total && read == total - at_kill, "resumed run read {read} of {total} (checkpoint at {at_kill})");
    let a = std::fs::read(whole.join("findings.jsonl")).unwrap();
    let b = std::fs::read(state.join("findings.jsonl")).unwrap();
    assert!(a == b, "findings differ after resume ({} vs {} bytes)", a.len(), b.len());
    assert_eq!(resumed["by_kind"], full["by_kind"]);
    drop(guard);
}

#[test]
fn recover_scan_records_bad_sectors_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forge(dir.path(), "bad-sectors", 6, "b6.img");
    let guard = SourceGuard::new(std::slice::from_ref(&img));
    let state = dir.path().join("state");
    let truth_path = Truth::path_for(&img).display().to_string();
    let (sum, code) = scan(&["--bad-sectors", &truth_path], &img, &state);
    assert_eq!(code, 1, "unreadable sectors make status 1: {sum}");
    assert_eq!(sum["scanned"], sum["total"]);
    let idx = ScanIndex::load(&state).unwrap();
    assert!(idx.finished());
    let bad = idx.unreadable(0);
    assert!(!truth.bad_sectors.is_empty());
    for r in &truth.bad_sectors {
        assert!(
            bad.iter().any(|b| b.start <= r.offset && r.offset + r.len <= b.end),
            "bad range {:#x}+{:#x} not in the index: {bad:?}",
            r.offset,
            r.len
        );
    }
    assert_eq!(sum["unreadable_bytes"].as_u64().unwrap(), bad.iter().map(|r| r.end - r.start).sum::<u64>());
    let volume = check_layout(&idx, &truth);
    let ranges: Vec<(u64, u64)> = truth.bad_sectors.iter().map(|r| (r.offset, r.len)).collect();
    check_fds(&idx, &truth, volume, &ranges);
    drop(guard);
}

#[test]
fn recover_scan_refuses_state_on_source_and_other_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = forge(dir.path(), "healthy", 6, "a.img");
    // Another disk: other GUIDs and UUIDs. (A byte copy of `a` would be the same source: its
    // identity is its size and first and last MiB, so a scan may go on from a clone.)
    let (b, _) = forge_seed(dir.path(), "healthy", 6, "b.img", 2);
    let guard = SourceGuard::new(&[a.clone(), b.clone()]);
    let out = scan_cmd(&[], &a, &a.join("state")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is on source"), "{}", text(&out));

    let state = dir.path().join("state");
    let (_, code) = scan(&[], &a, &state);
    assert_eq!(code, 0);
    let before = std::fs::read(state.join("findings.jsonl")).unwrap();
    let out = scan_cmd(&[], &b, &state).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("other sources"), "{}", text(&out));
    assert_eq!(std::fs::read(state.join("findings.jsonl")).unwrap(), before, "a refused resume changed the index");
    drop(guard);
}

/// A front end's stop (the TUI's `x`): the scan ends at the next chunk with its index
/// checkpointed, and the next run resumes it to the same findings as one uninterrupted scan.
#[test]
fn recover_scan_stops_on_request_and_resumes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use vmfs_rescue::recover::{ScanOptions, scan as run_scan};
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = forge(dir.path(), "deleted", 6, "d6.img");
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let whole = dir.path().join("whole");
    let (_, code) = scan(&[], &img, &whole);
    assert_eq!(code, 0);

    let open = || {
        vec![(
            img.display().to_string(),
            vmfs_rescue::datastore::open_sources(std::slice::from_ref(&img)).unwrap().remove(0),
        )]
    };
    let state = dir.path().join("stopped");
    let stop = Arc::new(AtomicBool::new(false));
    let opts = ScanOptions {
        chunk: 1 << 20,
        throttle: Some(Duration::from_millis(20)),
        checkpoint_every: Duration::from_millis(10),
        stop: Some(Arc::clone(&stop)),
        ..ScanOptions::default()
    };
    let mut cb = |p: &vmfs_rescue::recover::Progress| {
        if p.done > 0 {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let first = run_scan(&open(), &state, &opts, &mut cb).unwrap();
    assert!(first.stopped, "{:?}", first.progress);
    assert!(first.progress.done < first.progress.total, "stopped at the end");
    let idx = ScanIndex::load(&state).unwrap();
    assert!(!idx.finished());

    let again = run_scan(&open(), &state, &ScanOptions::default(), &mut |_| {}).unwrap();
    assert!(!again.stopped && again.resumed);
    assert!(ScanIndex::load(&state).unwrap().finished());
    let a = std::fs::read(whole.join("findings.jsonl")).unwrap();
    let b = std::fs::read(state.join("findings.jsonl")).unwrap();
    assert!(a == b, "findings differ after a stop and resume ({} vs {} bytes)", a.len(), b.len());
}
