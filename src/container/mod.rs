//! Containers: partition tables, lost-partition probe and VMware LVM.
//!
//! [`discover`] takes every source (disks, partition images, LV images) and returns the logical
//! volumes VMFS can be opened on:
//! 1. [`probe`] finds candidates on each source: partitions of the MBR/GPT ([`partition`]), the
//!    whole source, and a bounded probe for starts a lost or wrong table does not show;
//! 2. each LVM candidate is opened as an [`LvmDevice`] (a [`Slice`](crate::block::Slice) of its
//!    disk), each raw candidate becomes a [`LogicalVolume`] as it is;
//! 3. [`assemble()`] groups the devices of all sources into volumes, whatever their order, and
//!    reads what a missing device held as zeros, reported per volume.
//!
//! This layer knows the FS3 descriptor's magic number and nothing else of VMFS.

pub mod error;
pub mod lvm;
pub mod partition;
pub mod probe;

pub use error::{CorruptKind, Error, Space};
pub use lvm::{LogicalVolume, LvmDevice, PartInfo, assemble};
pub use partition::{Partition, PartitionTable, read_partition_table};
pub use probe::{Candidate, CandidateKind, Probe, ProbeOptions, find_candidates};

use crate::block::Source;

/// What [`discover`] found over a set of sources.
#[derive(Debug, Default)]
pub struct Discovery {
    /// LVM volumes (in order of first device seen), then raw volumes (in source order).
    pub volumes: Vec<LogicalVolume>,
    /// Report lines that belong to no single volume: table damage, devices that failed to open.
    pub notes: Vec<String>,
}

/// Find every logical volume on `sources` with the default [`ProbeOptions`].
pub fn discover(sources: &[Source]) -> Discovery {
    discover_with(sources, &ProbeOptions::default())
}

/// Find every logical volume on `sources`: probe each, open the LVM candidates, assemble them
/// across sources, and add the raw volumes.
pub fn discover_with(sources: &[Source], opts: &ProbeOptions) -> Discovery {
    let mut notes = Vec::new();
    let mut devices = Vec::new();
    let mut raw = Vec::new();
    for src in sources {
        let p = probe::probe(src, opts);
        let name = src.name();
        notes.extend(p.notes.iter().map(|n| format!("{name}: {n}")));
        if p.candidates.is_empty() {
            notes.push(format!("{name}: no LVM device or VMFS volume found"));
        }
        for c in &p.candidates {
            match c.kind {
                CandidateKind::LvmDevice => match LvmDevice::open_candidate(src, c) {
                    Ok(d) => devices.push(d),
                    Err(e) => notes.push(format!("{name}: {}: {e}", c.how)),
                },
                CandidateKind::RawVolume => raw.push(LogicalVolume::raw(src, c)),
            }
        }
    }
    let mut volumes = assemble(devices);
    volumes.extend(raw);
    Discovery { volumes, notes }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::indexing_slicing)]
mod tests {
    use super::lvm::forge::{DevSpec, PE, marker};
    use super::probe::tests::disk;
    use super::*;

    #[test]
    fn discover_assembles_across_sources_in_any_order() {
        let len = 0x110_0000 + PE;
        let a = disk("a.img", len, &[(0, &DevSpec::span(6, 0, 2))], vec![]);
        let b = disk("b.img", len, &[(0, &DevSpec::span(6, 1, 2))], vec![]);
        for order in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
            let d = discover(&order);
            assert_eq!(d.volumes.len(), 1, "{:?}", d.notes);
            let v = &d.volumes[0];
            assert_eq!(v.runs(), vec![(0, 0x110_0000, PE), (PE, 0x110_0000, PE)]);
            assert_eq!(v.parts[0].source_name, "a.img@0x0");
            assert_eq!(marker(&*v.source, PE), PE);
            assert!(v.missing.is_empty());
        }
        let d = discover(&[b]);
        assert_eq!(d.volumes[0].missing, vec![0..PE]);
    }

    /// Mutated devices (header, volume table and PE fields set to edge values, extended chains
    /// pointing anywhere) never panic, hang or fail a read; what is found reads to its end.
    #[test]
    fn hostile_fields_never_panic() {
        use super::lvm::ondisk::LVM_DEV_HEADER_OFFSET;
        let (mut volumes, mut notes) = (0, 0);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..300 {
            let spec = DevSpec::simple(3 + (i % 4) as u32);
            let layout = spec.header().layout();
            let mut regions = spec.regions();
            let meta = regions.get_mut(&LVM_DEV_HEADER_OFFSET).unwrap();
            let vt = layout.vol_table as usize;
            let pt = layout.pe_table(0) as usize;
            let spots: Vec<usize> = [0x04, 0x5E, 0x6A, 0x7A, 0xBE, 0xC2, 0xCA, 0xCE]
                .into_iter()
                .chain([0x00, 0x10, 0x64, 0x70, 0x74, 0x78, 0x80, 0x90].map(|o| vt + o))
                .chain([0x00, 0x01, 0x05, 0x09, 0x11, 0x19, 0x80 + 0x09, 0x80 + 0x11, 0x80 + 0x19].map(|o| pt + o))
                .collect();
            for _ in 0..1 + next() % 6 {
                let at = spots[(next() % spots.len() as u64) as usize];
                let v = match next() % 7 {
                    0 => 0,
                    1 => u64::MAX,
                    2 => u64::from(u32::MAX),
                    3 => (next() % 64) << 20,
                    4 => (next() % 4096) << 30,
                    5 => next() % 8,
                    _ => next(),
                };
                let width = if next() % 2 == 0 { 4 } else { 8 };
                let n = width.min(meta.len() - at);
                meta[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
            }
            let src: Source =
                std::sync::Arc::new(super::lvm::forge::SparseSource { name: "fuzz".into(), len: spec.len, regions });
            let d = discover(&[src]);
            volumes += d.volumes.len();
            notes += d.notes.len() + d.volumes.iter().map(|v| v.notes.len()).sum::<usize>();
            for v in &d.volumes {
                let len = v.source.len();
                let mut buf = vec![0u8; 4096];
                for off in [0, len / 2, len.saturating_sub(4096)] {
                    let n = (len - off.min(len)).min(4096) as usize;
                    v.source.read_at(off, &mut buf[..n]).unwrap();
                    let _ = v.source.unreadable(off..off + n as u64);
                }
            }
        }
        // The mutations must reach both outcomes: volumes found, and damage reported.
        assert!(volumes > 50 && notes > 50, "{volumes} volumes, {notes} notes");
    }

    #[test]
    fn discover_reports_sources_without_volumes() {
        let d = discover(&[disk("empty.img", 8 << 20, &[], vec![])]);
        assert!(d.volumes.is_empty());
        assert!(d.notes.iter().any(|n| n == "empty.img: no LVM device or VMFS volume found"), "{:?}", d.notes);
    }
}
