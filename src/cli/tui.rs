//! `vmfs-rescue tui [SOURCE...]`: the terminal UI.

use super::Outcome;
use anyhow::{Result, bail};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use vmfs_rescue::{hw, tui};

/// The appliance's runtime folder (tmpfs); elsewhere the temporary folder is used.
const RUN_DIR: &str = "/run/vmfs-rescue";

pub fn run(
    sources: &[PathBuf],
    state: Option<PathBuf>,
    mount_base: &Path,
    mono: bool,
    log: Option<PathBuf>,
) -> Result<Outcome> {
    if !std::io::stdout().is_terminal() {
        bail!(super::UsageError("the terminal UI needs a terminal; the other commands work without one".into()));
    }
    let base = if Path::new(RUN_DIR).is_dir() { PathBuf::from(RUN_DIR) } else { std::env::temp_dir() };
    // Without --state each set of sources gets its own index folder under `base`.
    let state_auto = state.is_none();
    let state_dir = state.unwrap_or_else(|| base.clone());
    let log_file = log.unwrap_or_else(|| base.join("vmfs-rescue-tui.log"));
    let opts = tui::Options {
        worker: tui::worker::Options {
            sources: sources.to_vec(),
            state_dir,
            state_auto,
            mount_base: mount_base.to_path_buf(),
            roots: hw::Roots::default(),
            ports: tui::worker::ExportPorts::default(),
        },
        mono,
        log_file,
    };
    tui::run(opts)?;
    Ok(Outcome::Clean)
}
