//! A source seen through in-memory patches: how a rebuilt structure (a synthesized FS
//! descriptor) is put in front of a damaged volume without writing a byte to it.

use super::{BlockSource, ReadError, Source, check_range};
use std::ops::Range;

/// `inner` with some byte ranges replaced by `patches` (offset, bytes); patches do not overlap.
pub struct Overlay {
    inner: Source,
    patches: Vec<(u64, Vec<u8>)>,
}

impl Overlay {
    /// Patches are sorted here; overlapping ones keep the later-given bytes where they meet.
    pub fn new(inner: Source, mut patches: Vec<(u64, Vec<u8>)>) -> Self {
        patches.sort_by_key(|p| p.0);
        Self { inner, patches }
    }
}

impl BlockSource for Overlay {
    fn name(&self) -> String {
        format!("{} (rebuilt)", self.inner.name())
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len())?;
        self.inner.read_at(offset, buf)?;
        let end = offset + buf.len() as u64;
        for (at, bytes) in &self.patches {
            let p_end = at + bytes.len() as u64;
            let s = offset.max(*at);
            let e = end.min(p_end);
            if s < e {
                buf[(s - offset) as usize..(e - offset) as usize]
                    .copy_from_slice(&bytes[(s - at) as usize..(e - at) as usize]);
            }
        }
        Ok(())
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        self.inner.unreadable(range)
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut v = self.inner.data_ranges(range.clone());
        for (at, bytes) in &self.patches {
            let s = range.start.max(*at);
            let e = range.end.min(at + bytes.len() as u64);
            if s < e {
                v.push(s..e);
            }
        }
        super::merge_ranges(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemSource;
    use std::sync::Arc;

    #[test]
    fn patches_show_through_and_the_rest_is_the_inner_source() {
        let inner: Source =
            Arc::new(crate::block::Tolerant::new(MemSource::new("m", (0..=255u8).cycle().take(4096).collect())));
        let o = Overlay::new(inner, vec![(510, vec![0xAA; 4]), (4094, vec![1, 2])]);
        let mut b = vec![0u8; 8];
        o.read_at(508, &mut b).unwrap();
        assert_eq!(b, [252, 253, 0xAA, 0xAA, 0xAA, 0xAA, 2, 3]);
        let mut t = vec![0u8; 3];
        o.read_at(4093, &mut t).unwrap();
        assert_eq!(t, [253, 1, 2]);
        assert!(o.read_at(4095, &mut t).is_err());
    }
}
