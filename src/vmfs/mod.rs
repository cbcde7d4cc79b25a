//! The VMFS file system.
