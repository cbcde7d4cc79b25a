//! File descriptors: the lock block, `FS3_FileMetadata`, and the pointer array or resident data.

use super::error::{CorruptKind, Error, Result};
use super::geometry::Geometry;
use super::ondisk::{DiskLock, FdType, FileMeta, ScsiDiskId, Zla};
use crate::le::{u32_at, u64_at};

/// POSIX file-type bits, added where VMFS leaves them out of `mode` (as dissect.vmfs does).
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFBLK: u32 = 0o060000;

/// One file descriptor as read from the volume.
#[derive(Clone, Debug)]
pub struct Fd {
    /// The FD address it was reached by.
    pub addr: u32,
    /// The lock block (its self-offset is the FD's volume offset).
    pub lock: DiskLock,
    /// The inode fields.
    pub meta: FileMeta,
    /// The FD's raw bytes (bounded: one FD, 2 or 8 KiB).
    raw: Box<[u8]>,
}

impl Fd {
    /// Structure name for errors.
    pub const NAME: &'static str = "FS3_FileDescriptor";

    /// Parse an FD read at `vol_offset`, reached by `addr`.
    pub fn parse(raw: Vec<u8>, addr: u32, vol_offset: u64, geo: &Geometry) -> Result<Self> {
        let lock = DiskLock::parse(&raw).map_err(|k| Error::corrupt(Self::NAME, vol_offset, k))?;
        let meta_bytes = raw.get(geo.meta_off..).unwrap_or(&[]);
        let meta = FileMeta::parse(meta_bytes)
            .map_err(|k| Error::corrupt(FileMeta::NAME, vol_offset + geo.meta_off as u64, k))?;
        if meta.desc_addr != addr {
            return Err(Error::corrupt(
                FileMeta::NAME,
                vol_offset + geo.meta_off as u64,
                CorruptKind::WrongFdAddress { found: meta.desc_addr, expected: addr },
            ));
        }
        if raw.len() < geo.fd_size {
            return Err(Error::corrupt(
                Self::NAME,
                vol_offset,
                CorruptKind::Truncated { have: raw.len(), need: geo.fd_size },
            ));
        }
        Ok(Self { addr, lock, meta, raw: raw.into_boxed_slice() })
    }

    /// The pointer array (u32 widened on VMFS3/5).
    pub fn pointers(&self, geo: &Geometry) -> Vec<u64> {
        (0..geo.ptrs_count)
            .map(|i| {
                let off = geo.ptrs_off + i * geo.ptr_width;
                if geo.ptr_width == 8 {
                    u64_at(&self.raw, off).unwrap_or(0)
                } else {
                    u32_at(&self.raw, off).map(u64::from).unwrap_or(0)
                }
            })
            .collect()
    }

    /// The resident data area.
    pub fn data_area<'a>(&'a self, geo: &Geometry) -> &'a [u8] {
        self.raw.get(geo.data_off..geo.data_off + geo.data_size).unwrap_or(&[])
    }

    /// Volume offset of this FD (its lock's self-pointer).
    pub fn vol_offset(&self) -> u64 {
        self.lock.self_offset
    }

    /// Whether this FD describes a directory (including directory-shaped system files).
    pub fn is_dir(&self) -> bool {
        match self.meta.kind {
            FdType::Directory => true,
            FdType::SysFile => self.meta.mode & S_IFMT == S_IFDIR,
            _ => false,
        }
    }

    /// `mode` with the file-type bits VMFS omits filled in from the FD type.
    pub fn mode(&self) -> u32 {
        let m = self.meta.mode;
        if m & S_IFMT != 0 {
            return m;
        }
        m | match self.meta.kind {
            FdType::Directory => S_IFDIR,
            FdType::Symlink => S_IFLNK,
            FdType::Rdm => S_IFBLK,
            _ => S_IFREG,
        }
    }

    /// The LUN an RDM FD maps to.
    pub fn rdm_target(&self, geo: &Geometry) -> Option<ScsiDiskId> {
        if self.meta.kind != FdType::Rdm {
            return None;
        }
        ScsiDiskId::parse(self.data_area(geo)).ok()
    }

    /// The allocation unit of this file, checked: a power of two the volume can use.
    pub fn block_size(&self, geo: &Geometry) -> Result<u64> {
        let bs = self.meta.block_size;
        let max = geo.fbs.max(geo.lfb);
        if self.meta.zla == Zla::Resident || self.meta.zla == Zla::None {
            return Ok(bs.max(1));
        }
        if !bs.is_power_of_two() || bs < 512 || bs > max {
            return Err(Error::corrupt(
                FileMeta::NAME,
                self.vol_offset() + geo.meta_off as u64,
                CorruptKind::BadSize { field: "blockSize", value: bs },
            ));
        }
        Ok(bs)
    }
}
