//! What flows through the loop: input and ticks, commands to the worker, and the worker's
//! answers.

use super::app::{
    DestRow, ExportKind, ExportState, HwRow, ItemRow, JobStatus, NicRow, Preview, ScanView, SourceRow, VolumeRow,
};
use super::guest::VolumeRow as GuestVolumeRow;
use crate::guest::Entry;
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
    /// Open catalogue item `item` as a virtual disk (its chain) and list its volumes; `id`
    /// names the opened disk in the commands that follow.
    GuestOpen {
        id: u64,
        generation: u64,
        item: usize,
    },
    /// List folder `dir` (`None`: the root) at `path` of volume `volume` of guest disk `id`.
    GuestList {
        id: u64,
        volume: usize,
        path: String,
        dir: Option<Entry>,
    },
    /// Read the start of a guest file.
    GuestPreview {
        id: u64,
        volume: usize,
        path: String,
        file: Entry,
    },
    /// Extract the marked entries (volume, guest path, entry) of guest disk `id` under `to`.
    GuestExtract {
        id: u64,
        select: Vec<(usize, String, Entry)>,
        to: PathBuf,
    },
    /// Stop the guest extraction (finished files are kept).
    GuestStop,
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
    /// A guest disk opened: its volumes and notes, or why it did not open.
    GuestOpened {
        id: u64,
        result: Result<(Vec<GuestVolumeRow>, Vec<String>), String>,
    },
    GuestListed {
        id: u64,
        volume: usize,
        path: String,
        result: Result<Vec<Entry>, String>,
    },
    GuestPreview {
        id: u64,
        path: String,
        preview: Preview,
    },
    GuestProgress {
        id: u64,
        bytes: u64,
        files: u64,
        current: String,
    },
    GuestExtracted {
        id: u64,
        status: JobStatus,
        summary: Vec<String>,
    },
    Log(String),
    /// Something the admin must read.
    Failed(String),
}
