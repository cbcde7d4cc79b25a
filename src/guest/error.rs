//! Errors of the guest layer: which structure, at which offset of which volume, what is wrong.

use crate::block::ReadError;

/// An error opening or reading a guest file system. Unreadable sectors are not errors (they read
/// as zeros and are reported by the file's source); these are requests that cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The source could not be read at all.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The partition table could not be read.
    #[error(transparent)]
    Partition(#[from] crate::container::Error),
    /// A structure is damaged beyond use.
    #[error("corrupt {structure} at offset {offset:#x} of {volume}: {what}")]
    Corrupt {
        /// The structure (`FAT boot sector`, `ext superblock`, `FAT directory entry`).
        structure: &'static str,
        /// Byte offset of the structure on the volume.
        offset: u64,
        /// The volume's name.
        volume: String,
        /// What is wrong, with the values found.
        what: String,
    },
    /// No file system this reader knows.
    #[error("{volume}: no known file system (first bytes {head}); FAT12/16/32, exFAT, ext2/3/4 and NTFS are read")]
    UnknownFs {
        /// The volume's name.
        volume: String,
        /// The first bytes in hex, for the report.
        head: String,
    },
    /// A layout recognised but not read (a feature, a volume kind).
    #[error("{volume}: {what}")]
    Unsupported {
        /// The volume's name.
        volume: String,
        /// What is not supported.
        what: String,
    },
    /// A guest path names nothing.
    #[error("{path}: no such file or directory in the guest")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// A guest path names a file where a directory is needed.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path asked for.
        path: String,
    },
}

/// Shorthand for a [`GuestError::Corrupt`].
pub(crate) fn corrupt(structure: &'static str, offset: u64, volume: &str, what: impl Into<String>) -> GuestError {
    GuestError::Corrupt { structure, offset, volume: volume.to_string(), what: what.into() }
}
