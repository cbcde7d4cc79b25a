//! The block layer through its public face: tolerant reads over injected bad sectors, slices,
//! concatenations with gaps and missing devices, range checks, and image files on disk.
//!
//! Every test builds its data from [`pattern`], which differs from sector to sector, so a
//! sector read from the wrong place never passes for the right one.

// A single bad range is the common case here, not a mistaken `(a..b).collect()`.
#![allow(clippy::single_range_in_vec_init)]

use crate::util::SourceGuard;
use std::ops::Range;
use std::sync::Arc;
use vmfs_rescue::block::{
    BlockSource, Concat, FaultySource, ImageFile, MemSource, Piece, RawSource, ReadError, RetryPolicy, Slice, Source,
    Tolerant, open_path, read_vec,
};

const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;

/// Deterministic bytes that differ within and between sectors and never form long zero runs.
fn pattern(seed: u64, len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = (i ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            ((x >> 56) as u8) | 1
        })
        .collect()
}

/// The stack under test: a tolerant reader over a fault-injecting memory source.
type Faulty = Tolerant<FaultySource<MemSource>>;

/// `Tolerant<FaultySource<MemSource>>` over `data`, failing reads that touch `bad`.
fn faulty(data: &[u8], bad: Vec<Range<u64>>) -> Faulty {
    Tolerant::new(FaultySource::new(MemSource::new("mem", data.to_vec()), bad))
}

/// What a tolerant read of `range` must return: the original with the `bad` bytes zeroed.
fn expected(data: &[u8], bad: &[Range<u64>], range: Range<u64>) -> Vec<u8> {
    let mut out = data[range.start as usize..range.end as usize].to_vec();
    for b in bad {
        let s = b.start.max(range.start);
        let e = b.end.min(range.end);
        if s < e {
            out[(s - range.start) as usize..(e - range.start) as usize].fill(0);
        }
    }
    out
}

/// Sector `n`'s byte range.
fn sectors(first: u64, count: u64) -> Range<u64> {
    first * SECTOR..(first + count) * SECTOR
}

/// Index of the first differing byte, for short failure messages on large buffers.
fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    assert_eq!(a.len(), b.len(), "buffer lengths differ");
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[track_caller]
fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if let Some(i) = first_diff(got, want) {
        panic!("{what}: first difference at byte {i:#x}: got {:#04x}, want {:#04x}", got[i], want[i]);
    }
}

/// Read `range` of `src` in one request and check it against `data` with `bad` zeroed.
#[track_caller]
fn check_read(src: &dyn BlockSource, data: &[u8], bad: &[Range<u64>], range: Range<u64>) {
    let got = read_vec(src, range.start, (range.end - range.start) as usize).expect("read");
    assert_bytes(&got, &expected(data, bad, range.clone()), &format!("read {range:?}"));
}

/// Upper bound on `pread` calls for one request of `len` bytes that meets one bad sector.
///
/// The request is tried `whole_attempts` times. After that every halving level reads both
/// halves once (one fails, one succeeds), and there are `ceil(log2(len / sector))` levels
/// down to the bad sector, which is then tried `sector_attempts` times more. So
/// `whole + 2 * levels + sector`; 35 for 16 MiB of 512-byte sectors with the default policy,
/// where a sector-by-sector retry would need more than 32768.
fn one_bad_sector_bound(len: u64, policy: RetryPolicy) -> u64 {
    let n = len.div_ceil(SECTOR);
    let levels = u64::from(n.next_power_of_two().trailing_zeros());
    u64::from(policy.whole_attempts) + 2 * levels + u64::from(policy.sector_attempts)
}

#[test]
fn tolerant_reads_clean_source_in_one_pread() {
    let data = pattern(1, MIB);
    let src = faulty(&data, vec![]);
    check_read(&src, &data, &[], 0..MIB);
    assert_eq!(src.raw().reads(), 1);
    assert!(src.unreadable(0..MIB).is_empty());
    assert!(src.bad_map().all().is_empty());
}

#[test]
fn tolerant_single_bad_sector() {
    let data = pattern(2, MIB);
    let bad = vec![sectors(100, 1)];
    let src = faulty(&data, bad.clone());
    check_read(&src, &data, &bad, 0..MIB);
    assert_eq!(src.unreadable(0..MIB), bad);
    assert_eq!(src.bad_map().total(), SECTOR);
    // Queries are clipped to the asked range.
    assert_eq!(src.unreadable(0..100 * SECTOR + 10), vec![100 * SECTOR..100 * SECTOR + 10]);
    assert!(src.unreadable(0..100 * SECTOR).is_empty());
    assert!(src.unreadable(101 * SECTOR..MIB).is_empty());
    // Reading again gives the same bytes and does not grow the map.
    check_read(&src, &data, &bad, 0..MIB);
    assert_eq!(src.unreadable(0..MIB), bad);
}

#[test]
fn tolerant_bad_sector_inside_a_sector_is_whole_sector() {
    // A device fails whole sectors; one bad byte makes its sector unreadable, not more.
    let data = pattern(3, 64 * SECTOR);
    let src = faulty(&data, vec![7 * SECTOR + 100..7 * SECTOR + 101]);
    let sector7 = vec![sectors(7, 1)];
    check_read(&src, &data, &sector7, 0..64 * SECTOR);
    assert_eq!(src.unreadable(0..64 * SECTOR), sector7);
}

#[test]
fn tolerant_bad_run_crossing_large_reads() {
    // A run of 8 bad sectors across the 1 MiB boundary, read in 1 MiB requests: two requests
    // meet it, each must recover everything around it.
    let len = 4 * MIB;
    let data = pattern(4, len);
    let run = MIB - 3 * SECTOR..MIB + 5 * SECTOR;
    let bad = vec![run.clone()];
    let src = faulty(&data, bad.clone());
    for chunk in 0..4 {
        check_read(&src, &data, &bad, chunk * MIB..(chunk + 1) * MIB);
    }
    assert_eq!(src.unreadable(0..len), bad);
    // A request that starts inside the run and one that ends inside it.
    let src = faulty(&data, bad.clone());
    check_read(&src, &data, &bad, run.start + 2 * SECTOR..run.end + 300 * SECTOR);
    assert_eq!(src.unreadable(0..len), vec![run.start + 2 * SECTOR..run.end]);
    check_read(&src, &data, &bad, run.start - 40 * SECTOR..run.start + 2 * SECTOR);
    assert_eq!(src.unreadable(0..len), vec![run.start..run.end]);
}

#[test]
fn tolerant_first_and_last_sector() {
    let len = 2 * MIB;
    let data = pattern(5, len);
    let bad = vec![sectors(0, 1), len - SECTOR..len];
    let src = faulty(&data, bad.clone());
    check_read(&src, &data, &bad, 0..len);
    assert_eq!(src.unreadable(0..len), bad);
    // The sectors alone.
    let src = faulty(&data, bad.clone());
    check_read(&src, &data, &bad, 0..SECTOR);
    check_read(&src, &data, &bad, len - SECTOR..len);
    check_read(&src, &data, &bad, SECTOR..len - SECTOR);
    assert_eq!(src.unreadable(0..len), bad);
}

#[test]
fn tolerant_partial_last_sector() {
    // A source whose size is not a multiple of the sector size; its short last sector is bad.
    let len = 40 * SECTOR + 100;
    let data = pattern(6, len);
    let bad = vec![40 * SECTOR..len];
    let src = faulty(&data, bad.clone());
    check_read(&src, &data, &bad, 0..len);
    assert_eq!(src.unreadable(0..len), bad);
    assert_eq!(src.unreadable(0..u64::MAX), bad);
}

#[test]
fn tolerant_many_scattered_bad_sectors() {
    let len = 256 * SECTOR;
    let data = pattern(7, len);
    let bad: Vec<Range<u64>> = [3, 4, 5, 17, 64, 65, 127, 128, 200, 255].iter().map(|&s| sectors(s, 1)).collect();
    let src = faulty(&data, bad.clone());
    check_read(&src, &data, &bad, 0..len);
    let merged = vec![sectors(3, 3), sectors(17, 1), sectors(64, 2), sectors(127, 2), sectors(200, 1), sectors(255, 1)];
    assert_eq!(src.unreadable(0..len), merged);
    assert_eq!(src.bad_map().total(), 10 * SECTOR);
}

#[test]
fn tolerant_16mib_one_bad_sector_splits_logarithmically() {
    let len = 16 * MIB;
    let data = pattern(8, len);
    let policy = RetryPolicy::default();
    let bound = one_bad_sector_bound(len, policy);
    assert_eq!(bound, 35, "2 whole attempts + 2 x 15 halvings + 3 sector attempts");
    let n = len / SECTOR;
    for bad_sector in [0, 1, 12_345, n / 2, n / 2 - 1, n - 1] {
        let bad = vec![sectors(bad_sector, 1)];
        let src = faulty(&data, bad.clone());
        check_read(&src, &data, &bad, 0..len);
        assert_eq!(src.unreadable(0..len), bad, "bad sector {bad_sector}");
        let reads = src.raw().reads();
        assert!(reads <= bound, "bad sector {bad_sector}: {reads} preads for one 16 MiB request, bound {bound}");
    }
}

#[test]
fn tolerant_retry_policy_counts() {
    // With one attempt everywhere, a one-sector read of a bad sector costs exactly 2 preads:
    // the whole request, then the sector once more.
    let data = pattern(9, 8 * SECTOR);
    let policy = RetryPolicy { whole_attempts: 1, sector_attempts: 1 };
    let src = faulty(&data, vec![sectors(2, 1)]).with_policy(policy);
    check_read(&src, &data, &[sectors(2, 1)], sectors(2, 1));
    assert_eq!(src.raw().reads(), 2);
    // Default: 2 whole attempts + 3 sector attempts.
    let src = faulty(&data, vec![sectors(2, 1)]);
    check_read(&src, &data, &[sectors(2, 1)], sectors(2, 1));
    assert_eq!(src.raw().reads(), 5);
}

#[test]
fn tolerant_unaligned_small_read_keeps_good_neighbour() {
    let data = pattern(10, 8 * SECTOR);
    let bad = vec![sectors(2, 1)];
    let src = faulty(&data, bad.clone());
    // 256 bytes of good sector 1 and 256 bytes of bad sector 2.
    let range = SECTOR + 256..2 * SECTOR + 256;
    check_read(&src, &data, &bad, range.clone());
    assert_eq!(src.unreadable(0..8 * SECTOR), vec![2 * SECTOR..range.end]);
}

#[test]
fn tolerant_unaligned_large_read_is_sector_granular() {
    // Unaligned requests larger than a sector are cut on sector boundaries of the source.
    let data = pattern(11, 64 * SECTOR);
    let bad = vec![sectors(10, 1), sectors(30, 2)];
    let src = faulty(&data, bad.clone());
    check_read(&src, &data, &bad, 5 * SECTOR + 123..50 * SECTOR + 7);
    assert_eq!(src.unreadable(0..64 * SECTOR), bad);
}

#[test]
fn tolerant_unreadable_of_empty_range_is_empty() {
    let data = pattern(12, 8 * SECTOR);
    let src = faulty(&data, vec![sectors(2, 1)]);
    check_read(&src, &data, &[sectors(2, 1)], 0..8 * SECTOR);
    assert!(src.unreadable(100..100).is_empty());
    assert!(src.unreadable(2 * SECTOR + 10..2 * SECTOR + 10).is_empty());
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = 300..200;
    assert!(src.unreadable(inverted).is_empty());
}

#[test]
fn out_of_range_reads_are_errors() {
    let data = pattern(13, 8 * SECTOR);
    let tol: Source = Arc::new(faulty(&data, vec![]));
    let slice: Source = Arc::new(Slice::new(Arc::clone(&tol), SECTOR, 4 * SECTOR));
    let concat: Source = Arc::new(Concat::new(
        "concat",
        vec![Piece { offset: 0, len: 3 * SECTOR, src: Some((Arc::clone(&tol), 0)) }],
        5 * SECTOR,
    ));
    for src in [&tol, &slice, &concat] {
        let len = src.len();
        // Inside, and empty reads at the very end, are fine.
        src.read_at(len - 1, &mut [0u8; 1]).unwrap();
        src.read_at(len, &mut []).unwrap();
        for (off, n) in [(len - 1, 2u64), (len, 1), (u64::MAX, 1), (u64::MAX - 1, 2)] {
            let mut buf = vec![0u8; n as usize];
            match src.read_at(off, &mut buf) {
                Err(ReadError::OutOfRange { offset, len: l, size, source_name }) => {
                    assert_eq!((offset, l, size), (off, n, len), "{}", src.name());
                    assert_eq!(source_name, src.name());
                }
                other => panic!("{}: read of {n} at {off:#x}: {other:?}", src.name()),
            }
        }
    }
}

#[test]
fn slice_translates_reads_and_unreadable() {
    let len = 64 * SECTOR;
    let data = pattern(14, len);
    let bad = vec![sectors(3, 1), sectors(20, 2), sectors(60, 1)];
    let tol = Arc::new(faulty(&data, bad.clone()));
    let inner: Source = tol.clone();
    // An unaligned window over sectors 10..50 plus a bit.
    let start = 10 * SECTOR + 100;
    let slice = Slice::new(Arc::clone(&inner), start, 40 * SECTOR);
    assert_eq!(slice.len(), 40 * SECTOR);
    let got = read_vec(&slice, 0, slice.len() as usize).unwrap();
    assert_bytes(&got, &expected(&data, &bad, start..start + 40 * SECTOR), "slice");
    let want: Vec<Range<u64>> = vec![20 * SECTOR - start..22 * SECTOR - start];
    assert_eq!(slice.unreadable(0..slice.len()), want);
    // The bad sectors outside the window were never read.
    assert_eq!(tol.unreadable(0..len), vec![sectors(20, 2)]);
    // Sub-ranges and clipping at the end of the slice.
    assert_eq!(slice.unreadable(20 * SECTOR - start + 1..u64::MAX), vec![20 * SECTOR - start + 1..22 * SECTOR - start]);
    assert!(slice.unreadable(0..20 * SECTOR - start).is_empty());
    assert!(slice.unreadable(slice.len()..slice.len() + 10).is_empty());
    // A window reaching past the inner source is clamped to it.
    let tail = Slice::new(Arc::clone(&inner), 50 * SECTOR, 1 << 40);
    assert_eq!(tail.len(), 14 * SECTOR);
    check_read(&tail, &data[50 * SECTOR as usize..], &[sectors(10, 1)], 0..14 * SECTOR);
    assert_eq!(tail.unreadable(0..tail.len()), vec![sectors(10, 1)]);
    // A window starting past the end is empty.
    let none = Slice::new(Arc::clone(&inner), len + 5, 10);
    assert_eq!(none.len(), 0);
    assert!(none.unreadable(0..10).is_empty());
    // Slices of slices add their starts.
    let outer = Slice::new(Arc::new(Slice::new(Arc::clone(&inner), SECTOR, 30 * SECTOR)), SECTOR, 28 * SECTOR);
    check_read(&outer, &data[2 * SECTOR as usize..], &[sectors(1, 1), sectors(18, 2)], 0..28 * SECTOR);
    assert_eq!(outer.unreadable(0..outer.len()), vec![sectors(1, 1), sectors(18, 2)]);
}

/// Three devices with their own bad sectors; the bytes of each, and a concat built from them.
struct Fixture {
    devs: Vec<(Vec<u8>, Arc<Faulty>)>,
    concat: Concat,
    /// The concat's expected content, with every unreadable byte zeroed.
    want: Vec<u8>,
    /// The concat's expected unreadable ranges once it has all been read.
    want_bad: Vec<Range<u64>>,
}

fn fixture() -> Fixture {
    let dev_len = 32 * SECTOR;
    let dev_bad = [vec![sectors(5, 1)], vec![sectors(0, 2), sectors(31, 1)], vec![]];
    let devs: Vec<_> = dev_bad
        .iter()
        .enumerate()
        .map(|(i, bad)| {
            let data = pattern(100 + i as u64, dev_len);
            let tol = Arc::new(faulty(&data, bad.clone()));
            (data, tol)
        })
        .collect();
    let src = |i: usize, off: u64| -> Option<(Source, u64)> { Some((devs[i].1.clone() as Source, off)) };
    // concat layout (sectors):
    //   0..8    dev0 sectors 2..10   (bad dev0 sector 5 -> concat 3)
    //   8..12   gap
    //   12..20  missing device
    //   20..27  dev1 sectors 25..32  (bad dev1 sector 31 -> concat 26)
    //   27..35  dev2 sectors 0..8    (clean)
    //   35..40  dev1 sectors 0..5    (bad dev1 sectors 0,1 -> concat 35,36)
    //   40..44  gap to the end
    let pieces = vec![
        // Given out of order on purpose.
        Piece { offset: 27 * SECTOR, len: 8 * SECTOR, src: src(2, 0) },
        Piece { offset: 0, len: 8 * SECTOR, src: src(0, 2 * SECTOR) },
        Piece { offset: 12 * SECTOR, len: 8 * SECTOR, src: None },
        Piece { offset: 20 * SECTOR, len: 7 * SECTOR, src: src(1, 25 * SECTOR) },
        Piece { offset: 35 * SECTOR, len: 5 * SECTOR, src: src(1, 0) },
    ];
    let total = 44 * SECTOR;
    let concat = Concat::new("fixture", pieces, total);
    let mut want = vec![0u8; total as usize];
    let mut put = |at: u64, dev: usize, from: u64, n: u64| {
        let d = &devs[dev].0;
        want[(at * SECTOR) as usize..((at + n) * SECTOR) as usize]
            .copy_from_slice(&d[(from * SECTOR) as usize..((from + n) * SECTOR) as usize]);
    };
    put(0, 0, 2, 8);
    put(20, 1, 25, 7);
    put(27, 2, 0, 8);
    put(35, 1, 0, 5);
    let want_bad = vec![sectors(3, 1), sectors(8, 12), sectors(26, 1), sectors(35, 2), sectors(40, 4)];
    for b in &want_bad {
        want[b.start as usize..b.end as usize].fill(0);
    }
    Fixture { devs, concat, want, want_bad }
}

#[test]
fn concat_translates_reads_and_unreadable() {
    let f = fixture();
    let c = &f.concat;
    assert_eq!(c.len(), 44 * SECTOR);
    assert_eq!(c.sector_size(), 512);
    // Gaps and the missing device are known before any read.
    assert_eq!(c.missing(), vec![sectors(8, 12), sectors(40, 4)]);
    assert_eq!(c.unreadable(0..c.len()), vec![sectors(8, 12), sectors(40, 4)]);
    let got = read_vec(c, 0, c.len() as usize).unwrap();
    assert_bytes(&got, &f.want, "concat");
    assert_eq!(c.unreadable(0..c.len()), f.want_bad);
    assert_eq!(c.unreadable(0..u64::MAX), f.want_bad);
    // Each device recorded only the sectors the concat read from it.
    assert_eq!(f.devs[0].1.unreadable(0..u64::MAX), vec![sectors(5, 1)]);
    assert_eq!(f.devs[1].1.unreadable(0..u64::MAX), vec![sectors(0, 2), sectors(31, 1)]);
    assert!(f.devs[2].1.unreadable(0..u64::MAX).is_empty());
    // Sub-range queries are clipped and translated.
    assert_eq!(c.unreadable(3 * SECTOR + 5..10 * SECTOR), vec![3 * SECTOR + 5..4 * SECTOR, sectors(8, 2)]);
    assert!(c.unreadable(27 * SECTOR..35 * SECTOR).is_empty());
    assert!(c.unreadable(5..5).is_empty());
}

/// Read `c` at odd offsets in requests of `size` bytes, `small` ones (at most a sector) only
/// where they stay inside one sector, and compare with `want`.
fn read_at_odd_offsets(c: &dyn BlockSource, want: &[u8], sizes: &[u64], straddle_small: bool) {
    let len = c.len();
    for &size in sizes {
        let mut off = 0;
        while off + size <= len {
            let straddles = off / SECTOR != (off + size - 1) / SECTOR;
            if size > SECTOR || !straddles || straddle_small {
                let got = read_vec(c, off, size as usize).unwrap();
                let what = format!("{size} at {off}");
                assert_bytes(&got, &want[off as usize..(off + size) as usize], &what);
            }
            off += size.max(97) + 31;
        }
    }
}

#[test]
fn concat_reads_across_piece_boundaries() {
    let f = fixture();
    read_at_odd_offsets(&f.concat, &f.want, &[1, 100, 511, 512, 513, 1500, 4096, 9000], false);
    assert_eq!(f.concat.unreadable(0..f.concat.len()), f.want_bad);
}

#[test]
fn concat_small_reads_straddling_sectors() {
    // Like a 100-byte directory entry read across a sector boundary next to a bad sector.
    let f = fixture();
    read_at_odd_offsets(&f.concat, &f.want, &[100, 511, 512], true);
    assert_eq!(f.concat.unreadable(0..f.concat.len()), f.want_bad);
}

#[test]
fn concat_of_slices_of_concat() {
    // A volume over a two-piece span whose first device is a partition (slice) of a disk.
    let f = fixture();
    let inner: Source = Arc::new(f.concat);
    let part: Source = Arc::new(Slice::new(Arc::clone(&inner), 2 * SECTOR, 30 * SECTOR));
    let outer = Concat::new(
        "outer",
        vec![
            Piece { offset: 0, len: 30 * SECTOR, src: Some((Arc::clone(&part), 0)) },
            Piece { offset: 30 * SECTOR, len: 4 * SECTOR, src: None },
        ],
        34 * SECTOR,
    );
    let got = read_vec(&outer, 0, outer.len() as usize).unwrap();
    let mut want = f.want[2 * SECTOR as usize..32 * SECTOR as usize].to_vec();
    want.extend(vec![0u8; 4 * SECTOR as usize]);
    assert_bytes(&got, &want, "outer");
    // inner bad: 3, 8..20, 26, 35..37, 40..44 -> part (minus 2, within 0..30): 1, 6..18, 24
    assert_eq!(outer.unreadable(0..outer.len()), vec![sectors(1, 1), sectors(6, 12), sectors(24, 1), sectors(30, 4)]);
}

#[test]
fn concat_overlaps_earlier_piece_wins_and_clamps_to_len() {
    let data = pattern(15, 16 * SECTOR);
    let other = pattern(16, 16 * SECTOR);
    let a: Source = Arc::new(faulty(&data, vec![]));
    let b: Source = Arc::new(faulty(&other, vec![]));
    let c = Concat::new(
        "overlap",
        vec![
            Piece { offset: 2 * SECTOR, len: 6 * SECTOR, src: Some((Arc::clone(&b), 0)) },
            Piece { offset: 0, len: 4 * SECTOR, src: Some((Arc::clone(&a), 0)) },
            // Reaches past the end of the concat: clamped.
            Piece { offset: 8 * SECTOR, len: 100 * SECTOR, src: Some((Arc::clone(&a), 8 * SECTOR)) },
            // Starts past the end: dropped.
            Piece { offset: 20 * SECTOR, len: SECTOR, src: None },
        ],
        12 * SECTOR,
    );
    let got = read_vec(&c, 0, c.len() as usize).unwrap();
    let mut want = data[..4 * SECTOR as usize].to_vec();
    // b's piece loses its first 2 sectors to a, so it continues from b's sector 2.
    want.extend_from_slice(&other[2 * SECTOR as usize..6 * SECTOR as usize]);
    want.extend_from_slice(&data[8 * SECTOR as usize..12 * SECTOR as usize]);
    assert_bytes(&got, &want, "overlap");
    assert!(c.missing().is_empty());
    assert!(c.unreadable(0..c.len()).is_empty());
}

#[test]
fn concat_all_missing_and_empty() {
    let c = Concat::new("nothing", vec![], 10 * SECTOR);
    let got = read_vec(&c, 0, c.len() as usize).unwrap();
    assert!(got.iter().all(|&b| b == 0));
    assert_eq!(c.unreadable(0..c.len()), vec![0..10 * SECTOR]);
    assert_eq!(c.missing(), vec![0..10 * SECTOR]);
    let c = Concat::new("empty", vec![], 0);
    assert!(c.is_empty());
    c.read_at(0, &mut []).unwrap();
    assert!(c.unreadable(0..10).is_empty());
}

#[test]
fn concat_piece_with_huge_source_offset_fails_cleanly() {
    let data = pattern(17, 8 * SECTOR);
    let a: Source = Arc::new(faulty(&data, vec![]));
    let c =
        Concat::new("huge", vec![Piece { offset: 0, len: 8 * SECTOR, src: Some((a, u64::MAX - SECTOR)) }], 8 * SECTOR);
    let mut buf = vec![0u8; 4 * SECTOR as usize];
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.read_at(2 * SECTOR, &mut buf)));
    // The piece lies past the end of its device: it is dropped, so its bytes read as zeros
    // and are reported unreadable (never a panic, never bytes from elsewhere).
    assert!(matches!(r, Ok(Ok(()))), "read must not panic or fail, got {r:?}");
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(c.unreadable(2 * SECTOR..6 * SECTOR), vec![2 * SECTOR..6 * SECTOR]);
}

#[test]
fn concat_piece_longer_than_its_device() {
    // A run table that points past the end of a (truncated) device image. Either the read
    // fails as out of range and nothing is claimed, or the part past the device reads as
    // zeros and is reported unreadable; never silently wrong bytes.
    let data = pattern(18, 8 * SECTOR);
    let a: Source = Arc::new(faulty(&data, vec![]));
    let c = Concat::new("short", vec![Piece { offset: 0, len: 16 * SECTOR, src: Some((a, 0)) }], 16 * SECTOR);
    check_read(&c, &data, &[], 0..8 * SECTOR);
    let mut buf = vec![0xAAu8; 16 * SECTOR as usize];
    match c.read_at(0, &mut buf) {
        Err(ReadError::OutOfRange { .. }) => {
            assert!(c.unreadable(0..8 * SECTOR).is_empty());
        }
        Ok(()) => {
            assert_bytes(&buf[..8 * SECTOR as usize], &data, "the part on the device");
            assert!(buf[8 * SECTOR as usize..].iter().all(|&b| b == 0), "past the device reads as zeros");
            assert_eq!(c.unreadable(0..c.len()), vec![8 * SECTOR..16 * SECTOR]);
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[test]
fn image_file_reads_through_tolerant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let len = 3 * MIB + 777;
    let data = pattern(19, len);
    std::fs::write(&path, &data).unwrap();
    let _guard = SourceGuard::new(std::slice::from_ref(&path));

    let raw = ImageFile::open(&path).unwrap();
    assert_eq!(raw.len(), len);
    assert_eq!(RawSource::sector_size(&raw), 512);
    assert_eq!(RawSource::name(&raw), path.display().to_string());
    let tol = Tolerant::new(raw);
    check_read(&tol, &data, &[], 0..len);
    check_read(&tol, &data, &[], len - 1000..len);
    check_read(&tol, &data, &[], 12_345..2 * MIB + 3);
    assert!(tol.unreadable(0..len).is_empty());
    let mut two = [0u8; 2];
    assert!(matches!(tol.read_at(len - 1, &mut two), Err(ReadError::OutOfRange { .. })));

    // open_path chooses the image-file reader for a regular file.
    let src = open_path(&path).unwrap();
    assert_eq!(src.len(), len);
    assert_eq!(src.name(), path.display().to_string());
    check_read(src.as_ref(), &data, &[], MIB - 5..MIB + 5);

    // A bad sector injected over the file behaves as on memory.
    let bad = vec![sectors(4000, 3)];
    let tol = Tolerant::new(FaultySource::new(ImageFile::open(&path).unwrap(), bad.clone()));
    check_read(&tol, &data, &bad, 0..len);
    assert_eq!(tol.unreadable(0..len), bad);

    assert!(ImageFile::open(&dir.path().join("absent.img")).is_err());
}

#[test]
fn image_file_is_opened_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.img");
    std::fs::write(&path, pattern(20, 4096)).unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&path, perm).unwrap();
    let _guard = SourceGuard::new(std::slice::from_ref(&path));
    // Opening needs no write permission (as root this proves less, but never hurts).
    let src = open_path(&path).unwrap();
    check_read(src.as_ref(), &pattern(20, 4096), &[], 0..4096);
}

#[test]
fn sources_are_shareable_across_threads() {
    let len = 4 * MIB;
    let data = Arc::new(pattern(21, len));
    let bad = vec![sectors(1000, 1), sectors(5000, 4)];
    let src: Source = Arc::new(faulty(&data, bad.clone()));
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (src, data, bad) = (Arc::clone(&src), Arc::clone(&data), bad.clone());
            s.spawn(move || {
                for i in 0..8u64 {
                    let off = (t * 8 + i) * (len / 32);
                    check_read(src.as_ref(), &data, &bad, off..off + len / 32);
                }
            });
        }
    });
    assert_eq!(src.unreadable(0..len), bad);
}

/// A sparse image file reports its holes (SEEK_DATA/SEEK_HOLE), so copies skip them unread;
/// a file system without hole reporting answers "all data", which is still correct.
#[test]
fn image_file_reports_its_holes() {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("sparse.img");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all_at(&[7u8; 1 << 20], 8 << 20).unwrap();
    f.write_all_at(&[9u8; 4096], (64 << 20) - 4096).unwrap();
    f.sync_all().unwrap();
    let src = vmfs_rescue::block::open_path(&p).unwrap();
    let d = src.data_ranges(0..64 << 20);
    let total: u64 = d.iter().map(|r| r.end - r.start).sum();
    assert!(d.iter().any(|r| r.start <= 8 << 20 && r.end >= 9 << 20), "{d:?}");
    assert!(d.iter().any(|r| r.end == 64 << 20), "{d:?}");
    if total == 64 << 20 {
        eprintln!("this file system does not report holes");
    } else {
        assert!(total < 16 << 20, "{d:?}");
    }
    // Windows past the data and past the end.
    assert!(src.data_ranges(20 << 20..30 << 20).iter().all(|r| r.start >= 20 << 20 && r.end <= 30 << 20));
    assert!(src.data_ranges(80 << 20..90 << 20).is_empty());
}
