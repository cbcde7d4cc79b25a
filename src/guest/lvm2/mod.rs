//! Linux LVM2: the logical volumes of the physical volumes found among a guest disk's volumes
//! (a partition of type 8e or GPT "Linux LVM", or a whole disk). Our own reader of a few
//! hundred lines: `lamlvm` (../shared/research/crates.md) reads one PV only, through its own
//! I/O, and gives no segments to map as runs; we need every PV of the disk, missing PVs
//! reported and the LV as a [`Concat`] of slices of our sources.
//!
//! On disk (LVM2's `lib/format_text/layout.h`, `lib/label/label.h`): a label in one of sectors
//! 0–3: `LABELONE` 0x00, its sector number 0x08, CRC 0x10 (over 0x14..0x200), the PV header's
//! offset in the sector 0x14, `LVM2 001` 0x18. The PV header: UUID (32 characters) 0x00, device
//! size 0x20, then lists of (offset, size) pairs ended by a zero pair: data areas, then
//! metadata areas. A metadata area starts with its header: CRC 0x00 (over 0x04..0x200), magic
//! ` LVM2 x[5A%r0N*>` 0x04, version 0x14, start 0x18, size 0x20, then raw locations (offset
//! 0x00 from the area's start, size 0x08, CRC of the text 0x10, flags 0x14). The text sits in a
//! circular buffer after the 512-byte header and may wrap to its start. All CRCs are LVM's
//! `calc_crc`: CRC-32 (reflected 0xEDB88320) seeded with 0xF597A6CF, no final inversion.
//!
//! The text with the highest `seqno` among the metadata areas whose checksum holds is used. A
//! linear LV (segments of type `striped` with one stripe) becomes a volume: its segments in
//! order, each a slice of its PV from `pe_start + pe * extent_size`. Striped (more than one
//! stripe), thin, mirror, raid, cache, snapshot and other segment types are reported by name
//! and not read. A PV of the VG that is not on this disk is named; its extents read as zeros
//! and are reported unreadable (the rest of the LV stays readable).

pub mod text;

use super::Volume;
use crate::block::{BlockSource, Concat, Piece, Source, read_vec};
use crate::le::{u32_at, u64_at};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use text::Value;

/// Largest metadata text read (LVM's default area is 1 MiB).
const MAX_TEXT: u64 = 16 << 20;
/// Most metadata areas and data areas looked at in a PV header.
const MAX_AREAS: usize = 8;
/// Most segments of one LV.
const MAX_SEGMENTS: usize = 1 << 16;
/// The metadata area header's magic.
const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// `calc_crc`'s seed.
const CRC_SEED: u32 = 0xF597_A6CF;

/// LVM2's `calc_crc`: CRC-32 seeded with 0xF597A6CF, without the final inversion.
pub fn calc_crc(seed: u32, data: &[u8]) -> u32 {
    data.iter().fold(seed, |mut crc, &b| {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ if crc & 1 != 0 { 0xEDB8_8320 } else { 0 };
        }
        crc
    })
}

/// A physical volume found on a volume of the disk.
pub struct Pv {
    /// Its UUID as stored (32 characters, no dashes).
    pub uuid: String,
    /// The volume it lives on.
    pub source: Source,
    /// Where that volume starts on the disk.
    pub start: u64,
    /// The metadata text with the highest seqno (`None` when no area holds a usable one).
    pub text: Option<Vec<u8>>,
    /// What went wrong reading it.
    pub notes: Vec<String>,
}

/// Whether `head` (a volume's first 2 KiB) holds an LVM2 label; its sector.
pub fn label_sector(head: &[u8]) -> Option<u64> {
    (0..4u64).find(|&s| {
        let at = (s * 512) as usize;
        head.get(at..at + 8) == Some(b"LABELONE".as_slice())
            && head.get(at + 0x18..at + 0x20) == Some(b"LVM2 001".as_slice())
    })
}

/// Read the PV on `vol`, if it holds one.
pub fn read_pv(vol: &Source, start: u64) -> Option<Pv> {
    let head = read_vec(&**vol, 0, vol.len().min(2048) as usize).ok()?;
    let s = label_sector(&head)?;
    let label = head.get((s * 512) as usize..(s * 512 + 512) as usize)?;
    let name = vol.name();
    let mut notes = Vec::new();
    if u32_at(label, 0x10) != Some(calc_crc(CRC_SEED, label.get(0x14..).unwrap_or_default())) {
        notes.push(format!("{name}: LVM label at sector {s}: CRC (0x10) does not match; read anyway"));
    }
    let off = usize::try_from(u32_at(label, 0x14)?).ok()?;
    let pvh = label.get(off..)?;
    let uuid = String::from_utf8_lossy(pvh.get(0..32)?).into_owned();
    // Data areas, then metadata areas, each list ended by a zero pair.
    let mut lists: [Vec<(u64, u64)>; 2] = [Vec::new(), Vec::new()];
    let mut at = 0x28usize;
    for list in &mut lists {
        loop {
            let (o, l) = (u64_at(pvh, at)?, u64_at(pvh, at + 8)?);
            at += 16;
            if o == 0 && l == 0 {
                break;
            }
            if list.len() < MAX_AREAS {
                list.push((o, l));
            }
        }
    }
    let mut best: Option<(i64, Vec<u8>)> = None;
    for &(mda, size) in &lists[1] {
        match read_mda(&**vol, mda, size) {
            Ok((seqno, text)) => {
                if best.as_ref().is_none_or(|b| seqno > b.0) {
                    best = Some((seqno, text));
                }
            }
            Err(w) => notes.push(format!("{name}: LVM metadata area at {mda:#x}: {w}")),
        }
    }
    Some(Pv { uuid, source: Arc::clone(vol), start, text: best.map(|b| b.1), notes })
}

/// The current text of the metadata area at `mda` (`size` bytes) and its seqno.
fn read_mda(vol: &dyn BlockSource, mda: u64, size: u64) -> Result<(i64, Vec<u8>), String> {
    let end = mda.checked_add(size).filter(|&e| e <= vol.len() && size > 512).ok_or("past the volume")?;
    let _ = end;
    let h = read_vec(vol, mda, 512).map_err(|e| e.to_string())?;
    if h.get(4..20) != Some(MDA_MAGIC.as_slice()) {
        return Err("bad magic (0x04)".into());
    }
    if u32_at(&h, 0) != Some(calc_crc(CRC_SEED, h.get(4..).unwrap_or_default())) {
        return Err("header CRC (0x00) does not match".into());
    }
    // raw_locn[0]: the committed text.
    let (off, len, crc) = (u64_at(&h, 0x28).unwrap_or(0), u64_at(&h, 0x30).unwrap_or(0), u32_at(&h, 0x38));
    if off < 512 || off >= size || len == 0 || len > MAX_TEXT || len > size - 512 {
        return Err(format!("text location {off:#x}+{len:#x} (0x28) outside the area"));
    }
    // The circular buffer: what passes the area's end continues after its header.
    let first = len.min(size - off);
    let mut text = read_vec(vol, mda + off, first as usize).map_err(|e| e.to_string())?;
    if first < len {
        text.extend(read_vec(vol, mda + 512, (len - first) as usize).map_err(|e| e.to_string())?);
    }
    if Some(calc_crc(CRC_SEED, &text)) != crc {
        return Err("text checksum (raw_locn 0x10) does not match".into());
    }
    let v = text::parse(&text).map_err(|e| format!("metadata text: {e}"))?;
    let seqno = v.members().iter().find_map(|(_, vg)| vg.get("physical_volumes").and(vg.int("seqno")));
    Ok((seqno.ok_or("no VG section with a seqno")?, text))
}

/// The logical volumes of the PVs among `volumes`, numbered from `first_index` in VG then LV
/// name order; notes for what cannot be read (unsupported segment types, missing PVs, damage).
pub fn logical_volumes(volumes: &[Volume], first_index: u32) -> (Vec<Volume>, Vec<String>) {
    let pvs: Vec<Pv> = volumes.iter().filter_map(|v| read_pv(&v.source, v.start)).collect();
    let mut notes: Vec<String> = pvs.iter().flat_map(|p| p.notes.iter().cloned()).collect();
    // One VG per name; its text from the PV with the highest seqno.
    let mut vgs: BTreeMap<String, (i64, Value)> = BTreeMap::new();
    for pv in &pvs {
        let Some(t) = &pv.text else { continue };
        let Ok(top) = text::parse(t) else { continue };
        for (name, vg) in top.members() {
            if vg.get("physical_volumes").is_none() {
                continue;
            }
            let seq = vg.int("seqno").unwrap_or(0);
            if vgs.get(name).is_none_or(|(s, _)| seq > *s) {
                vgs.insert(name.clone(), (seq, vg.clone()));
            }
        }
    }
    let by_uuid: HashMap<String, &Pv> = pvs.iter().map(|p| (p.uuid.replace('-', ""), p)).collect();
    let mut out = Vec::new();
    let mut index = first_index;
    for (vg_name, (_, vg)) in &vgs {
        match vg_volumes(vg_name, vg, &by_uuid, &mut index) {
            Ok((v, n)) => {
                out.extend(v);
                notes.extend(n);
            }
            Err(w) => notes.push(format!("LVM VG {vg_name}: {w}")),
        }
    }
    (out, notes)
}

/// A PV of the VG: where its extents are, if it is on this disk.
struct VgPv<'a> {
    pv: Option<&'a Pv>,
    pe_start: u64,
}

fn vg_volumes(
    vg_name: &str,
    vg: &Value,
    by_uuid: &HashMap<String, &Pv>,
    index: &mut u32,
) -> Result<(Vec<Volume>, Vec<String>), String> {
    let extent = vg.int("extent_size").filter(|&e| e > 0).ok_or("extent_size missing or not positive")?;
    let extent = u64::try_from(extent).map_err(|_| "extent_size")?.checked_mul(512).ok_or("extent_size too big")?;
    let mut pvs: HashMap<&str, VgPv> = HashMap::new();
    for (key, pv) in vg.get("physical_volumes").map(Value::members).unwrap_or_default() {
        let id = pv.str("id").unwrap_or_default().replace('-', "");
        let pe_start = pv.int("pe_start").and_then(|s| u64::try_from(s).ok()).and_then(|s| s.checked_mul(512));
        let Some(pe_start) = pe_start else { return Err(format!("PV {key}: pe_start missing or out of range")) };
        pvs.insert(key.as_str(), VgPv { pv: by_uuid.get(&id).copied(), pe_start });
    }
    let mut vols = Vec::new();
    let mut notes = Vec::new();
    let mut lvs: Vec<&(String, Value)> =
        vg.get("logical_volumes").map(Value::members).unwrap_or_default().iter().collect();
    lvs.sort_by(|a, b| a.0.cmp(&b.0));
    for (lv_name, lv) in lvs {
        let visible = matches!(lv.get("status"), Some(Value::List(l)) if l.contains(&Value::Str("VISIBLE".into())));
        if !visible {
            continue;
        }
        let what = format!("LVM {vg_name}/{lv_name}");
        match lv_pieces(lv, extent, &pvs) {
            Ok((pieces, len, missing, start)) => {
                let mut describe = format!("{what} (linear)");
                if !missing.is_empty() {
                    describe = format!("{what} (linear; PV {} not on this disk, read as zeros)", missing.join(", "));
                    notes.push(format!("{what}: PV {} of the VG is not on this disk", missing.join(", ")));
                }
                let source: Source = Arc::new(Concat::new(format!("{vg_name}/{lv_name}"), pieces, len));
                vols.push(Volume { index: *index, describe, start, source });
                *index = index.saturating_add(1);
            }
            Err(w) => notes.push(format!("{what}: {w}")),
        }
    }
    Ok((vols, notes))
}

/// The pieces of a linear LV and its length, the VG names of PVs that are not on the disk, and
/// the disk offset of its first byte (0 when that PV is missing).
type LvPieces = (Vec<Piece>, u64, Vec<String>, u64);

fn lv_pieces(lv: &Value, extent: u64, pvs: &HashMap<&str, VgPv>) -> Result<LvPieces, String> {
    let mut pieces = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    let mut len = 0u64;
    let mut disk_start = None;
    let segs: Vec<&Value> = lv
        .members()
        .iter()
        .filter(|(k, v)| k.starts_with("segment") && matches!(v, Value::Section(_)))
        .map(|(_, v)| v)
        .collect();
    if segs.is_empty() || segs.len() > MAX_SEGMENTS {
        return Err(format!("{} segments", segs.len()));
    }
    for seg in segs {
        let ty = seg.str("type").unwrap_or("?");
        let stripes = seg.int("stripe_count").unwrap_or(0);
        if ty != "striped" || stripes != 1 {
            let what = if ty == "striped" { format!("striped over {stripes} PVs") } else { ty.to_string() };
            return Err(format!("{what} segments are not read (linear volumes only)"));
        }
        let num = |k: &str| seg.int(k).and_then(|v| u64::try_from(v).ok()).ok_or(format!("segment {k} missing"));
        let start = num("start_extent")?.checked_mul(extent).ok_or("start_extent too big")?;
        let count = num("extent_count")?.checked_mul(extent).ok_or("extent_count too big")?;
        let (pv_name, pe) = match seg.get("stripes") {
            Some(Value::List(l)) => match l.as_slice() {
                [Value::Str(n), Value::Int(pe)] => (n.as_str(), u64::try_from(*pe).map_err(|_| "negative PE")?),
                _ => return Err("stripes is not [\"pvN\", PE]".into()),
            },
            _ => return Err("stripes missing".into()),
        };
        let vgpv = pvs.get(pv_name).ok_or(format!("stripe on PV {pv_name}, which the VG does not list"))?;
        let at = pe.checked_mul(extent).and_then(|o| o.checked_add(vgpv.pe_start)).ok_or("PE offset too big")?;
        len = len.max(start.checked_add(count).ok_or("segment end too big")?);
        let src = match vgpv.pv {
            Some(p) => {
                if start == 0 {
                    disk_start = p.start.checked_add(at);
                }
                Some((Arc::clone(&p.source), at))
            }
            None => {
                if !missing.iter().any(|m| m == pv_name) {
                    missing.push(pv_name.to_string());
                }
                None
            }
        };
        pieces.push(Piece { offset: start, len: count, src });
    }
    Ok((pieces, len, missing, disk_start.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_lvm() {
        // The label sector lvm2 2.03.16's pvcreate wrote (CRC at 0x10 over 0x14..0x200).
        let mut s = [0u8; 512];
        s[0..8].copy_from_slice(b"LABELONE");
        s[8] = 1;
        s[0x14] = 0x20;
        s[0x18..0x20].copy_from_slice(b"LVM2 001");
        s[0x20..0x40].copy_from_slice(b"7wcswAyvXUrXVMpmHQbxkIWeybq7XfZw");
        s[0x40..0x48].copy_from_slice(&0x0400_0000u64.to_le_bytes());
        s[0x48..0x50].copy_from_slice(&0x10_0000u64.to_le_bytes());
        s[0x68..0x70].copy_from_slice(&0x1000u64.to_le_bytes());
        s[0x70..0x78].copy_from_slice(&0xF_F000u64.to_le_bytes());
        s[0x88] = 2;
        s[0x8C] = 1;
        assert_eq!(calc_crc(CRC_SEED, &s[0x14..]), 0xACFC_840D);
        assert_eq!(label_sector(&[&[0u8; 512][..], &s[..]].concat()), Some(1));
    }
}
