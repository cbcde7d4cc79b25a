//! Names for disks whose own names were lost: a surviving descriptor that names an extent its
//! folder lacks, a surviving .vmx that names a descriptor its folder lacks, and the folder of
//! the snapshot delta whose capacity sized a disk. Each applies only when it leaves one choice.

use super::carve::{Deleted, ExtentSize, Found, TEXT_CAP, Vol, flat_extents, is_flat_candidate};
use super::{Catalog, Confidence, Item, State};
use crate::block::read_vec;
use crate::vdisk::descriptor::Descriptor;
use crate::vdisk::snapshot::parse_dict;
use crate::vmfs::ondisk::Zla;
use std::collections::HashSet;

/// The text of every surviving file of these volumes whose name ends with `ext` (small enough
/// to be text): its datastore path and bytes.
fn live_texts(cat: &Catalog, labels: &[String], ext: &str) -> Vec<(String, Vec<u8>)> {
    cat.items
        .iter()
        .filter(|i| matches!(i.state, State::Live | State::Orphaned) && labels.contains(&i.volume))
        .filter(|i| i.size <= TEXT_CAP)
        .filter_map(|i| {
            let o = i.original.as_deref().filter(|o| o.ends_with(ext))?;
            Some((o.to_string(), read_vec(i.content.as_ref()?.as_ref(), 0, i.size as usize).ok()?))
        })
        .collect()
}

/// Datastore paths of the surviving files of these volumes, and (`with_content`) of everything
/// that has content.
fn present<'a>(cat: &'a Catalog, labels: &[String], with_content: bool) -> HashSet<&'a str> {
    let here = |i: &&Item| matches!(i.state, State::Live | State::Orphaned) && labels.contains(&i.volume);
    let keep = |i: &&Item| here(i) || (with_content && i.content.is_some());
    cat.items.iter().filter(keep).filter_map(|i| i.original.as_deref()).collect()
}

/// Extents that surviving descriptors name but their folders no longer hold (a flat removed
/// with `rm`, its descriptor left): the extent, and the folder ("/win01").
pub(super) fn missing_extents(cat: &Catalog, labels: &[String]) -> Vec<(ExtentSize, String)> {
    let present = present(cat, labels, false);
    let mut out: Vec<(ExtentSize, String)> = Vec::new();
    for (o, text) in live_texts(cat, labels, ".vmdk") {
        let Some((dir, _)) = o.rsplit_once('/') else { continue };
        let Ok(desc) = Descriptor::parse(&o, &text) else { continue };
        for (f, len) in flat_extents(&desc) {
            if f.contains('/') || present.contains(format!("{dir}/{f}").as_str()) {
                continue;
            }
            if !out.iter().any(|((n, l, _), d)| *n == f && *l == len && d == dir) {
                out.push(((f, len, format!("the surviving descriptor {o}")), dir.to_string()));
            }
        }
    }
    out
}

/// A disk that came back without a name (its directory entry removed), or carved, takes the
/// name of the one missing extent of its exact size a surviving descriptor names.
pub(super) fn name_by_missing_extents(cat: &mut Catalog, v: &Vol, missing: &[(ExtentSize, String)], from: usize) {
    for ((name, len, which), dir) in missing {
        let path = format!("{dir}/{name}");
        if cat.items.iter().any(|i| i.original.as_deref() == Some(path.as_str()) && i.content.is_some()) {
            continue;
        }
        let fits: Vec<usize> = (0..cat.items.len())
            .filter(|&i| unnamed(&cat.items[i], i >= from, dir, &v.label) && cat.items[i].size == *len)
            .collect();
        let [i] = fits.as_slice() else { continue };
        if missing.iter().filter(|((_, l, _), _)| l == len).count() != 1 {
            continue;
        }
        let why = format!("by {which}, the only disk of its size it lacks");
        let it = &mut cat.items[*i];
        let confidence = it.confidence.min(Confidence::Medium);
        give_name(it, &v.label, &path, &why, confidence);
    }
}

/// Whether `it` has content but a made-up name ("fd-0x..", in no folder or in `dir`: VMFS6 FDs
/// name their parent), or is a carved item of this pass (`carved_now`).
fn unnamed(it: &Item, carved_now: bool, dir: &str, label: &str) -> bool {
    let made_up = it.path.last().is_some_and(|n| n.starts_with("fd-0x"))
        && it.original.as_deref().is_none_or(|o| o.rsplit_once('/').is_some_and(|(d, _)| d == dir));
    let unnamed = (it.state == State::Deleted && made_up) || (it.state == State::Carved && carved_now);
    unnamed && it.volume == label && it.content.is_some()
}

/// Put `it` at datastore path `path` ("/vm/vm-flat.vmdk"), a deleted file named `why`.
fn give_name(it: &mut Item, label: &str, path: &str, why: &str, confidence: Confidence) {
    let mut p = vec!["volumes".to_string(), label.to_string()];
    p.extend(path.trim_start_matches('/').split('/').map(String::from));
    it.path = p;
    it.original = Some(path.to_string());
    it.state = State::Deleted;
    let method = it.method.replacen("names partly made up (see path)", "its directory entry removed", 1);
    it.method = format!("{method}; named {path} {why}");
    it.confidence = confidence;
}

/// The one disk still without a name takes the one a surviving .vmx implies: the .vmx names a
/// descriptor its folder no longer holds, and that descriptor's flat extent is
/// "<stem>-flat.vmdk". Only when one such name is wanted and one such disk is left.
pub(super) fn name_by_vmx(cat: &mut Catalog, v: &Vol, labels: &[String], from: usize) {
    let mut wanted: Vec<(String, String, String)> = Vec::new();
    let present = present(cat, labels, true);
    for (o, text) in live_texts(cat, labels, ".vmx") {
        let Some((dir, _)) = o.rsplit_once('/') else { continue };
        for (k, val) in parse_dict(&String::from_utf8_lossy(&text)) {
            let Some(stem) = val.strip_suffix(".vmdk") else { continue };
            // A snapshot link ("vm-000001.vmdk") names a delta; its base's name is not here.
            let snapshot =
                stem.rsplit_once('-').is_some_and(|(_, n)| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()));
            if !k.to_ascii_lowercase().ends_with(".filename") || val.contains('/') || snapshot {
                continue;
            }
            let flat = format!("{dir}/{stem}-flat.vmdk");
            if !present.contains(format!("{dir}/{val}").as_str()) && !present.contains(flat.as_str()) {
                wanted.push((dir.to_string(), flat, o.clone()));
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    let [(dir, flat, vmx)] = wanted.as_slice() else { return };
    // A disk: its first sector holds a partition table.
    let disk = |it: &Item| {
        it.content.as_ref().is_some_and(|c| read_vec(c.as_ref(), 0, 512).is_ok_and(|b| b[510..] == [0x55, 0xAA]))
    };
    let fits: Vec<usize> = (0..cat.items.len())
        .filter(|&i| unnamed(&cat.items[i], i >= from, dir, &v.label) && disk(&cat.items[i]))
        .collect();
    let [i] = fits.as_slice() else { return };
    let why = format!("after {vmx}, which names a disk its folder lacks (the only disk left without a name)");
    give_name(&mut cat.items[*i], &v.label, flat, &why, Confidence::Low);
}

/// A disk sized by a snapshot delta's capacity belongs to the folder that delta was found for:
/// when that folder has one deleted flat file left, it is that file's. Then, as anywhere, one
/// disk left without a file and one deleted flat file left without content are each other's.
pub(super) fn tie_to_delta_folders(out: &mut [Found], deleted: &[Deleted], v: &Vol) {
    let taken = |out: &[Found], d: &Deleted| out.iter().any(|f| f.target == Some(d.idx));
    for i in 0..out.len() {
        if out[i].target.is_some() || out[i].sized_by.is_empty() {
            continue;
        }
        let mut folders: Vec<&str> = out[i]
            .sized_by
            .iter()
            .filter_map(|h| out.iter().find(|f| f.off == *h).and_then(|f| f.target))
            .filter_map(|t| deleted.iter().find(|d| d.idx == t).and_then(|d| d.folder.as_deref()))
            .collect();
        folders.sort_unstable();
        folders.dedup();
        let [folder] = folders.as_slice() else { continue };
        let flats: Vec<&Deleted> = deleted
            .iter()
            .filter(|d| d.folder.as_deref() == Some(*folder) && d.name.is_some() && is_flat_candidate(d))
            .filter(|d| !taken(out, d))
            .collect();
        if let [d] = flats.as_slice() {
            out[i].target = Some(d.idx);
            out[i].method.push_str(&format!(
                "; the delta giving its size is folder {folder}'s, whose only deleted flat disk it is"
            ));
        }
    }
    let disks: Vec<usize> =
        (0..out.len()).filter(|&i| out[i].target.is_none() && out[i].carved_name.0 == "disk").collect();
    let flats: Vec<&Deleted> = deleted.iter().filter(|d| is_flat_candidate(d) && !taken(out, d)).collect();
    if let ([i], [d]) = (disks.as_slice(), flats.as_slice()) {
        // Past what an FD's own pointers reach, a file was addressed through pointer blocks.
        let direct = (v.fs.geo.ptrs_count as u64).saturating_mul(d.block_size);
        if out[*i].len <= direct || d.zla.is_none_or(|z| z != Zla::FileBlock) {
            out[*i].target = Some(d.idx);
            out[*i].method.push_str("; the only deleted flat disk of the volume left without content");
        }
    }
}
