//! `vmfs-rescue recover SOURCE... --state DIR --to OUT`: rebuild what the scan found and write
//! it out with `report.json` and `report.txt`.

use super::{Outcome, UsageError, open_sources};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use vmfs_rescue::datastore::dest_on_source;
use vmfs_rescue::extract::CopyOptions;
use vmfs_rescue::recover::{Finding, output, rebuild};

pub fn run(sources: &[PathBuf], state: &Path, to: &Path, select: &[String], hole_hash_limit: u64) -> Result<Outcome> {
    for dir in [to, state] {
        if let Some(src) = dest_on_source(dir, sources) {
            bail!(UsageError(format!("refusing to write to {}: it is on source {}", dir.display(), src.display())));
        }
    }
    let findings = load_findings(state)?;
    let srcs = open_sources(sources)?;
    let cat = rebuild::rebuild(&srcs, &findings);
    let names: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    let opts = output::Options { select: select.to_vec(), copy: CopyOptions { hole_hash_limit, hash: true } };
    let sum = output::write(&cat, &names, to, &opts).with_context(|| format!("writing to {}", to.display()))?;
    println!(
        "{} files ({} bytes) and {} folders written to {} ({} kept from an earlier run); {} not recovered; {} with unreadable ranges",
        sum.files,
        sum.bytes,
        sum.dirs,
        to.display(),
        sum.resumed,
        sum.not_recovered,
        sum.damaged
    );
    println!("report: {} and {}", to.join("report.txt").display(), to.join("report.json").display());
    Ok(if sum.damaged > 0 || sum.not_recovered > 0 { Outcome::Damaged } else { Outcome::Clean })
}

/// The findings of a finished scan in `state`.
fn load_findings(state: &Path) -> Result<Vec<Finding>> {
    let p = state.join("findings.jsonl");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!("{}: no scan here (run `vmfs-rescue scan SOURCE... --state DIR` first)", p.display())
    })?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
