//! `vmfs-rescue recover SOURCE... --state DIR --to OUT`: rebuild what the scan found and write
//! it out with `report.json` and `report.txt`.

use super::{Outcome, UsageError};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use vmfs_rescue::datastore::dest_on_source;
use vmfs_rescue::extract::CopyOptions;
use vmfs_rescue::recover::output;

pub fn run(sources: &[PathBuf], state: &Path, to: &Path, select: &[String], hole_hash_limit: u64) -> Result<Outcome> {
    for dir in [to, state] {
        if let Some(src) = dest_on_source(dir, sources) {
            bail!(UsageError(format!("refusing to write to {}: it is on source {}", dir.display(), src.display())));
        }
    }
    // Runs the scan, resumes an interrupted one, or (finished) only prints its summary; it
    // also refuses a state folder made from other sources.
    super::scan::run(sources, state, false, 512)?;
    let cat = super::found::catalog(sources, state)?;
    let names: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    let opts =
        output::Options { select: select.to_vec(), copy: CopyOptions { hole_hash_limit, hash: true }, meter: None };
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
