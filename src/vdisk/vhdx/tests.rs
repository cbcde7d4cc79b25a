//! VHDX images built in memory: payload states, differencing sector bitmaps, header and region
//! table fallbacks, hostile sizes, and log replay (applied, ordered, or refused).

use super::*;
use crate::block::{MemSource, Tolerant};
use crate::vdisk::extent::Alloc;
use std::sync::Arc;

const LOG_AT: u64 = MIB;
const META_AT: u64 = 2 * MIB;
const BAT_AT: u64 = 3 * MIB;
const DATA_AT: u64 = 4 * MIB;
const LOG_GUID: Guid = Guid([0x4c; 16]);

fn src(b: Vec<u8>) -> Source {
    Arc::new(Tolerant::new(MemSource::new("t.vhdx", b)))
}

fn put(b: &mut Vec<u8>, at: u64, data: &[u8]) {
    let at = at as usize;
    if b.len() < at + data.len() {
        b.resize(at + data.len(), 0);
    }
    b[at..at + data.len()].copy_from_slice(data);
}

fn header(seq: u64, log: Guid) -> Header {
    Header {
        sequence: seq,
        data_write: Guid([0xd1; 16]),
        log_guid: log,
        version: 1,
        log_length: MIB as u32,
        log_offset: LOG_AT,
        ..Default::default()
    }
}

/// A disk of `blocks` 1 MiB blocks. `bat` holds the payload entries (state, data byte: data
/// blocks go from 4 MiB on, in order); a differencing disk gets a sector bitmap block whose
/// first byte of block 0 is `bitmap0`.
fn image(bat: &[(u64, u8)], differencing: bool, bitmap0: u8) -> Vec<u8> {
    let blocks = bat.len() as u64;
    let mut b = Vec::new();
    put(&mut b, 0, FILE_SIGNATURE);
    put(&mut b, 8, &"test".encode_utf16().flat_map(|u| u.to_le_bytes()).collect::<Vec<u8>>());
    put(&mut b, HEADER_OFFSETS[0], &header(1, Guid::default()).encode());
    put(&mut b, HEADER_OFFSETS[1], &header(2, Guid::default()).encode());
    let rt = RegionTable {
        regions: vec![
            Region { guid: METADATA_REGION, offset: META_AT, length: MIB as u32, required: true },
            Region { guid: BAT_REGION, offset: BAT_AT, length: MIB as u32, required: true },
        ],
        checksum_ok: true,
    };
    put(&mut b, REGION_OFFSETS[0], &rt.encode());
    put(&mut b, REGION_OFFSETS[1], &rt.encode());
    let mut items = Vec::new();
    let mut values: Vec<(Guid, Vec<u8>)> = vec![
        (
            FILE_PARAMETERS,
            [MIB as u32, if differencing { 2 } else { 0 }].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (VIRTUAL_DISK_SIZE, (blocks * MIB).to_le_bytes().to_vec()),
        (LOGICAL_SECTOR_SIZE, 512u32.to_le_bytes().to_vec()),
        (PHYSICAL_SECTOR_SIZE, 4096u32.to_le_bytes().to_vec()),
        (PAGE_83_DATA, vec![0x83; 16]),
    ];
    if differencing {
        let l = ParentLocator {
            kind: VHDX_PARENT_LOCATOR,
            entries: vec![
                ("parent_linkage".into(), "{0A0B0C0D-0E0F-1011-1213-141516171819}".into()),
                ("relative_path".into(), "..\\base\\base.vhdx".into()),
                ("absolute_win32_path".into(), "D:\\VMs\\base\\base.vhdx".into()),
            ],
        };
        values.push((PARENT_LOCATOR, l.encode()));
    }
    let mut at = 64 << 10;
    for (id, v) in values {
        items.push(Item { id, offset: at, length: v.len() as u32, user: false, required: true });
        put(&mut b, META_AT + u64::from(at), &v);
        at += 4096;
    }
    put(&mut b, META_AT, &MetadataTable { items }.encode());
    let mut data = DATA_AT;
    let entry = |i: u64, e: u64, b: &mut Vec<u8>| put(b, BAT_AT + 8 * i, &e.to_le_bytes());
    for (i, &(st, byte)) in bat.iter().enumerate() {
        let i = i as u64;
        let off = if st == state::FULLY_PRESENT || st == state::PARTIALLY_PRESENT {
            put(&mut b, data, &vec![byte; MIB as usize]);
            data += MIB;
            data - MIB
        } else {
            0
        };
        entry(i + i / 4096, encode_bat_entry(st, off), &mut b);
    }
    if differencing {
        put(&mut b, data, &vec![0u8; MIB as usize]);
        put(&mut b, data, &[bitmap0]);
        entry(4096, encode_bat_entry(state::BITMAP_PRESENT, data), &mut b);
        data += MIB;
    }
    b.resize(data.max(DATA_AT) as usize, 0);
    b
}

fn read(img: &Image, off: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (r, a) in img.reader.map(off..off + len as u64).unwrap() {
        if a == Alloc::Data {
            img.reader.read_data(r.start, &mut out[(r.start - off) as usize..(r.end - off) as usize]).unwrap();
        }
    }
    out
}

const M: u64 = MIB;

#[test]
fn dynamic_payload_states() {
    let b = image(
        &[(state::FULLY_PRESENT, 0x11), (state::NOT_PRESENT, 0), (state::ZERO, 0), (state::UNMAPPED, 0)],
        false,
        0,
    );
    let img = open("t.vhdx", src(b)).unwrap();
    assert_eq!(img.capacity, 4 * M);
    assert!(img.variant.starts_with("dynamic, 1 MiB blocks, sectors 512/4096"), "{}", img.variant);
    assert_eq!(img.id.as_deref(), Some("d1d1d1d1-d1d1-d1d1-d1d1-d1d1d1d1d1d1"));
    assert!(img.parent.is_none());
    assert_eq!(
        img.reader.map(0..4 * M).unwrap(),
        vec![(0..M, Alloc::Data), (M..2 * M, Alloc::Unallocated), (2 * M..4 * M, Alloc::Zero)]
    );
    assert!(read(&img, 0, 4096).iter().all(|&x| x == 0x11));
    assert!(img.reader.problems().is_empty(), "{:?}", img.reader.problems());
}

#[test]
fn differencing_bitmap_and_parent_locator() {
    let b = image(&[(state::PARTIALLY_PRESENT, 0x22), (state::FULLY_PRESENT, 0x33)], true, 0b0000_0110);
    let img = open("/vm/child.avhdx", src(b)).unwrap();
    assert!(img.variant.starts_with("differencing"));
    let p = img.parent.clone().unwrap();
    assert_eq!(p.hints, vec!["../base/base.vhdx".to_string(), "D:/VMs/base/base.vhdx".to_string()]);
    assert_eq!(p.id.as_deref(), Some("0a0b0c0d-0e0f-1011-1213-141516171819"));
    // Sectors 1 and 2 of block 0 are here (bit order: least significant first).
    assert_eq!(
        img.reader.map(0..2 * M).unwrap(),
        vec![
            (0..512, Alloc::Unallocated),
            (512..1536, Alloc::Data),
            (1536..M, Alloc::Unallocated),
            (M..2 * M, Alloc::Data)
        ]
    );
    assert!(read(&img, 512, 1024).iter().all(|&x| x == 0x22));
}

#[test]
fn blocks_past_eof_or_in_the_headers_are_unreadable() {
    let mut b = image(&[(state::FULLY_PRESENT, 1), (state::FULLY_PRESENT, 2)], false, 0);
    b.truncate((DATA_AT + M + M / 2) as usize);
    put(&mut b, BAT_AT, &encode_bat_entry(state::FULLY_PRESENT, 0).to_le_bytes());
    let img = open("t.vhdx", src(b)).unwrap();
    assert_eq!(
        img.reader.map(0..2 * M).unwrap(),
        vec![(0..M, Alloc::Unreadable), (M..M + M / 2, Alloc::Data), (M + M / 2..2 * M, Alloc::Unreadable)]
    );
    let p = img.reader.problems();
    assert!(p.iter().any(|x| x.starts_with("1 BAT entries are unusable")), "{p:?}");
    assert!(p.iter().any(|x| x.starts_with("1 blocks reach past the end")), "{p:?}");
}

#[test]
fn header_and_region_table_fallbacks() {
    let good = image(&[(state::FULLY_PRESENT, 1)], false, 0);
    // The newer header (sequence 2) is damaged: the older one is used, and said so.
    let mut b = good.clone();
    b[HEADER_OFFSETS[1] as usize + 0x100] ^= 1;
    let img = open("t.vhdx", src(b.clone())).unwrap();
    assert!(img.reader.problems().iter().any(|p| p.contains("header at 0x20000 fails its checksum")));
    b[HEADER_OFFSETS[0] as usize + 0x100] ^= 1;
    let e = open("t.vhdx", src(b)).err().unwrap();
    assert!(matches!(e, VdiskError::Corrupt { structure: "VHDX header", offset: 0x10000, .. }), "{e}");
    // The first region table is damaged: the copy is used.
    let mut b = good.clone();
    b[REGION_OFFSETS[0] as usize + 0x1000] ^= 1;
    let img = open("t.vhdx", src(b.clone())).unwrap();
    assert!(img.reader.problems().iter().any(|p| p.contains("used the copy at 0x40000")));
    b[REGION_OFFSETS[1] as usize] = b'R';
    let e = open("t.vhdx", src(b)).err().unwrap();
    assert!(matches!(e, VdiskError::Corrupt { structure: "VHDX region table", offset: 0x30004, .. }), "{e}");
}

#[test]
fn hostile_sizes_are_refused() {
    let good = image(&[(state::FULLY_PRESENT, 1)], false, 0);
    // A virtual size whose BAT would not fit the region.
    let mut b = good.clone();
    put(&mut b, META_AT + (64 << 10) + 4096, &(60u64 << 40).to_le_bytes());
    let e = open("t.vhdx", src(b)).err().unwrap();
    assert!(e.to_string().contains("BAT region"), "{e}");
    // A block size that is not a power of two.
    let mut b = good.clone();
    put(&mut b, META_AT + (64 << 10), &3_000_000u32.to_le_bytes());
    let e = open("t.vhdx", src(b)).err().unwrap();
    assert!(matches!(e, VdiskError::Corrupt { structure: "VHDX metadata table", .. }), "{e}");
    // An unknown required region.
    let mut b = good;
    let mut rt = RegionTable::parse(&b[REGION_OFFSETS[0] as usize..][..TABLE_SIZE]).unwrap();
    rt.regions.push(Region { guid: Guid([9; 16]), offset: 5 * M, length: M as u32, required: true });
    put(&mut b, REGION_OFFSETS[0], &rt.encode());
    assert!(matches!(open("t.vhdx", src(b)).err().unwrap(), VdiskError::Unsupported { .. }));
    // Too short for anything.
    assert!(open("t.vhdx", src(b"vhdxfile".to_vec())).is_err());
}

/// One log entry at log sector `pos`: `ops` are (file offset, Some(sector byte) = data, None =
/// zero 4 KiB).
fn log_entry(seq: u64, tail: u32, ops: &[(u64, Option<u8>)], flushed: u64) -> Vec<u8> {
    let datas = ops.iter().filter(|(_, d)| d.is_some()).count();
    let mut h = LogEntryHeader {
        checksum: 0,
        entry_length: 0,
        tail,
        sequence: seq,
        descriptors: ops.len() as u32,
        log_guid: LOG_GUID,
        flushed_file_offset: flushed,
        last_file_offset: flushed,
    };
    let ds = h.descriptor_sectors() as usize;
    h.entry_length = ((ds + datas) * LOG_SECTOR) as u32;
    let mut e = vec![0u8; h.entry_length as usize];
    let mut k = ds;
    for (i, &(offset, d)) in ops.iter().enumerate() {
        let desc = match d {
            None => Descriptor::Zero { length: 4096, offset, sequence: seq },
            Some(v) => {
                let s = &mut e[k * LOG_SECTOR..(k + 1) * LOG_SECTOR];
                s.fill(v);
                s[..4].copy_from_slice(b"data");
                s[4..8].copy_from_slice(&((seq >> 32) as u32).to_le_bytes());
                s[LOG_SECTOR - 4..].copy_from_slice(&(seq as u32).to_le_bytes());
                k += 1;
                Descriptor::Data { trailing: [v; 4], leading: [v; 8], offset, sequence: seq }
            }
        };
        e[64 + 32 * i..96 + 32 * i].copy_from_slice(&desc.encode());
    }
    e[..64].copy_from_slice(&h.encode());
    let c = crc32c::update(0, &e);
    e[4..8].copy_from_slice(&c.to_le_bytes());
    e
}

/// `image` with a dirty log: headers name `LOG_GUID`, `entries` laid out from log sector 0.
fn dirty(bat: &[(u64, u8)], entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = image(bat, false, 0);
    put(&mut b, HEADER_OFFSETS[1], &header(2, LOG_GUID).encode());
    let mut at = LOG_AT;
    for e in entries {
        put(&mut b, at, e);
        at += e.len() as u64;
    }
    b
}

/// The BAT's first 4 KiB with entry 0 set to `e`.
fn bat_sector(b: &[u8], e: u64) -> Vec<u8> {
    let mut s = b[BAT_AT as usize..BAT_AT as usize + 4096].to_vec();
    s[..8].copy_from_slice(&e.to_le_bytes());
    s
}

#[test]
fn log_replay_rewrites_the_bat_in_memory() {
    // The file's BAT says "not present"; the log's copy of that BAT sector says "present at 4 MiB".
    let base = image(&[(state::FULLY_PRESENT, 0x5a)], false, 0);
    let mut b = base.clone();
    put(&mut b, BAT_AT, &encode_bat_entry(state::NOT_PRESENT, 0).to_le_bytes());
    let sector = bat_sector(&base, encode_bat_entry(state::FULLY_PRESENT, DATA_AT));
    // A data descriptor carries the sector's first 8 and last 4 bytes itself: build the entry
    // from the real sector so those fields come out right.
    let mut e = log_entry(7, 0, &[(BAT_AT, Some(0))], b.len() as u64);
    let ds = LOG_SECTOR;
    e[ds + 8..ds + LOG_SECTOR - 4].copy_from_slice(&sector[8..LOG_SECTOR - 4]);
    let mut d = Descriptor::parse(&e[64..96]).unwrap();
    if let Descriptor::Data { trailing, leading, .. } = &mut d {
        leading.copy_from_slice(&sector[..8]);
        trailing.copy_from_slice(&sector[LOG_SECTOR - 4..]);
    }
    e[64..96].copy_from_slice(&d.encode());
    e[4..8].fill(0);
    let c = crc32c::update(0, &e);
    e[4..8].copy_from_slice(&c.to_le_bytes());
    let mut f = b;
    put(&mut f, HEADER_OFFSETS[1], &header(2, LOG_GUID).encode());
    put(&mut f, LOG_AT, &e);
    let img = open("t.vhdx", src(f)).unwrap();
    assert_eq!(img.reader.map(0..M).unwrap(), vec![(0..M, Alloc::Data)]);
    assert!(read(&img, 0, 4096).iter().all(|&x| x == 0x5a));
    let p = img.reader.problems();
    assert!(p.iter().any(|x| x.contains("replayed in memory") && x.contains("1 entries, sequence 7..=7")), "{p:?}");
}

#[test]
fn log_sequence_applies_in_order_from_the_tail() {
    // Entry 8 (head) zeroes the sector entry 7 wrote; entry 6 lies before the tail: not replayed.
    let target = DATA_AT + 8192;
    let e6 = log_entry(6, 0, &[(DATA_AT, Some(0x66))], 5 * M);
    let e7 = log_entry(7, 4096 * 2, &[(target, Some(0x77)), (target + 4096, Some(0x78))], 5 * M);
    let e8 = log_entry(8, 4096 * 2, &[(target, None)], 5 * M);
    assert_eq!(e6.len(), 8192);
    let b = dirty(&[(state::FULLY_PRESENT, 0x11)], &[e6, e7, e8]);
    let img = open("t.vhdx", src(b)).unwrap();
    let r = read(&img, 0, 16384);
    assert!(r[..8192].iter().all(|&x| x == 0x11), "entry 6 was before the tail");
    assert!(r[8192..12288].iter().all(|&x| x == 0), "entry 8 zeroed what entry 7 wrote");
    assert!(r[12288..].iter().all(|&x| x == 0x78));
    assert!(img.reader.problems().iter().any(|x| x.contains("2 entries, sequence 7..=8, 3 writes")));
}

#[test]
fn doubtful_logs_are_refused() {
    let bat = [(state::FULLY_PRESENT, 1)];
    let len = image(&bat, false, 0).len() as u64;
    let refused = |b: Vec<u8>| match open("t.vhdx", src(b)) {
        Err(VdiskError::Corrupt { structure: "VHDX log entry", what, .. }) => what,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened"),
    };
    // The only entry fails its checksum.
    let mut e = log_entry(3, 0, &[(DATA_AT, Some(9))], len);
    e[5000] ^= 1;
    assert!(refused(dirty(&bat, &[e])).contains("checksum"));
    // Written when the file was longer than it is now.
    let e = log_entry(3, 0, &[(DATA_AT, Some(9))], len + M);
    assert!(refused(dirty(&bat, &[e])).contains("truncated copy"));
    // A write into the headers.
    let e = log_entry(3, 0, &[(HEADER_OFFSETS[0], Some(9))], len);
    assert!(refused(dirty(&bat, &[e])).contains("overlaps the headers or the log"));
    // A head whose tail points outside its sequence.
    let e = log_entry(3, 4096 * 9, &[(DATA_AT, Some(9))], len);
    assert!(refused(dirty(&bat, &[e])).contains("no sequence whose head's tail"));
    // A log GUID with no entry at all: nothing was logged, the file is read as it is.
    let img = open("t.vhdx", src(dirty(&bat, &[]))).unwrap();
    assert!(img.reader.problems().iter().any(|x| x.contains("holds no entry of it")));
}
