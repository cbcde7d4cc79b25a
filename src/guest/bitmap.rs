//! Allocation bitmaps of guest file systems (exFAT, NTFS): "how many of these clusters are in
//! use" for the confidence of a deleted file's content.

/// An allocation bitmap (exFAT: bit n = cluster n + 2; NTFS `$Bitmap`: bit n = cluster n) with
/// a count of set bits before each block of [`Bitmap::BLOCK`] bytes, so "how many of these
/// clusters are in use" costs at most two blocks.
pub(crate) struct Bitmap {
    bits: Vec<u8>,
    /// `prefix[k]`: set bits in bytes `0..k * BLOCK`.
    prefix: Vec<u64>,
}

impl Bitmap {
    const BLOCK: usize = 512;

    pub(crate) fn new(bits: Vec<u8>) -> Self {
        let mut prefix = Vec::with_capacity(bits.len() / Self::BLOCK + 1);
        let mut n = 0u64;
        prefix.push(0);
        for b in bits.chunks(Self::BLOCK) {
            n += b.iter().map(|x| u64::from(x.count_ones())).sum::<u64>();
            prefix.push(n);
        }
        Self { bits, prefix }
    }

    /// Set bits before bit `i` (`i` at most the bitmap's length in bits).
    fn before(&self, i: u64) -> Option<u64> {
        let byte = usize::try_from(i / 8).ok()?;
        let block = byte / Self::BLOCK;
        let whole = self.bits.get(block * Self::BLOCK..byte)?;
        let mut n = *self.prefix.get(block)? + whole.iter().map(|x| u64::from(x.count_ones())).sum::<u64>();
        if !i.is_multiple_of(8) {
            let mask = (1u8 << (i % 8)) - 1;
            n += u64::from((self.bits.get(byte)? & mask).count_ones());
        }
        Some(n)
    }

    /// Clusters in use among bits `a..b`; `None` when the range leaves the bitmap.
    pub(crate) fn allocated(&self, a: u64, b: u64) -> Option<u64> {
        if b > (self.bits.len() as u64) * 8 || a > b {
            return None;
        }
        Some(self.before(b)? - self.before(a)?)
    }
}
