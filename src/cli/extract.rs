//! `vmfs-rescue extract`: copy files and trees out, sparse, with `DIR/manifest.json`.

use super::ls::entry_json;
use super::{Outcome, UsageError, open_selected};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vmfs_rescue::datastore::dest_on_source;
use vmfs_rescue::extract::{CopyOptions, copy_to_file, sanitize_component};
use vmfs_rescue::vmfs::{Fd, FdType, Vmfs, VmfsFile, WalkItem};

pub fn run(
    select: &super::args::Select,
    to: &Path,
    paths: &[String],
    system: bool,
    hole_hash_limit: u64,
) -> Result<Outcome> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    if let Some(src) = dest_on_source(to, &select.sources) {
        bail!(UsageError(format!("refusing to write to {}: it is on source {}", to.display(), src.display())));
    }
    let (_stores, fs) = open_selected(select)?;
    let opts = CopyOptions { hole_hash_limit, hash: true };
    let mut manifest: Vec<Value> = Vec::new();
    let mut damaged = false;
    let roots: Vec<String> = if paths.is_empty() { vec!["/".to_string()] } else { paths.to_vec() };
    for root in &roots {
        let fd = match fs.lookup(root) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("{root}: {e}");
                manifest.push(json!({"path": root, "error": e.to_string()}));
                damaged = true;
                continue;
            }
        };
        let comps: Vec<Vec<u8>> = root.split('/').filter(|c| !c.is_empty()).map(|c| c.as_bytes().to_vec()).collect();
        let display = format!("/{}", root.trim_matches('/'));
        // A path named explicitly is copied even if it is a system file.
        damaged |= one(&fs, to, &display, &comps, &fd, true, opts, &mut manifest)?;
        if fd.is_dir() {
            let mut err = Ok(());
            fs.walk(&fd, &display, true, &mut |item| {
                if err.is_err() {
                    return;
                }
                match item {
                    WalkItem::Entry { path, components, fd } => {
                        if fd.meta.kind == FdType::SysFile && !system {
                            return;
                        }
                        let mut all = comps.clone();
                        all.extend(components);
                        match one(&fs, to, &path, &all, &fd, system, opts, &mut manifest) {
                            Ok(d) => damaged |= d,
                            Err(e) => err = Err(e),
                        }
                    }
                    WalkItem::Error { path, error } => {
                        eprintln!("{path}: {error}");
                        manifest.push(json!({"path": path, "error": error.to_string()}));
                        damaged = true;
                    }
                }
            });
            err?;
        }
    }
    write_manifest(to, &manifest)?;
    eprintln!("{} entries; manifest: {}", manifest.len(), to.join("manifest.json").display());
    Ok(if damaged { Outcome::Damaged } else { Outcome::Clean })
}

/// Copy one entry; returns whether something in it could not be read.
#[allow(clippy::too_many_arguments)]
fn one(
    fs: &Arc<Vmfs>,
    to: &Path,
    path: &str,
    comps: &[Vec<u8>],
    fd: &Fd,
    system: bool,
    opts: CopyOptions,
    manifest: &mut Vec<Value>,
) -> Result<bool> {
    let rel: PathBuf = comps.iter().map(|c| sanitize_component(c)).collect();
    let dest = to.join(&rel);
    let mut entry = entry_json(fs, path, fd);
    entry["output"] = json!(rel.to_string_lossy());
    let mut damaged = false;
    if fd.is_dir() {
        std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
        entry["unreadable"] = json!([]);
    } else {
        match fd.meta.kind {
            FdType::File => {}
            FdType::SysFile if system => {}
            // Links and raw device mappings are described, never created: no absolute links
            // or device nodes appear in the output.
            FdType::Symlink | FdType::Rdm => {
                entry["output"] = Value::Null;
                entry["unreadable"] = json!([]);
                manifest.push(entry);
                return Ok(false);
            }
            _ => return Ok(false),
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let capacity = fs.capacity(fd);
        if fd.meta.size > capacity {
            let msg = format!(
                "corrupt FS3_FileMetadata at volume offset {:#x}: fileLength {:#x} exceeds the {capacity:#x} bytes its pointers can address",
                fd.vol_offset() + fs.geo.meta_off as u64,
                fd.meta.size
            );
            eprintln!("{path}: {msg}");
            entry["error"] = json!(msg);
            entry["output"] = Value::Null;
            manifest.push(entry);
            return Ok(true);
        }
        let file = VmfsFile::new(fs.clone(), fd.clone(), path);
        let report = match copy_to_file(&file, &dest, opts) {
            Ok(r) => r,
            Err(e) => {
                let hint = if e.raw_os_error() == Some(libc::EFBIG) {
                    format!(
                        " (the destination file system cannot hold a {}-byte file; ext4 stops at 16 TiB, XFS does not)",
                        fd.meta.size
                    )
                } else {
                    String::new()
                };
                eprintln!("{path}: cannot write {}: {e}{hint}", dest.display());
                entry["error"] = json!(format!("writing {}: {e}{hint}", dest.display()));
                entry["output"] = Value::Null;
                manifest.push(entry);
                return Ok(true);
            }
        };
        entry["sha256"] = json!(report.sha256);
        if report.sha256.is_none() {
            entry["data_ranges"] = json!(report.range_hashes);
        }
        entry["unreadable"] = json!(report.unreadable.iter().map(|r| [r.start, r.end - r.start]).collect::<Vec<_>>());
        if !report.unreadable.is_empty() {
            damaged = true;
            for r in &report.unreadable {
                eprintln!("{path}: unreadable bytes {:#x}..{:#x} (written as zeros)", r.start, r.end);
            }
        }
    }
    manifest.push(entry);
    Ok(damaged)
}

fn write_manifest(to: &Path, manifest: &[Value]) -> Result<()> {
    let tmp = to.join("manifest.json.partial");
    let text = serde_json::to_string_pretty(manifest)?;
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, to.join("manifest.json"))?;
    Ok(())
}
