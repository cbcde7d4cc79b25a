//! Image formats whose structures lie far apart (VHDX regions at 1 MiB and beyond, qcow2 L2
//! tables and snapshot tables, VHD BATs at the end): the input is a list of pieces placed at
//! offsets of a sparse file of up to 256 MiB, so the fuzzer reaches the BAT, metadata and log
//! parsers that a contiguous 256 KiB input cannot. The file is opened as a whole image.
//!
//! Input: `size_mib: u8`, then pieces `offset_in_4k: u16 (LE), len: u16 (LE), bytes[len]`.
// fuzz-smoke: -max_len=65536
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, SparseMem, Source};
use vmfs_rescue::vdisk::{Files, VdiskError};

struct One(Source);

impl Files for One {
    fn open(&self, path: &str) -> Result<Source, VdiskError> {
        if path == "/d.img" {
            Ok(Arc::clone(&self.0))
        } else {
            Err(VdiskError::Missing { file: path.into(), why: "absent".into() })
        }
    }
    fn list(&self, _dir: &str) -> Result<Vec<String>, VdiskError> {
        Ok(vec!["d.img".into()])
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&size_mib, mut rest)) = data.split_first() else { return };
    let len = (u64::from(size_mib) + 1) << 20;
    let mut regions = BTreeMap::new();
    while rest.len() >= 4 {
        let off = u64::from(u16::from_le_bytes([rest[0], rest[1]])) * 4096;
        let n = usize::from(u16::from_le_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        if off < len {
            let keep = n.min((len - off) as usize);
            regions.insert(off, rest[4..4 + keep].to_vec());
        }
        rest = &rest[4 + n..];
    }
    let src: Source = Arc::new(SparseMem { name: "d.img".into(), len, regions });
    let files = One(src);
    let Ok(disk) = vmfs_rescue::vdisk::open(&files, "/d.img") else { return };
    let len = disk.len();
    let _ = disk.data_ranges(0..len.min(1 << 40));
    let _ = disk.unreadable(0..len.min(1 << 30));
    let mut buf = vec![0u8; 65536];
    for off in [0, len / 3, len / 2, len.saturating_sub(65536)] {
        let n = (len - off.min(len)).min(65536) as usize;
        let _ = disk.read_at(off.min(len), &mut buf[..n]);
    }
});
