//! exFAT: our own reader, for the same reasons as [`super::fat`]: a file's content must come as
//! cluster runs over our source, and deleted entry sets must be listed. The crates we looked at
//! (`exfat-fs`, `hadris-fat`; ../shared/research/crates.md) read through their own I/O and skip
//! entries whose in-use bit is clear, so they give neither.
//!
//! Boot sector fields at their offsets (Microsoft's exFAT specification, section 3.1): magic
//! `EXFAT   ` 0x03, MustBeZero 0x0B..0x40, VolumeLength 0x48 (sectors), FatOffset 0x50 and
//! FatLength 0x54 (sectors), ClusterHeapOffset 0x58 (sectors), ClusterCount 0x5C,
//! FirstClusterOfRootDirectory 0x60, VolumeFlags 0x6A (bit 0 ActiveFat), BytesPerSectorShift
//! 0x6C, SectorsPerClusterShift 0x6D, NumberOfFats 0x6E, signature 0x55AA at 0x1FE. The boot
//! region is 12 sectors (boot sector, 8 extended boot sectors, OEM parameters, reserved, and the
//! boot checksum sector); its backup follows at sector 12 and is used when the main one fails
//! its checks or its checksum.
//!
//! Directories hold 32-byte entries; a file is an entry set: File 0x85 (secondary count 0x01,
//! set checksum 0x02, attributes 0x04, create/modify/access timestamps 0x08/0x0C/0x10, their 10 ms
//! increments 0x14/0x15 and UTC offsets 0x16/0x17/0x18), Stream Extension 0xC0 (flags 0x01 with
//! NoFatChain bit 1, name length 0x03, ValidDataLength 0x08, first cluster 0x14, DataLength 0x18)
//! and File Name 0xC1 entries (15 UTF-16 units from 0x02). The root also holds the allocation
//! bitmap 0x81 (first cluster 0x14, length 0x18) and the label 0x83 (length 0x01, units 0x02).
//! A NoFatChain file is contiguous; others follow the FAT. Bytes past ValidDataLength read as
//! zeros (a hole).
//!
//! Deleted files: entry sets whose in-use bit is clear (0x05, 0x40, 0x41) and whose set checksum
//! still holds are listed as deleted. A NoFatChain file's clusters are known exactly:
//! [`Confidence::High`] when the bitmap still marks them free, [`Confidence::Low`] when some are
//! allocated again. A FAT-chained file's chain is assumed contiguous from its first cluster
//! ([`Confidence::Medium`] when free, else `Low`).

use super::bitmap::Bitmap;
use super::error::corrupt;
use super::{Confidence, Entry, GuestError, GuestFs, Kind, Run, RunFile, Target};
use crate::block::{BlockSource, Source, read_vec};
use crate::le::{u8_at, u16_at, u32_at, u64_at};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most FAT entries held in memory (256 MiB of table; bigger claims are damage).
const MAX_FAT_ENTRIES: u64 = 64 << 20;
/// Largest directory read (the specification's limit is 256 MiB; real ones are far smaller).
const MAX_DIR_BYTES: u64 = 64 << 20;
/// Sectors in a boot region (main or backup).
const BOOT_REGION_SECTORS: u64 = 12;
/// Bit of the id that marks a NoFatChain (contiguous) allocation.
const ID_NO_FAT_CHAIN: u64 = 1 << 32;

/// Whether `b` (a volume's first sector) is an exFAT boot sector: the name and a sane geometry.
pub fn looks_like_exfat(b: &[u8]) -> bool {
    b.get(3..11) == Some(b"EXFAT   ".as_slice()) && Geometry::parse(b).is_ok()
}

/// Whether `vol` holds an exFAT backup boot sector (its main one being damaged).
pub fn has_backup_boot(vol: &dyn BlockSource) -> bool {
    backup_offsets().any(|at| {
        let end = at.saturating_add(512);
        end <= vol.len() && read_vec(vol, at, 512).is_ok_and(|b| looks_like_exfat(&b) && sector_at(&b) == Some(at / 12))
    })
}

/// Where a backup boot sector sits for each sector size (sector 12).
fn backup_offsets() -> impl Iterator<Item = u64> {
    (9u32..=12).map(|s| BOOT_REGION_SECTORS << s)
}

/// The sector size a boot sector claims.
fn sector_at(b: &[u8]) -> Option<u64> {
    b.get(0x6C).filter(|s| (9..=12).contains(*s)).map(|s| 1u64 << s)
}

/// The geometry from the boot sector, checked.
#[derive(Clone, Debug)]
pub struct Geometry {
    /// Bytes per sector.
    pub sector_size: u64,
    /// Bytes per cluster.
    pub cluster_size: u64,
    /// Byte offset of the active FAT.
    pub fat_offset: u64,
    /// Bytes of one FAT.
    pub fat_bytes: u64,
    /// Byte offset of cluster 2.
    pub heap_offset: u64,
    /// Number of clusters in the heap.
    pub clusters: u32,
    /// First cluster of the root directory.
    pub root_cluster: u32,
    /// Volume serial number (0x64).
    pub serial: u32,
}

impl Geometry {
    /// Parse and check a boot sector. The error names the field and its offset.
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        let short = || "boot sector shorter than 512 bytes".to_string();
        if b.len() < 512 {
            return Err(short());
        }
        if b.get(3..11) != Some(b"EXFAT   ".as_slice()) {
            return Err("file system name (0x03) is not EXFAT".into());
        }
        if b.get(510..512) != Some([0x55, 0xAA].as_slice()) {
            return Err("boot signature (0x1FE) is not 0x55AA".into());
        }
        if b.get(0x0B..0x40).is_some_and(|z| z.iter().any(|&x| x != 0)) {
            return Err("MustBeZero (0x0B..0x40) holds non-zero bytes".into());
        }
        let byte = |o: usize| b.get(o).copied().ok_or_else(short);
        let f32 = |o: usize| u32_at(b, o).ok_or_else(short);
        let bps_shift = byte(0x6C)?;
        if !(9..=12).contains(&bps_shift) {
            return Err(format!("BytesPerSectorShift {bps_shift} (0x6C) is not 9..12"));
        }
        let spc_shift = byte(0x6D)?;
        if spc_shift > 25 - bps_shift {
            return Err(format!("SectorsPerClusterShift {spc_shift} (0x6D) makes clusters over 32 MiB"));
        }
        let fats = byte(0x6E)?;
        if !(1..=2).contains(&fats) {
            return Err(format!("NumberOfFats {fats} (0x6E) is not 1 or 2"));
        }
        let fat_offset = u64::from(f32(0x50)?);
        let fat_len = u64::from(f32(0x54)?);
        let heap = u64::from(f32(0x58)?);
        let clusters = f32(0x5C)?;
        let root = f32(0x60)?;
        if fat_offset < 24 || fat_len == 0 {
            return Err(format!("FatOffset {fat_offset} (0x50) or FatLength {fat_len} (0x54) out of range"));
        }
        if heap < fat_offset + fat_len * u64::from(fats) {
            return Err(format!("ClusterHeapOffset {heap} (0x58) overlaps the FAT"));
        }
        if clusters == 0 || clusters > 0xFFFF_FFF5 {
            return Err(format!("ClusterCount {clusters} (0x5C) out of range"));
        }
        // The specification's bounds: the FAT holds an entry per cluster, the heap fits the volume.
        if (u64::from(clusters) + 2) * 4 > fat_len << bps_shift {
            return Err(format!("ClusterCount {clusters} (0x5C) does not fit FatLength {fat_len} (0x54)"));
        }
        let vol_len = u64_at(b, 0x48).ok_or_else(short)?;
        if heap + (u64::from(clusters) << spc_shift) > vol_len {
            return Err(format!("ClusterCount {clusters} (0x5C) does not fit VolumeLength {vol_len} (0x48)"));
        }
        if root < 2 || u64::from(root) >= u64::from(clusters) + 2 {
            return Err(format!("FirstClusterOfRootDirectory {root} (0x60) is not a cluster"));
        }
        let active = u16_at(b, 0x6A).unwrap_or(0) & 1;
        let active = if fats == 2 { u64::from(active) } else { 0 };
        Ok(Self {
            sector_size: 1 << bps_shift,
            cluster_size: 1 << (bps_shift + spc_shift),
            fat_offset: (fat_offset + active * fat_len) << bps_shift,
            fat_bytes: fat_len << bps_shift,
            heap_offset: heap << bps_shift,
            clusters,
            root_cluster: root,
            serial: f32(0x64)?,
        })
    }
}

/// The boot checksum over the first 11 sectors of a boot region (VolumeFlags 0x6A..0x6C and
/// PercentInUse 0x70 of the boot sector left out).
pub fn boot_checksum(region: &[u8], sector_size: usize) -> u32 {
    let n = sector_size.saturating_mul(11).min(region.len());
    region.iter().take(n).enumerate().fold(0u32, |sum, (i, &b)| {
        if i == 0x6A || i == 0x6B || i == 0x70 { sum } else { sum.rotate_right(1).wrapping_add(u32::from(b)) }
    })
}

/// The checksum of a directory entry set (bytes 2 and 3 of the first entry, where it is
/// stored, left out). `in_use` sets bit 7 of each entry's type, as it was when the set was
/// written (a deletion clears it afterwards).
fn set_checksum(set: &[u8], in_use: bool) -> u16 {
    set.iter().enumerate().fold(0u16, |sum, (i, &b)| {
        if i == 2 || i == 3 {
            return sum;
        }
        let b = if in_use && i % 32 == 0 { b | 0x80 } else { b };
        sum.rotate_right(1).wrapping_add(u16::from(b))
    })
}

/// An exFAT timestamp (local time, 2 s units) with its 10 ms increment and UTC offset field, as
/// Unix seconds in UTC (local time read as UTC when the offset is not marked valid).
fn timestamp(ts: u32, ms10: u8, utc: u8) -> Option<i64> {
    let t = super::fat::dos_time((ts >> 16) as u16, (ts & 0xFFFF) as u16)?;
    let inc = i64::from(ms10.min(199)) / 100;
    // Bit 7: OffsetValid; bits 0..6: a signed count of 15-minute steps.
    let off = if utc & 0x80 != 0 { i64::from(((utc << 1) as i8) >> 1) * 900 } else { 0 };
    Some(t + inc - off)
}

/// An open exFAT volume.
pub struct Exfat {
    vol: Source,
    geo: Geometry,
    /// Whether the backup boot region was used.
    from_backup: bool,
    /// The active FAT, decoded (index = cluster number).
    fat: Vec<u32>,
    /// The allocation bitmap, when found.
    bitmap: Option<Bitmap>,
    label: Option<String>,
    /// ValidDataLength of the files listed so far whose ValidDataLength is below their size,
    /// by (id, deleted, size): an [`Entry`] has no field for it.
    valid_len: Mutex<HashMap<(u64, bool, u64), u64>>,
}

/// One parsed entry set, before it becomes an [`Entry`].
struct SetInfo {
    entry: Entry,
    valid_len: u64,
}

impl Exfat {
    /// Open the exFAT volume on `vol`: the main boot region, else its backup.
    pub fn open(vol: Source) -> Result<Self, GuestError> {
        let name = vol.name();
        let (geo, from_backup) = Self::boot(&*vol).map_err(|(at, w)| corrupt("exFAT boot sector", at, &name, w))?;
        if geo.heap_offset > vol.len() {
            let what = format!("cluster heap at {:#x} is past the volume", geo.heap_offset);
            return Err(corrupt("exFAT boot sector", 0, &name, what));
        }
        let entries = (u64::from(geo.clusters) + 2).min(MAX_FAT_ENTRIES);
        let bytes = (entries * 4).min(geo.fat_bytes).min(vol.len().saturating_sub(geo.fat_offset));
        let raw = read_vec(&*vol, geo.fat_offset, bytes as usize)?;
        // Entries past what the volume holds read as 0 (end of chain): no allocation beyond it.
        let fat = (0..entries.min(bytes / 4)).map(|c| u32_at(&raw, (c * 4) as usize).unwrap_or(0)).collect();
        let mut fs =
            Self { vol, geo, from_backup, fat, bitmap: None, label: None, valid_len: Mutex::new(HashMap::new()) };
        // The bitmap and the label are entries of the root directory.
        let root = fs.dir_bytes(&fs.root())?;
        for e in root.chunks_exact(32) {
            match e.first().copied().unwrap_or(0) {
                0 => break,
                0x81 if u8_of(e, 1) & 1 == 0 && fs.bitmap.is_none() => {
                    let first = u32_at(e, 0x14).unwrap_or(0);
                    let want = u64::from(fs.geo.clusters).div_ceil(8);
                    let len = u64_at(e, 0x18).unwrap_or(0).min(want).min(fs.vol.len());
                    let runs = fs.chain_runs(first, len);
                    let f = RunFile::new(fs.vol.name(), Arc::clone(&fs.vol), runs, len);
                    fs.bitmap = Some(Bitmap::new(read_vec(&f, 0, len as usize)?));
                }
                0x83 => {
                    let n = usize::from(u8_of(e, 1).min(11));
                    let units: Vec<u16> = (0..n).filter_map(|i| u16_at(e, 2 + 2 * i)).collect();
                    let l = String::from_utf16_lossy(&units);
                    fs.label = Some(l).filter(|l| !l.is_empty());
                }
                _ => {}
            }
        }
        if fs.bitmap.is_none() {
            tracing::warn!("{name}: exFAT allocation bitmap not found; deleted files get low confidence");
        }
        Ok(fs)
    }

    /// The checked geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// Whether the backup boot region was used (the main one failed its checks).
    pub fn from_backup(&self) -> bool {
        self.from_backup
    }

    /// The main boot region when it parses and its checksum holds, else a backup that does,
    /// else the main one if it parses at all (a bad checksum alone does not hide a volume).
    fn boot(vol: &dyn BlockSource) -> Result<(Geometry, bool), (u64, String)> {
        let region = |at: u64, ss: u64| -> Option<Geometry> {
            let len = ss * BOOT_REGION_SECTORS;
            let end = at.checked_add(len)?;
            if end > vol.len() {
                return None;
            }
            let r = read_vec(vol, at, len as usize).ok()?;
            let g = Geometry::parse(&r).ok()?;
            let sum = u32_at(&r, (ss * 11) as usize)?;
            (g.sector_size == ss && boot_checksum(&r, ss as usize) == sum).then_some(g)
        };
        let head = read_vec(vol, 0, vol.len().min(512) as usize).map_err(|e| (0, e.to_string()))?;
        let main = Geometry::parse(&head);
        if let Ok(g) = &main
            && region(0, g.sector_size).is_some()
        {
            return Ok((g.clone(), false));
        }
        for at in backup_offsets() {
            if let Some(g) = region(at, at / BOOT_REGION_SECTORS) {
                tracing::warn!("{}: exFAT main boot region damaged; read from its backup at {at:#x}", vol.name());
                return Ok((g, true));
            }
        }
        match main {
            Ok(g) => {
                tracing::warn!("{}: exFAT boot checksum does not match; read anyway", vol.name());
                Ok((g, false))
            }
            Err(w) => Err((0, w)),
        }
    }

    fn valid(&self, c: u32) -> bool {
        c >= 2 && u64::from(c) < u64::from(self.geo.clusters) + 2
    }

    fn cluster_offset(&self, c: u32) -> u64 {
        self.geo.heap_offset + (u64::from(c) - 2) * self.geo.cluster_size
    }

    /// The runs of a FAT chain from `first`, up to `limit` bytes (it ends at an end mark, a bad
    /// or out-of-range entry, a loop, or `limit`: what is short becomes missing).
    fn chain_runs(&self, first: u32, limit: u64) -> Vec<Run> {
        let place = |c| self.valid(c).then(|| self.cluster_offset(c));
        let next = |c: u32| self.fat.get(c as usize).copied();
        super::runs::chain_runs(first, limit, self.geo.cluster_size, u64::from(self.geo.clusters), place, next)
    }

    /// `len` bytes contiguous from cluster `first`, cut at the heap's end (the rest missing).
    fn contiguous_runs(&self, first: u32, len: u64) -> Vec<Run> {
        if !self.valid(first) {
            return Vec::new();
        }
        let avail = (u64::from(self.geo.clusters) + 2 - u64::from(first)) * self.geo.cluster_size;
        vec![Run { offset: 0, len: len.min(avail), target: Target::Volume(self.cluster_offset(first)) }]
    }

    /// How sure the content of a deleted file is: its clusters free in the bitmap or not.
    fn deleted_confidence(&self, first: u32, len: u64, no_fat_chain: bool) -> Confidence {
        if len == 0 {
            return Confidence::High;
        }
        if !self.valid(first) {
            return Confidence::Low;
        }
        let n = len.div_ceil(self.geo.cluster_size);
        let last = (u64::from(first) + n).min(u64::from(self.geo.clusters) + 2);
        let free = self.bitmap.as_ref().and_then(|b| b.allocated(u64::from(first) - 2, last - 2)) == Some(0);
        match (free, no_fat_chain) {
            (true, true) => Confidence::High,
            (true, false) => Confidence::Medium,
            (false, _) => Confidence::Low,
        }
    }

    /// The runs of an entry's content (`len` bytes; `valid` of them hold data, the rest a hole).
    fn runs(&self, e: &Entry, len: u64, valid: u64) -> Vec<Run> {
        let first = (e.id & 0xFFFF_FFFF) as u32;
        let no_fat_chain = e.id & ID_NO_FAT_CHAIN != 0;
        if len == 0 {
            return Vec::new();
        }
        let mut runs =
            if no_fat_chain || e.deleted { self.contiguous_runs(first, len) } else { self.chain_runs(first, len) };
        if valid < len {
            // Cut the runs at ValidDataLength: what follows reads as zeros.
            let mut out = Vec::with_capacity(runs.len().saturating_add(1));
            let mut covered = 0;
            for r in runs.drain(..) {
                if r.offset >= valid {
                    break;
                }
                let r = Run { len: r.len.min(valid - r.offset), ..r };
                covered = r.offset + r.len;
                out.push(r);
            }
            if covered == valid {
                out.push(Run { offset: valid, len: len - valid, target: Target::Hole });
            }
            runs = out;
        }
        runs
    }

    /// The bytes of a directory.
    fn dir_bytes(&self, dir: &Entry) -> Result<Vec<u8>, GuestError> {
        let limit = if dir.size == 0 { MAX_DIR_BYTES } else { dir.size.min(MAX_DIR_BYTES) };
        let limit = limit.min(self.vol.len());
        let runs = self.runs(dir, limit, limit);
        let len: u64 = runs.iter().map(|r| r.len).sum::<u64>().min(limit);
        let f = RunFile::new(self.vol.name(), Arc::clone(&self.vol), runs, len);
        Ok(read_vec(&f, 0, len as usize)?)
    }

    /// Parse one entry set starting at `set` (File entry first), `deleted` when its in-use bits
    /// are clear. `None` when the set does not hold together.
    fn parse_set(&self, set: &[u8], deleted: bool) -> Option<SetInfo> {
        let (stream_t, name_t) = if deleted { (0x40, 0x41) } else { (0xC0, 0xC1) };
        let f = set.get(0..32)?;
        let s = set.get(32..64)?;
        if u8_of(s, 0) != stream_t {
            return None;
        }
        let stored = u16_at(f, 2)?;
        if set_checksum(set, deleted) != stored {
            if deleted {
                return None;
            }
            tracing::warn!("{}: exFAT entry set with a bad checksum listed anyway", self.vol.name());
        }
        let name_len = usize::from(u8_of(s, 3));
        let mut units = Vec::with_capacity(name_len);
        for n in set.get(64..)?.chunks_exact(32) {
            if u8_of(n, 0) != name_t {
                break;
            }
            units.extend((0..15).filter_map(|i| u16_at(n, 2 + 2 * i)));
        }
        units.truncate(name_len);
        let name = String::from_utf16_lossy(&units);
        if name.is_empty() {
            return None;
        }
        let attr = u16_at(f, 4)?;
        let flags = u8_of(s, 1);
        let no_fat_chain = flags & 2 != 0;
        let valid_len = u64_at(s, 0x08)?;
        let first = u32_at(s, 0x14)?;
        let size = u64_at(s, 0x18)?;
        let kind = if attr & 0x10 != 0 { Kind::Dir } else { Kind::File };
        let id = u64::from(first) | if no_fat_chain { ID_NO_FAT_CHAIN } else { 0 };
        let confidence = deleted.then(|| self.deleted_confidence(first, size, no_fat_chain));
        let t = |o: usize, ms: Option<usize>, utc: usize| {
            timestamp(u32_at(f, o)?, ms.map(|m| u8_of(f, m)).unwrap_or(0), u8_of(f, utc))
        };
        let entry = Entry {
            name,
            raw_name: None,
            kind,
            size,
            mtime: t(0x0C, Some(0x15), 0x17),
            atime: t(0x10, None, 0x18),
            ctime: t(0x08, Some(0x14), 0x16),
            mode: Some(super::fat::dos_mode(kind, attr & 0x01 != 0)),
            deleted,
            confidence,
            streams: Vec::new(),
            id,
        };
        Some(SetInfo { entry, valid_len: valid_len.min(size) })
    }

    /// The entries of directory bytes, deleted entry sets included.
    fn parse_dir(&self, bytes: &[u8]) -> Vec<SetInfo> {
        let mut out = Vec::new();
        let mut i = 0usize;
        while let Some(e) = bytes.get(i..i.saturating_add(32)) {
            let t = u8_of(e, 0);
            if t == 0 {
                break;
            }
            if t == 0x85 || t == 0x05 {
                let secondary = usize::from(u8_of(e, 1));
                let end = i.saturating_add(32 * (secondary + 1));
                if (2..=18).contains(&secondary)
                    && let Some(set) = bytes.get(i..end)
                    && let Some(info) = self.parse_set(set, t == 0x05)
                {
                    out.push(info);
                    i = end;
                    continue;
                }
            }
            i += 32;
        }
        out
    }
}

/// A byte field, 0 when past the slice (entries are 32 bytes, so only damage gets there).
fn u8_of(b: &[u8], o: usize) -> u8 {
    u8_at(b, o).unwrap_or(0)
}

impl GuestFs for Exfat {
    fn fs_type(&self) -> String {
        "exFAT".into()
    }
    fn label(&self) -> Option<String> {
        self.label.clone()
    }
    fn root(&self) -> Entry {
        Entry::bare_root(u64::from(self.geo.root_cluster), Some(0o040755))
    }
    fn list(&self, dir: &Entry) -> Result<Vec<Entry>, GuestError> {
        if dir.kind != Kind::Dir {
            return Err(GuestError::NotADirectory { path: dir.name.clone() });
        }
        let bytes = self.dir_bytes(dir)?;
        let sets = self.parse_dir(&bytes);
        let mut vl = self.valid_len.lock().unwrap_or_else(|p| p.into_inner());
        Ok(sets
            .into_iter()
            .map(|s| {
                if s.valid_len < s.entry.size && vl.len() < 1 << 20 {
                    vl.insert((s.entry.id, s.entry.deleted, s.entry.size), s.valid_len);
                }
                s.entry
            })
            .collect())
    }
    fn open(&self, file: &Entry, stream: Option<&str>) -> Result<Source, GuestError> {
        let name = format!("{}:{}", self.vol.name(), file.name);
        if let Some(s) = stream {
            return Err(GuestError::NotFound { path: format!("{}:{s}", file.name) });
        }
        let valid = {
            let vl = self.valid_len.lock().unwrap_or_else(|p| p.into_inner());
            vl.get(&(file.id, file.deleted, file.size)).copied().unwrap_or(file.size)
        };
        let runs = self.runs(file, file.size, valid);
        Ok(Arc::new(RunFile::new(name, Arc::clone(&self.vol), runs, file.size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..3].copy_from_slice(&[0xEB, 0x76, 0x90]);
        b[3..11].copy_from_slice(b"EXFAT   ");
        b[0x48..0x50].copy_from_slice(&16384u64.to_le_bytes());
        b[0x50..0x54].copy_from_slice(&128u32.to_le_bytes());
        b[0x54..0x58].copy_from_slice(&8u32.to_le_bytes());
        b[0x58..0x5C].copy_from_slice(&256u32.to_le_bytes());
        b[0x5C..0x60].copy_from_slice(&1000u32.to_le_bytes());
        b[0x60..0x64].copy_from_slice(&4u32.to_le_bytes());
        b[0x6C] = 9;
        b[0x6D] = 3;
        b[0x6E] = 1;
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    #[test]
    fn boot_sector_fields_checked_by_name() {
        let g = Geometry::parse(&boot()).unwrap();
        assert_eq!((g.sector_size, g.cluster_size, g.heap_offset, g.clusters), (512, 4096, 256 * 512, 1000));
        let bad = |o: usize, v: u8| {
            let mut b = boot();
            b[o] = v;
            Geometry::parse(&b).unwrap_err()
        };
        assert!(bad(0x6C, 13).contains("0x6C"));
        assert!(bad(0x6D, 20).contains("0x6D"));
        assert!(bad(0x6E, 3).contains("0x6E"));
        assert!(bad(0x20, 1).contains("MustBeZero"));
        assert!(bad(0x60, 0).contains("0x60"));
        assert!(bad(0x5C + 3, 0xFF).contains("0x5C"));
        assert!(bad(0x5C + 1, 0x20).contains("FatLength"));
        assert!(bad(0x49, 0).contains("VolumeLength"));
        assert!(Geometry::parse(&boot()[..100]).is_err());
    }

    #[test]
    fn bitmap_counts_ranges() {
        let mut bits = vec![0u8; 2000];
        bits[0] = 0b0000_0101;
        bits[1500] = 0x80;
        let b = Bitmap::new(bits);
        assert_eq!(b.allocated(0, 3), Some(2));
        assert_eq!(b.allocated(1, 2), Some(0));
        assert_eq!(b.allocated(3, 1500 * 8 + 7), Some(0));
        assert_eq!(b.allocated(3, 1500 * 8 + 8), Some(1));
        assert_eq!(b.allocated(0, 16000), Some(3));
        assert_eq!(b.allocated(0, 16001), None);
    }

    #[test]
    fn timestamps_with_increment_and_utc_offset() {
        // 2024-03-01 12:00:00 local, +10 ms*150 (1 s), UTC+01:00 (4 steps of 15 minutes).
        let ts = (44u32 << 25) | (3 << 21) | (1 << 16) | (12 << 11);
        let local = timestamp(ts, 0, 0).unwrap();
        assert_eq!(local, 1_709_294_400);
        assert_eq!(timestamp(ts, 150, 0x80 | 4), Some(local + 1 - 3600));
        // UTC-05:00: -20 steps in 7-bit two's complement.
        assert_eq!(timestamp(ts, 0, 0x80 | (128 - 20)), Some(local + 5 * 3600));
        assert_eq!(timestamp(0, 0, 0), None);
    }

    #[test]
    fn set_checksum_skips_its_own_field_and_sees_in_use_bits() {
        let mut set = vec![0u8; 96];
        set[0] = 0x85;
        set[32] = 0xC0;
        set[64] = 0xC1;
        let s = set_checksum(&set, false);
        set[2] = 0x12;
        set[3] = 0x34;
        assert_eq!(set_checksum(&set, false), s);
        for o in [0, 32, 64] {
            set[o] &= 0x7F;
        }
        assert_eq!(set_checksum(&set, true), s);
        assert_ne!(set_checksum(&set, false), s);
    }
}
