//! Make a seed for the `vmfs_volume` fuzz target from a real volume: record every byte range the
//! reader touches below 64 MiB while opening the volume and walking it, and write them in the
//! target's (selector, length, bytes) format.
//!
//! Usage: fuzz_seed IMAGE OUT_FILE

use std::ops::Range;
use std::sync::{Arc, Mutex};
use vmfs_rescue::block::{BlockSource, ReadError, Source};
use vmfs_rescue::vmfs::Vmfs;

const SIZE: u64 = 64 << 20;

struct Recorder {
    inner: Source,
    reads: Mutex<Vec<Range<u64>>>,
}

impl BlockSource for Recorder {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.reads.lock().unwrap().push(offset..offset + buf.len() as u64);
        self.inner.read_at(offset, buf)
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        self.inner.unreadable(range)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let srcs = vmfs_rescue::datastore::open_sources(&[args[1].clone().into()]).unwrap();
    let (stores, _) = vmfs_rescue::datastore::find(&srcs);
    let vol = stores.into_iter().next().expect("a volume").volume.source;
    let rec = Arc::new(Recorder { inner: vol, reads: Mutex::new(Vec::new()) });
    let fs = Arc::new(Vmfs::open(rec.clone()).unwrap());
    let root = fs.root().unwrap();
    // The root directory and a few entries of it: enough to reach every code path once.
    for e in fs.read_dir(&root).unwrap().iter().filter(|e| !e.name.starts_with(b".")).take(8) {
        if let Ok(fd) = fs.read_fd(e.addr) {
            let f = vmfs_rescue::vmfs::VmfsFile::new(Arc::clone(&fs), fd.clone(), "x");
            let n = fd.meta.size.min(2048) as usize;
            let mut buf = vec![0u8; n];
            let _ = f.read_at(0, &mut buf);
        }
    }
    // 1 KiB-aligned pieces of what was read, below 64 MiB.
    let mut blocks: Vec<u64> = Vec::new();
    for r in rec.reads.lock().unwrap().iter() {
        for b in r.start / 1024..r.end.div_ceil(1024) {
            if b * 1024 < SIZE {
                blocks.push(b);
            }
        }
    }
    blocks.sort_unstable();
    blocks.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < blocks.len() {
        let start = blocks[i];
        let mut end = start + 1;
        while i + 1 < blocks.len() && blocks[i + 1] == end && (end - start) < 63 {
            i += 1;
            end += 1;
        }
        i += 1;
        let mut bytes = vec![0u8; ((end - start) * 1024) as usize];
        rec.inner.read_at(start * 1024, &mut bytes).unwrap();
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        if bytes.is_empty() || start > u64::from(u16::MAX) {
            continue;
        }
        // Selectors below 192 address fixed spots; from 192 on, selector × 1 KiB.
        assert!(start >= 192, "piece at {start} KiB cannot be addressed");
        out.extend_from_slice(&(start as u16).to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    std::fs::write(&args[2], &out).unwrap();
    eprintln!("{} bytes of seed", out.len());
}
