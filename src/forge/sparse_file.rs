//! A content source over a sparse local file whose holes are known (SEEK_DATA/SEEK_HOLE):
//! guest disk images made by mkfs become thin VMDKs without their holes being allocated.

use crate::block::{BlockSource, ReadError, check_range};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A read-only local file, with its data ranges from the file system.
pub struct SparseFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl SparseFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self { file, path: path.to_path_buf(), len })
    }
}

impl BlockSource for SparseFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len)?;
        self.file.read_exact_at(buf, offset).map_err(|e| ReadError::Io { source_name: self.name(), offset, error: e })
    }
    fn unreadable(&self, _range: Range<u64>) -> Vec<Range<u64>> {
        Vec::new()
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        use nix::unistd::{Whence, lseek};
        let end = range.end.min(self.len);
        let mut out = Vec::new();
        let mut pos = range.start;
        while pos < end {
            let Ok(d) = lseek(&self.file, pos as i64, Whence::SeekData) else { break };
            let d = d as u64;
            if d >= end {
                break;
            }
            let h = lseek(&self.file, d as i64, Whence::SeekHole).map_or(end, |h| h as u64).min(end);
            out.push(d..h);
            pos = h;
        }
        out
    }
}
