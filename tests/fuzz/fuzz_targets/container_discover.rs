//! Partition tables, the lost-table probe and VMware LVM on arbitrary disks: `discover` over one
//! or two fuzzed devices, then reads of every volume found. Nothing may panic, hang, or
//! allocate from an unchecked count.
//!
//! Each device is 4 GiB of zeros with the input laid over it in pieces (selector, length,
//! bytes); selectors pick the places the parsers look: the MBR and GPT sectors, the LVM header
//! and its tables at 1 MiB (and at odd partition starts), the backup GPT at the end, or
//! anywhere at 4 KiB granularity.
// fuzz-smoke: -max_len=65536
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use vmfs_rescue::block::{Source, SparseMem};

const SIZE: u64 = 4 << 30;

const SPOTS: [u64; 14] = [
    0,
    0x200,
    0x400,
    0x10_0000,
    0x10_0200,
    0x10_1000,
    0x17_e200,
    0x18_0200,
    0x18_0600,
    0x18_1000,
    0x18_2000,
    0x7E00 + 0x10_0000, // partition at LBA 63
    0x110_0000 + 0x20_0000,
    SIZE - 0x4200,
];

fn device(data: &mut &[u8]) -> Source {
    let mut pieces = Vec::new();
    while data.len() >= 4 && pieces.len() < 32 {
        let sel = u16::from_le_bytes([data[0], data[1]]);
        if sel == 0xFFFF {
            *data = &data[2..];
            break;
        }
        let len = usize::from(u16::from_le_bytes([data[2], data[3]])).min(data.len() - 4);
        let at = if usize::from(sel) < SPOTS.len() * 8 {
            SPOTS[usize::from(sel) / 8] + u64::from(sel % 8) * 0x200
        } else {
            u64::from(sel) * 4096
        };
        let mut bytes = data[4..4 + len].to_vec();
        bytes.truncate((SIZE - at.min(SIZE)) as usize);
        pieces.push((at.min(SIZE), bytes));
        *data = &data[4 + len..];
    }
    Arc::new(SparseMem { name: "fuzz-disk".into(), len: SIZE, regions: pieces.into_iter().collect() })
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let a = device(&mut rest);
    let b = device(&mut rest);
    let found = vmfs_rescue::container::discover(&[a, b]);
    for v in found.volumes.iter().take(8) {
        let len = v.source.len();
        let mut buf = vec![0u8; 4096];
        for off in [0, len / 2, len.saturating_sub(4096)] {
            let n = (len - off.min(len)).min(4096) as usize;
            let _ = v.source.read_at(off, &mut buf[..n]);
            let _ = v.source.unreadable(off..off + n as u64);
        }
    }
});
