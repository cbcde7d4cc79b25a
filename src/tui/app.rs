//! The TUI's state: which screen, what each screen lists, selections and job snapshots. It
//! holds no source handles and parses nothing: the worker fills it through `JobEvent`s.

use super::theme::Theme;
use crate::recover::rebuild::{Confidence, Kind, State as ItemState};
use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;

/// The screens, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Hardware,
    Sources,
    Browse,
    Scan,
    Recover,
    Network,
}

impl Screen {
    pub const ALL: [Screen; 6] =
        [Screen::Hardware, Screen::Sources, Screen::Browse, Screen::Scan, Screen::Recover, Screen::Network];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Hardware => "Hardware",
            Screen::Sources => "Sources",
            Screen::Browse => "Browse",
            Screen::Scan => "Scan",
            Screen::Recover => "Recover",
            Screen::Network => "Network",
        }
    }
}

/// A window over the screen that takes the keys until closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    Help,
    /// `q` while a job runs.
    ConfirmQuit,
    /// A file's first bytes, as text or hex.
    Preview,
    /// A line of text being typed (a destination folder, an address).
    Input {
        prompt: String,
        text: String,
        then: InputFor,
    },
    /// A yes/no question before an action.
    Confirm {
        question: String,
        on_yes: Pending,
    },
    /// A message to acknowledge.
    Message(String),
}

/// What typed text is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputFor {
    /// The folder to write the recovered files to.
    Folder,
    /// The address of this network interface.
    Address(String),
}

/// What a confirmation leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Start the recovery although the free space looks short, or the target is the boot medium.
    StartRecover,
    /// Use the boot medium as the destination.
    UseBootMedium(usize),
    /// Stop reading a source disk and use it as the destination.
    ReleaseSource(usize),
}

/// One line of the hardware tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HwRow {
    /// 0 controller, 1 disk, 2 partition.
    pub depth: u8,
    /// The name column (PCI address, disk name, partition name).
    pub name: String,
    /// Everything else, already worded.
    pub text: String,
    pub boot_medium: bool,
    /// Being read as a source.
    pub source: bool,
}

/// One opened source (disk or image).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceRow {
    pub path: String,
    pub size: u64,
    /// Why it could not be opened.
    pub error: Option<String>,
    /// What was found on it ("VMFS6 datastore1"), empty when nothing.
    pub found: Vec<String>,
}

/// One volume found on the sources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeRow {
    pub label: String,
    /// "VMFS6", "VMFS-L", or "?" when the file system does not open.
    pub version: String,
    pub size: u64,
    /// LVM state, or "".
    pub state: String,
    pub parts: usize,
    /// Extents the LVM metadata names (0 when unknown).
    pub parts_expected: usize,
    pub missing_bytes: u64,
    /// Why the file system does not open.
    pub error: Option<String>,
    /// Output path of its tree in the catalogue (`volumes/LABEL`), when it has one.
    pub browse_path: Option<String>,
}

/// One catalogue item as the screens show it (the worker keeps the content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemRow {
    pub path: Vec<String>,
    pub kind: Kind,
    pub state: ItemState,
    pub confidence: Confidence,
    pub size: u64,
    pub mtime: u32,
    pub original: Option<String>,
    pub method: String,
    pub missing: Vec<String>,
    pub recoverable: bool,
    /// Bytes with data (thin disks hold less than their size), once the worker measured it.
    pub allocated: Option<u64>,
    /// What the worker read of it: a VM's name and guest OS, a disk's type and parent.
    pub note: Option<String>,
    /// Output paths of the files a descriptor names (its extents): marked and listed with it.
    pub extents: Vec<String>,
}

impl ItemRow {
    /// A row with a path, kind, state and size, and nothing else known yet.
    pub fn new(path: &str, kind: Kind, state: ItemState, size: u64) -> Self {
        Self {
            path: path.split('/').map(String::from).collect(),
            kind,
            state,
            confidence: Confidence::High,
            size,
            mtime: 0,
            original: None,
            method: String::new(),
            missing: Vec::new(),
            recoverable: true,
            allocated: None,
            note: None,
            extents: Vec::new(),
        }
    }

    pub fn out_path(&self) -> String {
        self.path.join("/")
    }
    pub fn name(&self) -> &str {
        self.path.last().map_or("", String::as_str)
    }
}

/// A background job's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum JobStatus {
    #[default]
    Idle,
    Running,
    Paused,
    Done,
    Stopped,
    Failed(String),
}

impl JobStatus {
    pub fn active(&self) -> bool {
        matches!(self, JobStatus::Running | JobStatus::Paused)
    }
}

/// The scan as the Scan screen shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanView {
    pub status: JobStatus,
    pub state_dir: PathBuf,
    pub done: u64,
    pub total: u64,
    pub throughput: f64,
    pub eta_secs: Option<u64>,
    pub findings: u64,
    pub unreadable: u64,
    /// Findings by kind, as the scan counts them.
    pub counts: Vec<(String, u64)>,
    /// The scan resumed an earlier one.
    pub resumed: bool,
}

/// A place to write to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestRow {
    /// Device or folder shown to the admin.
    pub name: String,
    /// File system and label, size.
    pub text: String,
    pub mounted_at: Option<PathBuf>,
    /// Why it cannot be used (a source, no file system).
    pub refused: Option<String>,
    /// Refused only because it is read as a source, with nothing found on it: the admin may
    /// take it out of the sources and write to it.
    pub release: bool,
    pub boot_medium: bool,
}

/// The recovery as the Recover screen shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoverView {
    pub destinations: Vec<DestRow>,
    pub cursor: usize,
    /// The folder the output goes to, once chosen.
    pub target: Option<PathBuf>,
    pub free: Option<u64>,
    pub status: JobStatus,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: u64,
    pub files_total: u64,
    pub current: String,
    /// The last run's summary lines.
    pub summary: Vec<String>,
}

/// A file's preview.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preview {
    pub title: String,
    pub lines: Vec<String>,
    pub scroll: usize,
}

/// The Browse screen: a folder of the catalogue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrowseView {
    pub cwd: Vec<String>,
    pub rows: Vec<super::tree::Row>,
    pub cursor: usize,
    /// Marked output paths (folders mark everything under them).
    pub marked: BTreeSet<String>,
    pub preview: Option<Preview>,
}

/// One network interface on the Network screen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NicRow {
    pub name: String,
    /// Driver, MAC, speed: already worded.
    pub text: String,
    /// Cable present (`None`: the interface is down, so unknown).
    pub link: Option<bool>,
    pub addrs: Vec<String>,
}

/// Which export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// The web export (HTTP, or HTTPS with `tls`).
    Web {
        tls: bool,
    },
    Nbd,
}

/// An export's state; when on, the lines to show (URLs with the secret, client commands).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ExportState {
    #[default]
    Off,
    Starting,
    On(Vec<String>),
    Failed(String),
}

impl ExportState {
    /// What a press of the export's key leads to: starting it (`true`) when off or failed,
    /// stopping it when on; nothing while it starts.
    pub fn toggled(&self) -> Option<(ExportState, bool)> {
        match self {
            ExportState::Starting => None,
            ExportState::Off | ExportState::Failed(_) => Some((ExportState::Starting, true)),
            ExportState::On(_) => Some((ExportState::Off, false)),
        }
    }
}

/// The Network screen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetView {
    pub nics: Vec<NicRow>,
    pub cursor: usize,
    /// The interfaces were listed.
    pub ready: bool,
    /// This is the rescue image, where addresses may be set.
    pub appliance: bool,
    pub web: ExportState,
    /// The web export runs with TLS.
    pub web_tls: bool,
    pub nbd: ExportState,
    /// A network change is under way.
    pub busy: Option<String>,
}

/// Everything the screens show.
pub struct App {
    pub screen: Screen,
    pub overlay: Option<Overlay>,
    pub show_log: bool,
    pub theme: Theme,
    pub hardware: Vec<HwRow>,
    pub hw_cursor: usize,
    /// The hardware inventory ran.
    pub hw_ready: bool,
    pub sources: Vec<SourceRow>,
    pub volumes: Vec<VolumeRow>,
    pub src_cursor: usize,
    pub items: Vec<ItemRow>,
    /// Bumped with each new catalogue: late answers about an older one are dropped.
    pub generation: u64,
    /// The catalogue comes from a scan's findings (else: only what the volumes list).
    pub from_scan: bool,
    pub browse: BrowseView,
    pub scan: ScanView,
    pub recover: RecoverView,
    pub net: NetView,
    /// What is being done in the background that the admin waits for ("opening sources").
    pub busy: Option<String>,
    pub log: VecDeque<String>,
    pub quit: bool,
    /// Browse's guest view: a virtual disk's volumes and files, when open.
    pub guest: Option<super::guest::GuestView>,
    /// The last guest-view request id.
    pub guest_seq: u64,
}

/// Lines the log pane keeps.
pub const LOG_LINES: usize = 500;

impl App {
    pub fn new(theme: Theme, state_dir: PathBuf) -> Self {
        Self {
            screen: Screen::Sources,
            overlay: None,
            show_log: false,
            theme,
            hardware: Vec::new(),
            hw_cursor: 0,
            hw_ready: false,
            sources: Vec::new(),
            volumes: Vec::new(),
            src_cursor: 0,
            items: Vec::new(),
            generation: 0,
            from_scan: false,
            browse: BrowseView::default(),
            scan: ScanView { state_dir, ..ScanView::default() },
            recover: RecoverView::default(),
            net: NetView::default(),
            busy: Some("opening the sources".into()),
            log: VecDeque::new(),
            quit: false,
            guest: None,
            guest_seq: 0,
        }
    }

    /// Add a line to the log pane.
    pub fn log(&mut self, line: impl Into<String>) {
        if self.log.len() >= LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line.into());
    }

    /// Whether a scan, a recovery or a guest extraction is running (quitting asks first).
    pub fn job_running(&self) -> bool {
        self.scan.status.active() || self.recover.status.active() || self.guest_extracting()
    }

    /// Whether the guest view is extracting files.
    pub fn guest_extracting(&self) -> bool {
        self.guest.as_ref().is_some_and(|g| g.extract.status.active())
    }

    /// The item under the Browse cursor.
    pub fn current_item(&self) -> Option<&ItemRow> {
        let row = self.browse.rows.get(self.browse.cursor)?;
        self.items.get(row.item?)
    }

    /// Whether `path` is marked, itself or through a marked folder above it.
    pub fn is_marked(&self, path: &str) -> bool {
        self.browse.marked.iter().any(|m| path == m || path.starts_with(&format!("{m}/")))
    }

    /// Files the marks select, and their total size and data bytes.
    pub fn marked_files(&self) -> (u64, u64, u64) {
        let mut n = 0;
        let mut size = 0;
        let mut data = 0;
        for i in &self.items {
            if i.kind == Kind::File && i.recoverable && self.is_marked(&i.out_path()) {
                n += 1;
                size += i.size;
                data += i.allocated.unwrap_or(i.size);
            }
        }
        (n, size, data)
    }
}
