//! `vmfs-rescue vdisk`: VMDK chains, local or inside a VMFS volume.

use super::args::{Select, VdiskCommand, VdiskSource};
use super::{Outcome, UsageError, open_selected};
use anyhow::{Result, bail};
use serde_json::json;
use std::sync::Arc;
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::extract::{CopyOptions, Sink, copy, copy_to_file};
use vmfs_rescue::vdisk::{self, Format, Layer, LocalFiles, VirtualDisk, VmfsFiles, files::local_path};

/// Open the disk the arguments name (at `--snapshot` when given).
fn open(src: &VdiskSource) -> Result<VirtualDisk> {
    let at = |files: &dyn vdisk::Files, d: VirtualDisk| -> Result<VirtualDisk> {
        match &src.snapshot {
            Some(name) => Ok(vdisk::snapshot::at_snapshot(files, d, name)?),
            None => Ok(d),
        }
    };
    match &src.path {
        Some(p) => {
            let (_stores, fs) = open_selected(&Select { sources: src.files.clone(), volume: src.volume.clone() })?;
            let p = if p.starts_with('/') { p.clone() } else { format!("/{p}") };
            let files = VmfsFiles(Arc::clone(&fs));
            at(&files, vdisk::open(&files, &p)?)
        }
        None => {
            let [file] = src.files.as_slice() else {
                bail!(UsageError("give one VMDK, or the volume's sources with --path".into()));
            };
            if !file.exists() {
                bail!(UsageError(format!("{}: no such file", file.display())));
            }
            at(&LocalFiles, vdisk::open(&LocalFiles, &local_path(file))?)
        }
    }
}

/// One link of the chain for `info --json`.
fn layer_json(l: &Layer) -> serde_json::Value {
    json!({
        "file": l.path,
        "format": l.format.name(),
        "variant": l.variant,
        "create_type": l.desc.as_ref().map(|d| d.create_type()),
        "id": l.id,
        "cid": l.desc.as_ref().and_then(|d| d.cid()).map(|c| format!("{c:08x}")),
        "parent_cid": l.desc.as_ref().and_then(|d| d.parent_cid()).map(|c| format!("{c:08x}")),
        "parent": l.parent.as_ref().map(|p| json!({
            "names": p.hints, "id": p.id, "format": p.format.map(|f| f.name()),
        })),
        "parent_hint": l.parent.as_ref().and_then(|p| p.hints.first()),
        "capacity": l.capacity,
        "extents": l.desc.iter().flat_map(|d| &d.extents).map(|e| json!({
            "access": e.access, "type": e.kind, "file": e.file,
            "sectors": e.sectors, "offset": e.offset,
        })).collect::<Vec<_>>(),
        "rdm": l.rdm.iter().map(|m| json!({
            "file": m.file, "type": m.kind, "target": m.target, "bytes": m.len,
        })).collect::<Vec<_>>(),
    })
}

fn report(d: &VirtualDisk) -> Outcome {
    for p in &d.problems {
        eprintln!("warning: {p}");
    }
    if d.problems.is_empty() { Outcome::Clean } else { Outcome::Damaged }
}

pub fn run(c: VdiskCommand) -> Result<Outcome> {
    match c {
        VdiskCommand::Info { json, src } => {
            let d = open(&src)?;
            let a = d.allocation()?;
            let allocated = a.data;
            let links: Vec<_> = d.layers.iter().map(layer_json).collect();
            if json {
                let v = json!({
                    "format": d.layers.first().map(|l| l.format.name()),
                    "variant": d.layers.first().map(|l| l.variant.clone()),
                    "virtual_size": d.len(),
                    "allocated": allocated,
                    "allocation": {
                        "data": a.data, "zero": a.zero, "unallocated": a.unallocated,
                        "unreadable": a.unreadable, "data_ranges": a.data_ranges,
                        "data_per_link": a.data_per_link,
                    },
                    "chain": links,
                    "problems": d.problems,
                });
                println!("{v}");
            } else {
                let f = d.layers.first().map_or("", |l| l.format.name());
                println!("{f} {}  virtual size {} bytes", d.name(), d.len());
                println!(
                    "  allocation: {} data in {} ranges, {} zero, {} unallocated, {} unreadable",
                    a.data, a.data_ranges, a.zero, a.unallocated, a.unreadable
                );
                for (i, l) in d.layers.iter().enumerate() {
                    let ids = if l.format == Format::Vmdk {
                        let parent_id = l.parent.as_ref().and_then(|p| p.id.as_deref()).unwrap_or("-");
                        format!("CID {}  parentCID {parent_id}", l.id.as_deref().unwrap_or("-"))
                    } else {
                        // Other formats: the parent by name (a qcow2 backing file has no identity).
                        let mut s = l.id.as_ref().map(|id| format!("id {id}  ")).unwrap_or_default();
                        match &l.parent {
                            None => s.push_str("no parent"),
                            Some(p) => {
                                s.push_str(&format!("parent {}", p.hints.first().map_or("(unnamed)", |h| h.as_str())));
                                if let Some(f) = p.format {
                                    s.push_str(&format!(" ({})", f.name()));
                                }
                                if let Some(id) = &p.id {
                                    s.push_str(&format!(" id {id}"));
                                }
                            }
                        }
                        s
                    };
                    let own = a.data_per_link.get(i).copied().unwrap_or(0);
                    println!(
                        "  link {i}: {}  {} {}  {ids}  (supplies {own} data bytes)",
                        l.path,
                        l.format.name(),
                        l.variant
                    );
                    for e in l.desc.iter().flat_map(|d| &d.extents) {
                        println!(
                            "    {} {} {} {} sectors",
                            e.access,
                            e.kind,
                            e.file.as_deref().unwrap_or("-"),
                            e.sectors
                        );
                    }
                    for m in &l.rdm {
                        println!(
                            "    raw device mapping {} -> {}",
                            m.file,
                            m.target.as_deref().unwrap_or("(target unknown)")
                        );
                    }
                }
            }
            Ok(report(&d))
        }
        VdiskCommand::Cat { src } => {
            let d = open(&src)?;
            let outcome = report(&d);
            let mut out = std::io::stdout();
            let r = copy(&d, Sink::Stream(&mut out), CopyOptions { hole_hash_limit: 0, hash: false })?;
            for u in &r.unreadable {
                eprintln!("unreadable bytes {:#x}..{:#x} (written as zeros)", u.start, u.end);
            }
            Ok(if r.unreadable.is_empty() { outcome } else { Outcome::Damaged })
        }
        VdiskCommand::Convert { src, to, format } => {
            if format != "raw" {
                bail!(UsageError(format!("--format {format}: only raw is written yet")));
            }
            let d = open(&src)?;
            let outcome = report(&d);
            let dir = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            if let Some(s) = vmfs_rescue::datastore::dest_on_source(dir, &src.files) {
                bail!(UsageError(format!("{} is on source {}", to.display(), s.display())));
            }
            if src.files.iter().any(|f| f.canonicalize().ok() == to.canonicalize().ok()) {
                bail!(UsageError("the output is an input".into()));
            }
            let r = copy_to_file(&d, &to, CopyOptions::default())?;
            match &r.sha256 {
                Some(h) => println!("{h}  {}", to.display()),
                None => println!("(sparse: per-range hashes only)  {}", to.display()),
            }
            for u in &r.unreadable {
                eprintln!("unreadable bytes {:#x}..{:#x} (written as zeros)", u.start, u.end);
            }
            Ok(if r.unreadable.is_empty() { outcome } else { Outcome::Damaged })
        }
    }
}
