//! The VMDK descriptor: lenient on text (comments anywhere, CRLF, NUL padding, any key case,
//! quoted or bare values, trailing blanks), strict on extents (access, size, type, file,
//! offset), as research/vmdk-format.md §2 describes what real files contain.

use super::error::{Result, VdiskError};
use std::collections::BTreeMap;

/// Descriptors larger than this are not descriptors (real ones are under 2 KiB; qemu reads
/// at most 1 MiB).
pub const MAX_DESCRIPTOR: usize = 1 << 20;

/// One extent line: `ACCESS SIZE TYPE ["FILE" [OFFSET]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentLine {
    /// RW, RDONLY or NOACCESS (all are read).
    pub access: String,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, SESPARSE, VMFSRDM, VMFSRAW (upper case).
    pub kind: String,
    /// File name as written (relative to the descriptor's folder unless absolute).
    pub file: Option<String>,
    /// Start sector in the file (FLAT-like extents).
    pub offset: u64,
}

/// A parsed descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Header and DDB keys, lower-cased, values unquoted.
    pub keys: BTreeMap<String, String>,
    pub extents: Vec<ExtentLine>,
}

/// Does `b` look like descriptor text (and not a binary extent)?
pub fn looks_like_descriptor(b: &[u8]) -> bool {
    let text = b.split(|&c| c == 0).next().unwrap_or(&[]);
    if text.is_empty() || text.iter().take(4096).any(|&c| c < 0x09 || (0x0e..0x20).contains(&c) && c != 0x1b) {
        return false;
    }
    let s = String::from_utf8_lossy(&text[..text.len().min(4096)]).to_ascii_lowercase();
    s.contains("createtype") || s.contains("# disk descriptorfile") || s.contains("# disk descriptor file")
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
    v.to_string()
}

impl Descriptor {
    /// Parse descriptor text from `file` (named in errors).
    pub fn parse(file: &str, raw: &[u8]) -> Result<Self> {
        let err = |what: String| VdiskError::Descriptor { file: file.into(), what };
        if raw.len() > MAX_DESCRIPTOR {
            return Err(err(format!("{} bytes is too large for a descriptor", raw.len())));
        }
        let text = raw.split(|&c| c == 0).next().unwrap_or(&[]);
        let text = String::from_utf8_lossy(text);
        let mut d = Descriptor::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_matches(|c: char| c.is_whitespace());
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let first = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            if matches!(first.as_str(), "RW" | "RDONLY" | "NOACCESS") {
                d.extents.push(parse_extent(line).map_err(|w| err(format!("line {}: {w}", n + 1)))?);
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                d.keys.insert(k.trim().to_ascii_lowercase(), unquote(v));
            }
        }
        if d.extents.is_empty() {
            return Err(err("no extent lines".into()));
        }
        Ok(d)
    }

    /// A key's value (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    /// `CID`, when valid hex.
    pub fn cid(&self) -> Option<u32> {
        self.get("CID").and_then(|v| u32::from_str_radix(v.trim(), 16).ok())
    }

    /// `parentCID`; `None` for a base disk (`ffffffff` or absent).
    pub fn parent_cid(&self) -> Option<u32> {
        self.get("parentCID").and_then(|v| u32::from_str_radix(v.trim(), 16).ok()).filter(|&c| c != u32::MAX)
    }

    /// `parentFileNameHint`, with `\` turned into `/`.
    pub fn parent_hint(&self) -> Option<String> {
        self.get("parentFileNameHint").map(|h| h.replace('\\', "/")).filter(|h| !h.is_empty())
    }

    /// `createType`.
    pub fn create_type(&self) -> &str {
        self.get("createType").unwrap_or("")
    }

    /// Virtual size: the sum of every extent's size.
    pub fn capacity(&self) -> u64 {
        self.extents.iter().map(|e| e.sectors.saturating_mul(512)).fold(0, u64::saturating_add)
    }
}

fn parse_extent(line: &str) -> std::result::Result<ExtentLine, String> {
    // ACCESS SIZE TYPE ["FILE" [OFFSET ...]]; the file name is quoted and may hold spaces.
    let (head, rest) = match line.find('"') {
        Some(q) => (&line[..q], Some(&line[q + 1..])),
        None => (line, None),
    };
    let mut w = head.split_whitespace();
    let access = w.next().unwrap_or("").to_ascii_uppercase();
    let sectors: u64 = w.next().and_then(|s| s.parse().ok()).ok_or("extent size is not a number")?;
    let kind = w.next().ok_or("extent type missing")?.to_ascii_uppercase();
    let (file, offset) = match rest {
        Some(r) => {
            let end = r.find('"').ok_or("unterminated file name")?;
            let offset: u64 = r[end + 1..].split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(0);
            (Some(r[..end].to_string()), offset)
        }
        None => (w.next().map(String::from), 0),
    };
    if kind != "ZERO" && file.as_deref().is_none_or(str::is_empty) {
        return Err(format!("{kind} extent without a file name"));
    }
    // Every byte offset derived later (offset·512 + size·512) must fit in 64 bits.
    if sectors.checked_mul(512).and_then(|n| offset.checked_mul(512).and_then(|o| o.checked_add(n))).is_none() {
        return Err("extent size or offset overflows".into());
    }
    Ok(ExtentLine { access, sectors, kind, file, offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_text_strict_extents() {
        let t = b"# Disk DescriptorFile\r\nversion=1 \r\nCID=fffffffe\nparentCID=ffffffff\n createType=\"vmfs\"\n\n# Extent description\nRW 2048 VMFS \"my disk-flat.vmdk\"\nrdonly 8 ZERO\nRW 16 FLAT \"x.raw\" 4\nddb.Adapter = \"lsilogic\"\n\0\0\0";
        let d = Descriptor::parse("t", t).unwrap();
        assert_eq!(d.create_type(), "vmfs");
        assert_eq!(d.cid(), Some(0xffff_fffe));
        assert_eq!(d.parent_cid(), None);
        assert_eq!(d.extents.len(), 3);
        assert_eq!(d.extents[0].file.as_deref(), Some("my disk-flat.vmdk"));
        assert_eq!(d.extents[1].kind, "ZERO");
        assert_eq!(d.extents[2].offset, 4);
        assert_eq!(d.capacity(), (2048 + 8 + 16) * 512);
        assert_eq!(d.get("DDB.ADAPTER"), Some("lsilogic"));
        assert!(Descriptor::parse("t", b"CID=1\n").is_err());
        assert!(Descriptor::parse("t", b"RW x FLAT \"a\"").is_err());
        assert!(Descriptor::parse("t", b"RW 99999999999999999999 FLAT \"a\"").is_err());
        assert!(Descriptor::parse("t", b"RW 4 FLAT").is_err());
        assert!(Descriptor::parse("t", b"RW 4 FLAT \"a\" 99999999999999999").is_err());
        assert!(looks_like_descriptor(t));
        assert!(!looks_like_descriptor(b"KDMV\x01\0\0\0"));
    }
}
