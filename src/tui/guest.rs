//! The guest view of Browse: a virtual disk of the catalogue opened (on the worker) into its
//! volumes, then a volume's folders, deleted entries marked with their confidence; marked
//! entries are extracted to the Recover screen's destination through
//! [`crate::guest::extract`], on the worker. This module holds the view's state and decisions;
//! `worker/guest.rs` does the reading, `view/guest.rs` the drawing.

use super::app::{App, JobStatus, Overlay, Preview, Screen};
use super::event::{Command, JobEvent};
use super::keys::Action;
use crate::guest::{Entry, Kind};
use crate::recover::rebuild::Kind as ItemKind;
use std::collections::BTreeMap;

/// Lines a page moves.
const PAGE: usize = 10;

/// One volume of the opened disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeRow {
    /// Partition number (0: a disk without a table); LVM2 LVs follow the partitions.
    pub index: u32,
    /// What the table says (`GPT partition 1 (...)`, `whole disk`, `LVM2 LV vg/lv`).
    pub describe: String,
    /// File-system type, empty when it did not open.
    pub fs: String,
    pub label: String,
    pub size: u64,
    /// Why the file system does not open (unknown, damaged).
    pub error: Option<String>,
}

/// The extraction as the guest view shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractView {
    pub status: JobStatus,
    pub bytes: u64,
    pub files: u64,
    pub current: String,
    pub summary: Vec<String>,
}

/// A marked entry: its volume (index in the volume rows) and guest path.
pub type MarkKey = (usize, String);

/// The guest view's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestView {
    /// The request this view belongs to: answers about another are dropped.
    pub id: u64,
    /// The disk's path in the catalogue.
    pub disk: String,
    /// The disk is being opened.
    pub opening: bool,
    /// Why the disk could not be opened.
    pub error: Option<String>,
    /// What the worker noted (chain problems, partition-table damage, LVM).
    pub notes: Vec<String>,
    pub volumes: Vec<VolumeRow>,
    /// Inside a volume: its index in `volumes`; `None` lists the volumes.
    pub volume: Option<usize>,
    /// The folders entered from the volume's root.
    pub cwd: Vec<Entry>,
    /// The entries of the current folder.
    pub rows: Vec<Entry>,
    /// A listing is on its way.
    pub listing: bool,
    /// Why the current folder could not be listed.
    pub list_error: Option<String>,
    pub cursor: usize,
    /// Cursor positions of the folders above, restored on the way back.
    pub cursors: Vec<usize>,
    pub marked: BTreeMap<MarkKey, Entry>,
    pub extract: ExtractView,
}

impl GuestView {
    /// The guest path of the current folder (`` for the root).
    pub fn path(&self) -> String {
        self.cwd.iter().map(|e| format!("/{}", e.name)).collect()
    }

    /// The guest path of row `i`.
    pub fn row_path(&self, i: usize) -> Option<String> {
        self.rows.get(i).map(|e| format!("{}/{}", self.path(), e.name))
    }

    /// Whether entry `path` of the current volume is marked, itself or through a folder above.
    pub fn is_marked(&self, path: &str) -> bool {
        let Some(v) = self.volume else { return false };
        self.marked.keys().any(|(mv, m)| *mv == v && (path == m || path.starts_with(&format!("{m}/"))))
    }

    /// The row under the cursor, inside a volume.
    pub fn current(&self) -> Option<&Entry> {
        self.volume.and(self.rows.get(self.cursor))
    }

    fn len(&self) -> usize {
        if self.volume.is_some() { self.rows.len() } else { self.volumes.len() }
    }
}

/// `g` on Browse: open the disk under the cursor.
pub fn open(app: &mut App) -> Vec<Command> {
    let Some((i, it)) = app.browse.rows.get(app.browse.cursor).and_then(|r| Some((r.item?, app.items.get(r.item?)?)))
    else {
        app.overlay = Some(Overlay::Message(NOT_A_DISK.into()));
        return vec![];
    };
    if it.kind != ItemKind::File || !it.recoverable {
        app.overlay = Some(Overlay::Message(NOT_A_DISK.into()));
        return vec![];
    }
    app.guest_seq += 1;
    let id = app.guest_seq;
    app.guest = Some(GuestView { id, disk: it.out_path(), opening: true, ..GuestView::default() });
    vec![Command::GuestOpen { id, generation: app.generation, item: i }]
}

const NOT_A_DISK: &str =
    "g opens a virtual disk: a disk descriptor (.vmdk), a flat or carved disk, or another disk image.";

/// An action while the guest view is open; `None`: not the guest view's, the screen handles it.
pub fn act(app: &mut App, action: Action) -> Option<Vec<Command>> {
    let g = app.guest.as_mut()?;
    Some(match action {
        Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home | Action::End => {
            let max = g.len().saturating_sub(1);
            g.cursor = match action {
                Action::Up => g.cursor.saturating_sub(1),
                Action::Down => (g.cursor + 1).min(max),
                Action::PageUp => g.cursor.saturating_sub(PAGE),
                Action::PageDown => (g.cursor + PAGE).min(max),
                Action::Home => 0,
                _ => max,
            };
            vec![]
        }
        Action::Open => enter(app),
        Action::Back => back(app),
        Action::LeaveGuest => {
            close(app);
            vec![]
        }
        Action::Mark => {
            mark(g);
            vec![]
        }
        Action::MarkAll => {
            mark_all(g);
            vec![]
        }
        Action::RecoverMarked => extract(app),
        Action::StopRecover if g.extract.status.active() => vec![Command::GuestStop],
        Action::StopRecover => vec![],
        _ => return None,
    })
}

/// Leave the guest view (an extraction goes on; its end is logged).
fn close(app: &mut App) {
    if app.guest.as_ref().is_some_and(|g| g.extract.status.active()) {
        app.overlay = Some(Overlay::Message(
            "Files are being extracted from this disk: x stops it, or wait until it is done.".into(),
        ));
        return;
    }
    app.guest = None;
}

fn list(g: &mut GuestView) -> Vec<Command> {
    let Some(volume) = g.volume else { return vec![] };
    g.listing = true;
    g.list_error = None;
    g.rows.clear();
    let dir = g.cwd.last().cloned();
    vec![Command::GuestList { id: g.id, volume, path: g.path(), dir }]
}

fn enter(app: &mut App) -> Vec<Command> {
    let Some(g) = app.guest.as_mut() else { return vec![] };
    match g.volume {
        None => {
            let Some(v) = g.volumes.get(g.cursor) else { return vec![] };
            if let Some(e) = &v.error {
                app.overlay = Some(Overlay::Message(format!("Volume {} cannot be read: {e}", v.index)));
                return vec![];
            }
            g.volume = Some(g.cursor);
            g.cursors.push(g.cursor);
            g.cursor = 0;
            g.cwd.clear();
            list(g)
        }
        Some(volume) => {
            let Some(e) = g.rows.get(g.cursor).cloned() else { return vec![] };
            let path = format!("{}/{}", g.path(), e.name);
            match e.kind {
                Kind::Dir => {
                    g.cursors.push(g.cursor);
                    g.cursor = 0;
                    g.cwd.push(e);
                    list(g)
                }
                Kind::File | Kind::Symlink => {
                    let id = g.id;
                    app.browse.preview =
                        Some(Preview { title: path.clone(), lines: vec!["reading...".into()], scroll: 0 });
                    app.overlay = Some(Overlay::Preview);
                    vec![Command::GuestPreview { id, volume, path, file: e }]
                }
                Kind::Other => vec![],
            }
        }
    }
}

fn back(app: &mut App) -> Vec<Command> {
    let Some(g) = app.guest.as_mut() else { return vec![] };
    if g.volume.is_none() {
        close(app);
        return vec![];
    }
    let restore = g.cursors.pop().unwrap_or(0);
    if g.cwd.pop().is_none() {
        // From a volume's root back to the volumes.
        g.volume = None;
        g.rows.clear();
        g.list_error = None;
        g.listing = false;
        g.cursor = restore.min(g.volumes.len().saturating_sub(1));
        return vec![];
    }
    let cmds = list(g);
    g.cursor = restore;
    cmds
}

fn mark(g: &mut GuestView) {
    let (Some(v), Some(p), Some(e)) = (g.volume, g.row_path(g.cursor), g.rows.get(g.cursor).cloned()) else { return };
    let key = (v, p);
    if g.marked.remove(&key).is_none() {
        g.marked.insert(key, e);
    }
    g.cursor = (g.cursor + 1).min(g.rows.len().saturating_sub(1));
}

fn mark_all(g: &mut GuestView) {
    let Some(v) = g.volume else { return };
    let all: Vec<(MarkKey, Entry)> =
        (0..g.rows.len()).filter_map(|i| Some(((v, g.row_path(i)?), g.rows.get(i)?.clone()))).collect();
    let every = all.iter().all(|(k, _)| g.marked.contains_key(k));
    for (k, e) in all {
        if every {
            g.marked.remove(&k);
        } else {
            g.marked.insert(k, e);
        }
    }
}

fn extract(app: &mut App) -> Vec<Command> {
    let Some(g) = app.guest.as_mut() else { return vec![] };
    if g.extract.status.active() {
        app.overlay = Some(Overlay::Message("The extraction is already running (x stops it).".into()));
        return vec![];
    }
    if g.marked.is_empty() {
        mark(g);
    }
    if g.marked.is_empty() {
        app.overlay = Some(Overlay::Message(
            "Nothing to extract: open a volume (Enter), mark files or folders (Space), then press r.".into(),
        ));
        return vec![];
    }
    let Some(to) = app.recover.target.clone() else {
        app.overlay = Some(Overlay::Message(
            "Choose a destination first on the Recover screen (5): Enter on a disk, or t to type a folder. Then come back (3) and press r.".into(),
        ));
        return vec![];
    };
    g.extract = ExtractView { status: JobStatus::Running, ..ExtractView::default() };
    let select = g.marked.iter().map(|((v, p), e)| (*v, p.clone(), e.clone())).collect();
    vec![Command::GuestExtract { id: g.id, select, to }]
}

/// A worker answer about the guest view.
pub fn on_job(app: &mut App, ev: JobEvent) {
    let id_now = app.guest.as_ref().map(|g| g.id);
    match ev {
        JobEvent::GuestOpened { id, result } if Some(id) == id_now => {
            let Some(g) = app.guest.as_mut() else { return };
            g.opening = false;
            match result {
                Ok((volumes, notes)) => {
                    g.volumes = volumes;
                    g.notes = notes;
                    g.cursor = 0;
                }
                Err(e) => g.error = Some(e),
            }
        }
        JobEvent::GuestListed { id, volume, path, result } if Some(id) == id_now => {
            let Some(g) = app.guest.as_mut() else { return };
            if g.volume != Some(volume) || g.path() != path {
                return;
            }
            g.listing = false;
            match result {
                Ok(rows) => g.rows = rows,
                Err(e) => g.list_error = Some(e),
            }
            g.cursor = g.cursor.min(g.rows.len().saturating_sub(1));
        }
        JobEvent::GuestPreview { id, path, preview }
            if Some(id) == id_now && app.browse.preview.as_ref().is_some_and(|p| p.title == path) =>
        {
            app.browse.preview = Some(preview);
        }
        JobEvent::GuestProgress { id, bytes, files, current } => {
            if let Some(g) = app.guest.as_mut().filter(|g| g.id == id) {
                g.extract.bytes = bytes;
                g.extract.files = files;
                g.extract.current = current;
            }
        }
        JobEvent::GuestExtracted { id, status, summary } => {
            for l in &summary {
                app.log(l.clone());
            }
            if let JobStatus::Failed(e) = &status {
                app.log(format!("extraction failed: {e}"));
                if app.screen == Screen::Browse {
                    app.overlay = Some(Overlay::Message(format!("Extracting failed: {e}")));
                }
            }
            if let Some(g) = app.guest.as_mut().filter(|g| g.id == id) {
                g.extract.status = status;
                g.extract.summary = summary;
                g.extract.current.clear();
                if g.extract.status == JobStatus::Done {
                    g.marked.clear();
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover::rebuild::State as ItemState;
    use crate::tui::app::ItemRow;
    use crate::tui::theme::Theme;
    use crate::tui::update::{reload_rows, update};
    use std::path::PathBuf;

    fn entry(name: &str, kind: Kind, deleted: bool) -> Entry {
        Entry {
            name: name.into(),
            kind,
            size: 10,
            deleted,
            confidence: deleted.then_some(crate::guest::Confidence::Medium),
            ..Entry::bare_root(7, None)
        }
    }

    fn app() -> App {
        let mut a = App::new(Theme { mono: true, ascii: true }, PathBuf::from("/state"));
        a.items = vec![
            ItemRow::new("volumes/ds/vm", ItemKind::Dir, ItemState::Live, 0),
            ItemRow::new("volumes/ds/vm/vm.vmdk", ItemKind::File, ItemState::Live, 400),
        ];
        a.browse.cwd = vec!["volumes".into(), "ds".into(), "vm".into()];
        reload_rows(&mut a, None);
        a.screen = Screen::Browse;
        a
    }

    /// g opens the disk on the worker; Enter goes into a volume and a folder, Backspace back
    /// out to the volumes and then Browse; answers of an older request are dropped.
    #[test]
    fn open_descend_and_back() {
        let mut a = app();
        let cmds = update(&mut a, Action::OpenGuest);
        assert_eq!(cmds, [Command::GuestOpen { id: 1, generation: 0, item: 1 }]);
        assert!(a.guest.as_ref().is_some_and(|g| g.opening));
        let vols = vec![
            VolumeRow { index: 1, fs: "FAT32".into(), ..Default::default() },
            VolumeRow { index: 2, error: Some("no known file system".into()), ..Default::default() },
        ];
        // A late answer of another request changes nothing.
        on_job(&mut a, JobEvent::GuestOpened { id: 9, result: Ok((vols.clone(), vec![])) });
        assert!(a.guest.as_ref().unwrap().volumes.is_empty());
        on_job(&mut a, JobEvent::GuestOpened { id: 1, result: Ok((vols, vec![])) });
        // A volume that does not open says why.
        update(&mut a, Action::Down);
        assert!(update(&mut a, Action::Open).is_empty());
        assert!(matches!(&a.overlay, Some(Overlay::Message(m)) if m.contains("no known")));
        update(&mut a, Action::Close);
        update(&mut a, Action::Up);
        let cmds = update(&mut a, Action::Open);
        assert_eq!(cmds, [Command::GuestList { id: 1, volume: 0, path: String::new(), dir: None }]);
        let rows = vec![entry("Users", Kind::Dir, false), entry("gone.txt", Kind::File, true)];
        on_job(&mut a, JobEvent::GuestListed { id: 1, volume: 0, path: String::new(), result: Ok(rows) });
        let cmds = update(&mut a, Action::Open);
        assert!(
            matches!(&cmds[..], [Command::GuestList { path, dir: Some(d), .. }] if path == "/Users" && d.name == "Users")
        );
        assert_eq!(a.guest.as_ref().unwrap().path(), "/Users");
        update(&mut a, Action::Back);
        assert_eq!(a.guest.as_ref().unwrap().path(), "");
        update(&mut a, Action::Back);
        assert_eq!(a.guest.as_ref().unwrap().volume, None);
        update(&mut a, Action::Back);
        assert!(a.guest.is_none(), "Backspace on the volumes leaves the guest view");
        // Enter on Browse still opens the file as before.
        assert_eq!(update(&mut a, Action::OpenGuest).len(), 1);
        update(&mut a, Action::LeaveGuest);
        assert!(a.guest.is_none());
    }

    /// Marks, a file's preview through the overlay, and extraction needing a destination.
    #[test]
    fn mark_preview_and_extract() {
        let mut a = app();
        update(&mut a, Action::OpenGuest);
        on_job(&mut a, JobEvent::GuestOpened { id: 1, result: Ok((vec![VolumeRow::default()], vec![])) });
        update(&mut a, Action::Open);
        let rows = vec![entry("a", Kind::Dir, false), entry("b.txt", Kind::File, true)];
        on_job(&mut a, JobEvent::GuestListed { id: 1, volume: 0, path: String::new(), result: Ok(rows) });
        update(&mut a, Action::Mark);
        let g = a.guest.as_ref().unwrap();
        assert!(g.is_marked("/a/x/y") && !g.is_marked("/b.txt"));
        assert_eq!(g.cursor, 1);
        let cmds = update(&mut a, Action::Open);
        assert!(matches!(&cmds[..], [Command::GuestPreview { path, .. }] if path == "/b.txt"));
        assert_eq!(a.overlay, Some(Overlay::Preview));
        let p = Preview { title: "/b.txt".into(), lines: vec!["hello".into()], scroll: 0 };
        on_job(&mut a, JobEvent::GuestPreview { id: 1, path: "/b.txt".into(), preview: p.clone() });
        assert_eq!(a.browse.preview, Some(p));
        update(&mut a, Action::Close);
        assert!(update(&mut a, Action::RecoverMarked).is_empty(), "no destination yet");
        assert!(matches!(&a.overlay, Some(Overlay::Message(m)) if m.contains("Recover screen")));
        update(&mut a, Action::Close);
        a.recover.target = Some(PathBuf::from("/out"));
        let cmds = update(&mut a, Action::RecoverMarked);
        assert!(
            matches!(&cmds[..], [Command::GuestExtract { select, to, .. }] if select.len() == 1 && select[0].1 == "/a" && to == &PathBuf::from("/out"))
        );
        assert!(update(&mut a, Action::LeaveGuest).is_empty());
        assert!(a.guest.is_some(), "the view stays while it extracts");
        update(&mut a, Action::Close);
        assert_eq!(update(&mut a, Action::StopRecover), [Command::GuestStop]);
        on_job(&mut a, JobEvent::GuestExtracted { id: 1, status: JobStatus::Done, summary: vec!["done".into()] });
        assert!(a.guest.as_ref().unwrap().marked.is_empty());
        update(&mut a, Action::MarkAll);
        assert_eq!(a.guest.as_ref().unwrap().marked.len(), 2);
        update(&mut a, Action::MarkAll);
        assert!(a.guest.as_ref().unwrap().marked.is_empty());
    }

    /// g opens the view from Browse; inside it the guest table holds: Esc and g close, r
    /// extracts, x stops, and the key bar shows the guest keys.
    #[test]
    fn guest_keys() {
        use crate::tui::keys::{action, bindings_for};
        use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let key = |c| KeyEvent::new(c, KeyModifiers::NONE);
        let mut a = app();
        assert_eq!(action(&a, key(KeyCode::Char('g'))), Some(Action::OpenGuest));
        assert_eq!(action(&a, key(KeyCode::Esc)), None);
        assert_eq!(action(&a, key(KeyCode::Char('x'))), None);
        assert!(bindings_for(&a).iter().any(|b| b.bar && b.label == "g"), "g is in Browse's key bar");
        update(&mut a, Action::OpenGuest);
        assert_eq!(action(&a, key(KeyCode::Esc)), Some(Action::LeaveGuest));
        assert_eq!(action(&a, key(KeyCode::Char('g'))), Some(Action::LeaveGuest));
        assert_eq!(action(&a, key(KeyCode::Char('r'))), Some(Action::RecoverMarked));
        assert_eq!(action(&a, key(KeyCode::Char('x'))), Some(Action::StopRecover));
        assert_eq!(action(&a, key(KeyCode::Enter)), Some(Action::Open));
        assert_eq!(action(&a, key(KeyCode::Backspace)), Some(Action::Back));
        assert_eq!(action(&a, key(KeyCode::Char('3'))), Some(Action::Go(Screen::Browse)));
        let bar: Vec<&str> = bindings_for(&a).iter().filter(|b| b.bar).map(|b| b.short).collect();
        assert!(bar.contains(&"extract") && bar.contains(&"close") && !bar.contains(&"recover"), "{bar:?}");
        // Another screen keeps its own keys while the view stays open behind it.
        a.screen = Screen::Recover;
        assert_eq!(action(&a, key(KeyCode::Char('x'))), Some(Action::StopRecover));
        assert_eq!(action(&a, key(KeyCode::Char('s'))), Some(Action::StartRecover));
        assert_eq!(action(&a, key(KeyCode::Esc)), None);
    }

    /// A folder or a file that is no disk content is refused with a word, not opened.
    #[test]
    fn only_files_open_as_disks() {
        let mut a = app();
        update(&mut a, Action::Back);
        let i = a.browse.rows.iter().position(|r| r.name == "vm").unwrap();
        a.browse.cursor = i;
        assert!(update(&mut a, Action::OpenGuest).is_empty());
        assert!(matches!(&a.overlay, Some(Overlay::Message(m)) if m.contains("virtual disk")));
        assert!(a.guest.is_none());
    }
}
