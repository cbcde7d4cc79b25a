//! Partition tables for guest disks: an MBR with one primary partition, or a GPT (protective
//! MBR, primary and backup headers with their CRCs, both 128-entry arrays) with one partition.
//! Written here rather than by a tool (sfdisk, sgdisk) so the forge needs no extra package and
//! the bytes are a pure function of the seed.

use crate::container::partition::{GptHeader, Guid, MBR_TYPE_GPT_PROTECTIVE};
use crate::forge::ForgeError;
use crate::le::{put_u32, put_u64};

/// GPT type "Linux filesystem data": 0FC63DAF-8483-4772-8E79-3D69D8477DE4.
pub const GPT_TYPE_LINUX_DATA: Guid =
    Guid::from_fields(0x0FC6_3DAF, 0x8483, 0x4772, [0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4]);
/// GPT type "Microsoft basic data": EBD0A0A2-B9E5-4433-87C0-68B6B72699C7.
pub const GPT_TYPE_MS_BASIC_DATA: Guid =
    Guid::from_fields(0xEBD0_A0A2, 0xB9E5, 0x4433, [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7]);

const SECTOR: u64 = 512;
const GPT_ENTRIES: usize = 128;
const GPT_ENTRY_SIZE: usize = 128;

/// One partition to describe, in 512-byte sectors.
#[derive(Clone, Debug)]
pub struct TablePartition {
    /// First sector.
    pub first: u64,
    /// Number of sectors.
    pub sectors: u64,
    /// MBR type byte (0x83, 0x0c, 0x07).
    pub mbr_type: u8,
    /// GPT type GUID.
    pub gpt_type: Guid,
    /// GPT partition name.
    pub name: String,
}

/// The sectors of an MBR disk of `disk_sectors` as `(byte offset, bytes)`.
pub fn mbr_table(
    disk_sectors: u64,
    p: &TablePartition,
    disk_signature: u32,
) -> Result<Vec<(u64, Vec<u8>)>, ForgeError> {
    check(disk_sectors, p, 1)?;
    let first = u32::try_from(p.first).map_err(|_| too_big("MBR partition start"))?;
    let count = u32::try_from(p.sectors).map_err(|_| too_big("MBR partition length"))?;
    let mut mbr = vec![0u8; 512];
    put_u32(&mut mbr, 0x1B8, disk_signature);
    mbr_entry(&mut mbr[0x1BE..0x1CE], 0x00, p.mbr_type, first, count);
    mbr[0x1FE] = 0x55;
    mbr[0x1FF] = 0xAA;
    Ok(vec![(0, mbr)])
}

/// The sectors of a GPT disk of `disk_sectors` as `(byte offset, bytes)`.
pub fn gpt_table(
    disk_sectors: u64,
    p: &TablePartition,
    disk_guid: Guid,
    part_guid: Guid,
) -> Result<Vec<(u64, Vec<u8>)>, ForgeError> {
    let array_sectors = (GPT_ENTRIES * GPT_ENTRY_SIZE) as u64 / SECTOR;
    check(disk_sectors, p, 2 + array_sectors)?;
    let last_usable = disk_sectors - 2 - array_sectors;
    if p.first + p.sectors - 1 > last_usable {
        return Err(ForgeError::Layout(format!("GPT partition ends past the last usable LBA {last_usable}")));
    }
    let mut arr = vec![0u8; GPT_ENTRIES * GPT_ENTRY_SIZE];
    arr[..16].copy_from_slice(&p.gpt_type.0);
    arr[16..32].copy_from_slice(&part_guid.0);
    put_u64(&mut arr, 0x20, p.first);
    put_u64(&mut arr, 0x28, p.first + p.sectors - 1);
    for (k, c) in p.name.encode_utf16().take(36).enumerate() {
        arr[0x38 + 2 * k..0x3A + 2 * k].copy_from_slice(&c.to_le_bytes());
    }
    let mut h = GptHeader {
        revision: 0x0001_0000,
        header_size: 92,
        header_crc32: 0,
        my_lba: 1,
        alternate_lba: disk_sectors - 1,
        first_usable_lba: 2 + array_sectors,
        last_usable_lba: last_usable,
        disk_guid,
        entries_lba: 2,
        num_entries: GPT_ENTRIES as u32,
        entry_size: GPT_ENTRY_SIZE as u32,
        entries_crc32: crc32fast::hash(&arr),
    };
    let mut mbr = vec![0u8; 512];
    let prot_len = u32::try_from(disk_sectors - 1).unwrap_or(u32::MAX);
    mbr_entry(&mut mbr[0x1BE..0x1CE], 0x00, MBR_TYPE_GPT_PROTECTIVE, 1, prot_len);
    mbr[0x1FE] = 0x55;
    mbr[0x1FF] = 0xAA;
    let mut out = vec![(0, mbr), (SECTOR, pad(h.encode().to_vec())), (2 * SECTOR, arr.clone())];
    h.my_lba = disk_sectors - 1;
    h.alternate_lba = 1;
    h.entries_lba = disk_sectors - 1 - array_sectors;
    out.push((h.entries_lba * SECTOR, arr));
    out.push((h.my_lba * SECTOR, pad(h.encode().to_vec())));
    Ok(out)
}

fn pad(mut v: Vec<u8>) -> Vec<u8> {
    v.resize(SECTOR as usize, 0);
    v
}

/// An MBR partition entry; CHS fields hold the "beyond 1024 cylinders" marker (fe ff ff) as
/// modern partitioners write for LBA-addressed disks.
fn mbr_entry(e: &mut [u8], status: u8, kind: u8, first: u32, count: u32) {
    e[0] = status;
    e[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    e[4] = kind;
    e[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    put_u32(e, 8, first);
    put_u32(e, 12, count);
}

fn check(disk_sectors: u64, p: &TablePartition, reserved_tail: u64) -> Result<(), ForgeError> {
    let end = p.first.checked_add(p.sectors).filter(|_| p.sectors > 0 && p.first >= 34);
    match end {
        Some(e) if e + reserved_tail <= disk_sectors => Ok(()),
        _ => Err(ForgeError::Layout(format!(
            "partition at sector {} of {} sectors does not fit a {disk_sectors}-sector disk",
            p.first, p.sectors
        ))),
    }
}

fn too_big(what: &str) -> ForgeError {
    ForgeError::Layout(format!("{what} does not fit in 32 bits (use GPT)"))
}
