//! Damage to the bytes of a finished datastore: wiped tables and headers, garbage over file
//! descriptors, a lost root directory, unreadable sectors. Each records where it struck and
//! which files it touches.

use super::ForgeError;
use super::disk::{SECTOR, Target};
use super::scenario::{Options, range};
use super::truth::{Truth, TruthDamage, TruthRange};
use super::vmdk::SplitMix64;
use crate::vmfs::ondisk::FS_DESCRIPTOR_OFFSET;
use std::ops::Range;

/// Zero `len` bytes at `off` of disk `i` and return the range.
fn zero(t: &Target, i: usize, off: u64, len: u64) -> Result<TruthRange, ForgeError> {
    let d = &t.disks[i];
    d.zero(off, len)?;
    Ok(range(&super::scenario::file_name(&d.path), off, len))
}

/// Image ranges of volume range `off..off+len`.
fn on_images(t: &Target, off: u64, len: u64) -> Result<Vec<TruthRange>, ForgeError> {
    let mut out = Vec::new();
    t.each_piece(off, len, |d, doff, r| {
        out.push(range(&super::scenario::file_name(&d.path), doff, (r.end - r.start) as u64));
        Ok(())
    })?;
    Ok(out)
}

/// Apply scenario `name`'s byte damage to `t`.
pub fn apply(
    name: &str,
    opts: &Options,
    t: &Target,
    truth: &mut Truth,
    damage: &mut Vec<TruthDamage>,
    bad: &mut Vec<TruthRange>,
) -> Result<(), ForgeError> {
    let p = t.params.clone().ok_or_else(|| ForgeError::Layout("target without parameters".into()))?;
    let all_paths: Vec<String> = truth.files.iter().filter(|f| f.state == "live").map(|f| f.path.clone()).collect();
    let mut rng = SplitMix64::new(opts.seed, 0x6461_6d67);
    match name {
        "no-partition-table" => {
            let mut ranges = Vec::new();
            for (i, d) in t.disks.iter().enumerate() {
                ranges.push(zero(t, i, 0, 34 * SECTOR)?);
                ranges.push(zero(t, i, d.len - 33 * SECTOR, 33 * SECTOR)?);
            }
            damage.push(TruthDamage {
                kind: name.into(),
                description: "protective MBR, primary and backup GPT headers and entry arrays zeroed".into(),
                ranges,
                affects: all_paths,
                reader_reports: vec!["no partition table".into()],
            });
        }
        "no-partition-table-odd-offset" => {
            let ranges = (0..t.disks.len()).map(|i| zero(t, i, 0, SECTOR)).collect::<Result<Vec<_>, _>>()?;
            damage.push(TruthDamage {
                kind: name.into(),
                description: format!(
                    "the MBR of a disk whose VMFS partition started at byte {:#x} (LBA 63) zeroed",
                    t.disks[0].part_off
                ),
                ranges,
                affects: all_paths,
                reader_reports: vec!["no partition table".into()],
            });
        }
        "lvm-header-zeroed" => {
            let d = &t.disks[0];
            let r = zero(t, 0, d.part_off + 0x10_0000, 0x10_0000)?;
            damage.push(TruthDamage {
                kind: name.into(),
                description: "LVM device header, volume table, device names and PE map of the first device zeroed"
                    .into(),
                ranges: vec![r],
                affects: all_paths,
                reader_reports: vec!["LVM header lost".into()],
            });
        }
        "fs-descriptor-zeroed" => {
            let ranges = on_images(t, FS_DESCRIPTOR_OFFSET, 0x1_0000)?;
            t.punch(FS_DESCRIPTOR_OFFSET, 0x1_0000)?;
            damage.push(TruthDamage {
                kind: name.into(),
                description: "the FS3 descriptor at volume offset 0x200000 zeroed".into(),
                ranges,
                affects: all_paths,
                reader_reports: vec!["FS3_Descriptor".into()],
            });
        }
        "fd-cluster-corrupt" => {
            // Garbage over the FDs of everything inside /web01 (not the folder itself).
            let mut ranges = Vec::new();
            let mut affects = Vec::new();
            for f in truth.files.iter_mut().filter(|f| f.path.starts_with("/web01/")) {
                let mut g = vec![0u8; p.geo.fd_size];
                rng.fill(&mut g);
                t.write(f.fd_offset, &g)?;
                ranges.extend(on_images(t, f.fd_offset, p.geo.fd_size as u64)?);
                affects.push(f.path.clone());
                f.state = "unreachable".into();
                // Resident bytes lived in the FD the garbage replaced.
                if f.zla == "0x10d1" && f.size > 0 {
                    f.overwritten = vec![[0, f.size]];
                }
            }
            damage.push(TruthDamage {
                kind: name.into(),
                description: "random bytes over the file descriptors of every file in /web01".into(),
                ranges,
                affects,
                reader_reports: vec!["FS3_FileMetadata".into()],
            });
        }
        "root-dir-lost" => {
            let mut ranges = Vec::new();
            for &b in &t.root_blocks {
                ranges.extend(on_images(t, b * p.geo.fbs, p.geo.fbs)?);
                t.punch(b * p.geo.fbs, p.geo.fbs)?;
            }
            let mut affects = Vec::new();
            for f in truth.files.iter_mut().filter(|f| f.state == "live" && f.path.matches('/').count() == 1) {
                f.state = "orphaned".into();
                affects.push(f.path.clone());
            }
            damage.push(TruthDamage {
                kind: name.into(),
                description: "the root directory's data zeroed; its entries are gone, every FD is intact".into(),
                ranges,
                affects,
                reader_reports: vec![if p.v6() { "FS6_DirHeader" } else { "directory data lost" }.into()],
            });
        }
        "bad-sectors" => {
            let mut pick = |path: &str, what: &str, vol: Range<u64>| -> Result<(), ForgeError> {
                let ranges = on_images(t, vol.start, vol.end - vol.start)?;
                bad.extend(ranges.iter().cloned());
                damage.push(TruthDamage {
                    kind: name.into(),
                    description: format!("unreadable: {what}"),
                    ranges,
                    affects: vec![path.into()],
                    reader_reports: vec!["unreadable".into()],
                });
                Ok(())
            };
            let find = |path: &str| truth.files.iter().find(|f| f.path == path).cloned();
            if let Some(f) = find("/web01/web01.vmx") {
                let m = f.fd_offset + p.geo.meta_off as u64;
                pick(&f.path, "the metadata sector of /web01/web01.vmx's FD", m..m + SECTOR)?;
            }
            if let Some(f) = find("/win01/win01-flat.vmdk")
                && let Some(e) = f.extents.first()
            {
                let s = e[1] + (1 << 20) + 4096;
                pick(&f.path, "4 KiB inside /win01/win01-flat.vmdk", s..s + 4096)?;
            }
            if let Some(f) = find("/web01/web01-flat.vmdk")
                && let Some(e) = f.extents.get(1).or(f.extents.first())
            {
                let s = e[1] + 8192;
                pick(&f.path, "64 KiB inside /web01/web01-flat.vmdk", s..s + 65536)?;
            }
            if let Some(&b) = t.root_blocks.first() {
                // A sector of the first user entries (after ".", ".." and the system files).
                let (first, size, sys, in_dir) =
                    if p.v6() { (0x1_1040u64, 0x120u64, 9u64, 0x1_1A00u64) } else { (0, 140, 9, 0x600) };
                let s = b * p.geo.fbs + in_dir;
                let mut top: Vec<(u32, String)> = truth
                    .files
                    .iter()
                    .filter(|f| f.path.matches('/').count() == 1)
                    .map(|f| (u32::from_str_radix(f.fd.trim_start_matches("0x"), 16).unwrap_or(0), f.path.clone()))
                    .collect();
                // Entries sit in creation order, which is the order their FDs were taken in.
                top.sort_by_key(|(fd, _)| (fd >> 6 & 0xFFFF, fd >> 22));
                let hit: Vec<String> = top
                    .iter()
                    .enumerate()
                    .filter(|(j, (_, path))| {
                        // What matters of an entry: type, FD, generation, offset and the name.
                        let at = first + (sys + *j as u64) * size;
                        let end = at + if p.v6() { 0x18 } else { 0x0C } + path.len() as u64;
                        at < in_dir + SECTOR && in_dir < end
                    })
                    .map(|(_, (_, path))| path.clone())
                    .collect();
                let ranges = on_images(t, s, SECTOR)?;
                bad.extend(ranges.iter().cloned());
                damage.push(TruthDamage {
                    kind: name.into(),
                    description: "unreadable: a sector of the root directory's entries".into(),
                    ranges,
                    affects: hit,
                    reader_reports: vec!["unreadable".into()],
                });
            }
        }
        _ => {}
    }
    Ok(())
}

/// After a re-format: which byte ranges of the old files the new format overwrote.
pub fn mark_overwritten(old: &mut Truth, written: &[Range<u64>]) {
    for f in &mut old.files {
        f.state = "reformatted".into();
        for e in &f.extents {
            let (fo, vo, len) = (e[0], e[1], e[2]);
            for w in written {
                let s = w.start.max(vo);
                let en = w.end.min(vo + len);
                if s < en {
                    f.overwritten.push([fo + (s - vo), en - s]);
                }
            }
        }
    }
}
