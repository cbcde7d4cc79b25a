//! ESXi vmfsSparse deltas (magic "COWD"), research/vmdk-format.md §5.

use super::error::{Result, VdiskError};
use super::extent::ExtentReader;
use crate::block::Source;

/// "COWD" at offset 0, little-endian.
pub const COWD_MAGIC: u32 = 0x4457_4F43;

/// Open a COWD extent of `len` bytes (from the descriptor line).
pub fn open(name: &str, src: Source, len: u64) -> Result<Box<dyn ExtentReader>> {
    let _ = (src, len);
    Err(VdiskError::Unsupported { file: name.into(), what: "vmfsSparse (COWD) extents".into() })
}
