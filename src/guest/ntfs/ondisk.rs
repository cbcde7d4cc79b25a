//! NTFS layouts, pure: the boot sector, MFT records with their update-sequence fixups,
//! attribute headers, runlists (mapping pairs), `$FILE_NAME`, `$STANDARD_INFORMATION` and
//! `$ATTRIBUTE_LIST` entries. No I/O; every count read from disk is checked against the bytes
//! it claims and against a `MAX_*` cap; errors name the field's offset.
//!
//! Offsets follow the public NTFS documentation (the Linux-NTFS project's "NTFS documentation",
//! Microsoft's `FILE_RECORD_SEGMENT_HEADER`/`ATTRIBUTE_RECORD_HEADER` pages).

use crate::le::{u16_at, u32_at, u64_at, utf16le as utf16};

/// Largest MFT record size accepted (Windows uses 1024 or 4096).
pub const MAX_RECORD_SIZE: u64 = 64 << 10;
/// Largest cluster accepted (Windows allows up to 2 MiB).
pub const MAX_CLUSTER_SIZE: u64 = 2 << 20;
/// Most runs decoded from one runlist.
pub const MAX_RUNS: usize = 1 << 16;
/// Most attributes read from one record.
pub const MAX_ATTRS: usize = 512;

/// Attribute type codes.
pub const AT_STANDARD_INFORMATION: u32 = 0x10;
/// `$ATTRIBUTE_LIST`.
pub const AT_ATTRIBUTE_LIST: u32 = 0x20;
/// `$FILE_NAME`.
pub const AT_FILE_NAME: u32 = 0x30;
/// `$VOLUME_NAME`.
pub const AT_VOLUME_NAME: u32 = 0x60;
/// `$DATA`.
pub const AT_DATA: u32 = 0x80;
/// `$BITMAP`.
pub const AT_BITMAP: u32 = 0xB0;

/// The checked boot sector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    /// 0x0B bytes per sector (256..=4096, a power of two).
    pub sector_size: u64,
    /// Bytes per cluster (0x0D sectors per cluster; over 0x80 a negative power of two).
    pub cluster_size: u64,
    /// 0x28 sectors in the volume (the backup boot sector follows them).
    pub total_sectors: u64,
    /// 0x30 first cluster of `$MFT`.
    pub mft_lcn: u64,
    /// 0x38 first cluster of `$MFTMirr`.
    pub mftmirr_lcn: u64,
    /// 0x40 MFT record size in bytes (clusters, or 2^-n bytes when negative).
    pub record_size: u64,
    /// 0x48 volume serial number.
    pub serial: u64,
}

/// Whether `b` starts with an NTFS boot sector's OEM id.
pub fn looks_like_ntfs(b: &[u8]) -> bool {
    b.get(3..11) == Some(b"NTFS    ".as_slice())
}

/// A size field of the boot sector: positive = clusters, negative = 2^-v bytes.
fn clusters_or_shift(v: u8, cluster: u64) -> Option<u64> {
    let s = i8::from_le_bytes([v]);
    if s > 0 {
        cluster.checked_mul(u64::from(s.unsigned_abs()))
    } else {
        let sh = u32::from(s.unsigned_abs());
        (sh < 32).then(|| 1u64 << sh)
    }
}

impl Boot {
    /// Parse and check a boot sector. The error names the field and its offset.
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if !looks_like_ntfs(b) {
            return Err("OEM id (0x03) is not \"NTFS    \"".into());
        }
        let sector_size = u64::from(u16_at(b, 0x0B).unwrap_or(0));
        if !(256..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
            return Err(format!("bytes per sector {sector_size} (0x0B) is not a power of two in 256..4096"));
        }
        let spc = b.get(0x0D).copied().unwrap_or(0);
        let cluster_size = if spc > 0x80 {
            let sh = 256u32 - u32::from(spc);
            if sh > 31 {
                return Err(format!("sectors per cluster {spc:#x} (0x0D) is out of range"));
            }
            1u64 << sh
        } else {
            sector_size * u64::from(spc)
        };
        if cluster_size == 0 || !cluster_size.is_power_of_two() || cluster_size > MAX_CLUSTER_SIZE {
            return Err(format!("sectors per cluster {spc:#x} (0x0D) gives cluster size {cluster_size}"));
        }
        let total_sectors = u64_at(b, 0x28).unwrap_or(0);
        if total_sectors == 0 || total_sectors > u64::MAX / sector_size {
            return Err(format!("total sectors {total_sectors} (0x28) is out of range"));
        }
        let clusters = total_sectors * sector_size / cluster_size;
        let mft_lcn = u64_at(b, 0x30).unwrap_or(0);
        if mft_lcn == 0 || mft_lcn >= clusters {
            return Err(format!("MFT cluster {mft_lcn} (0x30) is outside the volume's {clusters} clusters"));
        }
        let mftmirr_lcn = u64_at(b, 0x38).unwrap_or(0);
        let rv = b.get(0x40).copied().unwrap_or(0);
        let record_size = clusters_or_shift(rv, cluster_size).unwrap_or(0);
        if !(256..=MAX_RECORD_SIZE).contains(&record_size) || !record_size.is_power_of_two() {
            return Err(format!("MFT record size {record_size} (0x40 = {rv:#x}) is not a power of two in 256..64 KiB"));
        }
        Ok(Self {
            sector_size,
            cluster_size,
            total_sectors,
            mft_lcn,
            mftmirr_lcn,
            record_size,
            serial: u64_at(b, 0x48).unwrap_or(0),
        })
    }

    /// Clusters on the volume.
    pub fn clusters(&self) -> u64 {
        self.total_sectors.saturating_mul(self.sector_size) / self.cluster_size
    }
}

/// Apply the update-sequence fixups of a multi-sector record (`FILE`, `INDX`) in place. The
/// stride is 512 bytes. Errors name the offset of the first sector whose tail does not match.
pub fn apply_fixups(rec: &mut [u8]) -> Result<(), String> {
    let usa_off = usize::from(u16_at(rec, 0x04).unwrap_or(0));
    let usa_count = usize::from(u16_at(rec, 0x06).unwrap_or(0));
    let sectors = rec.len() / 512;
    if usa_count == 0 || usa_count - 1 != sectors || usa_off < 0x08 || usa_off % 2 != 0 {
        return Err(format!(
            "update sequence (0x04 offset {usa_off}, 0x06 count {usa_count}) does not fit {sectors} sectors"
        ));
    }
    let Some(usa) = usa_off.checked_add(usa_count * 2).and_then(|e| rec.get(usa_off..e)).map(<[u8]>::to_vec) else {
        return Err(format!("update sequence array at {usa_off:#x} (0x04) is past the record"));
    };
    let usn = [usa[0], usa[1]];
    for i in 0..sectors {
        let tail = i * 512 + 510;
        let Some(t) = rec.get_mut(tail..tail + 2) else { break };
        if t != usn {
            return Err(format!("sector {i} tail at {tail:#x} does not hold the update sequence number"));
        }
        t.copy_from_slice(&usa[2 + i * 2..4 + i * 2]);
    }
    Ok(())
}

/// An MFT record's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// 0x10 sequence number.
    pub seq: u16,
    /// 0x16 flags: 1 in use, 2 directory.
    pub flags: u16,
    /// 0x20 base record (0 for a base record), 48 bits.
    pub base: u64,
    /// 0x14 offset of the first attribute.
    pub first_attr: usize,
    /// 0x18 bytes in use.
    pub used: usize,
}

impl RecordHeader {
    /// The header of a fixed-up record; `FILE` magic and offsets checked.
    pub fn parse(rec: &[u8]) -> Result<Self, String> {
        if rec.get(0..4) != Some(b"FILE".as_slice()) {
            return Err("magic (0x00) is not FILE".into());
        }
        let first_attr = usize::from(u16_at(rec, 0x14).unwrap_or(0));
        let used = usize::try_from(u32_at(rec, 0x18).unwrap_or(0)).unwrap_or(usize::MAX);
        if first_attr < 0x18 || first_attr >= rec.len() || first_attr % 8 != 0 {
            return Err(format!("first attribute offset {first_attr:#x} (0x14) is outside the record"));
        }
        Ok(Self {
            seq: u16_at(rec, 0x10).unwrap_or(0),
            flags: u16_at(rec, 0x16).unwrap_or(0),
            base: u64_at(rec, 0x20).unwrap_or(0) & 0xFFFF_FFFF_FFFF,
            first_attr,
            used: used.min(rec.len()),
        })
    }

    /// Flag 1: the record is in use.
    pub fn in_use(&self) -> bool {
        self.flags & 1 != 0
    }

    /// Flag 2: the record is a directory.
    pub fn is_dir(&self) -> bool {
        self.flags & 2 != 0
    }
}

/// Where an attribute's value lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Inside the record: the value's bytes.
    Resident(Vec<u8>),
    /// In clusters.
    NonResident {
        /// 0x10 first VCN this piece maps.
        start_vcn: u64,
        /// 0x22 compression unit, log2 of clusters (0: not compressed).
        cu_shift: u16,
        /// 0x30 data size (valid in the piece at VCN 0).
        size: u64,
        /// 0x38 initialized size (valid in the piece at VCN 0).
        init: u64,
        /// The decoded runlist (at 0x20): `(clusters, lcn or None for sparse)`.
        runs: Vec<(u64, Option<u64>)>,
    },
}

/// One attribute of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// 0x00 type code.
    pub kind: u32,
    /// The name (0x09 length in UTF-16 units, at 0x0A), empty for unnamed.
    pub name: String,
    /// 0x0C flags: 0x0001 compressed, 0x4000 encrypted, 0x8000 sparse.
    pub flags: u16,
    /// The value.
    pub value: Value,
    /// Offset of the attribute in its record (for error messages).
    pub at: usize,
}

/// The attributes of a fixed-up record. A broken attribute ends the list (what came before is
/// kept); the error, if any, is returned beside the attributes.
pub fn attributes(rec: &[u8], h: &RecordHeader) -> (Vec<Attr>, Option<String>) {
    let mut out = Vec::new();
    let mut pos = h.first_attr;
    while out.len() < MAX_ATTRS {
        let Some(kind) = u32_at(rec, pos) else { return (out, Some(format!("attribute at {pos:#x} is cut off"))) };
        if kind == 0xFFFF_FFFF || pos >= h.used {
            return (out, None);
        }
        let len = usize::try_from(u32_at(rec, pos + 4).unwrap_or(0)).unwrap_or(0);
        let Some(a) =
            pos.checked_add(len).filter(|&e| len >= 0x18 && len % 8 == 0 && e <= rec.len()).map(|e| &rec[pos..e])
        else {
            return (out, Some(format!("attribute length {len} at {:#x} (+0x04) is out of range", pos)));
        };
        match parse_attr(a, pos) {
            Ok(at) => out.push(at),
            Err(e) => return (out, Some(e)),
        }
        pos += len;
    }
    (out, Some(format!("more than {MAX_ATTRS} attributes")))
}

/// One attribute from its bytes (`a`: exactly its length), `at` its offset in the record.
fn parse_attr(a: &[u8], at: usize) -> Result<Attr, String> {
    let kind = u32_at(a, 0).unwrap_or(0);
    let non_res = a.get(8).copied().unwrap_or(0);
    let name_len = usize::from(a.get(9).copied().unwrap_or(0));
    let name_off = usize::from(u16_at(a, 0x0A).unwrap_or(0));
    let name = match a.get(name_off..name_off + name_len * 2) {
        Some(n) => utf16(n),
        None => return Err(format!("attribute name at {at:#x}+{name_off:#x} (+0x0A) is past its end")),
    };
    let flags = u16_at(a, 0x0C).unwrap_or(0);
    let value = if non_res == 0 {
        let vlen = usize::try_from(u32_at(a, 0x10).unwrap_or(0)).unwrap_or(usize::MAX);
        let voff = usize::from(u16_at(a, 0x14).unwrap_or(0));
        match voff.checked_add(vlen).and_then(|e| a.get(voff..e)) {
            Some(v) => Value::Resident(v.to_vec()),
            None => {
                return Err(format!(
                    "resident value ({vlen} bytes at +{voff:#x}) of attribute at {at:#x} is past its end"
                ));
            }
        }
    } else {
        if a.len() < 0x40 {
            return Err(format!("non-resident attribute at {at:#x} is {} bytes, under 0x40", a.len()));
        }
        let roff = usize::from(u16_at(a, 0x20).unwrap_or(0));
        let Some(rl) = a.get(roff..) else {
            return Err(format!("runlist offset {roff:#x} (+0x20) of attribute at {at:#x} is past its end"));
        };
        let runs = decode_runlist(rl).map_err(|e| format!("runlist of attribute at {at:#x}: {e}"))?;
        Value::NonResident {
            start_vcn: u64_at(a, 0x10).unwrap_or(0),
            cu_shift: u16_at(a, 0x22).unwrap_or(0),
            size: u64_at(a, 0x30).unwrap_or(0),
            init: u64_at(a, 0x38).unwrap_or(0),
            runs,
        }
    };
    Ok(Attr { kind, name, flags, value, at })
}

/// Decode a runlist (mapping pairs): a header byte (low nibble: bytes of the length, high
/// nibble: bytes of the signed LCN delta; 0 = sparse), ended by a 0 byte or the buffer's end.
/// Returns `(clusters, Some(lcn) | None for sparse)`.
pub fn decode_runlist(b: &[u8]) -> Result<Vec<(u64, Option<u64>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut lcn: i64 = 0;
    while let Some(&h) = b.get(pos) {
        if h == 0 {
            return Ok(out);
        }
        if out.len() >= MAX_RUNS {
            return Err(format!("more than {MAX_RUNS} runs"));
        }
        let ln = usize::from(h & 0xF);
        let on = usize::from(h >> 4);
        if ln == 0 || ln > 8 || on > 8 {
            return Err(format!("run header {h:#04x} at +{pos:#x} has field sizes {ln}/{on}"));
        }
        let Some(lb) = b.get(pos + 1..pos + 1 + ln) else { return Err(format!("run at +{pos:#x} is cut off")) };
        let Some(ob) = b.get(pos + 1 + ln..pos + 1 + ln + on) else {
            return Err(format!("run at +{pos:#x} is cut off"));
        };
        let mut len = [0u8; 8];
        len[..ln].copy_from_slice(lb);
        let len = u64::from_le_bytes(len);
        if len == 0 || len > i64::MAX as u64 {
            return Err(format!("run length {len} at +{pos:#x} is out of range"));
        }
        if on == 0 {
            out.push((len, None));
        } else {
            let fill = if ob.last().is_some_and(|&x| x & 0x80 != 0) { 0xFF } else { 0 };
            let mut d = [fill; 8];
            d[..on].copy_from_slice(ob);
            let delta = i64::from_le_bytes(d);
            lcn = lcn
                .checked_add(delta)
                .filter(|&l| l >= 0)
                .ok_or_else(|| format!("run at +{pos:#x}: LCN delta {delta} leaves the volume"))?;
            out.push((len, Some(lcn as u64)));
        }
        pos += 1 + ln + on;
    }
    Ok(out)
}

/// A `$FILE_NAME` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName {
    /// 0x00 parent directory: record number (48 bits) and sequence number (16 bits).
    pub parent: u64,
    /// 0x00 parent's sequence number.
    pub parent_seq: u16,
    /// 0x38 flags (0x1000_0000 directory).
    pub flags: u32,
    /// 0x30 real size as last written to the directory.
    pub size: u64,
    /// 0x41 namespace: 0 POSIX, 1 Win32, 2 DOS, 3 Win32 and DOS.
    pub namespace: u8,
    /// 0x42 the name (0x40 length in UTF-16 units).
    pub name: String,
    /// 0x08 creation, 0x10 modification, 0x20 access (FILETIME).
    pub times: [u64; 3],
}

impl FileName {
    /// Parse a `$FILE_NAME` value.
    pub fn parse(v: &[u8]) -> Result<Self, String> {
        let r = u64_at(v, 0).ok_or("$FILE_NAME is shorter than 0x42 bytes")?;
        let n = usize::from(v.get(0x40).copied().unwrap_or(0));
        let name = v.get(0x42..0x42 + n * 2).ok_or_else(|| format!("name of {n} units (0x40) is past the value"))?;
        Ok(Self {
            parent: r & 0xFFFF_FFFF_FFFF,
            parent_seq: (r >> 48) as u16,
            flags: u32_at(v, 0x38).unwrap_or(0),
            size: u64_at(v, 0x30).unwrap_or(0),
            namespace: v.get(0x41).copied().unwrap_or(0),
            name: utf16(name),
            times: [u64_at(v, 0x08).unwrap_or(0), u64_at(v, 0x10).unwrap_or(0), u64_at(v, 0x20).unwrap_or(0)],
        })
    }
}

/// `$STANDARD_INFORMATION`: 0x00 creation, 0x08 modification, 0x18 access, 0x20 attributes.
pub fn std_info(v: &[u8]) -> ([u64; 3], u32) {
    let t = |o| u64_at(v, o).unwrap_or(0);
    ([t(0x00), t(0x08), t(0x18)], u32_at(v, 0x20).unwrap_or(0))
}

/// FILETIME (100 ns since 1601) to Unix seconds; 0 is "not set".
pub fn unix_time(ft: u64) -> Option<i64> {
    (ft != 0).then(|| i64::try_from(ft / 10_000_000).unwrap_or(i64::MAX).saturating_sub(11_644_473_600))
}

/// The records an `$ATTRIBUTE_LIST` value names (0x10 in each entry, 48 bits), entry
/// length at 0x04; broken entries end the list.
pub fn attribute_list_records(v: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(len) = u16_at(v, pos + 4) {
        let len = usize::from(len);
        if len < 0x1A || out.len() >= MAX_ATTRS {
            break;
        }
        if let Some(r) = u64_at(v, pos + 0x10) {
            let r = r & 0xFFFF_FFFF_FFFF;
            if !out.contains(&r) {
                out.push(r);
            }
        }
        pos += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runlists_decode_and_hostile_ones_fail() {
        // 0x21: 1 length byte, 2 offset bytes: 0x18 clusters at LCN 0x5634; then 0x11: 0x10 at
        // -0x10 relative (0x5624); then a sparse run of 0x20; end.
        let b = [0x21, 0x18, 0x34, 0x56, 0x11, 0x10, 0xF0, 0x01, 0x20, 0x00];
        assert_eq!(decode_runlist(&b).unwrap(), vec![(0x18, Some(0x5634)), (0x10, Some(0x5624)), (0x20, None)]);
        // Negative LCN, cut-off runs, a 9-byte length field, a zero length.
        assert!(decode_runlist(&[0x11, 0x01, 0xF0]).unwrap_err().contains("leaves"));
        assert!(decode_runlist(&[0x21, 0x18, 0x34]).unwrap_err().contains("cut off"));
        assert!(decode_runlist(&[0x09, 1, 1, 1, 1, 1, 1, 1, 1, 1]).unwrap_err().contains("0x09"));
        assert!(decode_runlist(&[0x11, 0x00, 0x05]).unwrap_err().contains("length 0"));
        // A runlist without its terminator ends at the buffer.
        assert_eq!(decode_runlist(&[0x11, 0x02, 0x05]).unwrap(), vec![(2, Some(5))]);
        // An endless list of runs is capped.
        let many: Vec<u8> = std::iter::repeat_n([0x01u8, 0x01], MAX_RUNS + 1).flatten().collect();
        assert!(decode_runlist(&many).unwrap_err().contains("more than"));
    }

    #[test]
    fn boot_fields_are_named() {
        let mut b = vec![0u8; 512];
        b[3..11].copy_from_slice(b"NTFS    ");
        assert!(Boot::parse(&b).unwrap_err().contains("0x0B"));
        b[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        b[0x0D] = 8;
        assert!(Boot::parse(&b).unwrap_err().contains("0x28"));
        b[0x28..0x30].copy_from_slice(&100_000u64.to_le_bytes());
        b[0x30..0x38].copy_from_slice(&4u64.to_le_bytes());
        b[0x40] = 0xF6; // 2^10
        assert_eq!(Boot::parse(&b).unwrap().record_size, 1024);
        b[0x40] = 0x7F;
        assert!(Boot::parse(&b).unwrap_err().contains("0x40"));
    }

    #[test]
    fn fixups_check_every_sector() {
        let mut r = vec![0u8; 1024];
        r[0..4].copy_from_slice(b"FILE");
        r[4..6].copy_from_slice(&0x30u16.to_le_bytes());
        r[6..8].copy_from_slice(&3u16.to_le_bytes());
        r[0x30..0x36].copy_from_slice(&[7, 0, 0xAA, 0xBB, 0xCC, 0xDD]);
        r[510..512].copy_from_slice(&[7, 0]);
        r[1022..1024].copy_from_slice(&[7, 0]);
        let mut ok = r.clone();
        apply_fixups(&mut ok).unwrap();
        assert_eq!((&ok[510..512], &ok[1022..1024]), (&[0xAA, 0xBB][..], &[0xCC, 0xDD][..]));
        r[1022] = 8;
        assert!(apply_fixups(&mut r).unwrap_err().contains("0x3fe"));
        r[6] = 200;
        assert!(apply_fixups(&mut r).is_err());
    }
}
