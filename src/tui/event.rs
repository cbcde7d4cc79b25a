//! What flows through the loop: input and ticks, commands to the worker, and the worker's
//! answers.

use super::app::{
    DestRow, ExportKind, ExportState, HwRow, ItemRow, JobStatus, NicRow, Preview, ScanView, SourceRow, VolumeRow,
};
use ratatui::crossterm::event::KeyEvent;
use std::path::PathBuf;

/// One thing for the loop to handle.
#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    Resize,
    Tick,
    Job(JobEvent),
}

/// Work for the worker (each runs off the UI thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// List controllers and disks.
    Inventory,
    /// Open the sources and find their volumes, then list their trees.
    OpenSources,
    /// Rebuild the catalogue (from the scan's findings so far when `from_scan`).
    Rebuild {
        from_scan: bool,
    },
    /// Read the start of an item.
    Preview {
        generation: u64,
        item: usize,
    },
    StartScan,
    PauseScan(bool),
    StopScan,
    /// List the places recovered files can go.
    Destinations,
    /// Use destination `n` of the last list (mounting it if needed).
    UseDestination(usize),
    /// Stop reading destination `n` (a source disk on which nothing was found) and use it.
    ReleaseAndUse(usize),
    /// Use a folder typed by the admin.
    UseFolder(PathBuf),
    StartRecover {
        select: Vec<String>,
        to: PathBuf,
    },
    StopRecover,
    /// List the network interfaces and their addresses.
    Nics,
    /// Set interface `nic` up: `dhcp` or `IP/PREFIX[,GATEWAY[,DNS]]` (rescue image only).
    SetAddress {
        nic: String,
        spec: String,
    },
    /// Start (`on`) or stop an export of the volumes and disks found.
    Export {
        kind: ExportKind,
        on: bool,
    },
}

/// Facts the worker learned about items of catalogue `generation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    pub item: usize,
    pub note: Option<String>,
    pub allocated: Option<u64>,
    pub extents: Vec<String>,
}

/// The worker's answers.
#[derive(Debug)]
pub enum JobEvent {
    Hardware(Vec<HwRow>),
    Sources {
        sources: Vec<SourceRow>,
        volumes: Vec<VolumeRow>,
        notes: Vec<String>,
    },
    Catalog {
        items: Vec<ItemRow>,
        from_scan: bool,
        notes: Vec<String>,
    },
    Annotated {
        generation: u64,
        notes: Vec<Annotation>,
    },
    Preview {
        generation: u64,
        item: usize,
        preview: Preview,
    },
    ScanProgress(ScanView),
    ScanEnded(ScanView),
    Destinations(Vec<DestRow>),
    Target {
        path: PathBuf,
        free: Result<u64, String>,
    },
    RecoverProgress {
        bytes: u64,
        files: u64,
        current: String,
    },
    RecoverEnded {
        status: JobStatus,
        summary: Vec<String>,
    },
    Nics {
        rows: Vec<NicRow>,
        appliance: bool,
    },
    /// A network setup ended (`Ok`: what was done).
    NetSetup(Result<String, String>),
    Export {
        kind: ExportKind,
        state: ExportState,
    },
    Log(String),
    /// Something the admin must read.
    Failed(String),
}
