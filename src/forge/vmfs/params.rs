//! The numbers ESXi chooses when it formats a volume: block sizes, resource counts and the
//! shape of every resource file, per version. Values are those of the ESXi 8 samples in the
//! corpus (2 GiB volumes) and of vmkfstools output for a 500 GB volume; where a count grows
//! with the volume, the formula fits both and is marked as such.

use crate::vmfs::geometry::Geometry;
use crate::vmfs::ondisk::{FsDescriptor, VMFS_MAGIC};

/// Kinds of resource, by their address type / lock type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResKind {
    /// File blocks (VMFS5 FB, VMFS6 SFB): .fbb.sf.
    Fb,
    /// Sub-blocks: .sbc.sf.
    Sb,
    /// Pointer blocks: .pbc.sf.
    Pb,
    /// File descriptors: .fdc.sf.
    Fd,
    /// Secondary pointer blocks: .pb2.sf.
    Pb2,
    /// Journal blocks (VMFS6): .jbc.sf.
    Jb,
    /// Large file blocks (VMFS6): the parent level of .fbb.sf.
    Lfb,
    /// UNMAP tracking records (VMFS6 .unmap.sf): resources without clusters.
    Unmap,
}

pub const MIB: u64 = 1 << 20;

/// Lock type of a cluster of resource kind `k` (0x10C00001 + resource type id).
pub fn cluster_lock_type(k: ResKind) -> u32 {
    0x10C0_0001
        + match k {
            ResKind::Fb => 1,
            ResKind::Sb => 2,
            ResKind::Pb => 3,
            ResKind::Fd => 4,
            ResKind::Pb2 => 5,
            ResKind::Jb => 6,
            ResKind::Lfb => 7,
            ResKind::Unmap => 8,
        }
}

/// The shape of one resource file (`FS3_ResFileMetadata`) and its clusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResSpec {
    pub kind: ResKind,
    /// Resources per cluster (R).
    pub r: u64,
    /// Clusters per group (C).
    pub c: u64,
    /// Bytes per resource (0: bitmap only, as .fbb.sf).
    pub rs: u64,
    /// Number of resources.
    pub n: u64,
    /// File offset of cluster group 0.
    pub cgo: u64,
    /// Bytes of one cluster header (lock + cluster metadata).
    pub hdr: u64,
}

impl ResSpec {
    /// Bytes of one cluster group.
    pub fn cgs(&self) -> u64 {
        self.c * self.hdr + self.c * self.r * self.rs
    }

    /// Number of cluster groups.
    pub fn ncg(&self) -> u64 {
        if self.r == 0 { 0 } else { self.n.div_ceil(self.r * self.c) }
    }

    /// Number of clusters that hold resources.
    pub fn clusters(&self) -> u64 {
        if self.r == 0 { 0 } else { self.n.div_ceil(self.r) }
    }

    /// File length: the last group ends after its last resource (resources without clusters,
    /// as in .unmap.sf, follow the header directly).
    pub fn file_len(&self) -> u64 {
        let g = self.ncg();
        if g == 0 {
            return self.cgo + self.n * self.rs;
        }
        let before = (g - 1) * self.r * self.c;
        self.cgo + (g - 1) * self.cgs() + self.c * self.hdr + (self.n - before) * self.rs
    }

    /// File offset of cluster `cl`'s header.
    pub fn cluster_header(&self, cl: u64) -> u64 {
        self.cgo + (cl / self.c) * self.cgs() + (cl % self.c) * self.hdr
    }

    /// File offset of resource `res` of cluster `cl`.
    pub fn resource(&self, cl: u64, res: u64) -> u64 {
        self.cgo + (cl / self.c) * self.cgs() + self.c * self.hdr + (cl % self.c) * self.r * self.rs + res * self.rs
    }

    /// Resources in cluster `cl` (the last one may be partial).
    pub fn in_cluster(&self, cl: u64) -> u64 {
        self.n.saturating_sub(cl * self.r).min(self.r)
    }
}

/// Everything fixed at format time.
#[derive(Clone, Debug)]
pub struct Params {
    /// 5 or 6.
    pub version: u32,
    pub desc: FsDescriptor,
    pub geo: Geometry,
    pub vol_size: u64,
    /// File blocks (FB / SFB) on the volume.
    pub blocks: u64,
    /// Volume offset where .fdc.sf starts (its first block).
    pub fdc_base: u64,
    /// Heartbeat slots and their size.
    pub hb_slots: u64,
    pub hb_size: u64,
    pub fdc: ResSpec,
    pub sbc: ResSpec,
    pub pbc: ResSpec,
    pub pb2: ResSpec,
    /// .fbb.sf: FB clusters on VMFS5; SFB child clusters on VMFS6.
    pub fbb: ResSpec,
    /// VMFS6 only: LFB parent clusters of .fbb.sf, and the journal blocks.
    pub lfb: Option<ResSpec>,
    pub jbc: Option<ResSpec>,
    /// VMFS6 only: .unmap.sf, one 4 KiB lock record per heartbeat slot.
    pub unmap: Option<ResSpec>,
    /// The formatting host (FS descriptor `hostUuid`).
    pub host_uuid: crate::le::VmwareUuid,
}

/// Identity of a new file system (what differs between two formats of the same disk).
#[derive(Clone, Debug)]
pub struct Identity {
    pub label: String,
    pub fs_uuid: crate::le::VmwareUuid,
    pub lv_uuid: crate::le::VmwareUuid,
    pub host_uuid: crate::le::VmwareUuid,
    /// Unix seconds of the format.
    pub time: u32,
}

impl Params {
    /// The parameters ESXi uses for a VMFS `version` volume of `vol_size` bytes.
    pub fn new(version: u32, vol_size: u64, id: &Identity) -> Result<Self, String> {
        let fbs = MIB;
        let blocks = vol_size / fbs;
        let (v3, v6) = match version {
            3 => (true, false),
            5 => (false, false),
            6 => (false, true),
            v => return Err(format!("VMFS{v} cannot be forged (3, 5 or 6)")),
        };
        if vol_size < 1 << 30 {
            return Err(format!("a VMFS{version} volume needs at least 1 GiB, not {vol_size} bytes"));
        }
        let md: u64 = if v6 { 4096 } else { 512 };
        let hdr = if v6 { 2 * md } else { 1024 };
        let spec = |kind, r, c, rs, n| ResSpec { kind, r, c, rs, n, cgo: 0x10000, hdr };
        let (fdc, sbc, pbc, pb2, fbb, lfb, jbc, unmap);
        if v6 {
            fdc = spec(ResKind::Fd, 256, 8, 2 * md, 16384);
            sbc = spec(ResKind::Sb, 256, 8, 0x10000, 16384);
            pbc = spec(ResKind::Pb, 0, 8, 0x10000, 0);
            pb2 = spec(ResKind::Pb2, 32, 8, 0x10000, 256);
            fbb = ResSpec { kind: ResKind::Fb, r: 512, c: 8, rs: 0, n: blocks, cgo: 0x10000, hdr };
            lfb = Some(spec(ResKind::Lfb, 16, 8, hdr, vol_size / (512 * MIB)));
            jbc = Some(ResSpec { kind: ResKind::Jb, r: 8, c: 4, rs: 2 * MIB, n: 128, cgo: 0x10000, hdr });
            unmap = Some(ResSpec { kind: ResKind::Unmap, r: 0, c: 0, rs: 0x1000, n: 1024, cgo: 0x10000, hdr: 0 });
        } else if v3 {
            // ESX 3.x: "max files 30720, ptr blocks 15680, sub blocks 3968" (vmkfstools -P);
            // 32 clusters per group everywhere (the VMFS3 sample of the reference).
            let fds = (blocks * 10).clamp(8192, 30720) / 32 * 32;
            fdc = spec(ResKind::Fd, 32, 32, 2048, fds);
            sbc = spec(ResKind::Sb, 16, 32, 0x10000, 3968);
            pbc = spec(ResKind::Pb, 16, 32, 0x1000, 15680);
            pb2 = spec(ResKind::Pb2, 16, 32, 0x1000, 0);
            fbb = spec(ResKind::Fb, 200, 32, 0, blocks);
            lfb = None;
            jbc = None;
            unmap = None;
        } else {
            // Fits 20352 FDs at 2 GiB (ESXi 8 sample) and the 130000 cap of vmkfstools.
            let fds = (blocks * 10).saturating_sub(128).clamp(8192, 130_000);
            fdc = spec(ResKind::Fd, 200, 64, 2048, fds);
            sbc = spec(ResKind::Sb, 64, 64, 0x2000, (blocks * 4).clamp(8192, 32000));
            pbc = spec(ResKind::Pb, 16, 64, 0x1000, 64512);
            pb2 = spec(ResKind::Pb2, 16, 64, 0x1000, 256);
            fbb = spec(ResKind::Fb, 200, 64, 0, blocks);
            lfb = None;
            jbc = None;
            unmap = None;
        }
        let desc = FsDescriptor {
            magic: VMFS_MAGIC,
            major: if v6 {
                24
            } else if v3 {
                4
            } else {
                14
            },
            minor: if v6 {
                82
            } else if v3 {
                31
            } else {
                81
            },
            uuid: id.fs_uuid,
            // VMFS3 has no dense sub-block packing.
            config: if v6 {
                0x4006
            } else if v3 {
                0x2
            } else {
                0x6
            },
            label: id.label.clone(),
            disk_block_size: 512,
            file_block_size: fbs,
            creation_time: id.time,
            lv_uuid: id.lv_uuid,
            fdc_cluster_group_offset: 0x10000,
            fdc_clusters_per_group: u32::try_from(fdc.c).unwrap_or(0),
            sub_block_size: u32::try_from(sbc.rs).unwrap_or(0),
            pb2_vol_addr: 0,
            pb2_fd_addr: if v3 { 0 } else { crate::vmfs::address::make_fd(0, 6) },
            sdd_vol_addr: 0,
            sdd_fd_addr: if v3 { 0 } else { crate::vmfs::address::make_fd(0, 7) },
            phys_disk_block_size: if v6 { 512 } else { 0 },
            md_alignment: if v6 { 4096 } else { 0 },
            sfb_to_lfb_shift: if v6 { 9 } else { 0 },
        };
        let geo = Geometry::from_descriptor(&desc).map_err(|e| e.to_string())?;
        let fdc_base = if v6 { 0x70_0000 } else { 0x40_0000 };
        let mut p = Self {
            version,
            desc,
            geo,
            vol_size,
            blocks,
            fdc_base,
            hb_slots: if v6 { 1024 } else { 2048 },
            hb_size: if v6 { 4096 } else { 512 },
            fdc,
            sbc,
            pbc,
            pb2,
            fbb,
            lfb,
            jbc,
            unmap,
            host_uuid: id.host_uuid,
        };
        // The .pb2.sf and .sdd.sf FDs (system FDs 6 and 7) are also named by volume offset.
        if !v3 {
            p.desc.pb2_vol_addr = p.system_fd_offset(6);
            p.desc.sdd_vol_addr = p.system_fd_offset(7);
        }
        Ok(p)
    }

    /// True for VMFS6.
    pub fn v6(&self) -> bool {
        self.version == 6
    }

    /// True for VMFS3: no resident files, no .pb2.sf/.sdd.sf, FDs without blockOffsetShift.
    pub fn v3(&self) -> bool {
        self.version == 3
    }

    /// Volume offset of system FD `r` (cluster 0, resource `r`).
    pub fn system_fd_offset(&self, r: u64) -> u64 {
        self.fdc_base + self.fdc.resource(0, r)
    }
}
