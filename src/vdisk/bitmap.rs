//! Per-sector allocation bitmaps (VHD block bitmaps, VHDX sector bitmaps): one bit per sector,
//! set = the sector is in this file. This module turns a byte range into runs of set and clear
//! sectors; the formats differ only in the bit order.

use std::ops::Range;

/// Which bit of a byte stands for the first of its eight sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOrder {
    /// Bit 7 first (VHD: "the first sector is the most significant bit of the first byte").
    MsbFirst,
    /// Bit 0 first (VHDX sector bitmaps).
    LsbFirst,
}

fn bit(bits: &[u8], i: u64, order: BitOrder) -> bool {
    let Some(&b) = usize::try_from(i / 8).ok().and_then(|n| bits.get(n)) else { return false };
    let shift = (i % 8) as u32;
    match order {
        BitOrder::MsbFirst => b & (0x80 >> shift) != 0,
        BitOrder::LsbFirst => b & (1 << shift) != 0,
    }
}

/// Runs of equal bits from bit `start` for `count` bits, as (set, length). Bits past the end
/// of `bits` are clear.
pub fn runs(bits: &[u8], start: u64, count: u64, order: BitOrder) -> Vec<(bool, u64)> {
    let mut out: Vec<(bool, u64)> = Vec::new();
    let mut push = |v: bool, n: u64| match out.last_mut() {
        Some((lv, ln)) if *lv == v => *ln += n,
        _ => out.push((v, n)),
    };
    let end = start.saturating_add(count);
    let mut i = start;
    while i < end {
        // Whole bytes that are all set or all clear go in one step.
        if i.is_multiple_of(8) && end - i >= 8 {
            let byte = usize::try_from(i / 8).ok().and_then(|n| bits.get(n)).copied().unwrap_or(0);
            if byte == 0 || byte == 0xff {
                push(byte == 0xff, 8);
                i += 8;
                continue;
            }
        }
        push(bit(bits, i, order), 1);
        i += 1;
    }
    out
}

/// Split `range` (byte offsets inside one block) by the bit of each `sector`-byte sector it
/// touches, `bits` describing the block from its first sector: `f(piece, set)` in order.
pub fn sector_pieces(
    bits: &[u8],
    sector: u64,
    range: Range<u64>,
    order: BitOrder,
    mut f: impl FnMut(Range<u64>, bool),
) {
    if range.start >= range.end || sector == 0 {
        return;
    }
    let first = range.start / sector;
    let last = range.end.div_ceil(sector);
    let mut s = first;
    for (set, n) in runs(bits, first, last - first, order) {
        let lo = (s * sector).max(range.start);
        let hi = ((s + n) * sector).min(range.end);
        if lo < hi {
            f(lo..hi, set);
        }
        s += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_follow_the_bit_order() {
        // 0b1000_0001: MSB-first = set, 6 clear, set; LSB-first the same mirrored.
        assert_eq!(runs(&[0x81], 0, 8, BitOrder::MsbFirst), vec![(true, 1), (false, 6), (true, 1)]);
        assert_eq!(runs(&[0x01, 0xff], 0, 16, BitOrder::LsbFirst), vec![(true, 1), (false, 7), (true, 8)]);
        assert_eq!(runs(&[0x40], 1, 2, BitOrder::MsbFirst), vec![(true, 1), (false, 1)]);
        // Past the slice: clear.
        assert_eq!(runs(&[0xff], 4, 12, BitOrder::LsbFirst), vec![(true, 4), (false, 8)]);
    }

    #[test]
    fn pieces_clip_to_the_range() {
        let mut got = Vec::new();
        sector_pieces(&[0b1010_0000], 512, 100..1300, BitOrder::MsbFirst, |r, s| got.push((r, s)));
        assert_eq!(got, vec![(100..512, true), (512..1024, false), (1024..1300, true)]);
    }
}
