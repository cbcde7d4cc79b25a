//! Errors of the container layer: which structure, in whose address space, at which offset, of
//! which source, and what is wrong with it.
//!
//! `Display` reads as a report line, for example
//! `corrupt LVM_DevMetadata at device offset 0x100000 of disk.img: bad magic 0x00000000`.
//! Tests match on [`CorruptKind`], never on the text.

use crate::block::{BlockSource, ReadError};
use std::fmt;

/// Whose offsets an error's offset is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Offsets on the whole source (a disk or image): partition tables, probes.
    Disk,
    /// Offsets on one LVM device (a partition, or a candidate start on a disk).
    Device,
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Space::Disk => "disk",
            Space::Device => "device",
        })
    }
}

/// What is wrong with a structure; carries the values found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptKind {
    /// Fewer bytes than the structure needs.
    TooShort {
        /// Bytes the structure needs.
        need: usize,
        /// Bytes that were there.
        have: usize,
    },
    /// The magic number is not the structure's.
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// A GPT header without the `EFI PART` signature.
    BadSignature {
        /// The 8 signature bytes found, as a little-endian u64.
        found: u64,
    },
    /// An LVM major version this program does not know (3, 4, 5 and 6 are known).
    UnknownMajor(u32),
    /// LVM6 `mdAlignment` that is not a power of two in 512..=1 MiB.
    BadMdAlignment(u32),
    /// More PE maps than any real device can have.
    TooManyPeMaps {
        /// Maps counted so far (including this structure's).
        found: u64,
        /// The cap.
        max: u64,
    },
    /// The extended-metadata chain comes back to a region already read.
    ExtChainCycle {
        /// Device offset of the region seen twice.
        offset: u64,
    },
    /// The extended-metadata chain is longer than any real device needs.
    ExtChainTooLong {
        /// The cap on regions.
        max: usize,
    },
    /// A field holds an offset or size that cannot be right.
    BadField {
        /// The field's on-disk name.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A GPT header size outside 92..=sector size.
    HeaderSize(u32),
    /// A GPT header whose CRC32 does not match its bytes.
    HeaderCrc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// A GPT partition entry array whose CRC32 does not match the header's.
    EntriesCrc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// A GPT header announcing more partition entries than the cap.
    EntryCount {
        /// Count found.
        found: u32,
        /// The cap.
        max: u32,
    },
    /// A GPT partition entry size that is not a multiple of 8 in 128..=4096.
    EntrySize(u32),
    /// A GPT header that says it lives at another LBA than where it was read.
    SelfLba {
        /// LBA the header names.
        found: u64,
        /// LBA it was read from.
        expected: u64,
    },
}

impl fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptKind::TooShort { need, have } => write!(f, "truncated: need {need} bytes, have {have}"),
            CorruptKind::BadMagic { found } => write!(f, "bad magic {found:#010x}"),
            CorruptKind::BadSignature { found } => write!(f, "bad signature {found:#018x}"),
            CorruptKind::UnknownMajor(v) => write!(f, "unknown LVM major version {v}"),
            CorruptKind::BadMdAlignment(v) => {
                write!(f, "mdAlignment {v:#x} is not a power of two in 0x200..=0x100000")
            }
            CorruptKind::TooManyPeMaps { found, max } => write!(f, "{found} PE maps, more than the {max} supported"),
            CorruptKind::ExtChainCycle { offset } => {
                write!(f, "extended-metadata chain loops back to device offset {offset:#x}")
            }
            CorruptKind::ExtChainTooLong { max } => write!(f, "extended-metadata chain longer than {max} regions"),
            CorruptKind::BadField { field, value } => write!(f, "{field} {value:#x} is out of range"),
            CorruptKind::HeaderSize(v) => write!(f, "header size {v} outside 92..=sector size"),
            CorruptKind::HeaderCrc { stored, computed } => {
                write!(f, "header CRC32 {stored:#010x} but the bytes give {computed:#010x}")
            }
            CorruptKind::EntriesCrc { stored, computed } => {
                write!(f, "partition entry array CRC32 {stored:#010x} but the bytes give {computed:#010x}")
            }
            CorruptKind::EntryCount { found, max } => {
                write!(f, "{found} partition entries, more than the {max} allowed")
            }
            CorruptKind::EntrySize(v) => write!(f, "partition entry size {v} is not a multiple of 8 in 128..=4096"),
            CorruptKind::SelfLba { found, expected } => {
                write!(f, "header names LBA {found} as its own but was read at LBA {expected}")
            }
        }
    }
}

/// An error of the container layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes were read but do not form a valid structure.
    #[error("corrupt {structure} at {space} offset {offset:#x} of {source_name}: {kind}")]
    Corrupt {
        /// VMware's (or the spec's) name of the structure.
        structure: &'static str,
        /// Whose offset `offset` is.
        space: Space,
        /// Where the structure starts.
        offset: u64,
        /// Name of the source read.
        source_name: String,
        /// What is wrong.
        kind: CorruptKind,
    },
    /// The bytes could not be read at all (past the end, device gone). Unreadable sectors are
    /// not errors: they read as zeros and are reported by the block layer.
    #[error("cannot read {structure} at {space} offset {offset:#x} of {source_name}: {error}")]
    Read {
        /// Name of the structure that was being read.
        structure: &'static str,
        /// Whose offset `offset` is.
        space: Space,
        /// Where the structure starts.
        offset: u64,
        /// Name of the source read.
        source_name: String,
        /// The block-layer error.
        #[source]
        error: ReadError,
    },
}

impl Error {
    /// The corruption kind, for a [`Error::Corrupt`].
    pub fn kind(&self) -> Option<&CorruptKind> {
        match self {
            Error::Corrupt { kind, .. } => Some(kind),
            Error::Read { .. } => None,
        }
    }

    /// The structure the error is about.
    pub fn structure(&self) -> &'static str {
        match self {
            Error::Corrupt { structure, .. } | Error::Read { structure, .. } => structure,
        }
    }

    /// The offset of the structure, in [`Error::space`] offsets.
    pub fn offset(&self) -> u64 {
        match self {
            Error::Corrupt { offset, .. } | Error::Read { offset, .. } => *offset,
        }
    }

    /// Whose offset [`Error::offset`] is.
    pub fn space(&self) -> Space {
        match self {
            Error::Corrupt { space, .. } | Error::Read { space, .. } => *space,
        }
    }
}

/// A [`Error::Corrupt`] about `structure` at `offset` of `src`.
pub(crate) fn corrupt(
    src: &dyn BlockSource,
    space: Space,
    structure: &'static str,
    offset: u64,
    kind: CorruptKind,
) -> Error {
    Error::Corrupt { structure, space, offset, source_name: src.name(), kind }
}

/// Read `len` bytes of `structure` at `offset`; a block error becomes [`Error::Read`].
/// `len` must be a checked size (a constant or a capped count), never a raw disk field.
pub(crate) fn read_struct(
    src: &dyn BlockSource,
    space: Space,
    structure: &'static str,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, Error> {
    crate::block::read_vec(src, offset, len).map_err(|error| Error::Read {
        structure,
        space,
        offset,
        source_name: src.name(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_as_a_report_line() {
        let e = Error::Corrupt {
            structure: "LVM_DevMetadata",
            space: Space::Device,
            offset: 0x100000,
            source_name: "disk.img".into(),
            kind: CorruptKind::BadMagic { found: 0 },
        };
        assert_eq!(
            e.to_string(),
            "corrupt LVM_DevMetadata at device offset 0x100000 of disk.img: bad magic 0x00000000"
        );
        assert_eq!(e.kind(), Some(&CorruptKind::BadMagic { found: 0 }));
        assert_eq!(e.structure(), "LVM_DevMetadata");
        assert_eq!((e.offset(), e.space()), (0x100000, Space::Device));
    }

    #[test]
    fn read_errors_keep_the_structure() {
        let src = crate::block::Tolerant::new(crate::block::MemSource::new("tiny", vec![0; 512]));
        let e = read_struct(&src, Space::Disk, "GPT header", 512, 512).unwrap_err();
        assert!(matches!(e, Error::Read { structure: "GPT header", offset: 512, .. }));
        assert!(e.to_string().starts_with("cannot read GPT header at disk offset 0x200 of tiny: "));
    }
}
