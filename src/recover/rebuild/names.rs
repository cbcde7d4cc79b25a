//! Names for FDs that no readable directory lists: every directory entry the scan saw (in live,
//! deleted and formatted-over directories alike), and, failing that, a name made from content.

use crate::block::BlockSource;
use crate::recover::finding::{Finding, What};
use crate::vmfs::volume::ROOT_FD;
use crate::vmfs::{Fd, Vmfs, VmfsFile};
use std::collections::HashMap;

/// One sighting of a name.
struct Seen {
    name: String,
    generation: u32,
    /// The directory that listed it, when the block said (VMFS3/5 "." entries).
    dir: Option<u32>,
}

/// Every name the scan saw, by FD address.
#[derive(Default)]
pub struct Names {
    by_addr: HashMap<u32, Vec<Seen>>,
    /// Directory → parent, from VMFS6 headers and VMFS3/5 ".." entries.
    parent6: HashMap<u32, u32>,
    /// Names each directory was seen to list.
    children: HashMap<u32, Vec<String>>,
}

/// Deepest path rebuilt (a cycle of hostile entries ends here).
const MAX_DEPTH: usize = 64;
/// A VMFS6 directory's blocks lie within one 1 MiB file block of its header.
const DIR6_SPAN: u64 = 1 << 20;

impl Names {
    pub fn from_findings(findings: &[Finding]) -> Self {
        let mut n = Self::default();
        // VMFS6 dirent blocks follow their directory's header in the same file block.
        let mut header6: Option<(usize, u64, u32)> = None;
        for f in findings {
            match &f.what {
                What::DirEntries { entries, v6 } => {
                    let dir = if *v6 {
                        header6
                            .filter(|&(s, at, _)| s == f.source && f.offset > at && f.offset - at < DIR6_SPAN)
                            .map(|h| h.2)
                    } else {
                        entries.iter().find(|e| e.name == ".").map(|e| e.addr)
                    };
                    if let (Some(d), Some(up)) = (dir, entries.iter().find(|e| e.name == "..")) {
                        n.parent6.entry(d).or_insert(up.addr);
                    }
                    for e in entries.iter().filter(|e| e.name != "." && e.name != "..") {
                        n.by_addr.entry(e.addr).or_default().push(Seen {
                            name: e.name.clone(),
                            generation: e.generation,
                            dir,
                        });
                        if let Some(d) = dir {
                            n.children.entry(d).or_default().push(e.name.clone());
                        }
                    }
                }
                What::DirHeader6 { addr, parent, .. } => {
                    n.parent6.insert(*addr, *parent);
                    header6 = Some((f.source, f.offset, *addr));
                }
                _ => {}
            }
        }
        n
    }

    fn seen(&self, addr: u32, generation: u32) -> Option<&Seen> {
        let all = self.by_addr.get(&addr)?;
        all.iter().find(|s| s.generation == generation).or_else(|| all.last())
    }

    /// The name of FD `addr` (generation `generation` preferred).
    pub fn name_of(&self, addr: u32, generation: u32) -> Option<&str> {
        self.seen(addr, generation).map(|s| s.name.as_str())
    }

    /// Components from the root to FD `addr`, when its folder is known; a folder whose own
    /// entry is lost is named after what it was seen to list, a leaf after its address.
    /// `parent` is the FD's own parent field (VMFS6), 0 when it has none. The flag says
    /// whether every name is one that was on disk.
    pub fn path_of(&self, addr: u32, generation: u32, parent: u32) -> Option<(Vec<String>, bool)> {
        let mut out = Vec::new();
        let mut exact = true;
        let mut cur = addr;
        let mut seen = self.seen(addr, generation);
        let mut up =
            seen.and_then(|s| s.dir).or((parent != 0).then_some(parent)).or_else(|| self.parent6.get(&addr).copied());
        for _ in 0..MAX_DEPTH {
            match seen {
                Some(s) => out.push(s.name.clone()),
                None => {
                    exact = false;
                    let made = self.name_from_children(cur);
                    out.push(made.unwrap_or_else(|| format!("fd-{cur:#x}")));
                }
            }
            let next = up?;
            if next == ROOT_FD {
                out.reverse();
                return Some((out, exact));
            }
            cur = next;
            seen = self.by_addr.get(&cur).and_then(|v| v.last());
            up = seen.and_then(|s| s.dir).or_else(|| self.parent6.get(&cur).copied());
        }
        None
    }

    /// A folder named after the .vmx (or disk) it was seen to list.
    fn name_from_children(&self, dir: u32) -> Option<String> {
        let kids = self.children.get(&dir)?;
        name_from_names(kids.iter().map(String::as_str)).map(|(n, _)| n)
    }
}

/// A VM folder's name from the names inside it: the .vmx's stem, else the base disk's.
pub fn name_from_names<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Option<(String, &'static str)> {
    if let Some(v) = names.clone().find(|n| n.ends_with(".vmx")) {
        return Some((v.trim_end_matches(".vmx").to_string(), "named after the .vmx inside"));
    }
    let mut names = names;
    let d = names.find(|n| {
        n.ends_with(".vmdk")
            && !n.ends_with("-flat.vmdk")
            && !n.ends_with("-delta.vmdk")
            && !n.ends_with("-sesparse.vmdk")
    })?;
    let stem = d.trim_end_matches(".vmdk");
    // A snapshot link "vm-000001" names its VM "vm".
    let stem = match stem.rsplit_once('-') {
        Some((a, b)) if b.len() == 6 && b.bytes().all(|c| c.is_ascii_digit()) => a,
        _ => stem,
    };
    Some((stem.to_string(), "named after the virtual disk inside"))
}

/// A name made from what an unnamed FD holds, and how it was made.
pub fn infer(fs: &std::sync::Arc<Vmfs>, fd: &Fd) -> (String, &'static str) {
    let fallback = format!("fd-{:#x}", fd.addr);
    if fd.is_dir() {
        let Ok(es) = fs.read_dir(fd) else { return (fallback, "no name survived") };
        let names: Vec<String> = es.iter().map(|e| e.name_lossy()).collect();
        if let Some(n) = name_from_names(names.iter().map(String::as_str)) {
            return n;
        }
        return (fallback, "no name survived");
    }
    let f = VmfsFile::new(std::sync::Arc::clone(fs), fd.clone(), fallback.clone());
    let mut head = [0u8; 64];
    let n = (f.len() as usize).min(64);
    if f.read_at(0, &mut head[..n]).is_err() {
        return (fallback, "no name survived");
    }
    let head = &head[..n];
    let ext = if head.starts_with(b"# Disk DescriptorFile") || head.starts_with(b"KDMV") {
        ".vmdk"
    } else if head.starts_with(b".encoding") || head.starts_with(b"config.version") {
        ".vmx"
    } else if head.starts_with(b"snapshot.") {
        ".vmsd"
    } else {
        return (fallback, "no name survived");
    };
    (format!("{fallback}{ext}"), "no name survived; extension from its content")
}
