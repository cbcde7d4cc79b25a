//! The block layer's composite sources under arbitrary layouts and faults.
//!
//! From the input: up to three devices (`Tolerant<FaultySource<MemSource>>` with bad ranges
//! and a retry policy), then up to four layers of `Slice`s and `Concat`s over anything built
//! so far, then reads of arbitrary ranges of any of them. Nothing may panic, and:
//! - a read past the end fails with `ReadError::OutOfRange`;
//! - `unreadable()` answers sorted, disjoint, non-empty ranges inside the asked range;
//! - on a device, every byte that `unreadable()` does not report equals the original, and
//!   every byte of an injected bad range that was read is reported and reads as zero
//!   (a reported byte may still read fine later: the bad map is sticky).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::ops::Range;
use std::sync::Arc;
use vmfs_rescue::block::{Concat, FaultySource, MemSource, Piece, ReadError, RetryPolicy, Slice, Source, Tolerant};

/// Largest device, in bytes.
const MAX_DEV: u64 = 64 * 1024;
/// Largest concatenation, in bytes.
const MAX_CONCAT: u64 = 256 * 1024;
/// Largest single read, in bytes.
const MAX_READ: u64 = 96 * 1024;

/// A device of the pool: its original bytes and injected bad ranges, when it is one.
struct Node {
    src: Source,
    device: Option<(Vec<u8>, Vec<Range<u64>>)>,
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut pool: Vec<Node> = Vec::new();
    for i in 0..u.int_in_range(1..=3u8)? {
        pool.push(device(u, i)?);
    }
    for _ in 0..u.int_in_range(0..=4u8)? {
        let node = if u.arbitrary()? { slice(u, &pool)? } else { concat(u, &pool)? };
        pool.push(node);
    }
    for _ in 0..u.int_in_range(1..=8u8)? {
        let node = &pool[u.choose_index(pool.len())?];
        read(u, node)?;
    }
    Ok(())
}

fn device(u: &mut Unstructured<'_>, i: u8) -> Result<Node> {
    let len = if u.arbitrary()? { u.int_in_range(0..=MAX_DEV / 512)? * 512 } else { u.int_in_range(0..=MAX_DEV)? };
    let data: Vec<u8> = (0..len).map(|b| (b.wrapping_mul(131) >> 3) as u8 ^ i.wrapping_mul(77) | 1).collect();
    let mut bad = Vec::new();
    for _ in 0..u.int_in_range(0..=4u8)? {
        let start = u.int_in_range(0..=len)?;
        let n = u.int_in_range(1..=4096u64)?;
        bad.push(start..start + n);
    }
    let policy = RetryPolicy { whole_attempts: u.int_in_range(0..=3)?, sector_attempts: u.int_in_range(0..=3)? };
    let raw = FaultySource::new(MemSource::new(format!("dev{i}"), data.clone()), bad.clone());
    let src: Source = Arc::new(Tolerant::new(raw).with_policy(policy));
    Ok(Node { src, device: Some((data, bad)) })
}

fn slice(u: &mut Unstructured<'_>, pool: &[Node]) -> Result<Node> {
    let inner = &pool[u.choose_index(pool.len())?].src;
    let start = if u.ratio(1, 16)? { u.arbitrary()? } else { u.int_in_range(0..=inner.len() + 1024)? };
    let len = if u.ratio(1, 16)? { u.arbitrary()? } else { u.int_in_range(0..=inner.len() + 1024)? };
    Ok(Node { src: Arc::new(Slice::new(Arc::clone(inner), start, len)), device: None })
}

fn concat(u: &mut Unstructured<'_>, pool: &[Node]) -> Result<Node> {
    let total = u.int_in_range(0..=MAX_CONCAT)?;
    let mut pieces = Vec::new();
    for _ in 0..u.int_in_range(0..=6u8)? {
        let offset = if u.ratio(1, 16)? { u.arbitrary()? } else { u.int_in_range(0..=total)? };
        let len = if u.ratio(1, 16)? { u.arbitrary()? } else { u.int_in_range(0..=MAX_CONCAT / 2)? };
        let src = if u.ratio(1, 4)? {
            None
        } else {
            let s = &pool[u.choose_index(pool.len())?].src;
            // Source offsets stay near the source: one within a few sectors of u64::MAX makes
            // Concat's offset arithmetic overflow (reported; see tests/integration/block.rs
            // concat_piece_with_huge_source_offset_fails_cleanly).
            Some((Arc::clone(s), u.int_in_range(0..=s.len() + 4096)?))
        };
        pieces.push(Piece { offset, len, src });
    }
    Ok(Node { src: Arc::new(Concat::new("fuzz", pieces, total)), device: None })
}

fn read(u: &mut Unstructured<'_>, node: &Node) -> Result<()> {
    let src = &node.src;
    let len = src.len();
    let offset = if u.ratio(1, 16)? { u.arbitrary()? } else { u.int_in_range(0..=len + 600)? };
    let n = u.int_in_range(0..=MAX_READ.min(len + 600))?;
    let mut buf = vec![0xAAu8; n as usize];
    let result = src.read_at(offset, &mut buf);
    let in_range = offset.checked_add(n).is_some_and(|end| end <= len);
    if !in_range {
        assert!(matches!(result, Err(ReadError::OutOfRange { .. })), "read of {n} at {offset} of {len}: {result:?}");
        return Ok(());
    }
    let range = offset..offset + n;
    // Tolerant::unreadable panics on an empty range (BadMap::query; reported), so ask only
    // about non-empty ones.
    if n > 0 {
        check_ranges(&src.unreadable(range.clone()), &range);
    }
    let (Ok(()), Some((data, bad))) = (result, &node.device) else {
        return Ok(());
    };
    if n == 0 {
        return Ok(());
    }
    let unreadable = src.unreadable(range.clone());
    for (i, &b) in buf.iter().enumerate() {
        let at = offset + i as u64;
        let reported = unreadable.iter().any(|r| r.contains(&at));
        let injected = bad.iter().any(|r| r.contains(&at));
        if injected {
            assert!(reported && b == 0, "byte {at} of a bad range: reported {reported}, value {b:#x}");
        } else if !reported {
            assert_eq!(b, data[at as usize], "byte {at} not reported unreadable but differs");
        }
        // A reported byte may read fine now: the map is sticky, as for a flaky sector.
    }
    Ok(())
}

/// Sorted, disjoint, non-empty, inside `within`.
fn check_ranges(ranges: &[Range<u64>], within: &Range<u64>) {
    let mut last_end = within.start;
    for (i, r) in ranges.iter().enumerate() {
        assert!(r.start < r.end, "empty range {r:?} in {ranges:?}");
        assert!(r.start >= last_end && (i == 0 || r.start > last_end), "unsorted or touching {ranges:?}");
        assert!(r.end <= within.end, "{r:?} outside {within:?}");
        last_end = r.end;
    }
}
