//! Placing file data: resident, sub-block, file blocks (FB/SFB/LFB) behind direct,
//! single-indirect or double-indirect pointers; thin holes and to-be-zeroed blocks. Also
//! the directories' storage and the resource files, written at `finish`.

use super::alloc::Bitmap;
use super::encode::{
    Affinity, FdImage, Store, cluster_header, lfb_cluster_header, lock, put_pointers, res_header, sfb_cluster_header,
};
use super::params::cluster_lock_type;
use super::params::{ResKind, ResSpec};
use super::{Placed, Provisioning, ROOT, Writer, dir, sys_addr};
use crate::block::BlockSource;
use crate::forge::ForgeError;
use crate::vmfs::address::{make_fb, make_lfb, make_res32, make_res64, make_sfb};
use std::collections::BTreeMap;

/// ZLA values.
const ZLA_FB: u32 = 1;
const ZLA_SB: u32 = 2;
const ZLA_PB: u32 = 3;
const ZLA_PB2: u32 = 5;
const ZLA_DOUBLE: u32 = 0x10D0;
const ZLA_RESIDENT: u32 = 0x10D1;

/// Read size for copying content.
const CHUNK: u64 = 1 << 20;

/// What is being placed: the addressing ESXi picks differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    /// Never resident; VMFS6 keeps directories up to 16 SBs (1 MiB) in sub-blocks.
    Dir,
    /// VMFS5: a sub-block; VMFS6: resident.
    Symlink,
}

impl Writer {
    fn full(&self, what: &str) -> ForgeError {
        ForgeError::Layout(format!("volume full: no free {what}"))
    }

    fn sb_addr(&self, idx: u64) -> u64 {
        let r = self.p.sbc.r;
        let (cl, res) = (idx / r, idx % r);
        if self.p.v6() {
            make_res64(2, cl, res)
        } else {
            // Dense SBPC: resource bits 4-5 go to address bits 3-4.
            u64::from(make_res32(2, cl as u32, (res & 0xF) as u32) | (((res >> 4) & 3) as u32) << 3)
        }
    }

    /// A new pointer block: its address, volume offset and resource (kind, index).
    fn new_pointer_block(&mut self) -> Result<(u64, u64, (ResKind, u64)), ForgeError> {
        if self.p.v6() {
            let i = self.sbs.alloc().ok_or_else(|| self.full("sub-block for a pointer block"))?;
            Ok((self.sb_addr(i), self.res_offset(ResKind::Sb, i)?, (ResKind::Sb, i)))
        } else {
            let i = self.pbs.alloc().ok_or_else(|| self.full("pointer block"))?;
            let r = self.p.pbc.r;
            let a = u64::from(make_res32(3, (i / r) as u32, (i % r) as u32));
            Ok((a, self.res_offset(ResKind::Pb, i)?, (ResKind::Pb, i)))
        }
    }

    /// Copy `src[range]` to volume offset `vol`.
    fn copy(&self, src: &dyn BlockSource, range: std::ops::Range<u64>, vol: u64) -> Result<(), ForgeError> {
        let mut buf = vec![0u8; CHUNK as usize];
        let mut pos = range.start;
        while pos < range.end {
            let n = (range.end - pos).min(CHUNK) as usize;
            src.read_at(pos, &mut buf[..n])?;
            self.t.write(vol + (pos - range.start), &buf[..n])?;
            pos += n as u64;
        }
        Ok(())
    }

    /// Lay out the content of `src` for `fd` and write the data and pointer blocks.
    pub(super) fn place(
        &mut self,
        fd: &mut FdImage,
        src: &dyn BlockSource,
        prov: Provisioning,
    ) -> Result<Placed, ForgeError> {
        self.place_as(fd, src, prov, Kind::File)
    }

    /// As [`Writer::place`], for `kind`.
    pub(super) fn place_as(
        &mut self,
        fd: &mut FdImage,
        src: &dyn BlockSource,
        prov: Provisioning,
        kind: Kind,
    ) -> Result<Placed, ForgeError> {
        let size = src.len();
        let g = self.p.geo.clone();
        let v6 = self.p.v6();
        fd.size = size;
        fd.num_blocks = 0;
        fd.num_tbz = 0;
        fd.num_pbs = 0;
        fd.new_since_epoch = 0;
        fd.meta_7c = 0;
        fd.sfb_mask = 0;
        fd.last_sfbc = 0;
        fd.affinity_bitmap = 0;
        let mut placed = Placed {
            fd: fd.addr,
            fd_offset: 0,
            zla: 0,
            block_size: 0,
            extents: Vec::new(),
            pointer_blocks: Vec::new(),
        };
        let mut units: Vec<(ResKind, u64)> = Vec::new();
        let resident = !self.p.v3()
            && match kind {
                Kind::File => true,
                Kind::Dir => false,
                Kind::Symlink => v6,
            };
        if resident && size <= g.data_size as u64 && prov == Provisioning::Thin {
            let mut b = vec![0u8; size as usize];
            src.read_at(0, &mut b)?;
            fd.zla = ZLA_RESIDENT;
            fd.block_size = g.sbs;
            fd.store = Store::Resident(b);
            placed.zla = ZLA_RESIDENT;
            placed.block_size = g.fbs;
            self.units.insert(fd.addr, units);
            return Ok(placed);
        }
        let max_sbs = if v6 && kind == Kind::Dir { 16 } else { 1 };
        if size <= max_sbs * g.sbs && prov == Provisioning::Thin {
            let n = size.div_ceil(g.sbs).max(1);
            let mut ptrs = Vec::new();
            for k in 0..n {
                let i = self.sbs.alloc().ok_or_else(|| self.full("sub-block"))?;
                let off = self.res_offset(ResKind::Sb, i)?;
                let (lo, hi) = (k * g.sbs, ((k + 1) * g.sbs).min(size));
                // The whole sub-block, zero-padded: it may hold an older file's bytes.
                let mut b = vec![0u8; g.sbs as usize];
                src.read_at(lo, &mut b[..(hi - lo) as usize])?;
                self.t.write(off, &b)?;
                ptrs.push(self.sb_addr(i));
                units.push((ResKind::Sb, i));
                placed.extents.push((lo, off, g.sbs));
            }
            fd.zla = ZLA_SB;
            fd.block_size = g.sbs;
            fd.num_blocks = n;
            fd.new_since_epoch = n as u32;
            fd.store = Store::Pointers(ptrs);
            placed.zla = ZLA_SB;
            placed.block_size = g.sbs;
            self.units.insert(fd.addr, units);
            return Ok(placed);
        }
        // Thick files take large file blocks while whole free ones remain (ESXi: "as much as
        // possible"); the forge does not mix LFBs and SFBs in one file.
        let use_lfb = v6 && prov != Provisioning::Thin && size >= g.lfb && self.free_lfbs() >= size.div_ceil(g.lfb);
        let bs = if use_lfb { g.lfb } else { g.fbs };
        let nblocks = size.div_ceil(bs);
        // Blocks that hold data.
        let mut data = std::collections::BTreeSet::new();
        for r in src.data_ranges(0..size) {
            (r.start / bs..r.end.div_ceil(bs)).for_each(|b| {
                data.insert(b);
            });
        }
        // Thick files allocate every block, thin files only those with data.
        let targets: Vec<u64> =
            if prov == Provisioning::Thin { data.iter().copied().collect() } else { (0..nblocks).collect() };
        // Leaf pointers of allocated blocks, by block index (absent: a hole).
        let mut leaves = BTreeMap::new();
        let mut num_blocks = 0u64;
        let mut num_tbz = 0u64;
        for b in targets {
            let has_data = data.contains(&b);
            let (vol, ptr) = if use_lfb {
                let l = self.alloc_lfb()?;
                units.push((ResKind::Lfb, l));
                let tbz = if has_data || prov == Provisioning::EagerThick { 0 } else { 0xFF };
                (l * g.lfb, make_lfb(l, tbz))
            } else {
                let k = self.blocks.alloc().ok_or_else(|| self.full("file block"))?;
                units.push((ResKind::Fb, k));
                let tbz = !has_data && prov == Provisioning::LazyThick;
                let ptr = if v6 {
                    make_sfb(k / self.p.fbb.r, k % self.p.fbb.r, if tbz { 0xFF } else { 0 })
                } else {
                    u64::from(make_fb(k as u32, tbz))
                };
                (k * g.fbs, ptr)
            };
            let fstart = b * bs;
            let fend = ((b + 1) * bs).min(size);
            if has_data {
                if use_lfb {
                    // Write the data ranges and zero the rest of the LFB.
                    self.t.punch(vol, bs)?;
                    for r in src.data_ranges(fstart..fend) {
                        self.copy(src, r.clone(), vol + (r.start - fstart))?;
                    }
                } else {
                    self.copy(src, fstart..fend, vol)?;
                }
            } else if prov == Provisioning::EagerThick {
                self.t.punch(vol, bs)?;
            } else {
                num_tbz += 1;
            }
            num_blocks += 1;
            placed.extents.push((fstart, vol, bs));
            leaves.insert(b, ptr);
        }
        // Entries `lo..hi` of the leaf level (0 for holes).
        let slice = |lo: u64, hi: u64| -> Vec<u64> {
            let mut v = vec![0u64; (hi - lo) as usize];
            for (&b, &p) in leaves.range(lo..hi) {
                v[(b - lo) as usize] = p;
            }
            v
        };
        let per = g.ptrs_count as u64;
        let n = g.pb_entries;
        let (zla, top) = if nblocks <= per {
            (ZLA_FB, slice(0, nblocks))
        } else if nblocks <= per * n {
            let mut top = Vec::new();
            for t in 0..nblocks.div_ceil(n) {
                let entries = slice(t * n, ((t + 1) * n).min(nblocks));
                top.push(self.pointer_block(&entries, &mut units, &mut placed)?);
            }
            (ZLA_PB, top)
        } else if nblocks <= per * n * n {
            let mut top = Vec::new();
            for t in 0..nblocks.div_ceil(n * n) {
                let mut mid = Vec::new();
                for m in 0..n {
                    let first = (t * n + m) * n;
                    if first >= nblocks {
                        break;
                    }
                    let entries = slice(first, (first + n).min(nblocks));
                    mid.push(self.pointer_block(&entries, &mut units, &mut placed)?);
                }
                top.push(self.pointer_block(&mid, &mut units, &mut placed)?);
            }
            (ZLA_DOUBLE, top)
        } else {
            return Err(ForgeError::Layout(format!("a file of {size} bytes is beyond double-indirect reach")));
        };
        fd.zla = zla;
        fd.block_size = bs;
        fd.num_blocks = num_blocks;
        fd.num_tbz = num_tbz;
        fd.new_since_epoch = num_blocks as u32;
        fd.num_pbs = placed.pointer_blocks.len() as u32;
        if v6 {
            fd.flags = if num_blocks > 0 { 0x9 } else { 0x1 };
            // The SFB clusters the file uses, tracked in its FD.
            let sfbs = units.iter().filter(|(k, _)| *k == ResKind::Fb).map(|&(_, b)| b);
            fd.track_sfb_clusters(sfbs, self.p.fbb.r);
        }
        fd.store = Store::Pointers(top);
        placed.zla = zla;
        placed.block_size = bs;
        self.units.insert(fd.addr, units);
        Ok(placed)
    }

    /// A pointer block holding `entries`, or 0 when every entry is 0 (a thin hole).
    fn pointer_block(
        &mut self,
        entries: &[u64],
        units: &mut Vec<(ResKind, u64)>,
        placed: &mut Placed,
    ) -> Result<u64, ForgeError> {
        if entries.iter().all(|&e| e == 0) {
            return Ok(0);
        }
        let (addr, off, unit) = self.new_pointer_block()?;
        let w = self.p.geo.ptr_width;
        let mut b = vec![0u8; self.p.geo.pb_entries as usize * w];
        put_pointers(&mut b, w, entries);
        self.t.write(off, &b)?;
        units.push(unit);
        placed.pointer_blocks.push(off);
        Ok(addr)
    }

    /// Whether LFB `l` is wholly free: not taken as an LFB, and none of its 512 SFBs in use.
    fn lfb_free(&self, l: u64) -> bool {
        let per = self.p.fbb.r;
        !self.lfbs.get(l) && self.blocks.count(l * per..(l + 1) * per) == 0
    }

    fn free_lfbs(&self) -> u64 {
        (0..self.lfbs.len()).filter(|&l| self.lfb_free(l)).count() as u64
    }

    /// A whole free LFB.
    fn alloc_lfb(&mut self) -> Result<u64, ForgeError> {
        let l = (0..self.lfbs.len()).find(|&l| self.lfb_free(l)).ok_or_else(|| self.full("large file block"))?;
        let per = self.p.fbb.r;
        self.lfbs.set(l, true);
        (l * per..(l + 1) * per).for_each(|k| self.blocks.set(k, true));
        Ok(l)
    }

    /// Clear the bitmap bits of every resource file `addr` holds (its data stays on disk).
    pub(super) fn release(&mut self, addr: u32) {
        let per = self.p.fbb.r;
        for (kind, idx) in self.units.remove(&addr).unwrap_or_default() {
            match kind {
                ResKind::Fb => self.blocks.set(idx, false),
                ResKind::Lfb => {
                    // An LFB frees its SFBs too.
                    self.lfbs.set(idx, false);
                    (idx * per..(idx + 1) * per).for_each(|k| self.blocks.set(k, false));
                }
                ResKind::Sb => self.sbs.set(idx, false),
                ResKind::Pb => self.pbs.set(idx, false),
                _ => {}
            }
        }
    }

    /// Write directory `addr`'s content to its storage (allocated now if needed).
    pub(super) fn write_dir(&mut self, addr: u32) -> Result<(), ForgeError> {
        let Some(node) = self.nodes.get(&addr) else { return Ok(()) };
        let Some((parent, entries)) = node.dir.clone() else { return Ok(()) };
        let this = dir::Entry { name: ".".into(), fd: addr, generation: node.fd.generation, kind: node.fd.kind };
        let pnode = self.nodes.get(&parent).map_or(this.clone(), |p| dir::Entry {
            name: "..".into(),
            fd: parent,
            generation: p.fd.generation,
            kind: p.fd.kind,
        });
        let in_root = addr == ROOT;
        let bytes = if self.p.v6() {
            dir::encode6(self.p.geo.md as usize, &this, &pnode, &entries, in_root)
        } else {
            dir::encode5(&this, &pnode, &entries)
        };
        let size = bytes.len() as u64;
        let fbs = self.p.geo.fbs;
        let mut fd = node.fd.clone();
        fd.size = size;
        if let Some(s) = self.sys.get(&addr).cloned() {
            // Root and .sdd.sf: their blocks were reserved at format time.
            let mut blocks = s.blocks;
            while (blocks.len() as u64) * fbs < size {
                blocks.push(self.blocks.alloc().ok_or_else(|| self.full("directory block"))?);
            }
            for (i, b) in blocks.iter().enumerate() {
                let lo = i as u64 * fbs;
                let hi = (lo + fbs).min(size);
                self.t.write(b * fbs, &bytes[lo as usize..hi as usize])?;
            }
            fd.num_blocks = blocks.len() as u64;
            fd.store = Store::Pointers(blocks.iter().map(|&b| self.block_ptr(b)).collect());
            self.sys.insert(addr, super::SysFile { blocks });
        } else {
            let src = crate::block::SparseMem::from_bytes("directory", bytes);
            // Directories are rewritten at finish: release what an earlier write took.
            self.release(addr);
            // Directories always get blocks: a sub-block on VMFS5, a file block on VMFS6.
            self.place_as(&mut fd, &src, Provisioning::Thin, Kind::Dir)?;
            fd.flags = 0;
        }
        if let Some(n) = self.nodes.get_mut(&addr) {
            n.fd = fd;
        }
        Ok(())
    }

    fn block_ptr(&self, b: u64) -> u64 {
        if self.p.v6() { make_sfb(b / self.p.fbb.r, b % self.p.fbb.r, 0) } else { u64::from(make_fb(b as u32, false)) }
    }

    pub(super) fn write_directories(&mut self) -> Result<(), ForgeError> {
        let dirs: Vec<u32> = self.nodes.iter().filter(|(_, n)| n.dir.is_some() && !n.freed).map(|(a, _)| *a).collect();
        for d in dirs {
            self.write_dir(d)?;
        }
        Ok(())
    }

    /// System files' FD block maps, resource headers and every cluster header.
    pub(super) fn write_resource_files(&mut self) -> Result<(), ForgeError> {
        // Block maps of the system files (all direct, except .sbc.sf on VMFS6 through a PB2).
        let sys: Vec<(u32, Vec<u64>)> = self
            .sys
            .iter()
            .filter(|(a, _)| **a != ROOT && **a != sys_addr(7))
            .map(|(a, s)| (*a, s.blocks.clone()))
            .collect();
        for (addr, blocks) in sys {
            let ptrs: Vec<u64> = blocks.iter().map(|&b| self.block_ptr(b)).collect();
            let over = ptrs.len() > self.p.geo.ptrs_count;
            let store = if over {
                // The PB2 resource 0 maps the file (seen on VMFS6 .sbc.sf).
                self.pb2s.set(0, true);
                let off = self.res_offset(ResKind::Pb2, 0)?;
                let mut b = vec![0u8; self.p.pb2.rs as usize];
                put_pointers(&mut b, self.p.geo.ptr_width, &ptrs);
                self.t.write(off, &b)?;
                Store::Pointers(vec![ZLA_PB2.into()])
            } else {
                Store::Pointers(ptrs)
            };
            if let Some(n) = self.nodes.get_mut(&addr) {
                if over {
                    n.fd.zla = ZLA_PB2;
                    n.fd.flags = 0x8;
                    n.fd.num_pbs = 1;
                    // It tracks the SFB clusters it grew into after format.
                    n.fd.track_sfb_clusters(self.sbc_grown.iter().copied(), self.p.fbb.r);
                }
                n.fd.store = store;
            }
        }
        let mut specs: Vec<(u32, ResSpec, &Bitmap)> = vec![
            (sys_addr(2), self.p.fdc.clone(), &self.fds),
            (sys_addr(3), self.p.pbc.clone(), &self.pbs),
            (sys_addr(4), self.p.sbc.clone(), &self.sbs),
        ];
        if !self.p.v3() {
            specs.push((sys_addr(6), self.p.pb2.clone(), &self.pb2s));
        }
        for (file, spec, bm) in specs {
            self.sys_write(file, 0, &res_header(&self.p, &spec, None))?;
            self.write_clusters(file, &spec, bm)?;
        }
        let fbb = self.p.fbb.clone();
        match self.p.lfb.clone() {
            None => {
                self.sys_write(sys_addr(1), 0, &res_header(&self.p, &fbb, None))?;
                self.write_clusters(sys_addr(1), &fbb, &self.blocks)?;
            }
            Some(lfb) => {
                self.sys_write(sys_addr(1), 0, &res_header(&self.p, &lfb, None))?;
                let mut child = res_header(&self.p, &fbb, Some(&lfb));
                // convertedClusters: LFBs split into SFB clusters.
                let converted = (0..lfb.n).filter(|&l| !self.lfbs.get(l)).count() as u32;
                crate::le::put_u32(&mut child, 0x54, converted);
                self.sys_write(sys_addr(1), 0x1000, &child)?;
                // Parent clusters: 3 bits per LFB.
                for cl in 0..lfb.clusters() {
                    let off = lfb.cluster_header(cl);
                    let vol = self.sys_offset(sys_addr(1), off)?;
                    let h = lfb_cluster_header(&self.p, &lfb, cl, vol, &|i| self.lfbs.get(cl * lfb.r + i));
                    self.sys_write(sys_addr(1), off, &h)?;
                }
                // Which FDs hold blocks in each SFB cluster.
                let mut affinity: BTreeMap<u64, BTreeMap<u32, Affinity>> = BTreeMap::new();
                let mut note = |fd: u32, b: u64, thin: bool| {
                    let e = affinity.entry(b / fbb.r).or_default().entry(fd).or_insert(Affinity {
                        fd,
                        blocks: 0,
                        flag: u16::from(thin),
                    });
                    e.blocks += 1;
                };
                for (fd, s) in &self.sys {
                    s.blocks.iter().for_each(|&b| note(*fd, b, false));
                }
                for (fd, us) in &self.units {
                    let thin = self.thin.contains(fd);
                    us.iter().filter(|(k, _)| *k == ResKind::Fb).for_each(|&(_, b)| note(*fd, b, thin));
                }
                // SFB clusters: their headers are the LFB resources.
                for cl in 0..fbb.clusters() {
                    if self.lfbs.get(cl) {
                        continue;
                    }
                    let off = lfb.resource(cl / lfb.r, cl % lfb.r);
                    let vol = self.sys_offset(sys_addr(1), off)?;
                    let aff = affinity.get(&cl).map(|m| m.values().copied().collect::<Vec<_>>()).unwrap_or_default();
                    let h = sfb_cluster_header(&self.p, &fbb, cl, vol, &|i| self.blocks.get(cl * fbb.r + i), &aff);
                    self.sys_write(sys_addr(1), off, &h)?;
                }
            }
        }
        if let Some(j) = self.p.jbc.clone() {
            self.sys_write(sys_addr(8), 0, &res_header(&self.p, &j, None))?;
            let none = Bitmap::new(j.n);
            self.write_clusters(sys_addr(8), &j, &none)?;
        }
        if let Some(u) = self.p.unmap.clone() {
            // .unmap.sf: its header, then one bare lock record per resource, no clusters.
            self.sys_write(sys_addr(9), 0, &res_header(&self.p, &u, None))?;
            let mut rec = vec![0u8; u.rs as usize];
            for i in 0..u.n {
                let off = u.cgo + i * u.rs;
                lock(&mut rec, cluster_lock_type(u.kind), self.sys_offset(sys_addr(9), off)?, 1);
                self.sys_write(sys_addr(9), off, &rec)?;
            }
        }
        if self.p.v6() {
            // The PB2 that maps .sbc.sf was taken at run time: its cluster records the host.
            let off = self.p.pb2.cluster_header(0) + self.p.geo.md;
            let mut rec = [0u8; 14];
            rec[0] = 1;
            rec[4..10].copy_from_slice(&self.p.host_uuid.0[10..16]);
            rec[10..14].copy_from_slice(&self.p.desc.creation_time.to_le_bytes());
            self.sys_write(sys_addr(6), off + 0x58, &rec)?;
        }
        Ok(())
    }

    fn write_clusters(&self, file: u32, spec: &ResSpec, bm: &Bitmap) -> Result<(), ForgeError> {
        for cl in 0..spec.clusters() {
            let off = spec.cluster_header(cl);
            let vol = self.sys_offset(file, off)?;
            let h = cluster_header(&self.p, spec, cl, vol, &|i| bm.get(cl * spec.r + i));
            self.sys_write(file, off, &h)?;
        }
        Ok(())
    }
}
