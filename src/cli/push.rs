//! `vmfs-rescue push SOURCE... --to sftp://user@host[:port]/DIR`: copy files off the dead host
//! over SFTP. From a VMFS volume (`--path`, as `extract` takes it) or from a local folder (the
//! output of `extract` or `recover`, pushed as it is).
//!
//! Resumable at two levels: each completed file gets a line in `DIR/.vmfs-rescue-push.jsonl`
//! on the far side (a rerun skips it while the remote file is there with its size), and a
//! file cut off midway continues from its `.part` (see `net::sftp`). `DIR/manifest.json` lists
//! what was pushed with the SHA-256 of each file as read from the source.

use super::ls::entry_json;
use super::{Outcome, UsageError, open_selected};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use vmfs_rescue::block::ssh::parse_url;
use vmfs_rescue::block::{ImageFile, Source, Tolerant};
use vmfs_rescue::extract::{CopyOptions, parse_journal, sanitize_component};
use vmfs_rescue::net::sftp::SftpPush;
use vmfs_rescue::vmfs::{FdType, VmfsFile, WalkItem};

/// The resume journal in the destination folder.
const JOURNAL: &str = ".vmfs-rescue-push.jsonl";

struct Job {
    push: SftpPush,
    opts: CopyOptions,
    done: HashMap<String, Value>,
    manifest: Vec<Value>,
    damaged: bool,
}

pub fn run(
    select: &super::args::Select,
    to: &str,
    paths: &[String],
    system: bool,
    hole_hash_limit: u64,
) -> Result<Outcome> {
    let target = parse_url(to, "sftp").map_err(|e| UsageError(format!("--to: {e}")))?;
    if select.state.is_some() {
        bail!(UsageError("push --state is not supported yet: `recover` to a folder, then push that folder".into()));
    }
    let local_dir = match select.sources.as_slice() {
        [one] if one.is_dir() => Some(one.clone()),
        _ => None,
    };
    if local_dir.is_none() && select.sources.iter().any(|p| p.is_dir()) {
        bail!(UsageError("give one folder to push, or the images/devices of a volume".into()));
    }
    // Open the sources before connecting: a wrong source costs no password prompt.
    let fs = if local_dir.is_none() { Some(open_selected(select)?.1) } else { None };
    let push = SftpPush::connect(&target, &super::ssh::options()?)?;
    let done = parse_journal(&push.read_text(JOURNAL).unwrap_or_default(), "path");
    let mut job =
        Job { push, opts: CopyOptions { hole_hash_limit, hash: true }, done, manifest: Vec::new(), damaged: false };
    let roots: Vec<String> = if paths.is_empty() { vec!["/".into()] } else { paths.to_vec() };
    match (&local_dir, fs) {
        (Some(dir), _) => {
            for r in &roots {
                job.local(dir, r)?;
            }
        }
        (None, Some(fs)) => {
            for r in &roots {
                job.volume(&fs, r, system)?;
            }
            if let Some(note) = super::unreadable_note(&fs) {
                eprintln!("warning: {note}");
                job.damaged = true;
            }
        }
        (None, None) => unreachable!("a volume is opened when no folder is given"),
    }
    let text = serde_json::to_string_pretty(&job.manifest)? + "\n";
    job.push.write_atomic("manifest.json", text.as_bytes())?;
    eprintln!("{} entries pushed to {}; manifest: {}", job.manifest.len(), to, job.push.remote("manifest.json"));
    Ok(if job.damaged { Outcome::Damaged } else { Outcome::Clean })
}

/// The remote relative path of "/"-separated components, each made safe as `extract` does.
fn rel_of(comps: &[Vec<u8>]) -> String {
    comps.iter().map(|c| sanitize_component(c).to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

impl Job {
    /// A tree of a VMFS volume.
    fn volume(&mut self, fs: &Arc<vmfs_rescue::vmfs::Vmfs>, root: &str, system: bool) -> Result<()> {
        let fd = match fs.lookup(root) {
            Ok(fd) => fd,
            Err(e) => {
                self.error(root, &e.to_string());
                return Ok(());
            }
        };
        let display = format!("/{}", root.trim_matches('/'));
        let comps: Vec<Vec<u8>> = root.split('/').filter(|c| !c.is_empty()).map(|c| c.as_bytes().to_vec()).collect();
        let mut items = vec![(display.clone(), comps.clone(), fd.clone())];
        if fd.is_dir() {
            fs.walk(&fd, &display, true, &mut |item| match item {
                WalkItem::Entry { path, components, fd } => {
                    if fd.meta.kind == FdType::SysFile && !system {
                        return;
                    }
                    let mut all = comps.clone();
                    all.extend(components);
                    items.push((path, all, fd));
                }
                WalkItem::Error { path, error, .. } => self.error(&path, &error.to_string()),
            });
        }
        for (path, comps, fd) in items {
            let rel = rel_of(&comps);
            let mut entry = entry_json(fs, &path, &fd);
            entry["volume_uuid"] = json!(fs.desc.uuid.to_string());
            entry["output"] = json!(rel);
            match fd.meta.kind {
                FdType::Directory => {
                    self.push.mkdir_p(&rel)?;
                    self.manifest.push(entry);
                }
                FdType::File | FdType::SysFile => {
                    if let Err(e) = fs.check_size(&fd) {
                        self.failed(&path, entry, e.to_string());
                        continue;
                    }
                    let src = VmfsFile::new(Arc::clone(fs), fd.clone(), &path);
                    let keys = ["volume_uuid", "fd_addr", "generation", "size", "mtime"];
                    self.file(&path, &rel, &src, entry, &keys)?;
                }
                _ => {
                    entry["output"] = Value::Null;
                    self.manifest.push(entry);
                }
            }
        }
        Ok(())
    }

    /// A local folder (an `extract` or `recover` output), below `dir`.
    fn local(&mut self, dir: &Path, root: &str) -> Result<()> {
        let start = dir.join(root.trim_start_matches('/'));
        let mut stack = vec![start];
        while let Some(p) = stack.pop() {
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
            if meta.is_dir() {
                self.push.mkdir_p(&rel)?;
                let mut kids: Vec<_> = std::fs::read_dir(&p)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
                kids.sort();
                kids.reverse();
                stack.extend(kids);
                continue;
            }
            // Our own bookkeeping of an unfinished local copy is not pushed.
            if !meta.is_file() || rel.ends_with(".partial") || rel.ends_with(super::extract::JOURNAL) {
                continue;
            }
            let src: Source = Arc::new(Tolerant::new(ImageFile::open(&p)?));
            use std::os::unix::fs::MetadataExt;
            let entry = json!({"path": format!("/{rel}"), "type": "file", "size": meta.len(), "mtime": meta.mtime(), "output": rel});
            self.file(&format!("/{rel}"), &rel, src.as_ref(), entry, &["size", "mtime"])?;
        }
        Ok(())
    }

    /// Push one file unless the journal says an earlier run did (and it is still there).
    fn file(
        &mut self,
        path: &str,
        rel: &str,
        src: &dyn vmfs_rescue::block::BlockSource,
        mut entry: Value,
        keys: &[&str],
    ) -> Result<()> {
        if let Some(prev) = self.done.get(path)
            && keys.iter().all(|k| prev[*k] == entry[*k])
            && self.push.size_of(rel) == entry["size"].as_u64()
        {
            eprintln!("{path}: already pushed by an earlier run, kept");
            self.damaged |= prev["unreadable"].as_array().is_some_and(|u| !u.is_empty());
            self.manifest.push(prev.clone());
            return Ok(());
        }
        let r = match self.push.push(src, rel, self.opts) {
            Ok(r) => r,
            // The connection is gone: stop (a rerun continues where this one stopped).
            Err(e @ vmfs_rescue::net::sftp::PushError::Ssh(_)) => return Err(e.into()),
            Err(e) => {
                self.failed(path, entry, e.to_string());
                return Ok(());
            }
        };
        if r.resumed_at > 0 {
            eprintln!("{path}: continued an earlier push at byte {}", r.resumed_at);
        }
        entry["sha256"] = json!(r.copy.sha256);
        if r.copy.sha256.is_none() {
            entry["data_ranges"] = json!(r.copy.range_hashes);
        }
        entry["unreadable"] = json!(r.copy.unreadable.iter().map(|u| [u.start, u.end - u.start]).collect::<Vec<_>>());
        for u in &r.copy.unreadable {
            eprintln!("{path}: unreadable bytes {:#x}..{:#x} (sent as zeros)", u.start, u.end);
            self.damaged = true;
        }
        self.push.append_line(JOURNAL, &entry.to_string())?;
        self.manifest.push(entry);
        Ok(())
    }

    fn error(&mut self, path: &str, msg: &str) {
        eprintln!("{path}: {msg}");
        self.manifest.push(json!({"path": path, "error": msg}));
        self.damaged = true;
    }

    fn failed(&mut self, path: &str, mut entry: Value, msg: String) {
        eprintln!("{path}: {msg}");
        entry["error"] = json!(msg);
        entry["output"] = Value::Null;
        self.manifest.push(entry);
        self.damaged = true;
    }
}
