//! Where a VMFS volume may start on one source: partitions of the table, the whole source (a
//! partition image or a raw logical-volume image), and a bounded probe for starts the table
//! does not show (table lost, wrong, or never there).
//!
//! Signatures (format reference §14.2):
//! - an LVM device has `LVM_DevMetadata` (magic 0xC001D00D, major 3..=6, a device UUID and a
//!   data offset past the header) at +0x100000;
//! - a raw logical volume has the FS3 descriptor magic 0x2FABF15E / 0x2FABF15F at +0x200000;
//! - an LVM device whose header is gone still has the FS3 descriptor at +0x1300000 when its
//!   data starts at the usual 0x1100000.
//!
//! The probe is a few small reads, never a scan of the device: one sector per partition, one
//! 128 KiB window for starts below 128 KiB (LBA 63, 64, 128 on 512-byte sectors, 8 and 16 on
//! 4 KiB sectors), a few well-known starts, and — only when the table gives nothing usable —
//! one sector per MiB boundary and per cylinder boundary up to [`ProbeOptions::coarse_limit`].

use super::lvm::ondisk::{LVM_DEV_HEADER_OFFSET, LVM_MAGIC, LvmDeviceHeader};
use super::partition::{PartitionTable, read_partition_table};
use crate::block::{BlockSource, Source, read_vec};
use crate::le::u32_at;
use std::collections::BTreeMap;

/// FS3 descriptor magic of VMFS (`VMFS_FS_MAGIC`).
pub const FS3_MAGIC_VMFS: u32 = 0x2FAB_F15E;
/// FS3 descriptor magic of VMFS-L.
pub const FS3_MAGIC_VMFS_L: u32 = 0x2FAB_F15F;
/// Volume offset of the FS3 descriptor (`FS3_FS_HEADER_OFFSET`).
pub const FS3_DESCRIPTOR_OFFSET: u64 = 0x20_0000;
/// `dataOffset` of every LVM device seen: where the volume starts when the header is lost.
pub const USUAL_DATA_OFFSET: u64 = 0x110_0000;
/// One MiB.
pub const MIB: u64 = 1 << 20;
/// Bytes of one CHS cylinder (255 heads × 63 sectors × 512): old MBR partitions start on these.
pub const CYLINDER: u64 = 255 * 63 * 512;
/// Starts below this are covered by one window read at +0x100000 (and one at +0x200000).
pub const FINE_WINDOW: u64 = 128 << 10;
/// Well-known starts above the fine window: LBA 2048 (512 B), LBA 63/128/256 (4 KiB).
pub const KNOWN_STARTS: [u64; 3] = [63 * 4096, 128 * 4096, MIB];

/// How far the probe goes when the partition table gives nothing usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoarseScan {
    /// Only when there is no table, the table is damaged, or none of its partitions holds a
    /// volume — and the source is not itself a device or volume image.
    Auto,
    /// Always (e.g. to find a partition a wrong table does not list).
    Always,
    /// Never.
    Never,
}

/// Limits of the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// When to read one sector per MiB and per cylinder boundary.
    pub coarse: CoarseScan,
    /// The coarse probe covers starts below this offset (default 64 GiB: 65536 + 16000 sector reads).
    pub coarse_limit: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self { coarse: CoarseScan::Auto, coarse_limit: 64 << 30 }
    }
}

/// What a candidate holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandidateKind {
    /// An LVM device: `LVM_DevMetadata` at +0x100000 (or a VMFS partition where it should be).
    LvmDevice,
    /// A logical volume without LVM metadata: the FS3 descriptor at +0x200000.
    RawVolume,
}

/// A place where a VMFS volume (or one of its LVM devices) may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Byte offset on the source.
    pub offset: u64,
    /// Bytes from `offset` that belong to it (the partition, or the rest of the source).
    pub len: u64,
    /// What was found there.
    pub kind: CandidateKind,
    /// How it was found: `GPT partition 1 (VMFS)`, `MBR partition 2 type 0xfb`, `whole device`,
    /// `probe at 0x7e00`.
    pub how: String,
}

/// Everything the probe of one source found.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The partition table, if any.
    pub table: Option<PartitionTable>,
    /// Candidates, deduplicated and sorted by offset.
    pub candidates: Vec<Candidate>,
    /// Report lines (table damage, probe extent).
    pub notes: Vec<String>,
}

/// Every place a VMFS volume may start on `src`, with the default [`ProbeOptions`].
pub fn find_candidates(src: &Source) -> Vec<Candidate> {
    probe(src, &ProbeOptions::default()).candidates
}

/// Probe `src` for candidates; see the module documentation.
pub fn probe(src: &Source, opts: &ProbeOptions) -> Probe {
    let s: &dyn BlockSource = &**src;
    let mut found = Found::default();
    let mut notes = Vec::new();
    let table = match read_partition_table(s) {
        Ok(t) => t,
        Err(e) => {
            notes.push(format!("partition table: {e}"));
            None
        }
    };

    // 1. Partitions.
    let mut table_hits = 0usize;
    if let Some(t) = &table {
        notes.extend(t.notes.iter().map(|n| format!("partition table: {n}")));
        for p in &t.partitions {
            let how = p.describe();
            match look(s, p.start) {
                Some(CandidateKind::LvmDevice) => {
                    // A partition smaller than the device its header describes: the table is
                    // wrong (or stale); the LVM device's own size decides, bounded by the disk.
                    let total = lvm_total_bytes(s, p.start).unwrap_or(0);
                    let rest = s.len().saturating_sub(p.start);
                    if total > p.len {
                        let len = total.min(rest);
                        let how = format!("{how} (the LVM device there is larger: {len:#x} bytes used)");
                        found.add(p.start, len, CandidateKind::LvmDevice, how);
                    } else {
                        found.add(p.start, p.len, CandidateKind::LvmDevice, how);
                    }
                    table_hits += 1;
                }
                Some(CandidateKind::RawVolume) => {
                    found.add(p.start, p.len, CandidateKind::RawVolume, format!("{how} (raw logical volume)"));
                    table_hits += 1;
                }
                None if p.is_vmfs() => {
                    let vol = p.start.checked_add(USUAL_DATA_OFFSET);
                    if let Some(v) = vol.filter(|&v| v.checked_add(FS3_DESCRIPTOR_OFFSET).is_some_and(|o| fs3_at(s, o)))
                    {
                        found.add(
                            v,
                            p.len.saturating_sub(USUAL_DATA_OFFSET),
                            CandidateKind::RawVolume,
                            format!(
                                "{how}: LVM header lost, FS3 descriptor at +0x1300000 (assuming dataOffset 0x1100000)"
                            ),
                        );
                        table_hits += 1;
                    } else {
                        // Listed so that opening it reports what is wrong with the header.
                        found.add(p.start, p.len, CandidateKind::LvmDevice, format!("{how} (no LVM header found)"));
                    }
                }
                None => {}
            }
        }
    }

    // 2. The whole source: a partition image, or a raw logical-volume image.
    let whole = look(s, 0);
    match whole {
        Some(CandidateKind::LvmDevice) => found.add(0, s.len(), CandidateKind::LvmDevice, "whole device".into()),
        Some(CandidateKind::RawVolume) => {
            found.add(0, s.len(), CandidateKind::RawVolume, "whole device (raw logical volume)".into())
        }
        None => {}
    }

    // 3. Small starts (LBA 0..255 at 512 B, 0..31 at 4 KiB) in one window each, then known starts.
    let damaged = table.as_ref().is_none_or(|t| t.damaged);
    if whole.is_none() {
        match &table {
            None => notes.push("no partition table: searching for VMFS volumes by probing".into()),
            Some(t) if t.damaged => notes.push("partition table damaged: searching for VMFS volumes by probing".into()),
            _ => {}
        }
    }
    if whole.is_none() && (damaged || table_hits == 0 || opts.coarse == CoarseScan::Always) {
        fine_probe(s, &mut found);
        for start in KNOWN_STARTS {
            if let Some(kind) = look(s, start) {
                found.add(start, s.len().saturating_sub(start), kind, format!("probe at {start:#x}"));
            }
        }
    }

    // 4. Coarse probe: MiB and cylinder boundaries, bounded.
    let coarse = match opts.coarse {
        CoarseScan::Always => true,
        CoarseScan::Never => false,
        CoarseScan::Auto => whole.is_none() && (damaged || table_hits == 0),
    };
    if coarse {
        let reads = coarse_probe(s, opts.coarse_limit, &mut found);
        notes.push(format!("probed {reads} sectors for volume starts below {:#x}", opts.coarse_limit.min(s.len())));
    }

    Probe { table, candidates: found.into_vec(), notes }
}

/// Candidates by offset; the first one found at an offset wins (table, then whole, then probe).
#[derive(Default)]
struct Found(BTreeMap<u64, Candidate>);

impl Found {
    fn add(&mut self, offset: u64, len: u64, kind: CandidateKind, how: String) {
        self.0.entry(offset).or_insert(Candidate { offset, len, kind, how });
    }
    fn has_lvm(&self, offset: u64) -> bool {
        self.0.get(&offset).is_some_and(|c| c.kind == CandidateKind::LvmDevice)
    }
    fn into_vec(self) -> Vec<Candidate> {
        self.0.into_values().collect()
    }
}

/// What starts at `start`: an LVM device, a raw volume, or nothing recognisable.
fn look(s: &dyn BlockSource, start: u64) -> Option<CandidateKind> {
    if start.checked_add(LVM_DEV_HEADER_OFFSET).is_some_and(|o| lvm_at(s, o)) {
        Some(CandidateKind::LvmDevice)
    } else if start.checked_add(FS3_DESCRIPTOR_OFFSET).is_some_and(|o| fs3_at(s, o)) {
        Some(CandidateKind::RawVolume)
    } else {
        None
    }
}

/// `totalBytes` of the LVM header of a device starting at `start`.
fn lvm_total_bytes(s: &dyn BlockSource, start: u64) -> Option<u64> {
    let b = sector(s, start.checked_add(LVM_DEV_HEADER_OFFSET)?)?;
    LvmDeviceHeader::parse(&b).ok().map(|h| h.total_bytes)
}

/// One sector at `off`, or `None` past the end (or on an error).
fn sector(s: &dyn BlockSource, off: u64) -> Option<Vec<u8>> {
    off.checked_add(512).filter(|&e| e <= s.len())?;
    read_vec(s, off, 512).ok()
}

/// Whether a plausible `LVM_DevMetadata` is at `off`.
fn lvm_at(s: &dyn BlockSource, off: u64) -> bool {
    sector(s, off).is_some_and(|b| is_lvm_header(&b))
}

fn is_lvm_header(b: &[u8]) -> bool {
    u32_at(b, 0) == Some(LVM_MAGIC) && LvmDeviceHeader::parse(b).is_ok_and(|h| h.is_plausible())
}

/// Whether an FS3 descriptor magic (with a sane major version) is at `off`.
fn fs3_at(s: &dyn BlockSource, off: u64) -> bool {
    sector(s, off).is_some_and(|b| is_fs3(&b))
}

fn is_fs3(b: &[u8]) -> bool {
    matches!(u32_at(b, 0), Some(FS3_MAGIC_VMFS | FS3_MAGIC_VMFS_L))
        && u32_at(b, 4).is_some_and(|v| (1..=255).contains(&v))
}

/// Every 512-byte start below [`FINE_WINDOW`]: one window read at +0x100000 (LVM) and one at
/// +0x200000 (raw volume).
fn fine_probe(s: &dyn BlockSource, found: &mut Found) {
    let win = usize::try_from(FINE_WINDOW).unwrap_or(0);
    for (base, lvm) in [(LVM_DEV_HEADER_OFFSET, true), (FS3_DESCRIPTOR_OFFSET, false)] {
        let len = s.len().saturating_sub(base).min(FINE_WINDOW);
        let Ok(buf) = read_vec(s, base, usize::try_from(len).unwrap_or(0).min(win)) else { continue };
        for (i, b) in buf.chunks_exact(512).enumerate() {
            let start = u64::try_from(i).unwrap_or(0).saturating_mul(512);
            let hit = if lvm { is_lvm_header(b) } else { is_fs3(b) && !found.has_lvm(start) };
            if hit && start > 0 {
                let kind = if lvm { CandidateKind::LvmDevice } else { CandidateKind::RawVolume };
                found.add(start, s.len().saturating_sub(start), kind, format!("probe at {start:#x}"));
            }
        }
    }
}

/// One sector per MiB boundary (LVM header → device at −1 MiB; FS3 → raw volume at −2 MiB,
/// unless it is the FS3 descriptor of a device already found) and per cylinder boundary (and
/// cylinder + 63 sectors) below `limit`. Returns the number of sectors read.
fn coarse_probe(s: &dyn BlockSource, limit: u64, found: &mut Found) -> u64 {
    let end = limit.min(s.len());
    let mut reads = 0u64;
    let mut k = MIB;
    let mut cyl = 0u64;
    loop {
        // Next start to look at, from two increasing streams: MiB starts and cylinder starts
        // (each cylinder c gives c·CYL and c·CYL + 63 sectors).
        let c_start = (cyl / 2) * CYLINDER + (cyl % 2) * 63 * 512;
        let (start, mib) = if k <= c_start { (k - MIB, true) } else { (c_start, false) };
        if start >= end {
            break;
        }
        if mib {
            k += MIB;
        } else {
            cyl += 1;
        }
        if start % MIB == 0 && !mib && start != 0 {
            continue; // the MiB stream covers it
        }
        if start == 0 {
            continue; // the whole-device look covered it
        }
        let Some(hdr_off) = start.checked_add(LVM_DEV_HEADER_OFFSET) else { break };
        let Some(b) = sector(s, hdr_off) else { break };
        reads += 1;
        if is_lvm_header(&b) {
            found.add(start, s.len() - start, CandidateKind::LvmDevice, format!("probe at {start:#x}"));
        } else if mib && start >= MIB && is_fs3(&b) {
            // FS3 at `hdr_off` = raw volume start + 0x200000.
            let vol = hdr_off - FS3_DESCRIPTOR_OFFSET;
            let device = hdr_off.checked_sub(USUAL_DATA_OFFSET + FS3_DESCRIPTOR_OFFSET);
            if !device.is_some_and(|d| found.has_lvm(d)) {
                found.add(vol, s.len() - vol, CandidateKind::RawVolume, format!("probe at {vol:#x} (FS3 descriptor)"));
            }
        }
    }
    reads
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;
    use crate::container::lvm::forge::{DevSpec, PE, SparseSource};
    use crate::container::partition::{GPT_TYPE_VMFS, Guid, MBR_TYPE_VMFS, gpt_regions};
    use crate::le::put_u32;
    use std::sync::Arc;

    /// A sparse disk of `len` bytes with `devices` at their offsets and `extra` regions.
    pub(crate) fn disk(name: &str, len: u64, devices: &[(u64, &DevSpec)], extra: Vec<(u64, Vec<u8>)>) -> Source {
        let mut regions = std::collections::BTreeMap::new();
        for (at, spec) in devices {
            for (off, b) in spec.regions() {
                regions.insert(at + off, b);
            }
        }
        regions.extend(extra);
        Arc::new(SparseSource { name: name.into(), len, regions })
    }

    fn mbr(entries: &[(u8, u32, u32)]) -> (u64, Vec<u8>) {
        let mut m = vec![0u8; 512];
        for (i, &(t, lba, n)) in entries.iter().enumerate() {
            m[0x1BE + 16 * i + 4] = t;
            put_u32(&mut m, 0x1BE + 16 * i + 8, lba);
            put_u32(&mut m, 0x1BE + 16 * i + 12, n);
        }
        m[0x1FE] = 0x55;
        m[0x1FF] = 0xAA;
        (0, m)
    }

    fn summary(c: &[Candidate]) -> Vec<(u64, CandidateKind, &str)> {
        c.iter().map(|c| (c.offset, c.kind, c.how.as_str())).collect()
    }

    const DEV_LEN: u64 = 0x110_0000 + 2 * PE;

    #[test]
    fn gpt_partition() {
        let spec = DevSpec::simple(5);
        let len = (1 << 20) + DEV_LEN + (1 << 20);
        let table = gpt_regions(len, 512, Guid([7; 16]), &[(GPT_TYPE_VMFS, 2048, 2048 + DEV_LEN / 512 - 1)]);
        let src = disk("disk.img", len, &[(1 << 20, &spec)], table);
        let p = probe(&src, &ProbeOptions::default());
        assert_eq!(
            summary(&p.candidates),
            vec![(1 << 20, CandidateKind::LvmDevice, "GPT partition 1 (VMFS \"vmfs\")")]
        );
        assert_eq!(p.candidates[0].len, DEV_LEN);
        assert!(p.notes.is_empty(), "healthy table: no probe, no notes: {:?}", p.notes);
    }

    #[test]
    fn mbr_partition_at_lba_63() {
        let spec = DevSpec::simple(3);
        let len = 0x7E00 + DEV_LEN;
        let src = disk("disk.img", len, &[(0x7E00, &spec)], vec![mbr(&[(MBR_TYPE_VMFS, 63, (DEV_LEN / 512) as u32)])]);
        let c = find_candidates(&src);
        assert_eq!(summary(&c), vec![(0x7E00, CandidateKind::LvmDevice, "MBR partition 1 type 0xfb")]);
    }

    #[test]
    fn lost_table_odd_start_is_found_by_the_fine_probe() {
        for start in [63 * 512, 64 * 512, 128 * 512, 8 * 4096, 63 * 4096, 256 * 4096] {
            let spec = DevSpec::simple(6);
            let src = disk("disk.img", start + DEV_LEN, &[(start, &spec)], vec![]);
            let c = find_candidates(&src);
            assert_eq!(summary(&c), vec![(start, CandidateKind::LvmDevice, format!("probe at {start:#x}").as_str())]);
            assert_eq!(c[0].len, DEV_LEN);
        }
    }

    #[test]
    fn lost_table_two_partitions_are_found_by_the_coarse_probe() {
        let a = DevSpec::simple(5);
        let mut b = DevSpec::span(5, 1, 2);
        b.dev_uuid = 77;
        let second = 2 * DEV_LEN.next_multiple_of(MIB);
        let cyl = 300 * CYLINDER + 63 * 512;
        let c_dev = DevSpec::simple(3);
        let len = cyl + DEV_LEN;
        let src = disk("disk.img", len, &[(MIB, &a), (second, &b), (cyl, &c_dev)], vec![]);
        let p = probe(&src, &ProbeOptions::default());
        assert_eq!(
            summary(&p.candidates),
            vec![
                (MIB, CandidateKind::LvmDevice, "probe at 0x100000"),
                (second, CandidateKind::LvmDevice, format!("probe at {second:#x}").as_str()),
                (cyl, CandidateKind::LvmDevice, format!("probe at {cyl:#x}").as_str()),
            ]
        );
        assert!(p.notes.iter().any(|n| n.starts_with("probed ")), "{:?}", p.notes);
        // Bounded: with a limit below the second start, only the first is found.
        let p = probe(&src, &ProbeOptions { coarse: CoarseScan::Auto, coarse_limit: second });
        assert_eq!(p.candidates.len(), 1);
    }

    #[test]
    fn whole_device_and_raw_volume_images() {
        let spec = DevSpec::simple(5);
        let src = disk("part.img", DEV_LEN, &[(0, &spec)], vec![]);
        let p = probe(&src, &ProbeOptions::default());
        assert_eq!(summary(&p.candidates), vec![(0, CandidateKind::LvmDevice, "whole device")]);
        assert!(p.notes.is_empty(), "a device image needs no probe: {:?}", p.notes);

        let mut fs3 = vec![0u8; 512];
        put_u32(&mut fs3, 0, FS3_MAGIC_VMFS_L);
        put_u32(&mut fs3, 4, 24);
        let src = disk("lv.img", 64 << 20, &[], vec![(FS3_DESCRIPTOR_OFFSET, fs3)]);
        let p = probe(&src, &ProbeOptions::default());
        assert_eq!(summary(&p.candidates), vec![(0, CandidateKind::RawVolume, "whole device (raw logical volume)")]);
        assert_eq!(p.candidates[0].len, 64 << 20);
    }

    #[test]
    fn vmfs_partition_whose_lvm_header_is_lost() {
        let mut fs3 = vec![0u8; 512];
        put_u32(&mut fs3, 0, FS3_MAGIC_VMFS);
        put_u32(&mut fs3, 4, 14);
        let start = MIB;
        let len = start + DEV_LEN;
        let src = disk(
            "disk.img",
            len,
            &[],
            vec![mbr(&[(MBR_TYPE_VMFS, 2048, (DEV_LEN / 512) as u32)]), (start + 0x130_0000, fs3)],
        );
        let c = find_candidates(&src);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].offset, c[0].kind), (start + USUAL_DATA_OFFSET, CandidateKind::RawVolume));
        assert!(c[0].how.starts_with("MBR partition 1 type 0xfb: LVM header lost"), "{}", c[0].how);

        // Nothing at all: the VMFS partition is still listed, and opening it says why it fails.
        let src = disk("disk.img", len, &[], vec![mbr(&[(MBR_TYPE_VMFS, 2048, (DEV_LEN / 512) as u32)])]);
        let c = find_candidates(&src);
        assert_eq!(
            summary(&c),
            vec![(MIB, CandidateKind::LvmDevice, "MBR partition 1 type 0xfb (no LVM header found)")]
        );
        let d = crate::container::discover(&[src]);
        assert!(d.volumes.is_empty());
        assert!(
            d.notes.iter().any(|n| n.ends_with(
                "corrupt LVM_DevMetadata at device offset 0x100000 of disk.img@0x100000: bad magic 0x00000000"
            )),
            "{:?}",
            d.notes
        );
    }

    #[test]
    fn wrong_table_does_not_hide_a_volume() {
        // The table lists one Linux partition; the VMFS device sits elsewhere.
        let spec = DevSpec::simple(5);
        let at = 256 * MIB;
        let len = at + DEV_LEN;
        let src = disk("disk.img", len, &[(at, &spec)], vec![mbr(&[(0x83, 2048, 1000)])]);
        let c = find_candidates(&src);
        assert_eq!(summary(&c), vec![(at, CandidateKind::LvmDevice, "probe at 0x10000000")]);
    }

    #[test]
    fn extended_metadata_magic_is_not_a_device() {
        // An LVM_ExtDevMetadata sector has the magic but no plausible header fields.
        let x = crate::container::lvm::ExtDevMetadata { num_pe_maps: 5, data_offset: 0x210_0000, next_offset: 0 };
        let src = disk("disk.img", 64 << 20, &[], vec![(3 * MIB, x.encode().to_vec())]);
        assert!(find_candidates(&src).is_empty());
    }

    #[test]
    fn tiny_and_empty_sources() {
        for len in [0u64, 100, 512, 4096, MIB + 100] {
            let src = disk("tiny", len, &[], vec![]);
            assert!(find_candidates(&src).is_empty());
        }
    }
}
