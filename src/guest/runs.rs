//! A guest file as a [`BlockSource`]: its runs mapped onto the volume it lives on, so reads go
//! through the block layer and the volume's unreadable sectors are reported per guest file.

use crate::block::{BlockSource, ReadError, Source, check_range, merge_ranges};
use std::ops::Range;

/// Where one run of a file's bytes lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// At this byte offset of the volume.
    Volume(u64),
    /// A hole: zeros, never read, not data.
    Hole,
    /// Bytes the metadata should map but does not (a broken chain, a lost extent): zeros,
    /// reported unreadable so the file's report says they are missing.
    Missing,
}

/// One run: `len` bytes at file offset `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Where the bytes are.
    pub target: Target,
}

/// The runs of a FAT-style cluster chain (FAT12/16/32, exFAT) from `first`, one cluster each, up
/// to `limit` bytes. `place` gives a cluster's byte offset on the volume (`None` when out of
/// range), `next` the cluster after it (`None` at an end mark, a bad or free entry). A loop in
/// the table ends after `clusters` steps; what the chain does not cover becomes missing.
pub(crate) fn chain_runs(
    first: u32,
    limit: u64,
    cluster_size: u64,
    clusters: u64,
    place: impl Fn(u32) -> Option<u64>,
    next: impl Fn(u32) -> Option<u32>,
) -> Vec<Run> {
    let mut runs = Vec::new();
    let (mut pos, mut seen) = (0u64, 0u64);
    let mut c = Some(first);
    while let Some(cl) = c
        && let Some(at) = place(cl)
        && pos < limit
        && seen <= clusters
    {
        seen += 1;
        runs.push(Run { offset: pos, len: cluster_size, target: Target::Volume(at) });
        pos += cluster_size;
        c = next(cl);
    }
    runs
}

/// A file made of runs over a volume.
pub struct RunFile {
    name: String,
    volume: Source,
    runs: Vec<Run>,
    len: u64,
}

impl RunFile {
    /// A file of `len` bytes from `runs` (sorted, contiguous from 0 as the file-system readers
    /// build them). What the runs do not cover up to `len` is missing; runs reaching past the
    /// volume are cut there and the rest is missing too.
    pub fn new(name: impl Into<String>, volume: Source, runs: Vec<Run>, len: u64) -> Self {
        let vol_len = volume.len();
        let mut out: Vec<Run> = Vec::with_capacity(runs.len().saturating_add(1));
        let mut pos = 0u64;
        for r in runs {
            if r.offset != pos || pos >= len {
                break;
            }
            let mut r = Run { len: r.len.min(len - pos), ..r };
            if let Target::Volume(v) = r.target {
                let avail = vol_len.saturating_sub(v);
                if avail < r.len {
                    if avail > 0 {
                        out.push(Run { len: avail, ..r });
                    }
                    r = Run { offset: r.offset + avail, len: r.len - avail, target: Target::Missing };
                }
            }
            // Merge with the previous run when it continues it on the volume.
            if let Some(last) = out.last_mut() {
                let cont = match (last.target, r.target) {
                    (Target::Volume(a), Target::Volume(b)) => a.checked_add(last.len) == Some(b),
                    (a, b) => a == b,
                };
                if cont {
                    last.len += r.len;
                    pos = r.offset + r.len;
                    continue;
                }
            }
            pos = r.offset + r.len;
            if r.len > 0 {
                out.push(r);
            }
        }
        if pos < len {
            out.push(Run { offset: pos, len: len - pos, target: Target::Missing });
        }
        Self { name: name.into(), volume, runs: out, len }
    }

    /// The runs, merged.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Visit the runs overlapping `range`: `(run, file range inside it)`.
    fn parts(
        &self,
        range: Range<u64>,
        mut f: impl FnMut(&Run, Range<u64>) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let first = self.runs.partition_point(|r| r.offset + r.len <= range.start);
        for r in self.runs.get(first..).unwrap_or(&[]) {
            if r.offset >= range.end {
                break;
            }
            let s = range.start.max(r.offset);
            let e = range.end.min(r.offset + r.len);
            f(r, s..e)?;
        }
        Ok(())
    }
}

impl BlockSource for RunFile {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        self.volume.sector_size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len)?;
        let end = offset + buf.len() as u64;
        self.parts(offset..end, |r, p| {
            let dst = &mut buf[(p.start - offset) as usize..(p.end - offset) as usize];
            match r.target {
                Target::Volume(v) => self.volume.read_at(v + (p.start - r.offset), dst),
                Target::Hole | Target::Missing => {
                    dst.fill(0);
                    Ok(())
                }
            }
        })
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        let range = range.start..range.end.min(self.len);
        let _ = self.parts(range, |r, p| {
            match r.target {
                Target::Volume(v) => {
                    let base = v + (p.start - r.offset);
                    for u in self.volume.unreadable(base..base + (p.end - p.start)) {
                        out.push(p.start + (u.start - base)..p.start + (u.end - base));
                    }
                }
                Target::Missing => out.push(p),
                Target::Hole => {}
            }
            Ok(())
        });
        merge_ranges(out)
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        let range = range.start..range.end.min(self.len);
        let _ = self.parts(range, |r, p| {
            if let Target::Volume(v) = r.target {
                // Holes of the volume (a thin virtual disk) are holes of the file too.
                let base = v + (p.start - r.offset);
                for d in self.volume.data_ranges(base..base + (p.end - p.start)) {
                    out.push(p.start + (d.start - base)..p.start + (d.end - base));
                }
            }
            Ok(())
        });
        merge_ranges(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use std::sync::Arc;

    #[test]
    fn runs_read_holes_and_missing() {
        let vol: Source = Arc::new(Tolerant::new(MemSource::new("v", (0..100u8).collect())));
        let runs = vec![
            Run { offset: 0, len: 4, target: Target::Volume(10) },
            Run { offset: 4, len: 2, target: Target::Hole },
            Run { offset: 6, len: 3, target: Target::Volume(98) },
        ];
        let f = RunFile::new("f", vol, runs, 12);
        let mut b = [9u8; 12];
        f.read_at(0, &mut b).unwrap();
        assert_eq!(b, [10, 11, 12, 13, 0, 0, 98, 99, 0, 0, 0, 0]);
        // Past the volume's end and past the runs: missing.
        assert_eq!(f.unreadable(0..12), vec![8..12]);
        assert_eq!(f.data_ranges(0..12), vec![0..4, 6..8]);
    }
}
