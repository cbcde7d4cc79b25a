//! What a partition or disk holds: the file system (or volume manager) kind and its label, from
//! its first 68 KiB plus a few small reads (NTFS's `$Volume` record, exFAT's root directory, the
//! VMware LVM header at 1 MiB, the FS3 descriptor at 2 MiB).
//!
//! Every recogniser is a pure function of bytes that answers `None` for anything it does not
//! understand; nothing here panics on hostile bytes or allocates from a size read off the disk.
//! VMFS and VMware LVM are checked *first*: a datastore disk once formatted otherwise, or the
//! other way round, must be seen as a possible source, never offered as a writable destination.

use crate::container::lvm::ondisk::{LVM_DEV_HEADER_OFFSET, LvmDeviceHeader};
use crate::le::{u16_at, u32_at, u64_at};
use crate::vmfs::ondisk::{FS_DESCRIPTOR_SIZE, FsDescriptor};
use serde::Serialize;
use std::path::Path;

/// Bytes read from the start: the btrfs superblock at 64 KiB is the farthest structure in it.
pub const HEAD_LEN: usize = 0x11000;
/// Largest extra read a recogniser may ask for.
const MAX_EXTRA: usize = 0x1_0000;
/// Volume offset of the FS3 descriptor (`FS3_FS_HEADER_OFFSET`).
const FS3_DESCRIPTOR_OFFSET: u64 = 0x20_0000;

/// A file system or volume-manager signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsKind {
    /// FAT12/16/32.
    Vfat,
    /// exFAT.
    Exfat,
    /// ext2 (no journal).
    Ext2,
    /// ext3 (journal, no ext4 features).
    Ext3,
    /// ext4.
    Ext4,
    /// NTFS.
    Ntfs,
    /// XFS.
    Xfs,
    /// Btrfs.
    Btrfs,
    /// ISO 9660 (CD image, isohybrid stick).
    Iso9660,
    /// A VMFS volume without LVM (VMFS-L, a raw volume): the FS3 descriptor at +2 MiB.
    Vmfs,
    /// A VMware LVM device (a VMFS datastore's extent): `LVM_DevMetadata` at +1 MiB.
    VmwareLvm,
    /// Linux swap.
    Swap,
    /// LUKS encrypted volume.
    Luks,
    /// Linux LVM2 physical volume.
    LinuxLvm,
    /// Linux md RAID member (superblock 1.2).
    LinuxRaid,
}

impl FsKind {
    /// The name used in text output and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vfat => "vfat",
            Self::Exfat => "exfat",
            Self::Ext2 => "ext2",
            Self::Ext3 => "ext3",
            Self::Ext4 => "ext4",
            Self::Ntfs => "ntfs",
            Self::Xfs => "xfs",
            Self::Btrfs => "btrfs",
            Self::Iso9660 => "iso9660",
            Self::Vmfs => "vmfs",
            Self::VmwareLvm => "vmware_lvm",
            Self::Swap => "swap",
            Self::Luks => "luks",
            Self::LinuxLvm => "linux_lvm",
            Self::LinuxRaid => "linux_raid",
        }
    }
    /// A file system recovered files can be written to (if the kernel or ntfs-3g supports it).
    pub fn writable(self) -> bool {
        matches!(
            self,
            Self::Vfat | Self::Exfat | Self::Ext2 | Self::Ext3 | Self::Ext4 | Self::Ntfs | Self::Xfs | Self::Btrfs
        )
    }
    /// VMFS or VMware LVM: a possible recovery source.
    pub fn is_vmware(self) -> bool {
        matches!(self, Self::Vmfs | Self::VmwareLvm)
    }
}

impl std::fmt::Display for FsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A recognised signature and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The kind.
    pub fs: FsKind,
    /// The label (volume name), if set.
    pub label: Option<String>,
}

fn found(fs: FsKind, label: Option<String>) -> Option<Probed> {
    Some(Probed { fs, label })
}

/// Open `path` read-only (never setting BLKROSET, see [`crate::block::open_path_unflagged`]) and
/// identify it. `Err` only when it cannot be opened; a read failure or a short device is
/// `Ok(None)`, like content nobody recognises.
pub fn probe_path(path: &Path) -> std::io::Result<Option<Probed>> {
    let src = crate::block::open_path_unflagged(path)?;
    Ok(probe_source(src.as_ref()))
}

fn probe_source(src: &dyn crate::block::RawSource) -> Option<Probed> {
    let size = src.len();
    let read = |offset: u64, len: usize| -> Option<Vec<u8>> {
        if len > HEAD_LEN.max(MAX_EXTRA) || offset.checked_add(len as u64)? > size {
            return None;
        }
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = src.pread(offset + done as u64, &mut buf[done..]).ok()?;
            if n == 0 {
                return None;
            }
            done += n;
        }
        Some(buf)
    };
    let head_len = usize::try_from(size.min(HEAD_LEN as u64)).ok()?;
    let head = read(0, head_len)?;
    identify(&head, &read)
}

/// Identify the content from its first bytes (`head`, up to [`HEAD_LEN`]) and `read(offset,
/// len)` for the few structures farther in (`None` past the end or on error).
pub fn identify(head: &[u8], read: &dyn Fn(u64, usize) -> Option<Vec<u8>>) -> Option<Probed> {
    if let Some(p) = vmware_lvm(read) {
        return Some(p);
    }
    if let Some(d) = read(FS3_DESCRIPTOR_OFFSET, FS_DESCRIPTOR_SIZE).and_then(|b| FsDescriptor::parse(&b).ok()) {
        return found(FsKind::Vmfs, clean(d.label.as_bytes()));
    }
    if let Some(geo) = ntfs_boot(head) {
        let label = geo.and_then(|(off, len)| read(off, len)).and_then(|r| ntfs_volume_name(&r));
        return found(FsKind::Ntfs, label);
    }
    if let Some(root) = exfat_boot(head) {
        let label = root.and_then(|off| read(off, 4096)).and_then(|d| exfat_label(&d));
        return found(FsKind::Exfat, label);
    }
    fat(head)
        .or_else(|| xfs(head))
        .or_else(|| ext(head))
        .or_else(|| btrfs(head))
        .or_else(|| swap(head))
        .or_else(|| luks_lvm_md(head))
        .or_else(|| iso9660(head))
}

/// A VMware LVM device header at +1 MiB; the label is the VMFS label when the FS3 descriptor sits
/// at the start of the data area (the first extent of a datastore).
fn vmware_lvm(read: &dyn Fn(u64, usize) -> Option<Vec<u8>>) -> Option<Probed> {
    let hdr = LvmDeviceHeader::parse(&read(LVM_DEV_HEADER_OFFSET, 512)?).ok()?;
    let label = hdr
        .data_offset
        .checked_add(FS3_DESCRIPTOR_OFFSET)
        .and_then(|o| read(o, FS_DESCRIPTOR_SIZE))
        .and_then(|b| FsDescriptor::parse(&b).ok())
        .and_then(|d| clean(d.label.as_bytes()));
    found(FsKind::VmwareLvm, label)
}

/// A label from fixed-size on-disk bytes: up to the first NUL, trailing blanks dropped, control
/// characters removed; empty is `None`.
pub fn clean(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s: String = String::from_utf8_lossy(&b[..end]).chars().filter(|c| !c.is_control()).collect();
    let s = s.trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

fn utf16(b: &[u8]) -> Option<String> {
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0);
    let s: String = char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).filter(|c| !c.is_control()).collect();
    let s = s.trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// A power of two in `lo..=hi`.
fn pow2_in(v: u64, lo: u64, hi: u64) -> bool {
    v.is_power_of_two() && (lo..=hi).contains(&v)
}

/// FAT12/16/32 boot sector; the label is the boot sector's (mkfs.vfat and fatlabel write it there
/// and in the root directory).
pub fn fat(b: &[u8]) -> Option<Probed> {
    if !matches!(b.first(), Some(0xEB | 0xE9)) || u16_at(b, 510)? != 0xAA55 {
        return None;
    }
    let bps = u64::from(u16_at(b, 0x0B)?);
    let spc = u64::from(*b.get(0x0D)?);
    let fats = *b.get(0x10)?;
    if !pow2_in(bps, 512, 4096) || !pow2_in(spc, 1, 128) || u16_at(b, 0x0E)? == 0 || !(1..=2).contains(&fats) {
        return None;
    }
    let label_at = if b.get(0x52..0x57) == Some(b"FAT32") {
        (*b.get(0x42)? == 0x29).then_some(0x47)
    } else if b.get(0x36..0x39) == Some(b"FAT") || u16_at(b, 0x16)? != 0 {
        (*b.get(0x26)? == 0x29).then_some(0x2B)
    } else {
        return None;
    };
    let label = label_at.and_then(|o| clean(b.get(o..o + 11)?)).filter(|l| l != "NO NAME");
    found(FsKind::Vfat, label)
}

/// NTFS boot sector: `Some(where)` when it is NTFS, `where` being the offset and length of MFT
/// record 3 (`$Volume`) when the geometry is sane.
pub fn ntfs_boot(b: &[u8]) -> Option<Option<(u64, usize)>> {
    if b.get(3..11) != Some(b"NTFS    ") || u16_at(b, 510)? != 0xAA55 {
        return None;
    }
    let geo = || {
        let bps = u64::from(u16_at(b, 0x0B)?);
        let raw = *b.get(0x0D)?;
        let spc = if raw <= 0x80 { u64::from(raw) } else { 1u64.checked_shl(256 - u32::from(raw))? };
        if !pow2_in(bps, 256, 4096) || !pow2_in(spc, 1, 1 << 16) {
            return None;
        }
        let cluster = bps * spc;
        let per = i8::from_le_bytes([*b.get(0x40)?]);
        let rec =
            if per > 0 { u64::try_from(per).ok()? * cluster } else { 1u64.checked_shl(u32::from(per.unsigned_abs()))? };
        if !pow2_in(rec, 256, MAX_EXTRA as u64) {
            return None;
        }
        let off = u64_at(b, 0x30)?.checked_mul(cluster)?.checked_add(rec * 3)?;
        Some((off, usize::try_from(rec).ok()?))
    };
    Some(geo())
}

/// The `$VOLUME_NAME` (0x60) attribute of the `$Volume` MFT record, after the update-sequence
/// fixups (512-byte stride).
pub fn ntfs_volume_name(rec: &[u8]) -> Option<String> {
    if rec.get(0..4) != Some(b"FILE") {
        return None;
    }
    let mut r = rec.to_vec();
    let usa = usize::from(u16_at(&r, 4)?);
    let count = usize::from(u16_at(&r, 6)?);
    for i in 1..count {
        let end = i.checked_mul(512)?;
        let fix = r.get(usa + 2 * i..usa + 2 * i + 2)?.to_vec();
        if end > r.len() {
            break;
        }
        r.get_mut(end - 2..end)?.copy_from_slice(&fix);
    }
    let mut off = usize::from(u16_at(&r, 0x14)?);
    for _ in 0..64 {
        let kind = u32_at(&r, off)?;
        if kind == 0xFFFF_FFFF {
            return None;
        }
        let len = usize::try_from(u32_at(&r, off + 4)?).ok()?;
        if len < 0x18 {
            return None;
        }
        if kind == 0x60 && *r.get(off + 8)? == 0 {
            let vlen = usize::try_from(u32_at(&r, off + 0x10)?).ok()?;
            let voff = usize::from(u16_at(&r, off + 0x14)?);
            let start = off.checked_add(voff)?;
            return utf16(r.get(start..start.checked_add(vlen)?)?);
        }
        off = off.checked_add(len)?;
    }
    None
}

/// exFAT boot sector: `Some(where)` when it is exFAT, `where` being the root directory's offset
/// when the geometry is sane.
pub fn exfat_boot(b: &[u8]) -> Option<Option<u64>> {
    if b.get(3..11) != Some(b"EXFAT   ") {
        return None;
    }
    let geo = || {
        let bps_shift = u32::from(*b.get(0x6C)?);
        let spc_shift = u32::from(*b.get(0x6D)?);
        if !(9..=12).contains(&bps_shift) || bps_shift + spc_shift > 25 {
            return None;
        }
        let heap = u64::from(u32_at(b, 0x58)?) << bps_shift;
        let root = u64::from(u32_at(b, 0x60)?).checked_sub(2)?;
        heap.checked_add(root << (bps_shift + spc_shift))
    };
    Some(geo())
}

/// The volume label entry (type 0x83) among the first entries of the exFAT root directory.
pub fn exfat_label(dir: &[u8]) -> Option<String> {
    for e in dir.chunks_exact(32) {
        match e[0] {
            0x00 => return None,
            0x83 => {
                let n = usize::from(e[1]).min(11);
                return utf16(&e[2..2 + 2 * n]);
            }
            _ => {}
        }
    }
    None
}

/// ext2/3/4 superblock at 1024; the kind by the feature flags, as blkid decides it.
pub fn ext(b: &[u8]) -> Option<Probed> {
    let sb = b.get(0x400..0x800)?;
    if u16_at(sb, 0x38)? != 0xEF53 {
        return None;
    }
    let (compat, incompat, ro_compat) = (u32_at(sb, 0x5C)?, u32_at(sb, 0x60)?, u32_at(sb, 0x64)?);
    // ext3 knows FILETYPE, RECOVER, JOURNAL_DEV, META_BG / SPARSE_SUPER, LARGE_FILE, BTREE_DIR.
    let kind = if incompat & !0x1E != 0 || ro_compat & !0x07 != 0 {
        FsKind::Ext4
    } else if compat & 0x4 != 0 {
        FsKind::Ext3
    } else {
        FsKind::Ext2
    };
    found(kind, clean(sb.get(0x78..0x88)?))
}

/// XFS superblock: "XFSB", label at 0x6C.
pub fn xfs(b: &[u8]) -> Option<Probed> {
    (b.get(0..4)? == b"XFSB").then(|| Probed { fs: FsKind::Xfs, label: b.get(0x6C..0x78).and_then(clean) })
}

/// Btrfs superblock at 64 KiB: magic at +0x40, label at +0x12B.
pub fn btrfs(b: &[u8]) -> Option<Probed> {
    let sb = b.get(0x10000..0x11000)?;
    (sb.get(0x40..0x48)? == b"_BHRfS_M")
        .then(|| Probed { fs: FsKind::Btrfs, label: sb.get(0x12B..0x22B).and_then(clean) })
}

/// Linux swap with 4 KiB pages; v2 carries a label at 0x41C.
pub fn swap(b: &[u8]) -> Option<Probed> {
    match b.get(4086..4096)? {
        b"SWAPSPACE2" => found(FsKind::Swap, clean(b.get(0x41C..0x42C)?)),
        b"SWAP-SPACE" => found(FsKind::Swap, None),
        _ => None,
    }
}

/// LUKS header, Linux LVM2 label (in one of the first four sectors), md superblock 1.2 at 4 KiB.
pub fn luks_lvm_md(b: &[u8]) -> Option<Probed> {
    if b.get(0..6)? == b"LUKS\xBA\xBE" {
        return found(FsKind::Luks, None);
    }
    for s in 0..4 {
        let o = s * 512;
        if b.get(o..o + 8) == Some(b"LABELONE") && b.get(o + 0x18..o + 0x20) == Some(b"LVM2 001") {
            return found(FsKind::LinuxLvm, None);
        }
    }
    if u32_at(b, 0x1000)? == 0xA92B_4EFC && u32_at(b, 0x1004)? == 1 {
        return found(FsKind::LinuxRaid, clean(b.get(0x1020..0x1040)?));
    }
    None
}

/// ISO 9660 primary volume descriptor at 32 KiB; the label is the volume identifier.
pub fn iso9660(b: &[u8]) -> Option<Probed> {
    let d = b.get(0x8000..0x8800)?;
    (d[0] == 1 && &d[1..6] == b"CD001").then(|| Probed { fs: FsKind::Iso9660, label: clean(&d[0x28..0x48]) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: u64, _: usize) -> Option<Vec<u8>> {
        None
    }

    fn fat32(label: &[u8; 11]) -> Vec<u8> {
        let mut b = vec![0u8; HEAD_LEN];
        b[0] = 0xEB;
        b[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        b[0x0D] = 8;
        b[0x0E] = 32;
        b[0x10] = 2;
        b[0x42] = 0x29;
        b[0x47..0x52].copy_from_slice(label);
        b[0x52..0x5A].copy_from_slice(b"FAT32   ");
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    #[test]
    fn fat32_label_and_no_name() {
        let p = identify(&fat32(b"VMFS_RESCUE"), &none).unwrap();
        assert_eq!(p, Probed { fs: FsKind::Vfat, label: Some("VMFS_RESCUE".into()) });
        assert_eq!(fat(&fat32(b"NO NAME    ")).unwrap().label, None);
        let mut b = fat32(b"X          ");
        b[0x0B] = 3; // 515 bytes per sector
        assert_eq!(fat(&b), None);
        b = fat32(b"X          ");
        b[510] = 0;
        assert_eq!(fat(&b), None);
    }

    #[test]
    fn fat16_label() {
        let mut b = vec![0u8; 1024];
        b[0] = 0xEB;
        b[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        b[0x0D] = 4;
        b[0x0E] = 1;
        b[0x10] = 2;
        b[0x16] = 32;
        b[0x26] = 0x29;
        b[0x2B..0x36].copy_from_slice(b"RESCUEOUT  ");
        b[0x36..0x3E].copy_from_slice(b"FAT16   ");
        b[510] = 0x55;
        b[511] = 0xAA;
        assert_eq!(fat(&b), Some(Probed { fs: FsKind::Vfat, label: Some("RESCUEOUT".into()) }));
    }

    #[test]
    fn ext_kinds_by_features() {
        let mut b = vec![0u8; 2048];
        b[0x438..0x43A].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[0x478..0x47D].copy_from_slice(b"data\0");
        assert_eq!(ext(&b), Some(Probed { fs: FsKind::Ext2, label: Some("data".into()) }));
        b[0x45C] = 0x4;
        assert_eq!(ext(&b).unwrap().fs, FsKind::Ext3);
        b[0x460] = 0x40; // extents
        assert_eq!(ext(&b).unwrap().fs, FsKind::Ext4);
        assert_eq!(ext(&b[..1000]), None);
    }

    #[test]
    fn ntfs_geometry_and_volume_name() {
        let mut b = vec![0u8; 512];
        b[3..11].copy_from_slice(b"NTFS    ");
        b[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        b[0x0D] = 8;
        b[0x30..0x38].copy_from_slice(&4u64.to_le_bytes());
        b[0x40] = 0xF6; // -10: 1024-byte records
        b[510] = 0x55;
        b[511] = 0xAA;
        assert_eq!(ntfs_boot(&b), Some(Some((4 * 4096 + 3 * 1024, 1024))));
        b[0x40] = 0x90; // 2^112: refused, still NTFS
        assert_eq!(ntfs_boot(&b), Some(None));

        let mut r = vec![0u8; 1024];
        r[0..4].copy_from_slice(b"FILE");
        r[4..6].copy_from_slice(&0x30u16.to_le_bytes());
        r[6..8].copy_from_slice(&3u16.to_le_bytes());
        r[0x30..0x32].copy_from_slice(&7u16.to_le_bytes()); // sequence number
        r[0x32..0x34].copy_from_slice(&0u16.to_le_bytes()); // real bytes 510..512
        r[0x34..0x36].copy_from_slice(&0u16.to_le_bytes());
        r[0x14..0x16].copy_from_slice(&0x38u16.to_le_bytes());
        // A $STANDARD_INFORMATION-like attribute, then $VOLUME_NAME.
        r[0x38..0x3C].copy_from_slice(&0x10u32.to_le_bytes());
        r[0x3C..0x40].copy_from_slice(&0x18u32.to_le_bytes());
        let a = 0x50;
        r[a..a + 4].copy_from_slice(&0x60u32.to_le_bytes());
        r[a + 4..a + 8].copy_from_slice(&0x28u32.to_le_bytes());
        r[a + 0x10..a + 0x14].copy_from_slice(&8u32.to_le_bytes());
        r[a + 0x14..a + 0x16].copy_from_slice(&0x18u16.to_le_bytes());
        for (i, c) in "OUT1".encode_utf16().enumerate() {
            r[a + 0x18 + 2 * i..a + 0x1A + 2 * i].copy_from_slice(&c.to_le_bytes());
        }
        r[510..512].copy_from_slice(&7u16.to_le_bytes()); // as written: the sequence number
        assert_eq!(ntfs_volume_name(&r).as_deref(), Some("OUT1"));
        r[a + 0x10..a + 0x14].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(ntfs_volume_name(&r), None);
        r[a + 4..a + 8].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(ntfs_volume_name(&r), None);
    }

    #[test]
    fn exfat_root_and_label() {
        let mut b = vec![0u8; 512];
        b[3..11].copy_from_slice(b"EXFAT   ");
        b[0x58..0x5C].copy_from_slice(&2048u32.to_le_bytes());
        b[0x60..0x64].copy_from_slice(&5u32.to_le_bytes());
        b[0x6C] = 9;
        b[0x6D] = 3;
        assert_eq!(exfat_boot(&b), Some(Some(2048 * 512 + 3 * 4096)));
        b[0x6D] = 20;
        assert_eq!(exfat_boot(&b), Some(None));
        let mut d = vec![0u8; 96];
        d[0] = 0x81;
        d[32] = 0x83;
        d[33] = 3;
        for (i, c) in "Été".encode_utf16().enumerate() {
            d[34 + 2 * i..36 + 2 * i].copy_from_slice(&c.to_le_bytes());
        }
        assert_eq!(exfat_label(&d).as_deref(), Some("Été"));
        d[33] = 200; // count capped at 11
        assert!(exfat_label(&d).is_some());
    }

    #[test]
    fn iso_xfs_btrfs_swap_luks_lvm_md() {
        let mut b = vec![0u8; HEAD_LEN];
        b[0x8000] = 1;
        b[0x8001..0x8006].copy_from_slice(b"CD001");
        b[0x8028..0x8048].copy_from_slice(b"VMFSRESCUE                      ");
        assert_eq!(identify(&b, &none), Some(Probed { fs: FsKind::Iso9660, label: Some("VMFSRESCUE".into()) }));
        let mut x = vec![0u8; 512];
        x[0..4].copy_from_slice(b"XFSB");
        x[0x6C..0x70].copy_from_slice(b"xfs1");
        assert_eq!(xfs(&x).unwrap().label.as_deref(), Some("xfs1"));
        b[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        b[0x1012B..0x1012E].copy_from_slice(b"bt1");
        assert_eq!(btrfs(&b).unwrap().label.as_deref(), Some("bt1"));
        let mut s = vec![0u8; 4096];
        s[4086..].copy_from_slice(b"SWAPSPACE2");
        s[0x41C..0x41E].copy_from_slice(b"sw");
        assert_eq!(swap(&s), Some(Probed { fs: FsKind::Swap, label: Some("sw".into()) }));
        let mut l = vec![0u8; 8192];
        l[0x200..0x208].copy_from_slice(b"LABELONE");
        l[0x218..0x220].copy_from_slice(b"LVM2 001");
        assert_eq!(luks_lvm_md(&l).unwrap().fs, FsKind::LinuxLvm);
        let mut m = vec![0u8; 8192];
        m[0x1000..0x1004].copy_from_slice(&0xA92B_4EFCu32.to_le_bytes());
        m[0x1004] = 1;
        m[0x1020..0x1025].copy_from_slice(b"h:md0");
        assert_eq!(luks_lvm_md(&m), Some(Probed { fs: FsKind::LinuxRaid, label: Some("h:md0".into()) }));
        m[..6].copy_from_slice(b"LUKS\xBA\xBE");
        assert_eq!(luks_lvm_md(&m).unwrap().fs, FsKind::Luks);
    }

    #[test]
    fn vmfs_descriptor_wins_over_a_leftover_fat() {
        use crate::le::VmwareUuid;
        let enc = FsDescriptor {
            magic: crate::vmfs::ondisk::VMFS_MAGIC,
            major: 24,
            minor: 82,
            uuid: VmwareUuid([7; 16]),
            config: 0x4006,
            label: "datastore1".into(),
            disk_block_size: 512,
            file_block_size: 1 << 20,
            creation_time: 1,
            lv_uuid: VmwareUuid([9; 16]),
            fdc_cluster_group_offset: 0x10000,
            fdc_clusters_per_group: 8,
            sub_block_size: 0x10000,
            pb2_vol_addr: 0x72c000,
            pb2_fd_addr: 0x0180_0004,
            sdd_vol_addr: 0,
            sdd_fd_addr: 0x01c0_0004,
            phys_disk_block_size: 512,
            md_alignment: 4096,
            sfb_to_lfb_shift: 9,
        }
        .encode();
        let head = fat32(b"OLD        ");
        let read = move |o: u64, l: usize| (o == FS3_DESCRIPTOR_OFFSET && l <= enc.len()).then(|| enc[..l].to_vec());
        assert_eq!(identify(&head, &read), Some(Probed { fs: FsKind::Vmfs, label: Some("datastore1".into()) }));
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let mut seed = 0x1234_5678u32;
        for len in [0usize, 1, 511, 512, 4096, HEAD_LEN] {
            let mut b = vec![0u8; len];
            for x in b.iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *x = (seed >> 16) as u8;
            }
            for magic in [&b"NTFS    "[..], b"EXFAT   "] {
                if b.len() > 11 {
                    b[3..11].copy_from_slice(magic);
                }
                let copy = b.clone();
                let _ =
                    identify(&b, &move |o, l| copy.get(o as usize..(o as usize).saturating_add(l)).map(<[u8]>::to_vec));
                let _ = ntfs_volume_name(&b);
                let _ = exfat_label(&b);
            }
        }
    }
}
