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
    /// Holes of a sparse image: they read as zeros without being read.
    fn data_ranges(&self, range: Range<u64>) -> Option<Vec<Range<u64>>> {
        Some(self.file_data_ranges(range))
    }
    fn advise_sequential(&self) {
        advise_sequential(&self.file);
    }
}

/// `posix_fadvise(SEQUENTIAL)` on the whole file; failure only loses the hint.
pub(super) fn advise_sequential(file: &std::fs::File) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    let _ = posix_fadvise(file, 0, 0, PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL);
}

impl ImageFile {
    /// The sub-ranges of `range` that hold data, from SEEK_DATA/SEEK_HOLE; where the file system
    /// cannot tell, all of it. Holes of a sparse file read as zeros without being stored.
    pub fn file_data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        use nix::errno::Errno;
        use nix::unistd::{Whence, lseek};
        let end = range.end.min(self.len);
        let mut out = Vec::new();
        let mut pos = range.start;
        while pos < end {
            let Ok(at) = i64::try_from(pos) else { break };
            let d = match lseek(&self.file, at, Whence::SeekData) {
                Ok(d) => u64::try_from(d).unwrap_or(end),
                // No data after `pos`: the rest is a hole.
                Err(Errno::ENXIO) => break,
                Err(_) => {
                    out.push(pos..end);
                    break;
                }
            };
            if d >= end {
                break;
            }
            let h = i64::try_from(d)
                .ok()
                .and_then(|d| lseek(&self.file, d, Whence::SeekHole).ok())
                .and_then(|h| u64::try_from(h).ok())
                .map_or(end, |h| h.min(end));
            if h <= d {
                out.push(d..end);
                break;
            }
            out.push(d..h);
            pos = h;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockSource, Tolerant};
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn holes_of_a_sparse_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.img");
        let mut f = File::create(&p).unwrap();
        f.seek(SeekFrom::Start(4 << 20)).unwrap();
        f.write_all(&[1u8; 4096]).unwrap();
        f.set_len(16 << 20).unwrap();
        drop(f);
        let s = Tolerant::new(ImageFile::open(&p).unwrap());
        let d = s.data_ranges(0..16 << 20);
        // File systems may round to their block size, and some report no holes at all.
        assert!(d.iter().any(|r| r.contains(&(4 << 20))), "{d:?}");
        assert!(d.iter().all(|r| r.start < r.end && r.end <= 16 << 20), "{d:?}");
        assert_eq!(s.data_ranges((4 << 20) + 100..(4 << 20) + 200), vec![(4 << 20) + 100..(4 << 20) + 200]);
    }
}
