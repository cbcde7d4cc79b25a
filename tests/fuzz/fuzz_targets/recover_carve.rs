//! The carving parsers on arbitrary bytes: the .nvram section walk and the SEsparse constant
//! header. No panic, no hang; a length is never past the bytes given, regions never overlap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmfs_rescue::recover::rebuild::{SesparseLayout, nvram_len};

fuzz_target!(|data: &[u8]| {
    let mut b = b"MRVN".to_vec();
    b.extend_from_slice(data);
    if let Some(n) = nvram_len(&b) {
        assert!(n as usize <= b.len());
    }
    let _ = nvram_len(data);
    if let Some(l) = SesparseLayout::parse(data) {
        assert!(l.regions.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
    }
});
