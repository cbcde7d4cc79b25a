//! Block devices: opened `O_RDONLY`, marked read-only in the kernel (BLKROSET) before use.
//!
//! This is the one module allowed `unsafe`: the ioctls.
#![allow(unsafe_code)]

use super::RawSource;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
nix::ioctl_read_bad!(blksszget, libc::BLKSSZGET, libc::c_int);
nix::ioctl_write_ptr_bad!(blkroset, 0x125D, libc::c_int);

/// A block device opened read-only, with its size and logical sector size from the kernel.
#[derive(Debug)]
pub struct BlockDevice {
    file: File,
    path: PathBuf,
    len: u64,
    sector: u32,
}

impl BlockDevice {
    /// Whether `path` is a block device.
    pub fn is_block_device(path: &Path) -> bool {
        std::fs::metadata(path).map(|m| m.file_type().is_block_device()).unwrap_or(false)
    }

    /// Clear the kernel's read-only flag of a *destination* the admin chose (the rescue image
    /// sets the flag on every disk at boot, so a mount read-write would fail). Never called on a
    /// source: `hw::mount` refuses destinations that are sources before it gets here.
    pub fn clear_read_only(path: &Path) -> io::Result<()> {
        let file = File::open(path)?;
        if !file.metadata()?.file_type().is_block_device() {
            return Ok(());
        }
        let rw: libc::c_int = 0;
        // SAFETY: the descriptor is open for the call and `rw` outlives it.
        unsafe { blkroset(file.as_raw_fd(), &rw) }.map(|_| ()).map_err(io::Error::from)
    }

    /// Open `path` with O_RDONLY and set the kernel's read-only flag on it (BLKROSET), so that
    /// nothing, not even a mount by accident, writes to it while we recover.
    pub fn open_ro(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let fd = file.as_raw_fd();
        let ro: libc::c_int = 1;
        // SAFETY: fd is a valid open descriptor and `ro` outlives the call.
        if let Err(e) = unsafe { blkroset(fd, &ro) } {
            // Without CAP_SYS_ADMIN this fails; we still only ever read, so go on and say so.
            tracing::warn!(device = %path.display(), error = %e, "BLKROSET failed; the device stays writable by others");
        }
        Self::with_geometry(file, path)
    }

    /// Open `path` with O_RDONLY but leave the kernel's read-only flag alone.
    ///
    /// Only for the hardware inventory's peek at the first KiB of every disk (`hw`): the flag
    /// BLKROSET sets outlives the descriptor, so setting it there would mark the disk the admin
    /// later picks as destination read-only (its mount fails) and the host's own mounted disks
    /// too. A disk opened as a *source* goes through [`BlockDevice::open_ro`].
    pub fn open_unflagged(path: &Path) -> io::Result<Self> {
        Self::with_geometry(File::open(path)?, path)
    }

    /// The device's size and logical sector size, from the kernel.
    fn with_geometry(file: File, path: &Path) -> io::Result<Self> {
        let fd = file.as_raw_fd();
        let mut len: u64 = 0;
        // SAFETY: fd is valid and `len` is a u64 the kernel writes to.
        unsafe { blkgetsize64(fd, &mut len) }.map_err(io::Error::from)?;
        let mut sector: libc::c_int = 512;
        // SAFETY: fd is valid and `sector` is a c_int the kernel writes to.
        unsafe { blksszget(fd, &mut sector) }.map_err(io::Error::from)?;
        let sector = u32::try_from(sector).ok().filter(|s| s.is_power_of_two()).unwrap_or(512);
        Ok(Self { file, path: path.to_path_buf(), len, sector })
    }
}

impl RawSource for BlockDevice {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        self.sector
    }
    fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn advise_sequential(&self) {
        super::file::advise_sequential(&self.file);
    }
}
