//! Logical volumes from LVM devices: group the devices by LV (`lvID.uuid` + `snapID`) in any
//! order, lay their used PEs out by logical offset, and read what no present device backs as
//! zeros, reported in [`LogicalVolume::missing`] with a line per gap.

use super::LvmDevice;
use super::ondisk::VolState;
use crate::block::{Concat, Piece, Slice, Source, merge_ranges};
use crate::container::probe::Candidate;
use crate::le::VmwareUuid;
use std::ops::Range;
use std::sync::Arc;

/// One device's share of a logical volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// ESXi's name of the device (from the volume's SD table) when known, else the source name.
    pub device_name: String,
    /// Name of the source the device was read from (e.g. `disk.img@0x100000`).
    pub source_name: String,
    /// The device UUID (`devID`).
    pub dev_uuid: VmwareUuid,
    /// Offset of the device on its disk (the probe candidate's offset).
    pub device_offset: u64,
    /// `(volume offset, device offset, length)` runs, contiguous PEs merged, sorted.
    pub runs: Vec<(u64, u64, u64)>,
}

/// A logical volume: what VMFS sits on.
pub struct LogicalVolume {
    /// `lvID.uuid`; nil for a raw volume found without LVM metadata.
    pub uuid: VmwareUuid,
    /// `lvID.snapID`.
    pub snap_id: u32,
    /// `volMeta.name` (the LV UUID as text on VMFS-made volumes), or a description for a raw one.
    pub name: String,
    /// Size in bytes (`volMeta.logicalSize`).
    pub size: u64,
    /// The volume's bytes; missing ranges read as zeros and are reported as unreadable.
    pub source: Source,
    /// The present devices, in volume order.
    pub parts: Vec<PartInfo>,
    /// Volume ranges no present device backs.
    pub missing: Vec<Range<u64>>,
    /// Report lines: missing devices, damage, disagreements between devices.
    pub notes: Vec<String>,
    /// LVM major version of the devices; 0 for a raw volume.
    pub lvm_major: u32,
    /// ESXi's names of all the volume's devices (SD table), in extent order, when recorded.
    pub device_names: Vec<String>,
    /// `volMeta.state`, when the volume came from LVM metadata.
    pub state: Option<VolState>,
}

impl std::fmt::Debug for LogicalVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogicalVolume")
            .field("uuid", &self.uuid)
            .field("name", &self.name)
            .field("size", &self.size)
            .field("source", &self.source.name())
            .field("parts", &self.parts)
            .field("missing", &self.missing)
            .field("notes", &self.notes)
            .field("lvm_major", &self.lvm_major)
            .finish()
    }
}

impl LogicalVolume {
    /// A raw logical volume: the candidate's bytes of `disk`, with no LVM metadata.
    pub fn raw(disk: &Source, candidate: &Candidate) -> Self {
        let source: Source = Arc::new(Slice::new(Arc::clone(disk), candidate.offset, candidate.len));
        let size = source.len();
        Self {
            uuid: VmwareUuid::default(),
            snap_id: 0,
            name: format!("{}@{:#x}", disk.name(), candidate.offset),
            size,
            source,
            parts: Vec::new(),
            missing: Vec::new(),
            notes: vec![format!(
                "raw logical volume without LVM metadata ({}), disk offset {:#x} of {}, {size:#x} bytes",
                candidate.how,
                candidate.offset,
                disk.name()
            )],
            lvm_major: 0,
            device_names: Vec::new(),
            state: None,
        }
    }

    /// Whether the volume came from LVM metadata (not a raw volume).
    pub fn is_lvm(&self) -> bool {
        self.lvm_major != 0
    }

    /// All runs of all parts, sorted by volume offset: `(volume offset, device offset, length)`.
    pub fn runs(&self) -> Vec<(u64, u64, u64)> {
        let mut v: Vec<_> = self.parts.iter().flat_map(|p| p.runs.iter().copied()).collect();
        v.sort_unstable();
        v
    }
}

/// Group `devices` (any order, any mix of volumes) into logical volumes, in order of first
/// appearance. A device found twice (same `devID`) is used once: the newer generation wins.
pub fn assemble(devices: Vec<LvmDevice>) -> Vec<LogicalVolume> {
    let mut devs: Vec<LvmDevice> = Vec::new();
    let mut dup_notes: Vec<(usize, String)> = Vec::new();
    for d in devices {
        let uuid = d.dev_uuid();
        if !uuid.is_nil()
            && let Some(i) = devs.iter().position(|x| x.dev_uuid() == uuid)
        {
            let note = format!(
                "device {uuid} found twice ({} and {}); the one with the newer generation is used",
                devs[i].name(),
                d.name()
            );
            if d.header.generation > devs[i].header.generation {
                devs[i] = d;
            }
            dup_notes.push((i, note));
            continue;
        }
        devs.push(d);
    }

    let mut groups: Vec<((VmwareUuid, u32), Vec<Member>)> = Vec::new();
    for (d, dev) in devs.iter().enumerate() {
        for (v, vol) in dev.volumes.iter().enumerate() {
            let key = (vol.lv_uuid, vol.snap_id);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(Member { dev: d, vol: v }),
                None => groups.push((key, vec![Member { dev: d, vol: v }])),
            }
        }
    }
    groups.into_iter().map(|((uuid, snap_id), members)| build(&devs, uuid, snap_id, &members, &dup_notes)).collect()
}

/// A device's volume-table slot that belongs to the volume being built.
#[derive(Clone, Copy)]
struct Member {
    /// Index in the device list.
    dev: usize,
    /// Index in that device's `volumes`.
    vol: usize,
}

/// A run of volume bytes on one member device.
#[derive(Clone, Copy, Debug)]
struct Ext {
    vol: u64,
    dev: u64,
    len: u64,
    member: usize,
}

/// A slot in volume order: a present device, or a gap that no present device claims.
enum Slot {
    Device(usize),
    Gap(Range<u64>),
}

fn build(
    devs: &[LvmDevice],
    uuid: VmwareUuid,
    snap_id: u32,
    members: &[Member],
    dup_notes: &[(usize, String)],
) -> LogicalVolume {
    let dev = |m: &Member| &devs[m.dev];
    let desc = |m: &Member| &devs[m.dev].volumes[m.vol];
    let mut notes = Vec::new();

    // The newest descriptor speaks for the volume.
    let best = members.iter().enumerate().max_by_key(|(i, m)| (desc(m).generation, std::cmp::Reverse(*i)));
    let Some((_, best)) = best else {
        // Unreachable: groups are made with one member at least.
        return empty_volume(uuid, snap_id);
    };
    let best_desc = desc(best);
    let size = best_desc.logical_size;
    let name = match best_desc.name() {
        n if n.is_empty() => uuid.to_string(),
        n => n,
    };
    for m in members {
        let d = desc(m);
        if d.logical_size != size {
            notes.push(format!(
                "{} says the volume has {:#x} bytes (generation {}); {size:#x} from generation {} is used",
                dev(m).name(),
                d.logical_size,
                d.generation,
                best_desc.generation
            ));
        }
    }
    let num_devs = members.iter().map(|m| desc(m).num_devs).max().unwrap_or(0);
    let majors: Vec<u32> = members.iter().map(|m| dev(m).header.major).collect();
    let lvm_major = majors.iter().copied().max().unwrap_or(0);
    if majors.iter().any(|&m| m != lvm_major) {
        notes.push(format!("the devices disagree on the LVM major version: {majors:?}"));
    }
    for m in members {
        let d = dev(m);
        notes.extend(d.notes.iter().map(|n| format!("{}: {n}", d.name())));
        notes.extend(d.damage.iter().map(|e| e.to_string()));
        notes.extend(dup_notes.iter().filter(|(i, _)| *i == m.dev).map(|(_, n)| n.clone()));
    }

    // Extents of every member, clipped to the volume and to the device.
    let mut exts = Vec::new();
    let (mut beyond, mut past_end, mut truncated) = (0u64, 0u64, 0u64);
    for (mi, m) in members.iter().enumerate() {
        let d = dev(m);
        let vid = desc(m).volume_id;
        let dev_len = d.source.len();
        for pe in d.pes.iter().filter(|p| p.volume_id == vid) {
            if pe.l_offset >= size || pe.l_offset.checked_add(pe.length).is_none() {
                beyond += 1;
                continue;
            }
            let len = pe.length.min(size - pe.l_offset);
            if pe.p_offset >= dev_len {
                past_end += 1;
                continue;
            }
            let avail = len.min(dev_len - pe.p_offset);
            if avail < len {
                truncated += 1;
            }
            exts.push(Ext { vol: pe.l_offset, dev: pe.p_offset, len: avail, member: mi });
        }
    }
    if beyond > 0 {
        notes.push(format!("{beyond} PEs lie past the volume size {size:#x} and are ignored"));
    }
    if past_end > 0 {
        notes.push(format!("{past_end} PEs lie past the end of their device (truncated image?); read as zeros"));
    }
    if truncated > 0 {
        notes.push(format!("{truncated} PEs are cut short by the end of their device (truncated image?)"));
    }

    // Lay out by volume offset; on overlap the earlier extent wins; merge contiguous runs.
    exts.sort_by_key(|e| (e.vol, e.member, e.dev));
    let mut laid: Vec<Ext> = Vec::new();
    let mut pos = 0u64;
    let mut overlaps = 0u64;
    for mut e in exts {
        if e.vol < pos {
            overlaps += 1;
            let cut = pos - e.vol;
            if cut >= e.len {
                continue;
            }
            e.vol = pos;
            e.dev += cut;
            e.len -= cut;
        }
        pos = e.vol + e.len;
        if let Some(last) = laid.last_mut()
            && last.member == e.member
            && last.vol + last.len == e.vol
            && last.dev.checked_add(last.len) == Some(e.dev)
        {
            last.len += e.len;
            continue;
        }
        laid.push(e);
    }
    if overlaps > 0 {
        notes.push(format!("{overlaps} PEs overlap others in the volume; the lower one in volume order is used"));
    }

    // Gaps, and volume order of devices and unexplained gaps.
    let mut gaps = Vec::new();
    let mut pos = 0u64;
    for e in &laid {
        if e.vol > pos {
            gaps.push(pos..e.vol);
        }
        pos = e.vol + e.len;
    }
    if pos < size {
        gaps.push(pos..size);
    }
    let mut slots: Vec<(u64, Slot)> = Vec::new();
    for (mi, _) in members.iter().enumerate() {
        if let Some(first) = laid.iter().find(|e| e.member == mi) {
            slots.push((first.vol, Slot::Device(mi)));
        }
    }
    for g in &gaps {
        // A gap inside the range a present device claims is a hole in that device, not a
        // missing device.
        match members.iter().position(|m| desc(m).claimed_range().is_some_and(|r| r.start <= g.start && g.end <= r.end))
        {
            Some(mi) => {
                let m = &members[mi];
                notes.push(format!(
                    "volume bytes {:#x}..{:#x}: device {} ({}) claims them but has no PE for them (PE table damaged?); read as zeros",
                    g.start,
                    g.end,
                    dev(m).dev_uuid(),
                    dev(m).name()
                ));
            }
            None => slots.push((g.start, Slot::Gap(g.clone()))),
        }
    }
    slots.sort_by_key(|(start, _)| *start);
    let total = u64::from(num_devs).max(u64::try_from(slots.len()).unwrap_or(u64::MAX));
    let present = slots.iter().filter(|(_, s)| matches!(s, Slot::Device(_))).count();
    let missing_slots = slots.len() - present;
    for (n, (_, slot)) in slots.iter().enumerate() {
        if let Slot::Gap(g) = slot {
            notes.push(format!(
                "device {} of {total} missing: volume bytes {:#x}..{:#x} read as zeros",
                n + 1,
                g.start,
                g.end
            ));
        }
    }
    let accounted = u64::try_from(present + missing_slots).unwrap_or(u64::MAX);
    if u64::from(num_devs) > accounted {
        notes.push(format!(
            "the volume names {num_devs} devices; {present} found and {missing_slots} gaps account for {accounted}"
        ));
    }

    // ESXi's device names: the SD table of the device holding the first extent, else any.
    let device_names = members
        .iter()
        .filter(|m| !dev(m).device_names.is_empty())
        .min_by_key(|m| desc(m).first_pe)
        .map(|m| dev(m).device_names.clone())
        .unwrap_or_default();

    let mut parts = Vec::new();
    let mut pieces = Vec::new();
    for (n, (_, slot)) in slots.iter().enumerate() {
        let Slot::Device(mi) = slot else { continue };
        parts.push(part_info(dev(&members[*mi]), *mi, &laid, &device_names, n));
    }
    for (mi, m) in members.iter().enumerate() {
        if !laid.iter().any(|e| e.member == mi) {
            notes.push(format!("device {} ({}) holds no PE of this volume", dev(m).dev_uuid(), dev(m).name()));
            parts.push(part_info(dev(m), mi, &laid, &device_names, usize::MAX));
        }
    }
    for e in &laid {
        let src = Arc::clone(&devs[members[e.member].dev].source);
        pieces.push(Piece { offset: e.vol, len: e.len, src: Some((src, e.dev)) });
    }
    for g in &gaps {
        pieces.push(Piece { offset: g.start, len: g.end - g.start, src: None });
    }
    let source: Source = Arc::new(Concat::new(format!("LVM volume {name}"), pieces, size));
    LogicalVolume {
        uuid,
        snap_id,
        name,
        size,
        source,
        parts,
        missing: merge_ranges(gaps),
        notes,
        lvm_major,
        device_names,
        state: Some(best_desc.state),
    }
}

/// The [`PartInfo`] of member `mi`, the `slot`-th device in volume order.
fn part_info(d: &LvmDevice, mi: usize, laid: &[Ext], device_names: &[String], slot: usize) -> PartInfo {
    // Match the SD name by the disk id's serial (first word of SCSI_DiskId.id, e.g. QM00013),
    // else by position.
    let id = d.header.disk_id.id();
    let serial = id.split_whitespace().next().unwrap_or("");
    let by_serial = (serial.len() >= 4).then(|| device_names.iter().find(|n| n.contains(serial))).flatten();
    let device_name = by_serial.or_else(|| device_names.get(slot)).cloned().unwrap_or_else(|| d.name());
    PartInfo {
        device_name,
        source_name: d.name(),
        dev_uuid: d.dev_uuid(),
        device_offset: d.disk_offset,
        runs: laid.iter().filter(|e| e.member == mi).map(|e| (e.vol, e.dev, e.len)).collect(),
    }
}

fn empty_volume(uuid: VmwareUuid, snap_id: u32) -> LogicalVolume {
    LogicalVolume {
        uuid,
        snap_id,
        name: uuid.to_string(),
        size: 0,
        source: Arc::new(Concat::new(format!("LVM volume {uuid}"), Vec::new(), 0)),
        parts: Vec::new(),
        missing: Vec::new(),
        notes: Vec::new(),
        lvm_major: 0,
        device_names: Vec::new(),
        state: None,
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
mod tests {
    use super::super::forge::{DevSpec, PE, marker};
    use super::*;

    fn open(spec: &DevSpec, name: &str) -> LvmDevice {
        LvmDevice::open(spec.source(name), 0).unwrap()
    }

    fn span(n: u64, present: &[u64]) -> Vec<LvmDevice> {
        present.iter().map(|&k| open(&DevSpec::span(5, k, n), &format!("span-{k}"))).collect()
    }

    #[test]
    fn one_device() {
        let vols = assemble(vec![open(&DevSpec::simple(6), "lvm6.img")]);
        assert_eq!(vols.len(), 1);
        let v = &vols[0];
        assert_eq!(v.uuid, VmwareUuid([9; 16]));
        assert_eq!((v.name.as_str(), v.size, v.lvm_major), ("lv", 2 * PE, 6));
        assert_eq!(v.runs(), vec![(0, 0x110_0000, 2 * PE)], "contiguous PEs merge into one run");
        assert!(v.missing.is_empty() && v.notes.is_empty(), "{:?}", v.notes);
        assert_eq!(v.parts[0].device_name, "t10.ATA_____QEMU_HARDDISK___QM00007_____:1");
        assert_eq!(v.parts[0].source_name, "lvm6.img");
        assert_eq!(marker(&*v.source, PE), PE);
        assert_eq!(marker(&*v.source, 2 * PE - 512), 2 * PE - 512);
        assert_eq!(v.state, Some(VolState::Normal));
    }

    #[test]
    fn devices_in_any_order_assemble_the_same() {
        let a = assemble(span(3, &[0, 1, 2]));
        let b = assemble(span(3, &[2, 0, 1]));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].parts, b[0].parts);
        assert_eq!(a[0].runs(), vec![(0, 0x110_0000, PE), (PE, 0x110_0000, PE), (2 * PE, 0x110_0000, PE)]);
        assert_eq!(
            a[0].parts.iter().map(|p| p.device_name.as_str()).collect::<Vec<_>>(),
            vec!["t10.QM00009:1", "t10.QM00011:1", "t10.QM00013:1"]
        );
        for v in [&a[0], &b[0]] {
            for k in 0..3 {
                assert_eq!(marker(&*v.source, k * PE), k * PE);
            }
            assert!(v.missing.is_empty());
        }
    }

    #[test]
    fn a_missing_device_reads_as_zeros_and_is_reported() {
        let v = &assemble(span(3, &[2, 0]))[0];
        assert_eq!(v.missing, vec![PE..2 * PE]);
        assert_eq!(
            v.notes,
            vec![format!("device 2 of 3 missing: volume bytes {:#x}..{:#x} read as zeros", PE, 2 * PE)]
        );
        assert_eq!(marker(&*v.source, PE), 0);
        assert_eq!(marker(&*v.source, 2 * PE), 2 * PE);
        assert_eq!(v.source.unreadable(0..3 * PE), vec![PE..2 * PE]);
        assert_eq!(v.size, 3 * PE);

        let v = &assemble(span(2, &[1]))[0];
        assert_eq!(v.missing, vec![0..PE]);
        assert_eq!(v.notes, vec![format!("device 1 of 2 missing: volume bytes 0x0..{:#x} read as zeros", PE)]);
        assert_eq!(v.parts.len(), 1);
        assert_eq!(v.parts[0].runs, vec![(PE, 0x110_0000, PE)]);
    }

    #[test]
    fn a_device_found_twice_is_used_once() {
        let mut devs = span(2, &[0, 1]);
        devs.push(open(&DevSpec::span(5, 1, 2), "span-1-again"));
        let v = &assemble(devs)[0];
        assert_eq!(v.parts.len(), 2);
        assert!(v.notes.iter().any(|n| n.contains("found twice")), "{:?}", v.notes);
        assert!(v.missing.is_empty());
    }

    #[test]
    fn overlapping_and_out_of_range_pes_are_cut_and_noted() {
        let mut spec = DevSpec::simple(5);
        spec.pes = vec![(0, 0x110_0000, PE), (PE / 2, 0x110_0000 + PE, PE), (4 * PE, 0x110_0000, PE)];
        let v = &assemble(vec![open(&spec, "d")])[0];
        assert_eq!(v.runs(), vec![(0, 0x110_0000, PE), (PE, 0x110_0000 + PE + PE / 2, PE / 2)]);
        assert!(v.notes.iter().any(|n| n.contains("overlap")), "{:?}", v.notes);
        assert!(v.notes.iter().any(|n| n.contains("past the volume size")), "{:?}", v.notes);
        // The tail the overlap left uncovered is a hole in the device, not a missing device.
        assert_eq!(v.missing, vec![PE + PE / 2..2 * PE]);
        assert!(v.notes.iter().any(|n| n.contains("claims them but has no PE")), "{:?}", v.notes);
    }

    #[test]
    fn a_truncated_device_keeps_what_it_has() {
        let mut spec = DevSpec::simple(5);
        spec.len = 0x110_0000 + PE + PE / 2;
        let v = &assemble(vec![open(&spec, "d")])[0];
        assert_eq!(v.runs(), vec![(0, 0x110_0000, PE + PE / 2)]);
        assert_eq!(v.missing, vec![PE + PE / 2..2 * PE]);
        assert!(v.notes.iter().any(|n| n.contains("cut short")), "{:?}", v.notes);
        let mut buf = vec![1u8; 1024];
        v.source.read_at(2 * PE - 1024, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn devices_of_different_volumes_stay_apart() {
        let mut other = DevSpec::simple(5);
        other.lv_uuid = 7;
        other.dev_uuid = 3;
        other.name = "other";
        let vols = assemble(vec![open(&DevSpec::simple(5), "a"), open(&other, "b")]);
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[0].name, "lv");
        assert_eq!(vols[1].name, "other");
    }

    #[test]
    fn newer_generation_decides_the_size() {
        let mut a = DevSpec::span(5, 0, 2);
        a.vol_size = PE; // stale descriptor from before the volume grew
        a.generation = 1;
        let mut b = DevSpec::span(5, 1, 2);
        b.generation = 2;
        let v = &assemble(vec![open(&a, "a"), open(&b, "b")])[0];
        assert_eq!(v.size, 2 * PE);
        assert!(v.notes.iter().any(|n| n.contains("generation 1")), "{:?}", v.notes);
    }

    #[test]
    fn raw_volume() {
        let spec = DevSpec::simple(5);
        let disk = spec.source("disk.img");
        let c = Candidate {
            offset: 0x110_0000,
            len: PE,
            kind: crate::container::CandidateKind::RawVolume,
            how: "probe".into(),
        };
        let v = LogicalVolume::raw(&disk, &c);
        assert!(!v.is_lvm());
        assert_eq!(v.size, PE);
        assert_eq!(marker(&*v.source, 0), 0);
        assert_eq!(marker(&*v.source, PE - 512), PE - 512);
        assert!(v.uuid.is_nil());
    }
}
