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
    /// Simulate bad sectors: read the ranges listed in this JSON file (a forge ground truth's
    /// "bad_sectors", matched by image file name) as unreadable. For tests and practice runs.
    #[arg(long, global = true, value_name = "TRUTH.json")]
    pub bad_sectors: Option<PathBuf>,
    /// SSH sources and pushes: the server's host key fingerprint as OpenSSH prints it
    /// (SHA256:...). Without it the fingerprint is shown and must be confirmed at a terminal.
    #[arg(long, global = true, value_name = "SHA256:...")]
    pub host_key: Option<String>,
    /// SSH sources and pushes: log in with this private key file (else with a password from
    /// VMFS_RESCUE_SSH_PASSWORD or asked at the terminal).
    #[arg(short = 'i', long = "identity", global = true, value_name = "KEYFILE")]
    pub identity: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Command,
}

/// Sources and volume selection shared by the file commands.
#[derive(Args, Debug)]
pub struct Select {
    /// Image files or block devices (or ssh://USER@HOST[:PORT]/PATH on a host reached over
    /// SSH); give every device of a spanned volume.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// The volume to use (label, FS UUID or LV UUID) when the sources hold several.
    #[arg(long)]
    pub volume: Option<String>,
    /// Browse what the finished scan in DIR found instead (paths as `recover` writes them:
    /// volumes/LABEL/..., lost+found/..., previous/..., carved/...; datastore paths also match).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
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
    /// Copy files to another host over SFTP, resumable: from a VMFS volume (`--path`, as for
    /// `extract`) or a local folder (an `extract` or `recover` output, pushed as it is).
    /// Files arrive as NAME.part and are renamed when complete; DIR/manifest.json lists them
    /// with their SHA-256. Give the server's key with --host-key and log in with -i KEYFILE or
    /// a password (VMFS_RESCUE_SSH_PASSWORD, else asked).
    Push {
        #[command(flatten)]
        select: Select,
        /// Destination: sftp://user@host[:port]/DIR (DIR is created if missing).
        #[arg(long, value_name = "sftp://USER@HOST[:PORT]/DIR")]
        to: String,
        /// What to push (repeatable; a volume path, or a path inside the folder); default: all.
        #[arg(long)]
        path: Vec<String>,
        /// Also push VMFS system files (.fdc.sf, ...) found under the paths.
        #[arg(long)]
        system_files: bool,
        /// See `extract`.
        #[arg(long, default_value_t = 16)]
        hole_hash_limit_gib: u64,
    },
    /// List the storage controllers and their disks (model, serial, WWN, size, sectors,
    /// transport, partitions and what they hold); the boot medium is marked.
    Devices {
        /// The inventory as one JSON object.
        #[arg(long)]
        json: bool,
        /// List the file systems recovered files could be written to instead (sources given
        /// after it, and disks holding VMFS, are refused).
        #[arg(long)]
        destinations: bool,
        /// With --destinations: the sources of the recovery (devices or images).
        #[arg(requires = "destinations")]
        sources: Vec<PathBuf>,
    },
    /// The terminal UI: controllers and disks, volumes, browse, deep scan, recover. Without
    /// SOURCE it reads every disk but the boot medium.
    Tui {
        /// Image files or block devices to read (default: every disk but the boot medium).
        sources: Vec<PathBuf>,
        /// Folder of the scan index (default: one per set of sources under /run/vmfs-rescue or
        /// the temporary folder, so a scan started earlier resumes).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Where destination disks are mounted.
        #[arg(long, value_name = "DIR", default_value = "/mnt/vmfs-rescue")]
        mount_base: PathBuf,
        /// No colours (also: NO_COLOR, or TERM=vt100).
        #[arg(long)]
        mono: bool,
    },
    /// Read every data byte of the sources once, in order, and record every LVM, VMFS, file
    /// and disk structure found in a resumable index in --state DIR (for the recovery commands).
    Scan {
        /// Image files or block devices: every disk that may hold pieces of the datastores.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// Folder of the index (created if missing; never on a source). Run the same command
        /// again to continue an interrupted scan; a finished one is only summarised.
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// KiB per read (tests and benchmarks).
        #[arg(long, hide = true, default_value_t = 512)]
        chunk_kib: usize,
    },
    /// Rebuild what a scan found (volumes, lost+found, deleted and formatted-over files) and
    /// write it to OUT with report.json and report.txt.
    Recover {
        /// Image files or block devices (the same as for the scan).
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// The scan's state folder (a scan not run or not finished there is run or resumed first).
        #[arg(long)]
        state: PathBuf,
        /// Destination folder (created if missing; never on a source).
        #[arg(long)]
        to: PathBuf,
        /// Write only these output or datastore paths (prefixes; repeatable).
        #[arg(long)]
        select: Vec<String>,
        /// See `extract`.
        #[arg(long, default_value_t = 16)]
        hole_hash_limit_gib: u64,
    },
    /// Write a test datastore as ESXi lays it out, with realistic content, damaged as a
    /// scenario says, and its ground truth.
    Forge(ForgeArgs),
    /// Virtual disks (VMDK chains): inspect, read, convert, compare.
    #[command(subcommand)]
    Vdisk(VdiskCommand),
    /// Files inside a virtual disk or raw image: partitions, FAT and ext file systems,
    /// deleted entries; read without a mount.
    #[command(subcommand)]
    Guest(GuestCommand),
    /// Serve datastores and virtual disks over the network, read-only: HTTP(S) for browsers,
    /// curl and wget; NBD for qemu-img, nbdinfo and nbdcopy. Runs until interrupted.
    #[command(subcommand)]
    Serve(ServeCommand),
    /// Build a small damaged datastore in a temporary folder and show what vmfs-rescue sees.
    Demo {
        /// Where to build it (default: a new folder under the system's temp directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `forge` arguments.
#[derive(Args, Debug)]
pub struct ForgeArgs {
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// The scenario to build (see --list).
    #[arg(long, required_unless_present = "list")]
    pub scenario: Option<String>,
    /// VMFS version of the datastore: 3, 5 or 6.
    #[arg(long, default_value_t = 6)]
    pub version: u32,
    /// Size of each image file (written sparse: it costs only what it holds), e.g. 16G, 2T.
    #[arg(long, default_value = "16G")]
    pub size: String,
    /// Seed of every generated byte, UUID and name.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Small guest disks and no multi-terabyte thin disk (quick).
    #[arg(long)]
    pub small: bool,
    /// Image files to write: one, or two for a volume spanned over two devices. The ground
    /// truth goes to FIRST.truth.json.
    pub outs: Vec<PathBuf>,
}

/// Where a virtual disk is: a local descriptor, or a path inside a VMFS volume.
#[derive(Args, Debug)]
pub struct VdiskSource {
    /// The disk (VMDK leaf descriptor or monolithic sparse file, or an image of another format);
    /// with --path, the image files or devices of the VMFS volume that holds it.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The VMDK's path inside the VMFS volume on FILES.
    #[arg(long)]
    pub path: Option<String>,
    /// The volume to use (label, FS UUID or LV UUID) when FILES hold several.
    #[arg(long)]
    pub volume: Option<String>,
    /// Read the disk as it was at this snapshot (display name or uid from the VM's .vmsd).
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Open the disk as this format instead of recognising it by its magic (qemu's names:
    /// raw, vmdk, vdi, parallels, bochs, cloop, dmg, ...). A plain image is never recognised:
    /// open it with `-f raw`.
    #[arg(long = "input-format", short = 'f', value_name = "FORMAT")]
    pub input_format: Option<String>,
}

/// `vdisk` subcommands.
#[derive(Subcommand, Debug)]
pub enum VdiskCommand {
    /// Format, size, chain (CID, parentCID, file of each link), extents, allocation, problems.
    Info {
        /// One JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        src: VdiskSource,
    },
    /// Write the virtual content to standard output.
    Cat {
        #[command(flatten)]
        src: VdiskSource,
    },
    /// Write the virtual content to a sparse raw file or a qcow2 image, and print its SHA-256.
    Convert {
        #[command(flatten)]
        src: VdiskSource,
        /// Output file (never on a source).
        #[arg(long)]
        to: PathBuf,
        /// Output format: raw (sparse file) or qcow2 (v3, 64 KiB clusters, zero clusters left out).
        #[arg(long, default_value = "raw", value_parser = ["raw", "qcow2"])]
        format: String,
    },
    /// Compare two disks by content (holes in both are not read); print the first difference.
    #[command(
        after_help = "OTHER (and the first disk, when it is a local file) may be a virtual disk as `vdisk info` \
                            takes it, or a raw image: a file that is no virtual disk (a raw image, a flat extent) is \
                            compared as raw, and a note says so.\n\nExit status: 0 identical; 1 different, or bytes \
                            could not be read (compared as zeros; the output says where); 2 error."
    )]
    Verify {
        #[command(flatten)]
        src: VdiskSource,
        /// The disk to compare with: a local virtual disk or raw image file, or a block device.
        #[arg(long, value_name = "OTHER")]
        against: PathBuf,
        /// List at most this many differing ranges.
        #[arg(long, default_value_t = 10)]
        max_ranges: usize,
    },
}

/// What every export takes.
#[derive(Args, Debug)]
pub struct ServeNet {
    /// Address and port to listen on (default: every address; port 8080 for HTTP, 8443 with
    /// --tls, 10809 for NBD).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// The secret clients must give (8 or more of A-Z a-z 0-9 - . _ ~); default: a random one,
    /// printed with the URLs.
    #[arg(long, env = "VMFS_RESCUE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

/// `serve` subcommands.
#[derive(Subcommand, Debug)]
pub enum ServeCommand {
    /// A read-only web server: browse the volume, download files (resumable: Range requests)
    /// and virtual disks assembled through their snapshot chain as raw files (/disk/...).
    /// Clients give the secret as "Authorization: Bearer SECRET" or ?token=SECRET.
    Http {
        /// Image files or block devices of the datastore.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// Serve only this folder of the volume.
        #[arg(long)]
        path: Option<String>,
        /// The volume to serve (label, FS UUID or LV UUID); default: every readable one.
        #[arg(long)]
        volume: Option<String>,
        /// HTTPS with a self-signed certificate made now; its fingerprint is printed.
        #[arg(long)]
        tls: bool,
        #[command(flatten)]
        net: ServeNet,
    },
    /// Virtual disks, assembled through their snapshot chains, over NBD (read-only; holes
    /// are sent as holes). Export names are SECRET/DISK; the commands to use are printed.
    Nbd {
        /// With --path: the image files or devices of the VMFS volume; without: local virtual
        /// disks (VMDK descriptors, images of other formats) to export.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// A disk (VMDK descriptor) inside the VMFS volume to export (repeatable).
        #[arg(long)]
        path: Vec<String>,
        /// The volume to use when the sources hold several.
        #[arg(long)]
        volume: Option<String>,
        /// Require TLS (NBD_OPT_STARTTLS; certificates, no PSK): a CA and a server
        /// certificate are made now, the CA written as ca-cert.pem for the clients
        /// (qemu tls-creds-x509, libnbd tls-certificates) and its fingerprint printed.
        #[arg(long)]
        tls: bool,
        /// With --tls: the folder to write ca-cert.pem into (created if missing; an existing
        /// ca-cert.pem is never replaced); default: a new folder under the temp dir.
        #[arg(long, value_name = "DIR", requires = "tls")]
        tls_dir: Option<PathBuf>,
        #[command(flatten)]
        net: ServeNet,
    },
}

/// Parse the process arguments; bad usage exits with status 2.
pub fn parse() -> Cli {
    Cli::parse()
}

/// A guest disk and the volume and path inside it.
#[derive(Args, Debug)]
pub struct GuestTarget {
    #[command(flatten)]
    pub src: VdiskSource,
    /// The partition (its number as `guest ls DISK` lists it); needed when there are several.
    #[arg(long)]
    pub part: Option<u32>,
    /// The path inside the guest file system.
    #[arg(long = "guest-path", default_value = "/")]
    pub guest_path: String,
}

/// `guest` subcommands.
#[derive(Subcommand, Debug)]
pub enum GuestCommand {
    /// List the partitions of a guest disk (without --part and --guest-path), or a directory of
    /// one (deleted entries marked).
    Ls {
        /// The whole tree below the path.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// One JSON object per entry, one per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: GuestTarget,
    },
    /// Write a guest file's content to standard output.
    Cat {
        #[command(flatten)]
        target: GuestTarget,
    },
    /// Copy a guest file or tree out (deleted files too, marked), with DIR/manifest.json.
    Extract {
        #[command(flatten)]
        target: GuestTarget,
        /// Destination directory (created if missing; never on a source).
        #[arg(long)]
        to: PathBuf,
        /// Leave deleted files out.
        #[arg(long)]
        no_deleted: bool,
    },
}
