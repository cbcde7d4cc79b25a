//! Apple disk images (UDIF, `.dmg`): read-only, compressed in chunks.
//!
//! The file ends with a 512-byte big-endian "koly" trailer giving the data fork, the XML
//! property list and the sector count. The plist's `resource-fork` / `blkx` array holds one
//! base64 `<data>` per partition: a "mish" block table (first sector, data offset) with
//! 40-byte chunk entries (type, sector, sector count, offset and length in the data fork).
//! Chunk types: 0x00000000 zero fill, 0x00000001 raw, 0x00000002 ignored (zeros),
//! 0x80000005 zlib, 0x7ffffffe comment, 0xffffffff end; ADC (0x80000004), bzip2 (0x80000006),
//! LZFSE (0x80000007) and LZMA (0x80000008) are recognised but not decompressed: their
//! sectors read as zeros and are reported, with the compression named.
//!
//! Not read: images whose block map is only in a binary resource fork (no XML plist, very old
//! images), encrypted images, and the other segments of a segmented image.

use super::chunks::{Chunk, ChunkExtent, MAX_COMPRESSED, MAX_INFLATED, Piece};
use super::error::{Result, VdiskError};
use super::grains::read_meta;
use super::image::{Format, Image};
use crate::block::Source;
use base64::Engine;
use std::collections::BTreeMap;

/// Trailer magic at the start of the last 512 bytes.
pub const KOLY: &[u8; 4] = b"koly";
/// Trailer size.
pub const TRAILER: usize = 512;
/// Largest XML plist read (qemu's limit; a big image's plist is about 1 MiB).
pub const MAX_XML: u64 = 16 << 20;
/// Largest disk accepted, in sectors (1 PiB).
pub const MAX_SECTORS: u64 = 1 << 41;
/// "mish" at the start of a block table.
const MISH: &[u8; 4] = b"mish";
/// Offset of the first chunk entry in a block table, and its size.
const CHUNK0: usize = 0xcc;
const CHUNK_BYTES: usize = 40;

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}

/// The trailer fields this reader uses, validated against the trailer's position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Koly {
    /// 0x18 `DataForkOffset`: chunk offsets count from here.
    pub data_fork: u64,
    /// 0x30 `RsrcForkLength`.
    pub rsrc_len: u64,
    /// 0x38 `SegmentNumber`, 0x3c `SegmentCount`.
    pub segment: (u32, u32),
    /// 0xd8 `XMLOffset`, 0xe0 `XMLLength`.
    pub xml: (u64, u64),
    /// 0x1ec `SectorCount`: the virtual size in sectors.
    pub sectors: u64,
}

impl Koly {
    /// Parse the trailer `b`, found at byte `at` of `file`. Pure: no I/O.
    pub fn parse(file: &str, b: &[u8], at: u64) -> Result<Self> {
        let bad = |off: u64, what: String| Err(VdiskError::corrupt(file, "UDIF trailer (koly)", at + off, what));
        if b.len() < TRAILER || &b[..4] != KOLY {
            return bad(0, "no \"koly\" magic".into());
        }
        let version = be32(b, 4);
        if version != 4 {
            return Err(VdiskError::Unsupported { file: file.into(), what: format!("UDIF version {version}") });
        }
        let data_fork = be64(b, 0x18);
        if data_fork > at {
            return bad(0x18, format!("data fork at {data_fork:#x}, after the trailer"));
        }
        let (xml_off, xml_len) = (be64(b, 0xd8), be64(b, 0xe0));
        if xml_off.checked_add(xml_len).is_none_or(|e| e > at) {
            return bad(0xd8, format!("XML plist {xml_off:#x} + {xml_len} reaches past the trailer"));
        }
        if xml_len > MAX_XML {
            return bad(0xe0, format!("XML plist of {xml_len} bytes (at most {MAX_XML})"));
        }
        let sectors = be64(b, 0x1ec);
        if sectors > MAX_SECTORS {
            return bad(0x1ec, format!("{sectors} sectors (at most {MAX_SECTORS})"));
        }
        Ok(Self {
            data_fork,
            rsrc_len: be64(b, 0x30),
            segment: (be32(b, 0x38), be32(b, 0x3c)),
            xml: (xml_off, xml_len),
            sectors,
        })
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The base64 payloads of the `<data>` elements of the plist's `blkx` array, decoded.
/// A bounded scan, not an XML parser: the array runs from `<key>blkx</key>` to the first
/// `</array>` after it (its dictionaries hold no arrays).
pub fn blkx_tables(xml: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    let key = find(xml, b"<key>blkx</key>", 0).ok_or("no <key>blkx</key> in the plist")?;
    let start = find(xml, b"<array>", key).ok_or("no <array> after <key>blkx</key>")?;
    let end = find(xml, b"</array>", start).ok_or("the blkx <array> is not closed")?;
    let body = &xml[start..end];
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(d) = find(body, b"<data>", pos) {
        let e = find(body, b"</data>", d).ok_or("a <data> element is not closed")?;
        let text: Vec<u8> = body[d + 6..e].iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|err| format!("blkx entry {}: base64: {err}", out.len()))?;
        out.push(bytes);
        pos = e;
    }
    Ok(out)
}

/// One chunk entry of a block table, in absolute terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: u32,
    /// First virtual sector.
    pub sector: u64,
    pub count: u64,
    /// Byte offset in the file (data fork + table data offset + entry offset).
    pub at: u64,
    pub len: u64,
}

/// The chunk entries of one "mish" block table. Pure: no I/O.
pub fn parse_mish(b: &[u8], data_fork: u64) -> std::result::Result<Vec<Entry>, String> {
    if b.len() < CHUNK0 || &b[..4] != MISH {
        return Err(format!("not a \"mish\" block table ({} bytes)", b.len()));
    }
    let first = be64(b, 8);
    let base = data_fork.checked_add(be64(b, 0x18)).ok_or("data offset overflows")?;
    let stated = be32(b, 0xc8) as usize;
    let room = (b.len() - CHUNK0) / CHUNK_BYTES;
    let mut out = Vec::with_capacity(stated.min(room));
    for i in 0..stated.min(room) {
        let e = CHUNK0 + i * CHUNK_BYTES;
        let sector = first.checked_add(be64(b, e + 8)).ok_or_else(|| format!("chunk {i}: sector overflows"))?;
        let at = base.checked_add(be64(b, e + 0x18)).ok_or_else(|| format!("chunk {i}: offset overflows"))?;
        out.push(Entry { kind: be32(b, e), sector, count: be64(b, e + 0x10), at, len: be64(b, e + 0x20) });
    }
    Ok(out)
}

/// The compression a chunk type names, for the ones not decompressed here.
fn unsupported_codec(kind: u32) -> Option<&'static str> {
    Some(match kind {
        0x8000_0004 => "ADC",
        0x8000_0006 => "bzip2",
        0x8000_0007 => "LZFSE",
        0x8000_0008 => "LZMA",
        _ => return None,
    })
}

/// Turn entries into pieces; what cannot be read is counted in `skipped` by reason.
fn pieces(entries: &[Entry], capacity: u64, skipped: &mut BTreeMap<String, (u64, u64)>) -> Vec<Piece> {
    let mut out = Vec::new();
    for e in entries {
        let mut note = |why: String| {
            let s = skipped.entry(why).or_default();
            s.0 += 1;
            s.1 = s.1.saturating_add(e.count.saturating_mul(512));
        };
        let (Some(start), Some(len)) = (e.sector.checked_mul(512), e.count.checked_mul(512)) else {
            note("chunks with an absurd sector range".into());
            continue;
        };
        if start >= capacity || len == 0 {
            continue;
        }
        let kind = match e.kind {
            0x0000_0000 | 0x0000_0002 => Chunk::Zero,
            0x0000_0001 if e.len >= len => Chunk::Raw { at: e.at },
            0x0000_0001 => {
                note("raw chunks shorter than their sectors".into());
                Chunk::Bad
            }
            0x8000_0005 if len <= MAX_INFLATED && e.len <= MAX_COMPRESSED => Chunk::Zlib { at: e.at, size: e.len },
            0x8000_0005 => {
                note(format!("zlib chunks larger than {MAX_INFLATED} bytes"));
                Chunk::Bad
            }
            0x7fff_fffe | 0xffff_ffff => continue,
            k => {
                match unsupported_codec(k) {
                    Some(c) => note(format!("{c}-compressed chunks, which this reader does not decompress")),
                    None => note(format!("chunks of unknown type {k:#010x}")),
                }
                Chunk::Bad
            }
        };
        out.push(Piece { start, len: len.min(capacity - start), kind });
    }
    out
}

/// Open a DMG image.
pub fn open(name: &str, src: Source) -> Result<Image> {
    let flen = src.len();
    if flen < TRAILER as u64 {
        return Err(VdiskError::corrupt(name, "UDIF trailer (koly)", 0, format!("file is {flen} bytes")));
    }
    let at = flen - TRAILER as u64;
    let mut t = vec![0u8; TRAILER];
    src.read_at(at, &mut t)?;
    let k = Koly::parse(name, &t, at)?;
    let (xml_off, xml_len) = k.xml;
    if xml_len == 0 {
        return Err(if k.rsrc_len != 0 {
            VdiskError::Unsupported {
                file: name.into(),
                what: "DMG whose block map is only in a binary resource fork".into(),
            }
        } else {
            VdiskError::corrupt(name, "UDIF trailer (koly)", at + 0xe0, "no XML plist: no block map")
        });
    }
    let xml = read_meta(&src, xml_off, xml_len as usize)
        .ok_or_else(|| VdiskError::corrupt(name, "DMG XML plist", xml_off, "unreadable sectors"))?;
    let tables = blkx_tables(&xml).map_err(|e| VdiskError::corrupt(name, "DMG XML plist", xml_off, e))?;
    let capacity = k.sectors * 512;
    let mut problems = Vec::new();
    let mut skipped = BTreeMap::new();
    let mut all = Vec::new();
    for (i, b) in tables.iter().enumerate() {
        match parse_mish(b, k.data_fork) {
            Ok(entries) => all.extend(pieces(&entries, capacity, &mut skipped)),
            Err(e) => problems.push(format!("DMG: blkx entry {i}: {e}; its sectors read as zeros")),
        }
    }
    for (why, (n, bytes)) in &skipped {
        problems.push(format!("DMG: {n} {why} ({bytes} bytes); they read as zeros"));
    }
    all.sort_by_key(|p| p.start);
    let mut covered = 0u64;
    let mut end = 0u64;
    let mut overlaps = 0usize;
    for p in &all {
        if p.start < end {
            overlaps += 1;
            continue;
        }
        covered += p.len;
        end = p.start + p.len;
    }
    if overlaps > 0 {
        problems.push(format!("DMG: {overlaps} chunks overlap an earlier one and are ignored"));
    }
    if covered < capacity {
        problems.push(format!("DMG: {} bytes are described by no chunk; they read as zeros", capacity - covered));
    }
    if k.segment.1 > 1 {
        problems.push(format!(
            "DMG: segment {} of {}: data kept in the other segment files is not read",
            k.segment.0, k.segment.1
        ));
    }
    let mut kinds: Vec<&str> = all
        .iter()
        .map(|p| match p.kind {
            Chunk::Zero => "zeros",
            Chunk::Raw { .. } => "raw",
            Chunk::Zlib { .. } => "zlib",
            Chunk::Bad => "unreadable",
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let variant = format!("UDIF, {} chunks ({})", all.len(), kinds.join(", "));
    Ok(Image {
        format: Format::Dmg,
        variant,
        capacity,
        reader: Box::new(ChunkExtent::new(name, src, capacity, all, problems)),
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

    /// A block table at sector `first` with entries (type, sector, count, offset, length).
    fn mish(first: u64, entries: &[(u32, u64, u64, u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; CHUNK0];
        b[..4].copy_from_slice(MISH);
        b[4..8].copy_from_slice(&1u32.to_be_bytes());
        b[8..16].copy_from_slice(&first.to_be_bytes());
        b[0xc8..0xcc].copy_from_slice(&(entries.len() as u32).to_be_bytes());
        for &(t, s, n, o, l) in entries {
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&[0; 4]);
            for v in [s, n, o, l] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        b
    }

    /// A DMG of `sectors` whose data fork is `data` and whose plist holds `tables`.
    fn dmg(sectors: u64, data: &[u8], tables: &[Vec<u8>]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut xml = String::from("<plist><dict><key>resource-fork</key><dict><key>blkx</key><array>\n");
        for t in tables {
            xml.push_str(&format!("<dict><key>Data</key><data>\n\t{}\n</data></dict>\n", b64.encode(t)));
        }
        xml.push_str("</array><key>plst</key><array><dict><data>AAAA</data></dict></array></dict></dict></plist>\n");
        let mut f = data.to_vec();
        let xml_off = f.len() as u64;
        f.extend_from_slice(xml.as_bytes());
        let mut k = vec![0u8; TRAILER];
        k[..4].copy_from_slice(KOLY);
        k[4..8].copy_from_slice(&4u32.to_be_bytes());
        k[8..12].copy_from_slice(&512u32.to_be_bytes());
        k[0x20..0x28].copy_from_slice(&(data.len() as u64).to_be_bytes());
        k[0xd8..0xe0].copy_from_slice(&xml_off.to_be_bytes());
        k[0xe0..0xe8].copy_from_slice(&(xml.len() as u64).to_be_bytes());
        k[0x1ec..0x1f4].copy_from_slice(&sectors.to_be_bytes());
        f.extend_from_slice(&k);
        f
    }

    fn open_bytes(b: Vec<u8>) -> Result<Image> {
        open("d.dmg", Arc::new(Tolerant::new(MemSource::new("d.dmg", b))))
    }

    fn kind(e: VdiskError) -> String {
        match e {
            VdiskError::Corrupt { structure, .. } => structure.to_string(),
            VdiskError::Unsupported { .. } => "unsupported".into(),
            e => e.to_string(),
        }
    }

    #[test]
    fn chunk_types() {
        let z = zlib(&[0x33; 1024]);
        let mut data = vec![0x44u8; 512];
        data.extend_from_slice(&z);
        let t0 = mish(0, &[(0x8000_0005, 0, 2, 512, z.len() as u64), (1, 2, 1, 0, 512), (0xffff_ffff, 3, 0, 0, 0)]);
        let t1 = mish(3, &[(0, 0, 1, 0, 0), (2, 1, 1, 0, 0), (0x8000_0007, 2, 2, 0, 10), (0x7fff_fffe, 4, 0, 0, 0)]);
        // Sectors 7..8 are in no table.
        let img = open_bytes(dmg(8, &data, &[t0, t1])).unwrap();
        assert_eq!(img.capacity, 4096);
        let m = img.reader.map(0..4096).unwrap();
        assert_eq!(m, vec![(0..1536, Alloc::Data), (1536..2560, Alloc::Zero), (2560..4096, Alloc::Unreadable)]);
        let mut x = vec![0u8; 1536];
        img.reader.read_data(0, &mut x).unwrap();
        assert!(x[..1024].iter().all(|&v| v == 0x33) && x[1024..].iter().all(|&v| v == 0x44));
        let p = img.reader.problems().join("\n");
        assert!(p.contains("1 LZFSE-compressed chunks"), "{p}");
        assert!(p.contains("512 bytes are described by no chunk"), "{p}");
    }

    #[test]
    fn broken_trailers_and_plists() {
        let t = mish(0, &[(0, 0, 1, 0, 0)]);
        let good = dmg(1, &[], std::slice::from_ref(&t));
        assert!(open_bytes(good.clone()).is_ok());
        let n = good.len();
        let edit = |off: usize, v: &[u8]| {
            let mut b = good.clone();
            b[n - TRAILER + off..n - TRAILER + off + v.len()].copy_from_slice(v);
            kind(open_bytes(b).err().unwrap())
        };
        assert_eq!(edit(4, &5u32.to_be_bytes()), "unsupported");
        assert_eq!(edit(0x18, &u64::MAX.to_be_bytes()), "UDIF trailer (koly)");
        assert_eq!(edit(0xd8, &u64::MAX.to_be_bytes()), "UDIF trailer (koly)");
        assert_eq!(edit(0xe0, &(1u64 << 40).to_be_bytes()), "UDIF trailer (koly)");
        assert_eq!(edit(0x1ec, &u64::MAX.to_be_bytes()), "UDIF trailer (koly)");
        assert_eq!(edit(0xe0, &0u64.to_be_bytes()), "UDIF trailer (koly)");
        // No blkx key; bad base64; a truncated file.
        let s = String::from_utf8_lossy(&good).replace("blkx", "blkz");
        assert_eq!(kind(open_bytes(s.into_bytes()).err().unwrap()), "DMG XML plist");
        let s = String::from_utf8_lossy(&good).replacen("<data>\n\t", "<data>\n\t*", 1);
        assert_eq!(kind(open_bytes(s.into_bytes()).err().unwrap()), "DMG XML plist");
        assert_eq!(kind(open_bytes(good[..300].to_vec()).err().unwrap()), "UDIF trailer (koly)");
        // A damaged block table is reported, its sectors unreadable.
        let mut bad = t.clone();
        bad[0] = b'x';
        let img = open_bytes(dmg(1, &[], &[bad])).unwrap();
        assert!(img.reader.problems()[0].contains("blkx entry 0"));
        assert_eq!(img.reader.map(0..512).unwrap(), vec![(0..512, Alloc::Unreadable)]);
    }
}
