//! VHDX (placeholder).
use super::error::{Result, VdiskError};
use super::image::Image;
use crate::block::Source;

pub fn open(path: &str, src: Source) -> Result<Image> {
    let _ = src;
    Err(VdiskError::Unsupported { file: path.into(), what: "vhdx".into() })
}
