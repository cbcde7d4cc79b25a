//! Errors of the VMFS layer: whose fault it is, which structure, and where.

use crate::block::ReadError;
use std::fmt;

/// Whose addresses an offset is in: a volume offset is not a file offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Byte offset in the logical volume.
    Volume,
    /// Byte offset inside the file with this FD address.
    File(u32),
}

/// Where a damaged structure lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Where {
    /// VMware's name of the structure (`FS3_Descriptor`, `FS3_FileMetadata`, ...).
    pub structure: &'static str,
    /// Address space of `offset`.
    pub space: Space,
    /// Offset of the structure.
    pub offset: u64,
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.space {
            Space::Volume => write!(f, "{} at volume offset {:#x}", self.structure, self.offset),
            Space::File(fd) => write!(f, "{} at offset {:#x} of file FD {:#x}", self.structure, self.offset, fd),
        }
    }
}

/// What is wrong with a structure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CorruptKind {
    /// The magic number is not one we know.
    #[error("bad magic {found:#010x}")]
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// The structure is cut short.
    #[error("truncated: {have} of {need} bytes")]
    Truncated {
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A size field is not a power of two or out of the range VMFS uses.
    #[error("{field} = {value:#x} is not a valid size")]
    BadSize {
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
    },
    /// A count or index is beyond what the structure allows.
    #[error("{field} = {value} is out of range (limit {limit})")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// An FD does not carry the address it was reached by.
    #[error("FD claims address {found:#x}, expected {expected:#x}")]
    WrongFdAddress {
        /// Address stored in the FD.
        found: u32,
        /// Address used to reach it.
        expected: u32,
    },
    /// The lock header's self-offset does not match where it was read.
    #[error("lock self-offset {found:#x} does not match")]
    WrongSelfOffset {
        /// Offset stored.
        found: u64,
    },
    /// A block address of a type that cannot appear here.
    #[error("address {addr:#x} of type {kind} is not valid here")]
    BadAddress {
        /// The raw address.
        addr: u64,
        /// Its type bits.
        kind: u8,
    },
    /// A directory that walks back into itself.
    #[error("directory cycle through FD {0:#x}")]
    DirectoryCycle(u32),
    /// A resource file lacks what a reference needs.
    #[error("{0}")]
    Inconsistent(String),
}

/// Errors of the VMFS layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes could not be read at all (out of range, device gone).
    #[error(transparent)]
    Io(#[from] ReadError),
    /// A structure is damaged.
    #[error("corrupt {at}: {kind}")]
    Corrupt {
        /// Where.
        at: Where,
        /// What.
        kind: CorruptKind,
    },
    /// The volume uses something this reader does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A path that does not exist.
    #[error("no such file or directory: {0}")]
    NotFound(String),
    /// A path component that is not a directory.
    #[error("not a directory: {0}")]
    NotADirectory(String),
}

impl Error {
    /// A corrupt-structure error at a volume offset.
    pub fn corrupt(structure: &'static str, offset: u64, kind: CorruptKind) -> Self {
        Self::Corrupt { at: Where { structure, space: Space::Volume, offset }, kind }
    }
    /// A corrupt-structure error at an offset inside a file.
    pub fn corrupt_in_file(structure: &'static str, fd: u32, offset: u64, kind: CorruptKind) -> Self {
        Self::Corrupt { at: Where { structure, space: Space::File(fd), offset }, kind }
    }
}

/// Result of the VMFS layer.
pub type Result<T> = std::result::Result<T, Error>;
