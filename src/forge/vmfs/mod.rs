//! The VMFS writer: formats a volume the way ESXi does (system files, resource files with
//! their cluster headers, heartbeats, root directory), then takes directories and files and
//! places their data in every addressing mode, and writes all metadata on [`Writer::finish`].
//!
//! Data goes to disk as files are added; FDs, directories and bitmaps are kept in memory
//! and written at the end, so a deletion before `finish` leaves what ESXi leaves: the data
//! in place, the FD freed, the bits cleared.

pub mod alloc;
mod data;
pub mod dir;
pub mod encode;
pub mod params;

use super::ForgeError;
use super::disk::Target;
use alloc::Bitmap;
use dir::Entry;
use encode::{FdImage, Store};
pub use params::{Identity, Params, ResKind, ResSpec};
use std::collections::BTreeMap;

/// How a file's blocks are provisioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provisioning {
    /// Only blocks with data are allocated; the rest are holes.
    Thin,
    /// Every block allocated; never-written ones carry the to-be-zeroed flag.
    LazyThick,
    /// Every block allocated and zeroed.
    EagerThick,
}

/// FD types.
pub const T_DIR: u32 = 2;
pub const T_FILE: u32 = 3;
pub const T_SYMLINK: u32 = 4;
pub const T_SYS: u32 = 5;

/// The system files: (name, FD resource number, mode).
const SYSTEM: [(&str, u32); 10] = [
    (".fbb.sf", 1),
    (".fdc.sf", 2),
    (".pbc.sf", 3),
    (".sbc.sf", 4),
    (".vh.sf", 5),
    (".pb2.sf", 6),
    (".sdd.sf", 7),
    (".jbc.sf", 8),
    (".unmap.sf", 9),
    (".dfd.sf", 10),
];

/// A file or directory of the volume being written.
#[derive(Clone, Debug)]
struct Node {
    fd: FdImage,
    /// Entries of a directory, and its parent.
    dir: Option<(u32, Vec<Entry>)>,
    /// Deleted: written as a freed FD.
    freed: bool,
}

/// Where a system file's bytes live: its volume blocks in file order.
#[derive(Clone, Debug, Default)]
struct SysFile {
    blocks: Vec<u64>,
}

/// What `add_file` placed, for the ground truth and for damage scenarios.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Placed {
    pub fd: u32,
    /// Volume offset of the FD.
    pub fd_offset: u64,
    pub zla: u32,
    pub block_size: u64,
    /// (file offset, volume offset, length) of every allocated unit, data or TBZ.
    pub extents: Vec<(u64, u64, u64)>,
    /// Volume offsets of the pointer blocks.
    pub pointer_blocks: Vec<u64>,
}

/// The volume being written.
pub struct Writer {
    pub p: Params,
    pub t: Target,
    blocks: Bitmap,
    lfbs: Bitmap,
    fds: Bitmap,
    sbs: Bitmap,
    pbs: Bitmap,
    pb2s: Bitmap,
    nodes: BTreeMap<u32, Node>,
    sys: BTreeMap<u32, SysFile>,
    /// Resources each file uses: what a delete frees.
    units: BTreeMap<u32, Vec<(ResKind, u64)>>,
    /// Thin files (their SFBs are flagged in the cluster affinity tables).
    thin: std::collections::BTreeSet<u32>,
    /// VMFS6: the FD cluster each directory's children go to.
    dir_cluster: BTreeMap<u32, u64>,
    /// VMFS6: blocks .sbc.sf took after format (the clusters its FD tracks).
    sbc_grown: Vec<u64>,
    time: u32,
}

pub const ROOT: u32 = 4;

fn sys_addr(r: u32) -> u32 {
    crate::vmfs::address::make_fd(0, r)
}

/// (cluster, resource) of FD address `addr`, through the reader's decoder.
fn fd_slot(addr: u32) -> (u64, u64) {
    match crate::vmfs::address::fd(addr) {
        crate::vmfs::address::Addr::Fd { cluster, resource } => (cluster, resource),
        _ => (0, 0),
    }
}

impl Writer {
    /// Format a new VMFS on `t` (whose runs cover the volume). Writes nothing yet.
    pub fn format(p: Params, t: Target, time: u32) -> Result<Self, ForgeError> {
        if t.len() < p.vol_size {
            return Err(ForgeError::Layout(format!("target holds {} bytes, volume needs {}", t.len(), p.vol_size)));
        }
        let mut w = Self {
            blocks: Bitmap::new(p.blocks),
            lfbs: Bitmap::new(p.lfb.as_ref().map_or(0, |l| l.n)),
            fds: Bitmap::new(p.fdc.n),
            sbs: Bitmap::new(p.sbc.n),
            pbs: Bitmap::new(p.pbc.n),
            pb2s: Bitmap::new(p.pb2.n),
            nodes: BTreeMap::new(),
            sys: BTreeMap::new(),
            units: BTreeMap::new(),
            thin: Default::default(),
            dir_cluster: BTreeMap::new(),
            sbc_grown: Vec::new(),
            time,
            p,
            t,
        };
        w.layout_system_files()?;
        Ok(w)
    }

    fn fbs(&self) -> u64 {
        self.p.geo.fbs
    }

    fn take_blocks(&mut self, addr: u32, n: u64) -> Result<(), ForgeError> {
        for _ in 0..n {
            let b = self.blocks.alloc().ok_or_else(|| ForgeError::Layout("volume full (system files)".into()))?;
            self.sys.entry(addr).or_default().blocks.push(b);
        }
        Ok(())
    }

    /// Allocate the system files' blocks in ESXi's order and create their FDs and the root.
    fn layout_system_files(&mut self) -> Result<(), ForgeError> {
        let fbs = self.fbs();
        let v6 = self.p.v6();
        let blocks_of = |len: u64| len.div_ceil(fbs);
        let vh_len = self.p.fdc_base;
        let fbb_len = match &self.p.lfb {
            Some(l) => l.file_len(),
            None => self.p.fbb.file_len(),
        };
        let fdc_len = self.p.fdc.file_len();
        let unmap_len = self.p.unmap.as_ref().map_or(0, ResSpec::file_len);
        // Order seen on ESXi 8: .vh.sf, first .fdc.sf block, root, .fbb.sf, rest of .fdc.sf, ...
        self.take_blocks(sys_addr(5), blocks_of(vh_len))?;
        self.take_blocks(sys_addr(2), 1)?;
        self.take_blocks(ROOT, 1)?;
        self.take_blocks(sys_addr(1), blocks_of(fbb_len))?;
        self.take_blocks(sys_addr(2), blocks_of(fdc_len) - 1)?;
        self.take_blocks(sys_addr(3), blocks_of(self.p.pbc.file_len()))?;
        let sbc_blocks = blocks_of(self.p.sbc.file_len());
        let sbc_first = if v6 { sbc_blocks.min(self.p.geo.ptrs_count as u64) } else { sbc_blocks };
        self.take_blocks(sys_addr(4), sbc_first)?;
        if !self.p.v3() {
            self.take_blocks(sys_addr(6), blocks_of(self.p.pb2.file_len()))?;
            self.take_blocks(sys_addr(7), 1)?;
        }
        if v6 {
            let jbc = self.p.jbc.as_ref().map_or(0, ResSpec::file_len);
            self.take_blocks(sys_addr(8), blocks_of(jbc))?;
            self.take_blocks(sys_addr(9), blocks_of(unmap_len))?;
            // .sbc.sf grows into the next whole SFB cluster.
            let per = self.p.fbb.r;
            self.blocks.set_hint(self.blocks.hint().div_ceil(per) * per);
            self.take_blocks(sys_addr(4), sbc_blocks - sbc_first)?;
            let s = &self.sys[&sys_addr(4)].blocks;
            self.sbc_grown = s[sbc_first as usize..].to_vec();
            // User data starts after the system files of cluster 1, as on ESXi.
            self.blocks.set_hint(0);
        }
        // FDs 0..=7 (0..=5 on VMFS3, 0..=9 on VMFS6) of cluster 0.
        let last = if v6 {
            9
        } else if self.p.v3() {
            5
        } else {
            7
        };
        for r in 0..=last {
            self.fds.set(u64::from(r), true);
        }
        let t = self.time;
        for &(name, r) in SYSTEM.iter().filter(|(_, r)| *r <= last) {
            let addr = sys_addr(r);
            let len = match name {
                ".fbb.sf" => fbb_len,
                ".fdc.sf" => fdc_len,
                ".pbc.sf" => self.p.pbc.file_len(),
                ".sbc.sf" => self.p.sbc.file_len(),
                ".vh.sf" => vh_len,
                ".pb2.sf" => self.p.pb2.file_len(),
                ".jbc.sf" => self.p.jbc.as_ref().map_or(0, ResSpec::file_len),
                ".unmap.sf" => unmap_len,
                _ => 0,
            };
            let nb = self.sys.get(&addr).map_or(0, |s| s.blocks.len() as u64);
            let fd = FdImage {
                links: if name == ".sdd.sf" { 2 } else { 1 },
                size: len,
                num_blocks: nb,
                mode: if name == ".sdd.sf" { 0o40700 } else { 0o400 },
                new_since_epoch: if name == ".fdc.sf" { 1 } else { nb as u32 },
                ..FdImage::system(addr, T_SYS, fbs, t)
            };
            let dir = (name == ".sdd.sf").then(|| (addr, Vec::new()));
            self.nodes.insert(addr, Node { fd, dir, freed: false });
        }
        let root = FdImage {
            links: 2,
            num_blocks: 1,
            mode: 0o1755,
            new_since_epoch: 1,
            ..FdImage::system(ROOT, T_DIR, fbs, t)
        };
        let entries = SYSTEM
            .iter()
            .filter(|(_, r)| *r <= last)
            .map(|&(name, r)| Entry { name: name.into(), fd: sys_addr(r), generation: 1, kind: T_SYS })
            .collect();
        self.nodes.insert(ROOT, Node { fd: root, dir: Some((ROOT, entries)), freed: false });
        Ok(())
    }

    /// Volume offset of byte `off` of system file `addr`.
    fn sys_offset(&self, addr: u32, off: u64) -> Result<u64, ForgeError> {
        let fbs = self.fbs();
        let s = self.sys.get(&addr).ok_or_else(|| ForgeError::Layout(format!("no system file {addr:#x}")))?;
        let b = s
            .blocks
            .get((off / fbs) as usize)
            .ok_or_else(|| ForgeError::Layout(format!("offset {off:#x} beyond system file {addr:#x}")))?;
        Ok(b * fbs + off % fbs)
    }

    /// Write `bytes` at offset `off` of system file `addr` (may cross its blocks).
    fn sys_write(&self, addr: u32, off: u64, bytes: &[u8]) -> Result<(), ForgeError> {
        let fbs = self.fbs();
        let mut done = 0usize;
        while done < bytes.len() {
            let pos = off + done as u64;
            let n = ((fbs - pos % fbs) as usize).min(bytes.len() - done);
            self.t.write(self.sys_offset(addr, pos)?, &bytes[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Volume offset of FD `addr`.
    pub fn fd_offset(&self, addr: u32) -> Result<u64, ForgeError> {
        let (cl, res) = fd_slot(addr);
        self.sys_offset(sys_addr(2), self.p.fdc.resource(cl, res))
    }

    /// Volume offset of resource `idx` of `kind` (SB, PB, PB2).
    fn res_offset(&self, kind: ResKind, idx: u64) -> Result<u64, ForgeError> {
        let (spec, file) = match kind {
            ResKind::Sb => (&self.p.sbc, 4),
            ResKind::Pb => (&self.p.pbc, 3),
            ResKind::Pb2 => (&self.p.pb2, 6),
            _ => return Err(ForgeError::Layout(format!("{kind:?} has no resource data"))),
        };
        self.sys_offset(sys_addr(file), spec.resource(idx / spec.r, idx % spec.r))
    }

    /// A new FD address for a child of `parent`. ESXi 8 puts VMFS5 user FDs in FD cluster 4
    /// onwards, and on VMFS6 gives each directory's children an FD cluster of their own.
    fn new_fd(&mut self, parent: u32) -> Result<u32, ForgeError> {
        let r = self.p.fdc.r;
        let n = self.p.fdc.n;
        let i = if self.p.v6() {
            let mut cl = self.dir_cluster.get(&parent).copied();
            let mut found = None;
            for _ in 0..2 {
                if let Some(c) = cl
                    && let Some(i) = self.fds.alloc_in(c * r..(c + 1) * r)
                {
                    found = Some(i);
                    break;
                }
                // A cluster no directory has taken yet.
                let taken: std::collections::BTreeSet<u64> = self.dir_cluster.values().copied().collect();
                cl = (1..n / r).find(|c| !taken.contains(c) && self.fds.count(c * r..(c + 1) * r) == 0);
                if let Some(c) = cl {
                    self.dir_cluster.insert(parent, c);
                }
            }
            match found {
                Some(i) => i,
                None => self.fds.alloc().ok_or_else(|| ForgeError::Layout("no free file descriptor".into()))?,
            }
        } else {
            self.fds
                .alloc_in(4 * r..n)
                .or_else(|| self.fds.alloc())
                .ok_or_else(|| ForgeError::Layout("no free file descriptor".into()))?
        };
        Ok(crate::vmfs::address::make_fd((i / r) as u32, (i % r) as u32))
    }

    fn fd_index(&self, addr: u32) -> u64 {
        let (cl, res) = fd_slot(addr);
        cl * self.p.fdc.r + res
    }

    fn base_fd(&mut self, addr: u32, kind: u32, mode: u32, parent: u32) -> FdImage {
        // A fresh FD slot's generation is its resource number + 1.
        let generation = fd_slot(addr).1 as u32 + 1;
        let v6 = self.p.v6();
        FdImage {
            addr,
            generation,
            links: 1,
            kind,
            flags: 0,
            size: 0,
            block_size: self.fbs(),
            num_blocks: 0,
            time: self.time,
            mode,
            zla: 0x10D1,
            num_tbz: 0,
            new_since_epoch: 0,
            num_pbs: 0,
            affinity: if v6 && parent != ROOT { parent } else { addr },
            parent: if v6 { parent } else { 0 },
            last_sfbc: 0,
            affinity_bitmap: 0,
            meta_7c: 0,
            sfb_mask: 0,
            lock_token: 1,
            store: Store::Resident(Vec::new()),
        }
    }

    fn link(&mut self, parent: u32, name: &str, fd: &FdImage) -> Result<(), ForgeError> {
        if name.is_empty() || name.len() > 127 || name.contains('/') || name == "." || name == ".." {
            return Err(ForgeError::Layout(format!("bad file name {name:?}")));
        }
        let node = self.nodes.get_mut(&parent).ok_or_else(|| ForgeError::Layout(format!("no dir {parent:#x}")))?;
        let Some((_, entries)) = node.dir.as_mut() else {
            return Err(ForgeError::Layout(format!("{parent:#x} is not a directory")));
        };
        if entries.iter().any(|e| e.name == name) {
            return Err(ForgeError::Layout(format!("{name} exists")));
        }
        entries.push(Entry { name: name.into(), fd: fd.addr, generation: fd.generation, kind: fd.kind });
        Ok(())
    }

    /// Create directory `name` in `parent`; returns its FD address.
    pub fn mkdir(&mut self, parent: u32, name: &str) -> Result<u32, ForgeError> {
        let addr = self.new_fd(parent)?;
        let mut fd = self.base_fd(addr, T_DIR, 0o755, parent);
        fd.links = 2;
        self.link(parent, name, &fd)?;
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.fd.links += 1;
        }
        self.nodes.insert(addr, Node { fd, dir: Some((parent, Vec::new())), freed: false });
        Ok(addr)
    }

    /// Create a symbolic link.
    pub fn symlink(&mut self, parent: u32, name: &str, target: &str) -> Result<u32, ForgeError> {
        let addr = self.new_fd(parent)?;
        let mut fd = self.base_fd(addr, T_SYMLINK, 0o777, parent);
        self.link(parent, name, &fd)?;
        // VMFS5 keeps link targets in a sub-block, VMFS6 in the FD.
        let src = crate::block::SparseMem::from_bytes("symlink", target.as_bytes().to_vec());
        self.place_as(&mut fd, &src, Provisioning::Thin, data::Kind::Symlink)?;
        self.nodes.insert(addr, Node { fd, dir: None, freed: false });
        Ok(addr)
    }

    /// Create regular file `name` in `parent` with the content of `src` (its length is the
    /// file length), provisioned as `prov`.
    pub fn add_file(
        &mut self,
        parent: u32,
        name: &str,
        src: &dyn crate::block::BlockSource,
        prov: Provisioning,
        mode: u32,
    ) -> Result<Placed, ForgeError> {
        let addr = self.new_fd(parent)?;
        let mut fd = self.base_fd(addr, T_FILE, mode, parent);
        self.link(parent, name, &fd)?;
        if prov == Provisioning::Thin {
            self.thin.insert(addr);
        }
        let placed = self.place(&mut fd, src, prov)?;
        self.nodes.insert(addr, Node { fd, dir: None, freed: false });
        Ok(Placed { fd: addr, fd_offset: self.fd_offset(addr)?, ..placed })
    }

    /// Delete `name` from `parent` as ESXi does: the entry goes, the FD is freed with its
    /// block map cleared, the bitmap bits of its blocks, pointer blocks and sub-blocks are
    /// cleared, and the data stays where it was. Directories are deleted recursively.
    pub fn remove(&mut self, parent: u32, name: &str) -> Result<(), ForgeError> {
        let node = self.nodes.get_mut(&parent).ok_or_else(|| ForgeError::Layout(format!("no dir {parent:#x}")))?;
        let Some((_, entries)) = node.dir.as_mut() else {
            return Err(ForgeError::Layout(format!("{parent:#x} is not a directory")));
        };
        let i = entries
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| ForgeError::Layout(format!("{name} not found")))?;
        let e = entries.remove(i);
        if e.kind == T_DIR {
            node.fd.links -= 1;
        }
        self.free_tree(e.fd)
    }

    fn free_tree(&mut self, addr: u32) -> Result<(), ForgeError> {
        let children: Vec<String> = self
            .nodes
            .get(&addr)
            .and_then(|n| n.dir.as_ref())
            .map(|(_, es)| es.iter().map(|e| e.name.clone()).collect())
            .unwrap_or_default();
        if self.nodes.get(&addr).is_some_and(|n| n.dir.is_some()) {
            // The directory's last content stays on disk, as after a real delete.
            self.write_dir(addr)?;
        }
        for c in children {
            self.remove(addr, &c)?;
        }
        self.release(addr);
        let i = self.fd_index(addr);
        self.fds.set(i, false);
        if let Some(n) = self.nodes.get_mut(&addr) {
            n.freed = true;
        }
        Ok(())
    }

    /// The content of small file `fd` (resident or in one sub-block).
    pub fn read_small(&self, fd: u32) -> Result<Vec<u8>, ForgeError> {
        let n = self.nodes.get(&fd).ok_or_else(|| ForgeError::Layout(format!("no FD {fd:#x}")))?;
        match &n.fd.store {
            Store::Resident(b) => Ok(b.clone()),
            Store::Pointers(p) if n.fd.zla == 2 && p.len() == 1 => {
                let i = self.units.get(&fd).and_then(|u| u.first()).map(|u| u.1).unwrap_or(0);
                let mut b = vec![0u8; n.fd.size as usize];
                self.t.read(self.res_offset(ResKind::Sb, i)?, &mut b)?;
                Ok(b)
            }
            _ => Err(ForgeError::Layout(format!("FD {fd:#x} is not a small file"))),
        }
    }

    /// Replace the content of small file `addr` (a descriptor or .vmx being edited in place):
    /// its FD keeps its address; the new bytes take its resident area or sub-block.
    pub fn rewrite_small(&mut self, addr: u32, bytes: &[u8]) -> Result<(), ForgeError> {
        let mut fd = self.nodes.get(&addr).ok_or_else(|| ForgeError::Layout(format!("no FD {addr:#x}")))?.fd.clone();
        self.release(addr);
        let src = crate::block::SparseMem::from_bytes("rewrite", bytes.to_vec());
        self.place(&mut fd, &src, Provisioning::Thin)?;
        if let Some(n) = self.nodes.get_mut(&addr) {
            n.fd = fd;
        }
        Ok(())
    }

    /// FD address of `path` (absolute, "/"-separated).
    pub fn lookup(&self, path: &str) -> Option<u32> {
        let mut cur = ROOT;
        for part in path.split('/').filter(|s| !s.is_empty()) {
            let (_, es) = self.nodes.get(&cur)?.dir.as_ref()?;
            cur = es.iter().find(|e| e.name == part)?.fd;
        }
        Some(cur)
    }

    /// Write all metadata: directories, FDs, resource files, descriptor, heartbeats.
    pub fn finish(mut self) -> Result<Target, ForgeError> {
        self.write_directories()?;
        self.write_resource_files()?;
        self.write_fds()?;
        let desc = encode::fs_descriptor(&self.p);
        self.t.write(crate::vmfs::ondisk::FS_DESCRIPTOR_OFFSET, &desc)?;
        self.t.write(0x30_0000, &encode::heartbeats(&self.p))?;
        self.t.sync()?;
        self.t.root_blocks = self.sys.get(&ROOT).map(|s| s.blocks.clone()).unwrap_or_default();
        self.t.params = Some(self.p.clone());
        Ok(self.t)
    }

    fn write_fds(&self) -> Result<(), ForgeError> {
        for n in self.nodes.values() {
            let off = self.fd_offset(n.fd.addr)?;
            let img = if n.freed { n.fd.freed() } else { n.fd.clone() };
            self.t.write(off, &img.encode(&self.p, off))?;
        }
        Ok(())
    }
}
