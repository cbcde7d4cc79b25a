//! VMDK content: descriptors, vmfsSparse (COWD) and SEsparse deltas.
