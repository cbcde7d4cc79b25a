//! Output disks: sparse image files, the partition table on them, and the map from VMFS
//! volume offsets to (disk, offset) through the LVM's physical extents.

use super::ForgeError;
use crate::container::partition::{GPT_TYPE_VMFS, Guid, MBR_TYPE_VMFS, gpt_regions};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Sector size of every forged disk.
pub const SECTOR: u64 = 512;
/// Where ESXi puts the VMFS partition on a GPT disk: LBA 2048.
pub const PARTITION_START: u64 = 1 << 20;

/// How the disk is partitioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// GPT with one VMFS partition at 1 MiB, as ESXi 5+ creates.
    Gpt,
    /// MBR with one partition of type 0xFB at `start` (VMFS3-era and upgraded volumes).
    Mbr { start: u64 },
    /// No table: the image is the partition itself (LVM header at 1 MiB), like the
    /// corpus samples.
    None,
}

/// One sparse disk image being written.
pub struct Disk {
    pub path: PathBuf,
    file: File,
    pub len: u64,
    /// Byte offset of the VMFS partition.
    pub part_off: u64,
    /// Length of the VMFS partition.
    pub part_len: u64,
}

impl Disk {
    /// Create (or truncate) `path` as a sparse file of `len` bytes with `table`.
    pub fn create(path: &Path, len: u64, table: Table, seed: u64) -> Result<Self, ForgeError> {
        let len = len / SECTOR * SECTOR;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| ForgeError::io(path, e))?;
        file.set_len(len).map_err(|e| ForgeError::io(path, e))?;
        let (part_off, part_len) = match table {
            // GPT keeps 33 sectors at the end for the backup entries and header.
            Table::Gpt => (PARTITION_START, (len.saturating_sub(34 * SECTOR + PARTITION_START)) / SECTOR * SECTOR),
            Table::Mbr { start } => (start, len.saturating_sub(start)),
            Table::None => (0, len),
        };
        if part_len < (64 << 20) {
            return Err(ForgeError::Layout(format!("{}: disk of {len} bytes is too small for VMFS", path.display())));
        }
        let d = Self { path: path.to_path_buf(), file, len, part_off, part_len };
        d.write_table(table, seed)?;
        Ok(d)
    }

    /// Open an existing image for further writes (damage, re-format).
    pub fn open(path: &Path, part_off: u64) -> Result<Self, ForgeError> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| ForgeError::io(path, e))?;
        let len = file.metadata().map_err(|e| ForgeError::io(path, e))?.len();
        Ok(Self { path: path.to_path_buf(), file, len, part_off, part_len: len.saturating_sub(part_off) })
    }

    fn write_table(&self, table: Table, seed: u64) -> Result<(), ForgeError> {
        match table {
            Table::Gpt => {
                let last = (self.part_off + self.part_len) / SECTOR - 1;
                let mut g = [0u8; 16];
                g[..8].copy_from_slice(&seed.to_le_bytes());
                g[8..].copy_from_slice(&(seed ^ 0x5DEE_CE66_D1CE_4E5B).to_le_bytes());
                // RFC 4122 version 4 bits, as tools write them.
                g[7] = (g[7] & 0x0F) | 0x40;
                g[8] = (g[8] & 0x3F) | 0x80;
                for (off, b) in gpt_regions(self.len, SECTOR as usize, Guid(g), &[(GPT_TYPE_VMFS, 2048, last)]) {
                    self.write(off, &b)?;
                }
            }
            Table::Mbr { start } => {
                let mut mbr = vec![0u8; 512];
                let e = 0x1BE;
                mbr[e + 4] = MBR_TYPE_VMFS;
                let lba = u32::try_from(start / SECTOR).unwrap_or(u32::MAX);
                let n = u32::try_from(self.part_len / SECTOR).unwrap_or(u32::MAX);
                mbr[e + 8..e + 12].copy_from_slice(&lba.to_le_bytes());
                mbr[e + 12..e + 16].copy_from_slice(&n.to_le_bytes());
                // CHS fields saturate as on any disk over 8 GiB.
                mbr[e + 1..e + 4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
                mbr[e + 5..e + 8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
                mbr[0x1B8..0x1BC].copy_from_slice(&(seed as u32).to_le_bytes());
                mbr[0x1FE] = 0x55;
                mbr[0x1FF] = 0xAA;
                self.write(0, &mbr)?;
            }
            Table::None => {}
        }
        Ok(())
    }

    /// Write `b` at disk offset `off`.
    pub fn write(&self, off: u64, b: &[u8]) -> Result<(), ForgeError> {
        if off.checked_add(b.len() as u64).is_none_or(|e| e > self.len) {
            return Err(ForgeError::Layout(format!(
                "{}: write of {} bytes at {off:#x} past the end ({:#x})",
                self.path.display(),
                b.len(),
                self.len
            )));
        }
        self.file.write_all_at(b, off).map_err(|e| ForgeError::io(&self.path, e))
    }

    /// Read `b.len()` bytes at disk offset `off` (holes read as zeros).
    pub fn read(&self, off: u64, b: &mut [u8]) -> Result<(), ForgeError> {
        self.file.read_exact_at(b, off).map_err(|e| ForgeError::io(&self.path, e))
    }

    /// Zero `len` bytes at `off` by punching a hole: what a wipe leaves, without the cost.
    pub fn zero(&self, off: u64, len: u64) -> Result<(), ForgeError> {
        use nix::fcntl::{FallocateFlags, fallocate};
        let len = len.min(self.len.saturating_sub(off));
        if len == 0 {
            return Ok(());
        }
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        let (o, l) = (i64::try_from(off).unwrap_or(i64::MAX), i64::try_from(len).unwrap_or(i64::MAX));
        fallocate(&self.file, flags, o, l).map_err(|e| ForgeError::io(&self.path, e.into()))
    }

    /// Flush to stable storage.
    pub fn sync(&self) -> Result<(), ForgeError> {
        self.file.sync_all().map_err(|e| ForgeError::io(&self.path, e))
    }
}

/// A run of the volume on one disk.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub vol_off: u64,
    pub disk: usize,
    pub disk_off: u64,
    pub len: u64,
}

/// The disks of one volume and where each volume byte lives.
pub struct Target {
    pub disks: Vec<Disk>,
    pub runs: Vec<Run>,
    /// Volume ranges written (and punched), in order: what a re-format destroyed.
    pub log: std::sync::Mutex<Vec<std::ops::Range<u64>>>,
    /// Set by `Writer::finish`: the file system's parameters and the root directory's blocks.
    pub params: Option<super::vmfs::Params>,
    pub root_blocks: Vec<u64>,
}

impl Target {
    /// Volume size.
    pub fn len(&self) -> u64 {
        self.runs.iter().map(|r| r.vol_off + r.len).max().unwrap_or(0)
    }

    /// True when the volume has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (disk index, disk offset) of volume offset `off`, and the bytes left in that run.
    pub fn locate(&self, off: u64) -> Option<(usize, u64, u64)> {
        let r = self.runs.iter().find(|r| r.vol_off <= off && off < r.vol_off + r.len)?;
        Some((r.disk, r.disk_off + (off - r.vol_off), r.vol_off + r.len - off))
    }

    /// A target over `disks` mapped by `runs`.
    pub fn new(disks: Vec<Disk>, runs: Vec<Run>) -> Self {
        Self { disks, runs, log: Default::default(), params: None, root_blocks: Vec::new() }
    }

    fn note(&self, off: u64, len: u64) {
        if let Ok(mut l) = self.log.lock() {
            match l.last_mut() {
                Some(r) if r.end == off => r.end = off + len,
                _ => l.push(off..off + len),
            }
        }
    }

    /// Every volume range written so far, merged.
    pub fn written(&self) -> Vec<std::ops::Range<u64>> {
        let v = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        crate::block::merge_ranges(v)
    }

    /// Call `f(disk, disk offset, range of the request)` for each run piece of volume range
    /// `off..off+len`.
    pub fn each_piece(
        &self,
        off: u64,
        len: u64,
        mut f: impl FnMut(&Disk, u64, std::ops::Range<usize>) -> Result<(), ForgeError>,
    ) -> Result<(), ForgeError> {
        let mut done = 0u64;
        while done < len {
            let pos = off + done;
            let (disk, doff, left) = self
                .locate(pos)
                .ok_or_else(|| ForgeError::Layout(format!("volume offset {pos:#x} is outside the volume")))?;
            let n = (len - done).min(left);
            f(&self.disks[disk], doff, done as usize..(done + n) as usize)?;
            done += n;
        }
        Ok(())
    }

    /// Write `b` at volume offset `off`, across runs.
    pub fn write(&self, off: u64, b: &[u8]) -> Result<(), ForgeError> {
        self.note(off, b.len() as u64);
        self.each_piece(off, b.len() as u64, |d, doff, r| d.write(doff, &b[r]))
    }

    /// Read at volume offset `off`.
    pub fn read(&self, off: u64, b: &mut [u8]) -> Result<(), ForgeError> {
        self.each_piece(off, b.len() as u64, |d, doff, r| d.read(doff, &mut b[r]))
    }

    /// Zero volume range `off..off+len` (holes punched on every disk it crosses).
    pub fn punch(&self, off: u64, len: u64) -> Result<(), ForgeError> {
        self.note(off, len);
        self.each_piece(off, len, |d, doff, r| d.zero(doff, (r.end - r.start) as u64))
    }

    /// Sync every disk.
    pub fn sync(&self) -> Result<(), ForgeError> {
        self.disks.iter().try_for_each(Disk::sync)
    }
}
