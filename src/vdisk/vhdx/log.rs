//! VHDX log replay, read-only ([MS-VHDX] 2.3). A file whose current header has a non-zero
//! `LogGuid` was not closed cleanly: metadata updates (BAT, metadata region) may sit in the log
//! and not yet in place. The spec requires replaying them before anything else is read.
//!
//! We never write the file: the log is read whole (its size is checked against the file and
//! capped), its entries are validated (signature, GUID, CRC-32C, sequence numbers of every
//! descriptor and data sector), the active sequence is the valid run of consecutive entries with
//! the highest sequence number whose head's `Tail` points back into it, and its writes from the
//! tail to the head become an in-memory overlay ([`Replayed`]) through which every later read
//! of the file goes. Whatever makes the replay doubtful (an entry of this log that fails its
//! checks and no valid sequence, a truncated file, a write into the headers or the log itself)
//! refuses the file: reading stale metadata would look like success.

use super::crc32c;
use super::ondisk::{Descriptor, Header, LOG_SECTOR, LogEntryHeader, MIB, data_sector_sequence};
use crate::block::{BlockSource, ReadError, Source, check_range, merge_ranges};
use crate::vdisk::error::{Result, VdiskError};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

/// Largest log replayed in memory (Hyper-V and qemu write 1 MiB logs).
pub const MAX_LOG: u64 = 64 << 20;
/// Bytes of checksummed entries the scan may cover, in log lengths: a valid log needs about
/// one pass; a hostile one claiming a full-length entry at every sector would need thousands.
const SCAN_BUDGET: u64 = 16;
/// No replayed write may reach past this file offset (64 TiB of payload, plus metadata).
const MAX_END: u64 = 1 << 50;
/// The file type identifier and the headers: the log never writes them (the header locates the log).
const HEADERS_END: u64 = 192 << 10;

/// One validated log entry.
#[derive(Clone, Debug)]
struct Entry {
    /// First sector, in 4 KiB units from the log's start.
    pos: u64,
    sectors: u64,
    h: LogEntryHeader,
}

/// A write the log replays.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Zero { offset: u64, length: u64 },
    Data { offset: u64, bytes: Box<[u8]> },
}

/// The log's bytes and what scanning it found.
struct Log<'a> {
    bytes: &'a [u8],
    guid: super::ondisk::Guid,
    /// Validated entries by position (`None`: nothing valid there).
    memo: HashMap<u64, Option<Entry>>,
    /// Checksummed bytes left in the budget.
    budget: u64,
    /// Positions holding an entry header of this log that failed a check, with why.
    broken: Vec<(u64, String)>,
    /// Whether any entry of this log passed its checks.
    valid_seen: bool,
}

impl Log<'_> {
    fn sectors(&self) -> u64 {
        self.bytes.len() as u64 / LOG_SECTOR as u64
    }

    /// `n` sectors from sector `pos`, wrapping at the end of the log.
    fn take(&self, pos: u64, n: u64) -> Vec<u8> {
        let total = self.sectors();
        let mut out = Vec::with_capacity((n as usize).saturating_mul(LOG_SECTOR));
        for i in 0..n {
            let s = ((pos + i) % total) as usize * LOG_SECTOR;
            out.extend_from_slice(&self.bytes[s..s + LOG_SECTOR]);
        }
        out
    }

    fn entry(&mut self, pos: u64) -> std::result::Result<Option<Entry>, String> {
        if let Some(e) = self.memo.get(&pos) {
            return Ok(e.clone());
        }
        let e = self.validate(pos)?;
        self.valid_seen |= e.is_some();
        self.memo.insert(pos, e.clone());
        Ok(e)
    }

    /// The entry at `pos` if it is one of this log's and passes every check.
    fn validate(&mut self, pos: u64) -> std::result::Result<Option<Entry>, String> {
        let at = pos as usize * LOG_SECTOR;
        let Some(h) = LogEntryHeader::parse(&self.bytes[at..at + LOG_SECTOR]) else { return Ok(None) };
        if h.log_guid != self.guid {
            // An entry of an older log: not ours, not damage.
            return Ok(None);
        }
        let len = u64::from(h.entry_length);
        let fail = |why: String| -> std::result::Result<Option<Entry>, String> { Err(why) };
        if len == 0 || !len.is_multiple_of(LOG_SECTOR as u64) || len > self.bytes.len() as u64 {
            return fail(format!("entry length {len:#x}"));
        }
        if h.sequence == 0 {
            return fail("sequence number 0".into());
        }
        let sectors = len / LOG_SECTOR as u64;
        let desc_sectors = h.descriptor_sectors();
        if desc_sectors > sectors {
            return fail(format!("{} descriptors do not fit in {len:#x} bytes", h.descriptors));
        }
        if len > self.budget {
            return Err("the log holds more entries than a valid log can: scan budget exhausted".into());
        }
        self.budget -= len;
        let body = self.take(pos, sectors);
        if crc32c::with_zeroed_field(&body, 4) != h.checksum {
            return fail(format!("checksum {:#010x} does not match its {len:#x} bytes", h.checksum));
        }
        let mut data = desc_sectors;
        for i in 0..h.descriptors as usize {
            let d =
                Descriptor::parse(&body[64 + 32 * i..96 + 32 * i]).ok_or(format!("descriptor {i}: bad signature"))?;
            let (offset, seq) = match &d {
                Descriptor::Zero { length, offset, sequence } => {
                    if !length.is_multiple_of(LOG_SECTOR as u64) {
                        return fail(format!("descriptor {i}: zero length {length:#x}"));
                    }
                    (*offset, *sequence)
                }
                Descriptor::Data { offset, sequence, .. } => {
                    let s = body.get(data as usize * LOG_SECTOR..(data as usize + 1) * LOG_SECTOR);
                    if s.and_then(data_sector_sequence) != Some(h.sequence) {
                        return fail(format!("descriptor {i}: data sector {data} missing or of another sequence"));
                    }
                    data += 1;
                    (*offset, *sequence)
                }
            };
            if seq != h.sequence || !offset.is_multiple_of(LOG_SECTOR as u64) {
                return fail(format!("descriptor {i}: sequence {seq} / file offset {offset:#x}"));
            }
        }
        Ok(Some(Entry { pos, sectors, h }))
    }

    /// The writes of `e`, in order.
    fn ops(&self, e: &Entry) -> Vec<Op> {
        let body = self.take(e.pos, e.sectors);
        let mut data = e.h.descriptor_sectors() as usize;
        let mut out = Vec::new();
        for i in 0..e.h.descriptors as usize {
            match Descriptor::parse(&body[64 + 32 * i..96 + 32 * i]) {
                Some(Descriptor::Zero { length, offset, .. }) => out.push(Op::Zero { offset, length }),
                Some(Descriptor::Data { trailing, leading, offset, .. }) => {
                    let s = &body[data * LOG_SECTOR..(data + 1) * LOG_SECTOR];
                    let mut b = vec![0u8; LOG_SECTOR].into_boxed_slice();
                    b[..8].copy_from_slice(&leading);
                    b[8..LOG_SECTOR - 4].copy_from_slice(&s[8..LOG_SECTOR - 4]);
                    b[LOG_SECTOR - 4..].copy_from_slice(&trailing);
                    out.push(Op::Data { offset, bytes: b });
                    data += 1;
                }
                None => {}
            }
        }
        out
    }

    /// The active sequence: entries from the head's tail to the head, oldest first.
    fn active(&mut self) -> std::result::Result<Option<Vec<Entry>>, String> {
        let total = self.sectors();
        let mut best: Option<Vec<Entry>> = None;
        let mut p = 0;
        while p < total {
            let first = match self.entry(p) {
                Ok(Some(e)) => e,
                Ok(None) => {
                    p += 1;
                    continue;
                }
                Err(why) => {
                    if why.contains("budget") {
                        return Err(why);
                    }
                    self.broken.push((p, why));
                    p += 1;
                    continue;
                }
            };
            let mut seq = vec![first];
            while (seq.len() as u64) < total {
                let last = &seq[seq.len() - 1];
                let next = (last.pos + last.sectors) % total;
                let want = last.h.sequence.wrapping_add(1);
                match self.entry(next) {
                    Ok(Some(e)) if e.h.sequence == want && !seq.iter().any(|s| s.pos == e.pos) => seq.push(e),
                    Err(why) if why.contains("budget") => return Err(why),
                    _ => break,
                }
            }
            let head = &seq[seq.len() - 1];
            let tail = seq.iter().position(|e| e.pos * LOG_SECTOR as u64 == u64::from(head.h.tail));
            if let Some(t) = tail
                && best.as_ref().is_none_or(|b| b[b.len() - 1].h.sequence < head.h.sequence)
            {
                best = Some(seq[t..].to_vec());
            }
            // Entries inside this run start runs with the same head: skip them.
            let (start, end) = (seq[0].pos, head.pos + head.sectors);
            if end <= start || end > total {
                break;
            }
            p = end;
        }
        Ok(best)
    }
}

/// What replaying found.
pub enum Replay {
    /// `LogGuid` is zero: nothing to do.
    Clean,
    /// `LogGuid` is set but the log holds no entry of it (nothing was logged): read as is.
    Empty(String),
    /// The file as the replayed log leaves it, and a line saying what was replayed.
    Done(Source, String),
}

/// Replay the log of `file` (named `path`) whose current header is `h`.
pub fn replay(path: &str, file: &Source, h: &Header) -> Result<Replay> {
    if h.log_guid.is_nil() || h.log_length == 0 {
        return Ok(Replay::Clean);
    }
    let refuse = |off: u64, what: String| {
        VdiskError::corrupt(path, LogEntryHeader::NAME, off, format!("{what}: the log cannot be replayed safely"))
    };
    let (off, len) = (h.log_offset, u64::from(h.log_length));
    if h.log_version != 0 {
        return Err(VdiskError::Unsupported { file: path.into(), what: format!("VHDX log version {}", h.log_version) });
    }
    if off < MIB
        || !off.is_multiple_of(MIB)
        || !len.is_multiple_of(MIB)
        || off.checked_add(len).is_none_or(|e| e > file.len())
    {
        return Err(refuse(
            off,
            format!(
                "log at {off:#x}, {len:#x} bytes: not 1 MiB-aligned or past the end of the file ({:#x})",
                file.len()
            ),
        ));
    }
    if len > MAX_LOG {
        return Err(VdiskError::Unsupported {
            file: path.into(),
            what: format!("a {len}-byte VHDX log to replay (at most {MAX_LOG} in memory)"),
        });
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_at(off, &mut bytes)?;
    if let Some(u) = file.unreadable(off..off + len).first() {
        return Err(refuse(u.start, "unreadable sectors in the log".into()));
    }
    let mut log = Log {
        bytes: &bytes,
        guid: h.log_guid,
        memo: HashMap::new(),
        budget: SCAN_BUDGET * len,
        broken: Vec::new(),
        valid_seen: false,
    };
    let active = log.active().map_err(|why| refuse(off, why))?;
    let Some(active) = active else {
        if let Some((p, why)) = log.broken.first() {
            return Err(refuse(
                off + p * LOG_SECTOR as u64,
                format!("entry of log {} broken ({why})", h.log_guid.text()),
            ));
        }
        if log.valid_seen {
            return Err(refuse(
                off,
                "entries of this log found, but no sequence whose head's tail points into it".into(),
            ));
        }
        return Ok(Replay::Empty(format!(
            "the header names log {} but the log holds no entry of it: nothing to replay",
            h.log_guid.text()
        )));
    };
    let head = &active[active.len() - 1].h;
    let entry_at = |e: &Entry| off + e.pos * LOG_SECTOR as u64;
    if head.flushed_file_offset > file.len() {
        return Err(refuse(
            entry_at(&active[active.len() - 1]),
            format!(
                "the log was written when the file was {:#x} bytes; it is now {:#x} (truncated copy)",
                head.flushed_file_offset,
                file.len()
            ),
        ));
    }
    let mut r = Replayed { inner: file.clone(), len: file.len(), sectors: BTreeMap::new(), zeros: Vec::new() };
    let forbidden = [0..HEADERS_END, off..off + len];
    let mut n_ops = 0usize;
    for e in &active {
        for op in log.ops(e) {
            let (start, end) = match &op {
                Op::Zero { offset, length } => (*offset, offset.checked_add(*length)),
                Op::Data { offset, .. } => (*offset, offset.checked_add(LOG_SECTOR as u64)),
            };
            let end = end.filter(|&x| x <= MAX_END).ok_or_else(|| {
                refuse(entry_at(e), format!("a write at {start:#x} reaches past any plausible file end"))
            })?;
            if let Some(f) = forbidden.iter().find(|f| start < f.end && f.start < end) {
                return Err(refuse(
                    entry_at(e),
                    format!(
                        "a write to {start:#x}..{end:#x} overlaps the headers or the log ({:#x}..{:#x})",
                        f.start, f.end
                    ),
                ));
            }
            r.apply(op);
            r.len = r.len.max(end);
            n_ops += 1;
        }
    }
    r.len = r.len.max(head.last_file_offset.min(MAX_END));
    r.zeros = merge_ranges(std::mem::take(&mut r.zeros));
    let what = format!(
        "log {} replayed in memory (the file is unchanged): {} entries, sequence {}..={}, {n_ops} writes",
        h.log_guid.text(),
        active.len(),
        active[0].h.sequence,
        head.sequence
    );
    Ok(Replay::Done(Arc::new(r), what))
}

/// The file with the replayed writes on top: 4 KiB sectors from the log and zeroed ranges;
/// past the file's end (an extension the log made), zeros.
pub struct Replayed {
    inner: Source,
    len: u64,
    /// Replayed data sectors by file offset (4 KiB-aligned); they win over `zeros`.
    sectors: BTreeMap<u64, Box<[u8]>>,
    /// Replayed zero ranges, sorted and merged once replay is done.
    zeros: Vec<Range<u64>>,
}

impl Replayed {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Zero { offset, length } => {
                // A later zero write hides earlier data sectors under it.
                let end = offset + length;
                let keys: Vec<u64> = self.sectors.range(offset..end).map(|(k, _)| *k).collect();
                for k in keys {
                    self.sectors.remove(&k);
                }
                self.zeros.push(offset..end);
            }
            Op::Data { offset, bytes } => {
                self.sectors.insert(offset, bytes);
            }
        }
    }
}

impl BlockSource for Replayed {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::result::Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len)?;
        let end = offset + buf.len() as u64;
        let inner_end = end.min(self.inner.len());
        let n = inner_end.saturating_sub(offset) as usize;
        if n > 0 {
            self.inner.read_at(offset, &mut buf[..n])?;
        }
        buf[n..].fill(0);
        let first = self.zeros.partition_point(|z| z.end <= offset);
        for z in self.zeros[first..].iter().take_while(|z| z.start < end) {
            let (s, e) = (z.start.max(offset), z.end.min(end));
            buf[(s - offset) as usize..(e - offset) as usize].fill(0);
        }
        let lo = offset - offset % LOG_SECTOR as u64;
        for (&k, data) in self.sectors.range(lo..end) {
            let (s, e) = (k.max(offset), (k + LOG_SECTOR as u64).min(end));
            if s < e {
                buf[(s - offset) as usize..(e - offset) as usize]
                    .copy_from_slice(&data[(s - k) as usize..(e - k) as usize]);
            }
        }
        Ok(())
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        // Bytes the replay rewrote were not read from the file: drop them from its list.
        let mut out = Vec::new();
        for u in self.inner.unreadable(range.start..range.end.min(self.inner.len())) {
            let mut pos = u.start;
            while pos < u.end {
                let sector = pos - pos % LOG_SECTOR as u64;
                let covered = self.sectors.contains_key(&sector)
                    || self.zeros.get(self.zeros.partition_point(|z| z.end <= pos)).is_some_and(|z| z.start <= pos);
                let next = (sector + LOG_SECTOR as u64).min(u.end);
                if !covered {
                    out.push(pos..next);
                }
                pos = next;
            }
        }
        merge_ranges(out)
    }
}
