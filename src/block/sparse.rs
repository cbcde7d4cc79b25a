//! A source of zeros with stored byte regions laid over it: metadata dumps of huge devices
//! (the corpus's 64 TiB LVM samples), tests, and fuzz targets that place bytes where parsers look.

use super::{BlockSource, ReadError, check_range};
use std::collections::BTreeMap;
use std::ops::Range;

/// `len` bytes of zeros except for `regions` (start offset → bytes). Where regions overlap, the
/// one starting later wins; bytes past `len` are never returned.
#[derive(Clone, Debug, Default)]
pub struct SparseMem {
    /// Name for reports.
    pub name: String,
    /// Size in bytes.
    pub len: u64,
    /// The stored bytes, by start offset.
    pub regions: BTreeMap<u64, Vec<u8>>,
}

impl BlockSource for SparseMem {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len)?;
        buf.fill(0);
        let end = offset + buf.len() as u64;
        for (&at, data) in self.regions.range(..end) {
            let r_end = at.saturating_add(data.len() as u64);
            if r_end <= offset {
                continue;
            }
            let s = at.max(offset);
            let e = r_end.min(end);
            buf[(s - offset) as usize..(e - offset) as usize]
                .copy_from_slice(&data[(s - at) as usize..(e - at) as usize]);
        }
        Ok(())
    }
    fn unreadable(&self, _range: Range<u64>) -> Vec<Range<u64>> {
        Vec::new()
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let end = range.end.min(self.len);
        let v = self
            .regions
            .range(..end)
            .map(|(&at, d)| at.max(range.start)..at.saturating_add(d.len() as u64).min(end))
            .filter(|r| r.start < r.end)
            .collect();
        super::merge_ranges(v)
    }
}

impl SparseMem {
    /// `len` zero bytes, nothing stored yet.
    pub fn zeros(name: impl Into<String>, len: u64) -> Self {
        Self { name: name.into(), len, regions: BTreeMap::new() }
    }

    /// All of `data`, as one region.
    pub fn from_bytes(name: impl Into<String>, data: Vec<u8>) -> Self {
        let len = data.len() as u64;
        let mut regions = BTreeMap::new();
        if !data.is_empty() {
            regions.insert(0, data);
        }
        Self { name: name.into(), len, regions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_over_zeros() {
        let mut m = SparseMem { name: "m".into(), len: 100, regions: BTreeMap::new() };
        m.regions.insert(10, vec![1; 10]);
        m.regions.insert(15, vec![2; 10]);
        let mut buf = [9u8; 30];
        m.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf[..10], &[0; 10]);
        assert_eq!(&buf[10..15], &[1; 5]);
        assert_eq!(&buf[15..25], &[2; 10]);
        assert_eq!(&buf[25..], &[0; 5]);
        assert!(m.read_at(95, &mut buf).is_err());
    }
}
