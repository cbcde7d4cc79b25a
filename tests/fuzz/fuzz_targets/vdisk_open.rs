//! Opening and reading a virtual disk from hostile bytes: the input is split into a VMDK
//! descriptor (up to its first 0xFF byte) and one extent file `e.bin`, or is one whole image
//! when it starts (or, for footer formats, ends) with a known magic: KDMV, qcow2, VHD, VHDX,
//! VDI, ... (`vdisk::image::detect`). No panic, no unbounded allocation, and reads stay inside the disk.
// fuzz-smoke: -max_len=262144
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, SparseMem, Source};
use vmfs_rescue::vdisk::{Files, VdiskError};

struct Mem(BTreeMap<String, Source>);

impl Files for Mem {
    fn open(&self, path: &str) -> Result<Source, VdiskError> {
        self.0.get(path).cloned().ok_or_else(|| VdiskError::Missing { file: path.into(), why: "absent".into() })
    }
    fn list(&self, _dir: &str) -> Result<Vec<String>, VdiskError> {
        Ok(self.0.keys().map(|k| k.trim_start_matches('/').to_string()).collect())
    }
}

fn src(name: &str, b: &[u8]) -> Source {
    Arc::new(SparseMem::from_bytes(name, b.to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let mut files = BTreeMap::new();
    let whole = matches!(vmfs_rescue::vdisk::image::detect(&src("d", data)), Ok(Some(_)));
    match data.iter().position(|&b| b == 0xFF) {
        Some(i) if !whole => {
            files.insert("/d.vmdk".to_string(), src("d.vmdk", &data[..i]));
            files.insert("/e.bin".to_string(), src("e.bin", &data[i + 1..]));
        }
        _ => {
            files.insert("/d.vmdk".to_string(), src("d.vmdk", data));
        }
    }
    let Ok(disk) = vmfs_rescue::vdisk::open(&Mem(files), "/d.vmdk") else { return };
    let len = disk.len();
    let _ = disk.data_ranges(0..len);
    let _ = disk.unreadable(0..len.min(1 << 30));
    let mut buf = vec![0u8; 4096];
    for off in [0, len / 2, len.saturating_sub(4096)] {
        let n = (len - off.min(len)).min(4096) as usize;
        let _ = disk.read_at(off.min(len), &mut buf[..n]);
    }
});
