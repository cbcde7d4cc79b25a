//! FAT12/16/32: our own reader, because the content of a file must come as runs over our
//! source (the `fatfs` crate only offers `Read` over its own I/O and hides cluster chains and
//! deleted entries, both of which recovery needs).
//!
//! Boot sector fields at their offsets (Microsoft's FAT specification): bytes per sector 0x0B,
//! sectors per cluster 0x0D, reserved sectors 0x0E, FAT count 0x10, root entries 0x11, total
//! sectors 0x13 (16-bit) / 0x20 (32-bit), FAT size 0x16 (16-bit) / 0x24 (32-bit), FAT32 root
//! cluster 0x2C, label 0x2B (FAT12/16) / 0x47 (FAT32). The FAT type follows from the cluster
//! count alone, as the specification says.
//!
//! Deleted entries (first byte 0xE5) are listed as deleted; their long name survives in the
//! deleted LFN entries before them. Their content is taken from the first cluster on, assumed
//! contiguous (the chain is gone): [`Confidence::Medium`] when every such cluster is free,
//! [`Confidence::Low`] when some are in use again.

use super::error::corrupt;
use super::{Confidence, Entry, GuestError, GuestFs, Kind, Run, RunFile, Target};
use crate::block::{Source, read_vec};
use crate::le::{u16_at, u32_at};
use std::sync::Arc;

/// Most FAT entries held in memory (a 1 GiB FAT32 table is 256 Mi entries; real ones are far
/// below this; bigger claims are damage).
const MAX_FAT_ENTRIES: u64 = 64 << 20;
/// Largest directory read (the specification allows 65536 entries of 32 bytes).
const MAX_DIR_BYTES: u64 = 65536 * 32;

/// Whether a boot sector looks like FAT: a jump, a sane BPB and the 0x55AA signature, and not
/// NTFS or exFAT (which share the jump).
pub fn looks_like_fat(b: &[u8]) -> bool {
    let jump = matches!(b.first(), Some(0xEB) | Some(0xE9));
    let sig = b.get(510..512) == Some([0x55, 0xAA].as_slice());
    let other = matches!(b.get(3..11), Some(x) if x == b"NTFS    " || x == b"EXFAT   ");
    jump && sig && !other && Bpb::parse(b).is_ok()
}

/// FAT width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatType {
    /// 12-bit entries.
    Fat12,
    /// 16-bit entries.
    Fat16,
    /// 32-bit entries (28 used).
    Fat32,
}

/// The geometry from the boot sector, checked.
#[derive(Clone, Debug)]
pub struct Bpb {
    /// FAT width.
    pub fat_type: FatType,
    /// Bytes per cluster.
    pub cluster_size: u64,
    /// Byte offset of the first FAT.
    pub fat_offset: u64,
    /// Bytes of one FAT.
    pub fat_bytes: u64,
    /// Byte offset of the FAT12/16 root directory.
    pub root_offset: u64,
    /// Bytes of the FAT12/16 root directory.
    pub root_bytes: u64,
    /// Byte offset of cluster 2.
    pub data_offset: u64,
    /// Number of data clusters.
    pub clusters: u64,
    /// FAT32 root cluster.
    pub root_cluster: u32,
    /// Label from the boot sector.
    pub label: Option<String>,
}

impl Bpb {
    /// Parse and check a boot sector. The error says which field is wrong.
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        let f16 = |o: usize| u16_at(b, o).map(u64::from).ok_or("boot sector too short");
        let f32 = |o: usize| u32_at(b, o).map(u64::from).ok_or("boot sector too short");
        let bps = f16(0x0B)?;
        if !(512..=4096).contains(&bps) || !bps.is_power_of_two() {
            return Err(format!("bytes per sector {bps} (0x0B) is not 512..4096, a power of two"));
        }
        let spc = b.get(0x0D).copied().map(u64::from).unwrap_or(0);
        if spc == 0 || !spc.is_power_of_two() {
            return Err(format!("sectors per cluster {spc} (0x0D) is not a power of two"));
        }
        let reserved = f16(0x0E)?;
        let fats = b.get(0x10).copied().map(u64::from).unwrap_or(0);
        if reserved == 0 || fats == 0 {
            return Err(format!("reserved sectors {reserved} (0x0E) or FAT count {fats} (0x10) is zero"));
        }
        let root_entries = f16(0x11)?;
        let total = match f16(0x13)? {
            0 => f32(0x20)?,
            n => n,
        };
        let fat_sectors = match f16(0x16)? {
            0 => f32(0x24)?,
            n => n,
        };
        if fat_sectors == 0 || total == 0 {
            return Err(format!("FAT size {fat_sectors} or total sectors {total} is zero"));
        }
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let meta = reserved + fats * fat_sectors + root_sectors;
        if meta >= total {
            return Err(format!("{meta} metadata sectors leave no data area in {total} sectors"));
        }
        let clusters = (total - meta) / spc;
        let fat_type = if clusters < 4085 {
            FatType::Fat12
        } else if clusters < 65525 {
            FatType::Fat16
        } else {
            FatType::Fat32
        };
        if (fat_type == FatType::Fat32) != (root_entries == 0) {
            return Err(format!("{clusters} clusters with {root_entries} root entries (0x11): not a consistent FAT"));
        }
        let label_at = if fat_type == FatType::Fat32 { 0x47 } else { 0x2B };
        let label = b
            .get(label_at..label_at + 11)
            .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
            .filter(|l| !l.is_empty() && l != "NO NAME");
        Ok(Self {
            fat_type,
            cluster_size: bps * spc,
            fat_offset: reserved * bps,
            fat_bytes: fat_sectors * bps,
            root_offset: (reserved + fats * fat_sectors) * bps,
            root_bytes: root_sectors * bps,
            data_offset: meta * bps,
            clusters,
            root_cluster: f32(0x2C)? as u32,
            label,
        })
    }
}

/// An open FAT volume.
pub struct Fat {
    vol: Source,
    bpb: Bpb,
    /// The first FAT, decoded (index = cluster number).
    fat: Vec<u32>,
}

/// A FAT entry's meaning.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Free,
    Cluster(u32),
    End,
    Bad,
}

impl Fat {
    /// Open the FAT volume on `vol`.
    pub fn open(vol: Source) -> Result<Self, GuestError> {
        let name = vol.name();
        let boot = read_vec(&*vol, 0, 512.min(vol.len() as usize))?;
        let bpb = Bpb::parse(&boot).map_err(|w| corrupt("FAT boot sector", 0, &name, w))?;
        if bpb.data_offset > vol.len() {
            return Err(corrupt(
                "FAT boot sector",
                0,
                &name,
                format!("data area at {:#x} is past the volume", bpb.data_offset),
            ));
        }
        let entries = (bpb.clusters + 2).min(MAX_FAT_ENTRIES);
        let bytes_needed = match bpb.fat_type {
            FatType::Fat12 => (entries * 3).div_ceil(2),
            FatType::Fat16 => entries * 2,
            FatType::Fat32 => entries * 4,
        }
        .min(bpb.fat_bytes)
        .min(vol.len().saturating_sub(bpb.fat_offset));
        let raw = read_vec(&*vol, bpb.fat_offset, bytes_needed as usize)?;
        let fat = (0..entries)
            .map(|c| match bpb.fat_type {
                FatType::Fat12 => {
                    let o = (c + c / 2) as usize;
                    let w = u32::from(u16_at(&raw, o).unwrap_or(0));
                    if c % 2 == 0 { w & 0xFFF } else { w >> 4 }
                }
                FatType::Fat16 => u32::from(u16_at(&raw, (c * 2) as usize).unwrap_or(0)),
                FatType::Fat32 => u32_at(&raw, (c * 4) as usize).unwrap_or(0) & 0x0FFF_FFFF,
            })
            .collect();
        Ok(Self { vol, bpb, fat })
    }

    /// The checked geometry.
    pub fn bpb(&self) -> &Bpb {
        &self.bpb
    }

    fn next(&self, c: u32) -> Next {
        let v = self.fat.get(c as usize).copied().unwrap_or(0);
        let (bad, end) = match self.bpb.fat_type {
            FatType::Fat12 => (0xFF7, 0xFF8),
            FatType::Fat16 => (0xFFF7, 0xFFF8),
            FatType::Fat32 => (0x0FFF_FFF7, 0x0FFF_FFF8),
        };
        match v {
            0 => Next::Free,
            v if v == bad => Next::Bad,
            v if v >= end => Next::End,
            v if v < 2 || u64::from(v) >= self.bpb.clusters + 2 => Next::Bad,
            v => Next::Cluster(v),
        }
    }

    fn valid(&self, c: u32) -> bool {
        c >= 2 && u64::from(c) < self.bpb.clusters + 2
    }

    fn cluster_offset(&self, c: u32) -> u64 {
        self.bpb.data_offset + (u64::from(c) - 2) * self.bpb.cluster_size
    }

    /// The runs of a live chain from `first`, up to `limit` bytes (the chain ends at its end
    /// mark, a bad or free entry, a loop, or `limit`: what is short becomes missing).
    fn chain_runs(&self, first: u32, limit: u64) -> Vec<Run> {
        let place = |c| self.valid(c).then(|| self.cluster_offset(c));
        let next = |c| match self.next(c) {
            Next::Cluster(n) => Some(n),
            _ => None,
        };
        super::runs::chain_runs(first, limit, self.bpb.cluster_size, self.bpb.clusters, place, next)
    }

    /// The runs of a deleted file: `len` bytes contiguous from `first`, and how sure that is.
    fn deleted_runs(&self, first: u32, len: u64) -> (Vec<Run>, Confidence) {
        if !self.valid(first) {
            return (Vec::new(), Confidence::Low);
        }
        let n = len.div_ceil(self.bpb.cluster_size).max(1);
        let last = (u64::from(first) + n).min(self.bpb.clusters + 2);
        let free = (u64::from(first)..last).all(|c| self.next(c as u32) == Next::Free);
        let avail = (last - u64::from(first)) * self.bpb.cluster_size;
        let run = Run { offset: 0, len: avail.min(len.max(1)), target: Target::Volume(self.cluster_offset(first)) };
        (vec![run], if free { Confidence::Medium } else { Confidence::Low })
    }

    /// The bytes of a directory.
    fn dir_bytes(&self, dir: &Entry) -> Result<(Vec<u8>, u64), GuestError> {
        if dir.id == 0 && !dir.deleted && self.bpb.fat_type != FatType::Fat32 {
            let len = self.bpb.root_bytes.min(MAX_DIR_BYTES);
            return Ok((read_vec(&*self.vol, self.bpb.root_offset, len as usize)?, self.bpb.root_offset));
        }
        let first = if dir.id == 0 { self.bpb.root_cluster } else { dir.id as u32 };
        let runs = if dir.deleted {
            // A deleted directory's size is 0: read its first cluster only.
            self.deleted_runs(first, self.bpb.cluster_size).0
        } else {
            self.chain_runs(first, MAX_DIR_BYTES)
        };
        let len: u64 = runs.iter().map(|r| r.len).sum();
        let at = match runs.first().map(|r| r.target) {
            Some(Target::Volume(v)) => v,
            _ => return Ok((Vec::new(), 0)),
        };
        let f = RunFile::new(self.vol.name(), Arc::clone(&self.vol), runs, len);
        Ok((read_vec(&f, 0, len as usize)?, at))
    }
}

/// Unix mode bits for a FAT or exFAT entry: the read-only attribute (bit 0) drops the write bits.
pub(crate) fn dos_mode(kind: Kind, read_only: bool) -> u32 {
    match kind {
        Kind::Dir => 0o040755,
        _ if read_only => 0o100444,
        _ => 0o100644,
    }
}

/// A DOS date and time as Unix seconds (read as UTC). `None` for the zero date.
pub(crate) fn dos_time(date: u16, time: u16) -> Option<i64> {
    if date == 0 {
        return None;
    }
    let y = 1980 + i64::from(date >> 9);
    let m = i64::from((date >> 5) & 0xF).clamp(1, 12);
    let d = i64::from(date & 0x1F).clamp(1, 31);
    // Days from civil (Howard Hinnant's algorithm), as calendar.rs does the inverse.
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = i64::from(time >> 11) * 3600 + i64::from((time >> 5) & 0x3F) * 60 + i64::from(time & 0x1F) * 2;
    Some(days * 86400 + secs)
}

/// The checksum of an 8.3 name that its LFN entries carry.
fn lfn_checksum(short: &[u8]) -> u8 {
    short.iter().fold(0u8, |s, &c| s.rotate_right(1).wrapping_add(c))
}

/// The 13 UCS-2 units of an LFN entry.
fn lfn_units(e: &[u8]) -> impl Iterator<Item = u16> + '_ {
    [1usize, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30].into_iter().filter_map(|o| u16_at(e, o))
}

/// The 8.3 name, with the NT lower-case flags (0x0C) applied. `deleted` puts `_` for the lost
/// first character.
fn short_name(e: &[u8], deleted: bool) -> String {
    let nt = e.get(0x0C).copied().unwrap_or(0);
    let conv = |b: &[u8], lower: bool| -> String {
        b.iter()
            .map(|&c| {
                let c = char::from(c);
                if lower { c.to_ascii_lowercase() } else { c }
            })
            .collect::<String>()
            .trim_end()
            .to_string()
    };
    let mut base = e.get(0..8).unwrap_or(&[]).to_vec();
    if let Some(f) = base.first_mut() {
        if deleted {
            *f = b'_';
        } else if *f == 0x05 {
            *f = 0xE5;
        }
    }
    let base = conv(&base, nt & 0x08 != 0);
    let ext = conv(e.get(8..11).unwrap_or(&[]), nt & 0x10 != 0);
    if ext.is_empty() { base } else { format!("{base}.{ext}") }
}

/// Parse directory bytes into entries. `allow_deleted`: list 0xE5 entries.
pub fn parse_dir(fat: Option<&Fat>, bytes: &[u8], fat32: bool) -> Vec<Entry> {
    let mut out = Vec::new();
    // Pending LFN pieces: (checksum, sequence number, 13 units), in physical order.
    let mut lfn: Vec<(u8, u8, Vec<u16>)> = Vec::new();
    let mut lfn_deleted = false;
    for e in bytes.chunks_exact(32) {
        let first = e[0];
        if first == 0 {
            break;
        }
        let attr = e[11];
        let deleted = first == 0xE5;
        if attr & 0x3F == 0x0F {
            if deleted != lfn_deleted {
                lfn.clear();
            }
            lfn_deleted = deleted;
            lfn.push((e[13], first & 0x1F, lfn_units(e).collect()));
            continue;
        }
        let short = &e[0..11];
        let pieces = std::mem::take(&mut lfn);
        if !deleted && (short == b".          " || short == b"..         ") {
            continue;
        }
        if attr & 0x08 != 0 {
            // The volume label (or a stray LFN-looking entry): not a file.
            continue;
        }
        // Live: every piece must carry this name's checksum and the sequence must count down to 1.
        // Deleted: the first character is gone, so only the pieces' own agreement is checked.
        let long = if pieces.is_empty() || lfn_deleted != deleted {
            None
        } else {
            let sum = pieces[0].0;
            let ok = pieces.iter().all(|p| p.0 == sum)
                && (deleted
                    || (sum == lfn_checksum(short)
                        && pieces.iter().rev().enumerate().all(|(i, p)| usize::from(p.1) == i + 1)));
            ok.then(|| {
                let units: Vec<u16> = pieces.iter().rev().flat_map(|p| p.2.iter().copied()).collect();
                let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
                let units: Vec<u16> = units[..end].iter().copied().filter(|&u| u != 0xFFFF).collect();
                String::from_utf16_lossy(&units)
            })
        };
        let name = long.filter(|n| !n.is_empty()).unwrap_or_else(|| short_name(e, deleted));
        let hi = if fat32 { u32::from(u16_at(e, 0x14).unwrap_or(0)) } else { 0 };
        let first_cluster = hi << 16 | u32::from(u16_at(e, 0x1A).unwrap_or(0));
        let size = u64::from(u32_at(e, 0x1C).unwrap_or(0));
        let kind = if attr & 0x10 != 0 { Kind::Dir } else { Kind::File };
        let u = |o: usize| u16_at(e, o).unwrap_or(0);
        let confidence = match (deleted, fat) {
            (true, Some(f)) => Some(f.deleted_runs(first_cluster, size).1),
            (true, None) => Some(Confidence::Low),
            _ => None,
        };
        out.push(Entry {
            name,
            raw_name: None,
            kind,
            size: if kind == Kind::Dir { 0 } else { size },
            mtime: dos_time(u(0x18), u(0x16)),
            atime: dos_time(u(0x12), 0),
            ctime: dos_time(u(0x10), u(0x0E)),
            mode: Some(dos_mode(kind, attr & 0x01 != 0)),
            deleted,
            confidence,
            streams: Vec::new(),
            id: u64::from(first_cluster),
        });
    }
    out
}

impl GuestFs for Fat {
    fn fs_type(&self) -> String {
        format!("{:?}", self.bpb.fat_type).to_uppercase()
    }
    fn label(&self) -> Option<String> {
        self.bpb.label.clone()
    }
    fn root(&self) -> Entry {
        Entry::bare_root(0, Some(0o040755))
    }
    fn list(&self, dir: &Entry) -> Result<Vec<Entry>, GuestError> {
        if dir.kind != Kind::Dir {
            return Err(GuestError::NotADirectory { path: dir.name.clone() });
        }
        let (bytes, _) = self.dir_bytes(dir)?;
        let mut v = parse_dir(Some(self), &bytes, self.bpb.fat_type == FatType::Fat32);
        // A subdirectory whose cluster field is 0 would list the root again.
        v.retain(|e| !(e.kind == Kind::Dir && e.id == 0));
        Ok(v)
    }
    fn open(&self, file: &Entry, stream: Option<&str>) -> Result<Source, GuestError> {
        let name = format!("{}:{}", self.vol.name(), file.name);
        if let Some(s) = stream {
            return Err(GuestError::NotFound { path: format!("{}:{s}", file.name) });
        }
        let first = file.id as u32;
        let runs = if file.size == 0 {
            Vec::new()
        } else if file.deleted {
            self.deleted_runs(first, file.size).0
        } else {
            self.chain_runs(first, file.size)
        };
        Ok(Arc::new(RunFile::new(name, Arc::clone(&self.vol), runs, file.size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_and_names() {
        assert_eq!(lfn_checksum(b"FOO     TXT"), lfn_checksum(b"FOO     TXT"));
        let mut e = [0u8; 32];
        e[..11].copy_from_slice(b"README  TXT");
        e[0x0C] = 0x18;
        assert_eq!(short_name(&e, false), "readme.txt");
        assert_eq!(short_name(&e, true), "_eadme.txt");
        assert_eq!(dos_time(0x21, 0), Some(315_532_800)); // 1980-01-01
    }

    #[test]
    fn bad_boot_sectors_name_the_field() {
        let mut b = [0u8; 512];
        assert!(Bpb::parse(&b).unwrap_err().contains("0x0B"));
        b[0x0B] = 0x00;
        b[0x0C] = 0x02;
        b[0x0D] = 3;
        assert!(Bpb::parse(&b).unwrap_err().contains("0x0D"));
        assert!(Bpb::parse(&b[..10]).is_err());
    }
}
