//! Image formats other than VMDK descriptors: recognising a file by its magic, and what a
//! format reader hands back to the chain (one reader for the whole virtual disk, the file's
//! own identity, and where its parent is). Each format lives in its own module; this one only
//! knows their magics and dispatches to them.

use super::error::{Result, VdiskError};
use super::extent::{ExtentReader, FlatExtent};
use super::files::Files;
use crate::block::Source;

/// The format of one link of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A VMDK descriptor (text or embedded in a KDMV file) with its extents.
    Vmdk,
    Qcow2,
    /// VHD ("vpc" to qemu): fixed, dynamic, differencing.
    Vhd,
    Vhdx,
    Vdi,
    Parallels,
    Bochs,
    Cloop,
    Dmg,
    /// A plain image: only when a child names it so (qcow2 `backing_fmt=raw`) or the caller
    /// asks; never guessed, so a damaged header is not silently read as raw data.
    Raw,
}

impl Format {
    /// The name `qemu-img -f` uses.
    pub fn name(self) -> &'static str {
        match self {
            Format::Vmdk => "vmdk",
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vpc",
            Format::Vhdx => "vhdx",
            Format::Vdi => "vdi",
            Format::Parallels => "parallels",
            Format::Bochs => "bochs",
            Format::Cloop => "cloop",
            Format::Dmg => "dmg",
            Format::Raw => "raw",
        }
    }

    /// The format called `name` (qemu's names, as qcow2 `backing_fmt` stores them).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "vmdk" => Format::Vmdk,
            "qcow2" => Format::Qcow2,
            "vpc" | "vhd" => Format::Vhd,
            "vhdx" => Format::Vhdx,
            "vdi" => Format::Vdi,
            "parallels" => Format::Parallels,
            "bochs" => Format::Bochs,
            "cloop" => Format::Cloop,
            "dmg" => Format::Dmg,
            "raw" | "file" => Format::Raw,
            _ => return None,
        })
    }
}

/// Where a link's parent is and how to recognise it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParentRef {
    /// File names as the child stores them, most trusted first; "/"-separated (a Windows path
    /// has its `\` turned into `/` by the format reader). Relative names are relative to the
    /// child's folder.
    pub hints: Vec<String>,
    /// The identity the parent must have: a VMDK CID as 8 lowercase hex digits, or a UUID/GUID
    /// in lowercase hyphenated form, compared with the parent's [`Image::id`].
    pub id: Option<String>,
    /// The parent's format when the child names it (qcow2 `backing_fmt`).
    pub format: Option<Format>,
}

/// A single-file link opened by a format reader.
pub struct Image {
    pub format: Format,
    /// Sub-format in words ("dynamic", "v3, zstd", ...), shown by `vdisk info`.
    pub variant: String,
    /// Virtual size in bytes.
    pub capacity: u64,
    /// The whole virtual disk of this link, offsets 0..capacity.
    pub reader: Box<dyn ExtentReader>,
    /// This link's identity, as a child's [`ParentRef::id`] names it.
    pub id: Option<String>,
    pub parent: Option<ParentRef>,
}

/// Bytes read from the start and the end of a file to recognise it.
const PROBE: usize = 1024;

/// The format of `src`, from its magic numbers; `None` when no known magic is present.
/// A file that is none of these may still be a VMDK descriptor (text): the caller checks.
pub fn detect(src: &Source) -> Result<Option<Format>> {
    let len = src.len();
    let mut head = vec![0u8; (len.min(PROBE as u64)) as usize];
    src.read_at(0, &mut head)?;
    let at = |off: usize, m: &[u8]| head.get(off..off + m.len()) == Some(m);
    if at(0, b"KDMV") || at(0, b"COWD") || at(0, &0xcafe_babe_u32.to_le_bytes()) {
        return Ok(Some(Format::Vmdk));
    }
    if at(0, b"QFI\xfb") {
        return Ok(Some(Format::Qcow2));
    }
    if at(0, b"vhdxfile") {
        return Ok(Some(Format::Vhdx));
    }
    if at(0, b"conectix") {
        return Ok(Some(Format::Vhd));
    }
    if at(0x40, &0xbeda_107f_u32.to_le_bytes()) {
        return Ok(Some(Format::Vdi));
    }
    if at(0, b"WithoutFreeSpace") || at(0, b"WithouFreSpacExt") {
        return Ok(Some(Format::Parallels));
    }
    if at(0, b"Bochs Virtual HD Image") {
        return Ok(Some(Format::Bochs));
    }
    if at(0, b"#!/bin/sh") && head.windows(12).any(|w| w == b"#V2.0 Format") {
        return Ok(Some(Format::Cloop));
    }
    // Footer-only formats: a fixed VHD ends with its footer (511 bytes on very old images),
    // a DMG with its "koly" trailer.
    if len >= 512 {
        let mut tail = [0u8; 512];
        src.read_at(len - 512, &mut tail)?;
        if &tail[..8] == b"conectix" || &tail[1..9] == b"conectix" {
            return Ok(Some(Format::Vhd));
        }
        if &tail[..4] == b"koly" {
            return Ok(Some(Format::Dmg));
        }
    }
    Ok(None)
}

/// Open `src` (the file at `path`) as `format`. `files` opens the files a format refers to
/// (a qcow2 external data file).
pub fn open(format: Format, files: &dyn Files, path: &str, src: Source) -> Result<Image> {
    match format {
        Format::Raw => Ok(raw(src)),
        Format::Qcow2 => super::qcow2::open(files, path, src),
        Format::Vhd => super::vhd::open(path, src),
        Format::Vhdx => super::vhdx::open(path, src),
        Format::Vmdk => {
            Err(VdiskError::Unsupported { file: path.into(), what: "a VMDK is opened through its descriptor".into() })
        }
        Format::Vdi => super::vdi::open(path, src),
        Format::Parallels => super::parallels::open(path, src),
        Format::Bochs => super::bochs::open(path, src),
        Format::Cloop => super::cloop::open(path, src),
        Format::Dmg => super::dmg::open(path, src),
    }
}

/// A block or cluster size in words for a variant ("64 KiB", "512 B").
pub(crate) fn size_words(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1024 && b.is_multiple_of(1024) => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A plain image: every byte is data where the file has data, holes are zeros.
pub fn raw(src: Source) -> Image {
    let capacity = src.len();
    Image {
        format: Format::Raw,
        variant: "raw".into(),
        capacity,
        reader: Box::new(FlatExtent { file: src, offset: 0, len: capacity }),
        id: None,
        parent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use std::sync::Arc;

    fn src(b: Vec<u8>) -> Source {
        Arc::new(Tolerant::new(MemSource::new("t", b)))
    }

    #[test]
    fn recognises_magics() {
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(b"QFI\xfb");
        assert_eq!(detect(&src(b.clone())).unwrap(), Some(Format::Qcow2));
        b[..4].fill(0);
        b[0x40..0x44].copy_from_slice(&0xbeda_107f_u32.to_le_bytes());
        assert_eq!(detect(&src(b.clone())).unwrap(), Some(Format::Vdi));
        b[0x40..0x44].fill(0);
        b[4096 - 512..4096 - 504].copy_from_slice(b"conectix");
        assert_eq!(detect(&src(b.clone())).unwrap(), Some(Format::Vhd));
        assert_eq!(detect(&src(vec![0u8; 4096])).unwrap(), None);
        assert_eq!(detect(&src(b"# Disk DescriptorFile\n".to_vec())).unwrap(), None);
        assert_eq!(detect(&src(Vec::new())).unwrap(), None);
    }

    #[test]
    fn names_round_trip() {
        for f in [Format::Vmdk, Format::Qcow2, Format::Vhd, Format::Vhdx, Format::Vdi, Format::Raw] {
            assert_eq!(Format::from_name(f.name()), Some(f));
        }
    }
}
