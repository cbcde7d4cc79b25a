//! qcow2 layouts (QEMU `docs/interop/qcow2.txt`), every field with its byte offset: the
//! header with its version 3 fields, the header extensions, L1 and L2 entries (standard and
//! extended) and snapshot-table entries. Big-endian throughout. Pure decoding: no I/O, no
//! panic, no allocation sized by a field.

use super::super::error::{Result, VdiskError};

/// Name of the header in errors.
pub const HEADER: &str = "QCowHeader";
/// Name of a header extension in errors.
pub const EXTENSION: &str = "QCowHeaderExtension";

/// 0x00 `magic`: "QFI\xfb".
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Bytes of a version 2 header (and of the fixed part of a version 3 one).
pub const V2_HEADER_LEN: u32 = 72;
/// Smallest version 3 `header_length`.
pub const V3_MIN_HEADER_LEN: u32 = 104;
/// Smallest cluster (512 B): the spec's lower limit.
pub const MIN_CLUSTER_BITS: u32 = 9;
/// Largest cluster (2 MiB): qemu's limit; every table and inflated cluster is one cluster.
pub const MAX_CLUSTER_BITS: u32 = 21;
/// Smallest cluster with extended L2 entries (16 KiB: 32 subclusters of at least 512 B).
pub const MIN_EXTENDED_L2_CLUSTER_BITS: u32 = 14;
/// Longest backing file name (spec).
pub const MAX_BACKING_NAME: u32 = 1023;
/// Longest string header extension we keep (backing format, data file name).
pub const MAX_EXT_STRING: u32 = 4096;
/// Largest active L1 table, in bytes (qemu's limit: 4 Mi entries).
pub const MAX_L1_BYTES: u64 = 32 << 20;
/// Largest `refcount_order` (64-bit refcounts).
pub const MAX_REFCOUNT_ORDER: u32 = 6;
/// Most internal snapshots (qemu's limit).
pub const MAX_SNAPSHOTS: u32 = 65536;

/// `incompatible_features` bit 0: refcounts may be stale (lazy refcounts in use).
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
/// Bit 1: qemu found an inconsistency and marked the image corrupt.
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Bit 2: guest clusters live in an external data file.
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Bit 3: `compression_type` (0x68) is not zlib.
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Bit 4: extended L2 entries (32 subclusters per cluster).
pub const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;
/// Every incompatible bit this reader handles.
pub const INCOMPAT_KNOWN: u64 = 0x1f;
/// `compatible_features` bit 0: lazy refcounts.
pub const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;

/// Header extension types.
pub const EXT_END: u32 = 0;
pub const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
pub const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
pub const EXT_BITMAPS: u32 = 0x2385_2875;
pub const EXT_CRYPTO: u32 = 0x0537_be77;
pub const EXT_DATA_FILE: u32 = 0x4441_5441;

/// Bits 9..=55 of an L1 entry or a standard L2 entry: the host offset.
pub const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bit 62: a compressed cluster.
pub const L2_COMPRESSED: u64 = 1 << 62;
/// L2 entry bit 63: refcount exactly one ("copied"); with a data file it makes offset 0 valid.
pub const L2_COPIED: u64 = 1 << 63;
/// Standard L2 entry bit 0: the cluster reads as zeros (v3 without extended L2).
pub const L2_ZERO: u64 = 1 << 0;

/// Big-endian readers; callers pass slices long enough (checked once per structure).
fn be32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(off..off + 4) {
        a.copy_from_slice(s);
    }
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(off..off + 8) {
        a.copy_from_slice(s);
    }
    u64::from_be_bytes(a)
}

/// Compression of compressed clusters (0x68 `compression_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// 0: raw deflate, 4 KiB window (qemu's `windowBits` -12).
    Zlib,
    /// 1: zstd frames.
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zlib => "zlib",
            Compression::Zstd => "zstd",
        }
    }
}

/// The qcow2 header, at file offset 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// 0x04 `version`: 2 or 3.
    pub version: u32,
    /// 0x08 `backing_file_offset`: the backing file name (not NUL-terminated); 0 = none.
    pub backing_file_offset: u64,
    /// 0x10 `backing_file_size`: bytes of the name, at most 1023.
    pub backing_file_size: u32,
    /// 0x14 `cluster_bits`: 9..=21 (checked).
    pub cluster_bits: u32,
    /// 0x18 `size`: virtual disk size in bytes.
    pub size: u64,
    /// 0x20 `crypt_method`: 0 none, 1 AES, 2 LUKS.
    pub crypt_method: u32,
    /// 0x24 `l1_size`: entries of the active L1 table (at most 4 Mi, checked).
    pub l1_size: u32,
    /// 0x28 `l1_table_offset`.
    pub l1_table_offset: u64,
    /// 0x30 `refcount_table_offset` (not used by a reader).
    pub refcount_table_offset: u64,
    /// 0x38 `refcount_table_clusters` (not used by a reader).
    pub refcount_table_clusters: u32,
    /// 0x3c `nb_snapshots`: internal snapshots (at most 65536, checked).
    pub nb_snapshots: u32,
    /// 0x40 `snapshots_offset`: the snapshot table.
    pub snapshots_offset: u64,
    /// 0x48 `incompatible_features` (v3; 0 for v2).
    pub incompatible: u64,
    /// 0x50 `compatible_features` (v3).
    pub compatible: u64,
    /// 0x58 `autoclear_features` (v3).
    pub autoclear: u64,
    /// 0x60 `refcount_order` (v3; 4 for v2). Not used by a reader; out of range is noted.
    pub refcount_order: u32,
    /// 0x64 `header_length` (v3; 72 for v2): where the header extensions start.
    pub header_length: u32,
    /// 0x68 `compression_type`, when `header_length` reaches it (0 otherwise).
    pub compression_type: u8,
}

impl Header {
    /// Bytes to read to decode any header (its fixed fields up to `compression_type`).
    pub const READ: usize = 112;

    /// Decode and check the header at the start of `b` (the first bytes of `file`, as many as
    /// it has up to [`Header::READ`]). Checks what sizes anything: cluster bits, header length,
    /// backing name, L1 and snapshot counts; file-relative checks come in `super::open`.
    pub fn parse(file: &str, b: &[u8]) -> Result<Self> {
        let bad = |off: u64, what: String| VdiskError::corrupt(file, HEADER, off, what);
        if b.len() < V2_HEADER_LEN as usize {
            return Err(bad(0, format!("{} bytes, shorter than the 72-byte header", b.len())));
        }
        if b[..4] != MAGIC {
            return Err(bad(0, format!("bad magic {:02x?}", &b[..4])));
        }
        let version = be32(b, 0x04);
        if version != 2 && version != 3 {
            return Err(VdiskError::Unsupported { file: file.into(), what: format!("qcow2 version {version}") });
        }
        let cluster_bits = be32(b, 0x14);
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(bad(
                0x14,
                format!("cluster_bits {cluster_bits} (accepted {MIN_CLUSTER_BITS}..={MAX_CLUSTER_BITS})"),
            ));
        }
        let cluster = 1u64 << cluster_bits;
        let mut h = Header {
            version,
            backing_file_offset: be64(b, 0x08),
            backing_file_size: be32(b, 0x10),
            cluster_bits,
            size: be64(b, 0x18),
            crypt_method: be32(b, 0x20),
            l1_size: be32(b, 0x24),
            l1_table_offset: be64(b, 0x28),
            refcount_table_offset: be64(b, 0x30),
            refcount_table_clusters: be32(b, 0x38),
            nb_snapshots: be32(b, 0x3c),
            snapshots_offset: be64(b, 0x40),
            incompatible: 0,
            compatible: 0,
            autoclear: 0,
            refcount_order: 4,
            header_length: V2_HEADER_LEN,
            compression_type: 0,
        };
        if version >= 3 {
            if b.len() < V3_MIN_HEADER_LEN as usize {
                return Err(bad(0, format!("{} bytes, shorter than the 104-byte version 3 header", b.len())));
            }
            h.incompatible = be64(b, 0x48);
            h.compatible = be64(b, 0x50);
            h.autoclear = be64(b, 0x58);
            h.refcount_order = be32(b, 0x60);
            h.header_length = be32(b, 0x64);
            if h.header_length < V3_MIN_HEADER_LEN
                || !h.header_length.is_multiple_of(8)
                || h.header_length as u64 > cluster
            {
                return Err(bad(
                    0x64,
                    format!(
                        "header_length {} (a multiple of 8 from {V3_MIN_HEADER_LEN} to the cluster size {cluster})",
                        h.header_length
                    ),
                ));
            }
            if h.header_length > 0x68 {
                h.compression_type = b.get(0x68).copied().unwrap_or(0);
            }
        }
        if h.backing_file_offset != 0 {
            if h.backing_file_size > MAX_BACKING_NAME {
                return Err(bad(
                    0x10,
                    format!("backing file name of {} bytes (at most {MAX_BACKING_NAME})", h.backing_file_size),
                ));
            }
            // The name lives in the first cluster, after the header.
            let end = h.backing_file_offset.checked_add(h.backing_file_size as u64);
            if h.backing_file_offset < h.header_length as u64 || end.is_none_or(|e| e > cluster) {
                return Err(bad(
                    0x08,
                    format!(
                        "backing file name at {:#x} ({} bytes) is outside the header cluster",
                        h.backing_file_offset, h.backing_file_size
                    ),
                ));
            }
        }
        if h.l1_size as u64 * 8 > MAX_L1_BYTES {
            return Err(bad(0x24, format!("l1_size {} entries is absurd (at most {})", h.l1_size, MAX_L1_BYTES / 8)));
        }
        if h.nb_snapshots > MAX_SNAPSHOTS {
            return Err(bad(0x3c, format!("{} snapshots (at most {MAX_SNAPSHOTS})", h.nb_snapshots)));
        }
        Ok(h)
    }

    pub fn cluster_bytes(&self) -> u64 {
        1 << self.cluster_bits
    }

    pub fn extended_l2(&self) -> bool {
        self.incompatible & INCOMPAT_EXTENDED_L2 != 0
    }

    /// Where the header extensions end: the backing file name, or the end of the first cluster.
    pub fn extensions_end(&self) -> u64 {
        if self.backing_file_offset != 0 { self.backing_file_offset } else { self.cluster_bytes() }
    }
}

/// One entry of the feature name table extension (48 bytes each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureName {
    /// +0: 0 incompatible, 1 compatible, 2 autoclear.
    pub kind: u8,
    /// +1: bit number.
    pub bit: u8,
    /// +2..+48: name, NUL-padded.
    pub name: String,
}

/// What the header extensions say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// 0xe2792aca: the backing file's format name (`backing_fmt`).
    pub backing_format: Option<String>,
    /// 0x44415441: the external data file name.
    pub data_file: Option<String>,
    /// 0x6803f857: names of feature bits.
    pub feature_names: Vec<FeatureName>,
    /// 0x23852875 present: persistent dirty bitmaps.
    pub bitmaps: bool,
    /// Unknown or repeated extensions (type, offset), ignored.
    pub ignored: Vec<(u32, u64)>,
}

fn ext_string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Extensions {
    /// Decode the extensions in `area`, which holds the file bytes from `start` (the header
    /// length) to the end of the extension area (or of the file). An extension reaching past
    /// the area is corrupt, as in qemu; the walk stops at the end marker.
    pub fn parse(file: &str, area: &[u8], start: u64) -> Result<Self> {
        let mut e = Extensions::default();
        let mut pos = 0usize;
        while pos < area.len() {
            let at = start + pos as u64;
            let bad = |what: String| VdiskError::corrupt(file, EXTENSION, at, what);
            let Some(head) = area.get(pos..pos + 8) else {
                return Err(bad(format!(
                    "extension header cut by the end of the area ({} bytes left)",
                    area.len() - pos
                )));
            };
            let (kind, len) = (be32(head, 0), be32(head, 4));
            if kind == EXT_END {
                break;
            }
            let data_at = pos + 8;
            let Some(data) = area.get(data_at..data_at.saturating_add(len as usize)) else {
                return Err(bad(format!(
                    "extension {kind:#010x} of {len} bytes reaches past the end of the extension area ({} bytes left)",
                    area.len() - data_at
                )));
            };
            let string = |what: &str| -> Result<String> {
                if len > MAX_EXT_STRING {
                    return Err(bad(format!("{what} of {len} bytes (at most {MAX_EXT_STRING})")));
                }
                Ok(ext_string(data))
            };
            match kind {
                EXT_BACKING_FORMAT if e.backing_format.is_none() => {
                    e.backing_format = Some(string("backing format name")?)
                }
                EXT_DATA_FILE if e.data_file.is_none() => e.data_file = Some(string("data file name")?),
                EXT_FEATURE_NAMES if e.feature_names.is_empty() => {
                    e.feature_names = data
                        .chunks_exact(48)
                        .map(|c| {
                            let n = c[2..].iter().position(|&x| x == 0).unwrap_or(46);
                            FeatureName { kind: c[0], bit: c[1], name: ext_string(&c[2..2 + n]) }
                        })
                        .collect()
                }
                EXT_BITMAPS => e.bitmaps = true,
                k => e.ignored.push((k, at)),
            }
            // Data padded to a multiple of 8.
            pos = data_at.saturating_add((len as usize).div_ceil(8).saturating_mul(8));
        }
        Ok(e)
    }

    /// The name the feature name table gives `bit` of `kind` (0 incompatible).
    pub fn feature_name(&self, kind: u8, bit: u8) -> Option<&str> {
        self.feature_names.iter().find(|f| f.kind == kind && f.bit == bit).map(|f| f.name.as_str())
    }
}

/// The host offset an L1 entry points at (its L2 table), 0 when the table is absent.
pub fn l1_offset(entry: u64) -> u64 {
    entry & OFFSET_MASK
}

/// What one L2 entry says about its guest cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cluster {
    /// Not in this image: the backing file's (zeros at the base).
    Unallocated,
    /// Reads as zeros; never the backing file's (standard entry bit 0).
    Zero,
    /// Uncompressed data at this host offset (cluster aligned).
    Data(u64),
    /// Compressed data at byte `offset`, at most `len` bytes long.
    Compressed { offset: u64, len: u64 },
    /// Extended L2: 32 subclusters of a host cluster (`host` 0 when none is allocated).
    Subclusters { host: u64, alloc: u32, zero: u32 },
    /// The entry cannot be right.
    Invalid(&'static str),
}

/// Decode an L2 entry (and, with extended L2 entries, its subcluster bitmap). `data_file`:
/// guest clusters live in an external data file, where host offset 0 is valid.
pub fn decode_l2(entry: u64, bitmap: Option<u64>, cluster_bits: u32, data_file: bool) -> Cluster {
    if entry & L2_COMPRESSED != 0 {
        // Bits 0..x-1 the byte offset, x..61 the count of extra 512-byte sectors, with
        // x = 62 - (cluster_bits - 8). cluster_bits is 9..=21 here, so both shifts are in range.
        let x = 70 - cluster_bits;
        let offset = entry & ((1u64 << x) - 1);
        let sectors = ((entry >> x) & ((1u64 << (cluster_bits - 8)) - 1)) + 1;
        return Cluster::Compressed { offset, len: sectors * 512 - (offset & 511) };
    }
    let host = entry & OFFSET_MASK;
    let has_host = host != 0 || (data_file && entry & L2_COPIED != 0);
    if host & ((1u64 << cluster_bits) - 1) != 0 {
        return Cluster::Invalid("host cluster offset not aligned to a cluster");
    }
    if let Some(b) = bitmap {
        let (alloc, zero) = (b as u32, (b >> 32) as u32);
        if !has_host && alloc != 0 {
            return Cluster::Invalid("subclusters allocated without a host cluster");
        }
        return Cluster::Subclusters { host, alloc, zero };
    }
    // qemu honours bit 0 whatever the version; a v2 writer never sets it.
    if entry & L2_ZERO != 0 {
        return Cluster::Zero;
    }
    if has_host { Cluster::Data(host) } else { Cluster::Unallocated }
}

/// The fixed 40 bytes of a snapshot table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// +0x00 `l1_table_offset`.
    pub l1_table_offset: u64,
    /// +0x08 `l1_size`.
    pub l1_size: u32,
    /// +0x0c `id_str_size`.
    pub id_len: u16,
    /// +0x0e `name_size`.
    pub name_len: u16,
    /// +0x10 `date_sec`.
    pub date_sec: u32,
    /// +0x20 `vm_state_size`.
    pub vm_state_size: u32,
    /// +0x24 `extra_data_size`: extra data follows the 40 bytes, then the id, then the name.
    pub extra_len: u32,
}

impl SnapshotEntry {
    pub const SIZE: usize = 40;
    /// Largest extra data (qemu's limit).
    pub const MAX_EXTRA: u32 = 1024;

    pub fn parse(b: &[u8; Self::SIZE]) -> Self {
        SnapshotEntry {
            l1_table_offset: be64(b, 0x00),
            l1_size: be32(b, 0x08),
            id_len: u16::from_be_bytes([b[0x0c], b[0x0d]]),
            name_len: u16::from_be_bytes([b[0x0e], b[0x0f]]),
            date_sec: be32(b, 0x10),
            vm_state_size: be32(b, 0x20),
            extra_len: be32(b, 0x24),
        }
    }

    /// Offset of the name from the entry's start.
    pub fn name_at(&self) -> u64 {
        Self::SIZE as u64 + self.extra_len as u64 + self.id_len as u64
    }

    /// Bytes of the whole entry, padded to a multiple of 8.
    pub fn total_len(&self) -> u64 {
        (self.name_at() + self.name_len as u64).div_ceil(8) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid v3 header: 64 KiB clusters, 1 GiB, L1 of 2 entries at 0x30000.
    fn v3() -> Vec<u8> {
        let mut b = vec![0u8; 112];
        b[..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[0x14..0x18].copy_from_slice(&16u32.to_be_bytes());
        b[0x18..0x20].copy_from_slice(&(1u64 << 30).to_be_bytes());
        b[0x24..0x28].copy_from_slice(&2u32.to_be_bytes());
        b[0x28..0x30].copy_from_slice(&0x30000u64.to_be_bytes());
        b[0x60..0x64].copy_from_slice(&4u32.to_be_bytes());
        b[0x64..0x68].copy_from_slice(&112u32.to_be_bytes());
        b
    }

    fn corrupt_at(r: Result<Header>) -> u64 {
        match r {
            Err(VdiskError::Corrupt { structure: HEADER, offset, .. }) => offset,
            r => panic!("expected a corrupt header, got {r:?}"),
        }
    }

    #[test]
    fn good_header_decodes() {
        let h = Header::parse("f", &v3()).unwrap();
        assert_eq!((h.version, h.cluster_bits, h.size, h.l1_size), (3, 16, 1 << 30, 2));
        assert_eq!((h.header_length, h.compression_type, h.extensions_end()), (112, 0, 65536));
        let mut b = v3();
        b[0x68] = 1;
        assert_eq!(Header::parse("f", &b).unwrap().compression_type, 1);
        // A v2 header is 72 bytes; v3 fields are not read.
        let mut b = v3();
        b[4..8].copy_from_slice(&2u32.to_be_bytes());
        let h = Header::parse("f", &b[..72]).unwrap();
        assert_eq!((h.header_length, h.refcount_order, h.incompatible), (72, 4, 0));
    }

    #[test]
    fn each_broken_field_is_named() {
        let set32 = |off: usize, v: u32| {
            let mut b = v3();
            b[off..off + 4].copy_from_slice(&v.to_be_bytes());
            b
        };
        let set64 = |off: usize, v: u64| {
            let mut b = v3();
            b[off..off + 8].copy_from_slice(&v.to_be_bytes());
            b
        };
        assert_eq!(corrupt_at(Header::parse("f", &set32(0, 0x5146_49fa))), 0);
        assert_eq!(corrupt_at(Header::parse("f", &v3()[..71])), 0);
        assert_eq!(corrupt_at(Header::parse("f", &v3()[..100])), 0);
        for bits in [0, 8, 22, 63, u32::MAX] {
            assert_eq!(corrupt_at(Header::parse("f", &set32(0x14, bits))), 0x14, "cluster_bits {bits}");
        }
        for len in [0, 72, 100, 108 + 1, 65536 + 8] {
            assert_eq!(corrupt_at(Header::parse("f", &set32(0x64, len))), 0x64, "header_length {len}");
        }
        assert_eq!(corrupt_at(Header::parse("f", &set32(0x24, 4 << 20 | 1))), 0x24);
        assert_eq!(corrupt_at(Header::parse("f", &set32(0x3c, MAX_SNAPSHOTS + 1))), 0x3c);
        // Backing name: too long, or outside the first cluster, or over the header.
        let mut b = set64(0x08, 0x200);
        b[0x10..0x14].copy_from_slice(&1024u32.to_be_bytes());
        assert_eq!(corrupt_at(Header::parse("f", &b)), 0x10);
        b[0x10..0x14].copy_from_slice(&16u32.to_be_bytes());
        assert!(Header::parse("f", &b).is_ok());
        b[0x08..0x10].copy_from_slice(&(65536u64 - 8).to_be_bytes());
        assert_eq!(corrupt_at(Header::parse("f", &b)), 0x08);
        b[0x08..0x10].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(corrupt_at(Header::parse("f", &b)), 0x08);
        b[0x08..0x10].copy_from_slice(&8u64.to_be_bytes());
        assert_eq!(corrupt_at(Header::parse("f", &b)), 0x08);
        assert!(matches!(Header::parse("f", &set32(4, 1)), Err(VdiskError::Unsupported { .. })));
    }

    #[test]
    fn extensions_decode_and_bound() {
        let mut a = Vec::new();
        let mut ext = |kind: u32, data: &[u8]| {
            a.extend_from_slice(&kind.to_be_bytes());
            a.extend_from_slice(&(data.len() as u32).to_be_bytes());
            a.extend_from_slice(data);
            a.resize(a.len().div_ceil(8) * 8, 0);
        };
        ext(EXT_BACKING_FORMAT, b"qcow2");
        let mut names = vec![0u8; 96];
        names[1] = 4;
        names[2..13].copy_from_slice(b"extended l2");
        names[48] = 1;
        names[50..54].copy_from_slice(b"lazy");
        ext(EXT_FEATURE_NAMES, &names);
        ext(EXT_DATA_FILE, b"d.bin");
        ext(0x1234_5678, b"x");
        a.extend_from_slice(&[0u8; 8]);
        a.extend_from_slice(&[0xffu8; 16]); // past the end marker: not read
        let e = Extensions::parse("f", &a, 112).unwrap();
        assert_eq!(e.backing_format.as_deref(), Some("qcow2"));
        assert_eq!(e.data_file.as_deref(), Some("d.bin"));
        assert_eq!(e.feature_name(0, 4), Some("extended l2"));
        assert_eq!(e.feature_name(1, 0), Some("lazy"));
        assert_eq!(e.ignored.len(), 1);
        // An extension longer than the area is corrupt, at its own offset.
        let mut b = a.clone();
        b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        match Extensions::parse("f", &b, 112) {
            Err(VdiskError::Corrupt { structure: EXTENSION, offset: 112, .. }) => {}
            r => panic!("{r:?}"),
        }
        // Cut in the middle of an extension header.
        assert!(Extensions::parse("f", &a[..4], 112).is_err());
        assert_eq!(Extensions::parse("f", &[], 112).unwrap(), Extensions::default());
    }

    #[test]
    fn l2_entries_decode() {
        let c = 1u64 << 16;
        assert_eq!(decode_l2(0, None, 16, false), Cluster::Unallocated);
        assert_eq!(decode_l2(L2_COPIED | (5 * c), None, 16, false), Cluster::Data(5 * c));
        assert_eq!(decode_l2((5 * c) | L2_ZERO, None, 16, false), Cluster::Zero);
        assert_eq!(decode_l2(L2_ZERO, None, 16, false), Cluster::Zero);
        assert!(matches!(decode_l2(5 * c + 512, None, 16, false), Cluster::Invalid(_)));
        // Offset 0 is a data cluster only in an external data file with the copied bit.
        assert_eq!(decode_l2(L2_COPIED, None, 16, false), Cluster::Unallocated);
        assert_eq!(decode_l2(L2_COPIED, None, 16, true), Cluster::Data(0));
        // Compressed, 64 KiB clusters: x = 54; offset 0x12345, 3 extra sectors.
        let e = L2_COMPRESSED | (3u64 << 54) | 0x12345;
        assert_eq!(decode_l2(e, None, 16, false), Cluster::Compressed { offset: 0x12345, len: 4 * 512 - 0x145 });
        // Largest count with 2 MiB clusters: 13 bits of sectors.
        let e = L2_COMPRESSED | (0x1fffu64 << 49);
        assert_eq!(decode_l2(e, None, 21, false), Cluster::Compressed { offset: 0, len: 0x2000 * 512 });
        assert_eq!(decode_l2(u64::MAX, None, 9, false), Cluster::Compressed { offset: (1 << 61) - 1, len: 1024 - 511 });
        // Extended: bitmaps pass through; allocated subclusters need a host cluster.
        let b = 0x0000_00f0_0000_000fu64;
        assert_eq!(decode_l2(5 * c, Some(b), 16, false), Cluster::Subclusters { host: 5 * c, alloc: 0xf, zero: 0xf0 });
        assert!(matches!(decode_l2(0, Some(1), 16, false), Cluster::Invalid(_)));
        assert_eq!(decode_l2(0, Some(1 << 32), 16, false), Cluster::Subclusters { host: 0, alloc: 0, zero: 1 });
    }

    #[test]
    fn snapshot_entry_lengths() {
        let mut b = [0u8; SnapshotEntry::SIZE];
        b[0x0c..0x0e].copy_from_slice(&1u16.to_be_bytes());
        b[0x0e..0x10].copy_from_slice(&7u16.to_be_bytes());
        b[0x24..0x28].copy_from_slice(&16u32.to_be_bytes());
        let e = SnapshotEntry::parse(&b);
        assert_eq!((e.name_at(), e.total_len()), (57, 64));
    }
}
