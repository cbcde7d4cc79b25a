//! `vmware.log` files and `.nvram` files of deleted VMs, from free space. A log names its VM
//! (the .vmx path and displayName in its configuration dump) and ends at its first NUL; an
//! .nvram starts with "MRVN" and tagged sections whose lengths are walked (each checked against
//! what is left), and ends at the last non-zero byte of its allocation unit.

use super::carve::{Deleted, Found, Vol, read_text};
use super::item::Confidence;
use crate::block::read_vec;
use crate::le::u32_at;
use crate::recover::classify::{iso_stamp, nvram_tag_byte};
use crate::recover::finding::What;
use crate::vmfs::ondisk::Zla;

/// Most NVRAM sections walked.
const MAX_SECTIONS: usize = 256;
/// Longest .nvram taken (real ones are 8 KiB for BIOS VMs, a few hundred KiB for EFI ones).
const NVRAM_CAP: u64 = 1 << 20;

/// The deleted files named like a log, by folder.
fn is_log_name(n: &str) -> bool {
    n == "vmware.log"
        || n.strip_prefix("vmware-")
            .and_then(|r| r.strip_suffix(".log"))
            .is_some_and(|k| !k.is_empty() && k.len() <= 6 && k.bytes().all(|c| c.is_ascii_digit()))
}

/// Rotation rank: vmware.log is the newest; vmware-N.log are older, a higher N newer (ESXi
/// numbers rotated logs upwards). Sorting by rank descending gives newest first.
fn log_rank(n: &str) -> u64 {
    n.strip_prefix("vmware-").and_then(|r| r.strip_suffix(".log")).and_then(|k| k.parse().ok()).unwrap_or(u64::MAX)
}

/// Whether log `text` is of the VM in folder `folder`: its configuration path or displayName.
fn names_folder(text: &str, folder: &str) -> bool {
    text.lines().take(200).any(|l| {
        (l.contains("DICT --- CONFIGURATION") && l.contains(&format!("/{folder}/")) && l.trim_end().ends_with(".vmx"))
            || (l.contains("displayName = ") && l.trim_end().ends_with(&format!("\"{folder}\"")))
    })
}

/// Logs in free space, each up to its first NUL, paired with the deleted logs of the folder
/// they name: one each, or, with several, newest text to newest name.
pub(super) fn logs(v: &Vol, deleted: &[Deleted]) -> Vec<Found> {
    // (offset, text, the first line's timestamp)
    let mut found: Vec<(u64, String, String)> = Vec::new();
    for (off, what) in &v.found {
        let What::VmwareLog { .. } = what else { continue };
        let Some(b) = read_text(v, *off) else { continue };
        if !iso_stamp(&b) || b.iter().any(|&c| c < 0x09 || (c > 0x0D && c < 0x20)) {
            continue;
        }
        let text = String::from_utf8_lossy(&b).into_owned();
        let stamp = text[..24].to_string();
        found.push((*off, text, stamp));
    }
    let mut out: Vec<Found> = found
        .iter()
        .map(|(off, text, _)| Found {
            off: *off,
            len: text.len() as u64,
            content: None,
            span: None,
            target: None,
            carved_name: ("vmware".into(), ".log".into()),
            method: format!("vmware.log text found in free space at volume offset {off:#x}, up to its first NUL"),
            confidence: Confidence::Medium,
            sized_by: Vec::new(),
        })
        .collect();
    let mut folders: Vec<&str> = deleted.iter().filter_map(|d| d.folder.as_deref()).collect();
    folders.sort_unstable();
    folders.dedup();
    for folder in folders {
        let mut names: Vec<&Deleted> = deleted
            .iter()
            .filter(|d| d.folder.as_deref() == Some(folder) && d.name.as_deref().is_some_and(is_log_name))
            .filter(|d| d.zla != Some(Zla::Resident))
            .collect();
        let mut texts: Vec<usize> = (0..found.len()).filter(|&i| names_folder(&found[i].1, folder)).collect();
        if names.is_empty() || names.len() != texts.len() {
            continue;
        }
        names.sort_by_key(|d| std::cmp::Reverse(log_rank(d.name.as_deref().unwrap_or(""))));
        texts.sort_by(|&a, &b| found[b].2.cmp(&found[a].2));
        // Two logs starting in the same millisecond cannot be told apart.
        if texts.windows(2).any(|w| found[w[0]].2 == found[w[1]].2) {
            continue;
        }
        let single = names.len() == 1;
        for (d, &t) in names.iter().zip(&texts) {
            // Text longer than the freed file's allocation unit continued elsewhere.
            if out[t].len > d.block_size {
                continue;
            }
            out[t].target = Some(d.idx);
            if single {
                out[t].method.push_str(&format!("; names the VM of folder {folder}"));
            } else {
                out[t].method.push_str(&format!(
                    "; names the VM of folder {folder}; paired by age (first line {}), vmware.log newest",
                    found[t].2
                ));
                out[t].confidence = Confidence::Low;
            }
        }
    }
    out
}

/// The length of the .nvram at the start of `b` (the bytes up to the end of its allocation
/// unit or free run): the sections walked, then up to the last non-zero byte. None when the
/// header or the first section does not hold, or nothing after it is zero (it may go on).
pub fn nvram_len(b: &[u8]) -> Option<u64> {
    if b.get(..4)? != b"MRVN" || !(1..256).contains(&u32_at(b, 4)?) {
        return None;
    }
    let mut pos = 8usize;
    let mut sections = 0;
    while sections < MAX_SECTIONS {
        let Some(tag) = b.get(pos..pos + 4) else { break };
        if !tag.iter().all(|&c| nvram_tag_byte(c)) {
            break;
        }
        let Some(len) = u32_at(b, pos + 4).and_then(|l| usize::try_from(l).ok()) else { break };
        let Some(end) = (pos + 8).checked_add(len).filter(|&e| e <= b.len()) else { break };
        pos = end;
        sections += 1;
    }
    if sections == 0 {
        return None;
    }
    let last = b.iter().rposition(|&c| c != 0)? + 1;
    // Content up to the very end of the unit: the file may continue in another block.
    (last < b.len()).then_some(last.max(pos) as u64)
}

/// .nvram files in free space; the only one is the only deleted .nvram's.
pub(super) fn nvram(v: &Vol, deleted: &[Deleted]) -> Vec<Found> {
    let names: Vec<&Deleted> = deleted
        .iter()
        .filter(|d| d.name.as_deref().is_some_and(|n| n.ends_with(".nvram")) && d.zla != Some(Zla::Resident))
        .collect();
    let sbs = v.fs.geo.sbs.max(512);
    let mut out = Vec::new();
    for (off, what) in &v.found {
        let What::Nvram { .. } = what else { continue };
        // The unit it lies in: the deleted file's, when there is one candidate, else a file
        // block when it starts one, else a sub-block.
        let unit = match names.as_slice() {
            [d] => d.block_size,
            _ if off % v.fs.geo.fbs.max(512) == 0 => v.fs.geo.fbs,
            _ => sbs,
        }
        .clamp(512, NVRAM_CAP);
        // Sub-blocks need not be aligned to their size on the volume: the next structure
        // found in free space bounds the unit too.
        let next = v.found.iter().map(|(o, _)| *o).find(|o| o > off).unwrap_or(u64::MAX);
        let end = v.free_end(*off).min(off.saturating_add(unit)).min(next);
        let Ok(b) = read_vec(v.fs.vol.as_ref(), *off, end.saturating_sub(*off) as usize) else { continue };
        let Some(len) = nvram_len(&b) else { continue };
        let target = match names.as_slice() {
            [d] => Some(d.idx),
            _ => None,
        };
        out.push(Found {
            off: *off,
            len,
            content: None,
            span: None,
            target,
            carved_name: ("nvram".into(), ".nvram".into()),
            method: format!(
                "MRVN header at volume offset {off:#x}; sections walked, length to the last non-zero byte of its \
                 {unit}-byte unit{}",
                if target.is_some() { "; the only deleted .nvram of the volume" } else { "" }
            ),
            confidence: Confidence::Low,
            sized_by: Vec::new(),
        });
    }
    // Two .nvram texts for one deleted .nvram: neither is sure (the claims check drops both).
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nv(sections: &[(&[u8; 4], u32, usize)], tail: &[u8], unit: usize) -> Vec<u8> {
        let mut b = b"MRVN\x01\0\0\0".to_vec();
        for (tag, len, body) in sections {
            b.extend_from_slice(*tag);
            b.extend_from_slice(&len.to_le_bytes());
            b.extend(std::iter::repeat_n(0x11, *body));
        }
        b.extend_from_slice(tail);
        b.resize(unit, 0);
        b
    }

    #[test]
    fn nvram_length_from_sections_and_padding() {
        let b = nv(&[(b"CMOS", 128, 128), (b"ESCD", 16, 16)], &[0xFF; 100], 8192);
        assert_eq!(nvram_len(&b), Some(8 + 136 + 24 + 100));
        // Sections alone (zeros after them) end where the last one ends.
        let b = nv(&[(b"CMOS", 4, 4)], &[], 512);
        assert_eq!(nvram_len(&b), Some(20));
    }

    #[test]
    fn nvram_hostile_lengths_and_headers() {
        // A length past the unit is not followed: no section holds, so it is no .nvram; after
        // a good section, a bad one ends the walk and the tail decides.
        assert_eq!(nvram_len(&nv(&[(b"CMOS", u32::MAX, 0)], &[], 512)), None);
        assert_eq!(nvram_len(&nv(&[(b"CMOS", 4, 4), (b"ESCD", u32::MAX, 0)], &[], 512)), Some(28));
        // No section, no version, wrong magic, content up to the very end.
        assert_eq!(nvram_len(&nv(&[], &[], 512)), None);
        let mut b = nv(&[(b"CMOS", 4, 4)], &[], 512);
        b[4] = 0;
        assert_eq!(nvram_len(&b), None);
        assert_eq!(nvram_len(b"MRV"), None);
        assert_eq!(nvram_len(&nv(&[(b"CMOS", 4, 4)], &[1; 600], 512)), None);
    }

    #[test]
    fn log_names_and_folders() {
        assert!(is_log_name("vmware.log") && is_log_name("vmware-12.log"));
        assert!(!is_log_name("vmware-.log") && !is_log_name("vmware-x.log") && !is_log_name("vmx.log"));
        let mut names = ["vmware-1.log", "vmware.log", "vmware-2.log"];
        names.sort_by_key(|n| std::cmp::Reverse(log_rank(n)));
        assert_eq!(names, ["vmware.log", "vmware-2.log", "vmware-1.log"]);
        let t = "2025-06-08T00:00:00.001Z| vmx| I005: DICT --- CONFIGURATION /vmfs/volumes/x/db01/db01.vmx\n";
        assert!(names_folder(t, "db01") && !names_folder(t, "db0") && !names_folder(t, "web01"));
    }
}
