//! Compressed clusters: raw deflate (qemu writes it with a 4 KiB window, `windowBits` -12) or
//! zstd frames. The output is exactly one cluster: decoding stops when it is full (the
//! compressed bytes run to a sector boundary, so trailing bytes are normal), and a stream that
//! ends before it is full is an error, as in qemu.

use super::ondisk::Compression;
use std::io::Read;

/// Largest zstd window accepted: bounds what the decoder allocates for a hostile frame
/// (qemu's frames hold one cluster of at most 2 MiB).
const MAX_ZSTD_WINDOW: u64 = 8 << 20;

/// Decompress `comp` into `out` (one cluster). `Err` says what is wrong.
pub fn decompress(kind: Compression, comp: &[u8], out: &mut [u8]) -> Result<(), String> {
    match kind {
        Compression::Zlib => inflate(comp, out),
        Compression::Zstd => unzstd(comp, out),
    }
}

fn inflate(comp: &[u8], out: &mut [u8]) -> Result<(), String> {
    // A 32 KiB window decodes any smaller-window stream.
    let mut d = flate2::Decompress::new(false);
    match d.decompress(comp, out, flate2::FlushDecompress::Finish) {
        Ok(_) if d.total_out() == out.len() as u64 => Ok(()),
        Ok(_) => Err(format!("deflate stream ends after {} of {} bytes", d.total_out(), out.len())),
        Err(e) => Err(format!("deflate: {e}")),
    }
}

fn unzstd(comp: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut input = comp;
    let mut done = 0usize;
    // Frames follow each other until the cluster is full (qemu writes one).
    while done < out.len() {
        if input.is_empty() {
            return Err(format!("zstd data ends after {done} of {} bytes", out.len()));
        }
        let before = done;
        let at = comp.len() - input.len();
        let mut dec = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(&mut input, MAX_ZSTD_WINDOW)
            .map_err(|e| format!("zstd frame at byte {at}: {e}"))?;
        while done < out.len() {
            match dec.read(&mut out[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return Err(format!("zstd: {e}")),
            }
        }
        drop(dec);
        if done == before {
            return Err(format!("empty zstd frame after {done} bytes"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn deflate_fills_one_cluster_and_ignores_the_tail() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let mut comp = deflate(&data);
        comp.extend_from_slice(&[0xaa; 300]);
        let mut out = vec![0u8; 4096];
        decompress(Compression::Zlib, &comp, &mut out).unwrap();
        assert_eq!(out, data);
        // Short stream, garbage, empty input: errors, no panic.
        let mut big = vec![0u8; 8192];
        assert!(decompress(Compression::Zlib, &comp, &mut big).is_err());
        assert!(decompress(Compression::Zlib, &[0xff; 64], &mut out).is_err());
        assert!(decompress(Compression::Zlib, &[], &mut out).is_err());
    }

    #[test]
    fn zstd_fills_one_cluster() {
        let data: Vec<u8> = (0..65536u32).map(|i| (i / 300) as u8).collect();
        let mut comp = ruzstd::encoding::compress_to_vec(&data[..], ruzstd::encoding::CompressionLevel::Fastest);
        comp.extend_from_slice(&[0u8; 100]);
        let mut out = vec![0u8; 65536];
        decompress(Compression::Zstd, &comp, &mut out).unwrap();
        assert_eq!(out, data);
        let mut big = vec![0u8; 65536 * 2];
        assert!(decompress(Compression::Zstd, &comp, &mut big).is_err());
        assert!(decompress(Compression::Zstd, &comp[..comp.len() / 2], &mut out).is_err());
        assert!(decompress(Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff], &mut out).is_err());
        assert!(decompress(Compression::Zstd, &[], &mut out).is_err());
    }
}
