//! `vmfs-rescue vdisk`: VMDK chains, local or inside a VMFS volume: inspect, read, convert, verify.

use super::args::{Select, VdiskCommand, VdiskSource};
use super::{Failed, Outcome, UsageError, open_selected};
use anyhow::{Result, bail};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::compare::{self, Comparison, Opened};
use vmfs_rescue::extract::qcow2::copy_to_qcow2;
use vmfs_rescue::extract::{CopyOptions, Sink, copy, copy_to_file};
use vmfs_rescue::vdisk::{
    self, Files, Format, Layer, LocalFiles, VdiskError, VirtualDisk, VmfsFiles, files::local_path,
};

/// Where the disk the arguments name is: its file namespace and path there.
pub(super) fn locate(src: &VdiskSource) -> Result<(Box<dyn Files>, String)> {
    match &src.path {
        Some(p) => {
            let (_stores, fs) =
                open_selected(&Select { sources: src.files.clone(), volume: src.volume.clone(), state: None })?;
            let p = if p.starts_with('/') { p.clone() } else { format!("/{p}") };
            Ok((Box::new(VmfsFiles(Arc::clone(&fs))), p))
        }
        None => {
            let [file] = src.files.as_slice() else {
                bail!(UsageError("give one disk, or the volume's sources with --path".into()));
            };
            Ok((Box::new(LocalFiles), local_file(file)?))
        }
    }
}

/// The "/"-path of a local file that must exist.
fn local_file(file: &Path) -> Result<String> {
    if !file.exists() {
        bail!(UsageError(format!("{}: no such file", file.display())));
    }
    Ok(local_path(file))
}

/// Open the disk the arguments name (at `--snapshot` when given).
pub(super) fn open(src: &VdiskSource) -> Result<VirtualDisk> {
    let format = match src.input_format.as_deref() {
        None => None,
        Some(f) => match Format::from_name(f) {
            Some(f) => Some(f),
            None => bail!(UsageError(format!("--input-format {f}: not a format name (raw, vmdk, vdi, ...)"))),
        },
    };
    let (files, path) = locate(src)?;
    let d = vdisk::open_leaf(&*files, Layer::open_as(&*files, &path, format)?)?;
    match &src.snapshot {
        Some(name) => Ok(vdisk::snapshot::at_snapshot(&*files, d, name)?),
        None => Ok(d),
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
            let d = open(&src)?;
            let outcome = report(&d);
            let dir = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            if let Some(s) = vmfs_rescue::datastore::dest_on_source(dir, &src.files) {
                bail!(UsageError(format!("{} is on source {}", to.display(), s.display())));
            }
            if src.files.iter().any(|f| f.canonicalize().ok() == to.canonicalize().ok()) {
                bail!(UsageError("the output is an input".into()));
            }
            let r = if format == "qcow2" {
                copy_to_qcow2(&d, &to, CopyOptions::default())?
            } else {
                copy_to_file(&d, &to, CopyOptions::default())?
            };
            match &r.sha256 {
                Some(h) => println!("{h}  {}", to.display()),
                None => println!("(sparse: per-range hashes only)  {}", to.display()),
            }
            for u in &r.unreadable {
                eprintln!("unreadable bytes {:#x}..{:#x} (written as zeros)", u.start, u.end);
            }
            Ok(if r.unreadable.is_empty() { outcome } else { Outcome::Damaged })
        }
        VdiskCommand::Verify { src, against, max_ranges } => {
            verify(&src, &against, max_ranges).map_err(|e| if e.is::<UsageError>() { e } else { Failed(e).into() })
        }
    }
}

/// `vdisk verify`: open both sides (virtual disk, else raw image), compare, print.
fn verify(src: &VdiskSource, against: &Path, max_ranges: usize) -> Result<Outcome> {
    let (files, path) = locate(src)?;
    let a = match &src.path {
        Some(_) => compare::open_disk(&*files, &path, || files.open(&path))?,
        None => compare::open_disk(&*files, &path, || raw_file(&src.files[0]))?,
    };
    let other = local_file(against)?;
    let b = compare::open_disk(&LocalFiles, &other, || raw_file(against))?;
    for side in [&a, &b] {
        if let Some(why) = &side.raw_because {
            tracing::info!("{}: {why}", side.disk.name());
            eprintln!("note: {} is no virtual disk: compared as a raw image", side.disk.name());
        }
        for p in &side.problems {
            eprintln!("warning: {p}");
        }
    }
    let c = compare::compare(&*a.disk, &*b.disk, max_ranges)?;
    print_comparison(&c, &a, &b);
    let mut outcome = if c.identical() { Outcome::Clean } else { Outcome::Damaged };
    for (side, bad) in [(&a, &c.unreadable_a), (&b, &c.unreadable_b)] {
        if bad.is_empty() {
            continue;
        }
        let bytes: u64 = bad.iter().map(|r| r.end - r.start).sum();
        let first: Vec<String> = bad.iter().take(4).map(|r| format!("{:#x}..{:#x}", r.start, r.end)).collect();
        eprintln!(
            "{}: {bytes} unreadable byte(s) in {} range(s), compared as zeros: {}{}",
            side.disk.name(),
            bad.len(),
            first.join(", "),
            if bad.len() > 4 { ", ..." } else { "" }
        );
        outcome = Outcome::Damaged;
    }
    Ok(outcome)
}

pub(super) fn raw_file(p: &Path) -> std::result::Result<vmfs_rescue::block::Source, VdiskError> {
    vmfs_rescue::block::open_path(p).map_err(|e| VdiskError::Io { file: p.display().to_string(), source: e })
}

fn print_comparison(c: &Comparison, a: &Opened, b: &Opened) {
    if c.len_a != c.len_b {
        println!(
            "sizes differ: {} is {} bytes, {} is {} bytes (compared: the first {} bytes)",
            a.disk.name(),
            c.len_a,
            b.disk.name(),
            c.len_b,
            c.len_a.min(c.len_b)
        );
    }
    match c.first_difference {
        None => println!(
            "identical: {} bytes ({} read from each side, the rest is a hole in both)",
            c.len_a, c.bytes_compared
        ),
        Some(first) => {
            println!("different: first difference at byte {first} ({first:#x})");
            println!("{} byte(s) differ in {} range(s)", c.differing_bytes, c.differing_ranges);
            for r in &c.ranges {
                println!("  {:#x}..{:#x} ({} bytes)", r.start, r.end, r.end - r.start);
            }
            if c.differing_ranges > c.ranges.len() as u64 {
                println!("  ... and {} more range(s)", c.differing_ranges - c.ranges.len() as u64);
            }
        }
    }
}
