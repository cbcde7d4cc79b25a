//! Recovery engine: one sequential pass over the sources finds every surviving structure
//! (`scan`), the findings are kept in a resumable index next to the output (`index`), and
//! volumes, directory trees, orphaned, deleted and re-formatted files are rebuilt from them.
//!
//! The scan never interprets more than one sector-aligned position at a time (`classify`); what
//! the findings mean together is decided afterwards, from the index, without a second full read.

mod checkpoint;
pub mod classify;
pub mod error;
pub mod finding;
pub mod index;
pub mod output;
pub mod rebuild;
pub mod scan;

pub use error::RecoverError;
pub use finding::{Finding, What};
pub use index::{IndexedSource, ScanIndex};
pub use scan::{Progress, ScanOptions, ScanSummary, scan};

use crate::block::BlockSource;

/// The simplest possible scan: one thread, one buffer, every data range of every source in
/// order. It is the reference the parallel engine is tested against, and small sources use it.
pub fn reference_scan(sources: &[&dyn BlockSource]) -> Vec<Finding> {
    const CHUNK: u64 = 8 << 20;
    let mut out = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        for r in src.data_ranges(0..src.len()) {
            let start = r.start / classify::SECTOR as u64 * classify::SECTOR as u64;
            let mut pos = start;
            while pos < r.end {
                let end = (pos + CHUNK).min(r.end);
                let with_look = (end + classify::LOOKAHEAD as u64).min(src.len());
                let mut buf = vec![0u8; (with_look - pos) as usize];
                if src.read_at(pos, &mut buf).is_err() {
                    pos = end;
                    continue;
                }
                let mut found = Vec::new();
                classify::classify(&buf, 0..(end - pos) as usize, pos, &mut found);
                out.extend(found.into_iter().map(|(offset, what)| Finding { source: i, offset, what }));
                pos = end;
            }
        }
    }
    out
}
