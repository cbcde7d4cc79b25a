//! Directory files: the VMFS5 flat array of 140-byte records, and the VMFS6 hashed layout
//! (header block with the hash table, allocation map, dirent and link-group blocks).

use crate::le::{put_u16, put_u32, put_u64};
use crate::vmfs::dirhash::{hash_slot, name_hash};
use crate::vmfs::ondisk::{
    DIR6_BLOCK_HEADER_SIZE, DIR6_ENTRY_SIZE, DIR6_HEADER_BLOCK_SIZE, DIR6_HEADER_SIZE, DIR6_VERSION,
};

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub fd: u32,
    pub generation: u32,
    /// FD type (2 dir, 3 file, 4 symlink, 5 system file, 6 RDM).
    pub kind: u32,
}

/// Size of a VMFS5 `FS3_DirEntry`.
pub const ENTRY5: usize = 0x8C;

/// A VMFS5 directory file: ".", "..", then the entries, in creation order.
pub fn encode5(this: &Entry, parent: &Entry, entries: &[Entry]) -> Vec<u8> {
    let all: Vec<(&Entry, &str)> =
        [(this, "."), (parent, "..")].into_iter().chain(entries.iter().map(|e| (e, e.name.as_str()))).collect();
    let mut b = vec![0u8; all.len() * ENTRY5];
    for (i, (e, name)) in all.iter().enumerate() {
        let r = &mut b[i * ENTRY5..(i + 1) * ENTRY5];
        put_u32(r, 0, e.kind);
        put_u32(r, 4, e.fd);
        put_u32(r, 8, e.generation);
        let n = name.len().min(127);
        r[0x0C..0x0C + n].copy_from_slice(&name.as_bytes()[..n]);
    }
    b
}

/// Entries per VMFS6 dirent block of `md` bytes.
fn per_block(md: usize) -> usize {
    ((md - DIR6_BLOCK_HEADER_SIZE) / DIR6_ENTRY_SIZE).min(56 * 8)
}

/// Size of `FS6_DirLinkGroup`.
const LINK_GROUP: usize = 0x54;
/// Links in one group.
const LINKS_PER_GROUP: usize = 12;

fn location(kind: u32, block: u64, slot: usize) -> u32 {
    kind | ((block as u32 & 0x3F_FFFF) << 2) | ((slot as u32) << 24)
}

/// An `FS6_DirEntry`; `hash` is the name hash (0 for ".", ".." and the root's system files).
fn entry6(b: &mut [u8], e: &Entry, name: &str, self_off: u64, hash: u64) {
    put_u32(b, 0, e.kind);
    put_u32(b, 4, e.fd);
    put_u32(b, 8, e.generation);
    put_u16(b, 0x0C, hash as u16);
    put_u16(b, 0x0E, (hash >> 16) as u16);
    put_u64(b, 0x10, self_off);
    let n = name.len().min(255);
    b[0x18..0x18 + n].copy_from_slice(&name.as_bytes()[..n]);
}

fn block_header(b: &mut [u8], kind: u16, total: usize, used: &[bool]) {
    put_u16(b, 0, 1);
    put_u16(b, 2, kind);
    put_u16(b, 4, total as u16);
    put_u16(b, 6, used.iter().filter(|u| !**u).count() as u16 + (total - used.len()) as u16);
    for i in 0..total {
        if !used.get(i).copied().unwrap_or(false) {
            b[8 + i / 8] |= 1 << (i % 8);
        }
    }
}

/// A VMFS6 directory file of metadata block size `md`. Block 0 is the allocation map, then
/// the dirent blocks, then link-group blocks for hash indices shared by several names.
pub fn encode6(md: usize, this: &Entry, parent: &Entry, entries: &[Entry], in_root: bool) -> Vec<u8> {
    let pb = per_block(md);
    let dirent_blocks = entries.len().div_ceil(pb);
    // Hash index → entries that land there.
    let mut by_index: std::collections::BTreeMap<u64, Vec<(usize, u16)>> = Default::default();
    for (i, e) in entries.iter().enumerate() {
        let (lh, idx) = hash_slot(e.name.as_bytes(), in_root);
        by_index.entry(idx).or_default().push((i, lh));
    }
    let groups_needed: usize =
        by_index.values().filter(|v| v.len() > 1).map(|v| v.len().div_ceil(LINKS_PER_GROUP)).sum();
    let groups_per_block = (md - DIR6_BLOCK_HEADER_SIZE) / LINK_GROUP;
    let link_blocks = groups_needed.div_ceil(groups_per_block);
    let nblocks = 1 + dirent_blocks + link_blocks;
    let mut b = vec![0u8; DIR6_HEADER_BLOCK_SIZE as usize + nblocks * md];
    let block_off = |blk: usize| DIR6_HEADER_BLOCK_SIZE as usize + blk * md;

    // Header.
    put_u32(&mut b, 0, DIR6_VERSION);
    put_u32(&mut b, 4, entries.len() as u32 + 2);
    put_u32(&mut b, 8, entries.len() as u32 + 2);
    put_u32(&mut b, 0x0C, 1);
    put_u32(&mut b, 0x10, 0);
    entry6(&mut b[0x3B8..], this, ".", 0x3B8, 0);
    entry6(&mut b[0x4D8..], parent, "..", 0x4D8, 0);

    // Allocation map (block 0; its header holds only the type, as ESXi writes it): one nibble
    // per block, high nibble first; 8 marks blocks never written.
    let map = block_off(0);
    put_u16(&mut b, map + 2, 3);
    for blk in 0..(md - DIR6_BLOCK_HEADER_SIZE) * 2 {
        let t: u8 = if blk >= nblocks {
            8
        } else if blk == 0 {
            3
        } else if blk <= dirent_blocks {
            let used = entries.len().saturating_sub((blk - 1) * pb).min(pb);
            1 | if used < pb { 4 } else { 0 }
        } else {
            2
        };
        let byte = &mut b[map + DIR6_BLOCK_HEADER_SIZE + blk / 2];
        *byte |= if blk % 2 == 0 { t << 4 } else { t };
    }

    // Dirent blocks.
    let mut loc_of = vec![0u32; entries.len()];
    for blk in 0..dirent_blocks {
        let off = block_off(1 + blk);
        let first = blk * pb;
        let n = entries.len().saturating_sub(first).min(pb);
        let used = vec![true; n];
        block_header(&mut b[off..], 1, pb, &used);
        for s in 0..n {
            let i = first + s;
            let at = off + DIR6_BLOCK_HEADER_SIZE + s * DIR6_ENTRY_SIZE;
            let system = in_root && entries[i].kind == 5;
            let hash = if system { 0 } else { name_hash(entries[i].name.as_bytes()) };
            entry6(&mut b[at..], &entries[i], &entries[i].name.clone(), at as u64, hash);
            loc_of[i] = location(1, (1 + blk) as u64, s);
        }
    }

    // Hash table, with link groups for shared indices.
    let mut group = 0usize;
    for (idx, list) in &by_index {
        let slot = DIR6_HEADER_SIZE + *idx as usize * 4;
        if list.len() == 1 {
            put_u32(&mut b, slot, loc_of[list[0].0]);
            continue;
        }
        let chunks: Vec<&[(usize, u16)]> = list.chunks(LINKS_PER_GROUP).collect();
        let first_group = group;
        for (k, chunk) in chunks.iter().enumerate() {
            let g = group + k;
            let blk = 1 + dirent_blocks + g / groups_per_block;
            let at = block_off(blk) + DIR6_BLOCK_HEADER_SIZE + (g % groups_per_block) * LINK_GROUP;
            put_u16(&mut b, at, *idx as u16);
            b[at + 2] = LINKS_PER_GROUP as u8;
            b[at + 3] = (LINKS_PER_GROUP - chunk.len()) as u8;
            b[at + 4] = chunk.len() as u8;
            for (j, (i, lh)) in chunk.iter().enumerate() {
                put_u32(&mut b, at + 6 + j * 6, loc_of[*i]);
                put_u16(&mut b, at + 6 + j * 6 + 4, *lh);
            }
            if k + 1 < chunks.len() {
                let ng = g + 1;
                let nblk = 1 + dirent_blocks + ng / groups_per_block;
                put_u32(&mut b, at + 0x4E, location(2, nblk as u64, ng % groups_per_block));
            }
        }
        let blk = 1 + dirent_blocks + first_group / groups_per_block;
        put_u32(&mut b, slot, location(2, blk as u64, first_group % groups_per_block));
        group += chunks.len();
    }
    for lb in 0..link_blocks {
        let off = block_off(1 + dirent_blocks + lb);
        let n = groups_needed.saturating_sub(lb * groups_per_block).min(groups_per_block);
        block_header(&mut b[off..], 2, groups_per_block, &vec![true; n]);
    }
    b
}
