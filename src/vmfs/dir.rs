//! Directories: VMFS3/5 flat record arrays and VMFS6 hashed directories; path lookup.

use super::error::{CorruptKind, Error, Result};
use super::fd::Fd;
use super::ondisk::{
    DIR_ENTRY5_SIZE, DIR6_BLOCK_HEADER_SIZE, DIR6_ENTRY_SIZE, DIR6_HEADER_BLOCK_SIZE, DIR6_HEADER_SIZE,
    DirBlockHeader6, DirEntry5, DirEntry6, DirHeader6, FdType,
};
use super::volume::{MAX_METADATA_FILE, Vmfs};

/// Most entries read from one directory (ESXi's own limit is far lower).
pub const MAX_DIR_ENTRIES: usize = 1 << 20;

/// One name in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name's bytes as stored (UTF-8 by convention, not by guarantee).
    pub name: Vec<u8>,
    /// FD address.
    pub addr: u32,
    /// Type recorded in the entry.
    pub kind: FdType,
    /// Generation recorded in the entry.
    pub generation: u32,
}

impl DirEntry {
    /// The name as text (invalid UTF-8 replaced).
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

fn keep(name: &[u8], addr: u32) -> bool {
    addr != 0 && !name.is_empty() && name != b"." && name != b".."
}

impl Vmfs {
    /// The entries of directory `fd`, without `.` and `..`, in on-disk order.
    pub fn read_dir(&self, fd: &Fd) -> Result<Vec<DirEntry>> {
        if !fd.is_dir() {
            return Err(Error::NotADirectory(format!("FD {:#x}", fd.addr)));
        }
        if fd.meta.size > MAX_METADATA_FILE {
            return Err(Error::corrupt(
                "FS3_FileMetadata",
                fd.vol_offset(),
                CorruptKind::OutOfRange { field: "directory size", value: fd.meta.size, limit: MAX_METADATA_FILE },
            ));
        }
        if self.geo.v6 { self.read_dir6(fd) } else { self.read_dir5(fd) }
    }

    fn read_dir5(&self, fd: &Fd) -> Result<Vec<DirEntry>> {
        let data = self.read_file_range(fd, 0, fd.meta.size, 0)?;
        // Every VMFS3/5 directory starts with "." naming itself: without it the directory's
        // data is not what its FD points at (zeroed, overwritten or reallocated).
        if let Some(first) = data.get(..DIR_ENTRY5_SIZE)
            && let Ok(e) = DirEntry5::parse(first)
            && (e.name != b"." || e.desc_addr != fd.addr)
        {
            return Err(Error::corrupt_in_file(
                DirEntry5::NAME,
                fd.addr,
                0,
                CorruptKind::Inconsistent(format!(
                    "directory data lost: its first entry is {:?} (FD {:#x}), not \".\" naming the directory",
                    String::from_utf8_lossy(&e.name),
                    e.desc_addr
                )),
            ));
        }
        let mut out = Vec::new();
        for rec in data.chunks_exact(DIR_ENTRY5_SIZE).take(MAX_DIR_ENTRIES) {
            let e = DirEntry5::parse(rec).map_err(|k| Error::corrupt_in_file(DirEntry5::NAME, fd.addr, 0, k))?;
            if keep(&e.name, e.desc_addr) {
                out.push(DirEntry { name: e.name, addr: e.desc_addr, kind: e.kind, generation: e.generation });
            }
        }
        Ok(out)
    }

    /// VMFS6 (`Fil3_ReaddirVMFS6`): the allocation-map blocks name every dirent block; each
    /// dirent block's bitmap names its used slots.
    fn read_dir6(&self, fd: &Fd) -> Result<Vec<DirEntry>> {
        let size = fd.meta.size;
        let head = self.read_file_range(fd, 0, (DIR6_HEADER_SIZE as u64).min(size), 0)?;
        let header = DirHeader6::parse(&head).map_err(|k| Error::corrupt_in_file(DirHeader6::NAME, fd.addr, 0, k))?;
        let md = self.geo.md;
        let block_at = |blk: u64| DIR6_HEADER_BLOCK_SIZE.checked_add(blk.checked_mul(md)?);
        let per_map = (md - DIR6_BLOCK_HEADER_SIZE as u64) * 2;
        let mut out = Vec::new();
        let mut seen_blocks = std::collections::HashSet::new();
        for (i, &map_blk) in header.alloc_map_blocks.iter().enumerate() {
            let Some(map_off) = block_at(map_blk.into()).filter(|o| o + md <= size) else {
                tracing::warn!(
                    fd = format_args!("{:#x}", fd.addr),
                    block = map_blk,
                    "allocation map block outside the directory"
                );
                continue;
            };
            let map = self.read_file_range(fd, map_off, md, 0)?;
            for (j, byte) in map[DIR6_BLOCK_HEADER_SIZE..].iter().enumerate() {
                for (k, nib) in [byte >> 4, byte & 0xF].into_iter().enumerate() {
                    if nib & 3 != 1 {
                        continue;
                    }
                    let blk = i as u64 * per_map + (j * 2 + k) as u64;
                    let Some(off) = block_at(blk).filter(|o| o + md <= size) else { continue };
                    if !seen_blocks.insert(blk) {
                        continue;
                    }
                    let block = self.read_file_range(fd, off, md, 0)?;
                    self.dirent_block(fd, off, &block, &mut out)?;
                    if out.len() >= MAX_DIR_ENTRIES {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    fn dirent_block(&self, fd: &Fd, off: u64, block: &[u8], out: &mut Vec<DirEntry>) -> Result<()> {
        let bh = DirBlockHeader6::parse(block)
            .map_err(|k| Error::corrupt_in_file(DirBlockHeader6::NAME, fd.addr, off, k))?;
        let fit = (block.len() - DIR6_BLOCK_HEADER_SIZE) / DIR6_ENTRY_SIZE;
        for slot in 0..usize::from(bh.total_slots).min(fit) {
            if !bh.slot_used(slot) {
                continue;
            }
            let at = DIR6_BLOCK_HEADER_SIZE + slot * DIR6_ENTRY_SIZE;
            let e = DirEntry6::parse(&block[at..])
                .map_err(|k| Error::corrupt_in_file(DirEntry6::NAME, fd.addr, off + at as u64, k))?;
            if e.self_offset != off + at as u64 {
                tracing::warn!(
                    fd = format_args!("{:#x}", fd.addr),
                    offset = off + at as u64,
                    "dirent self-offset mismatch"
                );
            }
            if keep(&e.name, e.desc_addr) {
                out.push(DirEntry { name: e.name, addr: e.desc_addr, kind: e.kind, generation: e.generation });
            }
        }
        Ok(())
    }

    /// The FD at `path` ("/a/b", "a/b" and "/" accepted).
    pub fn lookup(&self, path: &str) -> Result<Fd> {
        let mut fd = self.root()?;
        let mut walked = String::new();
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            walked.push('/');
            walked.push_str(part);
            if !fd.is_dir() {
                return Err(Error::NotADirectory(walked));
            }
            // VMFS6: the hash table first; a full listing when it does not lead there (a
            // damaged table must not hide a file that the listing still shows).
            let hashed = if self.geo.v6 {
                self.lookup_hashed(&fd, part.as_bytes(), fd.addr == super::volume::ROOT_FD).ok().flatten()
            } else {
                None
            };
            let addr = match hashed {
                Some(e) => e.desc_addr,
                None => {
                    self.read_dir(&fd)?
                        .into_iter()
                        .find(|e| e.name == part.as_bytes())
                        .ok_or_else(|| Error::NotFound(walked.clone()))?
                        .addr
                }
            };
            fd = self.read_fd(addr)?;
        }
        Ok(fd)
    }

    /// The target of a symlink.
    pub fn read_link(&self, fd: &Fd) -> Result<Vec<u8>> {
        if fd.meta.kind != FdType::Symlink {
            return Err(Error::Unsupported(format!("FD {:#x} is not a symlink", fd.addr)));
        }
        let len = fd.meta.size.min(4096);
        self.read_file_range(fd, 0, len, 0)
    }
}
