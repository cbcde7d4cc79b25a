//! The forge: writes VMFS datastores as ESXi lays them out, fills them with realistic content
//! (VM folders, VMDKs, snapshot deltas, guest file systems), damages them the way real
//! incidents do, and records the ground truth a perfect recovery must return.
//!
//! It exists for tests, benchmarks and the demo: no open tool creates VMFS volumes, and the
//! real samples are small and healthy. Everything it writes is checked by an independent
//! reader (dissect.vmfs) in the oracle tests.

pub mod error;
pub mod guest;
pub mod vmdk;

pub use error::ForgeError;
pub mod content;
pub mod damage;
pub mod disk;
pub mod lvm;
pub mod scenario;
pub mod truth;
pub mod vmfs;
pub mod volume;
