//! Walking a directory tree, with a visited set so a directory cycle ends the branch, not the walk.

use super::error::{CorruptKind, Error};
use super::fd::Fd;
use super::volume::Vmfs;
use std::collections::HashSet;

/// One item met during a walk.
pub enum WalkItem {
    /// An entry whose FD was read.
    Entry {
        /// Display path ("/dir/name", names lossily decoded).
        path: String,
        /// The raw name bytes of every component below the walk's start.
        components: Vec<Vec<u8>>,
        /// Its FD.
        fd: Fd,
    },
    /// An entry or directory that could not be read.
    Error {
        /// Display path.
        path: String,
        /// Why.
        error: Error,
        /// The directory entry, when it is the entry's FD that could not be read (the name
        /// survives, and a recovery can still look for the content by other means).
        entry: Option<Unread>,
    },
}

/// A directory entry whose FD could not be read.
pub struct Unread {
    /// The raw name bytes of every component below the walk's start, this entry's last.
    pub components: Vec<Vec<u8>>,
    /// The FD address the entry names.
    pub addr: u32,
}

impl Vmfs {
    /// Visit the entries under directory `dir` (whose display path is `base`), depth first in
    /// on-disk order; into subdirectories when `recursive`.
    pub fn walk(&self, dir: &Fd, base: &str, recursive: bool, visit: &mut dyn FnMut(WalkItem)) {
        let mut seen = HashSet::new();
        seen.insert(dir.addr);
        self.walk_inner(dir, base, &mut Vec::new(), recursive, &mut seen, visit);
    }

    fn walk_inner(
        &self,
        dir: &Fd,
        base: &str,
        comps: &mut Vec<Vec<u8>>,
        recursive: bool,
        seen: &mut HashSet<u32>,
        visit: &mut dyn FnMut(WalkItem),
    ) {
        let entries = match self.read_dir(dir) {
            Ok(e) => e,
            Err(error) => {
                visit(WalkItem::Error { path: base.to_string(), error, entry: None });
                return;
            }
        };
        for e in entries {
            let path = if base.ends_with('/') {
                format!("{base}{}", e.name_lossy())
            } else {
                format!("{base}/{}", e.name_lossy())
            };
            let fd = match self.read_fd(e.addr) {
                Ok(fd) => fd,
                Err(error) => {
                    let mut components = comps.clone();
                    components.push(e.name.clone());
                    visit(WalkItem::Error { path, error, entry: Some(Unread { components, addr: e.addr }) });
                    continue;
                }
            };
            comps.push(e.name.clone());
            let descend = recursive && fd.is_dir();
            let fd_addr = fd.addr;
            visit(WalkItem::Entry { path: path.clone(), components: comps.clone(), fd: fd.clone() });
            if descend {
                if seen.insert(fd_addr) {
                    self.walk_inner(&fd, &path, comps, recursive, seen, visit);
                } else {
                    visit(WalkItem::Error {
                        path: path.clone(),
                        error: Error::corrupt("directory", fd.vol_offset(), CorruptKind::DirectoryCycle(fd_addr)),
                        entry: None,
                    });
                }
            }
            comps.pop();
        }
    }
}
