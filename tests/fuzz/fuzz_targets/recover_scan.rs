//! The scan's classifier and the rebuild on arbitrary bytes: no panic, no hang, and every
//! finding lies inside the bytes classified.
// fuzz-smoke: -max_len=65536
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use vmfs_rescue::block::{MemSource, Source, Tolerant};
use vmfs_rescue::recover::{classify, rebuild, reference_scan};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let end = data.len().saturating_sub(classify::LOOKAHEAD.min(data.len() / 2));
    classify::classify(data, 0..end, 0, &mut out);
    assert!(out.iter().all(|(off, _)| (*off as usize) < end.max(1)));
    let src: Source = Arc::new(Tolerant::new(MemSource::new("fuzz", data.to_vec())));
    let found = reference_scan(&[src.as_ref()]);
    let cat = rebuild::rebuild(&[src], &found);
    for i in &cat.items {
        let _ = i.out_path();
    }
});
