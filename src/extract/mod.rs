//! Copying a source out: sparse, hashed, atomic, with the unreadable ranges it touched.
//!
//! One thread reads data ranges in large pieces (the only thread touching the source, so the
//! source sees one sequential stream), a second writes them, a third hashes them in file order.
//! Holes are never read or written: the output is sized with `set_len` and stays sparse.
//! Image formats plug in as a [`DataSink`] (`qcow2.rs`), so they share the reading and hashing.

pub mod qcow2;

use crate::block::{BlockSource, merge_ranges};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Size of one read. 1 MiB pieces stay in the CPU caches while the writer and the hasher take
/// them from the reader (8 MiB ones did not: `guest extract` of a 512 MiB file took 3.0–3.8 s
/// with 8 MiB and 1.3–2.0 s with 1 MiB on the same loaded VM); devices read ahead anyway.
const CHUNK: u64 = 1 << 20;
/// Chunks in flight between the stages.
const DEPTH: usize = 8;
/// How many data ranges are asked for at once (bounds memory on fragmented huge files).
const MAP_WINDOW: u64 = 64 << 30;

/// Options of a copy.
#[derive(Clone, Copy, Debug)]
pub struct CopyOptions {
    /// Hash the whole content only if the holes to hash (as zeros) total at most this many bytes;
    /// above it, hash each data range instead (hashing terabytes of zeros would take hours).
    pub hole_hash_limit: u64,
    /// Whether to hash at all (`cat` does not need to).
    pub hash: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self { hole_hash_limit: 16 << 30, hash: true }
    }
}

/// The hash of one data range, when the whole-content hash was not computed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RangeHash {
    /// Offset in the file.
    pub offset: u64,
    /// Length.
    pub length: u64,
    /// SHA-256 of those bytes, hex.
    pub sha256: String,
}

/// What a copy did.
#[derive(Clone, Debug, Default)]
pub struct CopyReport {
    /// Bytes of content (the file size).
    pub size: u64,
    /// SHA-256 of the whole content, or `None` when it was skipped (see [`CopyOptions`]).
    pub sha256: Option<String>,
    /// Per-data-range hashes when `sha256` is `None`; everything else is zeros.
    pub range_hashes: Vec<RangeHash>,
    /// Unreadable ranges of the content (read as zeros).
    pub unreadable: Vec<Range<u64>>,
    /// Bytes actually read from the source.
    pub bytes_read: u64,
}

/// A piece of content in file order.
enum Piece {
    Data(u64, Arc<Vec<u8>>),
    Zeros(u64),
}

/// A consumer of the data pieces of a copy, in file order; holes are never passed to it (it
/// must leave them reading as zeros). Called from the writer thread.
pub trait DataSink: Send {
    /// Store `data`, the content at `offset`.
    fn write_data(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
}

/// Where the content goes.
pub enum Sink<'a> {
    /// A file written at offsets (holes stay sparse).
    File(&'a File),
    /// A stream (holes written as zeros), e.g. standard output.
    Stream(&'a mut (dyn Write + Send)),
    /// An image writer.
    Data(&'a mut dyn DataSink),
    /// Nowhere: only hash.
    Null,
}

/// Copy all of `src` to `sink`, hashing it. Unreadable bytes are zero-filled and reported.
pub fn copy(src: &dyn BlockSource, sink: Sink<'_>, opts: CopyOptions) -> io::Result<CopyReport> {
    let size = src.len();
    // Decide the hash mode up front from the hole total.
    let mut data_total = 0u64;
    for_windows(size, |r| {
        let v = src.data_ranges(r);
        data_total += v.iter().map(|r| r.end - r.start).sum::<u64>();
        v.is_empty()
    });
    let whole_hash = opts.hash && size - data_total <= opts.hole_hash_limit;
    let hash = opts.hash;
    let is_stream = matches!(sink, Sink::Stream(_));

    let (to_writer, from_reader) = sync_channel::<Piece>(DEPTH);
    let (to_hasher, from_writer) = sync_channel::<Piece>(DEPTH);
    // Buffers go round: reader -> writer -> hasher -> back to the reader, so no chunk is ever
    // allocated (and page-faulted) twice.
    let (recycle, pool) = sync_channel::<Vec<u8>>(2 * DEPTH + 2);
    std::thread::scope(|s| -> io::Result<CopyReport> {
        let hasher = s.spawn(move || {
            let r = if hash {
                hash_stage(from_writer, whole_hash, &recycle)
            } else {
                for p in from_writer {
                    give_back(p, &recycle);
                }
                (None, Vec::new())
            };
            drop(recycle);
            r
        });
        let writer = s.spawn(move || write_stage(from_reader, to_hasher, sink));
        let read_result = read_stage(src, size, to_writer, is_stream || whole_hash, &pool);
        let write_result = writer.join().map_err(|_| io::Error::other("writer thread panicked"))?;
        let (sha, ranges) = hasher.join().map_err(|_| io::Error::other("hasher thread panicked"))?;
        // The writer's error first: when it stopped the copy, the reader only saw the stop.
        write_result?;
        let bytes_read = read_result?;
        Ok(CopyReport {
            size,
            sha256: sha,
            range_hashes: ranges,
            unreadable: merge_ranges(src.unreadable(0..size)),
            bytes_read,
        })
    })
}

/// Read data ranges in file order; send zeros pieces for holes when someone needs them.
/// Return a data piece's buffer to the reader, if it is the last holder.
fn give_back(p: Piece, recycle: &SyncSender<Vec<u8>>) {
    if let Piece::Data(_, buf) = p
        && let Ok(v) = Arc::try_unwrap(buf)
    {
        let _ = recycle.try_send(v);
    }
}

fn read_stage(
    src: &dyn BlockSource,
    size: u64,
    out: SyncSender<Piece>,
    send_zeros: bool,
    pool: &Receiver<Vec<u8>>,
) -> io::Result<u64> {
    let mut spare = 2 * DEPTH + 2;
    let mut read = 0u64;
    let mut pos = 0u64;
    let mut result = Ok(());
    for_windows(size, |window| {
        let ranges = src.data_ranges(window);
        let empty = ranges.is_empty();
        for r in ranges {
            if result.is_err() {
                break;
            }
            if r.start > pos && send_zeros && out.send(Piece::Zeros(r.start - pos)).is_err() {
                result = Err(io::Error::other("copy pipeline stopped"));
                break;
            }
            let mut off = r.start;
            while off < r.end {
                // Align pieces to CHUNK so reads stay aligned on the device.
                let n = (CHUNK - off % CHUNK).min(r.end - off);
                // A fresh buffer while the pool fills, then only recycled ones.
                let mut buf = if spare > 0 {
                    spare -= 1;
                    vec![0u8; CHUNK as usize]
                } else {
                    match pool.recv() {
                        Ok(b) => b,
                        Err(_) => vec![0u8; CHUNK as usize],
                    }
                };
                buf.resize(n as usize, 0);
                if let Err(e) = src.read_at(off, &mut buf) {
                    result = Err(io::Error::other(e));
                    break;
                }
                read += n;
                if out.send(Piece::Data(off, Arc::new(buf))).is_err() {
                    result = Err(io::Error::other("copy pipeline stopped"));
                    break;
                }
                off += n;
            }
            pos = r.end;
        }
        empty && result.is_ok()
    });
    result?;
    if pos < size && send_zeros {
        let _ = out.send(Piece::Zeros(size - pos));
    }
    Ok(read)
}

fn write_stage(input: Receiver<Piece>, next: SyncSender<Piece>, sink: Sink<'_>) -> io::Result<()> {
    let zeros = vec![0u8; CHUNK as usize];
    let mut sink = sink;
    let mut result = Ok(());
    for piece in input {
        result = match (&piece, &mut sink) {
            (Piece::Data(off, buf), Sink::File(f)) => {
                f.write_all_at(buf, *off).map(|()| start_writeback(f, *off, buf.len()))
            }
            (Piece::Data(_, buf), Sink::Stream(w)) => w.write_all(buf),
            (Piece::Data(off, buf), Sink::Data(d)) => d.write_data(*off, buf),
            (Piece::Zeros(len), Sink::Stream(w)) => {
                let mut left = *len;
                let mut r = Ok(());
                while left > 0 && r.is_ok() {
                    let n = left.min(CHUNK);
                    r = w.write_all(&zeros[..n as usize]);
                    left -= n;
                }
                r
            }
            _ => Ok(()),
        };
        // A failed write (full disk, closed pipe) stops the copy: dropping `input` stops the
        // reader, so a huge source is not read to the end for nothing.
        if result.is_err() || next.send(piece).is_err() {
            break;
        }
    }
    if let Sink::Stream(w) = &mut sink
        && result.is_ok()
    {
        result = w.flush();
    }
    result
}

fn hash_stage(input: Receiver<Piece>, whole: bool, recycle: &SyncSender<Vec<u8>>) -> (Option<String>, Vec<RangeHash>) {
    let zeros = vec![0u8; 1 << 20];
    let mut h = Sha256::new();
    let mut ranges: Vec<RangeHash> = Vec::new();
    let mut cur: Option<(u64, u64, Sha256)> = None;
    for piece in input {
        match &piece {
            Piece::Data(off, buf) => {
                let off = *off;
                if whole {
                    h.update(&buf[..]);
                } else {
                    match &mut cur {
                        Some((start, len, rh)) if *start + *len == off => {
                            rh.update(&buf[..]);
                            *len += buf.len() as u64;
                        }
                        _ => {
                            if let Some((s, l, rh)) = cur.take() {
                                ranges.push(RangeHash { offset: s, length: l, sha256: hex(&rh.finalize()) });
                            }
                            let mut rh = Sha256::new();
                            rh.update(&buf[..]);
                            cur = Some((off, buf.len() as u64, rh));
                        }
                    }
                }
            }
            Piece::Zeros(len) => {
                let mut len = *len;
                if whole {
                    while len > 0 {
                        let n = len.min(zeros.len() as u64);
                        h.update(&zeros[..n as usize]);
                        len -= n;
                    }
                }
            }
        }
        give_back(piece, recycle);
    }
    if whole {
        (Some(hex(&h.finalize())), Vec::new())
    } else {
        if let Some((s, l, rh)) = cur.take() {
            ranges.push(RangeHash { offset: s, length: l, sha256: hex(&rh.finalize()) });
        }
        (None, ranges)
    }
}

/// Ask the kernel to start writing `len` bytes at `off` back now (POSIX_FADV_DONTNEED starts
/// writeback of dirty pages), so the final `fdatasync` waits for little and a huge copy does not
/// fill the page cache with dirty output.
pub(crate) fn start_writeback(f: &File, off: u64, len: usize) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else { return };
    let _ = posix_fadvise(f, off, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
}

/// Call `f` on consecutive windows covering `0..size`; a window on which `f` returns true (found
/// nothing) makes the next one twice as large, so absurd sizes cost few calls.
pub(crate) fn for_windows(size: u64, mut f: impl FnMut(Range<u64>) -> bool) {
    let mut pos = 0u64;
    let mut w = MAP_WINDOW;
    while pos < size {
        let end = pos.saturating_add(w).min(size);
        w = if f(pos..end) { w.saturating_mul(2) } else { MAP_WINDOW };
        pos = end;
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Copy `src` into a new file at `dest`, atomically: written as `dest.partial`, renamed at the end.
pub fn copy_to_file(src: &dyn BlockSource, dest: &Path, opts: CopyOptions) -> io::Result<CopyReport> {
    write_atomically(dest, |f| {
        f.set_len(src.len())?;
        copy(src, Sink::File(f), opts)
    })
}

/// Create `dest` atomically: `write` fills `dest.partial` (same folder, so the rename cannot cross
/// file systems), which is synced and renamed over `dest` on success and removed on failure.
pub fn write_atomically<R>(dest: &Path, write: impl FnOnce(&File) -> io::Result<R>) -> io::Result<R> {
    let mut tmp_name = dest.as_os_str().to_owned();
    tmp_name.push(".partial");
    let tmp = PathBuf::from(tmp_name);
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
    let done = write(&f).and_then(|r| f.sync_data().map(|()| r));
    drop(f);
    match done.and_then(|r| std::fs::rename(&tmp, dest).map(|()| r)) {
        Ok(r) => Ok(r),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The completed entries of a resume journal (one JSON object per line, appended as each
/// output file is finished), by the string field `key`. A missing journal is empty; a torn last
/// line (a crash while appending) is skipped.
pub fn read_journal(path: &Path, key: &str) -> std::collections::HashMap<String, serde_json::Value> {
    parse_journal(&std::fs::read_to_string(path).unwrap_or_default(), key)
}

/// [`read_journal`] of a journal's text (one kept elsewhere, e.g. on an SFTP server).
pub fn parse_journal(text: &str, key: &str) -> std::collections::HashMap<String, serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v[key].as_str()?.to_string(), v)))
        .collect()
}

/// A file-name component made safe to create: no `/`, no NUL, not `.` or `..`, not empty.
/// Other bytes (any UTF-8, or not) are kept as they are.
pub fn sanitize_component(name: &[u8]) -> OsString {
    let mut out: Vec<u8> = name.iter().map(|&c| if c == b'/' || c == 0 { b'_' } else { c }).collect();
    if out.is_empty() || out == b"." || out == b".." {
        out.insert(0, b'_');
    }
    // Keep names within what Linux file systems accept (255 bytes).
    out.truncate(255);
    OsString::from_vec(out)
}

/// A guest file-name component made safe to create on any destination (Linux, or a FAT/NTFS
/// stick): `sanitize_component`, plus the characters Windows forbids (`\ : * ? " < > |` and
/// control characters) replaced by `_`, reserved device names (`CON`, `nul.txt`, `COM1`...)
/// and names ending in a dot or space prefixed or suffixed with `_`. Other bytes, UTF-8 or
/// not, are kept (Linux names may hold any byte but `/` and NUL); the manifest keeps the
/// original name.
pub fn sanitize_guest_component(name: &[u8]) -> OsString {
    let mut out: Vec<u8> =
        name.iter().map(|&c| if c < 0x20 || b"\\:*?\"<>|".contains(&c) { b'_' } else { c }).collect();
    let stem_end = out.iter().position(|&c| c == b'.').unwrap_or(out.len());
    let stem = String::from_utf8_lossy(&out[..stem_end]).trim_end().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit()
            && stem.as_bytes()[3] != b'0');
    if reserved {
        out.insert(0, b'_');
    }
    if matches!(out.last(), Some(b'.') | Some(b' ')) && out != b"." && out != b".." {
        out.push(b'_');
    }
    sanitize_component(&out)
}

/// The output name of alternate data stream `stream` of guest file `name` (NTFS `NAME:STREAM`):
/// `NAME@STREAM`, sanitized as a whole by [`sanitize_guest_component`] (the `:` of the NTFS
/// form is one of the characters Windows forbids, `@` is not). A guest file that is really
/// called `NAME@STREAM` in the same folder gets `~2` (the extraction never writes a name
/// twice), and the manifest says which output is a stream (`"stream"`).
pub fn sanitize_guest_stream(name: &[u8], stream: &[u8]) -> OsString {
    let mut v = name.to_vec();
    v.push(b'@');
    v.extend_from_slice(stream);
    sanitize_guest_component(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};

    #[test]
    fn guest_names_are_sanitized() {
        assert_eq!(sanitize_guest_component(b"a:b\\c?.txt"), OsString::from("a_b_c_.txt"));
        assert_eq!(sanitize_guest_component(b"con.txt"), OsString::from("_con.txt"));
        assert_eq!(sanitize_guest_component(b"COM1"), OsString::from("_COM1"));
        assert_eq!(sanitize_guest_component(b"COM0"), OsString::from("COM0"));
        assert_eq!(sanitize_guest_component(b"dot."), OsString::from("dot._"));
        assert_eq!(sanitize_guest_component(b".."), OsString::from("_.."));
        assert_eq!(sanitize_guest_component(b"\xff\xfe"), OsString::from_vec(vec![0xff, 0xfe]));
    }

    #[test]
    fn guest_stream_names() {
        assert_eq!(sanitize_guest_stream(b"a.txt", b"Zone.Identifier"), OsString::from("a.txt@Zone.Identifier"));
        assert_eq!(sanitize_guest_stream(b"a:b", b"s?"), OsString::from("a_b@s_"));
        assert_eq!(sanitize_guest_stream(b"con", b"x"), OsString::from("con@x"));
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_component(b".."), OsString::from("_.."));
        assert_eq!(sanitize_component(b"a/b\0c"), OsString::from("a_b_c"));
        assert_eq!(sanitize_component(b""), OsString::from("_"));
        assert_eq!(sanitize_component("émoji😘".as_bytes()), OsString::from("émoji😘"));
    }

    /// A sink that fails stops the copy early, and its error is the one returned.
    #[test]
    fn failed_write_stops_the_copy() {
        struct Full(u32);
        impl DataSink for Full {
            fn write_data(&mut self, _: u64, _: &[u8]) -> io::Result<()> {
                self.0 += 1;
                if self.0 > 2 { Err(io::Error::from(io::ErrorKind::StorageFull)) } else { Ok(()) }
            }
        }
        let src = Tolerant::new(MemSource::new("mem", vec![7u8; CHUNK as usize * 40]));
        let mut sink = Full(0);
        let e = copy(&src, Sink::Data(&mut sink), CopyOptions::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(sink.0, 3);
    }

    #[test]
    fn copy_hashes_and_streams() {
        let data: Vec<u8> = (0..(CHUNK as usize * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        let src = Tolerant::new(MemSource::new("mem", data.clone()));
        let mut out: Vec<u8> = Vec::new();
        let r = copy(&src, Sink::Stream(&mut out), CopyOptions::default()).unwrap();
        assert_eq!(out, data);
        assert_eq!(r.sha256.unwrap(), hex(&Sha256::digest(&data)));
        assert_eq!(r.bytes_read, data.len() as u64);
    }
}
