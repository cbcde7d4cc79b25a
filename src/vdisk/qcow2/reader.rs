//! The active layer of a qcow2 image as an [`ExtentReader`]: the L1 table (read at open),
//! L2 tables loaded when a range needs them (bounded cache), and compressed clusters
//! decompressed on read (bounded cache). Damage stays local: an L2 table that cannot be read
//! makes its range unreadable, a cluster that fails to decompress reads as zeros and is
//! reported by `unreadable`, data past the end of the file is unreadable.

use super::compress::decompress;
use super::ondisk::{Cluster, Compression, decode_l2, l1_offset};
use crate::block::Source;
use crate::vdisk::error::Result;
use crate::vdisk::extent::push_piece as push;
use crate::vdisk::extent::{Alloc, ExtentReader};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of L2 tables kept in memory (at least a few tables whatever the cluster size).
const TABLE_CACHE_BYTES: u64 = 32 << 20;
/// Bytes of decompressed clusters kept in memory.
const INFLATED_CACHE_BYTES: u64 = 16 << 20;
/// Subclusters per cluster with extended L2 entries.
const SUBCLUSTERS: u64 = 32;
/// An L1 entry that could not be read (on an unreadable sector): its offset is past any file.
pub const L1_UNREADABLE: u64 = u64::MAX;

/// What one piece of the virtual disk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Unallocated,
    Zero,
    /// Metadata for the piece is damaged or missing.
    Bad,
    /// Uncompressed: the piece starts at this offset of the data file.
    Data(u64),
    /// Part of compressed guest cluster `cluster`, whose bytes are at `offset`, at most `len`.
    Compressed {
        cluster: u64,
        offset: u64,
        len: u64,
    },
}

/// One L2 table: every entry alike (absent or unreadable table), or its raw entries.
#[derive(Clone)]
enum Table {
    Uniform(Unit),
    Entries(Arc<Vec<u64>>),
}

/// Decompressed clusters: FIFO order and contents.
type Inflated = (VecDeque<u64>, HashMap<u64, Arc<Vec<u8>>>);

/// How the image is laid out, from its header.
pub struct Layout {
    pub cluster_bits: u32,
    pub extended_l2: bool,
    /// Guest clusters live in an external data file (host offset 0 is valid there).
    pub external: bool,
    pub compression: Compression,
    /// Virtual size in bytes.
    pub capacity: u64,
}

pub struct Qcow2Reader {
    name: String,
    /// The qcow2 file: L2 tables.
    file: Source,
    /// Where guest clusters are: the qcow2 file or its external data file.
    data: Source,
    layout: Layout,
    /// The active L1 table as far as it could be read; ranges past it are unreadable.
    l1: Vec<u64>,
    problems: Vec<String>,
    tables: Mutex<HashMap<u64, Table>>,
    inflated: Mutex<Inflated>,
    /// Guest clusters that failed to decompress.
    failed: Mutex<BTreeSet<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `len` bytes at `off` of `file`, or `None` when they lie outside it or on unreadable sectors.
fn read_meta(file: &Source, off: u64, len: usize) -> Option<Vec<u8>> {
    let end = off.checked_add(len as u64)?;
    if end > file.len() {
        return None;
    }
    let mut b = vec![0u8; len];
    file.read_at(off, &mut b).ok()?;
    file.unreadable(off..end).is_empty().then_some(b)
}

impl Qcow2Reader {
    pub fn new(name: &str, file: Source, data: Source, layout: Layout, l1: Vec<u64>, problems: Vec<String>) -> Self {
        Self {
            name: name.into(),
            file,
            data,
            layout,
            l1,
            problems,
            tables: Mutex::new(HashMap::new()),
            inflated: Mutex::new((VecDeque::new(), HashMap::new())),
            failed: Mutex::new(BTreeSet::new()),
        }
    }

    fn cluster_bytes(&self) -> u64 {
        1 << self.layout.cluster_bits
    }

    /// Entries per L2 table (an extended entry is 16 bytes).
    fn l2_entries(&self) -> u64 {
        self.cluster_bytes() / if self.layout.extended_l2 { 16 } else { 8 }
    }

    fn table(&self, index: u64) -> Table {
        if let Some(t) = lock(&self.tables).get(&index) {
            return t.clone();
        }
        let t = self.load_table(index);
        let max = (TABLE_CACHE_BYTES / self.cluster_bytes()).max(4) as usize;
        let mut c = lock(&self.tables);
        if c.len() >= max {
            c.clear();
        }
        c.insert(index, t.clone());
        t
    }

    fn load_table(&self, index: u64) -> Table {
        let cb = self.cluster_bytes();
        let Some(&entry) = self.l1.get(index as usize) else { return Table::Uniform(Unit::Bad) };
        let off = l1_offset(entry);
        if off == 0 {
            return Table::Uniform(Unit::Unallocated);
        }
        let why = if !off.is_multiple_of(cb) {
            "not aligned to a cluster"
        } else {
            match read_meta(&self.file, off, cb as usize) {
                Some(b) => {
                    let e = b.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])));
                    return Table::Entries(Arc::new(e.collect()));
                }
                None => "past the end of the file or on unreadable sectors",
            }
        };
        tracing::warn!("{}: L2 table {index} at {off:#x} {why}: its range is unreadable", self.name);
        Table::Uniform(Unit::Bad)
    }

    /// Walk `range` (bounded by the capacity) piece by piece: a cluster, a subcluster, or the
    /// whole range of an absent or unreadable L2 table.
    fn walk(&self, range: Range<u64>, mut f: impl FnMut(Range<u64>, Unit)) {
        let cb = self.cluster_bytes();
        let entries = self.l2_entries();
        let span = cb * entries;
        let end = range.end.min(self.layout.capacity);
        let mut pos = range.start;
        while pos < end {
            let ti = pos / span;
            if ti >= self.l1.len() as u64 {
                // Past the L1 table (too short for the size, or cut by the end of the file).
                f(pos..end, Unit::Bad);
                return;
            }
            let table_end = (ti + 1).saturating_mul(span).min(end);
            let t = match self.table(ti) {
                Table::Uniform(u) => {
                    f(pos..table_end, u);
                    pos = table_end;
                    continue;
                }
                Table::Entries(t) => t,
            };
            while pos < table_end {
                let ci = pos / cb;
                let idx = (ci % entries) as usize;
                let cstart = ci * cb;
                let cend = cstart.saturating_add(cb).min(table_end);
                let (entry, bitmap) = if self.layout.extended_l2 {
                    (t.get(2 * idx).copied().unwrap_or(0), Some(t.get(2 * idx + 1).copied().unwrap_or(0)))
                } else {
                    (t.get(idx).copied().unwrap_or(0), None)
                };
                match decode_l2(entry, bitmap, self.layout.cluster_bits, self.layout.external) {
                    Cluster::Unallocated => f(pos..cend, Unit::Unallocated),
                    Cluster::Zero => f(pos..cend, Unit::Zero),
                    Cluster::Invalid(_) => f(pos..cend, Unit::Bad),
                    Cluster::Data(h) => f(pos..cend, Unit::Data(h + (pos - cstart))),
                    Cluster::Compressed { offset, len } => f(pos..cend, Unit::Compressed { cluster: ci, offset, len }),
                    Cluster::Subclusters { host, alloc, zero } => {
                        let sc = cb / SUBCLUSTERS;
                        while pos < cend {
                            let i = (pos - cstart) / sc;
                            let send = (cstart + (i + 1) * sc).min(cend);
                            let bit = 1u32 << i;
                            let u = match (alloc & bit != 0, zero & bit != 0) {
                                (true, false) => Unit::Data(host + (pos - cstart)),
                                (false, true) => Unit::Zero,
                                (false, false) => Unit::Unallocated,
                                // Both "allocated" and "reads as zeros": qemu refuses it too.
                                (true, true) => Unit::Bad,
                            };
                            f(pos..send, u);
                            pos = send;
                        }
                    }
                }
                pos = cend;
            }
        }
    }

    /// Compressed guest cluster `cluster` decompressed, from the cache or the file; `None`
    /// (remembered, reported by `unreadable`) when it cannot be.
    fn inflated(&self, cluster: u64, offset: u64, len: u64) -> Option<Arc<Vec<u8>>> {
        if let Some(d) = lock(&self.inflated).1.get(&cluster) {
            return Some(Arc::clone(d));
        }
        if lock(&self.failed).contains(&cluster) {
            return None;
        }
        match self.decompress(offset, len) {
            Ok(d) => {
                let d = Arc::new(d);
                let max = (INFLATED_CACHE_BYTES / self.cluster_bytes()).max(2) as usize;
                let mut c = lock(&self.inflated);
                if c.0.len() >= max
                    && let Some(old) = c.0.pop_front()
                {
                    c.1.remove(&old);
                }
                if c.1.insert(cluster, Arc::clone(&d)).is_none() {
                    c.0.push_back(cluster);
                }
                Some(d)
            }
            Err(e) => {
                if lock(&self.failed).insert(cluster) {
                    tracing::warn!("{}: compressed cluster {cluster} at byte {offset:#x}: {e}", self.name);
                }
                None
            }
        }
    }

    fn decompress(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        let flen = self.data.len();
        if offset >= flen {
            return Err(format!("past the end of the file ({flen:#x} bytes)"));
        }
        // The last sector may run past the end of the file: decompression stops before it.
        let n = len.min(flen - offset);
        let mut comp = vec![0u8; n as usize];
        self.data.read_at(offset, &mut comp).map_err(|e| e.to_string())?;
        if !self.data.unreadable(offset..offset + n).is_empty() {
            return Err("on unreadable sectors".into());
        }
        let mut out = vec![0u8; self.cluster_bytes() as usize];
        decompress(self.layout.compression, &comp, &mut out)?;
        Ok(out)
    }

    /// Read `len` bytes of the data file at `host` into `buf`; past its end, zeros.
    fn read_host(&self, host: u64, buf: &mut [u8]) -> Result<()> {
        let avail = self.data.len().saturating_sub(host).min(buf.len() as u64) as usize;
        if avail > 0 {
            self.data.read_at(host, &mut buf[..avail])?;
        }
        buf[avail..].fill(0);
        Ok(())
    }
}

impl ExtentReader for Qcow2Reader {
    fn len(&self) -> u64 {
        self.layout.capacity
    }

    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        let dlen = self.data.len();
        let failed = lock(&self.failed);
        let mut out = Vec::new();
        self.walk(range, |r, u| match u {
            Unit::Unallocated => push(&mut out, r, Alloc::Unallocated),
            Unit::Zero => push(&mut out, r, Alloc::Zero),
            Unit::Bad => push(&mut out, r, Alloc::Unreadable),
            Unit::Data(h) => {
                // A cluster cut by the end of the data file: the rest is unreadable.
                let avail = dlen.saturating_sub(h).min(r.end - r.start);
                push(&mut out, r.start..r.start + avail, Alloc::Data);
                push(&mut out, r.start + avail..r.end, Alloc::Unreadable);
            }
            Unit::Compressed { cluster, offset, .. } => {
                let bad = failed.contains(&cluster) || offset >= dlen;
                push(&mut out, r, if bad { Alloc::Unreadable } else { Alloc::Data })
            }
        });
        Ok(out)
    }

    fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let mut pieces = Vec::new();
        self.walk(off..off.saturating_add(buf.len() as u64), |r, u| pieces.push((r, u)));
        let cb = self.cluster_bytes();
        let mut done = 0usize;
        // Uncompressed pieces that follow each other in the data file are read in one call.
        let mut run: Option<(usize, u64, usize)> = None;
        let flush = |run: &mut Option<(usize, u64, usize)>, buf: &mut [u8]| -> Result<()> {
            if let Some((at, host, n)) = run.take() {
                self.read_host(host, &mut buf[at..at + n])?;
            }
            Ok(())
        };
        for (r, u) in pieces {
            let at = (r.start - off) as usize;
            let n = (r.end - r.start) as usize;
            done = at + n;
            if let Unit::Data(h) = u {
                match &mut run {
                    Some((rat, rhost, rn)) if *rat + *rn == at && *rhost + *rn as u64 == h => *rn += n,
                    _ => {
                        flush(&mut run, buf)?;
                        run = Some((at, h, n));
                    }
                }
                continue;
            }
            flush(&mut run, buf)?;
            let b = &mut buf[at..at + n];
            match u {
                Unit::Compressed { cluster, offset, len } => match self.inflated(cluster, offset, len) {
                    Some(d) => {
                        let inner = (r.start - cluster * cb) as usize;
                        b.copy_from_slice(&d[inner..inner + n]);
                    }
                    None => b.fill(0),
                },
                _ => b.fill(0),
            }
        }
        flush(&mut run, buf)?;
        buf[done..].fill(0);
        Ok(())
    }

    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let failed = lock(&self.failed);
        let mut out = Vec::new();
        self.walk(range, |r, u| match u {
            Unit::Data(h) => {
                let end = h.saturating_add(r.end - r.start);
                out.extend(self.data.unreadable(h..end).into_iter().map(|x| x.start - h + r.start..x.end - h + r.start))
            }
            Unit::Compressed { cluster, .. } if failed.contains(&cluster) => out.push(r),
            _ => {}
        });
        out
    }

    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }
}
