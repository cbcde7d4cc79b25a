//! Deleted files carved back from free space, against the forge's ground truth: whatever
//! content the rebuild offers for a deleted file is that file's, byte for byte; the deleted flat
//! disks come back; nothing carved is a copy of a live file; what has no content says why.

use crate::util::{SourceGuard, hex};
use crate::vmfs::bin;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use vmfs_rescue::block::Source;
use vmfs_rescue::forge::truth::Truth;
use vmfs_rescue::recover::rebuild::{Catalog, Kind, State, rebuild};

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

/// Forge `scenario` on VMFS `version`, rebuild it, and check every item with content against the
/// truth; returns the truth paths that came back (each once) and the catalogue.
fn carve_scenario(scenario: &str, version: u32, want: &[&str]) -> (Vec<String>, Truth, Catalog) {
    carve_damaged(scenario, version, want, &|_, _| {})
}

/// The same, with `damage` done to the image after forging.
fn carve_damaged(
    scenario: &str,
    version: u32,
    want: &[&str],
    damage: &dyn Fn(&std::path::Path, &Truth),
) -> (Vec<String>, Truth, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("deleted.img");
    let out = bin()
        .args(["forge", "--scenario", scenario, "--version", &version.to_string(), "--size", "3G", "--small"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success(), "forge: {}", String::from_utf8_lossy(&out.stderr));
    let truth = Truth::load(&Truth::path_for(&img)).unwrap();
    damage(&img, &truth);
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
        .filter(|f| f.state == "deleted" || f.state == "unreachable")
        .filter_map(|f| Some((f.sha256.as_deref()?, f.path.as_str())))
        .collect();
    let mut recovered: Vec<String> = Vec::new();
    let mut not: Vec<String> = Vec::new();
    for it in cat
        .items
        .iter()
        .filter(|i| matches!(i.state, State::Deleted | State::Damaged | State::Carved) && i.kind == Kind::File)
    {
        let Some(c) = &it.content else {
            assert!(!it.missing.is_empty(), "v{version} {}: no content and no reason", it.out_path());
            not.push(format!("{} ({})", it.out_path(), it.missing.join("; ")));
            continue;
        };
        let got = sha(c);
        assert_eq!(c.len(), it.size, "v{version} {}: size and content length differ", it.out_path());
        assert!(!live_shas.contains(&got.as_str()), "v{version} {}: a copy of a live file", it.out_path());
        match (it.state, it.original.as_deref().and_then(|o| by_path.get(o))) {
            (State::Deleted | State::Damaged, Some(t)) => {
                assert!(t.state == "deleted" || t.state == "unreachable", "v{version} {}", it.out_path());
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
    eprintln!("{scenario} v{version} recovered: {recovered:?}\nv{version} not recovered: {not:#?}");
    for want in want {
        assert!(recovered.iter().any(|p| p == want), "{scenario} v{version}: {want} not recovered; got {recovered:?}");
    }
    // Each file comes back once.
    let mut seen = recovered.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), recovered.len(), "{scenario} v{version}: recovered twice: {recovered:?}");
    (recovered, truth, cat)
}

/// Every file of the deleted VM folder whose bytes survived (the truth records no overwritten
/// range) comes back; the ones that lived inside their FD are reported as such.
fn carve_deleted(version: u32, want: &[&str]) -> Catalog {
    let (recovered, truth, cat) = carve_scenario("deleted", version, want);
    for f in truth.files.iter().filter(|f| f.state == "deleted" && f.kind == "file") {
        if f.overwritten.is_empty() {
            assert!(recovered.contains(&f.path), "v{version}: {} survived but did not come back", f.path);
            continue;
        }
        assert!(!recovered.contains(&f.path), "v{version}: {} was overwritten, yet came back", f.path);
        let it = cat.items.iter().find(|i| i.original.as_deref() == Some(f.path.as_str()));
        if let Some(it) = it {
            assert!(it.missing.iter().any(|m| m.contains("resident")), "v{version} {}: {:?}", f.path, it.missing);
        }
    }
    cat
}

#[test]
fn carve_deleted_vmfs5() {
    carve_deleted(
        5,
        &[
            "/win01/win01-flat.vmdk",
            "/db01/db01-flat.vmdk",
            "/db01/db01-000001-delta.vmdk",
            "/db01/db01.vmx",
            "/db01/db01.nvram",
            "/db01/vmware.log",
            "/db01/vmware-1.log",
        ],
    );
}

#[test]
fn carve_deleted_vmfs6() {
    let cat = carve_deleted(
        6,
        &["/win01/win01-flat.vmdk", "/db01/db01-flat.vmdk", "/db01/db01-000001-sesparse.vmdk", "/db01/db01.nvram"],
    );
    // The SEsparse delta's descriptor was resident (lost): it is written again, naming the delta.
    let d = cat
        .items
        .iter()
        .find(|i| i.state == State::Regenerated && i.path.last().is_some_and(|n| n == "db01-000001.vmdk"))
        .expect("a regenerated descriptor for db01-000001.vmdk");
    let c = d.content.as_ref().unwrap();
    let mut text = vec![0u8; c.len() as usize];
    c.read_at(0, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("SESPARSE \"db01-000001-sesparse.vmdk\"") && text.contains("parentFileNameHint=\"db01.vmdk\"")
    );
}

/// VMFS3 (ESX 3.x: MBR at LBA 128, no resident files, 64 KiB sub-blocks): the small text files
/// live in sub-blocks and come back from free space.
#[test]
fn carve_deleted_vmfs3() {
    carve_deleted(
        3,
        &[
            "/win01/win01-flat.vmdk",
            "/win01/win01.vmdk",
            "/db01/db01-flat.vmdk",
            "/db01/db01.vmdk",
            "/db01/db01-000001-delta.vmdk",
            "/db01/db01-000001.vmdk",
            "/db01/db01.vmx",
            "/db01/db01.vmsd",
            "/db01/db01.nvram",
            "/db01/vmware.log",
            "/db01/vmware-1.log",
        ],
    );
}

/// Garbage over the FDs of /web01: the content of its files whose blocks the structures in
/// them describe comes back as carved items (content checked against the truth by the helper);
/// the thin flat disk with holes is not carved as if contiguous; each file is named in a note.
#[test]
fn carve_unreachable_after_fd_garbage() {
    for (version, want) in [
        (
            5,
            &[
                "/web01/web01.vmx",
                "/web01/vmware.log",
                "/web01/vmware-1.log",
                "/web01/web01.nvram",
                "/web01/web01-000001-delta.vmdk",
            ][..],
        ),
        (6, &["/web01/web01.nvram", "/web01/web01-000001-sesparse.vmdk"][..]),
    ] {
        let (recovered, truth, cat) = carve_scenario("fd-cluster-corrupt", version, want);
        assert!(!recovered.iter().any(|p| p == "/web01/web01-flat.vmdk"), "v{version}: {recovered:?}");
        for f in truth.files.iter().filter(|f| f.state == "unreachable") {
            let name = f.path.rsplit('/').next().unwrap();
            assert!(
                recovered.contains(&f.path) || cat.notes.iter().any(|n| n.contains(&f.path)),
                "v{version}: {} neither recovered nor named (notes: {:?}), {name}",
                f.path,
                cat.notes
            );
        }
    }
}

/// A deleted SEsparse delta whose back map disagrees with its grain tables is not carved (no
/// guessed content), and the deleted file says why.
#[test]
fn sesparse_with_a_bad_back_map_is_not_carved() {
    use std::os::unix::fs::FileExt;
    let spoil = |img: &std::path::Path, t: &Truth| {
        let f = t.file("/db01/db01-000001-sesparse.vmdk").unwrap();
        // The back map is at file offset 5 MiB; the volume starts 0x1100000 into the partition.
        let at = f.extents.iter().find(|e| e[0] <= 5 << 20 && 5 << 20 < e[0] + e[2]).unwrap();
        let vol = at[1] + (5 << 20) - at[0];
        let file = std::fs::OpenOptions::new().read(true).write(true).open(img).unwrap();
        let base = t.images[0].partition_offset + 0x110_0000;
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, base + f.extents[0][1]).unwrap();
        assert_eq!(u64::from_le_bytes(magic), 0xCAFE_BABE, "the delta's header is where the truth says");
        file.write_all_at(&0x1000_0000_0000_0007u64.to_le_bytes(), base + vol).unwrap();
    };
    let (recovered, _, cat) = carve_damaged("deleted", 6, &[], &spoil);
    assert!(!recovered.iter().any(|p| p.ends_with("-sesparse.vmdk")), "{recovered:?}");
    let it = cat.items.iter().find(|i| i.original.as_deref() == Some("/db01/db01-000001-sesparse.vmdk")).unwrap();
    assert!(it.content.is_none() && it.missing.iter().any(|m| m.contains("back map")), "{:?}", it.missing);
}
