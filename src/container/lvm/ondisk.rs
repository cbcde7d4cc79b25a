//! VMware LVM on-disk layouts: `LVM_DevMetadata`, `LVM_VolDescriptor`, `LVM_PETableEntry`,
//! `LVM_SDTableEntry`, `LVM_ExtDevMetadata`, and where their tables sit.
//!
//! Pure parsers and their encoders only: no I/O, no allocation sized by a disk field. Names are
//! ESXi's `lvmdriver` symbols as dissect.vmfs spells them; every offset was checked on the LVM3,
//! LVM4, LVM5 and LVM6 samples of the corpus (format reference §2).
//!
//! A device looks like this (offsets from the device start; "region" offsets from the header):
//!
//! ```text
//! 0x100000  LVM_DevMetadata (region +0)            512 B (LVM3-5) | mdAlignment (LVM6)
//!           volume table (region +devMetaSize)      maxVolumes × 512 B (512 | 1 on LVM6)
//!           reserved
//!           SD table (region +pe_maps - 0x2000)     32 × 256 B device names (LVM5+, devZero)
//!           PE map 0: bitmap (1 KiB | max(mdAlignment, 1 KiB)) + 8192 × 128 B PE entries
//!           PE map 1 ... (numPEMaps maps, at least one)
//! dataOffset  first PE (0x1100000 in every sample)
//! extDevMetadataOffset  LVM_ExtDevMetadata, then its PE maps at the same region offsets
//! ```
#![deny(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]

use super::super::error::CorruptKind;
use crate::le::{VmwareUuid, bytes, cstr_at, put_u16, put_u32, put_u64, u8_at, u16_at, u32_at, u64_at};
use std::fmt;

/// `LVM_MAGIC_NUMBER`, at offset 0 of `LVM_DevMetadata` and `LVM_ExtDevMetadata`.
pub const LVM_MAGIC: u32 = 0xC001_D00D;
/// `LVM_DEV_HEADER_OFFSET`: device offset of `LVM_DevMetadata`.
pub const LVM_DEV_HEADER_OFFSET: u64 = 0x10_0000;
/// `LVM_INITIAL_MAJOR_VERSION`: the oldest LVM (ESX 3).
pub const LVM_MAJOR_MIN: u32 = 3;
/// `LVM_MAJOR_VERSION_ESX50`.
pub const LVM_MAJOR_ESX50: u32 = 5;
/// `LVM_MAJOR_VERSION_ESX60`: LVM6, the mdAlignment-based layout.
pub const LVM_MAJOR_ESX60: u32 = 6;
/// `DISK_BLOCK_SIZE_512B`.
pub const DISK_BLOCK_SIZE: u64 = 512;
/// `LVM_MD_ALIGNMENT_DEFAULT`: LVM6 metadata alignment when the field is 0.
pub const LVM_MD_ALIGNMENT_DEFAULT: u32 = 1 << 12;
/// Largest LVM6 `mdAlignment` accepted (every sample has 4096).
pub const MAX_MD_ALIGNMENT: u32 = 1 << 20;
/// Bytes of `LVM_DevMetadata` that carry fields (`sizeof(LVM_DevMetadata)`).
pub const DEV_METADATA_SIZE: usize = 0xD6;
/// Size of the header sector read and written (`LVM_SIZEOF_LVM_DEVMETA_LVM5`).
pub const DEV_METADATA_SECTOR: usize = 512;
/// `sizeof(LVM_ExtDevMetadata)`.
pub const EXT_DEV_METADATA_SIZE: usize = 0x18;
/// `LVM_SIZEOF_VTENTRY`: one `LVM_VolDescriptor`.
pub const VOL_DESCRIPTOR_SIZE: usize = 512;
/// `LVM_SIZEOF_PTENTRY`: stride of the PE table (only the first 0x25 bytes are used).
pub const PE_ENTRY_SIZE: usize = 128;
/// `LVM_SIZEOF_SDTENTRY`: one device name.
pub const SD_ENTRY_SIZE: usize = 256;
/// `FS_PLIST_DEF_MAX_PARTITIONS`: entries of the SD table.
pub const SD_ENTRIES: usize = 32;
/// `LVM_MAX_VOLUMES_PER_DEV_LVM5` (also LVM3 and LVM4).
pub const MAX_VOLUMES_LVM5: u32 = 512;
/// `LVM_MAX_VOLUMES_PER_DEV_LVM6`.
pub const MAX_VOLUMES_LVM6: u32 = 1;
/// Sectors of volume table plus reserved area plus SD table (`1024` in ESXi's macros).
pub const VOLUME_AREA_SECTORS: u64 = 1024;
/// `LVM_PES_PER_BITMAP`: PE entries per PE map.
pub const PES_PER_MAP: usize = 8192;
/// `LVM_PE_BITMAP_SIZE_LVM5`: bytes of a PE bitmap before LVM6.
pub const PE_BITMAP_SIZE_LVM5: u32 = 1024;
/// `VMFS_LVM_PE_SIZE`: the unit of `firstPE`/`lastPE` and LVM6 `numPEs6` (256 MiB), whatever
/// the real PE lengths are.
pub const PE_UNIT: u64 = 256 << 20;
/// Cap on PE maps per device, main header and extended regions together. A 64 TiB device
/// (VMFS's maximum) with 256 MiB PEs needs 32.
pub const MAX_PE_MAPS: u32 = 64;
/// Cap on extended-metadata regions per device (the 64 TiB sample has 3).
pub const MAX_EXT_REGIONS: usize = 32;

/// Offsets of an LVM metadata region's tables, relative to its header (`LVM_DevMetadata` at
/// device offset 0x100000, or an `LVM_ExtDevMetadata`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `LVM_SIZEOF_LVM_DEVMETA`: 512, or mdAlignment on LVM6.
    pub dev_meta_size: u64,
    /// Region offset of the volume table (= `dev_meta_size`).
    pub vol_table: u64,
    /// `LVM_MAX_VOLUMES_PER_DEV`: slots in the volume table.
    pub max_volumes: u32,
    /// Region offset of the SD table (device names); `None` before LVM5.
    pub sd_table: Option<u64>,
    /// Region offset of PE map 0 (its bitmap).
    pub pe_maps: u64,
    /// `LVM_PE_BITMAP_SIZE`: bytes of each map's bitmap.
    pub pe_bitmap_size: u64,
    /// Bytes from one PE map to the next: bitmap plus 8192 entries.
    pub pe_map_stride: u64,
}

impl Layout {
    /// The layout of LVM `major` with (effective) metadata alignment `md_alignment`, which
    /// [`LvmDeviceHeader::parse`] has bounded to at most [`MAX_MD_ALIGNMENT`].
    pub fn new(major: u32, md_alignment: u32) -> Self {
        let lvm6 = major >= LVM_MAJOR_ESX60;
        let md = u64::from(md_alignment.min(MAX_MD_ALIGNMENT));
        let dev_meta_size = if lvm6 { md } else { DISK_BLOCK_SIZE };
        let max_volumes = if lvm6 { MAX_VOLUMES_LVM6 } else { MAX_VOLUMES_LVM5 };
        let pe_bitmap_size = if lvm6 { md.max(u64::from(PE_BITMAP_SIZE_LVM5)) } else { u64::from(PE_BITMAP_SIZE_LVM5) };
        // Bounded: dev_meta_size and the bitmap are at most 1 MiB, the rest are constants.
        let pe_maps = dev_meta_size.saturating_add(VOLUME_AREA_SECTORS.saturating_mul(DISK_BLOCK_SIZE));
        let sd_table = (major >= LVM_MAJOR_ESX50).then(|| pe_maps.saturating_sub(sd_table_bytes()));
        let pe_map_stride = pe_bitmap_size.saturating_add(pe_table_bytes());
        Self { dev_meta_size, vol_table: dev_meta_size, max_volumes, sd_table, pe_maps, pe_bitmap_size, pe_map_stride }
    }

    /// Region offset of PE map `map`'s bitmap (`map` is below [`MAX_PE_MAPS`]).
    pub fn pe_bitmap(&self, map: u32) -> u64 {
        self.pe_maps.saturating_add(self.pe_map_stride.saturating_mul(u64::from(map)))
    }

    /// Region offset of PE map `map`'s entry table.
    pub fn pe_table(&self, map: u32) -> u64 {
        self.pe_bitmap(map).saturating_add(self.pe_bitmap_size)
    }

    /// Bytes of the volume table.
    pub fn vol_table_bytes(&self) -> u64 {
        u64::from(self.max_volumes).saturating_mul(DISK_BLOCK_SIZE)
    }
}

/// Bytes of the SD table.
pub const fn sd_table_bytes() -> u64 {
    // 32 × 256 = 0x2000
    0x2000
}

/// Bytes of one PE entry table (8192 × 128 = 1 MiB).
pub const fn pe_table_bytes() -> u64 {
    0x10_0000
}

/// `SCSI_DiskId` (0x4E bytes at `LVM_DevMetadata` 0x0C): the identity of the LUN at format time.
/// Kept raw so it survives a round trip; accessors decode the fields.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DiskId(pub [u8; DiskId::SIZE]);

impl DiskId {
    /// `sizeof(SCSI_DiskId)`.
    pub const SIZE: usize = 0x4E;

    /// 0x00 `type`.
    pub fn id_type(&self) -> u8 {
        u8_at(&self.0, 0x00).unwrap_or(0)
    }
    /// 0x01 `len`: bytes of `id` in use.
    pub fn id_len(&self) -> u8 {
        u8_at(&self.0, 0x01).unwrap_or(0)
    }
    /// 0x02 `lun`.
    pub fn lun(&self) -> u16 {
        u16_at(&self.0, 0x02).unwrap_or(0)
    }
    /// 0x06 `vendor[8]`.
    pub fn vendor(&self) -> String {
        cstr_at(&self.0, 0x06, 8).unwrap_or_default()
    }
    /// 0x0E `model[16]`.
    pub fn model(&self) -> String {
        cstr_at(&self.0, 0x0E, 16).unwrap_or_default()
    }
    /// 0x1E `revision[4]`.
    pub fn revision(&self) -> String {
        cstr_at(&self.0, 0x1E, 4).unwrap_or_default()
    }
    /// 0x22 `id[44]`, cut to `len` bytes: e.g. `QM00013             QEMU H`.
    pub fn id(&self) -> String {
        let len = usize::from(self.id_len()).min(44);
        cstr_at(&self.0, 0x22, len).unwrap_or_default()
    }
}

impl fmt::Debug for DiskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiskId({:?})", self.id())
    }
}

/// `LVM_DevMetadata`: the LVM device header at device offset 0x100000.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvmDeviceHeader {
    /// 0x04 `majorVersion`: 3, 4, 5 or 6 (6 ⇔ VMFS6).
    pub major: u32,
    /// 0x08 `minorVersion`: 21 in the 2021+ samples, 16 in 2009.
    pub minor: u32,
    /// 0x0C `diskID`.
    pub disk_id: DiskId,
    /// 0x5A `diskBlockSize`: 512.
    pub disk_block_size: u32,
    /// 0x5E `totalBytes`: device size at format or grow time.
    pub total_bytes: u64,
    /// 0x66 `numVolumes`.
    pub num_volumes: u32,
    /// 0x6A `numPEs`: PE table entries in use on this device.
    pub num_pes: u32,
    /// 0x6E `lastPEIndex`.
    pub last_pe_index: u32,
    /// 0x72 `generation`.
    pub generation: u64,
    /// 0x7A `dataOffset`: device offset of the first PE (0x1100000 in every sample).
    pub data_offset: u64,
    /// 0x82 `devID`: the device UUID.
    pub dev_id: VmwareUuid,
    /// 0x92 `initTimeUS`.
    pub init_time_us: u64,
    /// 0x9A `modTimeUS`.
    pub mod_time_us: u64,
    /// 0xA2 `lockedBy`.
    pub locked_by: VmwareUuid,
    /// 0xB2 `lockedWhenUS`.
    pub locked_when_us: u64,
    /// 0xBA `_unknown0`: meaning unknown, 0 in every sample; kept for the round trip.
    pub unknown_0xba: u32,
    /// 0xBE `numPEMaps`: PE maps in the main region (0 on LVM3 and LVM6 samples, which still
    /// have one map; see [`LvmDeviceHeader::pe_map_count`]).
    pub num_pe_maps: u32,
    /// 0xC2 `extDevMetadataOffset`: device offset of the first `LVM_ExtDevMetadata`, or 0.
    pub ext_dev_metadata_offset: u64,
    /// 0xCA `mdAlignment`: 0x1000 on LVM6, 0 before.
    pub md_alignment: u32,
    /// 0xCE `numPEs6`: LVM6 volume size in 256 MiB units (its real PEs are larger).
    pub num_pes6: u32,
    /// 0xD2 `flags`: bit 0 = VMFS-L volume.
    pub flags: u32,
}

impl LvmDeviceHeader {
    /// Structure name for errors.
    pub const NAME: &'static str = "LVM_DevMetadata";
    /// `flags` bit of a VMFS-L device.
    pub const FLAG_VMFS_L: u32 = 1;

    /// Parse the header from the first [`DEV_METADATA_SIZE`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        let short = || CorruptKind::TooShort { need: DEV_METADATA_SIZE, have: b.len() };
        if b.len() < DEV_METADATA_SIZE {
            return Err(short());
        }
        let r32 = |off| u32_at(b, off).ok_or_else(short);
        let r64 = |off| u64_at(b, off).ok_or_else(short);
        let uuid = |off| VmwareUuid::at(b, off).ok_or_else(short);
        let magic = r32(0x00)?;
        if magic != LVM_MAGIC {
            return Err(CorruptKind::BadMagic { found: magic });
        }
        let major = r32(0x04)?;
        if !(LVM_MAJOR_MIN..=LVM_MAJOR_ESX60).contains(&major) {
            return Err(CorruptKind::UnknownMajor(major));
        }
        let md_alignment = r32(0xCA)?;
        if major >= LVM_MAJOR_ESX60
            && md_alignment != 0
            && (!md_alignment.is_power_of_two() || !(512..=MAX_MD_ALIGNMENT).contains(&md_alignment))
        {
            return Err(CorruptKind::BadMdAlignment(md_alignment));
        }
        let num_pe_maps = r32(0xBE)?;
        if num_pe_maps > MAX_PE_MAPS {
            return Err(CorruptKind::TooManyPeMaps { found: u64::from(num_pe_maps), max: u64::from(MAX_PE_MAPS) });
        }
        Ok(Self {
            major,
            minor: r32(0x08)?,
            disk_id: DiskId(bytes::<{ DiskId::SIZE }>(b, 0x0C).ok_or_else(short)?),
            disk_block_size: r32(0x5A)?,
            total_bytes: r64(0x5E)?,
            num_volumes: r32(0x66)?,
            num_pes: r32(0x6A)?,
            last_pe_index: r32(0x6E)?,
            generation: r64(0x72)?,
            data_offset: r64(0x7A)?,
            dev_id: uuid(0x82)?,
            init_time_us: r64(0x92)?,
            mod_time_us: r64(0x9A)?,
            locked_by: uuid(0xA2)?,
            locked_when_us: r64(0xB2)?,
            unknown_0xba: r32(0xBA)?,
            num_pe_maps,
            ext_dev_metadata_offset: r64(0xC2)?,
            md_alignment,
            num_pes6: r32(0xCE)?,
            flags: r32(0xD2)?,
        })
    }

    /// The header as a 512-byte sector (fields, then zeros).
    #[allow(clippy::indexing_slicing)] // constant offsets inside a constant-size buffer
    pub fn encode(&self) -> [u8; DEV_METADATA_SECTOR] {
        let mut b = [0u8; DEV_METADATA_SECTOR];
        put_u32(&mut b, 0x00, LVM_MAGIC);
        put_u32(&mut b, 0x04, self.major);
        put_u32(&mut b, 0x08, self.minor);
        b[0x0C..0x0C + DiskId::SIZE].copy_from_slice(&self.disk_id.0);
        put_u32(&mut b, 0x5A, self.disk_block_size);
        put_u64(&mut b, 0x5E, self.total_bytes);
        put_u32(&mut b, 0x66, self.num_volumes);
        put_u32(&mut b, 0x6A, self.num_pes);
        put_u32(&mut b, 0x6E, self.last_pe_index);
        put_u64(&mut b, 0x72, self.generation);
        put_u64(&mut b, 0x7A, self.data_offset);
        b[0x82..0x92].copy_from_slice(&self.dev_id.0);
        put_u64(&mut b, 0x92, self.init_time_us);
        put_u64(&mut b, 0x9A, self.mod_time_us);
        b[0xA2..0xB2].copy_from_slice(&self.locked_by.0);
        put_u64(&mut b, 0xB2, self.locked_when_us);
        put_u32(&mut b, 0xBA, self.unknown_0xba);
        put_u32(&mut b, 0xBE, self.num_pe_maps);
        put_u64(&mut b, 0xC2, self.ext_dev_metadata_offset);
        put_u32(&mut b, 0xCA, self.md_alignment);
        put_u32(&mut b, 0xCE, self.num_pes6);
        put_u32(&mut b, 0xD2, self.flags);
        b
    }

    /// The metadata alignment in force: `mdAlignment`, or 4096 when an LVM6 header leaves it 0.
    pub fn effective_md_alignment(&self) -> u32 {
        if self.major >= LVM_MAJOR_ESX60 && self.md_alignment == 0 {
            LVM_MD_ALIGNMENT_DEFAULT
        } else {
            self.md_alignment
        }
    }

    /// Where this header's tables are.
    pub fn layout(&self) -> Layout {
        Layout::new(self.major, self.effective_md_alignment())
    }

    /// PE maps of the main region: `numPEMaps`, but at least one (LVM3 and LVM6 write 0 and
    /// still have map 0).
    pub fn pe_map_count(&self) -> u32 {
        self.num_pe_maps.max(1)
    }

    /// Whether the device holds a VMFS-L volume.
    pub fn is_vmfs_l(&self) -> bool {
        self.flags & Self::FLAG_VMFS_L != 0
    }

    /// Whether the values look like a real header rather than a magic number met by chance:
    /// a device UUID and a data offset past the header. Used by the probe.
    pub fn is_plausible(&self) -> bool {
        !self.dev_id.is_nil() && self.data_offset > LVM_DEV_HEADER_OFFSET
    }
}

/// `LVM_VolState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolState {
    /// 0 `LVM_INVALID`.
    Invalid,
    /// 1 `LVM_NORMAL`.
    Normal,
    /// 2 `LVM_RESIG_PENDING`: resignature started.
    ResigPending,
    /// 3 `LVM_RESIG_DONE`.
    ResigDone,
    /// Any other value, kept.
    Other(u32),
}

impl VolState {
    /// From the raw value.
    pub fn from_raw(v: u32) -> Self {
        match v {
            0 => VolState::Invalid,
            1 => VolState::Normal,
            2 => VolState::ResigPending,
            3 => VolState::ResigDone,
            o => VolState::Other(o),
        }
    }
    /// The raw value.
    pub fn raw(self) -> u32 {
        match self {
            VolState::Invalid => 0,
            VolState::Normal => 1,
            VolState::ResigPending => 2,
            VolState::ResigDone => 3,
            VolState::Other(o) => o,
        }
    }
}

impl fmt::Display for VolState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VolState::Invalid => f.write_str("LVM_INVALID"),
            VolState::Normal => f.write_str("LVM_NORMAL"),
            VolState::ResigPending => f.write_str("LVM_RESIG_PENDING"),
            VolState::ResigDone => f.write_str("LVM_RESIG_DONE"),
            VolState::Other(o) => write!(f, "state {o}"),
        }
    }
}

/// `LVM_VolDescriptor` (512 B, one per volume in the volume table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolDescriptor {
    /// 0x00 `volMeta.logicalSize`: volume size in bytes.
    pub logical_size: u64,
    /// 0x08 `volMeta.generation`.
    pub generation: u64,
    /// 0x10 `volMeta.state`.
    pub state: VolState,
    /// 0x14 `volMeta.name[64]`: the LV UUID as text on VMFS-made volumes, else a label.
    pub name_raw: [u8; 64],
    /// 0x54 `volMeta.lvID.uuid`: the LV UUID (the FS descriptor's volInfo repeats it).
    pub lv_uuid: VmwareUuid,
    /// 0x64 `volMeta.lvID.snapID`.
    pub snap_id: u32,
    /// 0x68 `volMeta.creationTimeUS`.
    pub creation_time_us: u64,
    /// 0x70 `volumeID`: matched against `LVM_PEDescriptor.volumeID`.
    pub volume_id: u32,
    /// 0x74 `numPEs`: PEs of this volume on this device (256 MiB units on LVM6).
    pub num_pes: u32,
    /// 0x78 `firstPE`: volume offset / 256 MiB where this device's part starts.
    pub first_pe: u64,
    /// 0x80 `lastPE`: last 256 MiB unit of this device's part.
    pub last_pe: u64,
    /// 0x88 `modTimeUS`.
    pub mod_time_us: u64,
    /// 0x90 `extVolMeta.numDevs`: devices (extents) of the volume.
    pub num_devs: u32,
    /// 0x110 `extVolMeta.consumedPEs`.
    pub consumed_pes: u32,
}

impl VolDescriptor {
    /// Structure name for errors.
    pub const NAME: &'static str = "LVM_VolDescriptor";

    /// Parse one volume-table slot; `Ok(None)` for an empty slot (no size, no UUID).
    pub fn parse(b: &[u8]) -> Result<Option<Self>, CorruptKind> {
        let short = || CorruptKind::TooShort { need: VOL_DESCRIPTOR_SIZE, have: b.len() };
        if b.len() < VOL_DESCRIPTOR_SIZE {
            return Err(short());
        }
        let r32 = |off| u32_at(b, off).ok_or_else(short);
        let r64 = |off| u64_at(b, off).ok_or_else(short);
        let d = Self {
            logical_size: r64(0x00)?,
            generation: r64(0x08)?,
            state: VolState::from_raw(r32(0x10)?),
            name_raw: bytes::<64>(b, 0x14).ok_or_else(short)?,
            lv_uuid: VmwareUuid::at(b, 0x54).ok_or_else(short)?,
            snap_id: r32(0x64)?,
            creation_time_us: r64(0x68)?,
            volume_id: r32(0x70)?,
            num_pes: r32(0x74)?,
            first_pe: r64(0x78)?,
            last_pe: r64(0x80)?,
            mod_time_us: r64(0x88)?,
            num_devs: r32(0x90)?,
            consumed_pes: r32(0x110)?,
        };
        Ok((d.logical_size != 0 || !d.lv_uuid.is_nil()).then_some(d))
    }

    /// The slot as 512 bytes.
    #[allow(clippy::indexing_slicing)] // constant offsets inside a constant-size buffer
    pub fn encode(&self) -> [u8; VOL_DESCRIPTOR_SIZE] {
        let mut b = [0u8; VOL_DESCRIPTOR_SIZE];
        put_u64(&mut b, 0x00, self.logical_size);
        put_u64(&mut b, 0x08, self.generation);
        put_u32(&mut b, 0x10, self.state.raw());
        b[0x14..0x54].copy_from_slice(&self.name_raw);
        b[0x54..0x64].copy_from_slice(&self.lv_uuid.0);
        put_u32(&mut b, 0x64, self.snap_id);
        put_u64(&mut b, 0x68, self.creation_time_us);
        put_u32(&mut b, 0x70, self.volume_id);
        put_u32(&mut b, 0x74, self.num_pes);
        put_u64(&mut b, 0x78, self.first_pe);
        put_u64(&mut b, 0x80, self.last_pe);
        put_u64(&mut b, 0x88, self.mod_time_us);
        put_u32(&mut b, 0x90, self.num_devs);
        put_u32(&mut b, 0x110, self.consumed_pes);
        b
    }

    /// `volMeta.name` as text (cut at the first NUL).
    pub fn name(&self) -> String {
        cstr_at(&self.name_raw, 0, 64).unwrap_or_default()
    }

    /// A name field holding `name` (truncated to 64 bytes), for encoders.
    #[allow(clippy::indexing_slicing)] // n ≤ 64 by construction
    pub fn name_field(name: &str) -> [u8; 64] {
        let mut raw = [0u8; 64];
        let n = name.len().min(64);
        raw[..n].copy_from_slice(&name.as_bytes()[..n]);
        raw
    }

    /// Volume range `[firstPE, lastPE + 1) × 256 MiB` this device claims, if the fields make
    /// sense (first ≤ last, no overflow).
    pub fn claimed_range(&self) -> Option<std::ops::Range<u64>> {
        if self.last_pe < self.first_pe {
            return None;
        }
        let start = self.first_pe.checked_mul(PE_UNIT)?;
        let end = self.last_pe.checked_add(1)?.checked_mul(PE_UNIT)?;
        Some(start..end)
    }
}

/// `LVM_PETableEntry`: `used` then `LVM_PEDescriptor`; 128-byte stride, 0x25 bytes used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeEntry {
    /// 0x00 `used`: non-zero when the PE is allocated.
    pub used: u8,
    /// 0x01 `peDesc.peID`.
    pub pe_id: u32,
    /// 0x05 `peDesc.volumeID`: the owning volume's `volumeID`.
    pub volume_id: u32,
    /// 0x09 `peDesc.pOffset`: device offset of the PE.
    pub p_offset: u64,
    /// 0x11 `peDesc.lOffset`: volume offset of the PE.
    pub l_offset: u64,
    /// 0x19 `peDesc.length`: bytes (256 MiB on LVM3-5; one or a few large PEs on LVM6).
    pub length: u64,
    /// 0x21 `peDesc.version`: 1 in every sample (the format reference's "0x100" is this field
    /// read one byte early, at 0x20).
    pub version: u32,
}

impl PeEntry {
    /// Structure name for errors.
    pub const NAME: &'static str = "LVM_PETableEntry";
    /// Bytes of an entry that carry fields.
    pub const USED_SIZE: usize = 0x25;

    /// Parse one entry from the first 0x25 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        let short = || CorruptKind::TooShort { need: Self::USED_SIZE, have: b.len() };
        Ok(Self {
            used: u8_at(b, 0x00).ok_or_else(short)?,
            pe_id: u32_at(b, 0x01).ok_or_else(short)?,
            volume_id: u32_at(b, 0x05).ok_or_else(short)?,
            p_offset: u64_at(b, 0x09).ok_or_else(short)?,
            l_offset: u64_at(b, 0x11).ok_or_else(short)?,
            length: u64_at(b, 0x19).ok_or_else(short)?,
            version: u32_at(b, 0x21).ok_or_else(short)?,
        })
    }

    /// The entry as 128 bytes.
    #[allow(clippy::indexing_slicing)] // constant offsets inside a constant-size buffer
    pub fn encode(&self) -> [u8; PE_ENTRY_SIZE] {
        let mut b = [0u8; PE_ENTRY_SIZE];
        b[0] = self.used;
        put_u32(&mut b, 0x01, self.pe_id);
        put_u32(&mut b, 0x05, self.volume_id);
        put_u64(&mut b, 0x09, self.p_offset);
        put_u64(&mut b, 0x11, self.l_offset);
        put_u64(&mut b, 0x19, self.length);
        put_u32(&mut b, 0x21, self.version);
        b
    }

    /// Whether the entry is marked used.
    pub fn is_used(&self) -> bool {
        self.used != 0
    }

    /// Whether every field is zero (a never-written slot).
    pub fn is_blank(&self) -> bool {
        *self == Self { used: 0, pe_id: 0, volume_id: 0, p_offset: 0, l_offset: 0, length: 0, version: 0 }
    }
}

/// Whether bit `index` of a PE bitmap is set (false past its end).
pub fn pe_bitmap_bit(bitmap: &[u8], index: usize) -> bool {
    let byte = bitmap.get(index.checked_div(8).unwrap_or(0)).copied().unwrap_or(0);
    let bit = index.checked_rem(8).unwrap_or(0);
    byte.checked_shr(u32::try_from(bit).unwrap_or(0)).unwrap_or(0) & 1 != 0
}

/// The non-empty names of an SD table (`LVM_SDTableEntry deviceName[256]` × 32), in slot order.
pub fn parse_sd_table(b: &[u8]) -> Vec<String> {
    b.chunks(SD_ENTRY_SIZE).take(SD_ENTRIES).filter_map(|c| cstr_at(c, 0, c.len())).filter(|s| !s.is_empty()).collect()
}

/// `LVM_ExtDevMetadata`: header of an extended metadata region (more PE maps for huge devices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtDevMetadata {
    /// 0x04 `numPEMaps`: PE maps in this region.
    pub num_pe_maps: u32,
    /// 0x08 `dataOffset`: device offset of the data this region's PEs start at.
    pub data_offset: u64,
    /// 0x10 `nextOffset`: device offset of the next region, or 0.
    pub next_offset: u64,
}

impl ExtDevMetadata {
    /// Structure name for errors.
    pub const NAME: &'static str = "LVM_ExtDevMetadata";

    /// Parse a region header (0x00 `magic` must be [`LVM_MAGIC`]).
    pub fn parse(b: &[u8]) -> Result<Self, CorruptKind> {
        let short = || CorruptKind::TooShort { need: EXT_DEV_METADATA_SIZE, have: b.len() };
        let magic = u32_at(b, 0x00).ok_or_else(short)?;
        if magic != LVM_MAGIC {
            return Err(CorruptKind::BadMagic { found: magic });
        }
        let num_pe_maps = u32_at(b, 0x04).ok_or_else(short)?;
        if num_pe_maps > MAX_PE_MAPS {
            return Err(CorruptKind::TooManyPeMaps { found: u64::from(num_pe_maps), max: u64::from(MAX_PE_MAPS) });
        }
        Ok(Self {
            num_pe_maps,
            data_offset: u64_at(b, 0x08).ok_or_else(short)?,
            next_offset: u64_at(b, 0x10).ok_or_else(short)?,
        })
    }

    /// The region header as 512 bytes.
    pub fn encode(&self) -> [u8; DEV_METADATA_SECTOR] {
        let mut b = [0u8; DEV_METADATA_SECTOR];
        put_u32(&mut b, 0x00, LVM_MAGIC);
        put_u32(&mut b, 0x04, self.num_pe_maps);
        put_u64(&mut b, 0x08, self.data_offset);
        put_u64(&mut b, 0x10, self.next_offset);
        b
    }
}

/// Write a `SCSI_DiskId` with `id` text (for encoders and tests).
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)] // n ≤ 44 by construction
pub fn disk_id_with(id: &str) -> DiskId {
    let mut raw = [0u8; DiskId::SIZE];
    let n = id.len().min(44);
    raw[0] = 1;
    raw[1] = u8::try_from(n).unwrap_or(44);
    put_u16(&mut raw, 0x02, 0);
    raw[0x22..0x22 + n].copy_from_slice(&id.as_bytes()[..n]);
    DiskId(raw)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
#[path = "ondisk_tests.rs"]
mod tests;
