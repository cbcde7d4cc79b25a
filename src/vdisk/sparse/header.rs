//! The KDMV `SparseExtentHeader` (research/vmdk-format.md §3.1–3.2), every field checked
//! before anything is sized from it.

use super::super::error::{Result, VdiskError};

/// gdOffset value meaning "the grain directory is at the end; read the footer" (§4.3).
pub const GD_AT_END: u64 = u64::MAX;
/// Flag: newline-detection bytes valid.
pub const FLAG_NEWLINE: u32 = 0x1;
/// Flag: GTE 1 means a zeroed grain.
pub const FLAG_ZEROED_GRAIN: u32 = 0x4;
/// Flag: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 0x1_0000;
/// Flag: markers present.
pub const FLAG_MARKERS: u32 = 0x2_0000;

/// Largest capacity accepted, in sectors (2^47 sectors = 64 PiB: far above any VMDK).
pub const MAX_CAPACITY: u64 = 1 << 47;
/// Largest grain of an uncompressed extent (qemu's limit), in sectors.
pub const MAX_GRAIN: u64 = 0x20_0000;
/// Largest grain of a compressed extent, in sectors (16 MiB: each grain is inflated in memory).
pub const MAX_COMPRESSED_GRAIN: u64 = 0x8000;
/// Largest number of entries per grain table.
pub const MAX_GTES: u32 = 8192;

/// A parsed header.
#[derive(Clone, Debug)]
pub struct Header {
    pub version: u32,
    pub flags: u32,
    pub capacity: u64,
    pub grain_size: u64,
    pub descriptor_offset: u64,
    pub descriptor_size: u64,
    pub gtes_per_gt: u32,
    pub rgd_offset: u64,
    pub gd_offset: u64,
    pub overhead: u64,
    pub unclean: bool,
    pub newline_ok: bool,
    pub compress_algorithm: u16,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

impl Header {
    /// Decode the 512 bytes at `b` (no checks beyond the magic).
    pub fn decode(b: &[u8; 512]) -> Option<Self> {
        if u32_at(b, 0) != super::KDMV_MAGIC {
            return None;
        }
        Some(Self {
            version: u32_at(b, 4),
            flags: u32_at(b, 8),
            capacity: u64_at(b, 12),
            grain_size: u64_at(b, 20),
            descriptor_offset: u64_at(b, 28),
            descriptor_size: u64_at(b, 36),
            gtes_per_gt: u32_at(b, 44),
            rgd_offset: u64_at(b, 48),
            gd_offset: u64_at(b, 56),
            overhead: u64_at(b, 64),
            unclean: b[72] != 0,
            newline_ok: b[73..77] == [b'\n', b' ', b'\r', b'\n'],
            compress_algorithm: u16::from_le_bytes([b[77], b[78]]),
        })
    }

    pub fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    pub fn markers(&self) -> bool {
        self.flags & FLAG_MARKERS != 0
    }

    pub fn zeroed_grain(&self) -> bool {
        self.flags & FLAG_ZEROED_GRAIN != 0
    }

    /// Bytes per grain.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_size * 512
    }

    /// Number of grain tables the capacity needs (after `check`).
    pub fn num_gts(&self) -> u64 {
        let cover = self.grain_size * self.gtes_per_gt as u64;
        self.capacity.div_ceil(cover)
    }

    /// Check the fields that size anything (capacity, grain, table sizes) against `file_len`.
    /// `at` is the header's byte offset (0, or the footer's).
    pub fn check(&self, file: &str, at: u64, file_len: u64) -> Result<()> {
        let bad = |what: String| Err(VdiskError::corrupt(file, "SparseExtentHeader", at, what));
        if self.version == 0 || self.version > 3 {
            return Err(VdiskError::Unsupported { file: file.into(), what: format!("KDMV version {}", self.version) });
        }
        if self.capacity > MAX_CAPACITY {
            return bad(format!("capacity {} sectors is absurd (more than {MAX_CAPACITY})", self.capacity));
        }
        let max_grain = if self.compressed() { MAX_COMPRESSED_GRAIN } else { MAX_GRAIN };
        if self.grain_size == 0 || self.grain_size > max_grain {
            return bad(format!("grain size {} sectors (accepted 1..={max_grain})", self.grain_size));
        }
        if self.gtes_per_gt == 0 || self.gtes_per_gt > MAX_GTES {
            return bad(format!("{} entries per grain table (accepted 1..={MAX_GTES})", self.gtes_per_gt));
        }
        if self.compressed() && self.compress_algorithm != 1 {
            return Err(VdiskError::Unsupported {
                file: file.into(),
                what: format!("compression algorithm {}", self.compress_algorithm),
            });
        }
        // The grain directory has to fit in the file (4 bytes per grain table); this is what
        // rejects absurd capacities before anything is allocated.
        let gd_bytes = self.num_gts().saturating_mul(4);
        if self.capacity > 0 && gd_bytes > file_len {
            return bad(format!(
                "capacity {} sectors needs a {gd_bytes}-byte grain directory, more than the {file_len}-byte file",
                self.capacity
            ));
        }
        if self.gtes_per_gt as u64 * 4 > file_len {
            return bad(format!("grain tables of {} entries are larger than the file", self.gtes_per_gt));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(capacity: u64, grain: u64, gtes: u32) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..4].copy_from_slice(b"KDMV");
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[8..12].copy_from_slice(&3u32.to_le_bytes());
        b[12..20].copy_from_slice(&capacity.to_le_bytes());
        b[20..28].copy_from_slice(&grain.to_le_bytes());
        b[44..48].copy_from_slice(&gtes.to_le_bytes());
        b
    }

    #[test]
    fn absurd_sizes_are_rejected() {
        let ok = Header::decode(&header(131072, 128, 512)).unwrap();
        assert!(ok.check("f", 0, 1 << 20).is_ok());
        assert_eq!(ok.num_gts(), 2);
        for (c, g, t) in
            [(u64::MAX, 128, 512), (1 << 46, 128, 512), (131072, 0, 512), (131072, 128, 0), (131072, 1 << 40, 512)]
        {
            let h = Header::decode(&header(c, g, t)).unwrap();
            assert!(h.check("f", 0, 1 << 20).is_err(), "{c} {g} {t}");
        }
        assert!(Header::decode(&[0u8; 512]).is_none());
    }
}
