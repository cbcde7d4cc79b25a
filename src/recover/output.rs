//! Writing a rebuilt catalogue out: the tree (`volumes/`, `lost+found/`, `previous/`,
//! `carved/`), `report.json` (every item: origin, method, confidence, size, SHA-256, unreadable
//! ranges, what is missing) and `report.txt` for people. Each file is written as `.partial` and
//! renamed; a journal of completed files lets a run stopped by a crash or a kill resume without
//! reading those files again.

use super::rebuild::{Catalog, Item, Kind};
use crate::block::{Meter, Metered, Source};
use crate::extract::{CopyOptions, copy_to_file, read_journal, sanitize_component};
use serde_json::{Value, json};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Name of the resume journal in the output folder.
pub const JOURNAL: &str = ".vmfs-rescue-recover.jsonl";

/// What to write.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Output paths (or original datastore paths) to write, by prefix; empty = everything.
    pub select: Vec<String>,
    pub copy: CopyOptions,
    /// Progress and stop for a front end: bytes read, files done, the current file.
    pub meter: Option<Arc<Meter>>,
}

/// What a recovery wrote.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    pub dirs: usize,
    pub bytes: u64,
    /// Files kept from an earlier, interrupted run.
    pub resumed: usize,
    /// Items that could not be written or whose content is lost (reported, not written).
    pub not_recovered: usize,
    /// Files with unreadable ranges.
    pub damaged: usize,
    /// Stopped on request (`Meter::stop`) before the end; a later run resumes.
    pub stopped: bool,
}

/// Whether `item` is selected by `select` (prefixes of its output or original path).
fn selected(item: &Item, select: &[String]) -> bool {
    if select.is_empty() {
        return true;
    }
    let out = item.out_path();
    select.iter().any(|s| {
        let s = s.trim_end_matches('/');
        let under = |p: &str| p == s || p.starts_with(&format!("{s}/"));
        under(&out) || item.original.as_deref().is_some_and(|o| under(o) || under(o.trim_start_matches('/')))
    })
}

/// The key that says a journal line is this very item.
fn key(item: &Item) -> String {
    format!("{}|{}|{:?}|{}|{}", item.out_path(), item.volume, item.fd, item.size, item.mtime)
}

/// Write `cat` under `to`. `sources` names go into the report.
pub fn write(cat: &Catalog, sources: &[String], to: &Path, opts: &Options) -> io::Result<Summary> {
    std::fs::create_dir_all(to)?;
    let jpath = to.join(JOURNAL);
    let done = read_journal(&jpath, "key");
    let mut journal = std::fs::OpenOptions::new().create(true).append(true).open(&jpath)?;
    let mut sum = Summary::default();
    let mut entries = Vec::new();
    for item in cat.items.iter().filter(|i| selected(i, &opts.select)) {
        if opts.meter.as_ref().is_some_and(|m| m.stopped()) {
            sum.stopped = true;
            break;
        }
        let rel: PathBuf = item.path.iter().map(|c| sanitize_component(c.as_bytes())).collect();
        let dest = to.join(&rel);
        let mut e = entry(item, &rel);
        match (item.kind, &item.content) {
            (Kind::Dir, _) => {
                std::fs::create_dir_all(&dest)?;
                sum.dirs += 1;
            }
            (Kind::File, Some(src)) => {
                let k = key(item);
                if let Some(prev) =
                    done.get(&k).filter(|_| std::fs::metadata(&dest).is_ok_and(|m| m.len() == item.size))
                {
                    for f in ["sha256", "unreadable", "data_ranges"] {
                        e[f] = prev[f].clone();
                    }
                    sum.resumed += 1;
                    sum.files += 1;
                    sum.damaged += usize::from(prev["unreadable"].as_array().is_some_and(|u| !u.is_empty()));
                    entries.push(e);
                    continue;
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let metered: Source = match &opts.meter {
                    Some(m) => {
                        m.set_current(&item.out_path());
                        Arc::new(Metered::new(Arc::clone(src), Arc::clone(m)))
                    }
                    None => Arc::clone(src),
                };
                let copied = copy_to_file(metered.as_ref(), &dest, opts.copy);
                if let Some(m) = &opts.meter {
                    m.done.fetch_add(1, Ordering::Relaxed);
                    if m.stopped() {
                        sum.stopped = true;
                        break;
                    }
                }
                match copied {
                    Ok(r) => {
                        e["sha256"] = json!(r.sha256);
                        if r.sha256.is_none() {
                            e["data_ranges"] = json!(r.range_hashes);
                        }
                        e["unreadable"] =
                            json!(r.unreadable.iter().map(|u| [u.start, u.end - u.start]).collect::<Vec<_>>());
                        sum.damaged += usize::from(!r.unreadable.is_empty());
                        sum.files += 1;
                        sum.bytes += r.size;
                        // Written (and synced) only once the file itself is complete.
                        let line = json!({"key": k, "sha256": e["sha256"], "unreadable": e["unreadable"], "data_ranges": e["data_ranges"]});
                        writeln!(journal, "{line}")?;
                        journal.sync_data()?;
                        test_pause();
                    }
                    Err(err) if err.kind() == io::ErrorKind::StorageFull => return Err(err),
                    Err(err) => {
                        e["error"] = json!(format!("writing {}: {err}", dest.display()));
                        e["output"] = Value::Null;
                        sum.not_recovered += 1;
                    }
                }
            }
            // Links are described, never created; lost content is reported.
            _ => {
                e["output"] = Value::Null;
                sum.not_recovered += usize::from(item.kind == Kind::File);
            }
        }
        entries.push(e);
    }
    let report = json!({
        "sources": sources,
        "volumes": cat.volumes.iter().map(|v| json!({
            "name": v.name, "version": v.version, "how": v.how, "previous": v.previous,
            "label": v.fs.desc.label, "uuid": v.fs.desc.uuid.to_string(),
        })).collect::<Vec<_>>(),
        "notes": cat.notes,
        "summary": {
            "files": sum.files, "dirs": sum.dirs, "bytes": sum.bytes, "resumed": sum.resumed,
            "not_recovered": sum.not_recovered, "damaged": sum.damaged, "stopped": sum.stopped,
        },
        "items": entries,
    });
    write_text(&to.join("report.json"), &(serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"))?;
    write_text(&to.join("report.txt"), &human(cat, &entries, &sum))?;
    Ok(sum)
}

/// Tests stop a recovery in the middle with a kill; this slows it down enough to aim
/// (`VMFS_RESCUE_TEST_PAUSE_MS` after each file).
fn test_pause() {
    if let Some(ms) = std::env::var("VMFS_RESCUE_TEST_PAUSE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

fn entry(item: &Item, rel: &Path) -> Value {
    json!({
        "path": item.out_path(),
        "output": rel.to_string_lossy(),
        "kind": item.kind,
        "state": item.state,
        "original": item.original,
        "volume": item.volume,
        "fd": item.fd.map(|a| format!("{a:#x}")),
        "size": item.size,
        "mtime": item.mtime,
        "method": item.method,
        "confidence": item.confidence,
        "sha256": null,
        "unreadable": [],
        "missing": item.missing,
    })
}

fn write_text(path: &Path, text: &str) -> io::Result<()> {
    crate::extract::write_atomically(path, |mut f| f.write_all(text.as_bytes()))
}

/// The short report for people: volumes, counts by state, what was not recovered and why.
fn human(cat: &Catalog, entries: &[Value], sum: &Summary) -> String {
    let mut t = String::from("vmfs-rescue recovery report\n\nVolumes:\n");
    for v in &cat.volumes {
        let kind = if v.previous { "previous (formatted over)" } else { "current" };
        t.push_str(&format!("  {} (VMFS{}, {kind}): {}\n", v.name, v.version, v.how));
    }
    let mut by_state: std::collections::BTreeMap<String, usize> = Default::default();
    for e in entries {
        *by_state.entry(e["state"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    t.push_str(&format!(
        "\nWritten: {} files ({} bytes), {} folders; {} kept from an earlier run; {} with unreadable ranges.\n",
        sum.files, sum.bytes, sum.dirs, sum.resumed, sum.damaged
    ));
    if sum.stopped {
        t.push_str(
            "STOPPED before the end on request: run the recovery again to finish it (written files are kept).\n",
        );
    }
    t.push_str("Items by state: ");
    t.push_str(&by_state.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "));
    t.push_str("\n\nNot recovered:\n");
    let mut any = false;
    for e in entries.iter().filter(|e| e["kind"] == "file" && e["output"].is_null()) {
        any = true;
        let why = e["error"].as_str().map(String::from).unwrap_or_else(|| {
            e["missing"]
                .as_array()
                .map(|m| m.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join("; "))
                .unwrap_or_default()
        });
        t.push_str(&format!("  {}: {why}\n", e["path"].as_str().unwrap_or("?")));
    }
    if !any {
        t.push_str("  nothing\n");
    }
    if !cat.notes.is_empty() {
        t.push_str("\nNotes:\n");
        for n in &cat.notes {
            t.push_str(&format!("  {n}\n"));
        }
    }
    t
}
