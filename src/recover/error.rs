//! Errors of the recovery engine. A bad sector is never one of them (it reads as zeros and is
//! recorded in the index); these are failures of the state directory, a source that cannot be
//! read at all, or a resume against something else.

use crate::block::ReadError;
use std::path::PathBuf;

/// Why a scan or an index load failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// A file of the state directory could not be created, read, written or synced.
    #[error("{}: {error}", path.display())]
    State {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// A source could not be read at all (not a bad sector: those are zero-filled and recorded).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The index in the state directory is not one this program wrote, or is damaged.
    #[error("{}: {what}", path.display())]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong, with the line or byte offset.
        what: String,
    },
    /// The state directory belongs to a scan of other sources.
    #[error("{}: this state directory holds a scan of other sources: {why}; use a new --state directory", dir.display())]
    OtherSources {
        /// The state directory.
        dir: PathBuf,
        /// Which source differs and how.
        why: String,
    },
    /// The state directory holds no scan.
    #[error("{}: no scan index here (run `vmfs-rescue scan ... --state` first)", dir.display())]
    NoIndex {
        /// The state directory.
        dir: PathBuf,
    },
}

impl RecoverError {
    /// A state-directory I/O error on `path`.
    pub fn state(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::State { path: path.into(), error }
    }
}
