//! Comparing two disks by content (`vdisk verify`): what is a hole in both is not read, the rest
//! is read in large aligned pieces, each side by its own thread, and compared in order.
//! Also how a file to compare is opened: as a virtual disk, or else as a raw image.

use crate::block::{BlockSource, ReadError, Source, merge_ranges};
use crate::extract::for_windows;
use crate::vdisk::{self, Files, VdiskError};
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Size of one read.
const CHUNK: u64 = 8 << 20;
/// Pieces in flight per side.
const DEPTH: usize = 3;
/// Differing bytes are looked for in blocks of this size (equal blocks are skipped by memcmp).
const BLOCK: usize = 4096;

/// What a comparison found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Size of the first disk.
    pub len_a: u64,
    /// Size of the second disk.
    pub len_b: u64,
    /// The first offset where the content differs (when the sizes differ and the common part
    /// is equal: the smaller size).
    pub first_difference: Option<u64>,
    /// Differing bytes in the common part.
    pub differing_bytes: u64,
    /// Maximal runs of differing bytes in the common part.
    pub differing_ranges: u64,
    /// The first of those runs (at most `max_ranges` of [`compare`]).
    pub ranges: Vec<Range<u64>>,
    /// Bytes read from each side (data in either); the rest was a hole in both.
    pub bytes_compared: u64,
    /// Unreadable ranges of each side (read, and compared, as zeros).
    pub unreadable_a: Vec<Range<u64>>,
    /// See `unreadable_a`.
    pub unreadable_b: Vec<Range<u64>>,
}

impl Comparison {
    /// Same size, same bytes.
    pub fn identical(&self) -> bool {
        self.first_difference.is_none()
    }
}

/// Compare `a` and `b` byte by byte over their common size; keep the first `max_ranges`
/// differing runs. Unreadable bytes compare as the zeros they read as, and are reported.
pub fn compare(a: &dyn BlockSource, b: &dyn BlockSource, max_ranges: usize) -> Result<Comparison, ReadError> {
    let len = a.len().min(b.len());
    let (to_a, plan_a) = sync_channel::<Range<u64>>(DEPTH);
    let (to_b, plan_b) = sync_channel::<Range<u64>>(DEPTH);
    let (a_out, from_a) = sync_channel::<Result<Got, ReadError>>(DEPTH);
    let (b_out, from_b) = sync_channel::<Result<Got, ReadError>>(DEPTH);
    let (a_back, a_pool) = sync_channel::<Vec<u8>>(2 * DEPTH + 2);
    let (b_back, b_pool) = sync_channel::<Vec<u8>>(2 * DEPTH + 2);
    let mut diff = Diff { max_ranges, ..Diff::default() };
    let mut compared = 0u64;
    let mut failed = None;
    std::thread::scope(|s| {
        s.spawn(move || plan(a, b, len, &to_a, &to_b));
        s.spawn(move || read_side(a, plan_a, a_out, a_pool));
        s.spawn(move || read_side(b, plan_b, b_out, b_pool));
        // Pieces come in the planned order from both sides; stop at the first read error
        // (dropping the receivers stops the readers and the planner).
        for (ra, rb) in from_a.iter().zip(from_b.iter()) {
            let (pa, pb) = match (ra, rb) {
                (Ok(x), Ok(y)) => (x, y),
                (Err(e), _) | (_, Err(e)) => {
                    failed = Some(e);
                    break;
                }
            };
            diff.piece(&pa.1, &pb.1, pa.0);
            compared += pa.1.len() as u64;
            let _ = a_back.try_send(pa.1);
            let _ = b_back.try_send(pb.1);
        }
        drop((from_a, from_b));
    });
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(r) = diff.cur.take() {
        diff.close(r);
    }
    let first = diff.first.or((a.len() != b.len()).then_some(len));
    Ok(Comparison {
        len_a: a.len(),
        len_b: b.len(),
        first_difference: first,
        differing_bytes: diff.bytes,
        differing_ranges: diff.count,
        ranges: diff.ranges,
        bytes_compared: compared,
        unreadable_a: merge_ranges(a.unreadable(0..a.len())),
        unreadable_b: merge_ranges(b.unreadable(0..b.len())),
    })
}

/// A piece read from one side: its offset and bytes.
type Got = (u64, Vec<u8>);

/// Send the pieces to read, to both readers in the same order: the union of both sides' data
/// ranges, cut at CHUNK boundaries.
fn plan(
    a: &dyn BlockSource,
    b: &dyn BlockSource,
    len: u64,
    to_a: &SyncSender<Range<u64>>,
    to_b: &SyncSender<Range<u64>>,
) {
    let mut stopped = false;
    for_windows(len, |w| {
        let mut v = a.data_ranges(w.clone());
        v.extend(b.data_ranges(w));
        let ranges = merge_ranges(v);
        let empty = ranges.is_empty();
        'ranges: for r in ranges {
            let mut off = r.start;
            while off < r.end {
                let n = (CHUNK - off % CHUNK).min(r.end - off);
                if to_a.send(off..off + n).is_err() || to_b.send(off..off + n).is_err() {
                    stopped = true;
                    break 'ranges;
                }
                off += n;
            }
        }
        empty && !stopped
    });
}

fn read_side(
    src: &dyn BlockSource,
    plan: Receiver<Range<u64>>,
    out: SyncSender<Result<Got, ReadError>>,
    pool: Receiver<Vec<u8>>,
) {
    for r in plan {
        let mut buf = pool.try_recv().unwrap_or_default();
        // `r` is at most CHUNK long.
        buf.resize((r.end - r.start) as usize, 0);
        let res = src.read_at(r.start, &mut buf).map(|()| (r.start, buf));
        let stop = res.is_err();
        if out.send(res).is_err() || stop {
            break;
        }
    }
}

/// Differences found so far.
#[derive(Default)]
struct Diff {
    max_ranges: usize,
    first: Option<u64>,
    bytes: u64,
    count: u64,
    ranges: Vec<Range<u64>>,
    /// The run being extended (it may continue into the next piece).
    cur: Option<Range<u64>>,
}

impl Diff {
    fn piece(&mut self, a: &[u8], b: &[u8], off: u64) {
        if a == b {
            return;
        }
        for (i, (ba, bb)) in a.chunks(BLOCK).zip(b.chunks(BLOCK)).enumerate() {
            if ba == bb {
                continue;
            }
            let base = off + (i * BLOCK) as u64;
            for (j, (x, y)) in ba.iter().zip(bb).enumerate() {
                if x != y {
                    self.byte(base + j as u64);
                }
            }
        }
    }

    fn byte(&mut self, at: u64) {
        self.first.get_or_insert(at);
        self.bytes += 1;
        match &mut self.cur {
            Some(r) if r.end == at => r.end += 1,
            _ => {
                if let Some(r) = self.cur.replace(at..at + 1) {
                    self.close(r);
                }
            }
        }
    }

    fn close(&mut self, r: Range<u64>) {
        self.count += 1;
        if self.ranges.len() < self.max_ranges {
            self.ranges.push(r);
        }
    }
}

/// A file opened for comparison.
pub struct Opened {
    /// Its content.
    pub disk: Source,
    /// `None` for a virtual disk; for a raw image, why it was not taken for a virtual disk.
    pub raw_because: Option<String>,
    /// A virtual disk's chain problems (it is read anyway).
    pub problems: Vec<String>,
}

/// Open `path` as a virtual disk, or, when it is no virtual disk at all (neither a descriptor
/// nor a sparse extent: e.g. a raw image or a flat extent), as a raw image. A damaged virtual
/// disk stays an error: comparing its container bytes would say nothing.
pub fn open_disk(
    files: &dyn Files,
    path: &str,
    raw: impl FnOnce() -> Result<Source, VdiskError>,
) -> Result<Opened, VdiskError> {
    match vdisk::open(files, path) {
        Ok(d) => {
            let problems = d.problems.clone();
            Ok(Opened { disk: Arc::new(d), raw_because: None, problems })
        }
        Err(e) => {
            // Only "this very file is no virtual disk" falls back to raw.
            let what = match &e {
                VdiskError::Descriptor { file, what } if file == path => what.clone(),
                VdiskError::UnknownFormat { file, size } if file == path => {
                    format!("{size} bytes without a virtual-disk header")
                }
                _ => return Err(e),
            };
            let file = path.to_string();
            let src = raw()?;
            let mut head = vec![0u8; src.len().min(4096) as usize];
            src.read_at(0, &mut head)?;
            if head.starts_with(b"KDMV") || vdisk::descriptor::looks_like_descriptor(&head) {
                return Err(VdiskError::Descriptor { file, what });
            }
            if let Some(format) = vdisk::image::detect(&src)? {
                // Comparing a container's bytes with a disk's content would report nonsense.
                return Err(VdiskError::Unsupported {
                    file,
                    what: format!("a {} image that cannot be opened: {what}", format.name()),
                });
            }
            Ok(Opened { disk: src, raw_because: Some(what), problems: Vec::new() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::SparseMem;

    fn mem(len: u64, regions: &[(u64, Vec<u8>)]) -> SparseMem {
        let mut m = SparseMem::zeros("m", len);
        for (at, b) in regions {
            m.regions.insert(*at, b.clone());
        }
        m
    }

    #[test]
    fn equal_with_different_allocation() {
        // Same content: data of zeros on one side is a hole on the other.
        let a = mem(40 << 20, &[(5, vec![7; 100]), (20 << 20, vec![0; 9 << 20])]);
        let b = mem(40 << 20, &[(0, vec![0; 5]), (5, vec![7; 100])]);
        let c = compare(&a, &b, 10).unwrap();
        assert!(c.identical(), "{c:?}");
        assert_eq!(c.differing_bytes, 0);
        assert_eq!(c.bytes_compared, 105 + (9 << 20));
    }

    #[test]
    fn differences_across_pieces() {
        let a = mem(40 << 20, &[(CHUNK - 2, vec![1; 4]), (30 << 20, vec![9; 1])]);
        let b = mem(40 << 20, &[(CHUNK - 2, vec![1, 2, 2, 1]), (33 << 20, vec![3; 3])]);
        let c = compare(&a, &b, 2).unwrap();
        assert_eq!(c.first_difference, Some(CHUNK - 1));
        assert_eq!(c.differing_bytes, 2 + 1 + 3);
        assert_eq!(c.differing_ranges, 3);
        // The run across the CHUNK boundary is one run; only two are kept.
        assert_eq!(c.ranges, vec![CHUNK - 1..CHUNK + 1, (30 << 20)..(30 << 20) + 1]);
    }

    #[test]
    fn sizes_differ() {
        let a = mem(1 << 20, &[(0, vec![1; 10])]);
        let b = mem(2 << 20, &[(0, vec![1; 10])]);
        let c = compare(&a, &b, 4).unwrap();
        assert!(!c.identical());
        assert_eq!(c.first_difference, Some(1 << 20));
        assert_eq!(c.differing_bytes, 0);
    }
}
