//! VMDK content as ESXi writes it: descriptors ([`Descriptor`]), vmfsSparse/COWD and SEsparse
//! delta extents built from a format-neutral [`Delta`], and the VM folder's other files
//! ([`vmx`], [`vmsd`], [`nvram`], [`vmware_log`]).
//!
//! A snapshot is forged as: the parent's content (a `Source`), a [`Delta`] of the guest's
//! writes, [`vmfs_sparse_extent`] or [`sesparse_extent`] for the child's extent file, and
//! [`Delta::merged`] for the ground truth a reader of the child must return.

mod cowd;
mod delta;
mod descriptor;
mod rng;
mod sesparse;
#[cfg(test)]
mod tests;
mod vmx;

pub use cowd::{COWD_MAGIC, CowdOptions, vmfs_sparse_extent};
pub use delta::{Delta, Overlay};
pub use descriptor::{Descriptor, DiskKind, uuid_text};
pub use rng::SplitMix64;
pub use sesparse::{SesLayout, SesparseOptions, sesparse_extent};
pub use vmx::{Firmware, NVRAM_LEN, SnapshotInfo, VmDisk, VmSpec, iso_time_ms, nvram, vmsd, vmware_log, vmx};

use crate::block::BlockSource;
use crate::forge::ForgeError;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Write `src` to a new file at `path`, leaving holes where `src` says there is no data (so
/// a thin 1 GiB flat extent costs only its written bytes).
pub fn write_sparse_file(path: &Path, src: &dyn BlockSource) -> Result<(), ForgeError> {
    let io = |e| ForgeError::io(path, e);
    let f = File::create(path).map_err(io)?;
    f.set_len(src.len()).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    for r in src.data_ranges(0..src.len()) {
        let mut off = r.start;
        while off < r.end {
            let n = (r.end - off).min(buf.len() as u64) as usize;
            src.read_at(off, &mut buf[..n])?;
            if buf[..n].iter().any(|&b| b != 0) {
                f.write_all_at(&buf[..n], off).map_err(io)?;
            }
            off += n as u64;
        }
    }
    f.sync_all().map_err(io)
}

/// SHA-256 of a whole source, as lowercase hex (ground truth for disks and files).
pub fn sha256_source(src: &dyn BlockSource) -> Result<String, ForgeError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < src.len() {
        let n = (src.len() - off).min(buf.len() as u64) as usize;
        src.read_at(off, &mut buf[..n])?;
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(crate::extract::hex(&h.finalize()))
}
