//! Encoders for the VMFS metadata the forge writes: lock blocks, file descriptors, resource
//! file headers, cluster headers and heartbeat slots. Offsets are those documented on the
//! parsers in `crate::vmfs::ondisk` and in research/vmfs-format.md §4, §5, §8 and §9.

use super::params::{Params, ResKind, ResSpec, cluster_lock_type};
use crate::le::{put_u16, put_u32, put_u64};
use crate::vmfs::ondisk::{LOCK_TYPE_FD, RFMD_SIGNATURE};

/// 'fdmd': VMFS6 FD signature at meta + 0x64.
pub const FDMD_SIGNATURE: u32 = 0x6664_6D64;
/// 'rcmd': VMFS6 cluster metadata signature at meta + 0x10.
pub const RCMD_SIGNATURE: u32 = 0x7263_6D64;
/// Heartbeat slot states.
pub const HB_FREE: u32 = 0xABCD_EF01;

/// The lock block (`FS3_DiskLock`) of an FD or cluster header at volume offset `self_off`.
pub fn lock(b: &mut [u8], kind: u32, self_off: u64, token: u64) {
    put_u32(b, 0x00, kind);
    put_u64(b, 0x04, self_off);
    put_u64(b, 0x1C, token);
}

/// Where an FD keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Store {
    /// Resident bytes in the FD (ZLA 0x10D1).
    Resident(Vec<u8>),
    /// The FD's block-pointer array.
    Pointers(Vec<u64>),
}

/// Everything an FD holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdImage {
    pub addr: u32,
    pub generation: u32,
    pub links: u32,
    pub kind: u32,
    pub flags: u32,
    pub size: u64,
    pub block_size: u64,
    pub num_blocks: u64,
    pub time: u32,
    pub mode: u32,
    pub zla: u32,
    pub num_tbz: u64,
    pub new_since_epoch: u32,
    pub num_pbs: u32,
    pub affinity: u32,
    pub parent: u32,
    pub last_sfbc: u32,
    pub affinity_bitmap: u32,
    /// Unnamed field at meta + 0x7c: 1 on VMFS6 files that track their SFB clusters.
    pub meta_7c: u32,
    /// VMFS6: bitmask of the SFB clusters the file uses, kept at FD + 0x1200 (free space
    /// before the pointer array) by ESXi.
    pub sfb_mask: u64,
    pub lock_token: u64,
    pub store: Store,
}

impl FdImage {
    /// An FD as format writes it for system file (or root) `addr`: generation 1, one link,
    /// direct file blocks, affinity to itself.
    pub fn system(addr: u32, kind: u32, block_size: u64, time: u32) -> Self {
        Self {
            addr,
            generation: 1,
            links: 1,
            kind,
            flags: 0,
            size: 0,
            block_size,
            num_blocks: 0,
            time,
            mode: 0o400,
            zla: 1,
            num_tbz: 0,
            new_since_epoch: 0,
            num_pbs: 0,
            affinity: addr,
            parent: 0,
            last_sfbc: 0,
            affinity_bitmap: 0,
            meta_7c: 0,
            sfb_mask: 0,
            lock_token: 1,
            store: Store::Pointers(Vec::new()),
        }
    }

    /// The FD bytes for volume offset `self_off`.
    pub fn encode(&self, p: &Params, self_off: u64) -> Vec<u8> {
        let g = &p.geo;
        let mut b = vec![0u8; g.fd_size];
        lock(&mut b, LOCK_TYPE_FD, self_off, self.lock_token);
        let m = &mut b[g.meta_off..];
        put_u32(m, 0x00, self.addr);
        put_u32(m, 0x04, self.generation);
        put_u32(m, 0x08, self.links);
        put_u32(m, 0x0C, self.kind);
        put_u32(m, 0x10, self.flags);
        put_u64(m, 0x14, self.size);
        put_u64(m, 0x1C, self.block_size);
        put_u64(m, 0x24, self.num_blocks);
        put_u32(m, 0x2C, self.time);
        put_u32(m, 0x30, self.time);
        put_u32(m, 0x34, self.time);
        put_u32(m, 0x40, self.mode);
        put_u32(m, 0x44, self.zla);
        put_u32(m, 0x48, self.num_tbz as u32);
        put_u32(m, 0x50, self.new_since_epoch);
        put_u32(m, 0x54, (self.num_tbz >> 32) as u32);
        put_u32(m, 0x5C, self.num_pbs);
        if p.v6() {
            put_u32(m, 0x64, FDMD_SIGNATURE);
        }
        put_u32(m, 0x68, self.affinity);
        put_u32(m, 0x6C, 20);
        put_u32(m, 0x70, self.parent);
        put_u32(m, 0x74, self.last_sfbc);
        put_u32(m, 0x7C, self.meta_7c);
        put_u32(m, 0x80, self.affinity_bitmap);
        // VMFS3 FDs leave blockOffsetShift 0 (observed); readers derive it from blockSize.
        m[0x89] = if self.block_size.is_power_of_two() && !p.v3() { self.block_size.trailing_zeros() as u8 } else { 0 };
        match &self.store {
            Store::Resident(d) => {
                let n = d.len().min(g.data_size);
                b[g.data_off..g.data_off + n].copy_from_slice(&d[..n]);
            }
            Store::Pointers(ptrs) => {
                if p.v6() && self.sfb_mask != 0 {
                    put_u64(&mut b, g.data_off, self.sfb_mask);
                }
                let n = ptrs.len().min(g.ptrs_count);
                put_pointers(&mut b[g.ptrs_off..], g.ptr_width, &ptrs[..n]);
            }
        }
        b
    }

    /// Record, as VMFS6 FDs do, the SFB clusters (of `per` SFBs each) that `blocks` lie in.
    pub fn track_sfb_clusters(&mut self, blocks: impl Iterator<Item = u64>, per: u64) {
        let clusters: std::collections::BTreeSet<u64> = blocks.map(|b| b / per).collect();
        if let Some(&last) = clusters.last() {
            self.meta_7c = 1;
            self.affinity_bitmap = clusters.len() as u32;
            self.last_sfbc = last as u32;
            self.sfb_mask = clusters.iter().filter(|&&c| c < 64).fold(0, |m, c| m | 1 << c);
        }
    }

    /// The FD as ESXi leaves it after a delete: unlinked, length and block map cleared,
    /// type, mode, times and address kept.
    pub fn freed(&self) -> Self {
        Self {
            links: 0,
            size: 0,
            num_blocks: 0,
            num_tbz: 0,
            num_pbs: 0,
            flags: if self.flags != 0 { 0xA } else { 0 },
            sfb_mask: 0,
            meta_7c: 0,
            store: match &self.store {
                Store::Resident(_) => Store::Resident(Vec::new()),
                Store::Pointers(_) => Store::Pointers(Vec::new()),
            },
            ..self.clone()
        }
    }
}

/// Block pointers as stored: little-endian u32 (VMFS3/5) or u64 (VMFS6) of `width` bytes.
pub fn put_pointers(b: &mut [u8], width: usize, ptrs: &[u64]) {
    for (slot, v) in b.chunks_exact_mut(width).zip(ptrs) {
        slot.copy_from_slice(&v.to_le_bytes()[..width]);
    }
}

/// Flags word of a VMFS6 resource file header (`FS3_ResFileMetadata.flags`), as observed.
fn res_flags(k: ResKind, child: bool) -> u32 {
    match (k, child) {
        (ResKind::Lfb, _) => 0x35,
        (ResKind::Fb, true) => 0x2A,
        (ResKind::Jb | ResKind::Unmap, _) => 0,
        _ => 0x4,
    }
}

/// A resource file header (`FS3_ResFileMetadata`, file offset 0; the VMFS6 SFB child header
/// goes at 0x1000 of .fbb.sf with `parent` set).
pub fn res_header(p: &Params, s: &ResSpec, parent: Option<&ResSpec>) -> Vec<u8> {
    let mut b = vec![0u8; 0x100];
    put_u32(&mut b, 0x00, s.r as u32);
    put_u32(&mut b, 0x04, s.c as u32);
    put_u32(&mut b, 0x08, s.cgo as u32);
    put_u32(&mut b, 0x0C, s.rs as u32);
    put_u32(&mut b, 0x10, s.cgs() as u32);
    put_u32(&mut b, 0x14, s.n as u32);
    put_u32(&mut b, 0x18, s.ncg() as u32);
    put_u32(&mut b, 0x1C, (s.n >> 32) as u32);
    if p.v6() {
        put_u32(&mut b, 0x20, RFMD_SIGNATURE);
        put_u32(&mut b, 0x24, 1);
        put_u32(&mut b, 0x28, res_flags(s.kind, parent.is_some()));
        let (apc, apr, bpr) = match (s.kind, parent.is_some()) {
            (ResKind::Lfb, _) => (840, 52, 3),
            (ResKind::Fb, true) => (216, 1, 2),
            (ResKind::Fd, _) => (256, 1, 1),
            (_, _) => (s.r as u16, 1, 1),
        };
        put_u16(&mut b, 0x2C, apc);
        put_u16(&mut b, 0x2E, apr);
        put_u32(&mut b, 0x30, bpr);
        if s.kind == ResKind::Lfb {
            put_u32(&mut b, 0x34, 0x1000);
        }
        if let Some(par) = parent {
            put_u32(&mut b, 0x38, par.r as u32);
            put_u32(&mut b, 0x3C, par.c as u32);
            put_u32(&mut b, 0x40, par.cgs() as u32);
            put_u32(&mut b, 0x54, par.n as u32);
        }
    }
    b
}

/// A cluster header (lock + cluster metadata) of cluster `cl` at volume offset `self_off`,
/// with `used(i)` telling whether resource `i` of the cluster is allocated.
pub fn cluster_header(p: &Params, s: &ResSpec, cl: u64, self_off: u64, used: &dyn Fn(u64) -> bool) -> Vec<u8> {
    let mut b = vec![0u8; s.hdr as usize];
    lock(&mut b, cluster_lock_type(s.kind), self_off, 1);
    let total = s.in_cluster(cl);
    let used_n = (0..total).filter(|&i| used(i)).count() as u64;
    let next_free = (0..total).find(|&i| !used(i)).unwrap_or(0);
    if p.v6() {
        let m = &mut b[p.geo.md as usize..];
        put_u32(m, 0x10, RCMD_SIGNATURE);
        put_u64(m, 0x18, cl);
        put_u16(m, 0x20, total as u16);
        put_u16(m, 0x22, (total - used_n) as u16);
        put_u32(m, 0x30, 1);
        put_u32(m, 0x7C, next_free as u32);
        bitmap_free(&mut m[0x80..], total, used);
    } else {
        let m = &mut b[0x200..];
        put_u32(m, 0x00, cl as u32);
        put_u32(m, 0x04, total as u32);
        put_u32(m, 0x08, (total - used_n) as u32);
        put_u32(m, 0x0C, next_free as u32);
        bitmap_free(&mut m[0x10..], total, used);
    }
    b
}

/// The header of VMFS6 LFB parent cluster `cl` in .fbb.sf: 3 bits per LFB (4 = converted into
/// an SFB cluster; 0 = in use as a large block, a guess: no sample has one), the bits-per-
/// resource mask 7, and one 8-byte record per LFB holding 0xff, as ESXi formats it.
pub fn lfb_cluster_header(p: &Params, s: &ResSpec, cl: u64, self_off: u64, used: &dyn Fn(u64) -> bool) -> Vec<u8> {
    let mut b = vec![0u8; s.hdr as usize];
    lock(&mut b, cluster_lock_type(s.kind), self_off, 1);
    let m = &mut b[p.geo.md as usize..];
    let total = s.in_cluster(cl);
    put_u32(m, 0x10, RCMD_SIGNATURE);
    put_u64(m, 0x18, cl);
    put_u16(m, 0x20, total as u16);
    m[0x2A] = 7;
    put_u32(m, 0x30, 1);
    put_u32(m, 0x7C, (0..total).find(|&i| !used(i)).unwrap_or(0) as u32);
    let bits = (0..total).fold(0u64, |acc, i| acc | (if used(i) { 0 } else { 4 }) << (3 * i));
    put_u64(m, 0x80, bits);
    for i in 0..total as usize {
        m[0xE0 + 8 * i] = 0xFF;
    }
    b
}

/// A bitmap where a set bit means free, over `total` resources.
fn bitmap_free(b: &mut [u8], total: u64, used: &dyn Fn(u64) -> bool) {
    for i in 0..total {
        if !used(i)
            && let Some(byte) = b.get_mut((i / 8) as usize)
        {
            *byte |= 1 << (i % 8);
        }
    }
}

/// The heartbeat region: every slot free, holding its own volume offset.
pub fn heartbeats(p: &Params) -> Vec<u8> {
    let mut b = vec![0u8; (p.hb_slots * p.hb_size) as usize];
    for i in 0..p.hb_slots {
        let o = (i * p.hb_size) as usize;
        put_u32(&mut b[o..], 0, HB_FREE);
        put_u64(&mut b[o..], 4, 0x30_0000 + i * p.hb_size);
    }
    b
}

/// One row of a VMFS6 SFB cluster's affinity table: which FD holds how many of its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affinity {
    pub fd: u32,
    pub blocks: u16,
    /// 1 for blocks of thin (sparse) files, as observed.
    pub flag: u16,
}

/// The header of VMFS6 SFB cluster `cl` (a resource of the LFB parent in .fbb.sf): a 2-bit
/// map per SFB (01 free, 00 used) in two halves of 256, their next-free indices, and the
/// affinity table.
pub fn sfb_cluster_header(
    p: &Params,
    s: &ResSpec,
    cl: u64,
    self_off: u64,
    used: &dyn Fn(u64) -> bool,
    affinity: &[Affinity],
) -> Vec<u8> {
    let mut b = vec![0u8; s.hdr as usize];
    lock(&mut b, cluster_lock_type(s.kind), self_off, 1);
    let m = &mut b[p.geo.md as usize..];
    let total = s.in_cluster(cl);
    let used_n = (0..total).filter(|&i| used(i)).count() as u64;
    put_u32(m, 0x10, RCMD_SIGNATURE);
    put_u64(m, 0x18, cl);
    put_u16(m, 0x20, total as u16);
    put_u16(m, 0x22, (total - used_n) as u16);
    let rows = affinity.len().min((m.len() - 0x948) / 8);
    put_u16(m, 0x26, rows as u16 + 1);
    m[0x2B] = 1;
    put_u32(m, 0x30, 1);
    for half in 0..2u64 {
        let (map, next) = if half == 0 { (0x80usize, 0x7Cusize) } else { (0x180, 0x100) };
        let lo = half * 256;
        let hi = (lo + 256).min(total);
        let first_free = (lo..hi).find(|&i| !used(i)).map_or(0, |i| i - lo);
        put_u32(m, next, first_free as u32);
        for i in lo..hi {
            if !used(i) {
                let k = (i - lo) as usize;
                m[map + k / 4] |= 1 << (2 * (k % 4));
            }
        }
    }
    for (i, a) in affinity.iter().take(rows).enumerate() {
        let o = 0x948 + 8 * i;
        put_u32(m, o, a.fd);
        put_u16(m, o + 4, a.blocks);
        put_u16(m, o + 6, a.flag);
    }
    b
}

/// The FS3 descriptor as ESXi writes it: the fields the reader models, and the ones it does
/// not (journal slots, unmap settings, pointer-block shift, the VMFS6 tail past 0x170).
pub fn fs_descriptor(p: &Params) -> Vec<u8> {
    let mut desc = p.desc.encode();
    if p.v6() {
        desc.resize(0x200, 0);
        put_u16(&mut desc, 0x112, 1);
        put_u16(&mut desc, 0x13E, 16);
        put_u16(&mut desc, 0x140, 44);
        put_u32(&mut desc, 0x144, 0x10_0000);
        put_u32(&mut desc, 0x148, 0x20_0000);
        put_u32(&mut desc, 0x14C, 16000);
        put_u32(&mut desc, 0x150, 4000);
        put_u32(&mut desc, 0xDD, 0x40);
        // Past the documented fields: the .unmap.sf FD (volume offset, address), then 0x80.
        put_u64(&mut desc, 0x17F, p.system_fd_offset(9));
        put_u32(&mut desc, 0x187, crate::vmfs::address::make_fd(0, 9));
        put_u32(&mut desc, 0x18B, 0x80);
    } else if !p.v3() {
        put_u32(&mut desc, 0xDD, 8);
    }
    put_u64(&mut desc, 0xFD, 1);
    // volInfo: LV UUID, then its snapshot ID.
    put_u32(&mut desc, 0xC1, 1);
    desc[0xED..0xFD].copy_from_slice(&p.host_uuid.0);
    desc
}
