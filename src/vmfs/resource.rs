//! Resource files (.fdc.sf, .sbc.sf, .pbc.sf, .pb2.sf): fixed-size records in cluster groups.

use super::error::{CorruptKind, Error, Result, Space, Where};
use super::fd::Fd;
use super::ondisk::ResFileMeta;

/// An opened resource file: its header plus the FD whose data holds the records.
#[derive(Clone, Debug)]
pub struct ResFile {
    /// File name, for messages (".fdc.sf").
    pub name: &'static str,
    /// The file's header.
    pub meta: ResFileMeta,
    /// The system file's FD.
    pub fd: Fd,
    /// Bytes of one cluster header (lock + cluster metadata).
    pub cluster_header_size: u64,
}

impl ResFile {
    /// File offset of resource `resource` of cluster `cluster` (`Res3` layout):
    /// `cgOffset + group·cgSize + C·headerSize + (cluster mod C)·R·rsz + resource·rsz`.
    pub fn resource_offset(&self, cluster: u64, resource: u64) -> Result<u64> {
        let m = &self.meta;
        let bad = |kind| Error::Corrupt {
            at: Where { structure: ResFileMeta::NAME, space: Space::File(self.fd.addr), offset: 0 },
            kind,
        };
        let r = u64::from(m.resources_per_cluster);
        let c = u64::from(m.clusters_per_group);
        if r == 0 || c == 0 {
            return Err(bad(CorruptKind::Inconsistent(format!("{} has no resources", self.name))));
        }
        if resource >= r {
            return Err(bad(CorruptKind::OutOfRange { field: "resource", value: resource, limit: r }));
        }
        let rsz = u64::from(m.resource_size);
        let group = cluster / c;
        let off = (|| {
            u64::from(m.cluster_group_offset)
                .checked_add(group.checked_mul(u64::from(m.cluster_group_size))?)?
                .checked_add(c.checked_mul(self.cluster_header_size)?)?
                .checked_add((cluster % c).checked_mul(r)?.checked_mul(rsz)?)?
                .checked_add(resource.checked_mul(rsz)?)
        })()
        .ok_or_else(|| bad(CorruptKind::OutOfRange { field: "cluster", value: cluster, limit: u64::MAX }))?;
        if off.checked_add(rsz).is_none_or(|end| end > self.fd.meta.size) {
            return Err(bad(CorruptKind::OutOfRange {
                field: "resource offset",
                value: off,
                limit: self.fd.meta.size,
            }));
        }
        Ok(off)
    }
}
