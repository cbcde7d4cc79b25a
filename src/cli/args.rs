//! Command-line arguments (what was typed; no I/O here).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Read-only recovery of VMware VMFS datastores (VMFS3/5/6, VMFS-L).
#[derive(Parser, Debug)]
#[command(name = "vmfs-rescue", version, about)]
pub struct Cli {
    /// Write a detailed log to this file (also: VMFS_RESCUE_LOG).
    #[arg(long, global = true, env = "VMFS_RESCUE_LOG")]
    pub log: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Command,
}

/// Sources and volume selection shared by the file commands.
#[derive(Args, Debug)]
pub struct Select {
    /// Image files or block devices; give every device of a spanned volume.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// The volume to use (label, FS UUID or LV UUID) when the sources hold several.
    #[arg(long)]
    pub volume: Option<String>,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the VMFS volumes found on the sources.
    Volumes {
        /// One JSON object per volume and line.
        #[arg(long)]
        json: bool,
        /// Image files or block devices.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
    },
    /// List files.
    Ls {
        /// Recurse into directories.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// One JSON object per entry and line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        select: Select,
        /// Directory or file to list.
        #[arg(long, default_value = "/")]
        path: String,
    },
    /// Write a file's content to standard output.
    Cat {
        #[command(flatten)]
        select: Select,
        /// The file.
        #[arg(long)]
        path: String,
    },
    /// Copy files or trees out, sparse, with DIR/manifest.json.
    Extract {
        #[command(flatten)]
        select: Select,
        /// Destination directory (created if missing; never on a source).
        #[arg(long)]
        to: PathBuf,
        /// What to copy (repeatable); default: the whole volume except system files.
        #[arg(long)]
        path: Vec<String>,
        /// Also copy VMFS system files (.fdc.sf, ...) found under the paths.
        #[arg(long)]
        system_files: bool,
        /// Hash the whole content of sparse files only if their holes total at most this many
        /// GiB; otherwise hash each data range (see README).
        #[arg(long, default_value_t = 16)]
        hole_hash_limit_gib: u64,
    },
}

/// Parse the process arguments; bad usage exits with status 2.
pub fn parse() -> Cli {
    Cli::parse()
}
