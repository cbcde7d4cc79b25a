//! VMware LVM: open one device (header, volume table, device names, PE maps, extended
//! metadata chain), then assemble logical volumes from any set of devices.
//!
//! [`ondisk`] holds the layouts; this file reads them from a device; [`mod@assemble`] groups
//! devices into [`LogicalVolume`]s.

pub mod assemble;
pub mod ondisk;

pub use assemble::{LogicalVolume, PartInfo, assemble};
pub use ondisk::{ExtDevMetadata, Layout, LvmDeviceHeader, PeEntry, VolDescriptor, VolState};

use super::error::{CorruptKind, Error, Space, corrupt, read_struct};
use crate::block::{BlockSource, Slice, Source};
use crate::le::VmwareUuid;
use ondisk::{
    DEV_METADATA_SECTOR, EXT_DEV_METADATA_SIZE, LVM_DEV_HEADER_OFFSET, MAX_EXT_REGIONS, MAX_PE_MAPS, PE_ENTRY_SIZE,
    PES_PER_MAP, VOL_DESCRIPTOR_SIZE, pe_bitmap_bit, sd_table_bytes,
};
use std::collections::HashSet;
use std::sync::Arc;

/// One LVM device (an extent of one or more logical volumes), read from a source whose offset 0
/// is the device start (a partition, or a [`Slice`] of a disk at a probe candidate).
pub struct LvmDevice {
    /// The device's bytes.
    pub source: Source,
    /// Offset of the device on the disk it was found on (0 for a partition image).
    pub disk_offset: u64,
    /// `LVM_DevMetadata`.
    pub header: LvmDeviceHeader,
    /// Non-empty volume-table slots.
    pub volumes: Vec<VolDescriptor>,
    /// The SD table: ESXi's names of the volume's devices, in extent order (LVM5+, only on the
    /// device holding the volume's first extent).
    pub device_names: Vec<String>,
    /// Used PEs of every PE map, main region first, then the extended regions in chain order.
    pub pes: Vec<PeEntry>,
    /// Damage that cost part of the device (a broken extended-metadata chain): the PEs read
    /// before it are kept, the rest of the volume shows as missing.
    pub damage: Vec<Error>,
    /// Oddities worth a line in a report.
    pub notes: Vec<String>,
}

impl std::fmt::Debug for LvmDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LvmDevice")
            .field("source", &self.source.name())
            .field("disk_offset", &self.disk_offset)
            .field("header", &self.header)
            .field("volumes", &self.volumes)
            .field("pes", &self.pes.len())
            .field("damage", &self.damage)
            .finish()
    }
}

impl LvmDevice {
    /// Read the device whose first byte is offset 0 of `source`; `disk_offset` says where that is
    /// on the disk (for reports only).
    ///
    /// Fails when the header is unreadable or corrupt. A broken extended-metadata chain does not
    /// fail: it is recorded in [`LvmDevice::damage`] with the PEs read so far kept.
    pub fn open(source: Source, disk_offset: u64) -> Result<Self, Error> {
        let src: &dyn BlockSource = &*source;
        let raw = read_struct(src, Space::Device, LvmDeviceHeader::NAME, LVM_DEV_HEADER_OFFSET, DEV_METADATA_SECTOR)?;
        let header = LvmDeviceHeader::parse(&raw)
            .map_err(|k| corrupt(src, Space::Device, LvmDeviceHeader::NAME, LVM_DEV_HEADER_OFFSET, k))?;
        let layout = header.layout();
        let mut notes = Vec::new();
        if header.data_offset <= LVM_DEV_HEADER_OFFSET || header.data_offset >= src.len() {
            notes.push(format!(
                "dataOffset {:#x} is outside the device ({:#x} bytes); PE offsets are used as they are",
                header.data_offset,
                src.len()
            ));
        }
        if header.total_bytes > src.len() {
            notes.push(format!(
                "header says the device has {:#x} bytes but only {:#x} are present (truncated image?)",
                header.total_bytes,
                src.len()
            ));
        }

        // Volume table: max_volumes (512 or 1) slots of 512 bytes.
        let vt_off = LVM_DEV_HEADER_OFFSET + layout.vol_table;
        let vt_len = usize::try_from(layout.vol_table_bytes()).unwrap_or(0);
        let vt = read_struct(src, Space::Device, "LVM volume table", vt_off, vt_len)?;
        let mut volumes = Vec::new();
        for (i, slot) in vt.chunks(VOL_DESCRIPTOR_SIZE).enumerate() {
            match VolDescriptor::parse(slot) {
                Ok(Some(d)) => volumes.push(d),
                Ok(None) => {}
                Err(k) => notes.push(format!("volume table slot {i}: {k}")),
            }
        }
        if volumes.is_empty() {
            notes.push("volume table is empty: no logical volume names this device".into());
        } else if u64::try_from(volumes.len()).ok() != Some(u64::from(header.num_volumes)) {
            notes.push(format!("numVolumes is {} but the volume table has {}", header.num_volumes, volumes.len()));
        }

        // SD table (LVM5+): device names, present on the first device of a volume.
        let device_names = match layout.sd_table {
            Some(sd) => {
                let len = usize::try_from(sd_table_bytes()).unwrap_or(0);
                let b = read_struct(src, Space::Device, "LVM SD table", LVM_DEV_HEADER_OFFSET + sd, len)?;
                ondisk::parse_sd_table(&b)
            }
            None => Vec::new(),
        };

        let mut dev = Self {
            source: Arc::clone(&source),
            disk_offset,
            header,
            volumes,
            device_names,
            pes: Vec::new(),
            damage: Vec::new(),
            notes,
        };
        let mut maps_read = 0u32;
        let mut mismatches = 0u64;
        let main_maps = dev.header.pe_map_count();
        dev.read_pe_maps(LVM_DEV_HEADER_OFFSET, main_maps, &layout, &mut mismatches)?;
        maps_read += main_maps;
        dev.read_ext_chain(&layout, &mut maps_read, &mut mismatches);
        if mismatches > 0 {
            dev.notes.push(format!(
                "{mismatches} PE entries disagree with their PE bitmap; an entry counts as used when either says so"
            ));
        }
        let orphans = dev.pes.iter().filter(|p| !dev.volumes.iter().any(|v| v.volume_id == p.volume_id)).count();
        if orphans > 0 {
            dev.notes
                .push(format!("{orphans} used PEs name a volumeID that no volume-table slot has; they are ignored"));
        }
        let found = dev.pes.len();
        if u64::try_from(found).ok() != Some(u64::from(dev.header.num_pes)) {
            dev.notes.push(format!("numPEs is {} but {found} used PEs were found", dev.header.num_pes));
        }
        Ok(dev)
    }

    /// Open the device a probe candidate names on `disk`.
    pub fn open_candidate(disk: &Source, candidate: &super::probe::Candidate) -> Result<Self, Error> {
        let slice: Source = Arc::new(Slice::new(Arc::clone(disk), candidate.offset, candidate.len));
        Self::open(slice, candidate.offset)
    }

    /// The device UUID (`devID`).
    pub fn dev_uuid(&self) -> VmwareUuid {
        self.header.dev_id
    }

    /// The name of the source the device was read from.
    pub fn name(&self) -> String {
        self.source.name()
    }

    /// Read `maps` PE maps of the region whose header is at device offset `region`.
    fn read_pe_maps(&mut self, region: u64, maps: u32, layout: &Layout, mismatches: &mut u64) -> Result<(), Error> {
        let src: &dyn BlockSource = &*self.source;
        let map_len = usize::try_from(layout.pe_map_stride).unwrap_or(0);
        let bitmap_len = usize::try_from(layout.pe_bitmap_size).unwrap_or(0);
        for m in 0..maps {
            let off = region.checked_add(layout.pe_bitmap(m)).ok_or_else(|| {
                corrupt(
                    src,
                    Space::Device,
                    "LVM PE map",
                    region,
                    CorruptKind::BadField { field: "PE map", value: region },
                )
            })?;
            if off.checked_add(layout.pe_map_stride).is_none_or(|end| end > src.len()) {
                self.notes.push(format!(
                    "PE map {m} of the region at {region:#x} lies past the end of the device; its PEs are unknown"
                ));
                break;
            }
            let buf = read_struct(src, Space::Device, "LVM PE map", off, map_len)?;
            let (bitmap, table) = buf.split_at(bitmap_len.min(buf.len()));
            for (i, raw) in table.chunks(PE_ENTRY_SIZE).take(PES_PER_MAP).enumerate() {
                let Ok(e) = PeEntry::parse(raw) else { continue };
                let bit = pe_bitmap_bit(bitmap, i);
                if e.is_used() != bit && !e.is_blank() {
                    *mismatches += 1;
                }
                if (e.is_used() || bit) && e.length > 0 {
                    self.pes.push(e);
                }
            }
        }
        Ok(())
    }

    /// Follow `extDevMetadataOffset` → `nextOffset` with a visited set and caps. Damage ends the
    /// walk and is recorded; nothing here fails the device.
    fn read_ext_chain(&mut self, layout: &Layout, maps_read: &mut u32, mismatches: &mut u64) {
        let mut next = self.header.ext_dev_metadata_offset;
        let mut seen = HashSet::new();
        while next != 0 {
            let src = Arc::clone(&self.source);
            let here = next;
            let fail = |kind| corrupt(&*src, Space::Device, ExtDevMetadata::NAME, here, kind);
            if seen.len() >= MAX_EXT_REGIONS {
                self.damage.push(fail(CorruptKind::ExtChainTooLong { max: MAX_EXT_REGIONS }));
                return;
            }
            if !seen.insert(here) {
                self.damage.push(fail(CorruptKind::ExtChainCycle { offset: here }));
                return;
            }
            if here <= LVM_DEV_HEADER_OFFSET {
                self.damage.push(fail(CorruptKind::BadField { field: "extDevMetadataOffset", value: here }));
                return;
            }
            if here >= src.len() {
                self.notes.push(format!(
                    "extended metadata at {here:#x} lies past the end of the device ({:#x} bytes); the PEs it maps are unknown",
                    src.len()
                ));
                return;
            }
            let raw = match read_struct(&*src, Space::Device, ExtDevMetadata::NAME, here, EXT_DEV_METADATA_SIZE) {
                Ok(b) => b,
                Err(e) => {
                    self.damage.push(e);
                    return;
                }
            };
            let ext = match ExtDevMetadata::parse(&raw) {
                Ok(x) => x,
                Err(k) => {
                    self.damage.push(fail(k));
                    return;
                }
            };
            let total = u64::from(*maps_read) + u64::from(ext.num_pe_maps);
            if total > u64::from(MAX_PE_MAPS) {
                self.damage.push(fail(CorruptKind::TooManyPeMaps { found: total, max: u64::from(MAX_PE_MAPS) }));
                return;
            }
            if let Err(e) = self.read_pe_maps(here, ext.num_pe_maps, layout, mismatches) {
                self.damage.push(e);
                return;
            }
            *maps_read += ext.num_pe_maps;
            next = ext.next_offset;
        }
    }
}

/// Builds LVM devices for tests as sparse in-memory sources: header, one volume descriptor, SD
/// table, PE maps (main and extended regions), and PE data whose first and last 512-byte
/// sectors hold their own volume offset (u64 LE); everything else reads as zeros.
#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
pub(crate) mod forge {
    use super::ondisk::*;
    use crate::block::{BlockSource, Source};
    use crate::le::{VmwareUuid, put_u64};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// Zeros except for the stored regions.
    pub(crate) use crate::block::SparseMem as SparseSource;

    /// `(lOffset, pOffset, length)` of PEs.
    pub(crate) type Pes = Vec<(u64, u64, u64)>;

    /// A device to build.
    #[derive(Clone)]
    pub(crate) struct DevSpec {
        pub major: u32,
        pub dev_uuid: u8,
        pub lv_uuid: u8,
        pub name: &'static str,
        pub vol_size: u64,
        pub num_devs: u32,
        pub first_pe: u64,
        pub last_pe: u64,
        pub generation: u64,
        /// `(lOffset, pOffset, length)` of the main region's PEs.
        pub pes: Pes,
        pub sd_names: Vec<&'static str>,
        /// Extended regions: device offset, next offset, PEs.
        pub ext: Vec<(u64, u64, Pes)>,
        pub len: u64,
    }

    /// 256 MiB.
    pub(crate) const PE: u64 = PE_UNIT;

    impl DevSpec {
        /// One device, one 512 MiB volume in two 256 MiB PEs at 0x1100000 (like lvm5.bin).
        pub(crate) fn simple(major: u32) -> Self {
            Self {
                major,
                dev_uuid: 1,
                lv_uuid: 9,
                name: "lv",
                vol_size: 2 * PE,
                num_devs: 1,
                first_pe: 0,
                last_pe: 1,
                generation: 1,
                pes: vec![(0, 0x110_0000, PE), (PE, 0x110_0000 + PE, PE)],
                sd_names: vec!["t10.ATA_____QEMU_HARDDISK___QM00007_____:1"],
                ext: Vec::new(),
                len: 0x110_0000 + 2 * PE,
            }
        }

        /// Device `k` (0-based) of an `n`-device volume with one 256 MiB PE each.
        pub(crate) fn span(major: u32, k: u64, n: u64) -> Self {
            Self {
                dev_uuid: 10 + k as u8,
                name: "span",
                vol_size: n * PE,
                num_devs: n as u32,
                first_pe: k,
                last_pe: k,
                pes: vec![(k * PE, 0x110_0000, PE)],
                sd_names: if k == 0 { vec!["t10.QM00009:1", "t10.QM00011:1", "t10.QM00013:1"] } else { vec![] },
                len: 0x110_0000 + PE,
                ..Self::simple(major)
            }
        }

        pub(crate) fn header(&self) -> LvmDeviceHeader {
            LvmDeviceHeader {
                major: self.major,
                minor: 21,
                disk_id: disk_id_with("QM00007             QEMU H"),
                disk_block_size: 512,
                total_bytes: self.len,
                num_volumes: 1,
                num_pes: (self.pes.len() + self.ext.iter().map(|e| e.2.len()).sum::<usize>()) as u32,
                last_pe_index: 0,
                generation: self.generation,
                data_offset: 0x110_0000,
                dev_id: VmwareUuid([self.dev_uuid; 16]),
                init_time_us: 0,
                mod_time_us: 0,
                locked_by: VmwareUuid::default(),
                locked_when_us: 0,
                unknown_0xba: 0,
                num_pe_maps: if self.major == 5 || self.major == 4 { 1 } else { 0 },
                ext_dev_metadata_offset: self.ext.first().map_or(0, |e| e.0),
                md_alignment: if self.major == 6 { 0x1000 } else { 0 },
                num_pes6: 0,
                flags: 0,
            }
        }

        /// The non-zero regions: device offset → bytes.
        pub(crate) fn regions(&self) -> BTreeMap<u64, Vec<u8>> {
            let h = self.header();
            let l = h.layout();
            let mut r = BTreeMap::new();
            // Metadata area of the main region: header .. end of PE map 0.
            let meta_len = l.pe_table(0) + pe_table_bytes();
            let mut m = vec![0u8; meta_len as usize];
            m[..512].copy_from_slice(&h.encode());
            let vd = VolDescriptor {
                logical_size: self.vol_size,
                generation: self.generation,
                state: VolState::Normal,
                name_raw: VolDescriptor::name_field(self.name),
                lv_uuid: VmwareUuid([self.lv_uuid; 16]),
                snap_id: 1,
                creation_time_us: 0,
                volume_id: 0,
                num_pes: self.pes.len() as u32,
                first_pe: self.first_pe,
                last_pe: self.last_pe,
                mod_time_us: 0,
                num_devs: self.num_devs,
                consumed_pes: 0,
            };
            let vt = l.vol_table as usize;
            m[vt..vt + 512].copy_from_slice(&vd.encode());
            if let Some(sd) = l.sd_table {
                for (i, n) in self.sd_names.iter().enumerate() {
                    let o = sd as usize + i * SD_ENTRY_SIZE;
                    m[o..o + n.len()].copy_from_slice(n.as_bytes());
                }
            }
            let write_map = |m: &mut Vec<u8>, r: &mut BTreeMap<u64, Vec<u8>>, pes: &[(u64, u64, u64)]| {
                let bm = l.pe_bitmap(0) as usize;
                let pt = l.pe_table(0) as usize;
                for (i, &(lo, po, len)) in pes.iter().enumerate() {
                    m[bm + i / 8] |= 1 << (i % 8);
                    let e = PeEntry {
                        used: 1,
                        pe_id: i as u32,
                        volume_id: 0,
                        p_offset: po,
                        l_offset: lo,
                        length: len,
                        version: 1,
                    };
                    m[pt + i * 128..pt + (i + 1) * 128].copy_from_slice(&e.encode());
                    for s in [0, len.saturating_sub(512)] {
                        let mut sec = vec![0u8; 512];
                        put_u64(&mut sec, 0, lo + s);
                        r.insert(po + s, sec);
                    }
                }
            };
            write_map(&mut m, &mut r, &self.pes);
            r.insert(LVM_DEV_HEADER_OFFSET, m);
            for (off, next, pes) in &self.ext {
                let mut m = vec![0u8; meta_len as usize];
                let x = ExtDevMetadata { num_pe_maps: 1, data_offset: 0, next_offset: *next };
                m[..512].copy_from_slice(&x.encode());
                write_map(&mut m, &mut r, pes);
                r.insert(*off, m);
            }
            r
        }

        pub(crate) fn sparse(&self, name: &str) -> SparseSource {
            SparseSource { name: name.into(), len: self.len, regions: self.regions() }
        }

        pub(crate) fn source(&self, name: &str) -> Source {
            Arc::new(self.sparse(name))
        }
    }

    /// The u64 at `off` of `src`.
    pub(crate) fn marker(src: &dyn BlockSource, off: u64) -> u64 {
        let mut b = [0u8; 8];
        src.read_at(off, &mut b).unwrap();
        u64::from_le_bytes(b)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
mod tests {
    use super::forge::{DevSpec, PE, SparseSource};
    use super::*;

    fn with_regions(spec: &DevSpec, edit: impl FnOnce(&mut std::collections::BTreeMap<u64, Vec<u8>>)) -> Source {
        let mut s = spec.sparse("disk.img");
        edit(&mut s.regions);
        Arc::new(s)
    }

    #[test]
    fn opens_every_major() {
        for major in 3..=6 {
            let spec = DevSpec::simple(major);
            let d = LvmDevice::open(spec.source("dev.img"), 0).unwrap();
            assert_eq!(d.header.major, major);
            assert_eq!(d.dev_uuid(), VmwareUuid([1; 16]));
            assert_eq!(d.volumes.len(), 1);
            assert_eq!(d.volumes[0].name(), "lv");
            assert_eq!(d.pes.len(), 2);
            assert_eq!(d.pes[1].p_offset, 0x110_0000 + PE);
            assert!(d.damage.is_empty());
            assert!(d.notes.is_empty(), "{:?}", d.notes);
            if major >= 5 {
                assert_eq!(d.device_names, vec!["t10.ATA_____QEMU_HARDDISK___QM00007_____:1".to_string()]);
            } else {
                assert!(d.device_names.is_empty(), "LVM{major} has no SD table");
            }
        }
    }

    #[test]
    fn bad_magic_is_a_corrupt_header() {
        let src = with_regions(&DevSpec::simple(5), |r| r.get_mut(&0x100000).unwrap()[..4].fill(0));
        let e = LvmDevice::open(src, 0).unwrap_err();
        assert_eq!(e.kind(), Some(&CorruptKind::BadMagic { found: 0 }));
        assert_eq!(
            e.to_string(),
            "corrupt LVM_DevMetadata at device offset 0x100000 of disk.img: bad magic 0x00000000"
        );
    }

    #[test]
    fn too_short_for_the_header_is_a_read_error() {
        let src: Source = Arc::new(SparseSource { name: "tiny".into(), len: 4096, regions: Default::default() });
        assert!(matches!(LvmDevice::open(src, 0), Err(Error::Read { structure: "LVM_DevMetadata", .. })));
    }

    fn ext_spec(chain: &[(u64, u64)]) -> DevSpec {
        let mut spec = DevSpec::simple(5);
        spec.len = 0x4000_0000 + 0x100_0000 * chain.len() as u64;
        spec.ext = chain
            .iter()
            .enumerate()
            .map(|(i, &(off, next))| (off, next, vec![((2 + i as u64) * PE, off + 0x100_0000, PE)]))
            .collect();
        spec.vol_size = (2 + chain.len() as u64) * PE;
        spec
    }

    #[test]
    fn extended_chain_is_followed() {
        let spec = ext_spec(&[(0x3000_0000, 0x3800_0000), (0x3800_0000, 0)]);
        let d = LvmDevice::open(spec.source("dev.img"), 0).unwrap();
        assert!(d.damage.is_empty(), "{:?}", d.damage);
        assert_eq!(d.pes.iter().map(|p| p.l_offset).collect::<Vec<_>>(), vec![0, PE, 2 * PE, 3 * PE]);
    }

    #[test]
    fn extended_chain_cycle_ends_with_an_error() {
        let spec = ext_spec(&[(0x3000_0000, 0x3800_0000), (0x3800_0000, 0x3000_0000)]);
        let d = LvmDevice::open(spec.source("dev.img"), 0).unwrap();
        assert_eq!(d.damage.len(), 1);
        assert_eq!(d.damage[0].kind(), Some(&CorruptKind::ExtChainCycle { offset: 0x3000_0000 }));
        assert_eq!(d.pes.len(), 4, "PEs read before the loop are kept");
    }

    #[test]
    fn extended_chain_breaks_give_their_kind() {
        // Points into the header area.
        let spec = ext_spec(&[(0x3000_0000, 0x80000)]);
        let d = LvmDevice::open(spec.source("dev.img"), 0).unwrap();
        assert_eq!(d.damage[0].kind(), Some(&CorruptKind::BadField { field: "extDevMetadataOffset", value: 0x80000 }));
        // Bad magic at the target.
        let spec = ext_spec(&[(0x3000_0000, 0x3800_0000)]);
        let d = LvmDevice::open(spec.source("dev.img"), 0).unwrap();
        assert_eq!(d.damage[0].kind(), Some(&CorruptKind::BadMagic { found: 0 }));
        assert_eq!(d.damage[0].offset(), 0x3800_0000);
        // Absurd map count.
        let src = with_regions(&spec, |r| crate::le::put_u32(r.get_mut(&0x3000_0000).unwrap(), 4, 1000));
        let d = LvmDevice::open(src, 0).unwrap();
        assert_eq!(d.damage[0].kind(), Some(&CorruptKind::TooManyPeMaps { found: 1000, max: 64 }));
        // Past the end of the (truncated) device: a note, no damage.
        let spec = ext_spec(&[(0x3000_0000, 0x7000_0000_0000)]);
        let d = LvmDevice::open(spec.source("dev.img"), 0).unwrap();
        assert!(d.damage.is_empty());
        assert!(d.notes.iter().any(|n| n.contains("past the end")), "{:?}", d.notes);
    }

    #[test]
    fn chain_of_many_regions_is_capped() {
        // 40 regions each pointing to the next: more than MAX_EXT_REGIONS, no cycle. One map per
        // region, so the PE-map cap (64) is not what stops it.
        let chain: Vec<(u64, u64)> = (0..40u64)
            .map(|i| (0x3000_0000 + i * 0x100_0000, if i == 39 { 0 } else { 0x3000_0000 + (i + 1) * 0x100_0000 }))
            .collect();
        let mut spec = ext_spec(&chain);
        spec.len = 0x8000_0000;
        let d = LvmDevice::open(spec.source("dev.img"), 0).unwrap();
        assert_eq!(d.damage[0].kind(), Some(&CorruptKind::ExtChainTooLong { max: ondisk::MAX_EXT_REGIONS }));
    }
}
