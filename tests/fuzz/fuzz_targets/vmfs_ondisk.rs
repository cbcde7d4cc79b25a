//! Every VMFS on-disk parser on arbitrary bytes: no panic, and what parses re-encodes to itself
//! where an encoder exists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmfs_rescue::vmfs::address::decode;
use vmfs_rescue::vmfs::ondisk::{
    DirBlockHeader6, DirEntry5, DirEntry6, DirHeader6, DiskLock, FileMeta, FsDescriptor, ResFileMeta, ScsiDiskId,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = FsDescriptor::parse(data) {
        assert_eq!(FsDescriptor::parse(&d.encode()).as_ref(), Ok(&d));
        let _ = vmfs_rescue::vmfs::geometry::Geometry::from_descriptor(&d);
    }
    let _ = DiskLock::parse(data);
    let _ = FileMeta::parse(data);
    let _ = ResFileMeta::parse(data);
    let _ = DirEntry5::parse(data);
    let _ = DirEntry6::parse(data);
    let _ = DirHeader6::parse(data);
    if let Ok(h) = DirBlockHeader6::parse(data) {
        for i in 0..usize::from(h.total_slots) {
            let _ = h.slot_used(i);
        }
    }
    let _ = ScsiDiskId::parse(data);
    for chunk in data.chunks_exact(8) {
        let raw = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let _ = decode(raw, true, true);
        let _ = decode(raw, false, true);
        let _ = decode(raw, false, false);
    }
});
