//! `vmfs-rescue devices`: the hardware inventory as text or JSON, or the destinations.

use super::Outcome;
use anyhow::Result;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use vmfs_rescue::hw::{self, Controller, Destination, Disk, Inventory};

pub fn run(json: bool, destinations: bool, sources: &[PathBuf]) -> Result<Outcome> {
    let inv = hw::inventory()?;
    let mut out = std::io::stdout().lock();
    if destinations {
        let dests = hw::destinations(&inv, sources);
        if json {
            writeln!(out, "{}", serde_json::to_string_pretty(&dests)?)?;
        } else {
            if dests.is_empty() {
                writeln!(
                    out,
                    "no partition or disk with a writable file system (vfat, exfat, ext2/3/4, ntfs, xfs, btrfs)"
                )?;
            }
            for d in &dests {
                writeln!(out, "{}", destination_line(d))?;
            }
        }
        return Ok(Outcome::Clean);
    }
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&inv)?)?;
        return Ok(Outcome::Clean);
    }
    write!(out, "{}", render(&inv))?;
    Ok(Outcome::Clean)
}

/// The text view: a controller line, its disks indented, their partitions under them; notes last.
pub fn render(inv: &Inventory) -> String {
    let mut s = String::new();
    for c in &inv.controllers {
        let _ = writeln!(s, "{}", controller_line(c));
        if c.disks.is_empty() {
            let _ = writeln!(s, "  (no disks)");
        }
        for d in &c.disks {
            let _ = writeln!(s, "  {}", disk_line(d));
            if let Some(fs) = d.fs {
                let _ = writeln!(s, "    (whole disk)  {}", fs_text(fs, d.label.as_deref()));
            }
            for p in &d.partitions {
                let fs = p.fs.map(|f| fs_text(f, p.label.as_deref())).unwrap_or_else(|| "-".into());
                let ro = if p.read_only { "  [read-only]" } else { "" };
                let _ = writeln!(s, "    {:<10} {:>9}  at {:>9}  {fs}{ro}", p.name, size(p.size), size(p.start));
            }
        }
    }
    for n in &inv.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

fn controller_line(c: &Controller) -> String {
    let mut s = format!("{}  ", c.id);
    if !c.class.is_empty() {
        let _ = write!(s, "{}  ", c.class);
    }
    if c.vendor.is_empty() {
        s.push_str(&c.model);
    } else {
        let _ = write!(s, "{} {}", c.vendor, c.model);
    }
    if let Some(d) = &c.driver {
        let _ = write!(s, "  driver {d}");
    }
    let _ = write!(s, "  [{}]", c.kind);
    if !c.hosts.is_empty() {
        let _ = write!(s, "  ({})", c.hosts.join(", "));
    }
    s
}

fn disk_line(d: &Disk) -> String {
    let ident = match (&d.vendor, &d.model) {
        (Some(v), Some(m)) => format!("{v} {m}"),
        (None, Some(m)) => m.clone(),
        (Some(v), None) => v.clone(),
        (None, None) => "-".into(),
    };
    let mut s = format!("{:<8} {:>9}  {ident}", d.name, size(d.size));
    if let Some(x) = &d.serial {
        let _ = write!(s, "  serial {x}");
    }
    if let Some(x) = &d.wwn {
        let _ = write!(s, "  wwn {x}");
    }
    let _ = write!(s, "  {}/{} B  {}", d.logical_sector, d.physical_sector, d.transport);
    match d.rotational {
        Some(true) => s.push_str("  rotational"),
        Some(false) => s.push_str("  non-rotational"),
        None => {}
    }
    for (flag, word) in [(d.boot_medium, "boot medium"), (d.removable, "removable"), (d.read_only, "read-only")] {
        if flag {
            let _ = write!(s, "  [{word}]");
        }
    }
    if d.holds_vmfs() {
        s.push_str("  [VMFS]");
    }
    s
}

fn destination_line(d: &Destination) -> String {
    let mut s = format!("{:<10} {:>9}  {}", d.name, size(d.size), fs_text(d.fs, d.label.as_deref()));
    if let Some(m) = &d.mounted_at {
        let _ = write!(s, "  mounted at {}", m.display());
    }
    if d.boot_medium {
        s.push_str("  [boot medium: only when chosen]");
    }
    if let Some(r) = &d.refused {
        let _ = write!(s, "  REFUSED: {r}");
    }
    s
}

fn fs_text(fs: hw::FsKind, label: Option<&str>) -> String {
    match label {
        Some(l) => format!("{fs} {l:?}"),
        None => fs.to_string(),
    }
}

/// Decimal units, as disk vendors label them: `300.0 GB`.
fn size(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[i]) }
}
