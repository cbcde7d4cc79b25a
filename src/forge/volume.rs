//! A new datastore on one or more disk images: partition table, LVM on every device, and a
//! VMFS writer over the assembled volume.

use super::ForgeError;
use super::disk::{Disk, Run, Table, Target};
use super::lvm::{self, DATA_OFFSET, DevicePlan};
use super::vmfs::{Identity, Params, Writer};
use crate::le::VmwareUuid;
use std::path::PathBuf;

/// What to create.
#[derive(Clone, Debug)]
pub struct VolumeSpec {
    /// 5 or 6.
    pub version: u32,
    /// Image files and their sizes; more than one spans the volume over them.
    pub disks: Vec<(PathBuf, u64)>,
    pub table: Table,
    pub label: String,
    /// Makes UUIDs and serials; the same seed gives the same bytes.
    pub seed: u64,
    /// Unix seconds of the format.
    pub time: u32,
}

/// A VMware-style UUID: creation time, a counter-like half, and a MAC from the seed.
pub fn uuid(time: u32, seed: u64, k: u32) -> VmwareUuid {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&time.to_le_bytes());
    let mix = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(u64::from(k).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    b[4..8].copy_from_slice(&((mix >> 32) as u32).to_le_bytes());
    b[8..10].copy_from_slice(&(mix as u16).to_le_bytes());
    // A VMware OUI MAC (00:0c:29) for the "host".
    b[10..13].copy_from_slice(&[0x00, 0x0c, 0x29]);
    b[13..16].copy_from_slice(&seed.to_le_bytes()[..3]);
    VmwareUuid(b)
}

/// The new file system's names, from the spec's seed and time.
fn identity(spec: &VolumeSpec) -> Identity {
    Identity {
        label: spec.label.clone(),
        fs_uuid: uuid(spec.time, spec.seed, 1),
        lv_uuid: uuid(spec.time, spec.seed, 2),
        host_uuid: uuid(spec.time, spec.seed, 3),
        time: spec.time,
    }
}

/// Create the disks, their partition tables and LVM headers, and a writer for the volume.
pub fn create(spec: &VolumeSpec) -> Result<Writer, ForgeError> {
    let id = identity(spec);
    let mut disks = Vec::new();
    for (i, (path, len)) in spec.disks.iter().enumerate() {
        disks.push(Disk::create(path, *len, spec.table, spec.seed.wrapping_add(i as u64))?);
    }
    let target = plan_lvm(spec.version, &disks, &id, spec.seed, spec.time)?;
    let vol_size = target.iter().map(|r| r.len).sum();
    let p = Params::new(spec.version, vol_size, &id).map_err(ForgeError::Layout)?;
    Writer::format(p, Target::new(disks, target), spec.time)
}

/// Write the LVM metadata on every disk; returns the volume's runs.
pub fn plan_lvm(version: u32, disks: &[Disk], id: &Identity, seed: u64, time: u32) -> Result<Vec<Run>, ForgeError> {
    let vol_size: u64 = disks.iter().map(|d| lvm::usable(d.part_len)).sum();
    let serials: Vec<String> = (0..disks.len()).map(|i| format!("FRG{:05}", (seed as usize + i) % 100_000)).collect();
    let mut runs = Vec::new();
    let mut start = 0;
    for (i, d) in disks.iter().enumerate() {
        let len = lvm::usable(d.part_len);
        let plan = DevicePlan {
            major: match version {
                3 => 3,
                5 => 5,
                _ => 6,
            },
            dev_uuid: uuid(time, seed, 10 + i as u32),
            lv_uuid: id.lv_uuid,
            vol_size,
            piece: (start, len),
            num_devs: disks.len() as u32,
            serial: serials[i].clone(),
            sd_names: if i == 0 && version >= 5 {
                serials.iter().map(|s| DevicePlan::t10_name(s)).collect()
            } else {
                Vec::new()
            },
            time_us: u64::from(time) * 1_000_000,
        };
        lvm::write_device(d, &plan)?;
        runs.push(Run { vol_off: start, disk: i, disk_off: d.part_off + DATA_OFFSET, len });
        start += len;
    }
    Ok(runs)
}

/// Format a new VMFS over the disks of an earlier one, as "Create datastore" does on ESXi:
/// the partition table and LVM are written again, the new file system's metadata goes over
/// whatever was there, and nothing else is erased.
pub fn reformat(spec: &VolumeSpec, part_offsets: &[u64]) -> Result<Writer, ForgeError> {
    let id = identity(spec);
    let mut disks = Vec::new();
    for ((path, _), &off) in spec.disks.iter().zip(part_offsets) {
        let d = Disk::open(path, off)?;
        disks.push(d);
    }
    let runs = plan_lvm(spec.version, &disks, &id, spec.seed, spec.time)?;
    let vol_size = runs.iter().map(|r| r.len).sum();
    let p = Params::new(spec.version, vol_size, &id).map_err(ForgeError::Layout)?;
    Writer::format(p, Target::new(disks, runs), spec.time)
}
