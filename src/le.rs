//! Bounds-checked little-endian field readers for on-disk parsers, and the VMware UUID.
//!
//! Parsers take a byte slice and a documented offset; a field past the end of the slice is
//! `None`, never a panic, so a truncated structure becomes a clear "too short" error upstream.

use std::fmt;

/// UTF-16LE text, unpaired surrogates replaced (a trailing odd byte ignored).
pub fn utf16le(b: &[u8]) -> String {
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
}

/// `N` bytes at `off`, if the slice holds them.
pub fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// Little-endian u8 at `off`.
pub fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

/// Little-endian u16 at `off`.
pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    bytes::<2>(b, off).map(u16::from_le_bytes)
}

/// Little-endian u32 at `off`.
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    bytes::<4>(b, off).map(u32::from_le_bytes)
}

/// Little-endian u64 at `off`.
pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    bytes::<8>(b, off).map(u64::from_le_bytes)
}

/// A NUL-padded string field of `len` bytes at `off` (lossy UTF-8, cut at the first NUL).
pub fn cstr_at(b: &[u8], off: usize, len: usize) -> Option<String> {
    let raw = b.get(off..off.checked_add(len)?)?;
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    Some(String::from_utf8_lossy(&raw[..end]).into_owned())
}

/// Write helpers for encoders (the forge and tests). Panics only on a caller's own bad offset.
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// See [`put_u32`].
pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// See [`put_u32`].
pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// A VMware UUID as stored by LVM and VMFS: `timeLo u32, timeHi u32, rand u16, mac[6]`,
/// printed `%08x-%08x-%04x-%012x` (e.g. `68626efc-2ea12e18-b4ef-bc2411b17e28`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct VmwareUuid(pub [u8; 16]);

impl VmwareUuid {
    /// The UUID stored at `off`.
    pub fn at(b: &[u8], off: usize) -> Option<Self> {
        bytes::<16>(b, off).map(Self)
    }
    /// Whether all bytes are zero.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for VmwareUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let rnd = u16::from_le_bytes([b[8], b[9]]);
        write!(f, "{lo:08x}-{hi:08x}-{rnd:04x}-")?;
        for x in &b[10..16] {
            write!(f, "{x:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for VmwareUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_past_the_end_are_none() {
        let b = [1u8, 2, 3];
        assert_eq!(u16_at(&b, 1), Some(0x0302));
        assert_eq!(u32_at(&b, 0), None);
        assert_eq!(u64_at(&b, usize::MAX), None);
        assert_eq!(cstr_at(b"ab\0cd", 0, 5).as_deref(), Some("ab"));
    }
}
