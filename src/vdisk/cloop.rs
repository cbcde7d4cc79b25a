//! cloop compressed images, version 2.0 (Knoppix-era compressed CD images).
//!
//! Layout: a 128-byte shell-script preamble ("#!/bin/sh", "#V2.0 Format", a modprobe line),
//! then big-endian: the block size (u32, bytes of disk per block), the number of blocks (u32),
//! and `blocks + 1` u64 file offsets; block i is the zlib stream between offsets i and i + 1
//! and inflates to exactly one block.

use super::chunks::{Chunk, ChunkExtent, MAX_COMPRESSED, MAX_INFLATED, Piece};
use super::error::{Result, VdiskError};
use super::grains::read_meta;
use super::image::{Format, Image, size_words};
use crate::block::Source;

/// Bytes of preamble before the header.
pub const PREAMBLE: usize = 128;
/// The preamble line that names this version.
pub const V2_TAG: &[u8] = b"#V2.0 Format";
/// First offset-table entry.
const TABLE: u64 = PREAMBLE as u64 + 8;

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}

/// The header: (block size, number of blocks), checked. Pure: no I/O.
pub fn parse_header(file: &str, b: &[u8]) -> Result<(u32, u32)> {
    let bad = |off: u64, what: String| Err(VdiskError::corrupt(file, "cloop header", off, what));
    if b.len() < PREAMBLE + 8 {
        return bad(0, format!("{} bytes, the header needs {}", b.len(), PREAMBLE + 8));
    }
    let pre = &b[..PREAMBLE];
    if !pre.windows(V2_TAG.len()).any(|w| w == V2_TAG) {
        if let Some(v) = pre.windows(3).position(|w| w == b"#V3" || w == b"#V4") {
            return Err(VdiskError::Unsupported {
                file: file.into(),
                what: format!("cloop {}", String::from_utf8_lossy(&pre[v + 1..(v + 5).min(PREAMBLE)])),
            });
        }
        return bad(0, "no \"#V2.0 Format\" line in the preamble".into());
    }
    let block = be32(b, PREAMBLE);
    if block == 0 || !block.is_multiple_of(512) || u64::from(block) > MAX_INFLATED {
        return bad(PREAMBLE as u64, format!("block size {block} (a multiple of 512, at most {MAX_INFLATED})"));
    }
    Ok((block, be32(b, PREAMBLE + 4)))
}

/// Open a cloop image.
pub fn open(name: &str, src: Source) -> Result<Image> {
    let mut b = vec![0u8; PREAMBLE + 8];
    if src.len() < b.len() as u64 {
        return Err(VdiskError::corrupt(name, "cloop header", 0, format!("file is {} bytes", src.len())));
    }
    src.read_at(0, &mut b)?;
    let (block, blocks) = parse_header(name, &b)?;
    let table_end = TABLE + (u64::from(blocks) + 1) * 8;
    if table_end > src.len() {
        return Err(VdiskError::corrupt(
            name,
            "cloop offsets",
            TABLE,
            format!("{blocks} blocks: the table ends at {table_end:#x}, past the end of the file ({:#x})", src.len()),
        ));
    }
    let t = read_meta(&src, TABLE, (table_end - TABLE) as usize)
        .ok_or_else(|| VdiskError::corrupt(name, "cloop offsets", TABLE, "unreadable sectors"))?;
    let bs = u64::from(block);
    let mut pieces = Vec::new();
    let mut damaged = Vec::new();
    for i in 0..blocks as usize {
        let (lo, hi) = (be64(&t, i * 8), be64(&t, i * 8 + 8));
        let ok = lo >= table_end && hi > lo && hi <= src.len() && hi - lo <= MAX_COMPRESSED;
        if !ok {
            damaged.push((i, lo, hi));
        }
        let kind = if ok { Chunk::Zlib { at: lo, size: hi - lo } } else { Chunk::Bad };
        pieces.push(Piece { start: i as u64 * bs, len: bs, kind });
    }
    let mut problems = Vec::new();
    if let Some(&(i, lo, hi)) = damaged.first() {
        problems.push(format!(
            "cloop: {} blocks have damaged offsets (first: block {i}, {lo:#x}..{hi:#x}); they read as zeros",
            damaged.len()
        ));
    }
    let capacity = u64::from(blocks) * bs;
    Ok(Image {
        format: Format::Cloop,
        variant: format!("V2.0, {} blocks", size_words(u64::from(block))),
        capacity,
        reader: Box::new(ChunkExtent::new(name, src, capacity, pieces, problems)),
        id: None,
        parent: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use crate::vdisk::chunks::zlib;
    use crate::vdisk::extent::Alloc;
    use std::sync::Arc;

    /// An image of 512-byte blocks filled with 1, 2, ...; `damage` edits the bytes.
    fn image(blocks: u32, damage: impl Fn(&mut Vec<u8>)) -> Result<Image> {
        let mut b = b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n".to_vec();
        b.resize(PREAMBLE, 0);
        b.extend_from_slice(&512u32.to_be_bytes());
        b.extend_from_slice(&blocks.to_be_bytes());
        let data: Vec<Vec<u8>> = (0..blocks).map(|i| zlib(&[i as u8 + 1; 512])).collect();
        let mut at = TABLE + (u64::from(blocks) + 1) * 8;
        for d in &data {
            b.extend_from_slice(&at.to_be_bytes());
            at += d.len() as u64;
        }
        b.extend_from_slice(&at.to_be_bytes());
        for d in &data {
            b.extend_from_slice(d);
        }
        damage(&mut b);
        open("c", Arc::new(Tolerant::new(MemSource::new("c", b))))
    }

    fn kind(e: VdiskError) -> String {
        e.kind()
    }

    #[test]
    fn reads_blocks() {
        let img = image(3, |_| {}).unwrap();
        assert_eq!(img.capacity, 1536);
        let mut x = vec![0u8; 1536];
        img.reader.read_data(0, &mut x).unwrap();
        assert!(x[..512].iter().all(|&v| v == 1) && x[1024..].iter().all(|&v| v == 3));
        assert!(img.reader.problems().is_empty());
    }

    #[test]
    fn broken_headers_are_named() {
        let e = |f: &dyn Fn(&mut Vec<u8>)| kind(image(3, f).err().unwrap());
        assert_eq!(e(&|b| b[12] = b'3'), "unsupported");
        assert_eq!(e(&|b| b[14] = b'x'), "cloop header@0x0");
        assert_eq!(e(&|b| b[128..132].copy_from_slice(&1000u32.to_be_bytes())), "cloop header@0x80");
        assert_eq!(e(&|b| b[128..132].copy_from_slice(&0u32.to_be_bytes())), "cloop header@0x80");
        assert_eq!(e(&|b| b[132..136].copy_from_slice(&u32::MAX.to_be_bytes())), "cloop offsets@0x88");
        assert_eq!(e(&|b| b.truncate(130)), "cloop header@0x0");
    }

    #[test]
    fn damaged_offsets_and_streams_read_as_zeros() {
        // Block 1's end offset points backwards; block 2's stream is garbled.
        let img = image(3, |b| {
            b[144..152].copy_from_slice(&5u64.to_be_bytes());
            let at = u64::from_be_bytes(b[152..160].try_into().unwrap()) as usize;
            b[at + 2..at + 6].fill(0x55);
        })
        .unwrap();
        assert!(img.reader.problems()[0].contains("block 0"), "{:?}", img.reader.problems());
        let mut x = vec![0xffu8; 1536];
        img.reader.read_data(0, &mut x).unwrap();
        assert!(x.iter().all(|&v| v == 0));
        assert_eq!(img.reader.unreadable(0..1536), vec![1024..1536]);
        assert_eq!(img.reader.map(0..1536).unwrap(), vec![(0..1536, Alloc::Unreadable)]);
    }
}
