//! Errors of the virtual-disk layer: each names the file and, for on-disk structures, the offset.

/// What went wrong opening or reading a virtual disk.
#[derive(Debug, thiserror::Error)]
pub enum VdiskError {
    /// A structure is damaged or absurd.
    #[error("{file}: corrupt {structure} at offset {offset:#x}: {what}")]
    Corrupt { file: String, structure: &'static str, offset: u64, what: String },
    /// The descriptor text cannot be used.
    #[error("{file}: descriptor: {what}")]
    Descriptor { file: String, what: String },
    /// A file the disk needs is missing.
    #[error("{file}: not found ({why})")]
    Missing { file: String, why: String },
    /// Neither a known image magic nor descriptor text: a VMDK extent or a plain image.
    #[error(
        "{file}: not a known virtual-disk format ({size} bytes, no image magic, not a VMDK descriptor); if it is \
         a VMDK extent open its .vmdk descriptor, if it is a plain image open it as raw (--input-format raw)"
    )]
    UnknownFormat { file: String, size: u64 },
    /// A format or variant this reader does not handle.
    #[error("{file}: unsupported: {what}")]
    Unsupported { file: String, what: String },
    /// Reading the underlying file failed.
    #[error(transparent)]
    Read(#[from] crate::block::ReadError),
    /// Reading a file inside a VMFS volume failed.
    #[error(transparent)]
    Vmfs(#[from] crate::vmfs::Error),
    /// Local I/O.
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
}

impl VdiskError {
    /// A short kind for tests: "STRUCTURE@OFFSET" for corrupt structures, "unsupported", or the
    /// message.
    #[cfg(test)]
    pub(crate) fn kind(&self) -> String {
        match self {
            VdiskError::Corrupt { structure, offset, .. } => format!("{structure}@{offset:#x}"),
            VdiskError::Unsupported { .. } => "unsupported".into(),
            e => e.to_string(),
        }
    }

    /// A corrupt-structure error.
    pub fn corrupt(file: impl Into<String>, structure: &'static str, offset: u64, what: impl Into<String>) -> Self {
        Self::Corrupt { file: file.into(), structure, offset, what: what.into() }
    }
}

/// Result of this layer.
pub type Result<T, E = VdiskError> = std::result::Result<T, E>;
