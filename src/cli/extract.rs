//! `vmfs-rescue extract`: copy files and trees out, sparse, with `DIR/manifest.json`.
//!
//! Each completed file is also appended to `DIR/.vmfs-rescue-extract.jsonl`, so an extraction
//! stopped by a crash, a kill or a power loss resumes: a file whose journal line matches the same
//! volume, FD, generation, size and mtime, and whose output is there with that size, is not read
//! again from the (possibly failing) source.

use super::ls::entry_json;
use super::{Outcome, UsageError, open_selected};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vmfs_rescue::datastore::dest_on_source;
use vmfs_rescue::extract::{CopyOptions, copy_to_file, read_journal, sanitize_component};
use vmfs_rescue::vmfs::{Fd, FdType, Vmfs, VmfsFile, WalkItem};

/// Name of the resume journal in the destination.
pub const JOURNAL: &str = ".vmfs-rescue-extract.jsonl";

/// One extraction: where it goes, what it found so far, what an earlier run completed.
struct Job {
    fs: Arc<Vmfs>,
    to: PathBuf,
    system: bool,
    opts: CopyOptions,
    manifest: Vec<Value>,
    damaged: bool,
    done: HashMap<String, Value>,
    journal: std::fs::File,
}

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
    let jpath = to.join(JOURNAL);
    let done = read_journal(&jpath, "path");
    let journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&jpath)
        .with_context(|| format!("opening {}", jpath.display()))?;
    let mut job = Job {
        fs,
        to: to.to_path_buf(),
        system,
        opts: CopyOptions { hole_hash_limit, hash: true },
        manifest: Vec::new(),
        damaged: false,
        done,
        journal,
    };
    let roots: Vec<String> = if paths.is_empty() { vec!["/".to_string()] } else { paths.to_vec() };
    for root in &roots {
        job.root(root)?;
    }
    write_manifest(to, &job.manifest)?;
    eprintln!("{} entries; manifest: {}", job.manifest.len(), to.join("manifest.json").display());
    if let Some(note) = super::unreadable_note(&job.fs) {
        eprintln!("warning: {note}");
        job.damaged = true;
    }
    Ok(if job.damaged { Outcome::Damaged } else { Outcome::Clean })
}

impl Job {
    fn root(&mut self, root: &str) -> Result<()> {
        let fd = match self.fs.lookup(root) {
            Ok(fd) => fd,
            Err(e) => {
                self.error(root, &e.to_string());
                return Ok(());
            }
        };
        let comps: Vec<Vec<u8>> = root.split('/').filter(|c| !c.is_empty()).map(|c| c.as_bytes().to_vec()).collect();
        let display = format!("/{}", root.trim_matches('/'));
        // A path named explicitly is copied even if it is a system file.
        self.one(&display, &comps, &fd, true)?;
        if !fd.is_dir() {
            return Ok(());
        }
        let fs = Arc::clone(&self.fs);
        let mut result = Ok(());
        fs.walk(&fd, &display, true, &mut |item| {
            if result.is_err() {
                return;
            }
            match item {
                WalkItem::Entry { path, components, fd } => {
                    if fd.meta.kind == FdType::SysFile && !self.system {
                        return;
                    }
                    let mut all = comps.clone();
                    all.extend(components);
                    result = self.one(&path, &all, &fd, self.system);
                }
                WalkItem::Error { path, error, .. } => self.error(&path, &error.to_string()),
            }
        });
        result
    }

    fn error(&mut self, path: &str, msg: &str) {
        eprintln!("{path}: {msg}");
        self.manifest.push(json!({"path": path, "error": msg}));
        self.damaged = true;
    }

    /// Copy one entry into the manifest (and the output, for files).
    fn one(&mut self, path: &str, comps: &[Vec<u8>], fd: &Fd, system: bool) -> Result<()> {
        let rel: PathBuf = comps.iter().map(|c| sanitize_component(c)).collect();
        let dest = self.to.join(&rel);
        let mut entry = entry_json(&self.fs, path, fd);
        entry["volume_uuid"] = json!(self.fs.desc.uuid.to_string());
        entry["output"] = json!(rel.to_string_lossy());
        entry["unreadable"] = json!([]);
        if fd.is_dir() {
            std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
            self.manifest.push(entry);
            return Ok(());
        }
        match fd.meta.kind {
            FdType::File => {}
            FdType::SysFile if system => {}
            // Links and raw device mappings are described, never created: no absolute links
            // or device nodes appear in the output.
            FdType::Symlink | FdType::Rdm => {
                entry["output"] = Value::Null;
                self.manifest.push(entry);
                return Ok(());
            }
            _ => return Ok(()),
        }
        if let Some(prev) = self.resumable(path, &entry, &dest) {
            eprintln!("{path}: already extracted by an earlier run, kept");
            self.damaged |= prev["unreadable"].as_array().is_some_and(|u| !u.is_empty());
            self.manifest.push(prev);
            return Ok(());
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        if let Err(e) = self.fs.check_size(fd) {
            self.failed(path, entry, e.to_string());
            return Ok(());
        }
        let file = VmfsFile::new(Arc::clone(&self.fs), fd.clone(), path);
        let report = match copy_to_file(&file, &dest, self.opts) {
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
                self.failed(path, entry, format!("writing {}: {e}{hint}", dest.display()));
                return Ok(());
            }
        };
        entry["sha256"] = json!(report.sha256);
        if report.sha256.is_none() {
            entry["data_ranges"] = json!(report.range_hashes);
        }
        entry["unreadable"] = json!(report.unreadable.iter().map(|r| [r.start, r.end - r.start]).collect::<Vec<_>>());
        for r in &report.unreadable {
            eprintln!("{path}: unreadable bytes {:#x}..{:#x} (written as zeros)", r.start, r.end);
            self.damaged = true;
        }
        // The journal line is written (and synced) only once the file itself is complete.
        writeln!(self.journal, "{entry}")
            .and_then(|()| self.journal.sync_data())
            .context("writing the resume journal")?;
        self.manifest.push(entry);
        Ok(())
    }

    /// An earlier run's entry for this very file, if its output is still there.
    fn resumable(&self, path: &str, entry: &Value, dest: &Path) -> Option<Value> {
        let prev = self.done.get(path)?;
        let same = ["volume_uuid", "fd_addr", "generation", "size", "mtime"].iter().all(|k| prev[*k] == entry[*k]);
        let len = std::fs::metadata(dest).ok()?.len();
        (same && Some(len) == entry["size"].as_u64()).then(|| prev.clone())
    }

    fn failed(&mut self, path: &str, mut entry: Value, msg: String) {
        eprintln!("{path}: {msg}");
        entry["error"] = json!(msg);
        entry["output"] = Value::Null;
        self.manifest.push(entry);
        self.damaged = true;
    }
}

fn write_manifest(to: &Path, manifest: &[Value]) -> Result<()> {
    let tmp = to.join("manifest.json.partial");
    let text = serde_json::to_string_pretty(manifest)?;
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, to.join("manifest.json"))?;
    Ok(())
}
