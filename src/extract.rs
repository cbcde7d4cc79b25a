//! Copying files out.
