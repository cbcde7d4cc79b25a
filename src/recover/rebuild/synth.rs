//! A lost FS3 descriptor rebuilt from what survives: the system files' FDs (found by the scan
//! with their own volume offsets) and their resource-file headers. The result is put in front
//! of the volume with a [`crate::block::Overlay`]; the source is never written.

use crate::block::{Overlay, Source, read_vec};
use crate::le::{VmwareUuid, u32_at};
use crate::vmfs::Vmfs;
use crate::vmfs::address::make_fd;
use crate::vmfs::geometry::Geometry;
use crate::vmfs::ondisk::{FS_DESCRIPTOR_OFFSET, FsDescriptor, VMFS_MAGIC};
use crate::vmfs::volume::{FDC_FD, PB2_FD, ResKind};
use std::sync::Arc;

/// What the scan saw of one system FD: its address, volume offset and block size.
#[derive(Clone, Copy, Debug)]
pub struct SystemFd {
    pub addr: u32,
    pub self_offset: u64,
    pub block_size: u64,
}

/// A rebuilt descriptor and the volume opened through it.
pub struct Synthesized {
    pub fs: Arc<Vmfs>,
    /// How each field was decided, for the report.
    pub how: String,
}

/// Rebuild the descriptor of the VMFS`version` volume `vol` from its system FDs, open it, and
/// correct the guessed fields from the resource files it can then read.
pub fn open(vol: &Source, v6: bool, fds: &[SystemFd]) -> Result<Synthesized, String> {
    let fdc = fds.iter().find(|f| f.addr == FDC_FD).ok_or("the .fdc.sf FD was not found")?;
    let fbs = fdc.block_size;
    if !fbs.is_power_of_two() || !(0x2000..=1 << 30).contains(&fbs) {
        return Err(format!(".fdc.sf FD block size {fbs:#x} is not a file block size"));
    }
    let md = if v6 { metadata_alignment(vol, fdc.self_offset)? } else { 512 };
    let pb2 = if v6 { PB2_FD } else { make_fd(0, 6) };
    let mut d = FsDescriptor {
        magic: VMFS_MAGIC,
        major: if v6 { 24 } else { 14 },
        minor: if v6 { 82 } else { 81 },
        uuid: VmwareUuid::default(),
        config: if v6 { 0x4006 } else { 0x6 },
        label: String::new(),
        disk_block_size: 512,
        file_block_size: fbs,
        creation_time: 0,
        lv_uuid: VmwareUuid::default(),
        fdc_cluster_group_offset: 0,
        fdc_clusters_per_group: 0,
        // Corrected below from .sbc.sf.
        sub_block_size: if v6 { 0x1_0000 } else { 0x2000 },
        pb2_vol_addr: fds.iter().find(|f| f.addr == pb2).map_or(0, |f| f.self_offset),
        pb2_fd_addr: if v6 { 0 } else { pb2 },
        sdd_vol_addr: 0,
        sdd_fd_addr: if v6 { 0 } else { make_fd(0, 7) },
        phys_disk_block_size: if v6 { 512 } else { 0 },
        md_alignment: if v6 { md as u32 } else { 0 },
        // ESXi formats every VMFS6 volume with 512 MiB LFBs over 1 MiB SFBs.
        sfb_to_lfb_shift: if v6 { 9 } else { 0 },
    };
    // The .fdc.sf FD sits at base + cgo + cpg * resource size + its resource number: only the
    // sum is known until .fdc.sf's own header can be read.
    let geo = Geometry::from_descriptor(&d).map_err(|e| e.to_string())?;
    let probe = geo.system_fd_offset(&d, FDC_FD).ok_or("no FD offset for this block size")?;
    let sum = fdc.self_offset.checked_sub(probe).ok_or_else(|| {
        format!(".fdc.sf FD at {:#x} lies before where cluster group 0 can start ({probe:#x})", fdc.self_offset)
    })?;
    let unit = if v6 { 2 * md } else { 1024 };
    // ESXi puts cluster group 0 at 0x10000 (every sample); read back and checked below.
    let (cgo, cpg) = match sum.checked_sub(0x1_0000) {
        Some(rest) if rest % unit == 0 && rest > 0 => (0x1_0000, rest / unit),
        _ => (sum % unit, sum / unit),
    };
    d.fdc_cluster_group_offset = u32::try_from(cgo).map_err(|_| format!("cluster group offset {cgo:#x}"))?;
    d.fdc_clusters_per_group = u32::try_from(cpg).map_err(|_| format!("clusters per group {cpg}"))?;
    let first = open_with(vol, &d)?;
    let mut how = vec![format!(
        "VMFS{} descriptor rebuilt: block size {fbs} from the .fdc.sf FD at volume offset {:#x}",
        if v6 { 6 } else { 5 },
        fdc.self_offset
    )];
    // Now the resource files say what the descriptor said.
    if let Ok(r) = first.resource_file(ResKind::Fd) {
        let (cgo, cpg) = (r.meta.cluster_group_offset, r.meta.clusters_per_group);
        if u64::from(cgo) + u64::from(cpg) * unit == sum {
            d.fdc_cluster_group_offset = cgo;
            d.fdc_clusters_per_group = cpg;
            how.push(format!("cluster groups from .fdc.sf (offset {cgo:#x}, {cpg} clusters per group)"));
        }
    }
    match first.resource_file(ResKind::Sb) {
        Ok(r) if r.meta.resource_size.is_power_of_two() => {
            d.sub_block_size = r.meta.resource_size;
            how.push(format!("sub-block size {} from .sbc.sf", r.meta.resource_size));
        }
        _ => how.push(format!("sub-block size {} assumed (.sbc.sf unreadable)", d.sub_block_size)),
    }
    if v6 {
        how.push(format!("metadata alignment {md} from the FD layout; LFB = 512 x SFB assumed"));
    }
    how.push("label and UUID lost".into());
    Ok(Synthesized { fs: Arc::new(open_with(vol, &d)?), how: how.join("; ") })
}

fn open_with(vol: &Source, d: &FsDescriptor) -> Result<Vmfs, String> {
    let o: Source = Arc::new(Overlay::new(Arc::clone(vol), vec![(FS_DESCRIPTOR_OFFSET, d.encode())]));
    Vmfs::open(o).map_err(|e| format!("rebuilt descriptor does not open: {e}"))
}

/// VMFS6 keeps an FD's metadata one metadata block in and marks it "fdmd": the block size is
/// where the mark is.
fn metadata_alignment(vol: &Source, fd_offset: u64) -> Result<u64, String> {
    for md in [0x1000u64, 0x2000, 0x4000, 0x8000, 0x1_0000] {
        let Ok(b) = read_vec(vol.as_ref(), fd_offset + md, 0x68) else { continue };
        if u32_at(&b, 0x64) == Some(0x6664_6D64) {
            return Ok(md);
        }
    }
    Err(format!("FD at {fd_offset:#x}: no VMFS6 metadata mark found"))
}
