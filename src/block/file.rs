//! Regular image files, opened read-only.

use super::RawSource;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A disk image file opened with `O_RDONLY`.
#[derive(Debug)]
pub struct ImageFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl ImageFile {
    /// Open `path` read-only. Never creates, truncates or writes.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self { file, path: path.to_path_buf(), len })
    }
}

impl RawSource for ImageFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        512
    }
    fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    /// Holes of a sparse image (SEEK_DATA / SEEK_HOLE): they read as zeros without being read.
    /// Any failure other than "no data past here" gives up and says "all of it".
    fn data_ranges(&self, range: Range<u64>) -> Option<Vec<Range<u64>>> {
        use nix::errno::Errno;
        use nix::unistd::{Whence, lseek};
        let end = range.end.min(self.len);
        let mut out = Vec::new();
        let mut pos = range.start;
        while pos < end {
            let d = match lseek(&self.file, i64::try_from(pos).ok()?, Whence::SeekData) {
                Ok(d) => d as u64,
                Err(Errno::ENXIO) => break,
                Err(_) => return None,
            };
            if d >= end {
                break;
            }
            let h = lseek(&self.file, d as i64, Whence::SeekHole).map_or(end, |h| h as u64).clamp(d + 1, end);
            out.push(d..h);
            pos = h;
        }
        Some(out)
    }
}
