//! VMFS6 directory name hashing (`Fil3LookupIntVMFS6`) and lookup through the hash table.
//!
//! The key is a 256-byte buffer: the name's UTF-8 bytes, then the salt `0x739A75C28E61B017`
//! repeated in the 8-byte words from `roundup8(len + 1)` up to byte 128, zeros after. The hash is
//! Bob Jenkins' lookup8 mix over the 32 little-endian quads with `a = b = 42`, except that `c`
//! grows by the number of quads (not bytes) before the last mix (`HashFunc_HashQuads`). The hash
//! table index is `hash mod 16001` (`mod 15973` in the root, whose last 28 slots hold the system
//! files); bits 16–31 tell names apart inside a link group.

use super::error::Result;
use super::fd::Fd;
use super::ondisk::{DIR6_BLOCK_HEADER_SIZE, DIR6_ENTRY_SIZE, DIR6_HEADER_BLOCK_SIZE, DIR6_HEADER_SIZE, DirEntry6};
use super::volume::Vmfs;
use crate::le::{u8_at, u16_at, u32_at};

/// `FS6_DIR_HASH_MAX_ENTRIES`.
pub const HASH_ENTRIES: u64 = 16001;
/// `FS6_DIR_HASH_MAX_ENTRIES - FS6_DIR_HASH_ROOT_RESERVED`.
pub const HASH_ENTRIES_ROOT: u64 = 15973;
const SALT: u64 = 0x739A_75C2_8E61_B017;
/// Size of `FS6_DirLinkGroup`.
const LINK_GROUP_SIZE: usize = 0x54;
/// Link groups followed before giving up (a chain is a few groups long in practice).
const MAX_HOPS: usize = 256;

/// Fixed hash slots of the system files in the root directory.
const SYSTEM_FILES: [(&str, u64); 10] = [
    (".fbb.sf", 0x3E66),
    (".fdc.sf", 0x3E67),
    (".pbc.sf", 0x3E68),
    (".sbc.sf", 0x3E69),
    (".vh.sf", 0x3E6A),
    (".pb2.sf", 0x3E6B),
    (".sdd.sf", 0x3E6C),
    (".jbc.sf", 0x3E6D),
    (".unmap.sf", 0x3E6E),
    (".dfd.sf", 0x3E6F),
];

/// lookup8.c's `mix64`, in wrapping arithmetic.
fn mix(mut a: u64, mut b: u64, mut c: u64) -> (u64, u64, u64) {
    for (sa, sb, sc) in [(43, 9, 8), (38, 23, 5), (35, 49, 11), (12, 18, 22)] {
        a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> sa);
        b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << sb);
        c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> sc);
    }
    (a, b, c)
}

/// The 64-bit hash of a directory entry name.
pub fn name_hash(name: &[u8]) -> u64 {
    let mut key = [0u8; 256];
    let n = name.len().min(255);
    key[..n].copy_from_slice(&name[..n]);
    let mut i = (n + 8) & !7;
    while i < 127 {
        key[i..i + 8].copy_from_slice(&SALT.to_le_bytes());
        i += 8;
    }
    let quads: Vec<u64> = key.chunks_exact(8).map(|q| u64::from_le_bytes(q.try_into().unwrap_or([0; 8]))).collect();
    let (mut a, mut b, mut c) = (42u64, 42u64, 0x9E37_79B9_7F4A_7C13u64);
    let mut rest = &quads[..];
    while rest.len() > 2 {
        a = a.wrapping_add(rest[0]);
        b = b.wrapping_add(rest[1]);
        c = c.wrapping_add(rest[2]);
        (a, b, c) = mix(a, b, c);
        rest = &rest[3..];
    }
    c = c.wrapping_add(quads.len() as u64);
    if let Some(&q) = rest.first() {
        a = a.wrapping_add(q);
    }
    if let Some(&q) = rest.get(1) {
        b = b.wrapping_add(q);
    }
    mix(a, b, c).2
}

/// `(link hash, hash-table index)` of `name` in a directory (the root when `in_root`).
pub fn hash_slot(name: &[u8], in_root: bool) -> (u16, u64) {
    if in_root && let Some((_, idx)) = SYSTEM_FILES.iter().find(|(n, _)| n.as_bytes() == name) {
        return (*idx as u16, *idx);
    }
    let h = name_hash(name);
    ((h >> 16) as u16, h % if in_root { HASH_ENTRIES_ROOT } else { HASH_ENTRIES })
}

/// A hash-table location: `type` bits 0–1, block bits 2–23, slot bits 24–31.
fn location(raw: u32) -> (u32, u64, usize) {
    (raw & 3, u64::from((raw >> 2) & 0x3F_FFFF), (raw >> 24) as usize)
}

impl Vmfs {
    /// Find `name` in VMFS6 directory `dir` through its hash table. `Ok(None)` when the table
    /// does not lead to it (absent, or the table is damaged: callers fall back to a full listing).
    pub fn lookup_hashed(&self, dir: &Fd, name: &[u8], in_root: bool) -> Result<Option<DirEntry6>> {
        let (link_hash, idx) = hash_slot(name, in_root);
        let size = dir.meta.size;
        let md = self.geo.md;
        let slot_off = DIR6_HEADER_SIZE as u64 + idx * 4;
        if slot_off + 4 > size.min(DIR6_HEADER_BLOCK_SIZE) {
            return Ok(None);
        }
        let raw = self.read_file_range(dir, slot_off, 4, 0)?;
        let mut loc = location(u32_at(&raw, 0).unwrap_or(0));
        for _ in 0..MAX_HOPS {
            let (kind, block, slot) = loc;
            let block_off = DIR6_HEADER_BLOCK_SIZE + block * md;
            match kind {
                1 => {
                    let off = block_off + (DIR6_BLOCK_HEADER_SIZE + slot * DIR6_ENTRY_SIZE) as u64;
                    if off + DIR6_ENTRY_SIZE as u64 > size {
                        return Ok(None);
                    }
                    let bytes = self.read_file_range(dir, off, DIR6_ENTRY_SIZE as u64, 0)?;
                    return Ok(DirEntry6::parse(&bytes).ok().filter(|e| e.name == name && e.desc_addr != 0));
                }
                2 => {
                    let off = block_off + (DIR6_BLOCK_HEADER_SIZE + slot * LINK_GROUP_SIZE) as u64;
                    if off + LINK_GROUP_SIZE as u64 > size {
                        return Ok(None);
                    }
                    let g = self.read_file_range(dir, off, LINK_GROUP_SIZE as u64, 0)?;
                    if u64::from(u16_at(&g, 0).unwrap_or(0)) != idx {
                        return Ok(None);
                    }
                    let used = usize::from(u8_at(&g, 2).unwrap_or(0).saturating_sub(u8_at(&g, 3).unwrap_or(0))).min(12);
                    let hit = (0..used).find(|i| u16_at(&g, 6 + i * 6 + 4) == Some(link_hash));
                    loc = match hit {
                        Some(i) => location(u32_at(&g, 6 + i * 6).unwrap_or(0)),
                        None => location(u32_at(&g, 0x4e).unwrap_or(0)),
                    };
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_files_have_fixed_slots_in_the_root_only() {
        assert_eq!(hash_slot(b".fdc.sf", true), (0x3E67, 0x3E67));
        assert_ne!(hash_slot(b".fdc.sf", false).1, 0x3E67);
    }

    #[test]
    fn hash_is_stable_for_long_names() {
        let long = [b'x'; 300];
        assert_eq!(name_hash(&long), name_hash(&long[..255]));
        assert_ne!(name_hash(b"a"), name_hash(b"b"));
    }
}
