//! Errors of the forge.

use std::path::PathBuf;

/// What went wrong while forging a datastore.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// Writing or creating an output file failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// An external tool (mkfs.ext4, mkntfs, mcopy, ...) failed or is missing.
    #[error("{tool}: {message}")]
    Tool { tool: String, message: String },
    /// The request cannot be laid out (volume too small, file too large, no free resource, ...).
    #[error("{0}")]
    Layout(String),
    /// Reading a content source failed.
    #[error("reading content: {0}")]
    Read(#[from] crate::block::ReadError),
}

impl ForgeError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
