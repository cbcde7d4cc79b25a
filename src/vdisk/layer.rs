//! One link of a chain: a VMDK descriptor with its extents, or a single-file image of another
//! format (qcow2, VHD, VHDX, VDI, ...) read through its format module.

use super::descriptor::{Descriptor, looks_like_descriptor};
use super::error::{Result, VdiskError};
use super::extent::{Alloc, ExtentReader, FlatExtent, ZeroExtent};
use super::files::{Files, resolve};
use super::image::{self, Format, ParentRef};
use crate::block::Source;
use std::ops::Range;

/// What a raw-device-mapping extent points at (its data is on the mapped LUN, not here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdmMapping {
    /// The mapping file (`-rdm.vmdk` / `-rdmp.vmdk`) as the descriptor names it.
    pub file: String,
    /// `VMFSRDM` (virtual compatibility) or `VMFSRAW` (physical, pass-through).
    pub kind: String,
    /// The mapped device when the mapping file could be read (a VMFS RDM file's LUN id).
    pub target: Option<String>,
    /// Bytes of the virtual disk it covers.
    pub len: u64,
}

/// One link of a chain.
pub struct Layer {
    /// Path of the descriptor, sparse file or image.
    pub path: String,
    pub format: Format,
    /// `createType` for a VMDK, the format reader's words otherwise.
    pub variant: String,
    /// The VMDK descriptor (VMDK links only).
    pub desc: Option<Descriptor>,
    /// This link's identity (VMDK CID as 8 hex digits, a UUID), as children name it.
    pub id: Option<String>,
    /// Where the parent is; `None` for a base.
    pub parent: Option<ParentRef>,
    /// (start byte, extent), in order.
    extents: Vec<(u64, Box<dyn ExtentReader>)>,
    pub capacity: u64,
    /// Raw device mappings: their range reads as zeros here, and is reported.
    pub rdm: Vec<RdmMapping>,
    /// What opening found wrong but could work around.
    pub problems: Vec<String>,
}

fn cid_hex(c: Option<u32>) -> Option<String> {
    c.map(|c| format!("{c:08x}"))
}

impl Layer {
    /// Open the link at `path`, recognising its format; a VMDK through its descriptor (text,
    /// or embedded in a monolithic sparse file).
    pub fn open(files: &dyn Files, path: &str) -> Result<Self> {
        Self::open_as(files, path, None)
    }

    /// Open the link at `path` as `format` (`None`: recognise it).
    pub fn open_as(files: &dyn Files, path: &str, format: Option<Format>) -> Result<Self> {
        let src = files.open(path)?;
        let format = match format {
            Some(f) => f,
            None => image::detect(&src)?.unwrap_or(Format::Vmdk),
        };
        if format == Format::Vmdk {
            return Self::open_vmdk(files, path, src);
        }
        let img = image::open(format, files, path, src)?;
        let problems = img.reader.problems();
        Ok(Self {
            path: path.into(),
            format: img.format,
            variant: img.variant,
            desc: None,
            id: img.id,
            parent: img.parent,
            capacity: img.capacity,
            extents: vec![(0, img.reader)],
            rdm: Vec::new(),
            problems,
        })
    }

    fn open_vmdk(files: &dyn Files, path: &str, src: Source) -> Result<Self> {
        let mut m = [0u8; 8];
        let n = src.len().min(8) as usize;
        src.read_at(0, &mut m[..n])?;
        let kdmv = u32::from_le_bytes([m[0], m[1], m[2], m[3]]) == super::sparse::KDMV_MAGIC;
        if &m[..4] == b"COWD" || u64::from_le_bytes(m) == 0xcafe_babe {
            return Err(VdiskError::Descriptor {
                file: path.into(),
                what: "a snapshot delta extent, not a descriptor (open the snapshot's .vmdk descriptor)".into(),
            });
        }
        let raw = if kdmv {
            super::sparse::embedded_descriptor(&src)?.ok_or_else(|| VdiskError::Descriptor {
                file: path.into(),
                what: "sparse extent without an embedded descriptor".into(),
            })?
        } else {
            // Neither a known magic nor descriptor text: a VMDK extent or a plain image, which
            // is never guessed (a damaged header must not be read as raw data).
            let unknown = || VdiskError::UnknownFormat { file: path.into(), size: src.len() };
            if src.len() > super::descriptor::MAX_DESCRIPTOR as u64 {
                return Err(unknown());
            }
            let mut b = vec![0u8; src.len() as usize];
            src.read_at(0, &mut b)?;
            if !looks_like_descriptor(&b) {
                return Err(unknown());
            }
            b
        };
        let desc = Descriptor::parse(path, &raw)?;
        let mut extents: Vec<(u64, Box<dyn ExtentReader>)> = Vec::new();
        let mut rdm = Vec::new();
        let mut start = 0u64;
        for e in desc.extents.iter() {
            let len = e.sectors * 512;
            let name = e.file.as_deref().map(|f| resolve(path, f)).unwrap_or_default();
            let reader: Box<dyn ExtentReader> = match e.kind.as_str() {
                "ZERO" => Box::new(ZeroExtent { len }),
                "FLAT" | "VMFS" => Box::new(FlatExtent { file: files.open(&name)?, offset: e.offset * 512, len }),
                "SPARSE" => {
                    // A monolithic sparse file holds its own (only) extent: the name in its
                    // embedded descriptor is often wrong (streamOptimized).
                    // A descriptor container (capacity 0) holds no grains: its extents are other files.
                    let own = kdmv && desc.extents.len() == 1 && !super::sparse::is_descriptor_container(&src);
                    let f = if own { src.clone() } else { files.open(&name)? };
                    super::sparse::open(&name, f, len)?
                }
                "VMFSSPARSE" => super::cowd::open(&name, files.open(&name)?, len)?,
                "SESPARSE" => super::sesparse::open(&name, files.open(&name)?, len)?,
                "VMFSRDM" | "VMFSRAW" => {
                    // The data is on the mapped LUN: this range reads as zeros and is reported.
                    let target = files.rdm_target(&name);
                    rdm.push(RdmMapping { file: name.clone(), kind: e.kind.clone(), target, len });
                    Box::new(ZeroExtent { len })
                }
                k => {
                    return Err(VdiskError::Unsupported { file: path.into(), what: format!("extent type {k}") });
                }
            };
            extents.push((start, reader));
            start = start.saturating_add(len);
        }
        let mut problems: Vec<String> = extents.iter().flat_map(|(_, e)| e.problems()).collect();
        for m in &rdm {
            problems.push(format!(
                "raw device mapping {} ({}): {} bytes live on {}, not in this file; they read as zeros",
                m.file,
                m.kind,
                m.len,
                m.target.as_deref().unwrap_or("the mapped LUN")
            ));
        }
        let parent =
            desc.parent_hint().map(|h| ParentRef { hints: vec![h], id: cid_hex(desc.parent_cid()), format: None });
        let parent = match parent {
            None if desc.parent_cid().is_some() => {
                Some(ParentRef { hints: Vec::new(), id: cid_hex(desc.parent_cid()), format: None })
            }
            p => p,
        };
        Ok(Self {
            path: path.into(),
            format: Format::Vmdk,
            variant: desc.create_type().to_string(),
            id: cid_hex(desc.cid()),
            parent,
            capacity: start,
            desc: Some(desc),
            extents,
            rdm,
            problems,
        })
    }

    /// The allocation of `range` in this link alone.
    pub fn map(&self, range: Range<u64>) -> Result<Vec<(Range<u64>, Alloc)>> {
        let mut out = Vec::new();
        for (start, e) in &self.extents {
            let (s, end) = (*start, start + e.len());
            let lo = range.start.max(s);
            let hi = range.end.min(end);
            if lo >= hi {
                continue;
            }
            for (r, a) in e.map(lo - s..hi - s)? {
                out.push((r.start + s..r.end + s, a));
            }
        }
        Ok(out)
    }

    /// Read `buf` at `off`, which `map` said is `Data`.
    pub fn read_data(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let (s, e) =
                self.extents.iter().find(|(s, e)| *s <= pos && pos < s + e.len()).ok_or_else(|| {
                    VdiskError::corrupt(&self.path, "extent list", pos, "offset past the last extent")
                })?;
            let n = ((s + e.len() - pos) as usize).min(buf.len() - done);
            e.read_data(pos - s, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Backing-file bytes this link failed to read in `range`.
    pub fn unreadable(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        for (s, e) in &self.extents {
            let lo = range.start.max(*s);
            let hi = range.end.min(s + e.len());
            if lo < hi {
                out.extend(e.unreadable(lo - s..hi - s).into_iter().map(|r| r.start + s..r.end + s));
            }
        }
        out
    }
}
