//! VHD ("vpc" to qemu): fixed, dynamic and differencing disks.
//!
//! The footer is read from the end of the file (512 bytes, or 511 on old Virtual PC images); a
//! dynamic or differencing disk also keeps a copy at offset 0, used when the end one is
//! missing (truncated file) or fails its checksum, and said so. Every size in the dynamic
//! header is checked against the file before anything is allocated from it. A block's sector
//! bitmap decides per sector: set = this file's data, clear = not here (the parent's in a
//! differencing disk, zeros at the base of a chain).
//!
//! Virtual size: the footer's `Current Size`. qemu instead uses the CHS geometry for images
//! whose creator is "vpc " or "qemu" (Virtual PC's guests only saw the CHS part), which is up to
//! a few MiB less. We follow the footer, as Hyper-V, Windows and dissect do: a recovery must
//! not hide sectors the file may hold (a disk made by Virtual PC can have been used by Hyper-V
//! since). Images qemu creates store the CHS size as `Current Size` anyway, so for them both
//! rules agree; the variant words name the CHS size when it differs.

mod ondisk;

pub use ondisk::{DiskType, DynamicHeader, Footer, Locator};

use super::bitmap::{BitOrder, sector_pieces};
use super::error::{Result, VdiskError};
use super::extent::push_piece as push;
use super::extent::{Alloc, ExtentReader, FlatExtent};
use super::image::{Format, Image, ParentRef};
use crate::block::Source;
use ondisk::{BAT_UNUSED, FOOTER_COOKIE, FOOTER_SIZE, HEADER_SIZE, uuid_text};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Largest parent locator read (a Windows path of 32767 UTF-16 units fits).
const MAX_LOCATOR: u32 = 64 << 10;
/// Sector bitmaps kept in memory (each at most 64 KiB).
const CACHE_BITMAPS: usize = 256;

/// The footer chosen, where it was, and what was wrong with the others.
struct Chosen {
    footer: Footer,
    at: u64,
    problems: Vec<String>,
}

/// One footer candidate: its offset and what parsing it gave.
type Candidate = (u64, std::result::Result<Footer, ondisk::Bad>);

fn read_footer(src: &Source, at: u64, old: bool) -> Result<Candidate> {
    let mut b = [0u8; FOOTER_SIZE];
    // An old 511-byte footer lacks the last reserved byte: it stays zero here.
    let n = if old { FOOTER_SIZE - 1 } else { FOOTER_SIZE };
    src.read_at(at, &mut b[..n])?;
    Ok((at, Footer::parse(&b)))
}

fn choose_footer(path: &str, src: &Source) -> Result<Chosen> {
    let len = src.len();
    let mut end: Option<Candidate> = None;
    if len >= FOOTER_SIZE as u64 {
        let mut tail = [0u8; FOOTER_SIZE];
        src.read_at(len - FOOTER_SIZE as u64, &mut tail)?;
        if &tail[..8] == FOOTER_COOKIE {
            end = Some(read_footer(src, len - FOOTER_SIZE as u64, false)?);
        } else if &tail[1..9] == FOOTER_COOKIE {
            end = Some(read_footer(src, len - (FOOTER_SIZE as u64 - 1), true)?);
        }
    }
    // The copy at 0 exists only on dynamic and differencing disks (a fixed disk starts with data).
    let head = if len >= FOOTER_SIZE as u64 {
        Some(read_footer(src, 0, false)?).filter(|(_, f)| f.as_ref().is_ok_and(|f| f.disk_type != DiskType::Fixed))
    } else {
        None
    };
    let good = |c: &Option<Candidate>| c.as_ref().and_then(|(at, f)| f.as_ref().ok().map(|f| (*at, f.clone())));
    let (e, h) = (good(&end), good(&head));
    let mut problems = Vec::new();
    let pick = match (&e, &h) {
        (Some((at, f)), _) if f.checksum_ok => Some((*at, f.clone())),
        (_, Some((_, f))) if f.checksum_ok => {
            problems.push(match &end {
                None => "no footer at the end of the file (truncated copy?): used the copy at offset 0".to_string(),
                Some((at, Ok(_))) => format!("footer at {at:#x} fails its checksum: used the copy at offset 0"),
                Some((at, Err(b))) => format!("footer at {at:#x} unusable ({}): used the copy at offset 0", b.what),
            });
            Some((0, f.clone()))
        }
        _ => e.or(h).map(|(at, f)| {
            problems.push(format!(
                "footer at {at:#x} fails its checksum (stored {:#010x}) and no good copy exists: used anyway",
                f.checksum
            ));
            (at, f)
        }),
    };
    match pick {
        Some((at, footer)) => Ok(Chosen { footer, at, problems }),
        None => Err(match end.or(head) {
            Some((at, Err(b))) => VdiskError::corrupt(path, Footer::NAME, at + b.off, b.what),
            _ => VdiskError::corrupt(path, Footer::NAME, len.saturating_sub(FOOTER_SIZE as u64), "no VHD footer"),
        }),
    }
}

/// Open a VHD image.
pub fn open(path: &str, src: Source) -> Result<Image> {
    let Chosen { footer, at, mut problems } = choose_footer(path, &src)?;
    // qemu reads whole sectors: a size that is not a multiple of 512 loses its last bytes there too.
    let capacity = footer.current_size & !511;
    let app = String::from_utf8_lossy(&footer.creator_app).into_owned();
    let mut variant = format!(
        "{}, creator \"{app}\" {}.{}",
        footer.disk_type.name(),
        footer.creator_version >> 16,
        footer.creator_version & 0xffff
    );
    let chs = footer.chs_bytes();
    if (&footer.creator_app == b"vpc " || &footer.creator_app == b"qemu") && chs != capacity && chs != 0 {
        variant.push_str(&format!(
            ", CHS {}/{}/{} = {chs} bytes (qemu's size)",
            footer.cylinders, footer.heads, footer.sectors
        ));
    }
    if footer.saved_state != 0 {
        problems.push("the footer says the VM was in a saved state when the disk was last written".into());
    }
    let id = Some(uuid_text(&footer.unique_id));
    if footer.disk_type == DiskType::Fixed {
        let data = capacity.min(at);
        if data < capacity {
            problems.push(format!(
                "the file holds {data} of the disk's {capacity} bytes (truncated copy): the rest is unreadable"
            ));
        }
        let reader = Box::new(Fixed { flat: FlatExtent { file: src, offset: 0, len: data }, capacity, problems });
        return Ok(Image { format: Format::Vhd, variant, capacity, reader, id, parent: None });
    }
    let (dynamic, header) = Dynamic::open(path, src.clone(), &footer, capacity, problems)?;
    variant = variant.replacen(
        footer.disk_type.name(),
        &format!("{}, {} KiB blocks", footer.disk_type.name(), header.block_size >> 10),
        1,
    );
    let parent = (footer.disk_type == DiskType::Differencing).then(|| ParentRef {
        hints: parent_hints(&src, &header),
        id: Some(uuid_text(&header.parent_id)),
        format: Some(Format::Vhd),
    });
    Ok(Image { format: Format::Vhd, variant, capacity, reader: Box::new(dynamic), id, parent })
}

/// A fixed disk: the file's bytes up to the footer; past the end of a truncated copy,
/// unreadable.
struct Fixed {
    flat: FlatExtent,
    capacity: u64,
    problems: Vec<String>,
}

impl ExtentReader for Fixed {
    fn len(&self) -> u64 {
        self.capacity
    }
    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        let cut = range.end.min(self.flat.len);
        let mut out = if range.start < cut { self.flat.map(range.start..cut)? } else { Vec::new() };
        push(&mut out, range.start.max(cut)..range.end.min(self.capacity), Alloc::Unreadable);
        Ok(out)
    }
    fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let n = usize::try_from(self.flat.len.saturating_sub(off)).unwrap_or(usize::MAX).min(buf.len());
        let (data, rest) = buf.split_at_mut(n);
        if !data.is_empty() {
            self.flat.read_data(off, data)?;
        }
        rest.fill(0);
        Ok(())
    }
    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        self.flat.unreadable(range.start..range.end.min(self.flat.len))
    }
    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }
}

fn bad_offset(path: &str, at: u64, len: u64) -> VdiskError {
    VdiskError::corrupt(
        path,
        Footer::NAME,
        0x10,
        format!("data offset {at:#x}: no dynamic header there (the file is {len:#x} bytes)"),
    )
}

/// Where a block's bytes are.
enum Slot {
    /// BAT entry 0xFFFFFFFF: not in this file.
    Absent,
    /// The entry points into the file's own metadata (or its BAT sector was unreadable).
    Bad,
    /// File offset of the block's sector bitmap; the data follows it.
    At(u64),
}

/// A block's sector bitmap, as far as it could be read.
#[derive(Clone)]
enum Bits {
    /// Every sector of the block is set.
    All,
    Some(Arc<Vec<u8>>),
    Unreadable,
}

/// A dynamic or differencing disk.
struct Dynamic {
    file: Source,
    capacity: u64,
    block: u64,
    bitmap: u64,
    bat: Vec<u32>,
    /// File ranges of the footer copy, the header and the BAT: no block may overlap them.
    meta: [Range<u64>; 3],
    differencing: bool,
    cache: Mutex<HashMap<u64, Bits>>,
    problems: Vec<String>,
}

impl Dynamic {
    fn open(
        path: &str,
        file: Source,
        footer: &Footer,
        capacity: u64,
        mut problems: Vec<String>,
    ) -> Result<(Self, DynamicHeader)> {
        let len = file.len();
        let at = footer.data_offset;
        let corrupt =
            |off: u64, what: String| VdiskError::corrupt(path, DynamicHeader::NAME, at.saturating_add(off), what);
        // A header cut short by the end of the file is read as far as it goes (as qemu does):
        // the fields up to the parent id are what reading needs.
        let hend = at.checked_add(HEADER_SIZE as u64).ok_or_else(|| bad_offset(path, at, len))?;
        let have = len.min(hend).checked_sub(at).filter(|&n| n >= 0x28).ok_or_else(|| bad_offset(path, at, len))?;
        let mut b = [0u8; HEADER_SIZE];
        file.read_at(at, &mut b[..have as usize])?;
        let h = DynamicHeader::parse(&b).map_err(|e| corrupt(e.off, e.what))?;
        if hend > len {
            problems
                .push(format!("dynamic header at {at:#x} cut short by the end of the file: the rest read as zeros"));
        } else if !h.checksum_ok {
            problems.push(format!("dynamic header at {at:#x} fails its checksum: used anyway"));
        }
        // qemu: "Max Table Entries too large". Checked against the file before any allocation.
        let table_end = u64::from(h.max_table_entries)
            .checked_mul(4)
            .and_then(|n| n.checked_add(h.table_offset))
            .filter(|&e| e <= len)
            .ok_or_else(|| {
                corrupt(
                    0x1c,
                    format!(
                        "max table entries {:#x}: a BAT of that many entries at {:#x} ends past the end of the file \
                         ({len:#x})",
                        h.max_table_entries, h.table_offset
                    ),
                )
            })?;
        let block = u64::from(h.block_size);
        let needed = capacity.div_ceil(block);
        let have = needed.min(u64::from(h.max_table_entries));
        if have < needed {
            problems.push(format!(
                "the BAT has {} entries, the {capacity}-byte disk needs {needed}: the rest is not in this file",
                h.max_table_entries
            ));
        }
        // `have` ≤ max_table_entries, whose 4-byte entries were just checked to fit in the file.
        let mut raw = vec![0u8; (have * 4) as usize];
        file.read_at(h.table_offset, &mut raw)?;
        let mut bat: Vec<u32> = raw.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        // Entries in sectors that could not be read are garbage: mark them bad.
        for r in file.unreadable(h.table_offset..h.table_offset + have * 4) {
            let (lo, hi) = ((r.start - h.table_offset) / 4, (r.end - h.table_offset).div_ceil(4));
            for e in bat.iter_mut().take(hi as usize).skip(lo as usize) {
                *e = 0;
            }
            problems
                .push(format!("BAT bytes {:#x}..{:#x} unreadable: their blocks read as unreadable", r.start, r.end));
        }
        let d = Self {
            file,
            capacity,
            block,
            bitmap: h.bitmap_bytes(),
            bat,
            meta: [0..FOOTER_SIZE as u64, at..hend, h.table_offset..table_end],
            differencing: footer.disk_type == DiskType::Differencing,
            cache: Mutex::new(HashMap::new()),
            problems,
        };
        let (mut bad, mut past) = (0u64, 0u64);
        for i in 0..d.bat.len() as u64 {
            match d.slot(i) {
                Slot::Bad => bad += 1,
                Slot::At(s) if s.saturating_add(d.bitmap + d.block) > len => past += 1,
                _ => {}
            }
        }
        let mut d = d;
        if bad > 0 {
            d.problems
                .push(format!("{bad} BAT entries point into the file's own metadata: those blocks are unreadable"));
        }
        if past > 0 {
            d.problems.push(format!(
                "{past} blocks reach past the end of the file (truncated copy?): the missing part is unreadable"
            ));
        }
        Ok((d, h))
    }

    fn slot(&self, block: u64) -> Slot {
        let Some(&e) = usize::try_from(block).ok().and_then(|i| self.bat.get(i)) else { return Slot::Absent };
        if e == BAT_UNUSED {
            return Slot::Absent;
        }
        let start = u64::from(e) * 512;
        let end = start + self.bitmap + self.block;
        if self.meta.iter().any(|m| start < m.end && m.start < end) {
            return Slot::Bad;
        }
        Slot::At(start)
    }

    fn bits(&self, block: u64, at: u64) -> Bits {
        if let Some(b) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&block) {
            return b.clone();
        }
        let used = (self.block / 512).div_ceil(8) as usize;
        let b = match super::grains::read_meta(&self.file, at, self.bitmap as usize) {
            None => Bits::Unreadable,
            Some(v) if v.iter().take(used).all(|&x| x == 0xff) => Bits::All,
            Some(v) => Bits::Some(Arc::new(v)),
        };
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= CACHE_BITMAPS {
            c.clear();
        }
        c.insert(block, b.clone());
        b
    }

    /// Walk `range` block by block: `f(piece, block, offset in the block)`.
    fn walk(&self, range: Range<u64>, mut f: impl FnMut(Range<u64>, u64, u64)) {
        let end = range.end.min(self.capacity);
        let mut pos = range.start;
        while pos < end {
            let (bi, inner) = (pos / self.block, pos % self.block);
            // Past the BAT (a size the table does not cover): no block there, one piece, so a
            // hostile size costs one call, not one per block.
            let piece_end = if bi >= self.bat.len() as u64 {
                end
            } else {
                bi.saturating_add(1).saturating_mul(self.block).min(end)
            };
            f(pos..piece_end, bi, inner);
            pos = piece_end;
        }
    }
}

impl ExtentReader for Dynamic {
    fn len(&self) -> u64 {
        self.capacity
    }

    fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        let flen = self.file.len();
        let mut out = Vec::new();
        self.walk(range, |r, bi, inner| {
            let at = match self.slot(bi) {
                Slot::Absent => return push(&mut out, r, Alloc::Unallocated),
                Slot::Bad => return push(&mut out, r, Alloc::Unreadable),
                Slot::At(at) => at,
            };
            let data0 = at + self.bitmap;
            let local = inner..inner + (r.end - r.start);
            let data = |l: Range<u64>, out: &mut Vec<_>| {
                // Bytes past the end of a truncated file: unreadable.
                let avail = flen.saturating_sub(data0 + l.start).min(l.end - l.start);
                let s = r.start + (l.start - inner);
                push(out, s..s + avail, Alloc::Data);
                push(out, s + avail..s + (l.end - l.start), Alloc::Unreadable);
            };
            match self.bits(bi, at) {
                Bits::All => data(local, &mut out),
                // qemu and dissect ignore the bitmap of a dynamic disk; without one, take the data.
                Bits::Unreadable if !self.differencing => data(local, &mut out),
                Bits::Unreadable => push(&mut out, r, Alloc::Unreadable),
                Bits::Some(b) => sector_pieces(&b, 512, local, BitOrder::MsbFirst, |l, set| {
                    if set {
                        data(l, &mut out);
                    } else {
                        let s = r.start + (l.start - inner);
                        push(&mut out, s..s + (l.end - l.start), Alloc::Unallocated);
                    }
                }),
            }
        });
        Ok(out)
    }

    fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let flen = self.file.len();
        let mut err = None;
        let mut done = 0usize;
        self.walk(off..off.saturating_add(buf.len() as u64), |r, bi, inner| {
            let b = &mut buf[(r.start - off) as usize..(r.end - off) as usize];
            done = (r.end - off) as usize;
            if let Slot::At(at) = self.slot(bi) {
                let start = at + self.bitmap + inner;
                let avail = flen.saturating_sub(start).min(b.len() as u64) as usize;
                if let Err(e) = self.file.read_at(start, &mut b[..avail]) {
                    err.get_or_insert(e);
                }
                b[avail..].fill(0);
            } else {
                b.fill(0);
            }
        });
        buf[done..].fill(0);
        match err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        self.walk(range, |r, bi, inner| {
            if let Slot::At(at) = self.slot(bi) {
                let start = at + self.bitmap + inner;
                for u in self.file.unreadable(start..start + (r.end - r.start)) {
                    out.push(u.start - start + r.start..u.end - start + r.start);
                }
            }
        });
        out
    }

    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }
}

/// Decode `%XX` escapes of a file URL path.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decode one parent locator's bytes into a "/"-separated path.
pub fn decode_locator(code: &[u8; 4], data: &[u8]) -> Option<String> {
    let text = match code {
        b"W2ru" | b"W2ku" => {
            let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units).trim_end_matches('\0').replace('\\', "/")
        }
        b"MacX" => {
            let url = String::from_utf8_lossy(data).trim_end_matches('\0').to_string();
            // file://host/path: the host part ("localhost" or empty) is dropped.
            let rest = url.strip_prefix("file://")?;
            let path = &rest[rest.find('/')?..];
            percent_decode(path)
        }
        _ => return None,
    };
    Some(text).filter(|t| !t.is_empty())
}

/// The parent's file names, most trusted first: the relative Windows path, the absolute one,
/// a Mac file URL, then the bare file name of the header.
fn parent_hints(src: &Source, h: &DynamicHeader) -> Vec<String> {
    let rank = |c: &[u8; 4]| match c {
        b"W2ru" => 0,
        b"W2ku" => 1,
        b"MacX" => 2,
        _ => 3,
    };
    let mut locs: Vec<&Locator> = h.locators.iter().filter(|l| rank(&l.code) < 3).collect();
    locs.sort_by_key(|l| rank(&l.code));
    let mut hints: Vec<String> = Vec::new();
    for l in locs {
        if l.length == 0 || l.length > MAX_LOCATOR {
            continue;
        }
        let Some(data) = super::grains::read_meta(src, l.offset, l.length as usize) else { continue };
        if let Some(p) = decode_locator(&l.code, &data) {
            hints.push(p);
        }
    }
    let name = h.parent_name.trim_end_matches('\0').replace('\\', "/");
    if !name.is_empty() {
        hints.push(name);
    }
    let mut seen = std::collections::HashSet::new();
    hints.retain(|x| seen.insert(x.clone()));
    hints
}

#[cfg(test)]
mod tests;
