//! Recognise structures at 512-byte-aligned positions of a buffer. Pure and cheap: most sectors
//! are rejected by one or two word compares, so classification keeps up with the disk on two
//! cores. Every recogniser checks its own bounds; nothing here trusts a size it read.

use super::finding::What;
use crate::container::lvm::ondisk::{LVM_MAGIC, LvmDeviceHeader};
use crate::le::{u32_at, u64_at};
use crate::vmfs::ondisk::{DiskLock, FileMeta, FsDescriptor, LOCK_TYPE_FD, VMFS_MAGIC, VMFSL_MAGIC};
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
        _ => None,
    }
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
            parent: meta.parent_fd,
            v6,
        });
    }
    let _ = u64_at(b, 0);
    None
}
