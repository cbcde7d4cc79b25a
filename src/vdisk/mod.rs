//! Virtual disks: VMDK descriptors and extents (flat, hosted sparse, streamOptimized, COWD
//! vmfsSparse, SEsparse), images of other formats (`image`), snapshot and backing chains, and the assembled disk as a [`BlockSource`] whose
//! `data_ranges` skip holes and whose `unreadable` names what could not be read.
//!
//! Files come from a [`files::Files`]: a local folder or a VMFS volume, so a VMDK is read the
//! same way wherever it lies.
//!
//! [`BlockSource`]: crate::block::BlockSource

pub mod bitmap;
pub mod bochs;
pub mod chain;
pub mod chunks;
pub mod cloop;
pub mod cowd;
#[cfg(test)]
mod delta_tests;
pub mod descriptor;
pub mod dmg;
pub mod error;
pub mod extent;
pub mod files;
pub mod grains;
pub mod image;
pub mod layer;
pub mod parallels;
pub mod qcow2;
pub mod sesparse;
pub mod snapshot;
pub mod sparse;
pub mod vdi;
pub mod vhd;
pub mod vhdx;

pub use chain::{Allocation, VirtualDisk, open, open_leaf};
pub use descriptor::{Descriptor, ExtentLine};
pub use error::VdiskError;
pub use extent::{Alloc, ExtentReader};
pub use files::{Files, LocalFiles, VmfsFiles};
pub use image::{Format, Image, ParentRef};
pub use layer::{Layer, RdmMapping};
