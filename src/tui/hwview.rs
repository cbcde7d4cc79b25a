//! The hardware inventory and the destinations as rows for the screens.

use super::app::{DestRow, HwRow};
use super::text;
use crate::hw::{Destination, Inventory};
use std::path::PathBuf;

/// Controllers, their disks and the disks' partitions, as an indented list. `sources` are the
/// devices being read.
pub fn rows(inv: &Inventory, sources: &[PathBuf]) -> Vec<HwRow> {
    let mut v = Vec::new();
    for c in &inv.controllers {
        let driver = c.driver.as_deref().map(|d| format!(", driver {d}")).unwrap_or_default();
        let what = [c.vendor.as_str(), c.model.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>();
        let hosts = if c.hosts.is_empty() { String::new() } else { format!(" ({})", c.hosts.join(", ")) };
        let none = if c.disks.is_empty() { ", no disks" } else { "" };
        v.push(HwRow {
            depth: 0,
            name: c.id.clone(),
            text: format!("{} {}{driver}{hosts}{none}", c.kind, what.join(" ")).trim().to_string(),
            ..HwRow::default()
        });
        for d in &c.disks {
            let model = [d.vendor.as_deref(), d.model.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
            let mut parts = vec![text::size(d.size), d.transport.clone()];
            if !model.is_empty() {
                parts.push(model);
            }
            if let Some(s) = &d.serial {
                parts.push(format!("serial {s}"));
            }
            if let Some(w) = &d.wwn {
                parts.push(format!("wwn {w}"));
            }
            parts.push(format!("{}/{} B sectors", d.logical_sector, d.physical_sector));
            if d.removable {
                parts.push("removable".into());
            }
            if d.read_only {
                parts.push("read-only".into());
            }
            if d.holds_vmfs() {
                parts.push("VMFS".into());
            }
            v.push(HwRow {
                depth: 1,
                name: d.name.clone(),
                text: parts.join(", "),
                boot_medium: d.boot_medium,
                source: sources.contains(&d.devnode),
            });
            for p in &d.partitions {
                let fs = p.fs.map(|f| f.name().to_string()).unwrap_or_else(|| "-".into());
                let label = p.label.as_deref().map(|l| format!(" \"{l}\"")).unwrap_or_default();
                v.push(HwRow {
                    depth: 2,
                    name: p.name.clone(),
                    text: format!("{}, {fs}{label}", text::size(p.size)),
                    ..HwRow::default()
                });
            }
        }
    }
    v
}

/// A destination as a row.
pub fn dest_row(d: &Destination, release: bool) -> DestRow {
    let label = d.label.as_deref().map(|l| format!(" \"{l}\"")).unwrap_or_default();
    DestRow {
        name: d.name.clone(),
        text: format!("{}{label}, {}", d.fs.name(), text::size(d.size)),
        mounted_at: d.mounted_at.clone(),
        refused: d.refused.clone(),
        release,
        boot_medium: d.boot_medium,
    }
}
