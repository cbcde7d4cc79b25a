//! A source that counts the bytes read through it and can be told to stop: front ends show a
//! copy's progress inside one large file and stop it without waiting for the file's end.

use super::{BlockSource, ReadError, Source};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters shared between a copy and whoever watches it.
#[derive(Debug, Default)]
pub struct Meter {
    /// Bytes read so far through every `Metered` source that shares this meter.
    pub bytes: AtomicU64,
    /// When set, reads fail with `ReadError::Stopped` (the copy ends with an error).
    pub stop: AtomicBool,
    /// Units (files) finished, for the watcher.
    pub done: AtomicU64,
    /// What is being read now (a file's path), for the watcher.
    pub current: Mutex<String>,
}

impl Meter {
    /// Whether a stop was asked for.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Say what is being read now.
    pub fn set_current(&self, what: &str) {
        if let Ok(mut c) = self.current.lock() {
            what.clone_into(&mut c);
        }
    }
    /// What is being read now.
    pub fn current(&self) -> String {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// `inner`, counted into `meter`.
pub struct Metered {
    inner: Source,
    meter: Arc<Meter>,
}

impl Metered {
    pub fn new(inner: Source, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl BlockSource for Metered {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        if self.meter.stopped() {
            return Err(ReadError::Stopped);
        }
        self.inner.read_at(offset, buf)?;
        self.meter.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        self.inner.unreadable(range)
    }
    fn advise_sequential(&self) {
        self.inner.advise_sequential();
    }
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        self.inner.data_ranges(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemSource;

    #[test]
    fn counts_reads_and_stops() {
        let meter = Arc::new(Meter::default());
        let m = Metered::new(Arc::new(MemSource::new("m", vec![7u8; 4096])), Arc::clone(&meter));
        let mut b = [0u8; 1000];
        m.read_at(0, &mut b).unwrap();
        m.read_at(1000, &mut b).unwrap();
        assert_eq!(meter.bytes.load(Ordering::Relaxed), 2000);
        meter.stop.store(true, Ordering::Relaxed);
        assert!(matches!(m.read_at(0, &mut b), Err(ReadError::Stopped)));
    }
}
