//! The VMFS file system (VMFS3, VMFS5, VMFS6 and VMFS-L), read-only.
//!
//! `ondisk` holds the layouts; `geometry` derives sizes from the descriptor; `volume` opens the
//! system files; `blockmap` turns an FD into extents; `dir` lists directories; `file` exposes a
//! file as a [`crate::block::BlockSource`].

pub mod address;
pub mod blockmap;
pub mod dir;
pub mod dirhash;
pub mod error;
pub mod fd;
pub mod file;
pub mod geometry;
pub mod ondisk;
pub mod resource;
pub mod volume;
pub mod walk;

pub use blockmap::{Extent, ExtentKind};
pub use dir::DirEntry;
pub use error::{CorruptKind, Error, Result};
pub use fd::Fd;
pub use file::VmfsFile;
pub use ondisk::{FdType, FsDescriptor};
pub use volume::Vmfs;
pub use walk::WalkItem;
