//! The persisted scan index, in the state directory (never on a source):
//!
//! - `scan.json`: which sources were scanned (path, size, an identity fingerprint), how far each
//!   is scanned, the unreadable ranges met, and the length of `findings.jsonl` at that moment.
//!   It is replaced atomically (temporary file, fsync, rename, fsync of the folder), so after a
//!   crash it describes the last checkpoint exactly.
//! - `findings.jsonl`: one [`Finding`] per line in source-offset order, appended; bytes past the
//!   checkpointed length belong to a run that died and are cut off on resume.
//!
//! The rebuild code reads it back with [`ScanIndex::load`] and [`ScanIndex::findings`].

use super::error::RecoverError;
use super::finding::{Finding, What};
use crate::block::{BlockSource, ReadError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The index file in the state directory.
pub const INDEX_FILE: &str = "scan.json";
/// The findings file in the state directory.
pub const FINDINGS_FILE: &str = "findings.jsonl";
/// Version of the index layout and of what the scan recognises; another version is refused
/// rather than misread or trusted to be complete. 2: vmware.log starts and .nvram files.
/// 3: resource cluster headers and heartbeats stored as runs.
pub const FORMAT_VERSION: u32 = 3;
/// How much of each end of a source the identity fingerprint covers.
const FINGERPRINT_SPAN: u64 = 1 << 20;

/// One scanned source as the index records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedSource {
    /// File name (last path component), as `Finding`s and truths name images.
    pub name: String,
    /// The path as given on the command line.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 (hex) of the size and the first and last MiB: a resume against another disk is
    /// refused, one against the same disk under another path is not.
    pub fingerprint: String,
    /// Bytes of the source's data ranges (sector-rounded): what a full scan reads.
    pub data_bytes: u64,
    /// Source offset below which every data range has been scanned.
    pub position: u64,
    /// Bytes of data ranges below `position`.
    pub scanned: u64,
    /// Every data range has been scanned.
    pub done: bool,
    /// Unreadable ranges met (zero-filled by the reader, classified as zeros), sorted, merged.
    pub unreadable: Vec<Range<u64>>,
}

/// The content of `scan.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanState {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// The program version that started the scan.
    pub tool: String,
    /// The sources, in command-line order (`Finding::source` indexes this).
    pub sources: Vec<IndexedSource>,
    /// Length of `findings.jsonl` at this checkpoint.
    pub findings_len: u64,
    /// Number of structures found in that length (a run of them counts each one).
    pub findings: u64,
    /// Findings per kind (`What`'s serde tag).
    pub counts: BTreeMap<String, u64>,
    /// Every source is done.
    pub finished: bool,
}

impl ScanState {
    /// Replace `DIR/scan.json` atomically and durably.
    pub fn save(&self, dir: &Path) -> Result<(), RecoverError> {
        let path = dir.join(INDEX_FILE);
        let text = serde_json::to_vec_pretty(self).map_err(|e| RecoverError::state(&path, e.into()))?;
        crate::extract::write_atomically(&path, |mut f: &File| std::io::Write::write_all(&mut f, &text))
            .map_err(|e| RecoverError::state(&path, e))?;
        // The rename is durable only once the folder itself is synced.
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| RecoverError::state(dir, e))
    }

    /// Read `DIR/scan.json`; `Ok(None)` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Self>, RecoverError> {
        let path = dir.join(INDEX_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RecoverError::state(&path, e)),
        };
        // Check the version before the layout, so a future index says so instead of "bad field".
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| RecoverError::BadIndex { path: path.clone(), what: e.to_string() })?;
        let format = v.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(FORMAT_VERSION)) {
            let what = format!(
                "index format {}, this program reads {FORMAT_VERSION} (it finds more): scan again into a new --state folder",
                format.map_or_else(|| "unknown".to_string(), |f| f.to_string())
            );
            return Err(RecoverError::BadIndex { path, what });
        }
        let state: Self = serde_json::from_value(v)
            .map_err(|e| RecoverError::BadIndex { path: path.clone(), what: e.to_string() })?;
        if state.sources.iter().any(|s| s.position > s.size || s.scanned > s.data_bytes) {
            return Err(RecoverError::BadIndex { path, what: "a source's position lies past its end".into() });
        }
        Ok(Some(state))
    }

    /// Bytes of data scanned so far, over all sources.
    pub fn scanned(&self) -> u64 {
        self.sources.iter().map(|s| s.scanned).sum()
    }

    /// Bytes of data a full scan reads, over all sources.
    pub fn data_bytes(&self) -> u64 {
        self.sources.iter().map(|s| s.data_bytes).sum()
    }

    /// Unreadable bytes met so far, over all sources.
    pub fn unreadable_bytes(&self) -> u64 {
        self.sources.iter().flat_map(|s| &s.unreadable).map(|r| r.end - r.start).sum()
    }
}

/// A finished or partial scan, loaded for the rebuild: sources, state, and the findings file.
#[derive(Debug)]
pub struct ScanIndex {
    dir: PathBuf,
    state: ScanState,
}

impl ScanIndex {
    /// Load the index of state directory `dir`.
    pub fn load(dir: &Path) -> Result<Self, RecoverError> {
        let state = ScanState::read(dir)?.ok_or_else(|| RecoverError::NoIndex { dir: dir.to_path_buf() })?;
        let path = dir.join(FINDINGS_FILE);
        let len = std::fs::metadata(&path).map_err(|e| RecoverError::state(&path, e))?.len();
        if len < state.findings_len {
            let what = format!("{len} bytes, the index says at least {}", state.findings_len);
            return Err(RecoverError::BadIndex { path, what });
        }
        Ok(Self { dir: dir.to_path_buf(), state })
    }

    /// The sources, in command-line order (`Finding::source` is an index into this).
    pub fn sources(&self) -> &[IndexedSource] {
        &self.state.sources
    }

    /// Whether the scan covered every source completely.
    pub fn finished(&self) -> bool {
        self.state.finished
    }

    /// The whole recorded state.
    pub fn state(&self) -> &ScanState {
        &self.state
    }

    /// Unreadable ranges of source `source` (empty for an unknown source).
    pub fn unreadable(&self, source: usize) -> &[Range<u64>] {
        self.state.sources.get(source).map_or(&[], |s| &s.unreadable)
    }

    /// The findings up to the checkpoint, in (source, offset) order, read lazily: a damaged
    /// line is an error naming its line number; the iterator goes on after it.
    pub fn findings(&self) -> Result<Findings, RecoverError> {
        let path = self.dir.join(FINDINGS_FILE);
        let f = File::open(&path).map_err(|e| RecoverError::state(&path, e))?;
        Ok(Findings {
            lines: BufReader::new(f.take(self.state.findings_len)),
            path,
            line: 0,
            buf: String::new(),
            run: None,
        })
    }

    /// All findings in memory (for small scans and tests).
    pub fn all_findings(&self) -> Result<Vec<Finding>, RecoverError> {
        self.findings()?.collect()
    }
}

/// Iterator over the findings of an index ([`ScanIndex::findings`]).
pub struct Findings {
    lines: BufReader<std::io::Take<File>>,
    path: PathBuf,
    line: u64,
    buf: String,
    /// A run being handed out member by member, and the next member.
    run: Option<(Finding, u32)>,
}

/// Largest span of one run: runs never cross a scan chunk.
const MAX_RUN_SPAN: u64 = 64 << 20;

impl Findings {
    /// Member `i` of run `r`, or `None` past its end.
    fn member(r: &Finding, i: u32) -> Option<Finding> {
        let at = |base: u64, stride: u64| base.checked_add(u64::from(i).checked_mul(stride)?);
        let (what, offset) = match r.what {
            What::ResourceClusters { lock_type, self_offset, stride, count } if i < count => {
                (What::ResourceCluster { lock_type, self_offset: at(self_offset, stride)? }, at(r.offset, stride)?)
            }
            What::Heartbeats { self_offset, stride, count } if i < count => {
                (What::Heartbeat { self_offset: at(self_offset, stride)? }, at(r.offset, stride)?)
            }
            _ => return None,
        };
        Some(Finding { source: r.source, offset, what })
    }
}

impl Iterator for Findings {
    type Item = Result<Finding, RecoverError>;

    /// The findings one by one: runs (see [`What::ResourceClusters`]) come out as their members.
    fn next(&mut self) -> Option<Self::Item> {
        if let Some((r, i)) = self.run.take()
            && let Some(f) = Self::member(&r, i)
        {
            self.run = Some((r, i + 1));
            return Some(Ok(f));
        }
        self.buf.clear();
        match self.lines.read_line(&mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                let bad = |what: String| RecoverError::BadIndex { path: self.path.clone(), what };
                let f: Finding = match serde_json::from_str(self.buf.trim_end()) {
                    Ok(f) => f,
                    Err(e) => return Some(Err(bad(format!("line {}: {e}", self.line)))),
                };
                let (stride, count) = match f.what {
                    What::ResourceClusters { stride, count, .. } | What::Heartbeats { stride, count, .. } => {
                        (stride, count)
                    }
                    _ => return Some(Ok(f)),
                };
                if stride < 512 || count < 2 || u64::from(count - 1).saturating_mul(stride) >= MAX_RUN_SPAN {
                    return Some(Err(bad(format!(
                        "line {}: a run of {count} findings {stride} bytes apart",
                        self.line
                    ))));
                }
                let Some(first) = Self::member(&f, 0) else {
                    return Some(Err(bad(format!("line {}: a run past the end of the offsets", self.line))));
                };
                self.run = Some((f, 1));
                Some(Ok(first))
            }
            Err(e) => Some(Err(RecoverError::state(&self.path, e))),
        }
    }
}

/// The identity of a source: SHA-256 of its size and its first and last MiB, hex.
pub fn fingerprint(src: &dyn BlockSource) -> Result<String, ReadError> {
    let len = src.len();
    let span = len.min(FINGERPRINT_SPAN);
    // At most 1 MiB each: the span is capped above, not taken from the data.
    let mut buf = vec![0u8; usize::try_from(span).unwrap_or(0)];
    let mut h = Sha256::new();
    h.update(len.to_le_bytes());
    src.read_at(0, &mut buf)?;
    h.update(&buf);
    src.read_at(len - span, &mut buf)?;
    h.update(&buf);
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
