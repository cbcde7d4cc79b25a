//! The map of unreadable byte ranges of one raw source (a ddrescue-style map).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

/// Unreadable ranges of one source, merged and sorted. Shared between threads.
#[derive(Debug, Default)]
pub struct BadMap {
    /// start -> end, disjoint and non-adjacent.
    ranges: Mutex<BTreeMap<u64, u64>>,
}

impl BadMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `range` as unreadable.
    pub fn insert(&self, range: Range<u64>) {
        if range.start >= range.end {
            return;
        }
        let mut map = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        let (mut start, mut end) = (range.start, range.end);
        // Absorb every range that overlaps or touches [start, end).
        let touching: Vec<(u64, u64)> =
            map.range(..=end).rev().take_while(|(_, e)| **e >= start).map(|(s, e)| (*s, *e)).collect();
        for (s, e) in touching {
            map.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        map.insert(start, end);
    }

    /// The parts of `range` that are recorded as unreadable, sorted.
    pub fn query(&self, range: Range<u64>) -> Vec<Range<u64>> {
        if range.start >= range.end {
            return Vec::new();
        }
        let map = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        // The range starting at or before range.start may overlap it.
        if let Some((s, e)) = map.range(..=range.start).next_back()
            && *e > range.start
        {
            out.push(range.start.max(*s)..range.end.min(*e));
        }
        for (s, e) in map.range(range.start.saturating_add(1)..range.end) {
            out.push(*s..range.end.min(*e));
        }
        out
    }

    /// Every recorded range.
    pub fn all(&self) -> Vec<Range<u64>> {
        let map = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(s, e)| *s..*e).collect()
    }

    /// Total unreadable bytes.
    pub fn total(&self) -> u64 {
        self.all().iter().map(|r| r.end - r.start).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_queries() {
        let m = BadMap::new();
        m.insert(1024..1536);
        m.insert(512..1024);
        m.insert(4096..4608);
        assert_eq!(m.all(), vec![512..1536, 4096..4608]);
        assert_eq!(m.query(0..600), vec![512..600]);
        assert_eq!(m.query(1000..5000), vec![1000..1536, 4096..4608]);
        assert_eq!(m.query(2000..3000), Vec::<Range<u64>>::new());
        m.insert(0..8192);
        assert_eq!(m.all(), vec![0..8192]);
        assert_eq!(m.total(), 8192);
    }
}
