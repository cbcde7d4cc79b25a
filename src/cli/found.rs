//! `ls`, `cat` and `extract` with `--state DIR`: browse and copy what a finished scan found
//! (the rebuilt catalogue), with the paths `recover` writes (`volumes/LABEL/...`,
//! `lost+found/...`, `previous/...`, `carved/...`).

use super::{Outcome, UsageError, open_sources};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use vmfs_rescue::extract::{CopyOptions, Sink, copy};
use vmfs_rescue::recover::rebuild::{Catalog, Item, rebuild};
use vmfs_rescue::recover::{ScanIndex, output};

/// The catalogue of the finished scan in `state`.
pub fn catalog(sources: &[PathBuf], state: &Path) -> Result<Catalog> {
    let index = ScanIndex::load(state)?;
    if !index.finished() {
        bail!(UsageError(format!(
            "the scan in {} is not finished: run `vmfs-rescue scan SOURCE... --state {}` again",
            state.display(),
            state.display()
        )));
    }
    let findings = index.all_findings()?;
    Ok(rebuild(&open_sources(sources)?, &findings))
}

/// Whether `item` lies under `path` (an output path or a datastore path; "/" is everything).
fn under(item: &Item, path: &str) -> bool {
    let p = path.trim_matches('/');
    if p.is_empty() {
        return true;
    }
    let is = |q: &str| q == p || q.starts_with(&format!("{p}/"));
    is(&item.out_path()) || item.original.as_deref().is_some_and(|o| is(o.trim_start_matches('/')))
}

pub fn ls(sources: &[PathBuf], state: &Path, path: &str, as_json: bool) -> Result<Outcome> {
    let cat = catalog(sources, state)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    for i in cat.items.iter().filter(|i| under(i, path)) {
        if as_json {
            let v = json!({
                "path": i.out_path(), "type": i.kind, "state": i.state, "confidence": i.confidence,
                "size": i.size, "mtime": i.mtime, "original": i.original, "volume": i.volume,
                "fd": i.fd.map(|a| format!("{a:#x}")), "method": i.method,
                "recoverable": i.content.is_some(), "missing": i.missing,
            });
            writeln!(out, "{v}")?;
        } else {
            let what =
                if i.content.is_none() && i.kind == vmfs_rescue::recover::rebuild::Kind::File { " LOST" } else { "" };
            writeln!(
                out,
                "{:<12} {:<7} {:>14}  {}{what}",
                format!("{:?}", i.state).to_lowercase(),
                format!("{:?}", i.confidence).to_lowercase(),
                i.size,
                i.out_path()
            )?;
        }
    }
    Ok(Outcome::Clean)
}

pub fn cat(sources: &[PathBuf], state: &Path, path: &str) -> Result<Outcome> {
    let cat = catalog(sources, state)?;
    let p = path.trim_matches('/');
    let found: Vec<&Item> = cat
        .items
        .iter()
        .filter(|i| i.out_path() == p || i.original.as_deref().is_some_and(|o| o.trim_start_matches('/') == p))
        .collect();
    let item = match found.as_slice() {
        [one] => *one,
        [] => bail!(UsageError(format!("{path}: not among what the scan found (see `ls --state`)"))),
        _ => bail!(UsageError(format!("{path}: several items match; give the output path (see `ls --state`)"))),
    };
    let Some(src) = &item.content else {
        bail!("{path}: content not recovered: {}", item.missing.join("; "));
    };
    let mut out = std::io::stdout();
    let report = copy(src.as_ref(), Sink::Stream(&mut out), CopyOptions { hole_hash_limit: 0, hash: false })?;
    for r in &report.unreadable {
        eprintln!("{path}: unreadable bytes {:#x}..{:#x} (written as zeros)", r.start, r.end);
    }
    Ok(if report.unreadable.is_empty() { Outcome::Clean } else { Outcome::Damaged })
}

pub fn extract(
    sources: &[PathBuf],
    state: &Path,
    to: &Path,
    paths: &[String],
    hole_hash_limit: u64,
) -> Result<Outcome> {
    let cat = catalog(sources, state)?;
    let names: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    let select: Vec<String> = paths.iter().map(|p| p.trim_matches('/').to_string()).filter(|p| !p.is_empty()).collect();
    let opts = output::Options { select, copy: CopyOptions { hole_hash_limit, hash: true }, meter: None };
    let sum = output::write(&cat, &names, to, &opts).with_context(|| format!("writing to {}", to.display()))?;
    eprintln!("{} files and {} folders written; report: {}", sum.files, sum.dirs, to.join("report.json").display());
    Ok(if sum.damaged > 0 || sum.not_recovered > 0 { Outcome::Damaged } else { Outcome::Clean })
}
