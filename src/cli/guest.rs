//! `vmfs-rescue guest`: the partitions and files inside a virtual disk or raw image.

use super::args::{GuestCommand, GuestTarget};
use super::{Outcome, UsageError, vdisk};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vmfs_rescue::block::Source;
use vmfs_rescue::compare;
use vmfs_rescue::datastore::dest_on_source;
use vmfs_rescue::extract::{CopyOptions, Sink, copy, copy_to_file, sanitize_guest_component};
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

fn entry_json(path: &str, e: &Entry) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    v["path"] = json!(path);
    v
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

/// An output name not used yet in its folder: `name`, else `name~2`, ...
fn unique(dir: &Path, name: std::ffi::OsString, used: &mut HashSet<PathBuf>) -> PathBuf {
    let mut p = dir.join(&name);
    let mut n = 2;
    while !used.insert(p.clone()) {
        let mut s = name.clone();
        s.push(format!("~{n}"));
        p = dir.join(s);
        n += 1;
    }
    p
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
    // Collect first (the walk borrows the file system), live entries before deleted ones so a
    // live file keeps its name when a deleted one had the same.
    let mut items: Vec<(String, Entry)> = Vec::new();
    let mut errors = Vec::new();
    if root.kind == Kind::Dir {
        guest::walk(&*fs, &root, &prefix, &mut |p, e| items.push((p.to_string(), e.clone())), &mut errors);
    } else {
        items.push((prefix.clone(), root.clone()));
    }
    if !deleted {
        items.retain(|(_, e)| !e.deleted);
    }
    items.sort_by_key(|(p, e)| (e.deleted, p.matches('/').count()));
    let mut manifest: Vec<Value> = errors.iter().map(|e| json!({"error": e})).collect();
    let mut damaged = !errors.is_empty();
    let mut used: HashSet<PathBuf> = HashSet::new();
    // Guest folder path -> output folder.
    let mut dirs: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    // The folder extracted lands in DIR; a single file lands in DIR too.
    let top = if root.kind == Kind::Dir {
        prefix.clone()
    } else {
        prefix.rsplit_once('/').map_or("", |(p, _)| p).to_string()
    };
    dirs.insert(top, to.to_path_buf());
    for (path, e) in &items {
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        let Some(out_dir) = dirs.get(parent).cloned() else {
            // Its folder was not created (a deleted folder left out): skip, say so.
            manifest.push(json!({"path": path, "error": "its folder was not extracted"}));
            continue;
        };
        let out = unique(&out_dir, sanitize_guest_component(e.name.as_bytes()), &mut used);
        let rel = out.strip_prefix(to).unwrap_or(&out).to_string_lossy().to_string();
        let mut m = entry_json(path, e);
        m["output"] = json!(rel);
        match e.kind {
            Kind::Dir => {
                std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
                dirs.insert(path.clone(), out);
            }
            Kind::File => match fs.open(e, None) {
                Ok(src) => match copy_to_file(&*src, &out, CopyOptions::default()) {
                    Ok(r) => {
                        m["sha256"] = json!(r.sha256);
                        m["unreadable"] =
                            json!(r.unreadable.iter().map(|r| [r.start, r.end - r.start]).collect::<Vec<_>>());
                        damaged |= !r.unreadable.is_empty();
                    }
                    Err(err) => {
                        m["error"] = json!(err.to_string());
                        damaged = true;
                    }
                },
                Err(err) => {
                    m["error"] = json!(err.to_string());
                    damaged = true;
                }
            },
            Kind::Symlink | Kind::Other => m["note"] = json!("not a regular file: not copied"),
        }
        manifest.push(m);
    }
    let tmp = to.join("manifest.json.partial");
    std::fs::write(&tmp, serde_json::to_string_pretty(&manifest)? + "\n")?;
    std::fs::rename(&tmp, to.join("manifest.json"))?;
    eprintln!("{} entries; manifest: {}", manifest.len(), to.join("manifest.json").display());
    Ok(if damaged { Outcome::Damaged } else { Outcome::Clean })
}
