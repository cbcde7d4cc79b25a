//! Grain directory and grain tables (research/vmdk-format.md §3.3–3.4): the primary GD checked
//! entry by entry, the redundant copy used where the primary is damaged, and a bounded cache
//! of grain tables.

use super::header::Header;
use crate::block::Source;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A GD entry that is damaged in both copies.
pub const BAD: u32 = u32::MAX;
/// Grain tables kept in memory.
const CACHE: usize = 512;

/// One grain table: its entries, or `None` when neither copy could be read.
pub type Gt = Option<Arc<[u32]>>;

pub struct Tables {
    /// GT sector per GD entry (0 = unallocated, [`BAD`] = damaged).
    gd: Vec<u32>,
    /// The redundant GD, when it exists and was readable.
    rgd: Option<Vec<u32>>,
    gtes: usize,
    cache: Mutex<(VecDeque<u64>, HashMap<u64, Gt>)>,
}

/// Read a GD of `n` entries at `sector`; entries pointing outside the file become [`BAD`].
/// Returns (entries, number bad), or `None` when the GD itself cannot be read.
fn read_gd(src: &Source, sector: u64, n: u64, gt_bytes: u64) -> Option<(Vec<u32>, usize)> {
    let at = sector.checked_mul(512)?;
    let bytes = n.checked_mul(4)?;
    if at.checked_add(bytes)? > src.len() {
        return None;
    }
    let mut raw = vec![0u8; bytes as usize];
    src.read_at(at, &mut raw).ok()?;
    if !src.unreadable(at..at + bytes).is_empty() {
        return None;
    }
    let mut bad = 0;
    let gd = raw
        .chunks_exact(4)
        .map(|c| {
            let e = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if e == 0 || e as u64 * 512 + gt_bytes <= src.len() {
                e
            } else {
                bad += 1;
                BAD
            }
        })
        .collect();
    Some((gd, bad))
}

impl Tables {
    /// Load the GD at `gd_offset` (and its redundant copy at `rgd_offset`, if any). `Err`
    /// when neither copy is usable; problems found are pushed to `problems`.
    pub fn load(src: &Source, h: &Header, gd_offset: u64, problems: &mut Vec<String>) -> Result<Self, String> {
        let n = h.num_gts();
        let gtes = h.gtes_per_gt as usize;
        let gt_bytes = gtes as u64 * 4;
        let primary = if gd_offset == 0 { None } else { read_gd(src, gd_offset, n, gt_bytes) };
        let rgd =
            if h.rgd_offset != 0 && h.rgd_offset != gd_offset { read_gd(src, h.rgd_offset, n, gt_bytes) } else { None };
        let (gd, rgd) = match (primary, rgd) {
            (Some((gd, 0)), r) => (gd, r.map(|r| r.0)),
            (Some((mut gd, bad)), Some((r, rbad))) => {
                let mut fixed = 0;
                for (e, re) in gd.iter_mut().zip(&r) {
                    if *e == BAD && *re != BAD {
                        *e = *re;
                        fixed += 1;
                    }
                }
                problems.push(format!(
                    "primary grain directory at sector {gd_offset}: {bad} entries point outside the file; {fixed} taken \
                     from the redundant one ({rbad} damaged there too)"
                ));
                (gd, Some(r))
            }
            (Some((gd, bad)), None) => {
                problems.push(format!(
                    "grain directory at sector {gd_offset}: {bad} entries point outside the file and there is no \
                     redundant copy: their {} MiB each read as zeros, reported",
                    (h.grain_bytes() * gtes as u64) >> 20
                ));
                (gd, None)
            }
            (None, Some((r, rbad))) => {
                problems.push(format!(
                    "primary grain directory at sector {gd_offset} unreadable: used the redundant one at sector {} ({rbad} \
                     damaged entries)",
                    h.rgd_offset
                ));
                (r, None)
            }
            (None, None) => return Err(format!("grain directory at sector {gd_offset} unreadable and no usable copy")),
        };
        Ok(Self { gd, rgd, gtes, cache: Mutex::new((VecDeque::new(), HashMap::new())) })
    }

    /// Entries per GT.
    pub fn gtes(&self) -> usize {
        self.gtes
    }

    /// The GD entry of GT `i` (0 past the end of the directory).
    pub fn gde(&self, i: u64) -> u32 {
        usize::try_from(i).ok().and_then(|i| self.gd.get(i)).copied().unwrap_or(0)
    }

    fn read_gt(&self, src: &Source, sector: u32) -> Gt {
        if sector == 0 || sector == BAD {
            return None;
        }
        let at = sector as u64 * 512;
        let bytes = self.gtes as u64 * 4;
        let mut raw = vec![0u8; bytes as usize];
        src.read_at(at, &mut raw).ok()?;
        if !src.unreadable(at..at + bytes).is_empty() {
            return None;
        }
        Some(raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Grain table `i` (its GD entry must be non-zero), from the cache, the primary copy or
    /// the redundant one.
    pub fn gt(&self, src: &Source, i: u64) -> Gt {
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = c.1.get(&i) {
            return g.clone();
        }
        drop(c);
        let redundant = || {
            let r = self.rgd.as_ref()?.get(usize::try_from(i).ok()?).copied()?;
            self.read_gt(src, r)
        };
        let g = self.read_gt(src, self.gde(i)).or_else(redundant);
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.0.len() >= CACHE
            && let Some(old) = c.0.pop_front()
        {
            c.1.remove(&old);
        }
        if c.1.insert(i, g.clone()).is_none() {
            c.0.push_back(i);
        }
        g
    }
}
