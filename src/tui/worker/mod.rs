//! The worker: opens sources, rebuilds catalogues, scans, previews and writes, each on a
//! thread of its own, and reports back through the loop's channel. It owns every source
//! handle; the screens only ever see rows.

use super::app::{DestRow, ItemRow, JobStatus, Preview, ScanView, SourceRow, VolumeRow};
use super::event::{Annotation, Command, Event, JobEvent};
use super::hwview;
use super::text;
use crate::block::{Meter, Source, read_vec};
use crate::datastore::{self, dest_on_source};
use crate::extract::CopyOptions;
use crate::hw;
use crate::recover::finding::Finding;
use crate::recover::index::{ScanState, fingerprint};
use crate::recover::rebuild::{Catalog, Item, Kind, rebuild};
use crate::recover::{Progress, ScanIndex, ScanOptions, output, scan};
use crate::vdisk::descriptor::{Descriptor, looks_like_descriptor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod guest;
mod net;

/// Name of the folder the recovery writes under the chosen destination.
pub const OUTPUT_DIR: &str = "vmfs-rescue";

/// What the worker works on.
#[derive(Clone, Debug)]
pub struct Options {
    /// Disks and images to read; empty: every disk of the inventory but the boot medium.
    pub sources: Vec<PathBuf>,
    /// Where the scan keeps its index; with `state_auto`, the folder under which each set of
    /// sources gets its own (`vmfs-rescue-scan-KEY`), so a scan started earlier resumes.
    pub state_dir: PathBuf,
    pub state_auto: bool,
    /// Where destinations are mounted.
    pub mount_base: PathBuf,
    /// Where the hardware inventory reads.
    pub roots: hw::Roots,
    /// The ports the exports listen on (every address).
    pub ports: ExportPorts,
}

/// Ports of the exports; 0 takes any free one (tests).
#[derive(Clone, Copy, Debug)]
pub struct ExportPorts {
    pub http: u16,
    pub https: u16,
    pub nbd: u16,
}

impl Default for ExportPorts {
    fn default() -> Self {
        Self { http: 8080, https: 8443, nbd: 10809 }
    }
}

#[derive(Default)]
struct Data {
    paths: Vec<PathBuf>,
    sources: Vec<Source>,
    catalog: Option<Arc<Catalog>>,
    generation: u64,
    destinations: Vec<hw::Destination>,
    /// Disks the admin chose as destination: no longer read as sources.
    released: Vec<PathBuf>,
    /// Sources a volume was found on (never offered as destination).
    found: Vec<PathBuf>,
    /// The scan index folder of the current sources.
    state_dir: PathBuf,
    /// The sources that index covers, in its order: a disk released as destination after the
    /// scan leaves the index valid for the others.
    scan_paths: Vec<PathBuf>,
    /// Whether the current catalogue holds the scan's findings (kept when sources change).
    from_scan: bool,
}

struct Shared {
    opts: Options,
    data: Mutex<Data>,
    scan_stop: Mutex<Option<Arc<AtomicBool>>>,
    scan_pause: Arc<AtomicBool>,
    meter: Mutex<Option<Arc<Meter>>>,
    exports: Mutex<net::Exports>,
    /// The disk the guest view opened.
    guest: Mutex<guest::Open>,
}

/// Runs commands off the UI thread.
#[derive(Clone)]
pub struct Worker {
    tx: Sender<Event>,
    sh: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Worker {
    pub fn new(opts: Options, tx: Sender<Event>) -> Self {
        let sh = Shared {
            opts,
            data: Mutex::new(Data::default()),
            scan_stop: Mutex::new(None),
            scan_pause: Arc::new(AtomicBool::new(false)),
            meter: Mutex::new(None),
            exports: Mutex::new(net::Exports::default()),
            guest: Mutex::new(guest::Open::default()),
        };
        Self { tx, sh: Arc::new(sh) }
    }

    /// Run `cmd` on a thread of its own.
    pub fn submit(&self, cmd: Command) {
        // Pause and stop only flip flags: no thread needed.
        match cmd {
            Command::PauseScan(p) => return self.sh.scan_pause.store(p, Ordering::Relaxed),
            Command::StopScan => {
                self.sh.scan_pause.store(false, Ordering::Relaxed);
                if let Some(s) = lock(&self.sh.scan_stop).as_ref() {
                    s.store(true, Ordering::Relaxed);
                }
                return;
            }
            Command::StopRecover => {
                if let Some(m) = lock(&self.sh.meter).as_ref() {
                    m.stop.store(true, Ordering::Relaxed);
                }
                return;
            }
            Command::GuestStop => return self.guest_stop(),
            _ => {}
        }
        let w = self.clone();
        let name = format!("tui-{cmd:?}").chars().take(15).collect::<String>();
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            if let Err(e) = w.run(cmd) {
                w.send(JobEvent::Failed(format!("{e:#}")));
            }
        });
        if let Err(e) = spawned {
            self.send(JobEvent::Failed(format!("cannot start a thread: {e}")));
        }
    }

    fn send(&self, ev: JobEvent) {
        let _ = self.tx.send(Event::Job(ev));
    }

    fn run(&self, cmd: Command) -> anyhow::Result<()> {
        match cmd {
            Command::Inventory => {
                let inv = self.inventory();
                let paths = lock(&self.sh.data).paths.clone();
                self.send(JobEvent::Hardware(hwview::rows(&inv, &paths)));
            }
            Command::OpenSources => self.open_sources()?,
            Command::Rebuild { from_scan } => self.rebuild(from_scan)?,
            Command::Preview { generation, item } => self.preview(generation, item)?,
            Command::StartScan => self.scan(),
            Command::Destinations => self.destinations(),
            Command::ReleaseAndUse(i) => {
                let d = lock(&self.sh.data).destinations.get(i).cloned();
                let Some(d) = d else { anyhow::bail!("that destination is gone: press r to list them again") };
                let disk = d.devnode.with_file_name(&d.disk);
                self.send(JobEvent::Log(format!("{} is no longer read as a source", disk.display())));
                lock(&self.sh.data).released.push(disk);
                self.open_sources()?;
                self.destinations();
                let again = lock(&self.sh.data).destinations.iter().find(|x| x.name == d.name).cloned();
                let Some(d) = again.filter(|x| x.refused.is_none()) else {
                    anyhow::bail!("{} still cannot be used as destination", d.name)
                };
                self.send(JobEvent::Log(format!("mounting {}...", d.devnode.display())));
                let at = hw::mount(&d, &self.sh.opts.mount_base)?;
                self.use_folder(&at)?;
                self.destinations();
            }
            Command::UseDestination(i) => {
                let d = lock(&self.sh.data).destinations.get(i).cloned();
                let Some(d) = d else { anyhow::bail!("that destination is gone: press r to list them again") };
                self.send(JobEvent::Log(format!("mounting {}...", d.devnode.display())));
                let at = hw::mount(&d, &self.sh.opts.mount_base)?;
                self.use_folder(&at)?;
            }
            Command::UseFolder(p) => self.use_folder(&p)?,
            Command::StartRecover { select, to } => self.recover(select, &to),
            Command::Nics => self.nics(),
            Command::SetAddress { nic, spec } => self.set_address(&nic, &spec),
            Command::Export { kind, on } => self.export(kind, on),
            Command::GuestOpen { id, generation, item } => self.guest_open(id, generation, item),
            Command::GuestList { id, volume, path, dir } => self.guest_list(id, volume, path, dir),
            Command::GuestPreview { id, volume, path, file } => self.guest_preview(id, volume, path, file),
            Command::GuestExtract { id, select, to } => self.guest_extract(id, select, &to),
            Command::PauseScan(_) | Command::StopScan | Command::StopRecover | Command::GuestStop => {}
        }
        Ok(())
    }

    /// The hardware inventory; when there is none (no sysfs), an empty one and a log line.
    fn inventory(&self) -> hw::Inventory {
        match hw::inventory_at(&self.sh.opts.roots) {
            Ok(inv) => {
                for n in &inv.notes {
                    self.send(JobEvent::Log(n.clone()));
                }
                inv
            }
            Err(e) => {
                self.send(JobEvent::Log(format!("hardware: {e}")));
                hw::Inventory { controllers: Vec::new(), notes: Vec::new() }
            }
        }
    }

    /// List the destinations; a source disk on which nothing was found may be released (in
    /// the every-disk mode) to become the destination.
    fn destinations(&self) {
        let inv = self.inventory();
        let (paths, found) = {
            let d = lock(&self.sh.data);
            (d.paths.clone(), d.found.clone())
        };
        let dests = hw::destinations(&inv, &paths);
        let rows: Vec<DestRow> = dests
            .iter()
            .map(|d| {
                let disk = d.devnode.with_file_name(&d.disk);
                let releasable = self.sh.opts.sources.is_empty()
                    && d.refused.as_deref().is_some_and(|r| r.starts_with("it is "))
                    && paths.contains(&disk)
                    && !found.contains(&disk)
                    && !inv.disk(&d.disk).is_some_and(hw::Disk::holds_vmfs);
                hwview::dest_row(d, releasable)
            })
            .collect();
        lock(&self.sh.data).destinations = dests;
        self.send(JobEvent::Destinations(rows));
    }

    fn open_sources(&self) -> anyhow::Result<()> {
        let mut paths = self.sh.opts.sources.clone();
        if paths.is_empty() {
            let inv = self.inventory();
            let released = lock(&self.sh.data).released.clone();
            paths = inv
                .controllers
                .iter()
                .flat_map(|c| &c.disks)
                .filter(|d| !d.boot_medium && d.size > 0 && !released.contains(&d.devnode))
                .map(|d| d.devnode.clone())
                .collect();
        }
        let mut rows = Vec::new();
        let mut opened = Vec::new();
        let mut open_paths = Vec::new();
        for p in &paths {
            match datastore::open_sources(std::slice::from_ref(p)) {
                Ok(mut s) => {
                    let src = s.remove(0);
                    rows.push(SourceRow { path: p.display().to_string(), size: src.len(), ..SourceRow::default() });
                    opened.push(src);
                    open_paths.push(p.clone());
                }
                Err(e) => rows.push(SourceRow {
                    path: p.display().to_string(),
                    error: Some(e.to_string()),
                    ..SourceRow::default()
                }),
            }
        }
        let (stores, notes) = datastore::find(&opened);
        let mut volumes = Vec::new();
        for s in &stores {
            let (label, version, error) = match &s.fs {
                Ok(fs) => {
                    let v =
                        if fs.desc.is_vmfs_l() { "VMFS-L".into() } else { format!("VMFS{}", fs.desc.vmfs_version()) };
                    (fs.desc.label.clone(), v, None)
                }
                Err(e) => (s.volume.name.clone(), "?".into(), Some(e.to_string())),
            };
            for part in &s.volume.parts {
                for r in rows.iter_mut().filter(|r| part.source_name.starts_with(&r.path)) {
                    r.found.push(format!("{version} {label}"));
                }
            }
            volumes.push(VolumeRow {
                label,
                version,
                size: s.volume.size,
                state: s.volume.state.map(|st| format!("{st:?}").to_lowercase()).unwrap_or_default(),
                parts: s.volume.parts.len(),
                parts_expected: s.volume.device_names.len(),
                missing_bytes: s.volume.missing.iter().map(|r| r.end - r.start).sum(),
                error,
                browse_path: None,
            });
        }
        // The first opening picks the scan folder; a later one (a disk released as destination)
        // keeps it, with the catalogue it had (the scan's findings on the other disks stay).
        let (first, from_scan) = {
            let mut d = lock(&self.sh.data);
            let first = d.scan_paths.is_empty();
            d.found = open_paths.iter().zip(&rows_found(&rows)).filter(|(_, f)| **f).map(|(p, _)| p.clone()).collect();
            if first {
                d.state_dir = self.state_dir_for(&open_paths);
                d.scan_paths = open_paths.clone();
            }
            d.paths = open_paths;
            d.sources = opened;
            (first, d.from_scan)
        };
        self.send(JobEvent::Sources { sources: rows.clone(), volumes: volumes.clone(), notes });
        let cat = self.catalog(from_scan)?;
        // Volumes whose tree is in the catalogue can be browsed from the Sources screen.
        let mut with_paths = volumes;
        for (v, s) in with_paths.iter_mut().zip(&stores) {
            if let Ok(fs) = &s.fs {
                v.browse_path = cat
                    .volumes
                    .iter()
                    .find(|cv| !cv.previous && cv.fs.desc.uuid == fs.desc.uuid)
                    .map(|cv| format!("volumes/{}", cv.name));
            }
        }
        self.send(JobEvent::Sources { sources: rows, volumes: with_paths, notes: Vec::new() });
        if first {
            self.earlier_scan();
        }
        Ok(())
    }

    /// The scan index folder for a set of sources.
    fn state_dir_for(&self, paths: &[PathBuf]) -> PathBuf {
        if self.sh.opts.state_auto {
            self.sh.opts.state_dir.join(format!("vmfs-rescue-scan-{}", scan_key(paths)))
        } else {
            self.sh.opts.state_dir.clone()
        }
    }

    /// A scan of these very sources in the state folder (an earlier session, a crash): a
    /// finished one brings its findings in; an unfinished one is offered for resuming.
    fn earlier_scan(&self) {
        let dir = &lock(&self.sh.data).state_dir.clone();
        let Ok(Some(st)) = ScanState::read(dir) else { return };
        let sources = lock(&self.sh.data).sources.clone();
        let same = st.sources.len() == sources.len()
            && st
                .sources
                .iter()
                .zip(&sources)
                .all(|(a, s)| a.size == s.len() && fingerprint(s.as_ref()).is_ok_and(|f| f == a.fingerprint));
        if !same {
            self.send(JobEvent::Log(format!(
                "{}: a scan of other disks; a new scan needs another --state",
                dir.display()
            )));
            return;
        }
        let view = ScanView {
            status: if st.finished { JobStatus::Done } else { JobStatus::Stopped },
            state_dir: dir.clone(),
            done: st.scanned(),
            total: st.data_bytes(),
            findings: st.findings,
            unreadable: st.unreadable_bytes(),
            counts: st.counts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            resumed: true,
            ..ScanView::default()
        };
        if !st.finished {
            self.send(JobEvent::Log(
                "an interrupted scan of these disks was found: s on the Scan screen resumes it".into(),
            ));
        }
        // A finished scan's end makes the loop rebuild from its findings.
        self.send(JobEvent::ScanEnded(view));
    }

    /// Rebuild and publish the catalogue; then annotate it.
    fn catalog(&self, from_scan: bool) -> anyhow::Result<Arc<Catalog>> {
        let (sources, paths, scan_paths, dir) = {
            let d = lock(&self.sh.data);
            (d.sources.clone(), d.paths.clone(), d.scan_paths.clone(), d.state_dir.clone())
        };
        let findings = if from_scan {
            // The index numbers sources as they were scanned; renumber them to the sources open
            // now and leave out the findings on a disk no longer read.
            renumber(ScanIndex::load(&dir)?.all_findings()?, &scan_paths, &paths)
        } else {
            Vec::new()
        };
        let cat = Arc::new(rebuild(&sources, &findings));
        let items: Vec<ItemRow> = cat.items.iter().map(row).collect();
        let generation = {
            let mut d = lock(&self.sh.data);
            d.catalog = Some(Arc::clone(&cat));
            d.from_scan = from_scan;
            d.generation += 1;
            // Sent under the lock: catalogues reach the loop in generation order.
            let _ = self.tx.send(Event::Job(JobEvent::Catalog { items, from_scan, notes: cat.notes.clone() }));
            d.generation
        };
        let w = self.clone();
        let c = Arc::clone(&cat);
        let _ = std::thread::Builder::new().name("tui-annotate".into()).spawn(move || w.annotate(&c, generation));
        Ok(cat)
    }

    fn rebuild(&self, from_scan: bool) -> anyhow::Result<()> {
        self.catalog(from_scan).map(|_| ())
    }

    /// Measure allocated bytes and read what VMs and disk descriptors say, in batches.
    fn annotate(&self, cat: &Catalog, generation: u64) {
        let mut batch = Vec::new();
        for (i, it) in cat.items.iter().enumerate() {
            if let Some(a) = annotation(cat, i, it) {
                batch.push(a);
            }
            if batch.len() >= 256 {
                self.send(JobEvent::Annotated { generation, notes: std::mem::take(&mut batch) });
            }
        }
        if !batch.is_empty() {
            self.send(JobEvent::Annotated { generation, notes: batch });
        }
    }

    fn preview(&self, generation: u64, item: usize) -> anyhow::Result<()> {
        let cat = {
            let d = lock(&self.sh.data);
            if d.generation != generation {
                return Ok(());
            }
            d.catalog.clone()
        };
        let Some(it) = cat.as_ref().and_then(|c| c.items.get(item)) else { return Ok(()) };
        let mut lines = vec![format!(
            "{} | {} | {} | confidence {} | {}",
            text::state(it.state),
            text::size(it.size),
            text::time(it.mtime),
            text::confidence(it.confidence),
            it.method
        )];
        if let Some(o) = &it.original {
            lines.push(format!("was: {o}"));
        }
        lines.extend(it.missing.iter().map(|m| format!("missing: {m}")));
        lines.push(String::new());
        match &it.content {
            Some(src) => {
                let n = src.len().min(64 << 10) as usize;
                let bytes = read_vec(src.as_ref(), 0, n)?;
                lines.extend(text::preview(&bytes, 4096));
                if src.len() > n as u64 {
                    lines.push(format!("... (first {} of {} shown)", text::size(n as u64), text::size(src.len())));
                }
            }
            None => lines.push("(no content to show)".into()),
        }
        self.send(JobEvent::Preview { generation, item, preview: Preview { title: it.out_path(), lines, scroll: 0 } });
        Ok(())
    }

    fn scan(&self) {
        let (paths, sources, dir) = {
            let mut d = lock(&self.sh.data);
            // Sources changed since the index was made (a disk became the destination): a new
            // scan of the ones left gets a folder of its own.
            if d.paths != d.scan_paths {
                d.state_dir = self.state_dir_for(&d.paths);
                d.scan_paths = d.paths.clone();
            }
            (d.paths.clone(), d.sources.clone(), d.state_dir.clone())
        };
        let mut view = ScanView { state_dir: dir.clone(), status: JobStatus::Running, ..ScanView::default() };
        let fail = |view: &mut ScanView, e: String| {
            view.status = JobStatus::Failed(e);
            self.send(JobEvent::ScanEnded(view.clone()));
        };
        if let Some(src) = dest_on_source(&dir, &paths)
            .or_else(|| dir.ancestors().find(|a| a.exists()).and_then(|a| dest_on_source(a, &paths)))
        {
            return fail(&mut view, format!("the scan state folder {} is on source {}", dir.display(), src.display()));
        }
        let stop = Arc::new(AtomicBool::new(false));
        *lock(&self.sh.scan_stop) = Some(Arc::clone(&stop));
        self.sh.scan_pause.store(false, Ordering::Relaxed);
        let named: Vec<(String, Source)> = paths.iter().map(|p| p.display().to_string()).zip(sources).collect();
        let opts = ScanOptions { stop: Some(Arc::clone(&stop)), ..ScanOptions::default() };
        let pause = Arc::clone(&self.sh.scan_pause);
        let mut last = view.clone();
        let mut cb = |p: &Progress| {
            last = scan_view(p, &dir, last.resumed);
            self.send(JobEvent::ScanProgress(last.clone()));
            // Paused: hold the scan here (the reader fills its few buffers and waits).
            while pause.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        let result = scan(&named, &dir, &opts, &mut cb);
        *lock(&self.sh.scan_stop) = None;
        match result {
            Ok(sum) => {
                let mut v = scan_view(&sum.progress, &dir, sum.resumed);
                v.status = if sum.stopped { JobStatus::Stopped } else { JobStatus::Done };
                self.send(JobEvent::ScanEnded(v));
            }
            Err(e) => fail(&mut view, e.to_string()),
        }
    }

    fn use_folder(&self, p: &Path) -> anyhow::Result<()> {
        let paths = lock(&self.sh.data).paths.clone();
        let existing = p.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
        if let Some(src) = dest_on_source(existing, &paths).or_else(|| dest_on_source(p, &paths)) {
            anyhow::bail!("{} is on source {}: a source is never written to", p.display(), src.display());
        }
        let free = hw::free_bytes(existing).map_err(|e| format!("free space of {}: {e}", existing.display()));
        self.send(JobEvent::Target { path: p.to_path_buf(), free });
        Ok(())
    }

    fn recover(&self, select: Vec<String>, to: &Path) {
        let (paths, cat) = {
            let d = lock(&self.sh.data);
            (d.paths.clone(), d.catalog.clone())
        };
        let out = to.join(OUTPUT_DIR);
        let end = |status, summary| self.send(JobEvent::RecoverEnded { status, summary });
        let Some(cat) = cat else { return end(JobStatus::Failed("no catalogue yet".into()), vec![]) };
        if let Some(src) = dest_on_source(to, &paths) {
            return end(JobStatus::Failed(format!("{} is on source {}", to.display(), src.display())), vec![]);
        }
        let meter = Arc::new(Meter::default());
        *lock(&self.sh.meter) = Some(Arc::clone(&meter));
        let running = Arc::new(AtomicBool::new(true));
        let watch = {
            let (m, r, w) = (Arc::clone(&meter), Arc::clone(&running), self.clone());
            std::thread::spawn(move || {
                while r.load(Ordering::Relaxed) {
                    w.send(JobEvent::RecoverProgress {
                        bytes: m.bytes.load(Ordering::Relaxed),
                        files: m.done.load(Ordering::Relaxed),
                        current: m.current(),
                    });
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let opts = output::Options { select, copy: CopyOptions::default(), meter: Some(Arc::clone(&meter)) };
        let result = output::write(&cat, &names, &out, &opts).and_then(|sum| {
            // "Finished" means on the disk: the admin may pull the stick or power off next.
            crate::hw::dest::sync_to_disk(&out)?;
            Ok(sum)
        });
        running.store(false, Ordering::Relaxed);
        let _ = watch.join();
        self.send(JobEvent::RecoverProgress {
            bytes: meter.bytes.load(Ordering::Relaxed),
            files: meter.done.load(Ordering::Relaxed),
            current: String::new(),
        });
        *lock(&self.sh.meter) = None;
        match result {
            Ok(sum) => {
                let mut lines = vec![format!(
                    "{} files ({}) and {} folders written to {}",
                    sum.files,
                    text::size(sum.bytes),
                    sum.dirs,
                    out.display()
                )];
                if sum.resumed > 0 {
                    lines.push(format!("{} files were already there from an earlier run", sum.resumed));
                }
                if sum.not_recovered > 0 {
                    lines.push(format!("{} files could not be recovered (see the report)", sum.not_recovered));
                }
                if sum.damaged > 0 {
                    lines.push(format!("{} files have unreadable ranges, written as zeros", sum.damaged));
                }
                lines.push(format!("report: {}", out.join("report.txt").display()));
                let status = if sum.stopped { JobStatus::Stopped } else { JobStatus::Done };
                if sum.stopped {
                    lines.insert(0, "stopped: s writes the rest (finished files are kept)".into());
                }
                end(status, lines);
            }
            Err(e) => end(JobStatus::Failed(format!("{}: {e}", out.display())), vec![]),
        }
    }
}

/// Which opened sources (`rows` of the opened ones, in order) hold a volume.
fn rows_found(rows: &[SourceRow]) -> Vec<bool> {
    rows.iter().filter(|r| r.error.is_none()).map(|r| !r.found.is_empty()).collect()
}

/// Findings numbered by the sources `scanned` renumbered to the sources `open` now; those on a
/// source no longer open are left out.
fn renumber(mut found: Vec<Finding>, scanned: &[PathBuf], open: &[PathBuf]) -> Vec<Finding> {
    let now: Vec<Option<usize>> = scanned.iter().map(|p| open.iter().position(|q| q == p)).collect();
    found.retain_mut(|f| match now.get(f.source).copied().flatten() {
        Some(i) => {
            f.source = i;
            true
        }
        None => false,
    });
    found
}

/// A short name for a set of sources: the same disks find the same scan index again.
pub fn scan_key(sources: &[PathBuf]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for s in sources {
        let p = s.canonicalize().unwrap_or_else(|_| s.clone());
        h.update(p.as_os_str().as_encoded_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn scan_view(p: &Progress, dir: &Path, resumed: bool) -> ScanView {
    ScanView {
        status: JobStatus::Running,
        state_dir: dir.to_path_buf(),
        done: p.done,
        total: p.total,
        throughput: p.throughput,
        eta_secs: p.eta.map(|d| d.as_secs()),
        findings: p.findings,
        unreadable: p.unreadable,
        counts: p.counts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        resumed,
    }
}

/// A catalogue item as a row.
fn row(it: &Item) -> ItemRow {
    ItemRow {
        path: it.path.clone(),
        kind: it.kind,
        state: it.state,
        confidence: it.confidence,
        size: it.size,
        mtime: it.mtime,
        original: it.original.clone(),
        method: it.method.clone(),
        missing: it.missing.clone(),
        recoverable: it.content.is_some(),
        allocated: None,
        note: None,
        extents: Vec::new(),
    }
}

/// What there is to say about item `i`: allocated bytes of files; a VM's name from its .vmx; a
/// descriptor's disk and the extent files it names.
fn annotation(cat: &Catalog, i: usize, it: &Item) -> Option<Annotation> {
    let src = it.content.as_ref().filter(|_| it.kind == Kind::File)?;
    let allocated: u64 = src.data_ranges(0..it.size).iter().map(|r| r.end - r.start).sum();
    let mut a = Annotation { item: i, note: None, allocated: Some(allocated), extents: Vec::new() };
    let lower = it.path.last()?.to_ascii_lowercase();
    if lower.ends_with(".vmx") && it.size <= 1 << 20 {
        let bytes = read_vec(src.as_ref(), 0, it.size as usize).ok()?;
        let d = crate::vdisk::snapshot::parse_dict(&String::from_utf8_lossy(&bytes));
        let name = d.get("displayname").cloned().unwrap_or_else(|| lower.trim_end_matches(".vmx").to_string());
        let os = d.get("guestos").map(|g| format!(" ({g})")).unwrap_or_default();
        a.note = Some(format!("VM {name}{os}"));
    } else if lower.ends_with(".vmdk") && it.size <= 64 << 10 {
        let bytes = read_vec(src.as_ref(), 0, it.size as usize).ok()?;
        if looks_like_descriptor(&bytes)
            && let Ok(d) = Descriptor::parse(&lower, &bytes)
        {
            let parent = d.parent_hint().map(|p| format!(", snapshot of {p}")).unwrap_or_default();
            a.note = Some(format!("disk {} {}{parent}", text::size(d.capacity()), d.create_type()));
            let dir = &it.path[..it.path.len() - 1];
            for e in d.extents.iter().filter_map(|e| e.file.as_deref()) {
                let mut p = dir.to_vec();
                p.push(e.rsplit('/').next().unwrap_or(e).to_string());
                let p = p.join("/");
                if cat.items.iter().any(|x| x.out_path() == p) {
                    a.extents.push(p);
                }
            }
        }
    } else if allocated < it.size && it.size >= 1 << 20 {
        let how = if lower.ends_with(".vmdk") { "thin" } else { "sparse" };
        a.note = Some(format!("{how}: {} of {} with data", text::size(allocated), text::size(it.size)));
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover::finding::What;

    #[test]
    fn findings_follow_their_disk_when_another_is_released() {
        let f = |source, offset| Finding { source, offset, what: What::Heartbeat { self_offset: offset } };
        let scanned = [PathBuf::from("/dev/sda"), PathBuf::from("/dev/sdb"), PathBuf::from("/dev/sdc")];
        // sdb became the destination: sdc is now the second source.
        let open = [PathBuf::from("/dev/sda"), PathBuf::from("/dev/sdc")];
        let got = renumber(vec![f(0, 1), f(1, 2), f(2, 3), f(7, 4)], &scanned, &open);
        assert_eq!(got, vec![f(0, 1), f(1, 3)]);
    }
}
