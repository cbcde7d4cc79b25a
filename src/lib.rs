//! vmfs-rescue: read-only recovery of VMware VMFS datastores.
//!
//! Layers, each depending only on the ones above it in this list:
//! - [`block`]: positional reads from images and devices, bad-sector tolerant;
//! - [`container`]: partition tables, lost-partition probe, VMware LVM;
//! - [`vmfs`]: the VMFS3/5/6 and VMFS-L file system;
//! - [`extract`]: copying files and disks out (sparse raw or qcow2, hashed, with a manifest);
//! - [`compare`]: comparing two disks by content, through their allocation maps;
//! - [`hw`]: the hardware inventory (controllers, disks, what they hold) and destinations;
//! - `cli` (in the binary crate side, `src/cli`): the command line.
#![deny(unsafe_code)]

pub mod block;
pub mod calendar;
pub mod compare;
pub mod container;
pub mod datastore;
pub mod extract;
pub mod forge;
pub mod guest;
pub mod hw;
pub mod le;
pub mod net;
pub mod recover;
pub mod tui;
pub mod vdisk;
pub mod vmfs;
