//! Recognise structures at 512-byte-aligned positions of a buffer. Pure and cheap: most sectors
//! are rejected by one or two word compares, so classification keeps up with the disk on two
//! cores. Every recogniser checks its own bounds; nothing here trusts a size it read.

use super::finding::{SeenEntry, What};
use crate::container::lvm::ondisk::{LVM_MAGIC, LvmDeviceHeader};
use crate::le::{u16_at, u32_at, u64_at};
use crate::vmfs::ondisk::{
    DIR_ENTRY5_SIZE, DIR6_BLOCK_HEADER_SIZE, DIR6_DEBUG_VERSION, DIR6_ENTRY_SIZE, DIR6_HEADER_SIZE, DIR6_VERSION,
    DirBlockHeader6, DirEntry5, DirEntry6, DirHeader6, DiskLock, FileMeta, FsDescriptor, LOCK_TYPE_FD, VMFS_MAGIC,
    VMFSL_MAGIC,
};
use std::ops::Range;

/// Sector granularity of the scan.
pub const SECTOR: usize = 512;
/// How far past the end of its range a classifier may look (the largest structure it parses).
pub const LOOKAHEAD: usize = 64 * 1024;

/// Classify every `SECTOR`-aligned position of `buf` inside `range` (offsets into `buf`);
/// `buf` may hold up to [`LOOKAHEAD`] bytes past `range.end`. `base` is the source offset of
/// `buf[0]` (a multiple of `SECTOR`). Findings are appended as (source offset, what).
pub fn classify(buf: &[u8], range: Range<usize>, base: u64, out: &mut Vec<(u64, What)>) {
    let mut pos = range.start.next_multiple_of(SECTOR);
    while pos < range.end.min(buf.len()) {
        let tail = &buf[pos..];
        if let Some(w) = at(tail, base + pos as u64) {
            out.push((base + pos as u64, w));
        }
        pos += SECTOR;
    }
}

/// What starts at `b[0]` (source offset `off`), if anything.
fn at(b: &[u8], off: u64) -> Option<What> {
    let w0 = u32_at(b, 0)?;
    match w0 {
        VMFS_MAGIC | VMFSL_MAGIC => fs_descriptor(b),
        LVM_MAGIC => lvm_header(b),
        0x10C0_0001..=0x10C0_0008 => lock_block(b, w0, off),
        HB_FREE | HB_LOCKED => heartbeat(b, off),
        DIR6_VERSION | DIR6_DEBUG_VERSION => dir_header6(b),
        KDMV => sparse_kdmv(b),
        COWD => sparse_cowd(b),
        MRVN => nvram(b),
        _ => text(b)
            .or_else(|| vmware_log(b))
            .or_else(|| dir5(b))
            .or_else(|| dir6_block(b))
            .or_else(|| sesparse(b))
            .or_else(|| if off.is_multiple_of(GUEST_ALIGN) { guest(b) } else { None }),
    }
}

/// Heartbeat slot states (`FS3_HB_FREE`, and a slot held by a host).
const HB_FREE: u32 = 0xABCD_EF01;
const HB_LOCKED: u32 = 0xABCD_EF02;
/// "KDMV" and "COWD" read as little-endian words.
const KDMV: u32 = 0x564D_444B;
const COWD: u32 = 0x4457_4F43;
/// "MRVN", the magic of a VM's .nvram file.
const MRVN: u32 = 0x4E56_524D;
/// Longest first line of a vmware.log kept in a finding.
const LOG_LINE_CAP: usize = 256;
/// Guest structures are looked for only here: virtual disks start on VMFS blocks (1 MiB or
/// sub-blocks of 8 KiB or 64 KiB), and partitions start on 1 MiB or 63-sector boundaries.
const GUEST_ALIGN: u64 = 8192;
/// Cap on recorded text.
const TEXT_CAP: usize = 16 * 1024;

fn heartbeat(b: &[u8], off: u64) -> Option<What> {
    let self_offset = u64_at(b, 4)?;
    (self_offset % SECTOR as u64 == 0 && self_offset <= off).then_some(What::Heartbeat { self_offset })
}

fn dir_header6(b: &[u8]) -> Option<What> {
    let h = DirHeader6::parse(b.get(..DIR6_HEADER_SIZE)?).ok()?;
    (h.self_entry.desc_addr & 7 == 4).then_some(What::DirHeader6 {
        addr: h.self_entry.desc_addr,
        parent: h.parent_entry.desc_addr,
        num_entries: h.num_entries,
    })
}

/// A plausible directory entry: a known type, an FD address, a printable name.
fn plausible(kind: u32, addr: u32, name: &[u8]) -> bool {
    (1..=8).contains(&kind)
        && addr & 7 == 4
        && !name.is_empty()
        && std::str::from_utf8(name).is_ok_and(|s| !s.chars().any(char::is_control))
}

/// The start of a VMFS3/5 directory: "." naming itself, then "..". Entries are read to the end
/// of the lookahead or the next directory start; garbage records are skipped.
fn dir5(b: &[u8]) -> Option<What> {
    // The same test on the raw bytes first: parsing allocates the names, and this runs on
    // nearly every sector of a scan.
    if u32_at(b, 0)? != 2 || b.get(0x0c..0x0e)? != b".\0" {
        return None;
    }
    let first = DirEntry5::parse(b).ok()?;
    let second = DirEntry5::parse(b.get(DIR_ENTRY5_SIZE..)?).ok()?;
    if first.name != b"." || second.name != b".." || first.kind.raw() != 2 || first.desc_addr & 7 != 4 {
        return None;
    }
    let mut entries = Vec::new();
    for (i, rec) in b.chunks_exact(DIR_ENTRY5_SIZE).enumerate() {
        let Ok(e) = DirEntry5::parse(rec) else { break };
        if i > 1 && e.name == b"." {
            break;
        }
        if plausible(e.kind.raw(), e.desc_addr, &e.name) {
            entries.push(seen(e.kind.raw(), e.desc_addr, e.generation, &e.name));
        }
    }
    Some(What::DirEntries { v6: false, entries })
}

fn seen(kind: u32, addr: u32, generation: u32, name: &[u8]) -> SeenEntry {
    SeenEntry { name: String::from_utf8_lossy(name).into_owned(), addr, generation, kind }
}

/// A VMFS6 dirent block: header type 1, and used slots whose entries name their own offset
/// (which agrees with the slot's place in a metadata block).
fn dir6_block(b: &[u8]) -> Option<What> {
    if u16_at(b, 2)? != 1 {
        return None;
    }
    let h = DirBlockHeader6::parse(b).ok()?;
    let slots = usize::from(h.total_slots);
    if slots == 0 || slots > 0x100 {
        return None;
    }
    let mut entries = Vec::new();
    for slot in 0..slots {
        let at = DIR6_BLOCK_HEADER_SIZE + slot * DIR6_ENTRY_SIZE;
        let Some(rec) = b.get(at..at + DIR6_ENTRY_SIZE) else { break };
        if !h.slot_used(slot) {
            continue;
        }
        let Ok(e) = DirEntry6::parse(rec) else { continue };
        if e.self_offset % 0x1000 != at as u64 % 0x1000 && e.self_offset % 0x10000 != at as u64 {
            return None;
        }
        if plausible(e.kind.raw(), e.desc_addr, &e.name) {
            entries.push(seen(e.kind.raw(), e.desc_addr, e.generation, &e.name));
        }
    }
    (!entries.is_empty()).then_some(What::DirEntries { v6: true, entries })
}

/// The text of a descriptor, .vmx or .vmsd at `b[0]`: printable up to a NUL or the cap.
fn text(b: &[u8]) -> Option<What> {
    let c = *b.first()?;
    if !(c == b'#' || c == b'.' || c.is_ascii_alphabetic()) {
        return None;
    }
    let head = &b[..b.len().min(64)];
    let kind = if head.starts_with(b"# Disk DescriptorFile") {
        0
    } else if head.starts_with(b".encoding") || head.starts_with(b"config.version") {
        let t = &b[..b.len().min(4096)];
        if contains(t, b"virtualHW.version") || contains(t, b"config.version") {
            1
        } else if contains(t, b"snapshot.") {
            2
        } else {
            return None;
        }
    } else if head.starts_with(b"snapshot.lastUID") || head.starts_with(b"snapshot.numSnapshots") {
        2
    } else {
        return None;
    };
    let end = b.iter().take(TEXT_CAP).position(|&c| c == 0).unwrap_or(b.len().min(TEXT_CAP));
    let body = &b[..end];
    if body.iter().any(|&c| c < 0x09 || (c > 0x0D && c < 0x20)) {
        return None;
    }
    let text = String::from_utf8_lossy(body).into_owned();
    Some(match kind {
        0 => What::VmdkDescriptor { text },
        1 => What::Vmx { text },
        _ => What::Vmsd { text },
    })
}

/// The start of a `vmware.log`: an ISO timestamp with milliseconds and "|" at the very start,
/// and a first line saying "Log for VMware" (each log file, rotated or not, begins so; a line in
/// the middle of a log that happens to start a sector does not).
fn vmware_log(b: &[u8]) -> Option<What> {
    if !b.first()?.is_ascii_digit() || !iso_stamp(b.get(..25)?) {
        return None;
    }
    let head = &b[..b.len().min(LOG_LINE_CAP)];
    let line = &head[..head.iter().position(|&c| c == b'\n').unwrap_or(head.len())];
    if !contains(line, b"Log for VMware") || line.iter().any(|&c| c < 0x20 && c != b'\t') {
        return None;
    }
    Some(What::VmwareLog { first: String::from_utf8_lossy(line).into_owned() })
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ|` (25 bytes).
pub fn iso_stamp(b: &[u8]) -> bool {
    const PATTERN: &[u8; 25] = b"dddd-dd-ddTdd:dd:dd.dddZ|";
    b.len() >= PATTERN.len()
        && PATTERN.iter().zip(b).all(|(&p, &c)| if p == b'd' { c.is_ascii_digit() } else { p == c })
}

/// A .nvram file: "MRVN", a small version, then a first section with a four-letter tag.
fn nvram(b: &[u8]) -> Option<What> {
    let version = u32_at(b, 4)?;
    let tag = b.get(8..12)?;
    (version > 0 && version < 256 && tag.iter().all(|&c| nvram_tag_byte(c))).then_some(What::Nvram { version })
}

/// A byte of an NVRAM section tag ("CMOS", "ESCD", "EFI_"..).
pub fn nvram_tag_byte(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_'
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn sparse_kdmv(b: &[u8]) -> Option<What> {
    let sectors = u64_at(b, 12)?;
    let grain = u64_at(b, 20)?;
    (grain.is_power_of_two() && grain <= 0x800 && sectors > 0 && sectors < 1 << 40)
        .then(|| What::SparseHeader { format: "KDMV".into(), capacity: sectors * 512 })
}

fn sparse_cowd(b: &[u8]) -> Option<What> {
    let sectors = u32_at(b, 12)?;
    (u32_at(b, 4)? == 1 && sectors > 0)
        .then(|| What::SparseHeader { format: "COWD".into(), capacity: u64::from(sectors) * 512 })
}

fn sesparse(b: &[u8]) -> Option<What> {
    if u64_at(b, 0)? != crate::vdisk::sesparse::SESPARSE_MAGIC {
        return None;
    }
    let sectors = u64_at(b, 16)?;
    (sectors > 0 && sectors < 1 << 40)
        .then(|| What::SparseHeader { format: "SEsparse".into(), capacity: sectors * 512 })
}

/// MBR/GPT (boot signature and a sane table), NTFS, FAT and ext boot blocks.
fn guest(b: &[u8]) -> Option<What> {
    if b.get(3..11) == Some(b"NTFS    ") && u16_at(b, 510)? == 0xAA55 {
        let sectors = u64_at(b, 0x28)?;
        let bps = u64::from(u16_at(b, 0x0B)?);
        return Some(What::Guest { fs: "ntfs".into(), size: sectors.checked_mul(bps) });
    }
    if b.get(0x52..0x5A) == Some(b"FAT32   ") && u16_at(b, 510)? == 0xAA55 {
        let sectors = u64::from(u32_at(b, 0x20)?);
        let bps = u64::from(u16_at(b, 0x0B)?);
        return Some(What::Guest { fs: "fat".into(), size: sectors.checked_mul(bps) });
    }
    if u16_at(b, 0x438)? == 0xEF53 && u32_at(b, 0x400)? != 0 {
        let blocks = u64::from(u32_at(b, 0x404)?);
        let log = u32_at(b, 0x418)?;
        let size = (log < 8).then(|| blocks << (10 + log));
        return Some(What::Guest { fs: "ext".into(), size });
    }
    if u16_at(b, 510)? == 0xAA55 {
        // Partition entries: status 0 or 0x80, and at least one with a type and a size.
        let mut end = 0u64;
        for i in 0..4 {
            let e = b.get(446 + 16 * i..446 + 16 * (i + 1))?;
            if e[0] != 0 && e[0] != 0x80 {
                return None;
            }
            let start = u64::from(u32_at(e, 8)?);
            let len = u64::from(u32_at(e, 12)?);
            if e[4] != 0 && len > 0 {
                end = end.max((start + len) * 512);
            }
        }
        if end == 0 {
            return None;
        }
        if b.get(512..520) == Some(b"EFI PART") {
            let last = u64_at(b, 512 + 0x20)?;
            return Some(What::Guest { fs: "gpt".into(), size: last.checked_add(1).map(|n| n * 512) });
        }
        return Some(What::Guest { fs: "mbr".into(), size: Some(end) });
    }
    None
}

fn fs_descriptor(b: &[u8]) -> Option<What> {
    let d = FsDescriptor::parse(b.get(..crate::vmfs::ondisk::FS_DESCRIPTOR_SIZE)?).ok()?;
    Some(What::FsDescriptor {
        major: d.major,
        uuid: d.uuid.to_string(),
        lv_uuid: d.lv_uuid.to_string(),
        label: d.label.clone(),
        block_size: d.file_block_size,
    })
}

fn lvm_header(b: &[u8]) -> Option<What> {
    let h = LvmDeviceHeader::parse(b).ok()?;
    Some(What::LvmHeader {
        major: h.major,
        dev_uuid: h.dev_id.to_string(),
        data_offset: h.data_offset,
        total_bytes: h.total_bytes,
    })
}

/// A lock block: an FD (its metadata follows at +0x200 on VMFS3/5, +md on VMFS6) or a resource
/// cluster header. The self offset must be sector aligned and not past the source offset.
fn lock_block(b: &[u8], kind: u32, off: u64) -> Option<What> {
    let lock = DiskLock::parse(b).ok()?;
    if lock.self_offset % SECTOR as u64 != 0 || lock.self_offset > off {
        return None;
    }
    if kind != LOCK_TYPE_FD {
        return Some(What::ResourceCluster { lock_type: kind, self_offset: lock.self_offset });
    }
    // VMFS6 keeps the metadata one md block (4 KiB, or larger) in; its "fdmd" tells.
    for meta_off in [0x200usize, 0x1000, 0x2000, 0x10000] {
        let Some(m) = b.get(meta_off..meta_off + 0x90) else { continue };
        let v6 = u32_at(m, 0x64) == Some(0x6664_6D64);
        if meta_off != 0x200 && !v6 {
            continue;
        }
        let Ok(meta) = FileMeta::parse(m) else { continue };
        // The descriptor names its own address: an FD address has type bits 4 (`TYPE_FD`).
        if meta.desc_addr & 7 != 4 || meta.kind.raw() == 0 || meta.kind.raw() > 8 {
            continue;
        }
        return Some(What::Fd {
            self_offset: lock.self_offset,
            addr: meta.desc_addr,
            generation: meta.generation,
            links: meta.link_count,
            fd_type: meta.kind.raw(),
            size: meta.size,
            zla: meta.zla.raw(),
            block_size: meta.block_size,
            mtime: meta.mtime,
            ctime: meta.ctime,
            mode: meta.mode,
            parent: meta.parent_fd,
            v6,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(b: &[u8]) -> Option<What> {
        let mut buf = b.to_vec();
        buf.resize(4096, 0);
        let mut out = Vec::new();
        classify(&buf, 0..512, 0, &mut out);
        out.pop().map(|(_, w)| w)
    }

    #[test]
    fn vmware_log_starts_only() {
        let log = b"2025-06-08T01:02:03.004Z| vmx| I005: Log for VMware ESX pid=2 version=7.0.3\n2025-06-08T01:02:03.010Z| vmx| I005: The host is x86_64.\n";
        assert!(matches!(one(log), Some(What::VmwareLog { first }) if first.ends_with("version=7.0.3")));
        // A later line of a log, a broken stamp, and a stamp at the end of the buffer.
        assert_eq!(one(&log[77..]), None);
        assert_eq!(one(b"2025-06-08 01:02:03.004Z| vmx| I005: Log for VMware ESX"), None);
        assert!(!iso_stamp(b"2025-06-08T01:02:03.004Z"));
    }

    #[test]
    fn nvram_header() {
        assert_eq!(one(b"MRVN\x01\0\0\0CMOS\x80\0\0\0"), Some(What::Nvram { version: 1 }));
        assert_eq!(one(b"MRVN\0\0\0\0CMOS"), None);
        assert_eq!(one(b"MRVN\x01\0\0\0cm\x01s"), None);
    }
}
