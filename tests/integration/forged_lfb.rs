//! VMFS6 large file blocks (512 MiB, used by thick files), which no corpus image holds: a copy of
//! the real two-device VMFS6 volume gets a file mapped by LFB pointers (one with data, one to-be-zeroed over
//! non-zero bytes, one hole), read back through our reader and the CLI, and through dissect.vmfs
//! when its venv is there.

use crate::forged_double_indirect::{free_blocks, open, oracle_python, pattern};
use crate::util::{corpus_image, hex};
use crate::vmfs::bin;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::vmfs::VmfsFile;
use vmfs_rescue::vmfs::address::make_lfb;

const MIB: u64 = 1 << 20;

#[test]
fn vmfs6_large_file_blocks_read_back() {
    // The two-device VMFS6 volume: its second device is empty, so whole LFBs are free there.
    let mut imgs = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    for part in ["0", "1"] {
        let Some(src) = corpus_image(&format!("vmfs/dissect.vmfs-3.13/vmfs/span/vmfs6-span-{part}.bin.gz")) else {
            return;
        };
        let img = dir.path().join(format!("vmfs6-span-{part}.bin"));
        assert!(
            std::process::Command::new("cp").arg("--sparse=always").arg(&src).arg(&img).status().unwrap().success()
        );
        imgs.push(img);
    }
    let (fs, forge) = open(&imgs);
    let geo = fs.geo.clone();
    assert_eq!(geo.lfb, 512 * MIB);
    let per_lfb = geo.lfb / geo.fbs;
    let free = free_blocks(&fs, (fs.vol.len() / geo.fbs) as usize);
    let free_lfbs: Vec<u64> =
        (1..fs.vol.len() / geo.lfb).filter(|l| (l * per_lfb..(l + 1) * per_lfb).all(|b| free.contains(&b))).collect();
    assert!(free_lfbs.len() >= 2, "free LFBs: {free_lfbs:?}");
    let (data_lfb, tbz_lfb) = (free_lfbs[0], free_lfbs[1]);
    let written = [0u64, 1, 300, 511];
    for (i, k) in written.iter().enumerate() {
        forge.write(data_lfb * geo.lfb + k * MIB, &pattern(0x100 + i as u32));
    }
    forge.write(tbz_lfb * geo.lfb + 5 * MIB, &pattern(0xBAD));
    // This volume holds no user file, so the FD of .unmap.sf (read for data by neither reader)
    // becomes the thick file.
    let fd = fs.lookup("/.unmap.sf").unwrap();
    let meta = fd.vol_offset() + geo.meta_off as u64;
    let size = 5 * geo.lfb / 2 + 4321;
    forge.write(meta + 0x14, &size.to_le_bytes());
    forge.write(meta + 0x1c, &geo.lfb.to_le_bytes());
    forge.write(meta + 0x89, &[29]);
    let mut ptrs = vec![0u8; geo.ptrs_count * 8];
    ptrs[0..8].copy_from_slice(&make_lfb(data_lfb, 0).to_le_bytes());
    ptrs[8..16].copy_from_slice(&make_lfb(tbz_lfb, 0x80).to_le_bytes());
    forge.write(fd.vol_offset() + geo.ptrs_off as u64, &ptrs);
    drop(fs);

    let expect = |off: u64| -> Vec<u8> {
        match written.iter().position(|&k| off == k * MIB) {
            Some(i) => pattern(0x100 + i as u32),
            None => vec![0; MIB as usize],
        }
    };
    let (fs, _) = open(&imgs);
    let fd = fs.lookup("/.unmap.sf").unwrap();
    assert_eq!(fd.meta.size, size);
    let file = VmfsFile::new(Arc::clone(&fs), fd, "/.unmap.sf");
    let mut buf = vec![0u8; MIB as usize];
    let probes: Vec<u64> = [0, 1, 2, 299, 300, 301, 511, 512, 517, 1023, 1024, 1279].iter().map(|m| m * MIB).collect();
    for &off in &probes {
        file.read_at(off, &mut buf).unwrap();
        assert!(buf == expect(off), "block at {} MiB", off / MIB);
    }
    let data: u64 = file.data_ranges(0..size).iter().map(|r| r.end - r.start).sum();
    assert_eq!(data, geo.lfb, "the data LFB, and nothing else, holds data");
    assert_eq!(file.allocated_bytes(), 2 * geo.lfb, "both LFBs are allocated");

    // Whole-file hash through the CLI equals the ground truth.
    let mut h = Sha256::new();
    let mut off = 0;
    while off < size {
        let n = (size - off).min(MIB);
        h.update(&expect(off)[..n as usize]);
        off += n;
    }
    let truth = hex(&h.finalize());
    let out_dir = dir.path().join("out");
    let out =
        bin().arg("extract").args(&imgs).arg("--to").arg(&out_dir).args(["--path", "/.unmap.sf"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m[0]["sha256"], truth.as_str());

    if let Some(py) = oracle_python() {
        let script = format!(
            "import sys,hashlib\nsys.path.insert(0,'{}')\nfrom vmfs_list import open_volume\nfh=open_volume({:?}).get('/.unmap.sf').open()\nh=hashlib.sha256()\nwhile True:\n b=fh.read(1<<24)\n if not b: break\n h.update(b)\nprint(h.hexdigest())\n",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle").display(),
            imgs.iter().map(|i| i.display().to_string()).collect::<Vec<_>>()
        );
        let out = std::process::Command::new(py).arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "oracle: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), truth, "dissect.vmfs disagrees");
    }
}
