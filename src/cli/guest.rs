//! `vmfs-rescue guest`: the partitions and files inside a virtual disk or raw image.

use super::args::{GuestCommand, GuestTarget};
use super::{Outcome, UsageError, vdisk};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use vmfs_rescue::block::Source;
use vmfs_rescue::compare;
use vmfs_rescue::datastore::dest_on_source;
use vmfs_rescue::extract::{CopyOptions, Sink, copy};
use vmfs_rescue::guest::extract::{self as gx, entry_json};
use vmfs_rescue::guest::{self, Entry, GuestFs, Kind};

/// Open the disk: a virtual disk (chain, snapshot), else a local raw image.
fn open_disk(src: &super::args::VdiskSource) -> Result<Source> {
    if src.path.is_none() && src.snapshot.is_none() && src.input_format.is_none() {
        let (files, path) = vdisk::locate(src)?;
        let o = compare::open_disk(&*files, &path, || vdisk::raw_file(&src.files[0]))?;
        for p in &o.problems {
            eprintln!("warning: {p}");
        }
        if o.raw_because.is_some() {
            tracing::info!("{}: read as a raw image", o.disk.name());
        }
        return Ok(o.disk);
    }
    let d = vdisk::open(src)?;
    for p in &d.problems {
        eprintln!("warning: {p}");
    }
    Ok(Arc::new(d))
}

/// The volume `--part` names (or the only one) with its file system.
fn open_fs(disk: &Source, t: &GuestTarget) -> Result<Box<dyn GuestFs>> {
    let g = guest::open_disk(disk)?;
    if let Some(t) = &g.table {
        for n in &t.notes {
            eprintln!("note: partition table: {n}");
        }
    }
    for n in &g.notes {
        eprintln!("note: {n}");
    }
    let vol = match t.part {
        Some(n) => g.volumes.iter().find(|v| v.index == n).with_context(|| {
            let have: Vec<String> = g.volumes.iter().map(|v| v.index.to_string()).collect();
            UsageError(format!("--part {n}: no such partition (there are: {})", have.join(", ")))
        })?,
        None => match g.volumes.as_slice() {
            [v] => v,
            _ => bail!(UsageError(format!(
                "the disk has {} partitions: choose one with --part (`guest ls DISK` lists them)",
                g.volumes.len()
            ))),
        },
    };
    Ok(guest::open_fs(&vol.source)?)
}

fn entry_line(path: &str, e: &Entry) -> String {
    let kind = match e.kind {
        Kind::Dir => 'd',
        Kind::File => '-',
        Kind::Symlink => 'l',
        Kind::Other => '?',
    };
    let del = match (e.deleted, e.confidence) {
        (true, Some(c)) => format!("  [deleted, {c:?} confidence]").to_lowercase(),
        (true, None) => "  [deleted]".into(),
        _ => String::new(),
    };
    let t = e.mtime.map(vmfs_rescue::calendar::utc).unwrap_or_default();
    format!("{kind} {:>12} {t:19} {path}{del}", e.size)
}

pub fn run(c: GuestCommand) -> Result<Outcome> {
    match c {
        GuestCommand::Ls { recursive, json, target } => ls(&target, recursive, json),
        GuestCommand::Cat { target } => cat(&target),
        GuestCommand::Extract { target, to, no_deleted } => extract(&target, &to, !no_deleted),
    }
}

fn ls(t: &GuestTarget, recursive: bool, json: bool) -> Result<Outcome> {
    let disk = open_disk(&t.src)?;
    if t.part.is_none() && t.guest_path == "/" && !recursive {
        let g = guest::open_disk(&disk)?;
        if g.table.is_some() || g.volumes.len() > 1 {
            for n in &g.notes {
                eprintln!("note: {n}");
            }
            for v in &g.volumes {
                let (fs, label) = match guest::open_fs(&v.source) {
                    Ok(f) => (f.fs_type(), f.label().unwrap_or_default()),
                    Err(e) => (format!("({e})"), String::new()),
                };
                if json {
                    println!(
                        "{}",
                        json!({"part": v.index, "start": v.start, "size": v.source.len(), "table": v.describe, "fs": fs, "label": label})
                    );
                } else {
                    println!("{:>3}  {:>14} {:>14}  {}  {fs} {label}", v.index, v.start, v.source.len(), v.describe);
                }
            }
            return Ok(Outcome::Clean);
        }
    }
    let fs = open_fs(&disk, t)?;
    let e = guest::lookup(&*fs, &t.guest_path)?;
    let prefix = t.guest_path.trim_end_matches('/');
    let mut print = |path: &str, e: &Entry| {
        if json {
            println!("{}", entry_json(path, e));
        } else {
            println!("{}", entry_line(path, e));
        }
    };
    let mut errors = Vec::new();
    if e.kind != Kind::Dir {
        print(prefix, &e);
    } else if recursive {
        guest::walk(&*fs, &e, prefix, &mut print, &mut errors);
    } else {
        for c in fs.list(&e)? {
            print(&format!("{prefix}/{}", c.name), &c);
        }
    }
    for err in &errors {
        eprintln!("warning: {err}");
    }
    Ok(if errors.is_empty() { Outcome::Clean } else { Outcome::Damaged })
}

fn cat(t: &GuestTarget) -> Result<Outcome> {
    let disk = open_disk(&t.src)?;
    let fs = open_fs(&disk, t)?;
    let e = guest::lookup(&*fs, &t.guest_path)?;
    if e.kind == Kind::Dir {
        bail!(UsageError(format!("{}: is a directory", t.guest_path)));
    }
    let src = fs.open(&e, None)?;
    let mut out = std::io::stdout();
    let r = copy(&*src, Sink::Stream(&mut out), CopyOptions { hole_hash_limit: 0, hash: false })?;
    out.flush()?;
    for u in &r.unreadable {
        eprintln!("warning: bytes {}..{} could not be read (written as zeros)", u.start, u.end);
    }
    Ok(if r.unreadable.is_empty() { Outcome::Clean } else { Outcome::Damaged })
}

fn extract(t: &GuestTarget, to: &Path, deleted: bool) -> Result<Outcome> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    if let Some(src) = dest_on_source(to, &t.src.files) {
        bail!(UsageError(format!("refusing to write to {}: it is on source {}", to.display(), src.display())));
    }
    let disk = open_disk(&t.src)?;
    let fs = open_fs(&disk, t)?;
    let root = guest::lookup(&*fs, &t.guest_path)?;
    let prefix = t.guest_path.trim_end_matches('/').to_string();
    let opts = gx::Options { deleted, place: gx::Place::Contents, ..gx::Options::default() };
    let sum = gx::extract(&*fs, &[(prefix, root)], to, &opts)?;
    eprintln!(
        "{} files, {} streams, {} folders; {} entries; manifest: {}",
        sum.files,
        sum.streams,
        sum.dirs,
        sum.entries,
        sum.manifest.display()
    );
    Ok(if sum.clean() { Outcome::Clean } else { Outcome::Damaged })
}
