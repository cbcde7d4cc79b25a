//! Block layer: one positional-read abstraction for every source.
//!
//! Every byte the program reads from a disk or image comes through a [`BlockSource`].
//! Raw sources ([`ImageFile`], [`BlockDevice`], [`FaultySource`], [`MemSource`]) are wrapped
//! in a [`Tolerant`] reader that retries failed reads, splits them down to the sector, zero-fills
//! what stays unreadable and records it in a [`BadMap`]. Composite sources ([`Slice`],
//! [`Concat`], and higher layers such as LVM volumes and VMFS files) translate both reads and
//! the question "which of these bytes were unreadable?" into their parts.

mod badmap;
mod concat;
mod device;
mod fault;
mod file;
mod mem;
mod metered;
mod overlay;
mod slice;
mod sparse;
pub mod ssh;
mod tolerant;

pub use badmap::BadMap;
pub use concat::{Concat, Piece};
pub use device::BlockDevice;
pub use fault::FaultySource;
pub use file::ImageFile;
pub use mem::MemSource;
pub use metered::{Meter, Metered};
pub use overlay::Overlay;
pub use slice::Slice;
pub use sparse::SparseMem;
pub use tolerant::{RawSource, RetryPolicy, Tolerant};

use std::ops::Range;
use std::sync::Arc;

/// A shared, thread-safe handle on any source.
pub type Source = Arc<dyn BlockSource>;

/// Errors of the block layer. Unreadable sectors are *not* errors: they read as zeros and are
/// recorded (see [`BlockSource::unreadable`]). These are requests that cannot be served at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The request reaches past the end of the source.
    #[error("read of {len} bytes at offset {offset:#x} is past the end of {source_name} ({size:#x} bytes)")]
    OutOfRange {
        /// Name of the source.
        source_name: String,
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: u64,
        /// Size of the source.
        size: u64,
    },
    /// An I/O error that retrying cannot help (bad descriptor, device gone).
    #[error("{source_name}: I/O error at offset {offset:#x}: {error}")]
    Io {
        /// Name of the source.
        source_name: String,
        /// Offset of the failed request.
        offset: u64,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// A front end asked the copy to stop (`Meter::stop`).
    #[error("stopped on request")]
    Stopped,
}

/// A positional, read-only byte source.
pub trait BlockSource: Send + Sync {
    /// A short human-readable name (path, device, "volume X"), used in errors and reports.
    fn name(&self) -> String;
    /// Size in bytes.
    fn len(&self) -> u64;
    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Logical sector size: the unit below which a read error cannot be narrowed.
    fn sector_size(&self) -> u32 {
        512
    }
    /// Fill `buf` with the bytes at `offset`. Bytes that cannot be read are zero-filled and
    /// remembered, so that [`BlockSource::unreadable`] reports them afterwards.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError>;
    /// The sub-ranges of `range` (in this source's offsets) known to be unreadable, sorted.
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>>;
    /// The sub-ranges of `range` that may hold data, sorted; everything else reads as zeros
    /// without being read. The default says "all of it"; sparse sources (thin files, virtual
    /// disks) override it so copies skip holes.
    /// A whole-source pass is about to read it in order: the kernel may read ahead harder
    /// (`posix_fadvise(SEQUENTIAL)`, as `cat` does). Only a hint.
    fn advise_sequential(&self) {}
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let end = range.end.min(self.len());
        std::iter::once(range.start..end).filter(|r| r.start < r.end).collect()
    }
}

/// Check that `offset..offset+len` lies inside a source of `size` bytes.
pub fn check_range(name: &dyn Fn() -> String, offset: u64, len: usize, size: u64) -> Result<(), ReadError> {
    let len64 = len as u64;
    match offset.checked_add(len64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(ReadError::OutOfRange { source_name: name(), offset, len: len64, size }),
    }
}

/// Read `len` bytes at `offset` into a new buffer. `len` must come from a checked size.
pub fn read_vec(src: &dyn BlockSource, offset: u64, len: usize) -> Result<Vec<u8>, ReadError> {
    let mut buf = vec![0u8; len];
    src.read_at(offset, &mut buf)?;
    Ok(buf)
}

/// Merge sorted-or-not ranges into a sorted list of disjoint ranges.
pub fn merge_ranges(mut v: Vec<Range<u64>>) -> Vec<Range<u64>> {
    v.retain(|r| r.start < r.end);
    v.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(v.len());
    for r in v {
        if let Some(last) = out.last_mut()
            && r.start <= last.end
        {
            last.end = last.end.max(r.end);
            continue;
        }
        out.push(r);
    }
    out
}

/// Open an image file or block device read-only, behind a bad-sector tolerant reader. A regular
/// file's holes (SEEK_HOLE) are reported by `data_ranges`, so whole-source passes skip them.
pub fn open_path(path: &std::path::Path) -> std::io::Result<Source> {
    if BlockDevice::is_block_device(path) {
        Ok(Arc::new(Tolerant::new(BlockDevice::open_ro(path)?)))
    } else {
        Ok(Arc::new(Tolerant::new(ImageFile::open(path)?)))
    }
}

/// Open `ssh://user@host[:port]/path` read-only over SSH, behind a bad-sector tolerant reader.
pub fn open_ssh(url: &str, opts: &ssh::SshOptions) -> Result<Source, ssh::SshError> {
    let target = ssh::parse_url(url, "ssh")?;
    Ok(Arc::new(Tolerant::new(ssh::SshSource::open(&target, opts)?)))
}

/// Whether a source argument names a remote source (`ssh://...`) rather than a local path.
pub fn is_remote(arg: &std::path::Path) -> bool {
    arg.to_str().is_some_and(|s| s.starts_with("ssh://"))
}

/// Open an image file or block device read-only for a quick peek, without retries and without
/// setting the kernel's read-only flag (see [`BlockDevice::open_unflagged`]): the hardware
/// inventory reads a few KiB of every disk, including future destinations.
pub fn open_path_unflagged(path: &std::path::Path) -> std::io::Result<Box<dyn RawSource>> {
    if BlockDevice::is_block_device(path) {
        Ok(Box::new(BlockDevice::open_unflagged(path)?))
    } else {
        Ok(Box::new(ImageFile::open(path)?))
    }
}
