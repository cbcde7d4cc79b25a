//! Packed block addresses. The low three bits are the type; the rest depends on type and version.
//!
//! ```text
//! VMFS3/5 (u32)                         VMFS6 (u64)
//! FB  1: cow b4, tbz b5, block b6-31    SFB 1: cow b5, tbz b7-14, cluster b15-45, resource b51-63
//! SB  2: resHi b3-4 (dense SBPC only),  SB  2: cow b5, cluster b6-41, resource b56-63
//!        cow b5, cluster b6-27, res b28-31
//! PB  3 / PB2 5: cluster b6-27,         PB  3 / PB2 5: as SB
//!        resource b28-31
//! FD  4 (u32, both): cluster b6-21, resource b22-31
//!                                       LFB 7: cow b5, tbz b7-14, block b15-45
//! ```

/// A decoded block or resource address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    /// 0: a hole.
    Null,
    /// VMFS3/5 file block: volume offset = block × fileBlockSize.
    FileBlock {
        /// Block number.
        block: u64,
        /// To be zeroed: allocated but never written, reads as zeros.
        tbz: bool,
    },
    /// VMFS6 small file block: block = cluster × resourcesPerCluster + resource.
    SmallFileBlock {
        /// Cluster.
        cluster: u64,
        /// Resource in the cluster.
        resource: u64,
        /// To-be-zeroed bitmap; any bit set means the block reads as zeros.
        tbz: u8,
    },
    /// VMFS6 large file block: volume offset = block × LFB size.
    LargeFileBlock {
        /// Block number in LFB units.
        block: u64,
        /// To-be-zeroed bitmap.
        tbz: u8,
    },
    /// Sub-block in .sbc.sf (VMFS6 pointer blocks are sub-blocks too).
    SubBlock {
        /// Cluster.
        cluster: u64,
        /// Resource.
        resource: u64,
    },
    /// Pointer block in .pbc.sf.
    PtrBlock {
        /// Cluster.
        cluster: u64,
        /// Resource.
        resource: u64,
    },
    /// Secondary pointer block in .pb2.sf.
    PtrBlock2 {
        /// Cluster.
        cluster: u64,
        /// Resource.
        resource: u64,
    },
    /// File descriptor in .fdc.sf.
    Fd {
        /// Cluster.
        cluster: u64,
        /// Resource.
        resource: u64,
    },
    /// A type that cannot hold data (journal block, unknown).
    Other {
        /// The type bits.
        kind: u8,
    },
}

/// Address type bits.
pub fn addr_type(raw: u64) -> u8 {
    (raw & 7) as u8
}

/// Decode a pointer value of a VMFS3/5 (`v6 == false`, the value is a u32) or VMFS6 volume.
pub fn decode(raw: u64, v6: bool, dense_sbpc: bool) -> Addr {
    if raw == 0 {
        return Addr::Null;
    }
    let kind = addr_type(raw);
    if v6 {
        match kind {
            1 => Addr::SmallFileBlock {
                cluster: (raw >> 15) & 0x7FFF_FFFF,
                resource: (raw >> 51) & 0x1FFF,
                tbz: ((raw >> 7) & 0xFF) as u8,
            },
            4 => fd(raw as u32),
            7 => Addr::LargeFileBlock { block: (raw >> 15) & 0x7FFF_FFFF, tbz: ((raw >> 7) & 0xFF) as u8 },
            k => resource_addr(k, (raw >> 6) & 0xF_FFFF_FFFF, (raw >> 56) & 0xFF),
        }
    } else {
        let raw = raw & 0xFFFF_FFFF;
        match kind {
            1 => Addr::FileBlock { block: (raw >> 6) & 0x3FF_FFFF, tbz: raw & 0x20 != 0 },
            4 => fd(raw as u32),
            k => {
                let mut resource = (raw >> 28) & 0xF;
                if k == 2 && dense_sbpc {
                    resource |= ((raw >> 3) & 3) << 4;
                }
                resource_addr(k, (raw >> 6) & 0x3F_FFFF, resource)
            }
        }
    }
}

/// The SB (2), PB (3) or PB2 (5) address of `cluster`/`resource`; any other type holds no data.
fn resource_addr(kind: u8, cluster: u64, resource: u64) -> Addr {
    match kind {
        2 => Addr::SubBlock { cluster, resource },
        3 => Addr::PtrBlock { cluster, resource },
        5 => Addr::PtrBlock2 { cluster, resource },
        k => Addr::Other { kind: k },
    }
}

/// Decode an FD address (u32 on every version).
pub fn fd(raw: u32) -> Addr {
    Addr::Fd { cluster: u64::from((raw >> 6) & 0xFFFF), resource: u64::from((raw >> 22) & 0x3FF) }
}

/// Encode an FD address from cluster and resource.
pub fn make_fd(cluster: u32, resource: u32) -> u32 {
    4 | ((cluster & 0xFFFF) << 6) | ((resource & 0x3FF) << 22)
}

/// Encode a VMFS3/5 file block address.
pub fn make_fb(block: u32, tbz: bool) -> u32 {
    1 | (u32::from(tbz) << 5) | ((block & 0x3FF_FFFF) << 6)
}

/// Encode a VMFS3/5 PB (kind 3) or SB (kind 2, no dense bits) address.
pub fn make_res32(kind: u32, cluster: u32, resource: u32) -> u32 {
    kind | ((cluster & 0x3F_FFFF) << 6) | ((resource & 0xF) << 28)
}

/// Encode a VMFS6 SFB address.
pub fn make_sfb(cluster: u64, resource: u64, tbz: u8) -> u64 {
    1 | (u64::from(tbz) << 7) | ((cluster & 0x7FFF_FFFF) << 15) | ((resource & 0x1FFF) << 51)
}

/// Encode a VMFS6 SB/PB/PB2 address (`kind` 2, 3 or 5).
pub fn make_res64(kind: u64, cluster: u64, resource: u64) -> u64 {
    kind | ((cluster & 0xF_FFFF_FFFF) << 6) | ((resource & 0xFF) << 56)
}

/// Encode a VMFS6 LFB address.
pub fn make_lfb(block: u64, tbz: u8) -> u64 {
    7 | (u64::from(tbz) << 7) | ((block & 0x7FFF_FFFF) << 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_samples_from_real_volumes() {
        // VMFS5 69 GiB thin VMDK: PB 0x00034483 = cluster 3346, resource 0.
        assert_eq!(decode(0x0003_4483, false, true), Addr::PtrBlock { cluster: 0xd12, resource: 0 });
        // VMFS6 SB 0x0100000000000482: cluster 18, resource 1.
        assert_eq!(decode(0x0100_0000_0000_0482, true, false), Addr::SubBlock { cluster: 18, resource: 1 });
        // Root directory FD.
        assert_eq!(decode(4, false, false), Addr::Fd { cluster: 0, resource: 0 });
        assert_eq!(fd(0x0080_0004), Addr::Fd { cluster: 0, resource: 2 });
    }

    #[test]
    fn round_trips() {
        assert_eq!(decode(make_fb(12345, true).into(), false, true), Addr::FileBlock { block: 12345, tbz: true });
        assert_eq!(
            decode(make_sfb(77, 300, 0x80), true, false),
            Addr::SmallFileBlock { cluster: 77, resource: 300, tbz: 0x80 }
        );
        assert_eq!(decode(make_lfb(9, 0), true, false), Addr::LargeFileBlock { block: 9, tbz: 0 });
        assert_eq!(decode(make_res64(2, 5000, 7), true, false), Addr::SubBlock { cluster: 5000, resource: 7 });
        assert_eq!(decode(make_res32(3, 99, 15).into(), false, false), Addr::PtrBlock { cluster: 99, resource: 15 });
        // Dense SBPC: bits 3-4 are resource bits 4-5.
        assert_eq!(decode(0x2 | (0b11 << 3) | (1 << 28), false, true), Addr::SubBlock { cluster: 0, resource: 0x31 });
        assert_eq!(decode(make_fd(3, 5).into(), false, false), Addr::Fd { cluster: 3, resource: 5 });
    }
}
