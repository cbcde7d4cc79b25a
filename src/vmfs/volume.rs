//! Opening a VMFS volume: descriptor, geometry, system files; and reading FDs and bytes.

use super::address::{Addr, decode, fd as fd_addr};
use super::blockmap::ExtentKind;
use super::error::{CorruptKind, Error, Result};
use super::fd::Fd;
use super::geometry::Geometry;
use super::ondisk::{
    FS_DESCRIPTOR_OFFSET, FS_DESCRIPTOR_SIZE, FdType, FsDescriptor, RES_FILE_META_SIZE, RFMD_SIGNATURE, ResFileMeta,
};
use super::resource::ResFile;
use crate::block::{Source, read_vec};
use crate::le::{u32_at, u64_at};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// FD address of the root directory (`rootDirDescAddr`).
pub const ROOT_FD: u32 = 0x0000_0004;
/// `fbbDescAddr`.
pub const FBB_FD: u32 = 0x0040_0004;
/// `fdbcDescAddr`.
pub const FDC_FD: u32 = 0x0080_0004;
/// `pbcDescAddr`.
pub const PBC_FD: u32 = 0x00C0_0004;
/// `sbDescAddr`.
pub const SBC_FD: u32 = 0x0100_0004;
/// `pb2DescAddr`.
pub const PB2_FD: u32 = 0x0180_0004;

/// Nesting limit for resolving system files through each other (a hostile ZLA could loop).
const MAX_DEPTH: u32 = 4;
/// Pointer blocks kept in memory.
const PB_CACHE_ENTRIES: usize = 256;
/// Largest metadata file (directory, symlink) read whole into memory.
pub const MAX_METADATA_FILE: u64 = 256 << 20;

/// The resource files a reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResKind {
    /// .fdc.sf: file descriptors.
    Fd,
    /// .sbc.sf: sub-blocks (and VMFS6 pointer blocks).
    Sb,
    /// .pbc.sf: VMFS3/5 pointer blocks.
    Pb,
    /// .pb2.sf: secondary pointer blocks.
    Pb2,
}

impl ResKind {
    /// The system file holding resources of this kind.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Fd => ".fdc.sf",
            Self::Sb => ".sbc.sf",
            Self::Pb => ".pbc.sf",
            Self::Pb2 => ".pb2.sf",
        }
    }
}

/// An open VMFS file system on a (logical-volume) source.
pub struct Vmfs {
    /// The volume.
    pub vol: Source,
    /// The FS3 descriptor.
    pub desc: FsDescriptor,
    /// Layout derived from it.
    pub geo: Geometry,
    /// VMFS6: small file blocks per SFB cluster (from .fbb.sf; 1 on VMFS3/5).
    pub sfb_per_cluster: u64,
    fdc: OnceLock<ResFile>,
    sbc: OnceLock<ResFile>,
    pbc: OnceLock<ResFile>,
    pb2: OnceLock<ResFile>,
    pb_cache: Mutex<HashMap<u64, Arc<Vec<u64>>>>,
    /// Problems met while opening that did not stop it.
    pub warnings: Vec<String>,
}

impl Vmfs {
    /// Open the file system on `vol` (a logical volume, or a raw LV image).
    pub fn open(vol: Source) -> Result<Self> {
        let raw = read_vec(vol.as_ref(), FS_DESCRIPTOR_OFFSET, FS_DESCRIPTOR_SIZE)?;
        let desc =
            FsDescriptor::parse(&raw).map_err(|k| Error::corrupt(FsDescriptor::NAME, FS_DESCRIPTOR_OFFSET, k))?;
        let geo = Geometry::from_descriptor(&desc)?;
        let mut fs = Self {
            vol,
            desc,
            geo,
            sfb_per_cluster: 1,
            fdc: OnceLock::new(),
            sbc: OnceLock::new(),
            pbc: OnceLock::new(),
            pb2: OnceLock::new(),
            pb_cache: Mutex::new(HashMap::new()),
            warnings: Vec::new(),
        };
        fs.bootstrap()?;
        Ok(fs)
    }

    /// Open the system files in dependency order (`Vol3OpenStage1`): each is found by its fixed
    /// place in FD cluster 0, and may only use the ones opened before it.
    fn bootstrap(&mut self) -> Result<()> {
        let pb2_addr = if self.geo.v6 { PB2_FD } else { self.desc.pb2_fd_addr };
        if self.desc.pb2_vol_addr != 0 {
            self.try_open_res(ResKind::Pb2, pb2_addr);
        }
        self.try_open_res(ResKind::Pb, PBC_FD);
        if self.geo.v6 {
            self.sfb_per_cluster = self.read_sfb_per_cluster();
        }
        let fdc = self.open_res(ResKind::Fd, FDC_FD)?;
        let _ = self.fdc.set(fdc);
        self.try_open_res(ResKind::Sb, SBC_FD);
        Ok(())
    }

    fn try_open_res(&mut self, kind: ResKind, addr: u32) {
        match self.open_res(kind, addr) {
            Ok(r) => {
                let _ = self.slot(kind).set(r);
            }
            Err(e) => {
                tracing::warn!(file = kind.file_name(), error = %e, "system file unusable");
                self.warnings.push(format!("{}: {e}", kind.file_name()));
            }
        }
    }

    fn slot(&self, kind: ResKind) -> &OnceLock<ResFile> {
        match kind {
            ResKind::Fd => &self.fdc,
            ResKind::Sb => &self.sbc,
            ResKind::Pb => &self.pbc,
            ResKind::Pb2 => &self.pb2,
        }
    }

    /// Read a system FD from its fixed place and the resource header at the start of its data.
    fn open_res(&self, kind: ResKind, addr: u32) -> Result<ResFile> {
        let fd = self.read_system_fd(addr)?;
        if fd.meta.kind != FdType::SysFile {
            return Err(Error::corrupt(
                "FS3_FileMetadata",
                fd.vol_offset(),
                CorruptKind::Inconsistent(format!("{} FD has type {:?}", kind.file_name(), fd.meta.kind)),
            ));
        }
        let head = self.read_file_range(&fd, 0, RES_FILE_META_SIZE as u64, 0)?;
        let meta = ResFileMeta::parse(&head).map_err(|k| Error::corrupt_in_file(ResFileMeta::NAME, addr, 0, k))?;
        if self.geo.v6 && meta.signature != RFMD_SIGNATURE {
            return Err(Error::corrupt_in_file(
                ResFileMeta::NAME,
                addr,
                0x20,
                CorruptKind::BadMagic { found: meta.signature },
            ));
        }
        Ok(ResFile { name: kind.file_name(), meta, fd, cluster_header_size: self.geo.cluster_header_size })
    }

    /// VMFS6: SFBs per cluster, from the SFB child header of .fbb.sf; the LFB/SFB ratio if unreadable.
    fn read_sfb_per_cluster(&mut self) -> u64 {
        let fallback = self.geo.lfb / self.geo.fbs;
        let found = (|| -> Result<u64> {
            let fd = self.read_system_fd(FBB_FD)?;
            let head = self.read_file_range(&fd, 0, RES_FILE_META_SIZE as u64, 0)?;
            let parent =
                ResFileMeta::parse(&head).map_err(|k| Error::corrupt_in_file(ResFileMeta::NAME, FBB_FD, 0, k))?;
            let off = u64::from(parent.child_meta_offset);
            let child = self.read_file_range(&fd, off, RES_FILE_META_SIZE as u64, 0)?;
            let child =
                ResFileMeta::parse(&child).map_err(|k| Error::corrupt_in_file(ResFileMeta::NAME, FBB_FD, off, k))?;
            Ok(child.resources_per_cluster.into())
        })();
        match found {
            Ok(r) if r.is_power_of_two() => {
                if r != fallback {
                    self.warnings.push(format!(".fbb.sf: {r} SFBs per cluster, LFB/SFB ratio is {fallback}"));
                }
                r
            }
            Ok(r) => {
                self.warnings.push(format!(".fbb.sf: SFBs per cluster {r} is not a power of two; using {fallback}"));
                fallback
            }
            Err(e) => {
                self.warnings.push(format!(".fbb.sf: {e}; using {fallback} SFBs per cluster"));
                fallback
            }
        }
    }

    /// A system FD read from its fixed volume offset, without .fdc.sf.
    fn read_system_fd(&self, addr: u32) -> Result<Fd> {
        let off = self.geo.system_fd_offset(&self.desc, addr).ok_or_else(|| {
            Error::corrupt(
                FsDescriptor::NAME,
                FS_DESCRIPTOR_OFFSET,
                CorruptKind::BadSize { field: "fileBlockSize", value: self.geo.fbs },
            )
        })?;
        let raw = read_vec(self.vol.as_ref(), off, self.geo.fd_size)?;
        Fd::parse(raw, addr, off, &self.geo)
    }

    /// An opened resource file, or why it is not there.
    pub fn resource_file(&self, kind: ResKind) -> Result<&ResFile> {
        self.slot(kind).get().ok_or_else(|| {
            Error::corrupt(
                "system file",
                FS_DESCRIPTOR_OFFSET,
                CorruptKind::Inconsistent(format!("{} is needed but could not be opened", kind.file_name())),
            )
        })
    }

    /// Read the FD with address `addr` through .fdc.sf.
    pub fn read_fd(&self, addr: u32) -> Result<Fd> {
        let Addr::Fd { cluster, resource } = fd_addr(addr) else { unreachable!("fd() always yields Fd") };
        if addr & 7 != 4 {
            return Err(Error::corrupt(
                "FD address",
                0,
                CorruptKind::BadAddress { addr: addr.into(), kind: (addr & 7) as u8 },
            ));
        }
        let fdc = self.resource_file(ResKind::Fd)?;
        let off = fdc.resource_offset(cluster, resource)?;
        let (raw, vol_off) = self.read_file_range_at(&fdc.fd, off, self.geo.fd_size as u64, 1)?;
        Fd::parse(raw, addr, vol_off.unwrap_or(0), &self.geo)
    }

    /// The root directory's FD.
    pub fn root(&self) -> Result<Fd> {
        self.read_fd(ROOT_FD)
    }

    /// The resource file, cluster and resource that packed address `raw` names: a PB, PB2 or SB
    /// (pointer blocks; on VMFS6 they are sub-blocks), or an FD when `fd_ok`.
    fn resource_address(&self, raw: u64, fd_ok: bool) -> Result<(ResKind, u64, u64)> {
        match decode(raw, self.geo.v6, self.geo.dense_sbpc) {
            Addr::PtrBlock { cluster, resource } => Ok((ResKind::Pb, cluster, resource)),
            Addr::PtrBlock2 { cluster, resource } => Ok((ResKind::Pb2, cluster, resource)),
            Addr::SubBlock { cluster, resource } => Ok((ResKind::Sb, cluster, resource)),
            Addr::Fd { cluster, resource } if fd_ok => Ok((ResKind::Fd, cluster, resource)),
            _ => {
                Err(Error::corrupt("resource address", 0, CorruptKind::BadAddress { addr: raw, kind: (raw & 7) as u8 }))
            }
        }
    }

    /// Resource file, cluster and resource a pointer-block address (PB, PB2, or SB, which
    /// VMFS6 keeps pointer blocks in) names; `None` for any other address.
    pub fn pointer_block_location(&self, raw: u64) -> Option<(ResKind, u64, u64)> {
        self.resource_address(raw, false).ok()
    }

    /// Volume offset of the resource (PB, PB2, SB or FD) at packed address `raw`.
    pub fn resource_volume_offset(&self, raw: u64) -> Result<u64> {
        let (kind, cluster, resource) = self.resource_address(raw, true)?;
        let res = self.resource_file(kind)?;
        let off = res.resource_offset(cluster, resource)?;
        match self.extents(&res.fd, off..off + 1)?.first().map(|e| e.kind) {
            Some(ExtentKind::Data { vol_off }) => Ok(vol_off),
            _ => Err(Error::corrupt_in_file(
                "resource",
                res.fd.addr,
                off,
                CorruptKind::Inconsistent("resource is not backed by a block".into()),
            )),
        }
    }

    /// The entries of the pointer block at `raw` (a PB, PB2 or — on VMFS6 — SB address).
    pub fn pointer_block(&self, raw: u64, depth: u32) -> Result<Arc<Vec<u64>>> {
        if let Some(hit) = self.pb_cache.lock().unwrap_or_else(|e| e.into_inner()).get(&raw) {
            return Ok(Arc::clone(hit));
        }
        let (kind, cluster, resource) = self.resource_address(raw, false)?;
        let res = self.resource_file(kind)?;
        let off = res.resource_offset(cluster, resource)?;
        let len = self.geo.pb_entries * self.geo.ptr_width as u64;
        let bytes = self.read_file_range(&res.fd, off, len, depth + 1)?;
        let w = self.geo.ptr_width;
        let entries: Vec<u64> = (0..self.geo.pb_entries as usize)
            .map(|i| {
                if w == 8 {
                    u64_at(&bytes, i * 8).unwrap_or(0)
                } else {
                    u32_at(&bytes, i * 4).map(u64::from).unwrap_or(0)
                }
            })
            .collect();
        let entries = Arc::new(entries);
        let mut cache = self.pb_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= PB_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(raw, Arc::clone(&entries));
        Ok(entries)
    }

    /// How many clusters resource file `kind` holds (bounded by its header and its length).
    pub fn resource_clusters(&self, kind: ResKind) -> Result<u64> {
        let res = self.resource_file(kind)?;
        let m = &res.meta;
        let r = u64::from(m.resources_per_cluster);
        let per_cluster = r.saturating_mul(u64::from(m.resource_size));
        if r == 0 || per_cluster == 0 {
            return Ok(0);
        }
        let by_count = m.num_resources.div_ceil(r);
        let by_groups = u64::from(m.num_cluster_groups).saturating_mul(u64::from(m.clusters_per_group));
        let by_len = res.fd.meta.size / per_cluster;
        Ok(by_count.min(by_groups).min(by_len))
    }

    /// The bytes of every resource of `cluster` in resource file `kind`, in resource order
    /// (resourcesPerCluster × resourceSize): for passes over all records, used or free.
    pub fn cluster_resources(&self, kind: ResKind, cluster: u64) -> Result<Vec<u8>> {
        let res = self.resource_file(kind)?;
        let off = res.resource_offset(cluster, 0)?;
        let len = u64::from(res.meta.resources_per_cluster) * u64::from(res.meta.resource_size);
        self.read_file_range(&res.fd, off, len.min(res.fd.meta.size - off), 0)
    }

    /// Read `len` bytes at `off` of a file into memory (metadata-sized reads only).
    pub(super) fn read_file_range(&self, fd: &Fd, off: u64, len: u64, depth: u32) -> Result<Vec<u8>> {
        self.read_file_range_at(fd, off, len, depth).map(|(bytes, _)| bytes)
    }

    /// [`Vmfs::read_file_range`], also giving the volume offset of the first byte when a block
    /// backs it (one walk of the block map for both).
    fn read_file_range_at(&self, fd: &Fd, off: u64, len: u64, depth: u32) -> Result<(Vec<u8>, Option<u64>)> {
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                "system file",
                fd.vol_offset(),
                CorruptKind::Inconsistent(format!(
                    "system files resolve through each other deeper than {MAX_DEPTH} levels"
                )),
            ));
        }
        if len > MAX_METADATA_FILE {
            return Err(Error::corrupt(
                "FS3_FileMetadata",
                fd.vol_offset(),
                CorruptKind::OutOfRange { field: "metadata read", value: len, limit: MAX_METADATA_FILE },
            ));
        }
        let end = off.checked_add(len).filter(|&e| e <= fd.meta.size).ok_or_else(|| {
            Error::corrupt_in_file(
                "file data",
                fd.addr,
                off,
                CorruptKind::OutOfRange { field: "offset", value: off, limit: fd.meta.size },
            )
        })?;
        let mut out = vec![0u8; len as usize];
        let extents = self.extents_depth(fd, off..end, depth)?;
        let first = match extents.first().map(|e| (e.file_off, e.kind)) {
            Some((at, ExtentKind::Data { vol_off })) if at == off => Some(vol_off),
            _ => None,
        };
        for e in extents {
            let dst = &mut out[(e.file_off - off) as usize..(e.file_off - off + e.len) as usize];
            self.fill(fd, e, dst)?;
        }
        Ok((out, first))
    }

    /// Fill `dst` with the bytes of extent `e` of `fd`.
    pub(super) fn fill(&self, fd: &Fd, e: super::blockmap::Extent, dst: &mut [u8]) -> Result<()> {
        match e.kind {
            ExtentKind::Data { vol_off } => self.vol.read_at(vol_off, dst)?,
            ExtentKind::Resident { data_off } => {
                let area = fd.data_area(&self.geo);
                let s = data_off as usize;
                let src = area.get(s..s + dst.len()).ok_or_else(|| {
                    Error::corrupt(
                        "FS3_FileMetadata",
                        fd.vol_offset(),
                        CorruptKind::Truncated { have: area.len(), need: s + dst.len() },
                    )
                })?;
                dst.copy_from_slice(src);
            }
            ExtentKind::Hole | ExtentKind::ToBeZeroed | ExtentKind::Damaged => dst.fill(0),
        }
        Ok(())
    }
}
