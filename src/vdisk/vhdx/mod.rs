//! VHDX ([MS-VHDX]): fixed, dynamic and differencing disks, with log replay done read-only.
//!
//! Opening goes: file type identifier → the current header of two (signature, CRC-32C, larger
//! sequence number) → the log replayed in memory when the header names one (`log.rs`) → from
//! there on through the replayed view: region table (the copy when the first fails its
//! CRC-32C), metadata table and items (file parameters, virtual size, sector sizes, page 83
//! data, parent locator), BAT (`bat.rs`). Every size is checked against the file before
//! anything is allocated from it.
//!
//! A disk's identity is its header's `DataWriteGuid`: that is what a child's `parent_linkage`
//! names.

mod bat;
pub mod crc32c;
mod log;
pub mod ondisk;

use super::error::{Result, VdiskError};
use super::image::{Format, Image, ParentRef};
use crate::block::Source;
use bat::{Bat, Layout};
use ondisk::*;

/// Largest metadata item read (the parent locator is the only big one; a few KiB in practice).
const MAX_ITEM: u32 = 1 << 20;

fn read(src: &Source, at: u64, len: usize) -> Result<Option<Vec<u8>>> {
    if at.checked_add(len as u64).is_none_or(|e| e > src.len()) {
        return Ok(None);
    }
    let mut b = vec![0u8; len];
    src.read_at(at, &mut b)?;
    Ok(Some(b))
}

/// The current header and what was wrong with the other one.
fn current_header(path: &str, src: &Source, problems: &mut Vec<String>) -> Result<Header> {
    let mut valid = Vec::new();
    for at in HEADER_OFFSETS {
        match read(src, at, HEADER_SIZE)?.map(|b| Header::parse(&b)) {
            Some(Ok(h)) if h.checksum_ok => valid.push((at, h)),
            Some(Ok(_)) => problems.push(format!("header at {at:#x} fails its checksum")),
            Some(Err(b)) => problems.push(format!("header at {at:#x}: {}", b.what)),
            None => problems.push(format!("header at {at:#x} past the end of the file")),
        }
    }
    match valid.as_slice() {
        [] => Err(VdiskError::corrupt(path, Header::NAME, HEADER_OFFSETS[0], "neither header is valid")),
        [(_, h)] => Ok(h.clone()),
        [(_, a), (at, b), ..] => {
            if a.sequence == b.sequence && a != b {
                problems.push(format!(
                    "both headers have sequence number {} but differ: used the first (the one at {at:#x} differs)",
                    a.sequence
                ));
            }
            Ok(if b.sequence > a.sequence { b.clone() } else { a.clone() })
        }
    }
}

fn region_table(path: &str, file: &Source, problems: &mut Vec<String>) -> Result<RegionTable> {
    let mut first_err = None;
    for (i, at) in REGION_OFFSETS.into_iter().enumerate() {
        let why = match read(file, at, TABLE_SIZE)?.map(|b| RegionTable::parse(&b)) {
            Some(Ok(t)) if t.checksum_ok => {
                if i > 0 {
                    problems
                        .push(format!("region table at {:#x} is damaged: used the copy at {at:#x}", REGION_OFFSETS[0]));
                }
                return Ok(t);
            }
            Some(Ok(_)) => (at + 4, "fails its checksum".to_string()),
            Some(Err(b)) => (at + b.off, b.what),
            None => (at, "past the end of the file".to_string()),
        };
        first_err.get_or_insert(why);
    }
    let (off, what) = first_err.unwrap_or((REGION_OFFSETS[0], String::new()));
    Err(VdiskError::corrupt(path, RegionTable::NAME, off, format!("{what}, and so does the copy")))
}

/// The region `guid`, its placement checked.
fn region(path: &str, t: &RegionTable, guid: Guid, name: &'static str, flen: u64) -> Result<Region> {
    let r =
        t.regions.iter().find(|r| r.guid == guid).ok_or_else(|| {
            VdiskError::corrupt(path, RegionTable::NAME, REGION_OFFSETS[0], format!("no {name} region"))
        })?;
    if r.offset < MIB || !r.offset.is_multiple_of(MIB) || r.offset >= flen {
        return Err(VdiskError::corrupt(
            path,
            RegionTable::NAME,
            REGION_OFFSETS[0],
            format!(
                "{name} region at {:#x}: not a 1 MiB multiple past the headers inside the file ({flen:#x})",
                r.offset
            ),
        ));
    }
    Ok(r.clone())
}

/// What the metadata region says.
struct Meta {
    block: u32,
    leave_allocated: bool,
    has_parent: bool,
    size: u64,
    logical: u32,
    physical: Option<u32>,
    page83: Option<Guid>,
    locator: Option<ParentLocator>,
}

fn metadata(path: &str, file: &Source, r: &Region) -> Result<Meta> {
    let corrupt = |off: u64, what: String| VdiskError::corrupt(path, MetadataTable::NAME, off, what);
    let t = read(file, r.offset, TABLE_SIZE)?
        .ok_or_else(|| corrupt(r.offset, "past the end of the file".into()))
        .and_then(|b| MetadataTable::parse(&b).map_err(|e| corrupt(r.offset + e.off, e.what)))?;
    let item = |id: Guid| -> Result<Option<Vec<u8>>> {
        let Some((i, it)) = t.items.iter().enumerate().find(|(_, it)| it.id == id && !it.user) else {
            return Ok(None);
        };
        let at = 32 + 32 * i as u64 + r.offset;
        if it.offset < TABLE_SIZE as u32
            || it.length > MAX_ITEM
            || u64::from(it.offset) + u64::from(it.length) > u64::from(r.length)
        {
            return Err(corrupt(
                at + 16,
                format!("item {} at {:#x}, {} bytes: outside the metadata region", id.text(), it.offset, it.length),
            ));
        }
        read(file, r.offset + u64::from(it.offset), it.length as usize)?
            .map(Some)
            .ok_or_else(|| corrupt(at + 16, format!("item {} past the end of the file", id.text())))
    };
    let need = |id: Guid, name: &str, len: usize| -> Result<Vec<u8>> {
        item(id)?.filter(|b| b.len() >= len).ok_or_else(|| corrupt(r.offset, format!("no usable {name} item")))
    };
    let known =
        [FILE_PARAMETERS, VIRTUAL_DISK_SIZE, PAGE_83_DATA, LOGICAL_SECTOR_SIZE, PHYSICAL_SECTOR_SIZE, PARENT_LOCATOR];
    if let Some(it) = t.items.iter().find(|it| it.required && !it.user && !known.contains(&it.id)) {
        return Err(VdiskError::Unsupported {
            file: path.into(),
            what: format!("required VHDX metadata item {}", it.id.text()),
        });
    }
    let fp = need(FILE_PARAMETERS, "file parameters", 8)?;
    let (block, flags) = (le32(&fp, 0), le32(&fp, 4));
    if !block.is_power_of_two() || !(MIN_BLOCK..=MAX_BLOCK).contains(&block) {
        return Err(corrupt(r.offset, format!("block size {block} (a power of two, 1..=256 MiB)")));
    }
    let size = le64(&need(VIRTUAL_DISK_SIZE, "virtual disk size", 8)?, 0);
    if size > MAX_VIRTUAL_SIZE {
        return Err(corrupt(r.offset, format!("virtual disk size {size} (at most {MAX_VIRTUAL_SIZE})")));
    }
    let logical = le32(&need(LOGICAL_SECTOR_SIZE, "logical sector size", 4)?, 0);
    if logical != 512 && logical != 4096 {
        return Err(corrupt(r.offset, format!("logical sector size {logical} (512 or 4096)")));
    }
    let has_parent = flags & 2 != 0;
    let locator = if has_parent {
        let b = need(PARENT_LOCATOR, "parent locator", 20)?;
        Some(ParentLocator::parse(&b).map_err(|e| {
            VdiskError::corrupt(path, ParentLocator::NAME, r.offset, format!("at item offset {:#x}: {}", e.off, e.what))
        })?)
    } else {
        None
    };
    Ok(Meta {
        block,
        leave_allocated: flags & 1 != 0,
        has_parent,
        size,
        logical,
        physical: item(PHYSICAL_SECTOR_SIZE)?.map(|b| le32(&b, 0)),
        page83: item(PAGE_83_DATA)?.filter(|b| b.len() >= 16).map(|b| Guid::at(&b, 0)),
        locator,
    })
}

/// Where the parent is: its paths (relative first) and its `DataWriteGuid`.
fn parent_ref(l: &ParentLocator, problems: &mut Vec<String>) -> ParentRef {
    if l.kind != VHDX_PARENT_LOCATOR {
        problems.push(format!("parent locator of unknown type {}: parent not located", l.kind.text()));
        return ParentRef { format: Some(Format::Vhdx), ..Default::default() };
    }
    let mut hints: Vec<String> = ["relative_path", "volume_path", "absolute_win32_path"]
        .iter()
        .filter_map(|k| l.get(k))
        .map(|v| v.trim_end_matches('\0').replace('\\', "/"))
        .filter(|v| !v.is_empty())
        .collect();
    let mut seen = std::collections::HashSet::new();
    hints.retain(|x| seen.insert(x.clone()));
    let id = l.get("parent_linkage").and_then(Guid::parse_text).map(|g| g.text());
    ParentRef { hints, id, format: Some(Format::Vhdx) }
}

/// Open a VHDX image.
pub fn open(path: &str, src: Source) -> Result<Image> {
    let mut problems = Vec::new();
    let sig = read(&src, 0, 8)?;
    if sig.as_deref() != Some(FILE_SIGNATURE.as_slice()) {
        return Err(VdiskError::corrupt(path, "VHDX file type identifier", 0, "signature is not \"vhdxfile\""));
    }
    let creator = read(&src, 8, 512)?
        .map(|b| {
            let u: Vec<u16> =
                b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
            String::from_utf16_lossy(&u)
        })
        .unwrap_or_default();
    let h = current_header(path, &src, &mut problems)?;
    if h.version != 1 {
        return Err(VdiskError::Unsupported { file: path.into(), what: format!("VHDX version {}", h.version) });
    }
    let file = match log::replay(path, &src, &h)? {
        log::Replay::Clean => src,
        log::Replay::Empty(p) => {
            problems.push(p);
            src
        }
        log::Replay::Done(f, p) => {
            problems.push(p);
            f
        }
    };
    let flen = file.len();
    let rt = region_table(path, &file, &mut problems)?;
    if let Some(r) = rt.regions.iter().find(|r| r.required && r.guid != BAT_REGION && r.guid != METADATA_REGION) {
        return Err(VdiskError::Unsupported {
            file: path.into(),
            what: format!("required VHDX region {}", r.guid.text()),
        });
    }
    let meta_r = region(path, &rt, METADATA_REGION, "metadata", flen)?;
    let bat_r = region(path, &rt, BAT_REGION, "BAT", flen)?;
    let m = metadata(path, &file, &meta_r)?;
    let (block, sector) = (u64::from(m.block), u64::from(m.logical));
    let chunk_ratio = (1u64 << 23) * sector / block;
    let entries = Layout::entries_needed(m.size, block, chunk_ratio, m.has_parent);
    // The BAT must hold every entry and lie in the file: checked before any of it is read.
    if entries * 8 > u64::from(bat_r.length) || bat_r.offset + entries * 8 > flen {
        return Err(VdiskError::corrupt(
            path,
            RegionTable::NAME,
            REGION_OFFSETS[0],
            format!(
                "BAT region at {:#x}, {} bytes: the {}-byte disk needs {entries} entries ({} bytes) inside the file \
                 ({flen:#x})",
                bat_r.offset,
                bat_r.length,
                m.size,
                entries * 8
            ),
        ));
    }
    let kind = if m.has_parent {
        "differencing"
    } else if m.leave_allocated {
        "fixed"
    } else {
        "dynamic"
    };
    let mut variant = format!("{kind}, {} MiB blocks", block >> 20);
    if m.logical != 512 || m.physical.is_some_and(|p| p != 512) {
        variant.push_str(&format!(", sectors {}/{}", m.logical, m.physical.unwrap_or(m.logical)));
    }
    if let Some(g) = m.page83 {
        variant.push_str(&format!(", disk id {}", g.text()));
    }
    if !creator.is_empty() {
        variant.push_str(&format!(", creator \"{}\"", creator.chars().take(64).collect::<String>()));
    }
    let parent = m.locator.as_ref().map(|l| parent_ref(l, &mut problems));
    let layout = Layout {
        capacity: m.size,
        block,
        sector,
        chunk_ratio,
        bat_offset: bat_r.offset,
        bat_entries: entries,
        differencing: m.has_parent,
    };
    let reader = Box::new(Bat::new(file, layout, problems));
    Ok(Image { format: Format::Vhdx, variant, capacity: m.size, reader, id: Some(h.data_write.text()), parent })
}

#[cfg(test)]
mod tests;
