//! The guest view's jobs: a catalogue item opened as a virtual disk (its chain followed through
//! the catalogue's folders, or read as a raw disk), its volumes and file systems, listings,
//! previews and extraction through [`crate::guest::extract`]. The opened disk stays here, named
//! by the view's request id; the screens only ever see rows.

use super::{OUTPUT_DIR, Worker, lock};
use crate::block::{Meter, Source, read_vec};
use crate::datastore::dest_on_source;
use crate::extract::{CopyOptions, sanitize_guest_component};
use crate::guest::extract::{self as gx, Place};
use crate::guest::{self, Entry, GuestFs, Kind};
use crate::recover::rebuild::{Catalog, Kind as ItemKind};
use crate::tui::app::{JobStatus, Preview};
use crate::tui::event::JobEvent;
use crate::tui::guest::VolumeRow;
use crate::tui::text;
use crate::vdisk::{Files, VdiskError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A volume's file system, or why it did not open.
type VolumeFs = Result<Arc<dyn GuestFs>, String>;

/// The opened guest disk.
#[derive(Default)]
pub(super) struct Open {
    id: u64,
    /// Where its output goes under the destination: the disk's catalogue path.
    name: String,
    /// Each volume's file system, or why it did not open.
    volumes: Vec<(u32, VolumeFs)>,
    /// The running extraction's meter (its stop flag).
    meter: Option<Arc<Meter>>,
}

/// The catalogue as a file namespace: `/` + each file's output path, so a descriptor finds its
/// extents and its snapshot parents in the same catalogue folder, whatever their state.
struct CatalogFiles(Arc<Catalog>);

impl CatalogFiles {
    fn item(&self, path: &str) -> Option<Source> {
        let p = path.trim_start_matches('/');
        self.0.items.iter().find(|i| i.kind == ItemKind::File && i.out_path() == p)?.content.clone()
    }
}

impl Files for CatalogFiles {
    fn open(&self, path: &str) -> Result<Source, VdiskError> {
        self.item(path).ok_or_else(|| VdiskError::Missing {
            file: path.into(),
            why: "not in the catalogue, or without content".into(),
        })
    }
    fn list(&self, dir: &str) -> Result<Vec<String>, VdiskError> {
        let d: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
        Ok(self
            .0
            .items
            .iter()
            .filter(|i| i.path.len() == d.len() + 1 && i.path.iter().zip(&d).all(|(a, b)| a == b))
            .filter_map(|i| i.path.last().cloned())
            .collect())
    }
}

/// Bytes a preview reads.
const PREVIEW_BYTES: u64 = 64 << 10;

impl Worker {
    fn guest_fs(&self, id: u64, volume: usize) -> Result<Arc<dyn GuestFs>, String> {
        let g = lock(&self.sh.guest);
        if g.id != id {
            return Err("the disk was closed".into());
        }
        match g.volumes.get(volume) {
            Some((_, Ok(fs))) => Ok(Arc::clone(fs)),
            Some((_, Err(e))) => Err(e.clone()),
            None => Err("no such volume".into()),
        }
    }

    /// Open item `item` of catalogue `generation` as a disk and list its volumes.
    pub(super) fn guest_open(&self, id: u64, generation: u64, item: usize) {
        let result = self.guest_open_inner(id, generation, item);
        self.send(JobEvent::GuestOpened { id, result });
    }

    fn guest_open_inner(&self, id: u64, generation: u64, item: usize) -> Result<(Vec<VolumeRow>, Vec<String>), String> {
        let cat = {
            let d = lock(&self.sh.data);
            if d.generation != generation {
                return Err("the catalogue changed: open the disk again".into());
            }
            d.catalog.clone().ok_or("no catalogue yet")?
        };
        let it = cat.items.get(item).ok_or("no such item")?;
        let name = it.out_path();
        let path = format!("/{name}");
        let files = CatalogFiles(Arc::clone(&cat));
        let opened = crate::compare::open_disk(&files, &path, || files.open(&path)).map_err(|e| e.to_string())?;
        let mut notes = opened.problems.clone();
        if let Some(why) = &opened.raw_because {
            notes.push(format!("read as a raw disk ({why})"));
        }
        let disk = guest::open_disk(&opened.disk).map_err(|e| e.to_string())?;
        if let Some(t) = &disk.table {
            notes.extend(t.notes.iter().map(|n| format!("partition table: {n}")));
        }
        notes.extend(disk.notes.iter().cloned());
        let mut rows = Vec::new();
        let mut volumes = Vec::new();
        for v in &disk.volumes {
            let mut row = VolumeRow {
                index: v.index,
                describe: v.describe.clone(),
                size: v.source.len(),
                ..VolumeRow::default()
            };
            match guest::open_fs(&v.source) {
                Ok(fs) => {
                    row.fs = fs.fs_type();
                    row.label = fs.label().unwrap_or_default();
                    volumes.push((v.index, Ok(Arc::from(fs))));
                }
                Err(e) => {
                    row.error = Some(e.to_string());
                    volumes.push((v.index, Err(e.to_string())));
                }
            }
            rows.push(row);
        }
        let mut g = lock(&self.sh.guest);
        // A newer request won: this disk is dropped.
        if g.id > id {
            return Err("superseded".into());
        }
        *g = Open { id, name, volumes, meter: None };
        Ok((rows, notes))
    }

    /// List a folder: folders first, then by name; live before deleted.
    pub(super) fn guest_list(&self, id: u64, volume: usize, path: String, dir: Option<Entry>) {
        let result = self.guest_fs(id, volume).and_then(|fs| {
            let dir = dir.unwrap_or_else(|| fs.root());
            let mut rows = fs.list(&dir).map_err(|e| e.to_string())?;
            rows.sort_by(|a, b| {
                (a.kind != Kind::Dir, a.name.to_lowercase(), a.deleted).cmp(&(
                    b.kind != Kind::Dir,
                    b.name.to_lowercase(),
                    b.deleted,
                ))
            });
            Ok(rows)
        });
        self.send(JobEvent::GuestListed { id, volume, path, result });
    }

    /// A file's facts and first bytes, as text or hex.
    pub(super) fn guest_preview(&self, id: u64, volume: usize, path: String, file: Entry) {
        let mut lines = vec![facts(&file)];
        if !file.streams.is_empty() {
            lines.push(format!("streams: {}", file.streams.join(", ")));
        }
        lines.push(String::new());
        let body = self.guest_fs(id, volume).and_then(|fs| {
            let src = fs.open(&file, None).map_err(|e| e.to_string())?;
            let n = src.len().min(PREVIEW_BYTES) as usize;
            let bytes = read_vec(src.as_ref(), 0, n).map_err(|e| e.to_string())?;
            let mut l = text::preview(&bytes, 4096);
            if bytes.is_empty() {
                l.push("(empty)".into());
            }
            if src.len() > n as u64 {
                l.push(format!("... (first {} of {} shown)", text::size(n as u64), text::size(src.len())));
            }
            Ok(l)
        });
        match body {
            Ok(l) => lines.extend(l),
            Err(e) => lines.push(format!("cannot be read: {e}")),
        }
        self.send(JobEvent::GuestPreview {
            id,
            path: path.clone(),
            preview: Preview { title: path, lines, scroll: 0 },
        });
    }

    pub(super) fn guest_stop(&self) {
        if let Some(m) = lock(&self.sh.guest).meter.as_ref() {
            m.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Extract the marked entries, a folder per volume under
    /// `DEST/vmfs-rescue/guest/<disk's catalogue path>/part<N>/`, each with its manifest.
    pub(super) fn guest_extract(&self, id: u64, select: Vec<(usize, String, Entry)>, to: &Path) {
        let end = |status, summary| self.send(JobEvent::GuestExtracted { id, status, summary });
        let paths = lock(&self.sh.data).paths.clone();
        if let Some(src) = dest_on_source(to, &paths) {
            return end(JobStatus::Failed(format!("{} is on source {}", to.display(), src.display())), vec![]);
        }
        let (name, volumes) = {
            let g = lock(&self.sh.guest);
            if g.id != id {
                return end(JobStatus::Failed("the disk was closed".into()), vec![]);
            }
            (g.name.clone(), g.volumes.iter().map(|(i, fs)| (*i, fs.clone())).collect::<Vec<_>>())
        };
        let mut base = to.join(OUTPUT_DIR).join("guest");
        for c in name.split('/') {
            base.push(sanitize_guest_component(c.as_bytes()));
        }
        let meter = Arc::new(Meter::default());
        lock(&self.sh.guest).meter = Some(Arc::clone(&meter));
        let running = Arc::new(AtomicBool::new(true));
        let watch = {
            let (m, r, w) = (Arc::clone(&meter), Arc::clone(&running), self.clone());
            std::thread::spawn(move || {
                while r.load(Ordering::Relaxed) {
                    w.send(JobEvent::GuestProgress {
                        id,
                        bytes: m.bytes.load(Ordering::Relaxed),
                        files: m.done.load(Ordering::Relaxed),
                        current: m.current(),
                    });
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        let mut by_volume: BTreeMap<usize, Vec<(String, Entry)>> = BTreeMap::new();
        for (v, p, e) in select {
            by_volume.entry(v).or_default().push((p, e));
        }
        let opts = gx::Options {
            deleted: true,
            place: Place::Itself,
            copy: CopyOptions::default(),
            meter: Some(Arc::clone(&meter)),
        };
        let mut lines = Vec::new();
        let mut failed = None;
        let mut stopped = false;
        for (v, roots) in by_volume {
            let Some((index, fs)) = volumes.get(v) else { continue };
            let out = base.join(format!("part{index}"));
            let fs = match fs {
                Ok(fs) => fs,
                Err(e) => {
                    lines.push(format!("volume {index}: {e}"));
                    continue;
                }
            };
            match gx::extract(&**fs, &roots, &out, &opts) {
                Ok(s) => {
                    lines.push(summary_line(&s, &out));
                    stopped |= s.stopped;
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if failed.is_none()
            && let Err(e) = crate::hw::dest::sync_to_disk(&base)
        {
            failed = Some(format!("{}: {e}", base.display()));
        }
        running.store(false, Ordering::Relaxed);
        let _ = watch.join();
        self.send(JobEvent::GuestProgress {
            id,
            bytes: meter.bytes.load(Ordering::Relaxed),
            files: meter.done.load(Ordering::Relaxed),
            current: String::new(),
        });
        lock(&self.sh.guest).meter = None;
        match failed {
            Some(e) => end(JobStatus::Failed(e), lines),
            None if stopped => {
                lines.insert(0, "extraction stopped (finished files are kept)".into());
                end(JobStatus::Stopped, lines)
            }
            None => end(JobStatus::Done, lines),
        }
    }
}

fn summary_line(s: &gx::Summary, out: &Path) -> String {
    let mut l = format!(
        "{} files ({}), {} streams, {} folders extracted to {}",
        s.files,
        text::size(s.bytes),
        s.streams,
        s.dirs,
        out.display()
    );
    if s.errors > 0 {
        l.push_str(&format!("; {} errors (see manifest.json)", s.errors));
    }
    if s.damaged > 0 {
        l.push_str(&format!("; {} with unreadable ranges (zeros)", s.damaged));
    }
    l
}

/// One line of a guest entry's facts.
fn facts(e: &Entry) -> String {
    let mut parts = vec![text::size(e.size), format!("modified {}", text::time64(e.mtime))];
    if e.deleted {
        parts.push(match e.confidence {
            Some(c) => format!("deleted, confidence {}", text::guest_confidence(c)),
            None => "deleted".into(),
        });
    }
    parts.join(" | ")
}
