//! The scan: one sequential pass over every data byte of the sources, every sector classified.
//!
//! One reader thread reads the sources one after the other in chunks aligned to the chunk size,
//! only their data ranges (holes of sparse images are never read), into buffers that
//! circulate through a small pool, so memory stays bounded whatever the source size. The
//! calling thread classifies each chunk in pieces (with rayon when there are more than two
//! cores) while the reader fills the next one, writes the findings in source-offset order (the same bytes whatever the thread timing
//! or where an earlier run stopped), and checkpoints the index (see [`super::index`]).
//!
//! A chunk is classified once it holds [`LOOKAHEAD`] bytes past its end: the first bytes of the
//! next chunk (kept waiting for it, so nothing is read twice), or, at the end of a data range,
//! bytes read past it (holes read as zeros). A classifier thus always sees the real bytes, and
//! the findings do not depend on chunk boundaries. A bad sector never fails a scan: the
//! tolerant reader zero-fills it and the index records it.

use super::checkpoint::Checkpointer;
use super::classify::{LOOKAHEAD, SECTOR, classify};
use super::error::RecoverError;
use super::finding::{Finding, What};
use super::index::{FINDINGS_FILE, FORMAT_VERSION, IndexedSource, ScanState, fingerprint};
use crate::block::{ReadError, Source, merge_ranges};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::{Duration, Instant};

/// How a scan runs. The defaults suit disks and images; tests shrink or slow it.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Bytes per read (a multiple of [`SECTOR`]).
    pub chunk: usize,
    /// Bytes per classification task within a chunk.
    pub piece: usize,
    /// Chunks read ahead of the classification (memory: about `depth + 2` chunks).
    pub depth: usize,
    /// Checkpoint at least this often...
    pub checkpoint_every: Duration,
    /// ...and after this many bytes scanned.
    pub checkpoint_bytes: u64,
    /// Sleep after each chunk read (tests: make a scan slow enough to be killed midway).
    pub throttle: Option<Duration>,
    /// Set by a front end to stop the scan at the next chunk; the index is checkpointed, so a
    /// later run resumes where this one stopped.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        // Chunks small enough that the buffers in flight stay in the CPU caches: the kernel
        // copies each chunk in and the classifier reads it while it is still there. Measured on
        // a 4 GiB image (2 cores): 512 KiB chunks scan at page-cache speed, 1 MiB and larger
        // ones (a pool of them past the caches) at half of it; the kernel's read-ahead keeps
        // the disk streaming either way.
        Self {
            chunk: 512 << 10,
            piece: 128 << 10,
            depth: 4,
            checkpoint_every: Duration::from_secs(1),
            checkpoint_bytes: 256 << 20,
            throttle: None,
            stop: None,
        }
    }
}

/// Where a scan stands (passed to the progress callback after each chunk, and at the end).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Data bytes scanned, this run and earlier ones.
    pub done: u64,
    /// Data bytes of all sources (holes excluded).
    pub total: u64,
    /// Bytes read by this run.
    pub read_this_run: u64,
    /// Time since this run started.
    pub elapsed: Duration,
    /// Bytes per second of this run.
    pub throughput: f64,
    /// Time left at this run's throughput (`None` before anything was read).
    pub eta: Option<Duration>,
    /// Findings so far, by kind (`What`'s serde tag).
    pub counts: BTreeMap<String, u64>,
    /// Findings so far.
    pub findings: u64,
    /// Unreadable bytes met so far.
    pub unreadable: u64,
}

/// The outcome of [`scan`].
#[derive(Clone, Debug)]
pub struct ScanSummary {
    /// The final figures.
    pub progress: Progress,
    /// This run continued an interrupted scan.
    pub resumed: bool,
    /// The scan was already complete: nothing was read.
    pub already_finished: bool,
    /// Unreadable ranges met, per source (command-line order).
    pub unreadable: Vec<Vec<Range<u64>>>,
    /// The scan was stopped (`ScanOptions::stop`) before the end; it resumes from its index.
    pub stopped: bool,
}

/// Scan `sources` (display path, opened source) into the index in `state_dir` (created if
/// missing), continuing a scan an earlier run left there. `progress` is called after each
/// chunk. A finished index is only summarised; one of other sources is refused.
pub fn scan(
    sources: &[(String, Source)],
    state_dir: &Path,
    opts: &ScanOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ScanSummary, RecoverError> {
    let start = Instant::now();
    let opts = checked(opts);
    std::fs::create_dir_all(state_dir).map_err(|e| RecoverError::state(state_dir, e))?;
    let plans: Vec<Vec<Range<u64>>> = sources.iter().map(|(_, s)| plan(s)).collect();
    let mut fresh = Vec::with_capacity(sources.len());
    for ((path, src), ranges) in sources.iter().zip(&plans) {
        let name = Path::new(path).file_name().map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
        fresh.push(IndexedSource {
            name,
            path: path.clone(),
            size: src.len(),
            fingerprint: fingerprint(src.as_ref())?,
            data_bytes: ranges.iter().map(|r| r.end - r.start).sum(),
            position: 0,
            scanned: 0,
            done: false,
            unreadable: Vec::new(),
        });
    }
    let earlier = ScanState::read(state_dir)?;
    let resumed = earlier.is_some();
    let mut state = match earlier {
        Some(s) => {
            same_sources(state_dir, &s.sources, &fresh)?;
            s
        }
        None => ScanState {
            format: FORMAT_VERSION,
            tool: env!("CARGO_PKG_VERSION").to_string(),
            sources: fresh,
            findings_len: 0,
            findings: 0,
            counts: BTreeMap::new(),
            finished: false,
        },
    };
    let mut run = Run::open(state_dir, &mut state, start, resumed)?;
    let already_finished = run.state.finished;
    let stopped = || opts.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    if !already_finished {
        run.checkpoint()?;
        read_and_classify(sources, &plans, &opts, &mut run, progress)?;
        run.state.finished = run.state.sources.iter().all(|s| s.done);
        run.checkpoint()?;
    }
    let p = run.progress();
    progress(&p);
    let unreadable = run.state.sources.iter().map(|s| s.unreadable.clone()).collect();
    Ok(ScanSummary { progress: p, resumed, already_finished, unreadable, stopped: !run.state.finished && stopped() })
}

/// Options within sane bounds (sizes come from the caller, not from disk data).
fn checked(o: &ScanOptions) -> ScanOptions {
    // Whole run cells: chunk edges fall on the grid runs are cut at, whatever the chunk size.
    let chunk = o.chunk.clamp(RUN_GRID as usize, 1 << 30) / RUN_GRID as usize * RUN_GRID as usize;
    ScanOptions {
        chunk,
        piece: (o.piece.clamp(SECTOR, chunk) / SECTOR) * SECTOR,
        depth: o.depth.clamp(1, 16),
        ..o.clone()
    }
}

/// The data ranges of a source, rounded out to sectors (a classifier reads whole sectors).
fn plan(src: &Source) -> Vec<Range<u64>> {
    let len = src.len();
    let s = SECTOR as u64;
    let v = src.data_ranges(0..len).into_iter().map(|r| r.start / s * s..r.end.next_multiple_of(s).min(len)).collect();
    merge_ranges(v)
}

/// Refuse a resume when the sources are not the ones of the index.
fn same_sources(dir: &Path, old: &[IndexedSource], new: &[IndexedSource]) -> Result<(), RecoverError> {
    let refuse = |why: String| Err(RecoverError::OtherSources { dir: dir.to_path_buf(), why });
    if old.len() != new.len() {
        return refuse(format!("it was started on {} source(s), not {}", old.len(), new.len()));
    }
    for (i, (o, n)) in old.iter().zip(new).enumerate() {
        if o.size != n.size || o.fingerprint != n.fingerprint {
            return refuse(format!(
                "source {} ({}) is not {} of the earlier scan ({} bytes, fingerprint {}; now {} bytes, {})",
                i + 1,
                n.path,
                o.path,
                o.size,
                &o.fingerprint[..o.fingerprint.len().min(16)],
                n.size,
                &n.fingerprint[..n.fingerprint.len().min(16)]
            ));
        }
        if o.data_bytes != n.data_bytes {
            return refuse(format!("source {} ({}) holds other data ranges than when the scan began", i + 1, n.path));
        }
    }
    Ok(())
}

/// One chunk on its way from the reader to the classifier.
struct Chunk {
    source: usize,
    /// The source range whose sectors are classified.
    range: Range<u64>,
    /// The range's bytes, and up to `LOOKAHEAD` more once `complete`.
    buf: Vec<u8>,
    /// The look-ahead is in `buf` (last chunk of a data range); otherwise it comes from the
    /// next chunk, which starts where this one ends.
    complete: bool,
    read: Result<(), ReadError>,
}

/// The chunks still to read, per source: data ranges from `position` on, cut at multiples of
/// `chunk` (so a resumed scan reads the same chunks as a fresh one); `true` for the last chunk of
/// a data range.
fn chunks(ranges: &[Range<u64>], from: u64, chunk: u64) -> impl Iterator<Item = (Range<u64>, bool)> + '_ {
    ranges.iter().filter(move |r| r.end > from).flat_map(move |r| {
        let mut pos = r.start.max(from);
        std::iter::from_fn(move || {
            if pos >= r.end {
                return None;
            }
            let end = ((pos / chunk).saturating_add(1)).saturating_mul(chunk).min(r.end);
            let out = (pos..end, end == r.end);
            pos = end;
            Some(out)
        })
    })
}

/// What the reader reads of one source: its number, the source, its data ranges and where to
/// start in them. Chunks are cut as they are read (a list of them for a 16 TiB disk would
/// cost gigabytes).
type SourceWork<'a> = (usize, Source, &'a [Range<u64>], u64);

/// The reader thread: every chunk of every unfinished source, in order, into pooled buffers.
fn reader(work: Vec<SourceWork<'_>>, opts: &ScanOptions, full: SyncSender<Chunk>, free: Receiver<Vec<u8>>) {
    for (i, src, ranges, from) in work {
        let len = src.len();
        src.advise_sequential();
        for (range, complete) in chunks(ranges, from, opts.chunk as u64) {
            let Ok(mut buf) = free.recv() else { return };
            let end = if complete { range.end.saturating_add(LOOKAHEAD as u64).min(len) } else { range.end };
            // At most chunk + LOOKAHEAD bytes: `range` is one chunk of the plan.
            buf.resize(usize::try_from(end - range.start).unwrap_or(0), 0);
            let read = src.read_at(range.start, &mut buf);
            if full.send(Chunk { source: i, range, buf, complete, read }).is_err() {
                return;
            }
            if let Some(t) = opts.throttle {
                std::thread::sleep(t);
            }
        }
    }
}

fn read_and_classify(
    sources: &[(String, Source)],
    plans: &[Vec<Range<u64>>],
    opts: &ScanOptions,
    run: &mut Run<'_>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(), RecoverError> {
    let work: Vec<SourceWork> = sources
        .iter()
        .zip(plans)
        .enumerate()
        .filter(|(i, _)| !run.state.sources[*i].done)
        .map(|(i, ((_, src), ranges))| (i, src.clone(), ranges.as_slice(), run.state.sources[i].position))
        .collect();
    let (full_tx, full_rx) = sync_channel::<Chunk>(opts.depth);
    let (free_tx, free_rx) = channel::<Vec<u8>>();
    for _ in 0..opts.depth + 2 {
        // In flight: `depth` in the channel, one being read, one waiting for its look-ahead.
        let _ = free_tx.send(Vec::with_capacity(opts.chunk + LOOKAHEAD));
    }
    std::thread::scope(|s| {
        s.spawn(move || reader(work, opts, full_tx, free_rx));
        // Ends by dropping the receiving and recycling ends, which stops the reader.
        consume(sources, opts, run, full_rx, free_tx, progress)
    })
}

/// The classifying side: chunks in order, findings in order, checkpoints.
fn consume(
    sources: &[(String, Source)],
    opts: &ScanOptions,
    run: &mut Run<'_>,
    full: Receiver<Chunk>,
    free: Sender<Vec<u8>>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(), RecoverError> {
    let mut next_report = Instant::now();
    let mut waiting: Option<Chunk> = None;
    for c in full {
        // A failed read ends the scan before the chunk waiting for its bytes is classified.
        if let Err(e) = c.read {
            return Err(e.into());
        }
        if let Some(mut w) = waiting.take() {
            // `c` starts where `w` ends, in the same data range, and is at least LOOKAHEAD long
            // unless it holds its own look-ahead.
            w.buf.extend_from_slice(&c.buf[..LOOKAHEAD.min(c.buf.len())]);
            classify_chunk(sources, opts, run, w, &free)?;
        }
        if c.complete {
            classify_chunk(sources, opts, run, c, &free)?;
        } else {
            waiting = Some(c);
        }
        if Instant::now() >= next_report {
            progress(&run.progress());
            next_report = Instant::now() + Duration::from_millis(200);
        }
        // Stopped: the chunk waiting for its look-ahead is dropped unclassified; the positions
        // already stand before it, so a resumed scan reads it again.
        if opts.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(());
        }
    }
    if let Some(w) = waiting {
        // Not reached: the last chunk of a data range is complete. Classify what there is.
        classify_chunk(sources, opts, run, w, &free)?;
    }
    // The reader stops early only when this side has returned an error: every source is done,
    // including those that hold no data.
    for s in run.state.sources.iter_mut() {
        s.done = true;
        s.position = s.size;
        s.scanned = s.data_bytes;
    }
    Ok(())
}

/// Classify one chunk (with its look-ahead), record its findings and bad sectors, and
/// checkpoint when due.
fn classify_chunk(
    sources: &[(String, Source)],
    opts: &ScanOptions,
    run: &mut Run<'_>,
    c: Chunk,
    free: &Sender<Vec<u8>>,
) -> Result<(), RecoverError> {
    let len = usize::try_from(c.range.end - c.range.start).unwrap_or(0);
    let pieces: Vec<Range<usize>> = (0..len).step_by(opts.piece).map(|p| p..(p + opts.piece).min(len)).collect();
    let one = |r: Range<usize>| {
        let mut v = Vec::new();
        classify(&c.buf, r, c.range.start, &mut v);
        v
    };
    // With two cores or fewer, the reader and this thread already use them all: handing each
    // chunk to pool threads only adds wake-ups and spinning (measured: a fifth slower).
    let found: Vec<Vec<(u64, What)>> = if rayon::current_num_threads() > 2 {
        pieces.into_par_iter().map(one).collect()
    } else {
        pieces.into_iter().map(one).collect()
    };
    for (offset, what) in runs(found.into_iter().flatten()) {
        run.record(&Finding { source: c.source, offset, what })?;
    }
    let bad = sources[c.source].1.unreadable(c.range.clone());
    let _ = free.send(c.buf);
    run.advance(c.source, c.range, bad);
    if run.due(opts) {
        run.checkpoint_behind()?;
    }
    Ok(())
}

/// Runs of findings are cut at multiples of this (and chunks are multiples of it), so a scan
/// resumed with another chunk size writes the same index as an uninterrupted one.
const RUN_GRID: u64 = 64 << 10;

/// A chunk's findings with evenly spaced resource cluster headers and heartbeat slots folded
/// into runs (both are self-locating: a run keeps `self_offset - offset` for every member).
/// Runs never cross a multiple of [`RUN_GRID`].
fn runs(found: impl Iterator<Item = (u64, What)>) -> Vec<(u64, What)> {
    // (first offset, last offset, stride, count, lock type or None for heartbeats, self_offset)
    type Open = (u64, u64, u64, u32, Option<u32>, u64);
    fn close(out: &mut Vec<(u64, What)>, r: Open) {
        let (first, _, stride, count, lock, self_offset) = r;
        out.push((
            first,
            match (lock, count) {
                (Some(lock_type), 1) => What::ResourceCluster { lock_type, self_offset },
                (None, 1) => What::Heartbeat { self_offset },
                (Some(lock_type), _) => What::ResourceClusters { lock_type, self_offset, stride, count },
                (None, _) => What::Heartbeats { self_offset, stride, count },
            },
        ));
    }
    let mut out = Vec::new();
    let mut open: Option<Open> = None;
    for (off, what) in found {
        let (lock, so) = match &what {
            What::ResourceCluster { lock_type, self_offset } => (Some(*lock_type), *self_offset),
            What::Heartbeat { self_offset } => (None, *self_offset),
            _ => {
                if let Some(r) = open.take() {
                    close(&mut out, r);
                }
                out.push((off, what));
                continue;
            }
        };
        if let Some(r) = open.as_mut() {
            let step = off.wrapping_sub(r.1);
            let same_place = so.wrapping_sub(off) == r.5.wrapping_sub(r.0);
            let same_cell = off / RUN_GRID == r.0 / RUN_GRID;
            if r.4 == lock && same_place && same_cell && off > r.1 && (r.3 == 1 || step == r.2) {
                (r.1, r.2, r.3) = (off, step, r.3 + 1);
                continue;
            }
        }
        if let Some(r) = open.replace((off, off, 0, 1, lock, so)) {
            close(&mut out, r);
        }
    }
    if let Some(r) = open {
        close(&mut out, r);
    }
    out
}

/// The state of this run: the index being written and this run's counters.
struct Run<'a> {
    dir: &'a Path,
    state: &'a mut ScanState,
    out: BufWriter<File>,
    start: Instant,
    read: u64,
    last_checkpoint: (Instant, u64),
    behind: Checkpointer,
}

impl<'a> Run<'a> {
    /// Open the findings file, cut back to the checkpointed length (a killed run may have
    /// appended findings past the last checkpoint).
    fn open(dir: &'a Path, state: &'a mut ScanState, start: Instant, resumed: bool) -> Result<Self, RecoverError> {
        let path = dir.join(FINDINGS_FILE);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| RecoverError::state(&path, e))?;
        let have = f.metadata().map_err(|e| RecoverError::state(&path, e))?.len();
        if resumed && have < state.findings_len {
            let what = format!("{have} bytes, the index says at least {}", state.findings_len);
            return Err(RecoverError::BadIndex { path, what });
        }
        if !state.finished {
            f.set_len(state.findings_len).map_err(|e| RecoverError::state(&path, e))?;
        }
        f.seek(SeekFrom::Start(state.findings_len)).map_err(|e| RecoverError::state(&path, e))?;
        Ok(Self {
            dir,
            state,
            out: BufWriter::with_capacity(1 << 20, f),
            start,
            read: 0,
            last_checkpoint: (start, 0),
            behind: Checkpointer::default(),
        })
    }

    fn record(&mut self, f: &Finding) -> Result<(), RecoverError> {
        let mut line =
            serde_json::to_vec(f).map_err(|e| RecoverError::state(self.dir.join(FINDINGS_FILE), e.into()))?;
        line.push(b'\n');
        self.out.write_all(&line).map_err(|e| RecoverError::state(self.dir.join(FINDINGS_FILE), e))?;
        self.state.findings_len += line.len() as u64;
        let n = u64::from(f.what.count());
        self.state.findings += n;
        *self.state.counts.entry(kind(&f.what).to_string()).or_default() += n;
        Ok(())
    }

    fn advance(&mut self, source: usize, range: Range<u64>, bad: Vec<Range<u64>>) {
        let n = range.end - range.start;
        self.read += n;
        if let Some(s) = self.state.sources.get_mut(source) {
            s.position = range.end;
            s.scanned = s.scanned.saturating_add(n).min(s.data_bytes);
            if !bad.is_empty() {
                let mut all = std::mem::take(&mut s.unreadable);
                all.extend(bad);
                s.unreadable = merge_ranges(all);
            }
        }
    }

    fn due(&self, opts: &ScanOptions) -> bool {
        self.last_checkpoint.0.elapsed() >= opts.checkpoint_every
            || self.read - self.last_checkpoint.1 >= opts.checkpoint_bytes
    }

    /// A checkpoint made durable by the background thread while the scan goes on.
    fn checkpoint_behind(&mut self) -> Result<(), RecoverError> {
        let path = self.dir.join(FINDINGS_FILE);
        self.out.flush().map_err(|e| RecoverError::state(&path, e))?;
        self.behind.offer(self.dir, self.out.get_ref(), self.state)?;
        self.last_checkpoint = (Instant::now(), self.read);
        Ok(())
    }

    /// A checkpoint durable on return (at the start and the end of a run): findings durable
    /// first, then the index that counts them.
    fn checkpoint(&mut self) -> Result<(), RecoverError> {
        self.behind.finish()?;
        let path = self.dir.join(FINDINGS_FILE);
        self.out.flush().map_err(|e| RecoverError::state(&path, e))?;
        self.out.get_ref().sync_data().map_err(|e| RecoverError::state(&path, e))?;
        self.state.save(self.dir)?;
        self.last_checkpoint = (Instant::now(), self.read);
        Ok(())
    }

    fn progress(&self) -> Progress {
        let elapsed = self.start.elapsed();
        let throughput = if elapsed.as_secs_f64() > 0.0 { self.read as f64 / elapsed.as_secs_f64() } else { 0.0 };
        let (done, total) = (self.state.scanned(), self.state.data_bytes());
        let eta = (throughput > 0.0).then(|| Duration::from_secs_f64(total.saturating_sub(done) as f64 / throughput));
        Progress {
            done,
            total,
            read_this_run: self.read,
            elapsed,
            throughput,
            eta,
            counts: self.state.counts.clone(),
            findings: self.state.findings,
            unreadable: self.state.unreadable_bytes(),
        }
    }
}

/// The serde tag of a finding's kind (as in `findings.jsonl`).
pub fn kind(w: &What) -> &'static str {
    match w {
        What::LvmHeader { .. } => "lvm-header",
        What::FsDescriptor { .. } => "fs-descriptor",
        What::Fd { .. } => "fd",
        What::ResourceCluster { .. } | What::ResourceClusters { .. } => "resource-cluster",
        What::Heartbeat { .. } | What::Heartbeats { .. } => "heartbeat",
        What::DirEntries { .. } => "dir-entries",
        What::DirHeader6 { .. } => "dir-header6",
        What::VmdkDescriptor { .. } => "vmdk-descriptor",
        What::Vmx { .. } => "vmx",
        What::Vmsd { .. } => "vmsd",
        What::VmwareLog { .. } => "vmware-log",
        What::Nvram { .. } => "nvram",
        What::SparseHeader { .. } => "sparse-header",
        What::Guest { .. } => "guest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use std::sync::Arc;

    #[test]
    fn chunks_follow_a_fixed_grid_from_any_position() {
        let ranges = [0..10u64, 20..45];
        let all: Vec<_> = chunks(&ranges, 0, 8).collect();
        assert_eq!(
            all,
            [(0..8, false), (8..10, true), (20..24, false), (24..32, false), (32..40, false), (40..45, true)]
        );
        // Resuming at a chunk end gives the rest of the same chunks.
        assert_eq!(chunks(&ranges, 24, 8).collect::<Vec<_>>(), [(24..32, false), (32..40, false), (40..45, true)]);
        assert_eq!(chunks(&ranges, 45, 8).count(), 0);
    }

    #[test]
    fn kind_is_the_serde_tag() {
        let ws = [
            What::Heartbeat { self_offset: 0 },
            What::DirHeader6 { addr: 1, parent: 2, num_entries: 3 },
            What::Vmx { text: String::new() },
            What::Guest { fs: "ext".into(), size: None },
        ];
        for w in ws {
            let v = serde_json::to_value(&w).unwrap();
            assert_eq!(v["kind"], kind(&w));
        }
    }

    #[test]
    fn evenly_spaced_self_locating_findings_fold_into_runs() {
        let hb = |o: u64| (o, What::Heartbeat { self_offset: o - 0x1000 });
        let rc = |o: u64, t: u32| (o, What::ResourceCluster { lock_type: t, self_offset: o });
        let mut found: Vec<(u64, What)> = (0..5).map(|i| hb(0x2000 + i * 512)).collect();
        // A gap breaks the stride; another lock type and another kind break the run.
        found.push(hb(0x2000 + 9 * 512));
        found.extend([rc(0x10000, 2), rc(0x10400, 2), rc(0x10800, 3), (0x11000, What::Vmx { text: "x".into() })]);
        let runs = runs(found.into_iter());
        assert_eq!(
            runs,
            vec![
                (0x2000, What::Heartbeats { self_offset: 0x1000, stride: 512, count: 5 }),
                (0x3200, What::Heartbeat { self_offset: 0x2200 }),
                (0x10000, What::ResourceClusters { lock_type: 2, self_offset: 0x10000, stride: 0x400, count: 2 }),
                (0x10800, What::ResourceCluster { lock_type: 3, self_offset: 0x10800 }),
                (0x11000, What::Vmx { text: "x".into() }),
            ]
        );
        assert_eq!(runs.iter().map(|(_, w)| w.count()).sum::<u32>(), 10);
        // A run stops at the grid.
        let across: Vec<(u64, What)> = (0..3).map(|i| hb(RUN_GRID - 512 + i * 512)).collect();
        assert_eq!(super::runs(across.into_iter()).len(), 2);
        // Findings whose self-offsets do not advance with their offsets stay apart.
        let odd = vec![hb(0x2000), (0x2200, What::Heartbeat { self_offset: 0 })];
        assert_eq!(super::runs(odd.clone().into_iter()), odd);
    }

    #[test]
    fn empty_sources_scan_to_a_finished_index() {
        let dir = tempfile::tempdir().unwrap();
        let src: Source = Arc::new(Tolerant::new(MemSource::new("zeros", vec![0u8; 3 << 20])));
        let mut calls = 0;
        let s = scan(&[("zeros".into(), src)], dir.path(), &ScanOptions::default(), &mut |_| calls += 1).unwrap();
        assert!(calls > 0 && s.progress.findings == 0 && s.progress.done == 3 << 20 && !s.resumed);
        let idx = super::super::ScanIndex::load(dir.path()).unwrap();
        assert!(idx.finished() && idx.all_findings().unwrap().is_empty());
    }
}
