//! ESXi SEsparse deltas (constant magic 0xCAFEBABE), research/vmdk-format.md §6.

use super::error::{Result, VdiskError};
use super::extent::ExtentReader;
use crate::block::Source;

/// SEsparse constant header magic.
pub const SESPARSE_MAGIC: u64 = 0xCAFE_BABE;

/// Open an SEsparse extent of `len` bytes (from the descriptor line).
pub fn open(name: &str, src: Source, len: u64) -> Result<Box<dyn ExtentReader>> {
    let _ = (src, len);
    Err(VdiskError::Unsupported { file: name.into(), what: "SEsparse extents".into() })
}
