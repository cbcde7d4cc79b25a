//! Guest files written out (`guest extract`, the TUI's guest view): a walk of the chosen
//! entries, names sanitized with [`sanitize_guest_component`], each file through the copy
//! pipeline (sparse, hashed, atomic), NTFS alternate data streams as sibling files named by
//! [`sanitize_guest_stream`] (`NAME@STREAM`), and `manifest.json` keeping every original name.
//!
//! The manifest is one JSON array: an object per entry (its [`Entry`] fields, `path` in the
//! guest, `output` relative to the destination, `sha256`, `unreadable` as `[offset, length]`
//! pairs), an object per stream (`path`, `name`, `stream`, `size`, `output`, `sha256`,
//! `unreadable`), and `{"error": ..}` for what could not be listed. It is written last, as
//! `manifest.json.partial` renamed.

use super::{Entry, GuestFs, Kind, walk};
use crate::block::{Meter, Metered, Source};
use crate::extract::{CopyOptions, CopyReport, copy_to_file, sanitize_guest_component, sanitize_guest_stream};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Where a chosen folder lands in the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A folder's contents go straight into the destination (`guest extract --guest-path`).
    Contents,
    /// A folder lands as a folder of its own name (the TUI's marked folders).
    Itself,
}

/// How to extract.
#[derive(Clone, Debug)]
pub struct Options {
    /// Deleted entries below the chosen ones too (a chosen entry is written even when deleted).
    pub deleted: bool,
    pub place: Place,
    pub copy: CopyOptions,
    /// Counts bytes and files; its stop flag ends the extraction after the current file.
    pub meter: Option<Arc<Meter>>,
}

impl Default for Options {
    fn default() -> Self {
        Self { deleted: true, place: Place::Contents, copy: CopyOptions::default(), meter: None }
    }
}

/// What an extraction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Regular files written.
    pub files: u64,
    /// Alternate data streams written.
    pub streams: u64,
    pub dirs: u64,
    /// Bytes of content written (files and streams).
    pub bytes: u64,
    /// Entries that could not be listed, opened or copied (each in the manifest).
    pub errors: u64,
    /// Files or streams with unreadable ranges (written as zeros).
    pub damaged: u64,
    /// The meter's stop flag ended it early.
    pub stopped: bool,
    /// Manifest entries.
    pub entries: usize,
    pub manifest: PathBuf,
}

impl Summary {
    /// Nothing failed and nothing was unreadable.
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.damaged == 0
    }
}

/// An error that stops the extraction: the destination cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Io { path: path.to_path_buf(), source }
}

/// An entry as a manifest object, with its guest path.
pub fn entry_json(path: &str, e: &Entry) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    v["path"] = json!(path);
    v
}

/// The parent of a guest path (`/a/b` -> `/a`, `/a` -> ``).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// An output name not used yet in its folder: `name`, else `name~2`, ...
fn unique(dir: &Path, name: OsString, used: &mut HashSet<PathBuf>) -> PathBuf {
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

/// Write `roots` (guest path and entry, of file system `fs`) and what is below them into `to`
/// (created if missing), with `manifest.json`. Errors on single entries go into the manifest;
/// only a destination that cannot be written stops it.
pub fn extract(
    fs: &dyn GuestFs,
    roots: &[(String, Entry)],
    to: &Path,
    opts: &Options,
) -> Result<Summary, ExtractError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    // A root below another root comes with it.
    let is_below = |p: &str, q: &str| q != p && (q.is_empty() || p.starts_with(&format!("{q}/")));
    let roots: Vec<&(String, Entry)> = roots
        .iter()
        .filter(|(p, _)| !roots.iter().any(|(q, e)| e.kind == Kind::Dir && is_below(p, q.trim_end_matches('/'))))
        .collect();
    // Collect first (the walk borrows the file system). Parents before children; in a folder
    // live entries before deleted ones, so a live file keeps its name when a deleted one had it.
    let mut items: Vec<(String, Entry)> = Vec::new();
    let mut errors = Vec::new();
    let mut dirs: HashMap<String, PathBuf> = HashMap::new();
    for (path, root) in roots {
        let path = path.trim_end_matches('/').to_string();
        if root.kind == Kind::Dir && opts.place == Place::Contents {
            dirs.insert(path.clone(), to.to_path_buf());
        } else {
            dirs.insert(parent(&path).to_string(), to.to_path_buf());
            items.push((path.clone(), root.clone()));
        }
        if root.kind == Kind::Dir {
            let mut below = Vec::new();
            walk(fs, root, &path, &mut |p, e| below.push((p.to_string(), e.clone())), &mut errors);
            below.retain(|(_, e)| opts.deleted || !e.deleted);
            items.extend(below);
        }
    }
    items.sort_by_key(|(p, e)| (p.matches('/').count(), e.deleted));
    let mut sum = Summary { errors: errors.len() as u64, ..Summary::default() };
    let mut manifest: Vec<Value> = errors.iter().map(|e| json!({"error": e})).collect();
    let mut used: HashSet<PathBuf> = HashSet::new();
    for (path, e) in &items {
        if opts.meter.as_ref().is_some_and(|m| m.stopped()) {
            sum.stopped = true;
            break;
        }
        let Some(out_dir) = dirs.get(parent(path)).cloned() else {
            // Its folder was not created (a deleted folder left out): skip, say so.
            manifest.push(json!({"path": path, "error": "its folder was not extracted"}));
            sum.errors += 1;
            continue;
        };
        let out = unique(&out_dir, sanitize_guest_component(e.name.as_bytes()), &mut used);
        let mut m = entry_json(path, e);
        m["output"] = json!(relative(&out, to));
        match e.kind {
            Kind::Dir => {
                std::fs::create_dir_all(&out).map_err(io(&out))?;
                dirs.insert(path.clone(), out);
                sum.dirs += 1;
            }
            Kind::File => {
                let ok = copy_one(fs, e, None, path, &out, opts, &mut m, &mut sum);
                manifest.push(m);
                if ok {
                    sum.files += 1;
                    // Each alternate data stream beside its file.
                    for s in &e.streams {
                        let sout = unique(&out_dir, sanitize_guest_stream(e.name.as_bytes(), s.as_bytes()), &mut used);
                        let mut sm = json!({"path": path, "name": e.name, "stream": s, "deleted": e.deleted,
                            "output": relative(&sout, to)});
                        if copy_one(fs, e, Some(s), &format!("{path}:{s}"), &sout, opts, &mut sm, &mut sum) {
                            sum.streams += 1;
                        }
                        manifest.push(sm);
                    }
                }
                continue;
            }
            Kind::Symlink | Kind::Other => m["note"] = json!("not a regular file: not copied"),
        }
        manifest.push(m);
    }
    sum.entries = manifest.len();
    let tmp = to.join("manifest.json.partial");
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_else(|_| "[]".into()) + "\n";
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    sum.manifest = to.join("manifest.json");
    std::fs::rename(&tmp, &sum.manifest).map_err(io(&sum.manifest))?;
    Ok(sum)
}

fn relative(p: &Path, to: &Path) -> String {
    p.strip_prefix(to).unwrap_or(p).to_string_lossy().into_owned()
}

/// Copy file `e` (or its stream) to `out`, recording the result in `m`; whether it was written.
#[allow(clippy::too_many_arguments)]
fn copy_one(
    fs: &dyn GuestFs,
    e: &Entry,
    stream: Option<&str>,
    what: &str,
    out: &Path,
    opts: &Options,
    m: &mut Value,
    sum: &mut Summary,
) -> bool {
    let copied = fs.open(e, stream).map_err(|err| err.to_string()).and_then(|src| {
        if stream.is_some() {
            m["size"] = json!(src.len());
        }
        let src: Source = match &opts.meter {
            Some(meter) => {
                meter.set_current(what);
                Arc::new(Metered::new(src, Arc::clone(meter)))
            }
            None => src,
        };
        copy_to_file(&*src, out, opts.copy).map_err(|err| err.to_string())
    });
    if let Some(meter) = &opts.meter {
        meter.done.fetch_add(1, Ordering::Relaxed);
    }
    match copied {
        Ok(r) => {
            record(m, &r);
            sum.bytes += r.size;
            sum.damaged += u64::from(!r.unreadable.is_empty());
            true
        }
        Err(err) => {
            m["error"] = json!(err);
            sum.errors += 1;
            false
        }
    }
}

fn record(m: &mut Value, r: &CopyReport) {
    m["sha256"] = json!(r.sha256);
    m["unreadable"] = json!(r.unreadable.iter().map(|r| [r.start, r.end - r.start]).collect::<Vec<_>>());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{MemSource, Tolerant};
    use crate::guest::GuestError;

    /// `/a/f` (with stream `s`), `/a/b/g`, a deleted `/a/f` beside the live one, `/x:y`.
    struct Fake;

    fn e(name: &str, kind: Kind, id: u64, deleted: bool, streams: &[&str]) -> Entry {
        Entry {
            name: name.into(),
            kind,
            size: 0,
            deleted,
            streams: streams.iter().map(|s| s.to_string()).collect(),
            ..Entry::bare_root(id, None)
        }
    }

    impl GuestFs for Fake {
        fn fs_type(&self) -> String {
            "fake".into()
        }
        fn label(&self) -> Option<String> {
            None
        }
        fn root(&self) -> Entry {
            Entry::bare_root(0, None)
        }
        fn list(&self, dir: &Entry) -> Result<Vec<Entry>, GuestError> {
            Ok(match dir.id {
                0 => vec![e("a", Kind::Dir, 1, false, &[]), e("x:y", Kind::File, 5, false, &[])],
                // The deleted f first: the live one still keeps the name.
                1 => vec![
                    e("f", Kind::File, 6, true, &[]),
                    e("f", Kind::File, 2, false, &["s"]),
                    e("b", Kind::Dir, 3, false, &[]),
                ],
                3 => vec![e("g", Kind::File, 4, false, &[])],
                _ => vec![],
            })
        }
        fn open(&self, file: &Entry, stream: Option<&str>) -> Result<Source, GuestError> {
            let data = format!("{}:{}", file.id, stream.unwrap_or("")).into_bytes();
            Ok(Arc::new(Tolerant::new(MemSource::new("fake", data))))
        }
    }

    fn manifest(dir: &Path) -> Vec<Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
    }

    #[test]
    fn folders_land_as_themselves_with_streams_beside_their_file() {
        let t = tempfile::tempdir().unwrap();
        let a = e("a", Kind::Dir, 1, false, &[]);
        let g = e("g", Kind::File, 4, false, &[]);
        // /a/b/g comes with /a: not written twice.
        let roots =
            [("/a/b/g".to_string(), g), ("/a".to_string(), a), ("/x:y".into(), e("x:y", Kind::File, 5, false, &[]))];
        let opts = Options { place: Place::Itself, ..Options::default() };
        let s = extract(&Fake, &roots, t.path(), &opts).unwrap();
        assert_eq!((s.files, s.streams, s.dirs, s.errors), (4, 1, 2, 0), "{s:?}");
        let read = |p: &str| std::fs::read_to_string(t.path().join(p)).unwrap();
        assert_eq!(read("a/f"), "2:");
        assert_eq!(read("a/f~2"), "6:", "the deleted one gets another name");
        assert_eq!(read("a/f@s"), "2:s");
        assert_eq!(read("a/b/g"), "4:");
        assert_eq!(read("x_y"), "5:");
        let m = manifest(t.path());
        let st = m.iter().find(|v| v["stream"] == "s").unwrap();
        assert_eq!(
            (st["path"].as_str(), st["output"].as_str(), st["size"].as_u64()),
            (Some("/a/f"), Some("a/f@s"), Some(3))
        );
        assert!(st["sha256"].as_str().is_some_and(|h| h.len() == 64));
        assert!(m.iter().any(|v| v["path"] == "/x:y" && v["name"] == "x:y" && v["output"] == "x_y"));
    }

    #[test]
    fn contents_of_a_folder_and_no_deleted() {
        let t = tempfile::tempdir().unwrap();
        let opts = Options { deleted: false, ..Options::default() };
        let s = extract(&Fake, &[("/a".into(), e("a", Kind::Dir, 1, false, &[]))], t.path(), &opts).unwrap();
        assert_eq!((s.files, s.streams, s.dirs), (2, 1, 1));
        assert!(t.path().join("f").is_file() && t.path().join("b/g").is_file() && !t.path().join("f~2").exists());
        // A stop before the first file: nothing but the manifest.
        let t = tempfile::tempdir().unwrap();
        let meter = Arc::new(Meter::default());
        meter.stop.store(true, Ordering::Relaxed);
        let opts = Options { meter: Some(meter), ..Options::default() };
        let s = extract(&Fake, &[("".into(), Entry::bare_root(0, None))], t.path(), &opts).unwrap();
        assert!(s.stopped && s.files == 0 && t.path().join("manifest.json").is_file());
    }
}
