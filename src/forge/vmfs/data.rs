//! Placing file data: resident, sub-block, file blocks (FB/SFB/LFB) behind direct,
//! single-indirect or double-indirect pointers; thin holes and to-be-zeroed blocks. Also
//! the directories' storage and the resource files, written at `finish`.

use super::alloc::Bitmap;
use super::encode::{Affinity, FdImage, Store, cluster_header, res_header, sfb_cluster_header};
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
                self.t.write(off, &vec![0u8; g.sbs as usize])?;
                self.copy(src, lo..hi, off)?;
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
        let per_lfb = self.p.fbb.r;
        let free_lfbs = (0..self.lfbs.len())
            .filter(|&l| !self.lfbs.get(l) && self.blocks.count(l * per_lfb..(l + 1) * per_lfb) == 0)
            .count() as u64;
        // Thick files take large file blocks while whole free ones remain (ESXi: "as much as
        // possible"); the forge does not mix LFBs and SFBs in one file.
        let use_lfb = v6 && prov != Provisioning::Thin && size >= g.lfb && free_lfbs >= size.div_ceil(g.lfb);
        let bs = if use_lfb { g.lfb } else { g.fbs };
        let nblocks = size.div_ceil(bs);
        // Blocks that hold data.
        let mut data = std::collections::BTreeSet::new();
        for r in src.data_ranges(0..size) {
            (r.start / bs..r.end.div_ceil(bs)).for_each(|b| {
                data.insert(b);
            });
        }
        let alloc_all = prov != Provisioning::Thin;
        // Thick files: every leaf; thin files: only the allocated ones, sorted.
        let mut leaves = vec![0u64; if alloc_all { nblocks as usize } else { 0 }];
        let mut sparse_leaves: Vec<(u64, u64)> = Vec::new();
        let mut num_blocks = 0u64;
        let mut num_tbz = 0u64;
        let targets: Box<dyn Iterator<Item = u64>> = if alloc_all {
            Box::new(0..nblocks)
        } else {
            Box::new(data.iter().copied().collect::<Vec<_>>().into_iter())
        };
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
            if alloc_all {
                leaves[b as usize] = ptr;
            } else {
                sparse_leaves.push((b, ptr));
            }
        }
        let leaf = |i: u64| -> u64 {
            if alloc_all {
                leaves[i as usize]
            } else {
                sparse_leaves.binary_search_by_key(&i, |x| x.0).map_or(0, |k| sparse_leaves[k].1)
            }
        };
        let per = g.ptrs_count as u64;
        let n = g.pb_entries;
        let (zla, top) = if nblocks <= per {
            (ZLA_FB, (0..nblocks).map(leaf).collect::<Vec<_>>())
        } else if nblocks <= per * n {
            let mut top = Vec::new();
            for t in 0..nblocks.div_ceil(n) {
                let entries: Vec<u64> = (t * n..((t + 1) * n).min(nblocks)).map(leaf).collect();
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
                    let entries: Vec<u64> = (first..(first + n).min(nblocks)).map(leaf).collect();
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
            let clusters: std::collections::BTreeSet<u64> =
                units.iter().filter(|(k, _)| *k == ResKind::Fb).map(|(_, b)| b / self.p.fbb.r).collect();
            if let Some(&last) = clusters.last() {
                fd.meta_7c = 1;
                fd.affinity_bitmap = clusters.len() as u32;
                fd.last_sfbc = last as u32;
                fd.sfb_mask = clusters.iter().filter(|&&c| c < 64).fold(0, |m, c| m | 1 << c);
            }
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
        for (i, &e) in entries.iter().enumerate() {
            b[i * w..(i + 1) * w].copy_from_slice(&e.to_le_bytes()[..w]);
        }
        self.t.write(off, &b)?;
        units.push(unit);
        placed.pointer_blocks.push(off);
        Ok(addr)
    }

    /// A whole free LFB (512 SFBs none of which is in use).
    fn alloc_lfb(&mut self) -> Result<u64, ForgeError> {
        let per = self.p.fbb.r;
        for l in 0..self.lfbs.len() {
            if !self.lfbs.get(l) && self.blocks.count(l * per..(l + 1) * per) == 0 {
                self.lfbs.set(l, true);
                (l * per..(l + 1) * per).for_each(|k| self.blocks.set(k, true));
                return Ok(l);
            }
        }
        Err(self.full("large file block"))
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
                let w = self.p.geo.ptr_width;
                let mut b = vec![0u8; self.p.pb2.rs as usize];
                for (i, p) in ptrs.iter().enumerate() {
                    b[i * w..(i + 1) * w].copy_from_slice(&p.to_le_bytes()[..w]);
                }
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
                    let per = self.p.fbb.r;
                    let cl: std::collections::BTreeSet<u64> = self.sbc_grown.iter().map(|b| b / per).collect();
                    n.fd.last_sfbc = cl.last().copied().unwrap_or(0) as u32;
                    n.fd.affinity_bitmap = cl.len() as u32;
                    n.fd.sfb_mask = cl.iter().filter(|&&c| c < 64).fold(0, |m, c| m | 1 << c);
                    n.fd.meta_7c = 1;
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
            self.write_clusters(file, &spec, bm, 0)?;
        }
        let fbb = self.p.fbb.clone();
        match self.p.lfb.clone() {
            None => {
                self.sys_write(sys_addr(1), 0, &res_header(&self.p, &fbb, None))?;
                self.write_clusters(sys_addr(1), &fbb, &self.blocks, 0)?;
            }
            Some(lfb) => {
                self.sys_write(sys_addr(1), 0, &res_header(&self.p, &lfb, None))?;
                let mut child = res_header(&self.p, &fbb, Some(&lfb));
                // convertedClusters: LFBs split into SFB clusters.
                let converted = (0..lfb.n).filter(|&l| !self.lfbs.get(l)).count() as u32;
                crate::le::put_u32(&mut child, 0x54, converted);
                self.sys_write(sys_addr(1), 0x1000, &child)?;
                // Parent clusters: 3 bits per LFB, 4 = converted to an SFB cluster.
                for cl in 0..lfb.clusters() {
                    let off = lfb.cluster_header(cl);
                    let vol = self.sys_offset(sys_addr(1), off)?;
                    let mut h = cluster_header(&self.p, &lfb, cl, vol, &|i| self.lfbs.get(cl * lfb.r + i));
                    let m = self.p.geo.md as usize;
                    h[m + 0x80..m + 0x80 + 6].fill(0);
                    let total = lfb.in_cluster(cl);
                    let mut bits = 0u64;
                    for i in 0..total {
                        let v: u64 = if self.lfbs.get(cl * lfb.r + i) { 0 } else { 4 };
                        bits |= v << (3 * i);
                    }
                    h[m + 0x80..m + 0x88].copy_from_slice(&bits.to_le_bytes());
                    crate::le::put_u16(&mut h[m..], 0x22, 0);
                    // Bits-per-resource mask, and one 8-byte record per LFB (0xff as formatted).
                    h[m + 0x2A] = 7;
                    for i in 0..total as usize {
                        h[m + 0xE0 + 8 * i] = 0xFF;
                    }
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
            self.write_clusters(sys_addr(8), &j, &none, 0)?;
            // .unmap.sf: 1024 resources of 4 KiB, no clusters.
            let u = ResSpec { kind: ResKind::Jb, r: 0, c: 0, rs: 0x1000, n: 1024, cgo: 0x10000, hdr: 0 };
            let mut h = res_header(&self.p, &u, None);
            crate::le::put_u32(&mut h, 0x28, 0);
            crate::le::put_u16(&mut h, 0x2C, 0);
            self.sys_write(sys_addr(9), 0, &h)?;
            let mut rec = vec![0u8; 0x1000];
            for i in 0..u.n {
                let off = u.cgo + i * u.rs;
                super::encode::lock(&mut rec, super::encode::LOCK_TYPE_UNMAP, self.sys_offset(sys_addr(9), off)?, 1);
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

    fn write_clusters(&self, file: u32, spec: &ResSpec, bm: &Bitmap, first: u64) -> Result<(), ForgeError> {
        for cl in 0..spec.clusters() {
            let off = spec.cluster_header(cl);
            let vol = self.sys_offset(file, off)?;
            let h = cluster_header(&self.p, spec, cl, vol, &|i| bm.get(first + cl * spec.r + i));
            self.sys_write(file, off, &h)?;
        }
        Ok(())
    }
}
