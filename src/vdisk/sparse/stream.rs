//! streamOptimized pieces (research/vmdk-format.md §4): markers, the footer, inflating one
//! grain with its output bounded to the grain, and the marker walk that rebuilds the grain
//! map of a file whose grain directory is lost (truncated tail).

use super::header::{GD_AT_END, Header};
use crate::block::Source;
use std::collections::BTreeMap;

/// Marker types (size == 0).
pub const MARKER_EOS: u32 = 0;
pub const MARKER_GT: u32 = 1;
pub const MARKER_GD: u32 = 2;
pub const MARKER_FOOTER: u32 = 3;
pub const MARKER_PROGRESS: u32 = 4;

/// Largest compressed size accepted for a grain of `grain_bytes` (compressed data can be a
/// little larger than the grain; qemu reads two grains).
pub fn max_compressed(grain_bytes: u64) -> u64 {
    grain_bytes * 2 + 4096
}

fn marker(b: &[u8]) -> (u64, u32, u32) {
    let val = u64::from_le_bytes(b[0..8].try_into().unwrap_or([0; 8]));
    let size = u32::from_le_bytes(b[8..12].try_into().unwrap_or([0; 4]));
    let kind = u32::from_le_bytes(b[12..16].try_into().unwrap_or([0; 4]));
    (val, size, kind)
}

/// True when `b` starts like a zlib stream (CMF/FLG check of RFC 1950).
fn zlib_head(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && b[0] >> 4 <= 7 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// The footer header (at EOF − 1024) when the header says GD_AT_END and the footer marker,
/// footer and EOS are in place. `Err` says why not.
pub fn footer(src: &Source) -> Result<Header, String> {
    let len = src.len();
    if len < 1536 + 512 {
        return Err("file too short for a footer".into());
    }
    let mut b = [0u8; 1536];
    src.read_at(len - 1536, &mut b).map_err(|e| e.to_string())?;
    let (_, size, kind) = marker(&b[0..16]);
    if size != 0 || kind != MARKER_FOOTER {
        return Err(format!("no footer marker at byte {:#x}", len - 1536));
    }
    let mut hb = [0u8; 512];
    hb.copy_from_slice(&b[512..1024]);
    let h = Header::decode(&hb).ok_or_else(|| format!("no KDMV footer at byte {:#x}", len - 1024))?;
    if h.gd_offset == GD_AT_END {
        return Err("footer without a grain directory offset".into());
    }
    Ok(h)
}

/// Inflate the grain whose GTE (or walk entry) is `sector`: with markers the sector holds a
/// grain marker (LBA, size) followed by the zlib data; without, a bare zlib stream. The
/// output is one grain, zero-padded (a short last grain). `Err` says what is wrong.
pub fn inflate_grain(src: &Source, sector: u64, lba: u64, h: &Header) -> Result<Vec<u8>, String> {
    let gb = h.grain_bytes();
    let at = sector.checked_mul(512).ok_or("grain sector overflows")?;
    let len = src.len();
    if at >= len {
        return Err(format!("grain at byte {at:#x} is past the end of the file ({len:#x})"));
    }
    let (data_at, size) = if h.markers() {
        let mut m = [0u8; 12];
        if at + 12 > len {
            return Err(format!("grain marker at byte {at:#x} cut by the end of the file"));
        }
        src.read_at(at, &mut m).map_err(|e| e.to_string())?;
        let (val, size, _) = marker(&[&m[..], &[0; 4]].concat());
        if val != lba {
            return Err(format!("grain marker at byte {at:#x} names LBA {val}, expected {lba}"));
        }
        if size == 0 || size as u64 > max_compressed(gb) {
            return Err(format!("grain marker at byte {at:#x}: compressed size {size}"));
        }
        if at + 12 + size as u64 > len {
            return Err(format!("compressed grain at byte {at:#x} cut by the end of the file"));
        }
        (at + 12, size as u64)
    } else {
        (at, max_compressed(gb).min(len - at))
    };
    let mut comp = vec![0u8; size as usize];
    src.read_at(data_at, &mut comp).map_err(|e| e.to_string())?;
    if !src.unreadable(data_at..data_at + size).is_empty() {
        return Err(format!("compressed grain at byte {at:#x} is on unreadable sectors"));
    }
    let mut out = vec![0u8; gb as usize];
    let zlib = zlib_head(&comp);
    let mut d = flate2::Decompress::new(zlib);
    match d.decompress(&comp, &mut out, flate2::FlushDecompress::Finish) {
        Ok(flate2::Status::StreamEnd) => Ok(out),
        // The output is full: a grain's worth is all we keep.
        Ok(_) if d.total_out() == gb => Ok(out),
        Ok(_) => Err(format!("compressed grain at byte {at:#x} ends early ({} of {gb} bytes)", d.total_out())),
        Err(e) => Err(format!("compressed grain at byte {at:#x}: {e}")),
    }
}

/// What walking the markers found.
pub struct Walk {
    /// Grain index → sector of its marker.
    pub grains: BTreeMap<u64, u64>,
    /// What the walk had to skip or where it stopped early, one line each.
    pub problems: Vec<String>,
}

/// Walk the markers from the first grain sector to the end of the file (§4.3, streaming
/// rule). Damaged stretches are skipped sector by sector until a plausible grain marker.
pub fn walk(src: &Source, h: &Header) -> Walk {
    let len = src.len();
    let gb = h.grain_bytes();
    let first = h.overhead.max(h.descriptor_offset.saturating_add(h.descriptor_size)).max(1);
    let mut pos = first.saturating_mul(512);
    let mut out = Walk { grains: BTreeMap::new(), problems: Vec::new() };
    let mut skipping: Option<u64> = None;
    let mut buf = [0u8; 512];
    while pos + 16 <= len {
        let n = (len - pos).min(512) as usize;
        buf[n..].fill(0);
        if src.read_at(pos, &mut buf[..n]).is_err() {
            skipping.get_or_insert(pos);
            pos += 512;
            continue;
        }
        let (val, size, kind) = marker(&buf);
        let step = if size > 0 {
            let lba_ok = val % h.grain_size == 0 && val < h.capacity;
            let size_ok = size as u64 <= max_compressed(gb) && (!h.compressed() || zlib_head(&buf[12..]));
            if lba_ok && size_ok {
                if pos + 12 + size as u64 > len {
                    out.problems.push(format!(
                        "stream cut at byte {len:#x} inside the grain of LBA {val} (marker at {pos:#x}): that grain and \
                         everything after it are lost"
                    ));
                    break;
                }
                if let Some(s) = skipping.take() {
                    out.problems.push(format!("stream damaged: bytes {s:#x}..{pos:#x} skipped"));
                }
                out.grains.insert(val / h.grain_size, pos / 512);
                Some((12 + size as u64).div_ceil(512))
            } else {
                None
            }
        } else {
            match kind {
                MARKER_EOS if skipping.is_none() && pos + 512 >= len => break,
                MARKER_GT | MARKER_GD | MARKER_FOOTER | MARKER_PROGRESS
                    if skipping.is_none() && val < len / 512 && pos + (val + 1) * 512 <= len =>
                {
                    Some(val + 1)
                }
                _ => None,
            }
        };
        match step {
            Some(s) => pos += s * 512,
            None => {
                skipping.get_or_insert(pos);
                pos += 512;
            }
        }
    }
    if let Some(s) = skipping {
        out.problems.push(format!("stream damaged or cut: bytes {s:#x}..{len:#x} held no readable grain"));
    }
    out
}
