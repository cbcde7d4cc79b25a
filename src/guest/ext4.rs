//! ext2/3/4: our own reader, because a file's content must come as runs over our source (block
//! maps and extent trees mapped, holes kept) and deleted inodes must be reachable; `ext4-view`
//! reads content through its own I/O and hides both.
//!
//! Offsets from the kernel's `Documentation/filesystems/ext4/` pages: superblock at volume byte
//! 1024 (inodes 0x00, blocks 0x04 + 0x150 hi, first data block 0x14, log block size 0x18,
//! blocks/inodes per group 0x20/0x28, magic 0xEF53 at 0x38, revision 0x4C, inode size 0x58,
//! compat/incompat/ro_compat features 0x5C/0x60/0x64, label 0x78, descriptor size 0xFE, first
//! meta group 0x104); group descriptors in the blocks after the superblock's, or with meta_bg
//! in the first block (after a superblock backup) of each meta group's first group (block
//! bitmap 0x00 + 0x20 hi, inode table 0x08 + 0x28 hi, flags 0x12, unused inodes 0x1C); inodes
//! (mode 0x00, size 0x04 + 0x6C hi, times 0x08/0x0C/0x10, dtime 0x14, links 0x1A, flags 0x20,
//! i_block 0x28, 60 bytes).
//!
//! Hostile data: every tree walk is bounded (depth ≤ 5, a visited set of tree blocks, a cap on
//! runs), every size is checked against the volume before it is allocated.
//!
//! Deleted files: an inode with a deletion time, no links, and a block map or extent tree that
//! still holds entries (as `debugfs rm` and ext2/3 leave them) is listed as deleted, under the
//! name a directory-entry remnant in a directory's slack space gives it, else as `#<inode>` in
//! the root directory. Its confidence comes from the block bitmaps: High when every block its
//! map names is free, Low when one is in use again (probably overwritten).

use super::error::corrupt;
use super::{Confidence, Entry, GuestError, GuestFs, Kind, Run, RunFile, Target};
use crate::block::{Source, read_vec};
use crate::le::{u16_at, u32_at};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// Largest directory read.
const MAX_DIR_BYTES: u64 = 64 << 20;
/// Most runs a file's map may have (a hostile tree could claim billions).
const MAX_RUNS: usize = 1 << 20;
/// Deepest extent tree (the kernel's limit is 5).
const MAX_DEPTH: u16 = 5;
/// Most inodes looked at by the deleted-inode scan.
const MAX_SCAN_INODES: u64 = 4 << 20;

const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_ENCRYPT: u32 = 0x10000;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
/// Group descriptor flag: the block bitmap was never initialised (every block free but the
/// group's own metadata).
const BG_BLOCK_UNINIT: u16 = 0x2;
/// Most blocks whose bitmap bits a deleted file's confidence looks at.
const MAX_CONFIDENCE_BLOCKS: u64 = 1 << 26;
/// Most block bitmaps kept in memory.
const MAX_CACHED_BITMAPS: usize = 4096;
const FLAG_EXTENTS: u32 = 0x8_0000;
const FLAG_INLINE: u32 = 0x1000_0000;

/// Whether the volume's bytes at 1024.. look like an ext superblock.
pub fn looks_like_ext(sb: &[u8]) -> bool {
    u16_at(sb, 0x38) == Some(0xEF53)
}

/// The checked superblock.
#[derive(Clone, Debug)]
pub struct Super {
    /// Block size in bytes.
    pub block_size: u64,
    /// Blocks on the volume.
    pub blocks: u64,
    /// Inodes on the volume.
    pub inodes: u32,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// Inode record size.
    pub inode_size: u64,
    /// Incompatible features.
    pub incompat: u32,
    /// Group descriptor size.
    pub desc_size: u64,
    /// Block of the first group descriptor.
    pub gdt_block: u64,
    /// The first data block (1 on volumes with 1 KiB blocks, else 0).
    pub first_data_block: u64,
    /// Blocks per group.
    pub blocks_per_group: u32,
    /// Read-only compatible features.
    pub ro_compat: u32,
    /// With meta_bg: the first meta group whose descriptors live in its own groups.
    pub first_meta_bg: u32,
    /// Label.
    pub label: Option<String>,
    /// ext2, ext3 or ext4 by features.
    pub flavour: &'static str,
}

impl Super {
    /// Parse and check the 1024-byte superblock. The error names the field.
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        let g32 = |o| u32_at(b, o).ok_or("superblock too short");
        if u16_at(b, 0x38) != Some(0xEF53) {
            return Err(format!("magic {:#06x} (0x38) is not 0xef53", u16_at(b, 0x38).unwrap_or(0)));
        }
        let log = g32(0x18)?;
        if log > 6 {
            return Err(format!("log block size {log} (0x18) is over 6"));
        }
        let block_size = 1024u64 << log;
        let incompat = g32(0x60)?;
        let hi = if incompat & INCOMPAT_64BIT != 0 { u64::from(g32(0x150)?) } else { 0 };
        let blocks = u64::from(g32(0x04)?) | hi << 32;
        let inodes = g32(0x00)?;
        let ipg = g32(0x28)?;
        if ipg == 0 || blocks == 0 || inodes == 0 {
            return Err(format!("inodes per group {ipg} (0x28), blocks {blocks} or inodes {inodes} is zero"));
        }
        let rev = g32(0x4C)?;
        let inode_size = if rev == 0 { 128 } else { u64::from(u16_at(b, 0x58).unwrap_or(0)) };
        if !(128..=block_size).contains(&inode_size) || !inode_size.is_power_of_two() {
            return Err(format!("inode size {inode_size} (0x58) is not a power of two in 128..block size"));
        }
        let desc_size = if incompat & INCOMPAT_64BIT != 0 { u64::from(u16_at(b, 0xFE).unwrap_or(0)) } else { 32 };
        if !(32..=1024).contains(&desc_size) || !desc_size.is_power_of_two() {
            return Err(format!("group descriptor size {desc_size} (0xFE) is not a power of two in 32..1024"));
        }
        let first_data = u64::from(g32(0x14)?);
        let bpg = g32(0x20)?;
        if bpg == 0 || u64::from(bpg) > 8 * block_size {
            return Err(format!("blocks per group {bpg} (0x20) is zero or more than a bitmap block holds"));
        }
        let compat = g32(0x5C)?;
        let label = b
            .get(0x78..0x88)
            .map(|l| String::from_utf8_lossy(l.split(|&c| c == 0).next().unwrap_or(&[])).to_string())
            .filter(|l| !l.is_empty());
        let flavour = if incompat & (INCOMPAT_EXTENTS | INCOMPAT_64BIT | 0x200) != 0 {
            "ext4"
        } else if compat & 0x4 != 0 {
            "ext3"
        } else {
            "ext2"
        };
        Ok(Self {
            block_size,
            blocks,
            inodes,
            inodes_per_group: ipg,
            inode_size,
            incompat,
            desc_size,
            gdt_block: first_data + 1,
            first_data_block: first_data,
            blocks_per_group: bpg,
            ro_compat: g32(0x64)?,
            first_meta_bg: if incompat & INCOMPAT_META_BG != 0 { g32(0x104)? } else { u32::MAX },
            label,
            flavour,
        })
    }
}

/// An inode as read.
#[derive(Clone, Debug)]
struct Inode {
    num: u32,
    /// Volume offset of the record.
    at: u64,
    raw: Vec<u8>,
}

impl Inode {
    fn u16(&self, o: usize) -> u16 {
        u16_at(&self.raw, o).unwrap_or(0)
    }
    fn u32(&self, o: usize) -> u32 {
        u32_at(&self.raw, o).unwrap_or(0)
    }
    fn mode(&self) -> u16 {
        self.u16(0)
    }
    fn size(&self) -> u64 {
        u64::from(self.u32(0x04)) | u64::from(self.u32(0x6C)) << 32
    }
    fn kind(&self) -> Kind {
        match self.mode() & 0xF000 {
            0x8000 => Kind::File,
            0x4000 => Kind::Dir,
            0xA000 => Kind::Symlink,
            _ => Kind::Other,
        }
    }
    fn deleted(&self) -> bool {
        self.u32(0x14) != 0 && self.u16(0x1A) == 0
    }
    fn i_block(&self) -> &[u8] {
        self.raw.get(0x28..0x64).unwrap_or(&[])
    }
}

impl Super {
    /// Whether group `g` holds a superblock backup (all groups, or with sparse_super groups 0,
    /// 1 and the powers of 3, 5 and 7).
    fn has_super(&self, g: u64) -> bool {
        let power_of = |n: u64| {
            let mut p = n;
            while p < g {
                p *= n;
            }
            p == g
        };
        self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 || g <= 1 || power_of(3) || power_of(5) || power_of(7)
    }

    /// Where the group descriptors of `groups` groups are: `(byte offset, count)` spans in
    /// group order. Without meta_bg they follow the superblock; with it, meta group `m` (a
    /// block's worth of descriptors) from `first_meta_bg` on sits in the first block of its
    /// first group, after that group's superblock backup.
    fn descriptor_spans(&self, groups: u64) -> Vec<(u64, u64)> {
        let per = self.block_size / self.desc_size;
        let classic = groups.min(u64::from(self.first_meta_bg).saturating_mul(per));
        let mut spans = vec![(self.gdt_block * self.block_size, classic)];
        let mut g = classic;
        while g < groups {
            let block = self.first_data_block + g * u64::from(self.blocks_per_group) + u64::from(self.has_super(g));
            spans.push((block.saturating_mul(self.block_size), per.min(groups - g)));
            g += per;
        }
        spans
    }
}

/// What the reader keeps of a group descriptor.
#[derive(Clone, Copy, Debug)]
struct Group {
    /// Block of the inode table.
    table: u64,
    /// Inodes in use at the start of the table (the rest was never used: uninit_bg).
    used_inodes: u32,
    /// Block of the block bitmap.
    bitmap: u64,
    /// The block bitmap was never initialised.
    block_uninit: bool,
}

/// An open ext2/3/4 volume.
pub struct Ext {
    vol: Source,
    sb: Super,
    groups: Vec<Group>,
    /// Block bitmaps read so far, by group (`None`: unreadable).
    bitmaps: std::sync::Mutex<HashMap<u64, Option<Arc<Vec<u8>>>>>,
    /// Deleted inodes not named by a remnant, found on first use.
    orphans: OnceLock<Vec<Entry>>,
}

impl Ext {
    /// Open the ext volume on `vol`.
    pub fn open(vol: Source) -> Result<Self, GuestError> {
        let name = vol.name();
        if vol.len() < 2048 {
            return Err(corrupt("ext superblock", 1024, &name, "the volume is shorter than 2 KiB"));
        }
        let raw = read_vec(&*vol, 1024, 1024)?;
        let sb = Super::parse(&raw).map_err(|w| corrupt("ext superblock", 1024, &name, w))?;
        if sb.incompat & INCOMPAT_ENCRYPT != 0 {
            tracing::warn!("{name}: encrypted directories are listed with their encrypted names");
        }
        let groups = u64::from(sb.inodes).div_ceil(u64::from(sb.inodes_per_group));
        if groups * sb.desc_size > 256 << 20 {
            return Err(corrupt("ext group descriptors", 1024, &name, format!("{groups} groups is absurd")));
        }
        let mut gdt = Vec::new();
        for (at, count) in sb.descriptor_spans(groups) {
            let len = count * sb.desc_size;
            if at.checked_add(len).is_none_or(|e| e > vol.len()) {
                let what = format!("{count} group descriptors reach past the volume");
                return Err(corrupt("ext group descriptors", at, &name, what));
            }
            gdt.extend(read_vec(&*vol, at, len as usize)?);
        }
        let groups = gdt
            .chunks_exact(sb.desc_size as usize)
            .map(|d| {
                let hi = |o| if sb.desc_size >= 64 { u64::from(u32_at(d, o).unwrap_or(0)) << 32 } else { 0 };
                let flags = u16_at(d, 0x12).unwrap_or(0);
                // Inodes never used at the end of the group (uninit_bg): the scan skips them.
                let unused =
                    if flags & 0x1 != 0 { sb.inodes_per_group } else { u32::from(u16_at(d, 0x1C).unwrap_or(0)) };
                Group {
                    table: u64::from(u32_at(d, 0x08).unwrap_or(0)) | hi(0x28),
                    used_inodes: sb.inodes_per_group.saturating_sub(unused),
                    bitmap: u64::from(u32_at(d, 0x00).unwrap_or(0)) | hi(0x20),
                    block_uninit: flags & BG_BLOCK_UNINIT != 0,
                }
            })
            .collect();
        Ok(Self { vol, sb, groups, bitmaps: Default::default(), orphans: OnceLock::new() })
    }

    /// The checked superblock.
    pub fn superblock(&self) -> &Super {
        &self.sb
    }

    fn inode(&self, num: u32) -> Result<Inode, GuestError> {
        let name = self.vol.name();
        if num == 0 || num > self.sb.inodes {
            return Err(corrupt("ext inode", 0, &name, format!("inode number {num} is out of range")));
        }
        let idx = num - 1;
        let table = self.groups.get((idx / self.sb.inodes_per_group) as usize).map_or(0, |g| g.table);
        let at = table
            .checked_mul(self.sb.block_size)
            .and_then(|t| t.checked_add(u64::from(idx % self.sb.inodes_per_group) * self.sb.inode_size))
            .unwrap_or(u64::MAX);
        if table == 0 || at.checked_add(self.sb.inode_size).is_none_or(|e| e > self.vol.len()) {
            return Err(corrupt("ext inode", at, &name, format!("inode {num} lies outside the volume")));
        }
        Ok(Inode { num, at, raw: read_vec(&*self.vol, at, self.sb.inode_size as usize)? })
    }

    fn block_at(&self, b: u64) -> Option<u64> {
        b.checked_mul(self.sb.block_size).filter(|&v| b != 0 && b < self.sb.blocks && v < self.vol.len())
    }

    /// The runs of an inode's content, `len` bytes.
    fn runs(&self, ino: &Inode, len: u64) -> Vec<Run> {
        let mut pieces: Vec<(u64, u64, u64)> = Vec::new(); // (logical block, count, physical block)
        let flags = ino.u32(0x20);
        if flags & FLAG_INLINE != 0 || (ino.kind() == Kind::Symlink && len < 60 && ino.u32(0x1C) == 0) {
            // Inline data and fast symlinks live in i_block itself.
            return vec![Run { offset: 0, len: len.min(60), target: Target::Volume(ino.at + 0x28) }];
        }
        if flags & FLAG_EXTENTS != 0 {
            let mut seen = HashSet::new();
            self.extents(ino.i_block(), MAX_DEPTH, &mut seen, &mut pieces);
        } else {
            self.block_map(ino.i_block(), len, &mut pieces);
        }
        pieces.sort_by_key(|p| p.0);
        let bs = self.sb.block_size;
        let mut runs = Vec::with_capacity(pieces.len().min(MAX_RUNS));
        let mut pos = 0u64;
        for (lb, count, pb) in pieces {
            let off = lb.saturating_mul(bs);
            if off < pos || off >= len {
                continue; // overlapping or beyond the size: a hostile or stale map
            }
            if off > pos {
                runs.push(Run { offset: pos, len: off - pos, target: Target::Hole });
            }
            let n = count.saturating_mul(bs).min(len - off);
            let target = match self.block_at(pb) {
                Some(v) => Target::Volume(v),
                None => Target::Missing,
            };
            runs.push(Run { offset: off, len: n, target });
            pos = off + n;
        }
        if pos < len {
            runs.push(Run { offset: pos, len: len - pos, target: Target::Hole });
        }
        runs
    }

    /// Walk an extent node (`node`: header + entries) into `(logical, count, physical)`.
    fn extents(&self, node: &[u8], depth_left: u16, seen: &mut HashSet<u64>, out: &mut Vec<(u64, u64, u64)>) {
        if u16_at(node, 0) != Some(0xF30A) || out.len() >= MAX_RUNS {
            return;
        }
        let entries = usize::from(u16_at(node, 2).unwrap_or(0));
        let depth = u16_at(node, 6).unwrap_or(0);
        if depth > depth_left {
            return;
        }
        for i in 0..entries {
            let Some(e) = node.get(12 + i * 12..24 + i * 12) else { break };
            let lb = u64::from(u32_at(e, 0).unwrap_or(0));
            if depth == 0 {
                let raw_len = u16_at(e, 4).unwrap_or(0);
                // Over 32768: an unwritten (preallocated) extent, read as zeros: a hole.
                if raw_len > 32768 {
                    continue;
                }
                let pb = u64::from(u16_at(e, 6).unwrap_or(0)) << 32 | u64::from(u32_at(e, 8).unwrap_or(0));
                out.push((lb, u64::from(raw_len), pb));
            } else {
                let child = u64::from(u32_at(e, 4).unwrap_or(0)) | u64::from(u16_at(e, 8).unwrap_or(0)) << 32;
                let Some(at) = self.block_at(child) else { continue };
                if !seen.insert(child) {
                    continue; // a loop in the tree
                }
                if let Ok(b) = read_vec(&*self.vol, at, self.sb.block_size as usize) {
                    self.extents(&b, depth - 1, seen, out);
                }
            }
            if out.len() >= MAX_RUNS {
                return;
            }
        }
    }

    /// The ext2/3 block map: 12 direct, then single, double and triple indirect blocks.
    fn block_map(&self, i_block: &[u8], len: u64, out: &mut Vec<(u64, u64, u64)>) {
        let bs = self.sb.block_size;
        let nblocks = len.div_ceil(bs);
        let per = bs / 4;
        let push = |lb: u64, pb: u64, out: &mut Vec<(u64, u64, u64)>| {
            if pb == 0 {
                return;
            }
            match out.last_mut() {
                Some(l) if l.0 + l.1 == lb && l.2 + l.1 == pb => l.1 += 1,
                _ => out.push((lb, 1, pb)),
            }
        };
        for i in 0..12u64 {
            if i < nblocks {
                push(i, u64::from(u32_at(i_block, i as usize * 4).unwrap_or(0)), out);
            }
        }
        let mut seen = HashSet::new();
        let mut start = 12u64;
        let mut span = per;
        for level in 0..3usize {
            let root = u64::from(u32_at(i_block, 48 + level * 4).unwrap_or(0));
            if start < nblocks {
                self.indirect(root, level, start, nblocks, per, &mut seen, &mut |lb, pb| push(lb, pb, out));
            }
            start = start.saturating_add(span);
            span = span.saturating_mul(per);
            if out.len() >= MAX_RUNS {
                return;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn indirect(
        &self,
        block: u64,
        level: usize,
        first: u64,
        nblocks: u64,
        per: u64,
        seen: &mut HashSet<u64>,
        f: &mut dyn FnMut(u64, u64),
    ) {
        let Some(at) = self.block_at(block) else { return };
        if !seen.insert(block) || seen.len() > MAX_RUNS {
            return;
        }
        let Ok(b) = read_vec(&*self.vol, at, self.sb.block_size as usize) else { return };
        let span = per.saturating_pow(level as u32);
        for i in 0..per {
            let lb = first.saturating_add(i.saturating_mul(span));
            if lb >= nblocks {
                break;
            }
            let p = u64::from(u32_at(&b, i as usize * 4).unwrap_or(0));
            if level == 0 {
                f(lb, p);
            } else if p != 0 {
                self.indirect(p, level - 1, lb, nblocks, per, seen, f);
            }
        }
    }

    fn entry(&self, ino: &Inode, name: &[u8], deleted: bool) -> Entry {
        let t = |o| Some(i64::from(ino.u32(o))).filter(|&t| t != 0);
        let kind = ino.kind();
        Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            raw_name: std::str::from_utf8(name).is_err().then(|| name.to_vec()),
            kind,
            size: ino.size(),
            mtime: t(0x10),
            atime: t(0x08),
            ctime: t(0x0C),
            mode: Some(u32::from(ino.mode())),
            deleted,
            confidence: deleted.then(|| self.deleted_confidence(ino)),
            streams: Vec::new(),
            id: u64::from(ino.num),
        }
    }

    /// Whether block `b` is in use by the block bitmaps (`None`: the bitmap is unreadable).
    fn block_used(&self, b: u64) -> Option<bool> {
        let Some(rel) = b.checked_sub(self.sb.first_data_block) else { return Some(true) };
        let bpg = u64::from(self.sb.blocks_per_group);
        let (g, i) = (rel / bpg, rel % bpg);
        let group = self.groups.get(g as usize)?;
        if group.block_uninit {
            return Some(false);
        }
        let mut cache = self.bitmaps.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_BITMAPS && !cache.contains_key(&g) {
            cache.clear();
        }
        let bits = cache
            .entry(g)
            .or_insert_with(|| {
                let at = self.block_at(group.bitmap)?;
                read_vec(&*self.vol, at, self.sb.block_size as usize).ok().map(Arc::new)
            })
            .clone()?;
        Some(bits.get((i / 8) as usize)? >> (i % 8) & 1 == 1)
    }

    /// How sure a deleted inode's content is: High when every block its map names is free in
    /// the block bitmaps, Low when one is in use again or lies outside the volume, Medium when
    /// the bitmaps cannot tell.
    fn deleted_confidence(&self, ino: &Inode) -> Confidence {
        let bs = self.sb.block_size;
        let mut looked = 0u64;
        let mut unsure = false;
        for r in self.runs(ino, ino.size()) {
            match r.target {
                Target::Hole => {}
                Target::Missing => return Confidence::Low,
                Target::Volume(at) => {
                    for b in at / bs..(at + r.len).div_ceil(bs) {
                        looked += 1;
                        if looked > MAX_CONFIDENCE_BLOCKS {
                            return Confidence::Medium;
                        }
                        match self.block_used(b) {
                            Some(true) => return Confidence::Low,
                            Some(false) => {}
                            None => unsure = true,
                        }
                    }
                }
            }
        }
        if unsure { Confidence::Medium } else { Confidence::High }
    }

    /// Whether a deleted inode still maps content.
    fn has_map(&self, ino: &Inode) -> bool {
        let ib = ino.i_block();
        if ino.u32(0x20) & FLAG_EXTENTS != 0 {
            u16_at(ib, 0) == Some(0xF30A) && u16_at(ib, 2).unwrap_or(0) > 0
        } else {
            ib.iter().any(|&b| b != 0)
        }
    }

    /// Deleted inodes of regular files whose map survives, by scanning the used part of every
    /// inode table (bounded).
    fn scan_deleted(&self) -> Vec<Inode> {
        let mut out = Vec::new();
        let mut looked = 0u64;
        let isz = self.sb.inode_size;
        for (g, &Group { table, used_inodes: used, .. }) in self.groups.iter().enumerate() {
            if looked >= MAX_SCAN_INODES || table == 0 {
                continue;
            }
            let n = u64::from(used).min(MAX_SCAN_INODES - looked);
            looked += n;
            let Some(at) = table.checked_mul(self.sb.block_size) else { continue };
            let Some(bytes) = at
                .checked_add(n * isz)
                .filter(|&e| e <= self.vol.len())
                .and_then(|_| read_vec(&*self.vol, at, (n * isz) as usize).ok())
            else {
                continue;
            };
            for (i, raw) in bytes.chunks_exact(isz as usize).enumerate() {
                let num = g as u64 * u64::from(self.sb.inodes_per_group) + i as u64 + 1;
                let ino = Inode { num: num as u32, at: at + i as u64 * isz, raw: raw.to_vec() };
                if ino.num > 11 && ino.deleted() && ino.kind() == Kind::File && self.has_map(&ino) {
                    out.push(ino);
                }
            }
        }
        out
    }

    /// Parse a directory's bytes: live entries, and deleted ones from remnants in slack space
    /// (pointing at deleted inodes, so a reused slot is not taken for the old file).
    fn parse_dir(&self, bytes: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let bs = self.sb.block_size as usize;
        let typed = self.sb.incompat & INCOMPAT_FILETYPE != 0;
        for block in bytes.chunks(bs) {
            let mut pos = 0usize;
            while pos + 8 <= block.len() {
                let ino = u32_at(block, pos).unwrap_or(0);
                let rec = usize::from(u16_at(block, pos + 4).unwrap_or(0));
                let nlen = usize::from(block[pos + 6]) | if typed { 0 } else { usize::from(block[pos + 7]) << 8 };
                if rec < 8 || rec % 4 != 0 || pos + rec > block.len() {
                    break; // a broken block: the rest of it is not trusted
                }
                let name = block.get(pos + 8..pos + 8 + nlen).unwrap_or(&[]);
                if ino != 0
                    && nlen > 0
                    && nlen + 8 <= rec
                    && name != b"."
                    && name != b".."
                    && let Ok(i) = self.inode(ino)
                {
                    out.push(self.entry(&i, name, false));
                }
                // Slack after this entry's name: remnants of entries removed after it.
                let used = if ino == 0 { 0 } else { (8 + nlen).div_ceil(4) * 4 };
                let mut s = pos + used;
                while s + 8 <= pos + rec {
                    let dino = u32_at(block, s).unwrap_or(0);
                    let dlen = usize::from(block[s + 6]);
                    let drec = usize::from(u16_at(block, s + 4).unwrap_or(0));
                    let dname = block.get(s + 8..s + 8 + dlen).unwrap_or(&[]);
                    let plausible = dino != 0
                        && dlen > 0
                        && s + 8 + dlen <= pos + rec
                        && drec >= 8 + dlen
                        && !dname.contains(&0)
                        && !dname.contains(&b'/');
                    if plausible
                        && let Ok(i) = self.inode(dino)
                        && i.deleted()
                        && self.has_map(&i)
                    {
                        out.push(self.entry(&i, dname, true));
                        s += (8 + dlen).div_ceil(4) * 4;
                        continue;
                    }
                    s += 4;
                }
                pos += rec;
            }
        }
        out
    }
}

impl GuestFs for Ext {
    fn fs_type(&self) -> String {
        self.sb.flavour.into()
    }
    fn label(&self) -> Option<String> {
        self.sb.label.clone()
    }
    fn root(&self) -> Entry {
        match self.inode(2) {
            Ok(i) => Entry { name: String::new(), ..self.entry(&i, b"", false) },
            Err(_) => Entry::bare_root(2, None),
        }
    }
    fn list(&self, dir: &Entry) -> Result<Vec<Entry>, GuestError> {
        let ino = self.inode(dir.id as u32)?;
        if ino.kind() != Kind::Dir {
            return Err(GuestError::NotADirectory { path: dir.name.clone() });
        }
        let len = ino.size().min(MAX_DIR_BYTES);
        let f = RunFile::new(self.vol.name(), Arc::clone(&self.vol), self.runs(&ino, len), len);
        let bytes = read_vec(&f, 0, len as usize)?;
        let mut v = self.parse_dir(&bytes);
        if dir.id == 2 {
            // Deleted inodes no remnant names: `#<inode>` in the root.
            let orphans = self.orphans.get_or_init(|| {
                let named = self.named_deleted();
                self.scan_deleted()
                    .into_iter()
                    .filter(|i| !named.contains(&i.num))
                    .map(|i| self.entry(&i, format!("#{}", i.num).as_bytes(), true))
                    .collect()
            });
            v.extend(orphans.iter().cloned());
        }
        Ok(v)
    }
    fn open(&self, file: &Entry, stream: Option<&str>) -> Result<Source, GuestError> {
        if let Some(s) = stream {
            return Err(GuestError::NotFound { path: format!("{}:{s}", file.name) });
        }
        let ino = self.inode(file.id as u32)?;
        let len = ino.size();
        let name = format!("{}:{}", self.vol.name(), file.name);
        Ok(Arc::new(RunFile::new(name, Arc::clone(&self.vol), self.runs(&ino, len), len)))
    }
}

impl Ext {
    /// Inodes named by a remnant anywhere in the live tree (bounded walk).
    fn named_deleted(&self) -> HashSet<u32> {
        let mut named = HashSet::new();
        let mut errs = Vec::new();
        let mut dirs: HashMap<u64, ()> = HashMap::new();
        let root = self.root();
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            if dirs.insert(d.id, ()).is_some() || dirs.len() > 100_000 {
                continue;
            }
            let Ok(ino) = self.inode(d.id as u32) else { continue };
            let len = ino.size().min(MAX_DIR_BYTES);
            let f = RunFile::new(self.vol.name(), Arc::clone(&self.vol), self.runs(&ino, len), len);
            match read_vec(&f, 0, len as usize) {
                Ok(b) => {
                    for e in self.parse_dir(&b) {
                        if e.deleted {
                            named.insert(e.id as u32);
                        } else if e.kind == Kind::Dir {
                            stack.push(e);
                        }
                    }
                }
                Err(e) => errs.push(e),
            }
        }
        named
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_bg_super() -> Super {
        let mut b = vec![0u8; 1024];
        b[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[0x00..0x04].copy_from_slice(&2048u32.to_le_bytes()); // inodes
        b[0x04..0x08].copy_from_slice(&65536u32.to_le_bytes()); // blocks
        b[0x14..0x18].copy_from_slice(&1u32.to_le_bytes()); // first data block (1 KiB blocks)
        b[0x20..0x24].copy_from_slice(&1024u32.to_le_bytes()); // blocks per group
        b[0x28..0x2C].copy_from_slice(&32u32.to_le_bytes()); // inodes per group
        b[0x4C] = 1;
        b[0x58..0x5A].copy_from_slice(&256u16.to_le_bytes());
        b[0x60..0x64].copy_from_slice(&(INCOMPAT_META_BG | INCOMPAT_64BIT).to_le_bytes());
        b[0x64] = RO_COMPAT_SPARSE_SUPER as u8;
        b[0xFE..0x100].copy_from_slice(&64u16.to_le_bytes());
        b[0x104..0x108].copy_from_slice(&1u32.to_le_bytes()); // first meta group
        Super::parse(&b).unwrap()
    }

    #[test]
    fn meta_bg_descriptors_sit_in_their_meta_groups() {
        let sb = meta_bg_super();
        // 16 descriptors per 1 KiB block; meta group 0 is classic (after the superblock), then
        // groups 16 (no backup), 32 (none), 48 (none); 25 and 27 would have one.
        assert_eq!(
            sb.descriptor_spans(64),
            vec![(2 * 1024, 16), (16385 * 1024, 16), (32769 * 1024, 16), (49153 * 1024, 16)]
        );
        assert_eq!(sb.descriptor_spans(20), vec![(2 * 1024, 16), (16385 * 1024, 4)]);
        assert!([0, 1, 3, 5, 7, 9, 25, 27, 49, 125, 343].iter().all(|&g| sb.has_super(g)));
        assert!([2, 4, 6, 8, 10, 16, 26, 48].iter().all(|&g| !sb.has_super(g)));
    }

    #[test]
    fn bad_superblocks_name_the_field() {
        let mut b = vec![0u8; 1024];
        assert!(Super::parse(&b).unwrap_err().contains("0x38"));
        b[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[0x18] = 9;
        assert!(Super::parse(&b).unwrap_err().contains("0x18"));
        b[0x18] = 2;
        assert!(Super::parse(&b).unwrap_err().contains("0x28"));
    }
}
