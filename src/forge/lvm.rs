//! The VMware LVM on each forged device: device header, volume descriptor, device-name table
//! and the PE map, with the values ESXi writes (checked against the LVM5/LVM6 samples).

use super::ForgeError;
use super::disk::Disk;
use crate::container::lvm::ondisk::{
    LVM_DEV_HEADER_OFFSET, LvmDeviceHeader, PE_ENTRY_SIZE, PE_UNIT, PeEntry, SD_ENTRY_SIZE, VolDescriptor, VolState,
    disk_id_with,
};
use crate::le::VmwareUuid;

/// Device offset of the first PE: 17 MiB, in every ESXi sample.
pub const DATA_OFFSET: u64 = 0x110_0000;

/// What one device of the volume holds.
pub struct DevicePlan {
    /// LVM major: 3 for VMFS3, 5 for VMFS5, 6 for VMFS6.
    pub major: u32,
    pub dev_uuid: VmwareUuid,
    pub lv_uuid: VmwareUuid,
    /// Whole volume size (all devices).
    pub vol_size: u64,
    /// This device's part of the volume: start and length, multiples of 256 MiB.
    pub piece: (u64, u64),
    pub num_devs: u32,
    /// The short device id written into `SCSI_DiskId` (e.g. "FRG00001").
    pub serial: String,
    /// NAA/t10 names of all devices: written to the first device's table only.
    pub sd_names: Vec<String>,
    pub time_us: u64,
}

impl DevicePlan {
    /// The t10 name ESXi would give a forged disk with `serial`.
    pub fn t10_name(serial: &str) -> String {
        format!("t10.ATA_____VMFS_RESCUE_FORGE_______________________{serial:_<20}:1")
    }
}

/// Usable volume bytes on a partition of `part_len` bytes: whole 256 MiB PEs after 17 MiB.
pub fn usable(part_len: u64) -> u64 {
    part_len.saturating_sub(DATA_OFFSET) / PE_UNIT * PE_UNIT
}

/// Write the LVM metadata of `plan` onto `disk`'s partition.
pub fn write_device(disk: &Disk, plan: &DevicePlan) -> Result<(), ForgeError> {
    let v6 = plan.major >= 6;
    let (start, len) = plan.piece;
    let units = len / PE_UNIT;
    let pes: Vec<PeEntry> = if v6 {
        // LVM6 maps a device's whole part with one PE.
        vec![PeEntry {
            used: 1,
            pe_id: 0,
            volume_id: 0,
            p_offset: DATA_OFFSET,
            l_offset: start,
            length: len,
            version: 1,
        }]
    } else {
        (0..units)
            .map(|i| PeEntry {
                used: 1,
                pe_id: u32::try_from(i).unwrap_or(u32::MAX),
                volume_id: 0,
                p_offset: DATA_OFFSET + i * PE_UNIT,
                l_offset: start + i * PE_UNIT,
                length: PE_UNIT,
                version: 1,
            })
            .collect()
    };
    if pes.len() > 8192 {
        return Err(ForgeError::Layout(format!("{} PEs on one device: more than one PE map is not forged", pes.len())));
    }
    let n_pes = u32::try_from(pes.len()).unwrap_or(u32::MAX);
    let h = LvmDeviceHeader {
        major: plan.major,
        minor: 21,
        disk_id: disk_id_with(&format!("{:<20}VMFS R", plan.serial)),
        disk_block_size: 512,
        total_bytes: disk.part_len,
        num_volumes: 1,
        num_pes: n_pes,
        last_pe_index: n_pes.saturating_sub(1),
        generation: 3,
        data_offset: DATA_OFFSET,
        dev_id: plan.dev_uuid,
        init_time_us: plan.time_us,
        mod_time_us: plan.time_us,
        locked_by: VmwareUuid::default(),
        locked_when_us: 0,
        unknown_0xba: 0,
        num_pe_maps: if v6 || plan.major == 3 { 0 } else { 1 },
        ext_dev_metadata_offset: 0,
        md_alignment: if v6 { 0x1000 } else { 0 },
        num_pes6: if v6 { u32::try_from(units).unwrap_or(u32::MAX) } else { 0 },
        flags: 0,
    };
    let l = h.layout();
    let base = disk.part_off + LVM_DEV_HEADER_OFFSET;
    disk.write(base, &h.encode())?;
    let vd = VolDescriptor {
        logical_size: plan.vol_size,
        // [VT]'s reading: PEs of the volume plus devices. Fits every sample.
        generation: if v6 { u64::from(plan.num_devs) * 2 } else { plan.vol_size / PE_UNIT + u64::from(plan.num_devs) },
        state: VolState::Normal,
        name_raw: VolDescriptor::name_field(&plan.lv_uuid.to_string()),
        lv_uuid: plan.lv_uuid,
        snap_id: 1,
        creation_time_us: plan.time_us,
        volume_id: 0,
        num_pes: u32::try_from(units).unwrap_or(u32::MAX),
        first_pe: start / PE_UNIT,
        last_pe: (start + len) / PE_UNIT - 1,
        mod_time_us: plan.time_us,
        num_devs: plan.num_devs,
        consumed_pes: if v6 { 1 } else { 0 },
    };
    disk.write(base + l.vol_table, &vd.encode())?;
    if let Some(sd) = l.sd_table {
        for (i, n) in plan.sd_names.iter().enumerate().take(32) {
            let mut e = vec![0u8; SD_ENTRY_SIZE];
            let b = n.as_bytes();
            let k = b.len().min(SD_ENTRY_SIZE - 1);
            e[..k].copy_from_slice(&b[..k]);
            disk.write(base + sd + (i * SD_ENTRY_SIZE) as u64, &e)?;
        }
    }
    let mut bitmap = vec![0u8; pes.len().div_ceil(8)];
    let mut table = vec![0u8; pes.len() * PE_ENTRY_SIZE];
    for (i, pe) in pes.iter().enumerate() {
        bitmap[i / 8] |= 1 << (i % 8);
        table[i * PE_ENTRY_SIZE..(i + 1) * PE_ENTRY_SIZE].copy_from_slice(&pe.encode());
    }
    disk.write(base + l.pe_bitmap(0), &bitmap)?;
    disk.write(base + l.pe_table(0), &table)?;
    Ok(())
}
