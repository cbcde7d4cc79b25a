//! Guest disks and file systems on arbitrary bytes: `guest::open_disk`, `open_fs`, then a walk
//! of the whole tree (deleted entries included) and reads of each file's first and last KiB.
//! Nothing may panic, hang, or allocate from an unchecked count.
//!
//! The input is the disk itself (a small disk: the boot sector decides where the FAT, the
//! root directory and the data area are, so every structure is reachable from a short input),
//! padded with zeros to 1 MiB when shorter.
// fuzz-smoke: -max_len=262144
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use vmfs_rescue::block::{MemSource, Source, Tolerant};
use vmfs_rescue::guest::{self, Kind};

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.len() < 1 << 20 {
        bytes.resize(1 << 20, 0);
    }
    let disk: Source = Arc::new(Tolerant::new(MemSource::new("fuzz-guest", bytes)));
    let Ok(g) = guest::open_disk(&disk) else { return };
    for v in g.volumes.iter().take(4) {
        let Ok(fs) = guest::open_fs(&v.source) else { continue };
        let mut n = 0;
        let mut errors = Vec::new();
        guest::walk(&*fs, &fs.root(), "", &mut |_, e| {
            n += 1;
            if n > 2000 || e.kind != Kind::File {
                return;
            }
            if let Ok(f) = fs.open(e, None) {
                let mut buf = [0u8; 1024];
                for off in [0, f.len().saturating_sub(1024)] {
                    let len = (f.len() - off.min(f.len())).min(1024) as usize;
                    let _ = f.read_at(off, &mut buf[..len]);
                    let _ = f.unreadable(off..off + len as u64);
                    let _ = f.data_ranges(off..off + len as u64);
                }
            }
        }, &mut errors);
    }
});
