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
use vmfs_rescue::vdisk::{self, Files, LocalFiles, VdiskError, VirtualDisk, VmfsFiles, files::local_path};

/// Where the disk the arguments name is: its file namespace and path there.
fn locate(src: &VdiskSource) -> Result<(Box<dyn Files>, String)> {
    match &src.path {
        Some(p) => {
            let (_stores, fs) = open_selected(&Select { sources: src.files.clone(), volume: src.volume.clone() })?;
            let p = if p.starts_with('/') { p.clone() } else { format!("/{p}") };
            Ok((Box::new(VmfsFiles(Arc::clone(&fs))), p))
        }
        None => {
            let [file] = src.files.as_slice() else {
                bail!(UsageError("give one VMDK, or the volume's sources with --path".into()));
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

/// Open the disk the arguments name.
fn open(src: &VdiskSource) -> Result<VirtualDisk> {
    let (files, path) = locate(src)?;
    Ok(vdisk::open(&*files, &path)?)
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
            let allocated: u64 = d.data_ranges(0..d.len()).iter().map(|r| r.end - r.start).sum();
            let links: Vec<_> = d
                .layers
                .iter()
                .map(|l| {
                    json!({
                        "file": l.path,
                        "create_type": l.desc.create_type(),
                        "cid": l.desc.cid().map(|c| format!("{c:08x}")),
                        "parent_cid": l.desc.parent_cid().map(|c| format!("{c:08x}")),
                        "parent_hint": l.desc.parent_hint(),
                        "capacity": l.capacity,
                        "extents": l.desc.extents.iter().map(|e| json!({
                            "access": e.access, "type": e.kind, "file": e.file,
                            "sectors": e.sectors, "offset": e.offset,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            if json {
                let v = json!({
                    "format": "vmdk",
                    "variant": d.layers.first().map(|l| l.desc.create_type().to_string()),
                    "virtual_size": d.len(),
                    "allocated": allocated,
                    "chain": links,
                    "problems": d.problems,
                });
                println!("{v}");
            } else {
                println!("vmdk {}  virtual size {} bytes, {allocated} bytes allocated", d.name(), d.len());
                for (i, l) in d.layers.iter().enumerate() {
                    println!(
                        "  link {i}: {}  {}  CID {}  parentCID {}",
                        l.path,
                        l.desc.create_type(),
                        l.desc.cid().map_or("-".into(), |c| format!("{c:08x}")),
                        l.desc.parent_cid().map_or("-".into(), |c| format!("{c:08x}"))
                    );
                    for e in &l.desc.extents {
                        println!(
                            "    {} {} {} {} sectors",
                            e.access,
                            e.kind,
                            e.file.as_deref().unwrap_or("-"),
                            e.sectors
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

fn raw_file(p: &Path) -> std::result::Result<vmfs_rescue::block::Source, VdiskError> {
    vmfs_rescue::block::open_path_sparse(p).map_err(|e| VdiskError::Io { file: p.display().to_string(), source: e })
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
