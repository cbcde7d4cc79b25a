//! `vmfs-rescue vdisk`: VMDK chains, local or inside a VMFS volume.

use super::args::{Select, VdiskCommand, VdiskSource};
use super::{Outcome, UsageError, open_selected};
use anyhow::{Result, bail};
use serde_json::json;
use std::sync::Arc;
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::extract::{CopyOptions, Sink, copy, copy_to_file};
use vmfs_rescue::vdisk::{self, Files, Format, Layer, LocalFiles, VirtualDisk, VmfsFiles, files::local_path};

/// Open the disk the arguments name.
fn open(src: &VdiskSource) -> Result<VirtualDisk> {
    let format = match src.input_format.as_deref() {
        None => None,
        Some(f) => match Format::from_name(f) {
            Some(f) => Some(f),
            None => bail!(UsageError(format!("--input-format {f}: not a format name (raw, vmdk, vdi, ...)"))),
        },
    };
    let open_in = |files: &dyn Files, p: &str| -> Result<VirtualDisk> {
        Ok(vdisk::open_leaf(files, Layer::open_as(files, p, format)?)?)
    };
    match &src.path {
        Some(p) => {
            let (_stores, fs) = open_selected(&Select { sources: src.files.clone(), volume: src.volume.clone() })?;
            let p = if p.starts_with('/') { p.clone() } else { format!("/{p}") };
            open_in(&VmfsFiles(Arc::clone(&fs)), &p)
        }
        None => {
            let [file] = src.files.as_slice() else {
                bail!(UsageError("give one disk, or the volume's sources with --path".into()));
            };
            if !file.exists() {
                bail!(UsageError(format!("{}: no such file", file.display())));
            }
            open_in(&LocalFiles, &local_path(file))
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
            let allocated: u64 = d.data_ranges(0..d.len()).iter().map(|r| r.end - r.start).sum();
            let links: Vec<_> = d.layers.iter().map(layer_json).collect();
            if json {
                let v = json!({
                    "format": d.layers.first().map(|l| l.format.name()),
                    "variant": d.layers.first().map(|l| l.variant.clone()),
                    "virtual_size": d.len(),
                    "allocated": allocated,
                    "chain": links,
                    "problems": d.problems,
                });
                println!("{v}");
            } else {
                let f = d.layers.first().map_or("", |l| l.format.name());
                println!("{f} {}  virtual size {} bytes, {allocated} bytes allocated", d.name(), d.len());
                for (i, l) in d.layers.iter().enumerate() {
                    let parent_id = l.parent.as_ref().and_then(|p| p.id.as_deref()).unwrap_or("-");
                    let (id_word, pid_word) =
                        if l.format == Format::Vmdk { ("CID", "parentCID") } else { ("id", "parent") };
                    println!(
                        "  link {i}: {}  {} {}  {id_word} {}  {pid_word} {parent_id}",
                        l.path,
                        l.format.name(),
                        l.variant,
                        l.id.as_deref().unwrap_or("-"),
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
