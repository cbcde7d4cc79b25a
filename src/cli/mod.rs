//! The command line: each command in its own file; errors become exit codes in `main`.

pub mod args;
mod cat;
mod devices;
mod extract;
mod forge;
mod found;
mod guest;
mod ls;
mod push;
mod recover;
mod scan;
mod serve;
mod ssh;
mod tui;
mod vdisk;
mod volumes;

use anyhow::{Result, bail};
use args::{Cli, Command, Select};
use std::sync::Arc;
use vmfs_rescue::datastore::{self, Datastore};
use vmfs_rescue::vmfs::Vmfs;

/// How a command ended when it did not fail outright.
pub enum Outcome {
    /// Everything was read.
    Clean,
    /// Something could not be read, or (`vdisk verify`) the disks differ; the output said what
    /// (exit status 1).
    Damaged,
}

/// Bad usage (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A failure of a command whose status 1 means an answer (`vdisk verify`: "different"): exit
/// status 2, like bad usage.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Failed(pub anyhow::Error);

/// Log warnings to stderr; everything at debug level to the log file when one is given.
pub fn init_logging(file: Option<&std::path::Path>) {
    use std::io::IsTerminal;
    use tracing_subscriber::{EnvFilter, fmt, prelude::*};
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        // rustls warns about client quirks on every connection (GnuTLS sends an IP address
        // as SNI when qemu-img dials one): nothing for the admin to act on.
        .with_filter(
            EnvFilter::try_from_env("VMFS_RESCUE_LOG_LEVEL").unwrap_or_else(|_| EnvFilter::new("warn,rustls=error")),
        );
    let file_layer = file.and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok()).map(|f| {
        fmt::layer().with_writer(std::sync::Mutex::new(f)).with_ansi(false).with_filter(EnvFilter::new("debug"))
    });
    let _ = tracing_subscriber::registry().with(stderr).with(file_layer).try_init();
}

/// Ranges to read as unreadable, by image file name (`--bad-sectors`).
static BAD_SECTORS: std::sync::OnceLock<Vec<(String, std::ops::Range<u64>)>> = std::sync::OnceLock::new();

/// Run one command.
pub fn run(cli: Cli) -> Result<Outcome> {
    if let Some(p) = &cli.bad_sectors {
        let t = vmfs_rescue::forge::truth::Truth::load(p).map_err(|e| UsageError(e.to_string()))?;
        let v = t.bad_sectors.iter().map(|r| (r.image.clone(), r.offset..r.offset + r.len)).collect();
        let _ = BAD_SECTORS.set(v);
    }
    ssh::remember(cli.host_key.clone(), cli.identity.clone());
    match cli.cmd {
        Command::Recover { sources, state, to, select, hole_hash_limit_gib } => {
            recover::run(&sources, &state, &to, &select, hole_hash_limit_gib << 30)
        }
        Command::Forge(a) => forge::run(&a),
        Command::Demo { dir } => forge::demo(dir),
        Command::Vdisk(c) => vdisk::run(c),
        Command::Guest(c) => guest::run(c),
        Command::Serve(c) => serve::run(c),
        Command::Push { select, to, path, system_files, hole_hash_limit_gib } => {
            push::run(&select, &to, &path, system_files, hole_hash_limit_gib << 30)
        }
        Command::Devices { json, destinations, sources } => devices::run(json, destinations, &sources),
        Command::Volumes { json, sources } => volumes::run(&sources, json),
        Command::Ls { json, select: Select { sources, state: Some(state), .. }, path, .. } => {
            found::ls(&sources, &state, &path, json)
        }
        Command::Cat { select: Select { sources, state: Some(state), .. }, path } => {
            found::cat(&sources, &state, &path)
        }
        Command::Extract {
            select: Select { sources, state: Some(state), .. }, to, path, hole_hash_limit_gib, ..
        } => {
            if let Some(src) = datastore::dest_on_source(&to, &sources) {
                bail!(UsageError(format!("refusing to write to {}: it is on source {}", to.display(), src.display())));
            }
            found::extract(&sources, &state, &to, &path, hole_hash_limit_gib << 30)
        }
        Command::Ls { recursive, json, select, path } => ls::run(&select, &path, recursive, json),
        Command::Cat { select, path } => cat::run(&select, &path),
        Command::Tui { sources, state, mount_base, mono } => tui::run(&sources, state, &mount_base, mono, cli.log),
        Command::Scan { sources, state, json, chunk_kib } => scan::run(&sources, &state, json, chunk_kib),
        Command::Extract { select, to, path, system_files, hole_hash_limit_gib } => {
            extract::run(&select, &to, &path, system_files, hole_hash_limit_gib << 30)
        }
    }
}

/// Open the sources, find the datastores, and pick the one the user means.
pub fn open_selected(select: &Select) -> Result<(Vec<Datastore>, Arc<Vmfs>)> {
    let sources = open_sources(&select.sources)?;
    let (stores, notes) = datastore::find(&sources);
    // Probe notes are for `volumes` and the log, except damage the admin must know about.
    for n in &notes {
        if n.contains("partition table") {
            tracing::warn!("{n}");
        } else {
            tracing::info!("{n}");
        }
    }
    let candidates: Vec<&Datastore> = match &select.volume {
        Some(sel) => stores.iter().filter(|d| d.matches(sel)).collect(),
        None => stores.iter().filter(|d| d.fs.is_ok()).collect(),
    };
    let chosen = match candidates.as_slice() {
        [one] => *one,
        [] if select.volume.is_some() => {
            bail!(UsageError(format!(
                "no volume {:?} on these sources (try `vmfs-rescue volumes`)",
                select.volume.as_deref().unwrap_or("")
            )))
        }
        [] => {
            let why: Vec<String> = stores
                .iter()
                .filter_map(|d| d.fs.as_ref().err().map(|e| format!("volume {}: {e}", d.volume.uuid)))
                .collect();
            if why.is_empty() {
                bail!("no VMFS volume found on {}", names(&select.sources));
            }
            bail!("no readable VMFS volume on {}: {}", names(&select.sources), why.join("; "));
        }
        many => {
            let list: Vec<String> = many.iter().map(|d| d.label().unwrap_or("?").to_string()).collect();
            bail!(UsageError(format!("several volumes ({}): choose one with --volume", list.join(", "))))
        }
    };
    for m in &chosen.volume.notes {
        tracing::warn!("{m}");
    }
    let fs = match &chosen.fs {
        Ok(fs) => Arc::clone(fs),
        Err(e) => bail!("volume {}: {e}", chosen.volume.uuid),
    };
    for w in &fs.warnings {
        tracing::warn!("{w}");
    }
    Ok((stores, fs))
}

/// Unreadable ranges the volume's reads met so far, as one warning line (None: none met).
pub fn unreadable_note(fs: &Vmfs) -> Option<String> {
    let bad = fs.vol.unreadable(0..fs.vol.len());
    if bad.is_empty() {
        return None;
    }
    let bytes: u64 = bad.iter().map(|r| r.end - r.start).sum();
    let first: Vec<String> = bad.iter().take(4).map(|r| format!("{:#x}..{:#x}", r.start, r.end)).collect();
    Some(format!(
        "{} unreadable range(s), {bytes} bytes, met on the volume (read as zeros; results may be incomplete): {}{}",
        bad.len(),
        first.join(", "),
        if bad.len() > 4 { ", ..." } else { "" }
    ))
}

/// Open the sources; a path that is no image or device is bad usage (exit status 2).
pub fn open_sources(paths: &[std::path::PathBuf]) -> Result<Vec<vmfs_rescue::block::Source>> {
    if let Some(bad) = BAD_SECTORS.get() {
        use vmfs_rescue::block::{FaultySource, ImageFile, Tolerant};
        return paths
            .iter()
            .map(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let ranges: Vec<_> = bad.iter().filter(|(n, _)| *n == name).map(|(_, r)| r.clone()).collect();
                let f = ImageFile::open(p).map_err(|e| UsageError(format!("{}: {e}", p.display())))?;
                let s: vmfs_rescue::block::Source = Arc::new(Tolerant::new(FaultySource::new(f, ranges)));
                Ok(s)
            })
            .collect();
    }
    // SSH options only when a source is remote: building them may ask for a password.
    let ssh = if paths.iter().any(|p| vmfs_rescue::block::is_remote(p)) { Some(ssh::options()?) } else { None };
    datastore::open_sources_with(paths, ssh.as_ref()).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::NotFound => UsageError(e.to_string()).into(),
        _ => e.into(),
    })
}

fn names(paths: &[std::path::PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// The type word of the CLI contract.
pub fn type_word(fd: &vmfs_rescue::vmfs::Fd) -> &'static str {
    use vmfs_rescue::vmfs::FdType;
    match fd.meta.kind {
        FdType::Directory => "dir",
        FdType::File => "file",
        FdType::Symlink => "symlink",
        FdType::Rdm => "rdm",
        FdType::SysFile => "sysfile",
        FdType::Volume | FdType::Other(_) => "other",
    }
}
