//! Deleted files carved back from free space, against the forge's ground truth: whatever
//! content the rebuild offers for a deleted file is that file's, byte for byte; the deleted flat
//! disks come back; nothing carved is a copy of a live file; what has no content says why.

use crate::util::{SourceGuard, hex};
use crate::vmfs::bin;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use vmfs_rescue::block::Source;
use vmfs_rescue::forge::truth::Truth;
use vmfs_rescue::recover::rebuild::{Kind, State, rebuild};

fn sha(src: &Source) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < src.len() {
        let n = (src.len() - pos).min(buf.len() as u64) as usize;
        src.read_at(pos, &mut buf[..n]).unwrap();
        h.update(&buf[..n]);
        pos += n as u64;
    }
    hex(&h.finalize())
}

fn carve_deleted(version: u32) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("deleted.img");
    let out = bin()
        .args(["forge", "--scenario", "deleted", "--version", &version.to_string(), "--size", "3G", "--small"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success(), "forge: {}", String::from_utf8_lossy(&out.stderr));
    let truth = Truth::load(&Truth::path_for(&img)).unwrap();
    let _guard = SourceGuard::new(std::slice::from_ref(&img));

    let srcs = vmfs_rescue::datastore::open_sources(std::slice::from_ref(&img)).unwrap();
    let refs: Vec<&dyn vmfs_rescue::block::BlockSource> = srcs.iter().map(|s| s.as_ref()).collect();
    let findings = vmfs_rescue::recover::reference_scan(&refs);
    let cat = rebuild(&srcs, &findings);

    let by_path: HashMap<&str, _> = truth.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let live_shas: Vec<&str> =
        truth.files.iter().filter(|f| f.state == "live").filter_map(|f| f.sha256.as_deref()).collect();
    let deleted_shas: HashMap<&str, &str> = truth
        .files
        .iter()
        .filter(|f| f.state == "deleted")
        .filter_map(|f| Some((f.sha256.as_deref()?, f.path.as_str())))
        .collect();
    let mut recovered: Vec<String> = Vec::new();
    let mut not: Vec<String> = Vec::new();
    for it in cat.items.iter().filter(|i| matches!(i.state, State::Deleted | State::Carved) && i.kind == Kind::File) {
        let Some(c) = &it.content else {
            assert!(!it.missing.is_empty(), "v{version} {}: no content and no reason", it.out_path());
            not.push(format!("{} ({})", it.out_path(), it.missing.join("; ")));
            continue;
        };
        let got = sha(c);
        assert_eq!(c.len(), it.size, "v{version} {}: size and content length differ", it.out_path());
        assert!(!live_shas.contains(&got.as_str()), "v{version} {}: a copy of a live file", it.out_path());
        match (it.state, it.original.as_deref().and_then(|o| by_path.get(o))) {
            (State::Deleted, Some(t)) => {
                assert_eq!(t.state, "deleted", "v{version} {}", it.out_path());
                assert_eq!(t.sha256.as_deref(), Some(got.as_str()), "v{version} {}: wrong content", it.out_path());
                recovered.push(t.path.clone());
            }
            // Carved (or unnamed) content must be some deleted file's, whole.
            _ => match deleted_shas.get(got.as_str()) {
                Some(p) => recovered.push(p.to_string()),
                None => panic!("v{version} {}: content of no deleted file ({})", it.out_path(), it.method),
            },
        }
    }
    eprintln!("v{version} recovered: {recovered:?}\nv{version} not recovered: {not:#?}");
    for want in ["/win01/win01-flat.vmdk", "/db01/db01-flat.vmdk"] {
        assert!(recovered.iter().any(|p| p == want), "v{version}: {want} not recovered; got {recovered:?}");
    }
    // Each file comes back once.
    let mut seen = recovered.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), recovered.len(), "v{version}: recovered twice: {recovered:?}");
}

#[test]
fn carve_deleted_vmfs5() {
    carve_deleted(5);
}

#[test]
fn carve_deleted_vmfs6() {
    carve_deleted(6);
}
