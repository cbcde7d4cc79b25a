//! Hosted sparse extents (magic "KDMV"): monolithicSparse, twoGbMaxExtentSparse parts and
//! streamOptimized (compressed grains, markers), research/vmdk-format.md §3–4.

use super::error::{Result, VdiskError};
use super::extent::ExtentReader;
use crate::block::Source;

/// "KDMV" at offset 0, little-endian.
pub const KDMV_MAGIC: u32 = 0x564D_444B;

/// The embedded descriptor of a KDMV file, if it has one.
pub fn embedded_descriptor(src: &Source) -> Result<Option<Vec<u8>>> {
    let _ = src;
    Ok(None)
}

/// Open a KDMV extent of `len` bytes (from the descriptor line).
pub fn open(name: &str, src: Source, len: u64) -> Result<Box<dyn ExtentReader>> {
    let _ = (src, len);
    Err(VdiskError::Unsupported { file: name.into(), what: "hosted sparse (KDMV) extents".into() })
}
