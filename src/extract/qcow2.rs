//! qcow2 export: the copy pipeline (reading data ranges only, hashing the whole content) with
//! imago's qcow2 driver as the sink. Holes are never written, and neither is any all-zero
//! cluster inside a data range, so the image holds only what is not zero.

use super::{CopyOptions, CopyReport, DataSink, Sink, copy, write_atomically};
use crate::block::BlockSource;
use imago::qcow2::Qcow2;
use imago::{DenyImplicitOpenGate, FormatAccess, FormatCreateBuilder, FormatDriverBuilder, StorageOpenOptions};
use std::io;
use std::path::Path;

/// Cluster size of the image (qemu-img's default: a good balance of metadata and waste).
pub const CLUSTER_SIZE: usize = 64 << 10;

type Image = FormatAccess<imago::file::File>;

/// Copy `src` into a new qcow2 v3 image at `dest`, atomically (written as `dest.partial`,
/// renamed when complete). The report is the raw copy's: SHA-256 of the virtual content,
/// unreadable ranges (written as zeros, that is: not written).
pub fn copy_to_qcow2(src: &dyn BlockSource, dest: &Path, opts: CopyOptions) -> io::Result<CopyReport> {
    write_atomically(dest, |f| {
        let storage =
            imago::file::File::from_open_file(f.try_clone()?, StorageOpenOptions::new().filename(dest).write(true))?;
        let qcow2 = Qcow2::<imago::file::File>::create_builder(storage)
            .cluster_size(CLUSTER_SIZE)
            .size(src.len())
            .create_open(DenyImplicitOpenGate::default(), |s| Ok(Qcow2::builder(s).write(true)))?;
        let mut sink = Qcow2Sink { img: FormatAccess::new(qcow2), file: f.try_clone()?, unflushed: 0 };
        let report = copy(src, Sink::Data(&mut sink), opts)?;
        // Metadata (L2 tables, refcounts) is cached by imago: write it before the file is synced.
        sink.img.flush()?;
        Ok(report)
    })
}

/// The image being written.
struct Qcow2Sink {
    img: Image,
    /// The image file, to start writeback of what imago wrote.
    file: std::fs::File,
    /// Bytes handed to imago since writeback was last started.
    unflushed: usize,
}

/// Data written between two writeback starts: imago appends clusters at the end of the file, so
/// starting writeback of the whole file every so often keeps the dirty set small and the final
/// sync short, as the raw path does per chunk.
const WRITEBACK_EVERY: usize = 32 << 20;

impl DataSink for Qcow2Sink {
    fn write_data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        // Every byte is written at most once into an image that reads as zeros, so any run of
        // zeros may be left out; runs are cut at cluster boundaries, where leaving one out saves
        // a cluster. Non-zero clusters in a row go to imago in one write.
        let mut run: Option<usize> = None;
        let mut pos = 0usize;
        while pos < data.len() {
            let cluster_left = CLUSTER_SIZE - ((offset + pos as u64) % CLUSTER_SIZE as u64) as usize;
            let end = (pos + cluster_left).min(data.len());
            if is_zero(&data[pos..end]) {
                if let Some(start) = run.take() {
                    self.img.write(&data[start..pos], offset + start as u64)?;
                }
            } else if run.is_none() {
                run = Some(pos);
            }
            pos = end;
        }
        if let Some(start) = run {
            self.img.write(&data[start..], offset + start as u64)?;
        }
        self.unflushed += data.len();
        if self.unflushed >= WRITEBACK_EVERY {
            self.unflushed = 0;
            // Length 0: to the end of the file.
            super::start_writeback(&self.file, 0, 0);
        }
        Ok(())
    }
}

/// Whether `b` is all zeros (OR-folded in blocks the compiler vectorizes; stops at the first
/// non-zero block, which is the common case for data).
pub fn is_zero(b: &[u8]) -> bool {
    let mut blocks = b.chunks_exact(256);
    for c in blocks.by_ref() {
        if c.iter().fold(0u8, |a, &x| a | x) != 0 {
            return false;
        }
    }
    blocks.remainder().iter().all(|&x| x == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::SparseMem;

    #[test]
    fn zero_check() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 1000]));
        let mut b = vec![0u8; 1000];
        b[999] = 1;
        assert!(!is_zero(&b));
        b[999] = 0;
        b[3] = 1;
        assert!(!is_zero(&b));
    }

    /// Unaligned data ranges, zero clusters inside data, a size that is no cluster multiple:
    /// read back through imago, the image holds the same content, and zero clusters are absent.
    #[test]
    fn round_trip_through_imago() {
        let len = (3 << 20) + 1536;
        let mut src = SparseMem::zeros("mem", len);
        src.regions.insert(1000, vec![0x11; 70_000]);
        src.regions.insert(1 << 20, vec![0u8; 200_000]); // data range of zeros
        let mut mixed = vec![0u8; 300_000];
        mixed[150_000..150_100].fill(0x22);
        src.regions.insert(2 << 20, mixed);
        src.regions.insert(len - 512, vec![0x33; 512]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.qcow2");
        let r = copy_to_qcow2(&src, &out, CopyOptions::default()).unwrap();
        assert!(!dir.path().join("o.qcow2.partial").exists());

        let img =
            Qcow2::<imago::file::File>::builder_path(&out).open(imago::PermissiveImplicitOpenGate::default()).unwrap();
        let img = FormatAccess::new(img);
        assert_eq!(img.size(), len);
        let mut back = vec![0u8; len as usize];
        img.read(&mut back, 0).unwrap();
        let mut want = vec![0u8; len as usize];
        src.read_at(0, &mut want).unwrap();
        assert!(back == want);
        assert_eq!(r.sha256.unwrap(), super::super::hex(&<sha2::Sha256 as sha2::Digest>::digest(&want)));
        // Allocated: the clusters of 0x11 (2), 0x22 (1) and the last one; header, tables.
        let file_len = std::fs::metadata(&out).unwrap().len();
        assert!(file_len < 12 * CLUSTER_SIZE as u64, "{file_len}");
    }

    /// 8 TiB with two small regions: per-range hashes (as the raw copy gives), a small file,
    /// the regions where they belong. An empty source makes a valid empty image.
    #[test]
    fn huge_sparse_and_empty() {
        let len = 8u64 << 40;
        let mut src = SparseMem::zeros("mem", len);
        src.regions.insert(0, vec![1; 4096]);
        src.regions.insert(len - 70_000, vec![2; 70_000]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("huge.qcow2");
        let r = copy_to_qcow2(&src, &out, CopyOptions::default()).unwrap();
        assert_eq!(r.sha256, None);
        assert_eq!(r.range_hashes.len(), 2);
        assert!(std::fs::metadata(&out).unwrap().len() < 2 << 20);
        let img = Qcow2::<imago::file::File>::builder_path(&out).open(imago::PermissiveImplicitOpenGate::default());
        let img = FormatAccess::new(img.unwrap());
        assert_eq!(img.size(), len);
        let mut b = vec![0u8; 80_000];
        img.read(&mut b, len - 80_000).unwrap();
        assert!(b[..10_000].iter().all(|&x| x == 0) && b[10_000..].iter().all(|&x| x == 2));

        let out = dir.path().join("empty.qcow2");
        let r = copy_to_qcow2(&SparseMem::zeros("e", 0), &out, CopyOptions::default()).unwrap();
        assert_eq!(r.size, 0);
        let img = Qcow2::<imago::file::File>::builder_path(&out).open(imago::PermissiveImplicitOpenGate::default());
        assert_eq!(FormatAccess::new(img.unwrap()).size(), 0);
    }
}
