//! Allocation bitmaps of the forge (one per resource kind), kept in memory and written into
//! the cluster headers when the volume is finished.

/// A bitmap of `len` resources; a set bit means allocated.
#[derive(Clone, Debug)]
pub struct Bitmap {
    bits: Vec<u64>,
    len: u64,
    /// Where the next search starts (ESXi also allocates forward from a hint).
    hint: u64,
}

impl Bitmap {
    pub fn new(len: u64) -> Self {
        Self { bits: vec![0; len.div_ceil(64) as usize], len, hint: 0 }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: u64) -> bool {
        i < self.len && self.bits[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    pub fn set(&mut self, i: u64, v: bool) {
        if i >= self.len {
            return;
        }
        let w = &mut self.bits[(i / 64) as usize];
        if v { *w |= 1 << (i % 64) } else { *w &= !(1 << (i % 64)) }
    }

    /// Allocate the first free resource at or after the hint (wrapping once).
    pub fn alloc(&mut self) -> Option<u64> {
        let found = self.find_from(self.hint).or_else(|| self.find_from(0))?;
        self.set(found, true);
        self.hint = found + 1;
        Some(found)
    }

    /// Where the next [`Bitmap::alloc`] starts looking.
    pub fn hint(&self) -> u64 {
        self.hint
    }

    /// Make the next [`Bitmap::alloc`] start at `i`.
    pub fn set_hint(&mut self, i: u64) {
        self.hint = i;
    }

    /// Allocate the first free resource in `range`.
    pub fn alloc_in(&mut self, range: std::ops::Range<u64>) -> Option<u64> {
        let i = self.first_free(range.start..range.end.min(self.len))?;
        self.set(i, true);
        Some(i)
    }

    /// Allocate `n` consecutive free resources whose first index is a multiple of `align`.
    pub fn alloc_run(&mut self, n: u64, align: u64) -> Option<u64> {
        let align = align.max(1);
        let mut start = 0;
        while start + n <= self.len {
            match (start..start + n).rev().find(|&i| self.get(i)) {
                None => {
                    (start..start + n).for_each(|i| self.set(i, true));
                    return Some(start);
                }
                Some(used) => start = (used + 1).div_ceil(align) * align,
            }
        }
        None
    }

    fn find_from(&self, from: u64) -> Option<u64> {
        let mut i = from;
        while i < self.len {
            let w = self.bits[(i / 64) as usize];
            if w == u64::MAX && i.is_multiple_of(64) {
                i += 64;
                continue;
            }
            if !self.get(i) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Allocated resources in `range`.
    pub fn count(&self, range: std::ops::Range<u64>) -> u64 {
        range.filter(|&i| self.get(i)).count() as u64
    }

    /// The first free index in `range`, if any.
    pub fn first_free(&self, range: std::ops::Range<u64>) -> Option<u64> {
        range.into_iter().find(|&i| !self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_and_runs() {
        let mut b = Bitmap::new(100);
        assert_eq!(b.alloc(), Some(0));
        assert_eq!(b.alloc(), Some(1));
        assert_eq!(b.alloc_run(10, 8), Some(8));
        assert_eq!(b.count(0..100), 12);
        b.set(1, false);
        assert_eq!(b.first_free(0..100), Some(1));
        assert_eq!(b.alloc_run(90, 1), None);
    }
}
