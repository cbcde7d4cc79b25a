//! An in-memory source, for tests and for small structures built in memory.

use super::RawSource;
use std::io;

/// Bytes in memory.
#[derive(Clone, Debug)]
pub struct MemSource {
    name: String,
    data: Vec<u8>,
}

impl MemSource {
    /// A source over `data`.
    pub fn new(name: impl Into<String>, data: Vec<u8>) -> Self {
        Self { name: name.into(), data }
    }
}

impl RawSource for MemSource {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn sector_size(&self) -> u32 {
        512
    }
    fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.data.len());
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }
}
