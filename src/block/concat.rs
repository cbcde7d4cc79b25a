//! Sources placed end to end (a run table: LVM volumes, spanned extents).

use super::{BlockSource, ReadError, Source, check_range, merge_ranges};
use std::ops::Range;

/// One piece of a [`Concat`]: `len` bytes at `offset` in the concatenation, taken from `src`
/// at `src_offset`, or missing (reads as zeros and is reported unreadable).
#[derive(Clone)]
pub struct Piece {
    /// Offset of the piece in the concatenation.
    pub offset: u64,
    /// Length of the piece.
    pub len: u64,
    /// Where the bytes come from; `None` when the device holding them is missing.
    pub src: Option<(Source, u64)>,
}

/// A source assembled from pieces sorted by offset; gaps read as zeros and count as unreadable.
pub struct Concat {
    label: String,
    pieces: Vec<Piece>,
    len: u64,
}

impl Concat {
    /// Assemble `pieces` (any order; overlaps are cut, earlier piece wins) into a source of `len` bytes.
    pub fn new(label: impl Into<String>, mut pieces: Vec<Piece>, len: u64) -> Self {
        // A piece reaching past the end of its source (a truncated image) keeps only what the
        // source holds; the rest becomes a gap, read as zeros and reported unreadable.
        for p in &mut pieces {
            if let Some((src, off)) = &p.src {
                p.len = p.len.min(src.len().saturating_sub(*off));
            }
            // The piece must end inside the concatenation (no offset arithmetic can overflow).
            p.len = p.len.min(len.saturating_sub(p.offset));
        }
        pieces.retain(|p| p.len > 0 && p.offset < len);
        pieces.sort_by_key(|p| p.offset);
        let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
        let mut pos = 0u64;
        for mut p in pieces {
            if p.offset < pos {
                let cut = pos - p.offset;
                if cut >= p.len {
                    continue;
                }
                p.offset = pos;
                p.len -= cut;
                if let Some((_, o)) = p.src.as_mut() {
                    *o += cut;
                }
            }
            p.len = p.len.min(len - p.offset);
            pos = p.offset + p.len;
            out.push(p);
        }
        Self { label: label.into(), pieces: out, len }
    }

    /// Ranges of the concatenation that no present device backs.
    pub fn missing(&self) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        let mut pos = 0;
        for p in &self.pieces {
            if p.offset > pos {
                gaps.push(pos..p.offset);
            }
            if p.src.is_none() {
                gaps.push(p.offset..p.offset + p.len);
            }
            pos = p.offset + p.len;
        }
        if pos < self.len {
            gaps.push(pos..self.len);
        }
        merge_ranges(gaps)
    }

    /// Visit the parts of `range`: `(piece or None for a gap, concat range)`.
    fn for_parts(&self, range: Range<u64>, mut f: impl FnMut(Option<&Piece>, Range<u64>)) {
        let mut pos = range.start;
        let idx = self.pieces.partition_point(|p| p.offset + p.len <= pos);
        for p in &self.pieces[idx..] {
            if pos >= range.end {
                break;
            }
            if p.offset > pos {
                let gap_end = p.offset.min(range.end);
                f(None, pos..gap_end);
                pos = gap_end;
                if pos >= range.end {
                    break;
                }
            }
            let end = (p.offset + p.len).min(range.end);
            f(Some(p), pos..end);
            pos = end;
        }
        if pos < range.end {
            f(None, pos..range.end);
        }
    }
}

impl BlockSource for Concat {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        self.pieces.iter().filter_map(|p| p.src.as_ref().map(|(s, _)| s.sector_size())).max().unwrap_or(512)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        check_range(&|| self.name(), offset, buf.len(), self.len)?;
        let mut result = Ok(());
        self.for_parts(offset..offset + buf.len() as u64, |piece, r| {
            if result.is_err() {
                return;
            }
            let dst = &mut buf[(r.start - offset) as usize..(r.end - offset) as usize];
            match piece.and_then(|p| p.src.as_ref().map(|s| (p, s))) {
                Some((p, (src, src_off))) => {
                    result = src.read_at(src_off + (r.start - p.offset), dst);
                }
                None => dst.fill(0),
            }
        });
        result
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let end = range.end.min(self.len);
        let mut out = Vec::new();
        if range.start >= end {
            return out;
        }
        self.for_parts(range.start..end, |piece, r| match piece.and_then(|p| p.src.as_ref().map(|s| (p, s))) {
            Some((p, (src, src_off))) => {
                let base = src_off + (r.start - p.offset);
                for b in src.unreadable(base..base + (r.end - r.start)) {
                    out.push(r.start + (b.start - base)..r.start + (b.end - base));
                }
            }
            None => out.push(r),
        });
        merge_ranges(out)
    }
    /// What the pieces say may hold data; gaps (no device) hold none.
    fn data_ranges(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let end = range.end.min(self.len);
        let mut out = Vec::new();
        if range.start >= end {
            return out;
        }
        self.for_parts(range.start..end, |piece, r| {
            if let Some((p, (src, src_off))) = piece.and_then(|p| p.src.as_ref().map(|s| (p, s))) {
                let base = src_off + (r.start - p.offset);
                for d in src.data_ranges(base..base + (r.end - r.start)) {
                    out.push(r.start + (d.start - base)..r.start + (d.end - base));
                }
            }
        });
        merge_ranges(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, SparseMem, Tolerant};
    use std::sync::Arc;

    #[test]
    fn data_ranges_come_from_the_pieces_and_gaps_hold_none() {
        let mut sparse = SparseMem::zeros("sparse", 1 << 20);
        sparse.regions.insert(0x1000, vec![1u8; 0x200]);
        let sparse: Source = Arc::new(sparse);
        let dense: Source = Arc::new(Tolerant::new(MemSource::new("dense", vec![2u8; 0x800])));
        let c = Concat::new(
            "c",
            vec![
                // Bytes 0x800.. of the sparse source: its data at 0x1000 lands at 0x800.
                Piece { offset: 0, len: 0x1000, src: Some((Arc::clone(&sparse), 0x800)) },
                Piece { offset: 0x1000, len: 0x800, src: None },
                Piece { offset: 0x1800, len: 0x800, src: Some((dense, 0)) },
            ],
            0x3000,
        );
        assert_eq!(c.data_ranges(0..0x3000), [0x800..0xa00, 0x1800..0x2000]);
        assert_eq!(c.data_ranges(0x900..0x1900), [0x900..0xa00, 0x1800..0x1900]);
        assert!(c.data_ranges(0x2000..0x3000).is_empty());
    }
}
