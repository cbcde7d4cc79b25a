//! Files over 256 GiB (double-indirect pointer blocks) read back byte-exact on VMFS5 and VMFS6.
//!
//! The test forges its image: it copies a real ESXi volume from the corpus, takes the thin
//! 42 TiB double-indirect `large-flat.vmdk` on it, writes known data into free file blocks and
//! hangs them into the pointer tree at indices that only the double-indirect arithmetic reaches
//! (beyond 256 GiB, and through a second top-level pointer on VMFS5), plus a to-be-zeroed block
//! over non-zero bytes. Then it reads every block back through our reader and the CLI, and,
//! when the dissect.vmfs oracle venv exists, through dissect.vmfs too.

use crate::util::{corpus_image, hex};
use crate::vmfs::bin;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::datastore;
use vmfs_rescue::vmfs::address::{make_fb, make_sfb};
use vmfs_rescue::vmfs::{Vmfs, VmfsFile, WalkItem};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A recognizable 1 MiB pattern: every 8 bytes hold (tag, index).
pub(crate) fn pattern(tag: u32) -> Vec<u8> {
    (0..MIB / 8).flat_map(|i| (u64::from(tag) << 32 | i).to_le_bytes()).collect()
}

/// Writes at volume offsets into the image files the volume was assembled from, through its runs.
pub(crate) struct Forge {
    /// (volume offset, image, device offset, length)
    runs: Vec<(u64, PathBuf, u64, u64)>,
}

impl Forge {
    pub(crate) fn write(&self, vol_off: u64, bytes: &[u8]) {
        let (v, img, d, len) = self.runs.iter().find(|r| r.0 <= vol_off && vol_off < r.0 + r.3).expect("mapped");
        assert!(vol_off + bytes.len() as u64 <= v + len, "write crosses a run");
        let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
        f.write_all_at(bytes, d + (vol_off - v)).unwrap();
    }
}

/// The VMFS volume on `imgs`, and a forge that writes into those images.
pub(crate) fn open(imgs: &[PathBuf]) -> (Arc<Vmfs>, Forge) {
    let srcs = datastore::open_sources(imgs).unwrap();
    let (stores, _) = datastore::find(&srcs);
    let d = stores.into_iter().find(|d| d.fs.is_ok()).unwrap();
    let mut runs = Vec::new();
    for p in &d.volume.parts {
        let img = imgs.iter().find(|i| p.source_name.starts_with(&*i.to_string_lossy())).expect("part image");
        for r in &p.runs {
            runs.push((r.0, img.clone(), p.device_offset + r.1, r.2));
        }
    }
    (d.fs.unwrap(), Forge { runs })
}

/// File-system blocks no file uses, from the end of the volume.
pub(crate) fn free_blocks(fs: &Arc<Vmfs>, count: usize) -> Vec<u64> {
    let mut used: Vec<(u64, u64)> = Vec::new();
    let root = fs.root().unwrap();
    fs.walk(&root, "/", true, &mut |item| {
        if let WalkItem::Entry { path, fd, .. } = item {
            let f = VmfsFile::new(Arc::clone(fs), fd.clone(), path);
            for e in f.extents(0..fd.meta.size.min(64 * GIB)) {
                if let vmfs_rescue::vmfs::ExtentKind::Data { vol_off } = e.kind {
                    used.push((vol_off, vol_off + e.len));
                }
            }
        }
    });
    let fbs = fs.geo.fbs;
    let blocks = fs.vol.len() / fbs;
    (0..blocks).rev().filter(|b| used.iter().all(|&(s, e)| e <= b * fbs || s >= (b + 1) * fbs)).take(count).collect()
}

/// Block index -> content of that 1 MiB block (`None`: zeros through a TBZ pointer).
type Truth = BTreeMap<u64, Option<Vec<u8>>>;

fn forge(label: &str, dir: &Path) -> Option<(PathBuf, Truth, u64)> {
    let src = corpus_image(&format!("vmfs/dissect.vmfs-3.13/vmfs/{label}.bin.gz"))?;
    let img = dir.join(format!("{label}-forged.bin"));
    let st = std::process::Command::new("cp").arg("--sparse=always").arg(&src).arg(&img).status().unwrap();
    assert!(st.success());
    let (fs, forge) = open(std::slice::from_ref(&img));
    let geo = fs.geo.clone();
    let fd = fs.lookup("/large-flat.vmdk").unwrap();
    let ptrs = fd.pointers(&geo);
    let top = ptrs[0];
    let n = geo.pb_entries;
    let w = geo.ptr_width as u64;
    let l1 = fs.pointer_block(top, 0).unwrap();
    // The one allocated leaf: 0x42-filled MiB at 117 GiB.
    let l1_idx = (117 * GIB / MIB) / n;
    let l2_raw = l1[l1_idx as usize];
    assert_ne!(l2_raw, 0);
    let l1_vol = fs.resource_volume_offset(top).unwrap();
    let l2_vol = fs.resource_volume_offset(l2_raw).unwrap();
    let orig_leaf = (117 * GIB / MIB) % n;
    let free = free_blocks(&fs, 3);
    assert_eq!(free.len(), 3);
    let mk = |block: u64, tbz: bool| -> Vec<u8> {
        if geo.v6 {
            let spc = fs.sfb_per_cluster;
            make_sfb(block / spc, block % spc, if tbz { 1 } else { 0 }).to_le_bytes().to_vec()
        } else {
            make_fb(block as u32, tbz).to_le_bytes().to_vec()
        }
    };
    let (a, b, c) = (free[0], free[1], free[2]);
    forge.write(a * geo.fbs, &pattern(0xA));
    forge.write(b * geo.fbs, &pattern(0xB));
    forge.write(c * geo.fbs, &pattern(0xC)); // hidden behind a TBZ pointer: must read as zeros
    forge.write(l2_vol + (orig_leaf + 1) * w, &mk(a, false));
    forge.write(l2_vol + (n - 1) * w, &mk(b, false));
    forge.write(l2_vol + (orig_leaf + 2) * w, &mk(c, true));
    // Hang the same leaf block under a first-level index past 256 GiB.
    let far = if geo.v6 { 40 } else { 300 };
    forge.write(l1_vol + far * w, &l2_raw.to_le_bytes()[..w as usize]);
    let mut tops = vec![0u64];
    if !geo.v6 {
        // VMFS5: the second top-level pointer (1 TiB and up) reuses the first-level block.
        forge.write(fd.vol_offset() + geo.ptrs_off as u64 + 4, &top.to_le_bytes()[..4]);
        tops.push(1);
    }
    let size = if geo.v6 { 400 * GIB + 77 } else { GIB * 1024 + 301 * GIB + 123 };
    forge.write(fd.vol_offset() + geo.meta_off as u64 + 0x14, &size.to_le_bytes());

    // Ground truth: block index -> content (None = zeros through TBZ).
    let leaf = |t: u64, i: u64, j: u64| (t * n + i) * n + j;
    let orig = vec![0x42u8; 512].into_iter().chain(std::iter::repeat_n(0, MIB as usize - 512)).collect::<Vec<u8>>();
    let mut truth = BTreeMap::new();
    for &t in &tops {
        for i in [l1_idx, far] {
            truth.insert(leaf(t, i, orig_leaf), Some(orig.clone()));
            truth.insert(leaf(t, i, orig_leaf + 1), Some(pattern(0xA)));
            truth.insert(leaf(t, i, n - 1), Some(pattern(0xB)));
            truth.insert(leaf(t, i, orig_leaf + 2), None);
        }
    }
    truth.retain(|blk, _| (blk + 1) * MIB <= size);
    Some((img, truth, size))
}

fn check(label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((img, truth, size)) = forge(label, dir.path()) else { return };
    assert!(size > 256 * GIB);
    let (fs, _) = open(std::slice::from_ref(&img));
    let fd = fs.lookup("/large-flat.vmdk").unwrap();
    assert_eq!(fd.meta.size, size);
    let file = VmfsFile::new(Arc::clone(&fs), fd, "/large-flat.vmdk");
    let mut buf = vec![0u8; MIB as usize];
    let mut data_blocks = 0;
    for (blk, want) in &truth {
        file.read_at(blk * MIB, &mut buf).unwrap();
        match want {
            Some(w) => {
                assert!(buf == *w, "{label}: block {blk} ({} GiB) differs", blk * MIB / GIB);
                data_blocks += 1;
            }
            None => assert!(buf.iter().all(|&x| x == 0), "{label}: TBZ block {blk} is not zeros"),
        }
    }
    // Nothing else holds data, and the neighbours of forged blocks read as zeros.
    let data: u64 = file.data_ranges(0..size).iter().map(|r| r.end - r.start).sum();
    assert_eq!(data, data_blocks * MIB, "{label}: data outside the forged blocks");
    let first = *truth.keys().next().unwrap();
    assert!(!truth.contains_key(&(first + 3)));
    file.read_at((first + 3) * MIB, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0));
    // The tail past the last whole block reads (size is not block-aligned).
    let mut tail = vec![1u8; (size % MIB) as usize];
    file.read_at(size - tail.len() as u64, &mut tail).unwrap();
    assert!(tail.iter().all(|&x| x == 0));

    // The CLI writes it sparse, and its manifest hashes each data range.
    let out_dir = dir.path().join("out");
    let out =
        bin().arg("extract").arg(&img).arg("--to").arg(&out_dir).args(["--path", "/large-flat.vmdk"]).output().unwrap();
    assert!(out.status.success(), "{label}: {}", String::from_utf8_lossy(&out.stderr));
    let written = out_dir.join("large-flat.vmdk");
    assert_eq!(std::fs::metadata(&written).unwrap().len(), size);
    let f = std::fs::File::open(&written).unwrap();
    for (blk, want) in &truth {
        f.read_exact_at(&mut buf, blk * MIB).unwrap();
        let expect = want.clone().unwrap_or_else(|| vec![0; MIB as usize]);
        assert_eq!(hex(&Sha256::digest(&buf)), hex(&Sha256::digest(&expect)), "{label}: extracted block {blk}");
    }

    // An independent reader agrees, when its venv is there (scripts/setup-oracle.sh).
    if let Some(py) = oracle_python() {
        let offsets: Vec<String> = truth.keys().map(|b| (b * MIB).to_string()).collect();
        let script = format!(
            "import sys,hashlib\nsys.path.insert(0,'{}')\nfrom vmfs_list import open_volume\nv=open_volume(['{}'])\nfh=v.get('/large-flat.vmdk').open()\nfor o in [{}]:\n fh.seek(o); print(hashlib.sha256(fh.read({MIB})).hexdigest())\n",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle").display(),
            img.display(),
            offsets.join(",")
        );
        let out = std::process::Command::new(py).arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "oracle: {}", String::from_utf8_lossy(&out.stderr));
        let theirs: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
        let ours: Vec<String> =
            truth.values().map(|w| hex(&Sha256::digest(w.clone().unwrap_or_else(|| vec![0; MIB as usize])))).collect();
        assert_eq!(theirs, ours, "{label}: dissect.vmfs disagrees");
    } else {
        eprintln!("NOTE: dissect.vmfs oracle venv not found; run scripts/setup-oracle.sh for the cross-check");
    }
}

/// The oracle venv's python, if set up.
pub fn oracle_python() -> Option<PathBuf> {
    let venv = std::env::var_os("VMFS_RESCUE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle-venv"));
    let py = venv.join("bin/python");
    py.is_file().then_some(py)
}

#[test]
fn vmfs5_double_indirect_file_over_256_gib_reads_back() {
    check("vmfs5");
}

#[test]
fn vmfs6_double_indirect_file_over_256_gib_reads_back() {
    check("vmfs6");
}
