//! `vmfs-rescue ls`: list entries, as text or one JSON object per line.

use super::{Outcome, open_selected, type_word};
use anyhow::Result;
use serde_json::{Value, json};
use std::io::Write;
use vmfs_rescue::vmfs::{Fd, Vmfs, VmfsFile, WalkItem};

pub fn run(select: &super::args::Select, path: &str, recursive: bool, as_json: bool) -> Result<Outcome> {
    let (_stores, fs) = open_selected(select)?;
    let start = fs.lookup(path)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut outcome = Outcome::Clean;
    let base = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    if !start.is_dir() {
        print_entry(&mut out, &fs, &base, &start, as_json)?;
        return Ok(outcome);
    }
    let mut result = Ok(());
    fs.walk(&start, &base, recursive, &mut |item| {
        if result.is_err() {
            return;
        }
        match item {
            WalkItem::Entry { path, fd, .. } => result = print_entry(&mut out, &fs, &path, &fd, as_json),
            WalkItem::Error { path, error, .. } => {
                outcome = Outcome::Damaged;
                if as_json {
                    result = writeln!(out, "{}", json!({"path": path, "error": error.to_string()})).map_err(Into::into);
                } else {
                    eprintln!("{path}: {error}");
                }
            }
        }
    });
    result?;
    if let Some(note) = super::unreadable_note(&fs) {
        eprintln!("warning: {note}");
        outcome = Outcome::Damaged;
    }
    Ok(outcome)
}

/// The JSON description of one entry (also used by `extract`'s manifest).
pub fn entry_json(fs: &std::sync::Arc<Vmfs>, path: &str, fd: &Fd) -> Value {
    let allocated = VmfsFile::new(fs.clone(), fd.clone(), path).allocated_bytes();
    let m = &fd.meta;
    let mut v = json!({
        "path": path,
        "type": type_word(fd),
        "size": m.size,
        "mode": fd.mode(),
        "mtime": m.mtime,
        "ctime": m.ctime,
        "atime": m.atime,
        "uid": m.uid,
        "gid": m.gid,
        "allocated": allocated,
        "fd_addr": format!("{:#x}", fd.addr),
        "fd_volume_offset": fd.vol_offset(),
        "generation": m.generation,
        "links": m.link_count,
        "zla": format!("{:#x}", m.zla.raw()),
        "block_size": m.block_size,
    });
    if m.kind == vmfs_rescue::vmfs::FdType::Symlink
        && let Ok(t) = fs.read_link(fd)
    {
        v["symlink_target"] = json!(String::from_utf8_lossy(&t));
    }
    if let Some(t) = fd.rdm_target(&fs.geo) {
        v["rdm_target"] = json!({"vendor": t.vendor, "model": t.model, "id": t.id, "lun": t.lun});
    }
    v
}

fn print_entry(out: &mut dyn Write, fs: &std::sync::Arc<Vmfs>, path: &str, fd: &Fd, as_json: bool) -> Result<()> {
    if as_json {
        writeln!(out, "{}", entry_json(fs, path, fd))?;
    } else {
        let extra = match fd.meta.kind {
            vmfs_rescue::vmfs::FdType::Symlink => {
                fs.read_link(fd).map(|t| format!(" -> {}", String::from_utf8_lossy(&t))).unwrap_or_default()
            }
            vmfs_rescue::vmfs::FdType::Rdm => fd
                .rdm_target(&fs.geo)
                .map(|t| format!(" (RDM to {} {} {})", t.vendor, t.model, t.id))
                .unwrap_or_default(),
            _ => String::new(),
        };
        writeln!(out, "{:>7} {:o} {:>16} {}{}", type_word(fd), fd.mode(), fd.meta.size, path, extra)?;
    }
    Ok(())
}
