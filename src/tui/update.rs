//! The decisions: an action or a worker answer changes the state and may ask the worker for
//! work. Nothing here blocks or touches a source.

use super::app::{App, InputFor, JobStatus, Overlay, Pending, Preview, Screen};
use super::event::{Command, JobEvent};
use super::keys::Action;
use super::tree;
use std::path::PathBuf;

/// Lines a page moves.
const PAGE: usize = 10;

/// Apply `action`.
pub fn update(app: &mut App, action: Action) -> Vec<Command> {
    let mut cmds = if let Some(o) = app.overlay.clone() { overlay_action(app, o, action) } else { act(app, action) };
    cmds.extend(follow_preview(app));
    cmds
}

/// On Browse, the file under the cursor is previewed in the details pane (and by Enter).
fn follow_preview(app: &mut App) -> Option<Command> {
    if app.screen != Screen::Browse || app.guest.is_some() {
        return None;
    }
    let i = app.browse.rows.get(app.browse.cursor).filter(|r| !r.dir)?.item?;
    let it = app.items.get(i)?;
    if app.browse.preview.as_ref().is_some_and(|p| p.title == it.out_path()) {
        return None;
    }
    app.browse.preview = Some(Preview { title: it.out_path(), lines: vec!["reading...".into()], scroll: 0 });
    Some(Command::Preview { generation: app.generation, item: i })
}

fn act(app: &mut App, action: Action) -> Vec<Command> {
    if app.screen == Screen::Browse
        && let Some(cmds) = super::guest::act(app, action)
    {
        return cmds;
    }
    match action {
        Action::Quit => {
            if app.job_running() {
                app.overlay = Some(Overlay::ConfirmQuit);
            } else {
                app.quit = true;
            }
        }
        Action::Help => app.overlay = Some(Overlay::Help),
        Action::ToggleLog => app.show_log = !app.show_log,
        Action::Go(s) => return go(app, s),
        Action::NextScreen | Action::PrevScreen => {
            let i = Screen::ALL.iter().position(|s| *s == app.screen).unwrap_or(0);
            let n = Screen::ALL.len();
            let j = if action == Action::NextScreen { (i + 1) % n } else { (i + n - 1) % n };
            return go(app, Screen::ALL[j]);
        }
        Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home | Action::End => {
            move_cursor(app, action);
        }
        Action::Open => return open(app),
        Action::Back => back(app),
        Action::Mark => mark_current(app),
        Action::MarkAll => mark_all(app),
        Action::RecoverMarked => {
            if app.browse.marked.is_empty() {
                mark_current(app);
            }
            return go(app, Screen::Recover);
        }
        Action::StartScan => {
            if app.scan.status.active() {
                app.overlay = Some(Overlay::Message("The scan is already running (p pauses, x stops).".into()));
                return vec![];
            }
            if app.sources.is_empty() && app.busy.is_some() {
                app.overlay =
                    Some(Overlay::Message("The disks are still being opened: press s again in a moment.".into()));
                return vec![];
            }
            if app.sources.iter().all(|s| s.error.is_some()) {
                app.overlay = Some(Overlay::Message("No source is open: there is nothing to scan.".into()));
                return vec![];
            }
            app.scan.status = JobStatus::Running;
            app.screen = Screen::Scan;
            return vec![Command::StartScan];
        }
        Action::PauseScan => match app.scan.status {
            JobStatus::Running => {
                app.scan.status = JobStatus::Paused;
                return vec![Command::PauseScan(true)];
            }
            JobStatus::Paused => {
                app.scan.status = JobStatus::Running;
                return vec![Command::PauseScan(false)];
            }
            _ => {}
        },
        Action::StopScan if app.scan.status.active() => return vec![Command::StopScan],
        Action::StopRecover if app.recover.status.active() => return vec![Command::StopRecover],
        Action::Refresh => return refresh(app),
        Action::TypeDest => {
            let text = app.recover.target.as_ref().map_or_else(|| "/".into(), |p| p.display().to_string());
            app.overlay = Some(Overlay::Input {
                prompt: "Folder to write the recovered files to:".into(),
                text,
                then: InputFor::Folder,
            });
        }
        Action::StartRecover => return start_recover(app, false),
        Action::OpenGuest if app.screen == Screen::Browse => return super::guest::open(app),
        Action::Dhcp | Action::TypeAddress | Action::ToggleWeb { .. } | Action::ToggleNbd => {
            return super::network::act(app, action);
        }
        _ => {}
    }
    vec![]
}

fn overlay_action(app: &mut App, o: Overlay, action: Action) -> Vec<Command> {
    match (o, action) {
        (Overlay::ConfirmQuit, Action::Yes) => {
            app.quit = true;
            app.overlay = None;
            let mut v = Vec::new();
            if app.scan.status.active() {
                v.push(Command::StopScan);
            }
            if app.recover.status.active() {
                v.push(Command::StopRecover);
            }
            if app.guest_extracting() {
                v.push(Command::GuestStop);
            }
            return v;
        }
        (Overlay::Confirm { on_yes, .. }, Action::Yes) => {
            app.overlay = None;
            return match on_yes {
                Pending::StartRecover => start_recover(app, true),
                Pending::UseBootMedium(i) => vec![Command::UseDestination(i)],
                Pending::ReleaseSource(i) => vec![Command::ReleaseAndUse(i)],
            };
        }
        (Overlay::Input { prompt, mut text, then }, a) => match a {
            Action::Char(c) => {
                text.push(c);
                app.overlay = Some(Overlay::Input { prompt, text, then });
            }
            Action::Erase => {
                text.pop();
                app.overlay = Some(Overlay::Input { prompt, text, then });
            }
            Action::Submit => {
                app.overlay = None;
                let t = text.trim();
                if !t.is_empty() {
                    return match then {
                        InputFor::Folder => vec![Command::UseFolder(PathBuf::from(t))],
                        InputFor::Address(nic) => super::network::set_address(app, nic, t.to_string()),
                    };
                }
            }
            Action::Close => app.overlay = None,
            _ => {}
        },
        (
            Overlay::Preview,
            a @ (Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home | Action::End),
        ) => {
            if let Some(p) = app.browse.preview.as_mut() {
                let max = p.lines.len().saturating_sub(1);
                p.scroll = match a {
                    Action::Up => p.scroll.saturating_sub(1),
                    Action::Down => (p.scroll + 1).min(max),
                    Action::PageUp => p.scroll.saturating_sub(PAGE),
                    Action::PageDown => (p.scroll + PAGE).min(max),
                    Action::Home => 0,
                    _ => max,
                };
            }
        }
        (_, Action::Yes | Action::No | Action::Close) => app.overlay = None,
        _ => {}
    }
    vec![]
}

fn go(app: &mut App, s: Screen) -> Vec<Command> {
    app.screen = s;
    if s == Screen::Recover && app.recover.destinations.is_empty() {
        return vec![Command::Destinations];
    }
    if s == Screen::Network && !app.net.ready {
        return vec![Command::Nics];
    }
    vec![]
}

fn refresh(app: &mut App) -> Vec<Command> {
    match app.screen {
        Screen::Hardware => vec![Command::Inventory],
        Screen::Recover => vec![Command::Destinations],
        Screen::Sources => vec![],
        Screen::Network => vec![Command::Nics],
        Screen::Browse | Screen::Scan => {
            let from_scan = app.scan.status != JobStatus::Idle;
            app.busy = Some("rebuilding from the findings".into());
            if app.screen == Screen::Scan {
                app.screen = Screen::Browse;
            }
            vec![Command::Rebuild { from_scan }]
        }
    }
}

fn move_cursor(app: &mut App, a: Action) {
    let (cur, len) = match app.screen {
        Screen::Hardware => (&mut app.hw_cursor, app.hardware.len()),
        Screen::Sources => (&mut app.src_cursor, app.volumes.len()),
        Screen::Browse => (&mut app.browse.cursor, app.browse.rows.len()),
        Screen::Recover => (&mut app.recover.cursor, app.recover.destinations.len()),
        Screen::Network => (&mut app.net.cursor, app.net.nics.len()),
        Screen::Scan => return,
    };
    let max = len.saturating_sub(1);
    *cur = match a {
        Action::Up => cur.saturating_sub(1),
        Action::Down => (*cur + 1).min(max),
        Action::PageUp => cur.saturating_sub(PAGE),
        Action::PageDown => (*cur + PAGE).min(max),
        Action::Home => 0,
        _ => max,
    };
}

fn open(app: &mut App) -> Vec<Command> {
    match app.screen {
        Screen::Sources => {
            if let Some(p) = app.volumes.get(app.src_cursor).and_then(|v| v.browse_path.clone()) {
                app.browse.cwd = p.split('/').map(String::from).collect();
                reload_rows(app, None);
                app.screen = Screen::Browse;
            }
        }
        Screen::Browse => {
            let Some(row) = app.browse.rows.get(app.browse.cursor).cloned() else { return vec![] };
            if row.dir {
                app.browse.cwd.push(row.name);
                reload_rows(app, None);
                app.browse.cursor = 0;
            } else if let Some(i) = row.item {
                let it = &app.items[i];
                app.browse.preview =
                    Some(Preview { title: it.out_path(), lines: vec!["reading...".into()], scroll: 0 });
                app.overlay = Some(Overlay::Preview);
                return vec![Command::Preview { generation: app.generation, item: i }];
            }
        }
        Screen::Recover => {
            let Some(d) = app.recover.destinations.get(app.recover.cursor) else { return vec![] };
            if d.release && app.scan.status.active() {
                app.overlay = Some(Overlay::Message(format!(
                    "{} is being scanned as a source. Stop the scan first (Scan screen, x).",
                    d.name
                )));
            } else if d.release {
                app.overlay = Some(Overlay::Confirm {
                    question: format!(
                        "{} is read as a source, but no VMFS was found on it. Stop reading it and write the recovered files to it?",
                        d.name
                    ),
                    on_yes: Pending::ReleaseSource(app.recover.cursor),
                });
            } else if let Some(why) = &d.refused {
                app.overlay = Some(Overlay::Message(format!("{} cannot be used: {why}.", d.name)));
            } else if d.boot_medium {
                app.overlay = Some(Overlay::Confirm {
                    question: format!(
                        "{} is the medium this system booted from. Write the recovered files there?",
                        d.name
                    ),
                    on_yes: Pending::UseBootMedium(app.recover.cursor),
                });
            } else {
                return vec![Command::UseDestination(app.recover.cursor)];
            }
        }
        Screen::Hardware | Screen::Scan | Screen::Network => {}
    }
    vec![]
}

fn back(app: &mut App) {
    if app.screen != Screen::Browse {
        return;
    }
    if let Some(left) = app.browse.cwd.pop() {
        reload_rows(app, Some(&left));
    }
}

/// Recompute the Browse rows; put the cursor on `select` if given and present.
pub fn reload_rows(app: &mut App, select: Option<&str>) {
    // A folder that is gone (a new catalogue) falls back to its nearest parent that exists.
    loop {
        app.browse.rows = tree::rows(&app.items, &app.browse.cwd);
        if !app.browse.rows.is_empty() || app.browse.cwd.is_empty() {
            break;
        }
        app.browse.cwd.pop();
    }
    if let Some(name) = select {
        app.browse.cursor = app.browse.rows.iter().position(|r| r.name == name).unwrap_or(0);
    }
    app.browse.cursor = app.browse.cursor.min(app.browse.rows.len().saturating_sub(1));
}

/// Output path of Browse row `i`, and the extents that go with it.
fn row_paths(app: &App, i: usize) -> Option<(String, Vec<String>)> {
    let row = app.browse.rows.get(i)?;
    let mut p = app.browse.cwd.clone();
    p.push(row.name.clone());
    let extents = row.item.and_then(|x| app.items.get(x)).map(|it| it.extents.clone()).unwrap_or_default();
    Some((p.join("/"), extents))
}

fn mark_current(app: &mut App) {
    let Some((p, extents)) = row_paths(app, app.browse.cursor) else { return };
    if app.browse.marked.remove(&p) {
        for e in extents {
            app.browse.marked.remove(&e);
        }
    } else {
        app.browse.marked.insert(p);
        app.browse.marked.extend(extents);
    }
    app.browse.cursor = (app.browse.cursor + 1).min(app.browse.rows.len().saturating_sub(1));
}

fn mark_all(app: &mut App) {
    let all: Vec<(String, Vec<String>)> = (0..app.browse.rows.len()).filter_map(|i| row_paths(app, i)).collect();
    let every = all.iter().all(|(p, _)| app.browse.marked.contains(p));
    for (p, ext) in all {
        if every {
            app.browse.marked.remove(&p);
        } else {
            app.browse.marked.insert(p);
            app.browse.marked.extend(ext);
        }
    }
}

fn start_recover(app: &mut App, confirmed: bool) -> Vec<Command> {
    if app.recover.status.active() {
        return vec![];
    }
    let Some(to) = app.recover.target.clone() else {
        app.overlay =
            Some(Overlay::Message("Choose a destination first: Enter on a disk, or t to type a folder.".into()));
        return vec![];
    };
    let (files, size, data) = app.marked_files();
    if files == 0 {
        app.overlay = Some(Overlay::Message(
            "Nothing to write: mark files or folders on the Browse screen (Space), then press r.".into(),
        ));
        return vec![];
    }
    if !confirmed && let Some(free) = app.recover.free.filter(|&f| f < data) {
        app.overlay = Some(Overlay::Confirm {
            question: format!(
                "{} holds {} free; the marked files need {} (sparse) of {}. Start anyway?",
                to.display(),
                super::text::size(free),
                super::text::size(data),
                super::text::size(size)
            ),
            on_yes: Pending::StartRecover,
        });
        return vec![];
    }
    let select = app.browse.marked.iter().cloned().collect();
    app.recover.status = JobStatus::Running;
    app.recover.bytes_done = 0;
    app.recover.files_done = 0;
    app.recover.bytes_total = data;
    app.recover.files_total = files;
    app.recover.summary.clear();
    vec![Command::StartRecover { select, to }]
}

/// Apply a worker answer.
pub fn on_job(app: &mut App, ev: JobEvent) -> Vec<Command> {
    match ev {
        JobEvent::Hardware(rows) => {
            app.hardware = rows;
            app.hw_ready = true;
            app.hw_cursor = app.hw_cursor.min(app.hardware.len().saturating_sub(1));
        }
        JobEvent::Sources { sources, volumes, notes } => {
            for n in notes {
                app.log(n);
            }
            app.sources = sources;
            app.volumes = volumes;
            if app.generation == 0 {
                app.busy = Some("listing the volumes' files".into());
            }
        }
        JobEvent::Catalog { items, from_scan, notes } => {
            for n in notes {
                app.log(n);
            }
            let n = items.len();
            app.items = items;
            app.generation += 1;
            app.from_scan = from_scan;
            app.busy = None;
            let keep = app.browse.rows.get(app.browse.cursor).map(|r| r.name.clone());
            reload_rows(app, keep.as_deref());
            app.log(format!("catalogue: {n} items{}", if from_scan { " (with the scan's findings)" } else { "" }));
        }
        JobEvent::Annotated { generation, notes } if generation == app.generation => {
            for a in notes {
                if let Some(it) = app.items.get_mut(a.item) {
                    it.note = a.note.or(it.note.take());
                    it.allocated = a.allocated.or(it.allocated);
                    if !a.extents.is_empty() {
                        it.extents = a.extents;
                    }
                }
            }
            reload_rows(app, None);
        }
        JobEvent::Annotated { .. } => {}
        JobEvent::Preview { generation, item, preview } => {
            let current = app.browse.rows.get(app.browse.cursor).and_then(|r| r.item);
            if generation == app.generation && current == Some(item) {
                app.browse.preview = Some(preview);
            }
        }
        JobEvent::ScanProgress(v) => {
            let status = app.scan.status.clone();
            app.scan = v;
            app.scan.status = if status == JobStatus::Paused { status } else { JobStatus::Running };
        }
        JobEvent::ScanEnded(v) => {
            let done = v.status == JobStatus::Done;
            app.log(match &v.status {
                JobStatus::Done if v.resumed && v.done == v.total && app.scan.status == JobStatus::Idle => {
                    format!("the finished scan in {} is used: {} findings", v.state_dir.display(), v.findings)
                }
                JobStatus::Done => format!("scan finished: {} findings", v.findings),
                JobStatus::Stopped => "scan stopped: s resumes it".into(),
                JobStatus::Failed(e) => format!("scan failed: {e}"),
                s => format!("scan: {s:?}"),
            });
            if let JobStatus::Failed(e) = &v.status {
                app.overlay = Some(Overlay::Message(format!("The scan failed: {e}")));
            }
            app.scan = v;
            if done {
                app.busy = Some("rebuilding from the findings".into());
                return vec![Command::Rebuild { from_scan: true }];
            }
        }
        ev @ (JobEvent::Nics { .. } | JobEvent::NetSetup(_) | JobEvent::Export { .. }) => {
            return super::network::on_job(app, ev);
        }
        JobEvent::Destinations(d) => {
            app.recover.destinations = d;
            app.recover.cursor = app.recover.cursor.min(app.recover.destinations.len().saturating_sub(1));
        }
        JobEvent::Target { path, free } => {
            match &free {
                Ok(f) => app.log(format!("destination {}: {} free", path.display(), super::text::size(*f))),
                Err(e) => app.log(format!("destination {}: {e}", path.display())),
            }
            app.recover.free = free.ok();
            app.recover.target = Some(path);
        }
        JobEvent::RecoverProgress { bytes, files, current } => {
            app.recover.bytes_done = bytes;
            app.recover.files_done = files;
            app.recover.current = current;
        }
        JobEvent::RecoverEnded { status, summary } => {
            for l in &summary {
                app.log(l.clone());
            }
            if let JobStatus::Failed(e) = &status {
                app.overlay = Some(Overlay::Message(format!("Writing failed: {e}")));
            }
            app.recover.status = status;
            app.recover.summary = summary;
            app.recover.current.clear();
        }
        ev @ (JobEvent::GuestOpened { .. }
        | JobEvent::GuestListed { .. }
        | JobEvent::GuestPreview { .. }
        | JobEvent::GuestProgress { .. }
        | JobEvent::GuestExtracted { .. }) => super::guest::on_job(app, ev),
        JobEvent::Log(l) => app.log(l),
        JobEvent::Failed(e) => {
            app.log(e.clone());
            app.busy = None;
            app.overlay = Some(Overlay::Message(e));
        }
    }
    vec![]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover::rebuild::{Confidence, Kind, State as ItemState};
    use crate::tui::app::{DestRow, ItemRow};
    use crate::tui::theme::Theme;

    fn app() -> App {
        let mut a = App::new(Theme { mono: true, ascii: true }, PathBuf::from("/state"));
        let item = |p: &str, kind: Kind, size: u64| ItemRow {
            confidence: Confidence::Medium,
            ..ItemRow::new(p, kind, ItemState::Deleted, size)
        };
        let mut desc = item("volumes/ds/vm/vm.vmdk", Kind::File, 400);
        desc.extents = vec!["volumes/ds/vm/vm-flat.vmdk".into()];
        a.items = vec![
            item("volumes/ds/vm", Kind::Dir, 0),
            desc,
            item("volumes/ds/vm/vm-flat.vmdk", Kind::File, 1 << 30),
            item("volumes/ds/vm/vm.vmx", Kind::File, 600),
        ];
        a.sources = vec![Default::default()];
        a.browse.cwd = vec!["volumes".into(), "ds".into(), "vm".into()];
        reload_rows(&mut a, None);
        a.screen = Screen::Browse;
        a
    }

    #[test]
    fn marking_a_descriptor_marks_its_extent() {
        let mut a = app();
        assert_eq!(a.browse.rows[0].name, "vm.vmdk");
        update(&mut a, Action::Mark);
        assert!(a.is_marked("volumes/ds/vm/vm-flat.vmdk"));
        assert_eq!(a.marked_files(), (2, (1 << 30) + 400, (1 << 30) + 400));
        a.browse.cursor = 0;
        update(&mut a, Action::Mark);
        assert!(a.browse.marked.is_empty());
        update(&mut a, Action::MarkAll);
        assert_eq!(a.marked_files().0, 3);
        update(&mut a, Action::MarkAll);
        assert!(a.browse.marked.is_empty());
    }

    #[test]
    fn recovery_needs_a_target_marks_and_room() {
        let mut a = app();
        a.screen = Screen::Recover;
        assert!(update(&mut a, Action::StartRecover).is_empty());
        assert!(matches!(a.overlay, Some(Overlay::Message(_))));
        a.overlay = None;
        a.recover.target = Some(PathBuf::from("/out"));
        assert!(update(&mut a, Action::StartRecover).is_empty(), "nothing marked");
        a.overlay = None;
        a.screen = Screen::Browse;
        update(&mut a, Action::MarkAll);
        a.screen = Screen::Recover;
        a.recover.free = Some(1 << 20);
        assert!(update(&mut a, Action::StartRecover).is_empty(), "too little room asks first");
        assert!(matches!(a.overlay, Some(Overlay::Confirm { on_yes: Pending::StartRecover, .. })));
        let cmds = update(&mut a, Action::Yes);
        assert!(matches!(&cmds[..], [Command::StartRecover { to, .. }] if to == &PathBuf::from("/out")));
        assert!(a.recover.status.active());
    }

    #[test]
    fn quitting_asks_while_a_job_runs_and_stops_it() {
        let mut a = app();
        update(&mut a, Action::StartScan);
        assert_eq!(a.screen, Screen::Scan);
        assert_eq!(update(&mut a, Action::PauseScan), [Command::PauseScan(true)]);
        assert_eq!(a.scan.status, JobStatus::Paused);
        assert_eq!(update(&mut a, Action::PauseScan), [Command::PauseScan(false)]);
        update(&mut a, Action::Quit);
        assert_eq!(a.overlay, Some(Overlay::ConfirmQuit));
        update(&mut a, Action::No);
        assert!(!a.quit && a.overlay.is_none());
        update(&mut a, Action::Quit);
        assert_eq!(update(&mut a, Action::Yes), [Command::StopScan]);
        assert!(a.quit);
    }

    #[test]
    fn refused_and_boot_destinations() {
        let mut a = app();
        a.screen = Screen::Recover;
        a.recover.destinations = vec![
            DestRow { name: "sda1".into(), refused: Some("it is a source".into()), ..Default::default() },
            DestRow { name: "sdd1".into(), boot_medium: true, ..Default::default() },
            DestRow { name: "sde1".into(), ..Default::default() },
        ];
        assert!(update(&mut a, Action::Open).is_empty());
        assert!(matches!(&a.overlay, Some(Overlay::Message(m)) if m.contains("source")));
        update(&mut a, Action::Close);
        update(&mut a, Action::Down);
        assert!(update(&mut a, Action::Open).is_empty());
        assert_eq!(update(&mut a, Action::Yes), [Command::UseDestination(1)]);
        update(&mut a, Action::Down);
        assert_eq!(update(&mut a, Action::Open), [Command::UseDestination(2)]);
    }

    #[test]
    fn a_source_with_nothing_found_can_become_the_destination() {
        let mut a = app();
        a.screen = Screen::Recover;
        a.recover.destinations = vec![DestRow {
            name: "sdb".into(),
            refused: Some("it is source /dev/sdb".into()),
            release: true,
            ..Default::default()
        }];
        a.scan.status = JobStatus::Running;
        assert!(update(&mut a, Action::Open).is_empty());
        assert!(matches!(&a.overlay, Some(Overlay::Message(m)) if m.contains("Stop the scan")));
        update(&mut a, Action::Close);
        a.scan.status = JobStatus::Done;
        assert!(update(&mut a, Action::Open).is_empty());
        assert!(matches!(a.overlay, Some(Overlay::Confirm { on_yes: Pending::ReleaseSource(0), .. })));
        assert_eq!(update(&mut a, Action::Yes), [Command::ReleaseAndUse(0)]);
    }

    #[test]
    fn typed_folder_and_navigation() {
        let mut a = app();
        a.screen = Screen::Recover;
        update(&mut a, Action::TypeDest);
        update(&mut a, Action::Erase);
        for c in "/mnt/x".chars() {
            update(&mut a, Action::Char(c));
        }
        assert_eq!(update(&mut a, Action::Submit), [Command::UseFolder(PathBuf::from("/mnt/x"))]);
        a.screen = Screen::Browse;
        update(&mut a, Action::Back);
        assert_eq!(a.browse.cwd, ["volumes", "ds"]);
        assert_eq!(a.browse.rows[a.browse.cursor].name, "vm");
        update(&mut a, Action::Open);
        assert_eq!(a.browse.cwd.len(), 3);
        update(&mut a, Action::NextScreen);
        assert_eq!(a.screen, Screen::Scan);
        update(&mut a, Action::Go(Screen::Hardware));
        update(&mut a, Action::PrevScreen);
        assert_eq!(a.screen, Screen::Network);
    }
}
