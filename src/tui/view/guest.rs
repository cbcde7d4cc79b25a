//! Browse's guest view: a virtual disk's volumes, then a volume's folders with deleted entries
//! and their confidence, and a details pane.

use super::{block, field, file_table};
use crate::guest::Kind;
use crate::tui::app::{App, JobStatus};
use crate::tui::guest::GuestView;
use crate::tui::text;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

/// Width from which the details pane sits to the right of the list.
const SIDE_BY_SIDE: u16 = 120;

pub fn draw(f: &mut Frame, area: Rect, app: &App, g: &GuestView) {
    let (list, details) = if area.width >= SIDE_BY_SIDE {
        let [l, d] = Layout::horizontal([Constraint::Min(60), Constraint::Length(48)]).areas(area);
        (l, d)
    } else {
        let [l, d] = Layout::vertical([Constraint::Min(5), Constraint::Length(7)]).areas(area);
        (l, d)
    };
    draw_list(f, list, app, g);
    draw_details(f, details, app, g);
}

fn title(app: &App, g: &GuestView, width: u16) -> String {
    let room = (width as usize).saturating_sub(4);
    let place = match g.volume.and_then(|v| g.volumes.get(v)) {
        Some(v) => format!(" > {} {}", volume_name(v.index), if g.cwd.is_empty() { "/".into() } else { g.path() }),
        None => String::new(),
    };
    // The place inside the disk matters more than the disk's folder: the disk's path gives way.
    let disk_room = room.saturating_sub(place.chars().count() + 7).max(8);
    format!("disk {}{place}", text::fit(&g.disk, disk_room, app.theme.ascii))
}

fn volume_name(index: u32) -> String {
    if index == 0 { "whole disk".into() } else { format!("volume {index}") }
}

fn draw_list(f: &mut Frame, area: Rect, app: &App, g: &GuestView) {
    let t = app.theme;
    let title = title(app, g, area.width);
    let msg = if g.opening {
        Some(Line::raw("Opening the disk and its file systems..."))
    } else if let Some(e) = &g.error {
        Some(Line::styled(format!("This disk cannot be read: {e}"), t.error()))
    } else if g.volume.is_some() && g.listing {
        Some(Line::raw("Reading the folder..."))
    } else if let (Some(_), Some(e)) = (g.volume, &g.list_error) {
        Some(Line::styled(format!("This folder cannot be read: {e}"), t.error()))
    } else if g.volume.is_none() && g.volumes.is_empty() {
        Some(Line::raw("No volume found on this disk."))
    } else if g.volume.is_some() && g.rows.is_empty() {
        Some(Line::raw("(empty folder)"))
    } else {
        None
    };
    if let Some(m) = msg {
        f.render_widget(Paragraph::new(m).wrap(Wrap { trim: false }).block(block(app, title)), area);
        return;
    }
    let mut st = TableState::default().with_selected(Some(g.cursor));
    if g.volume.is_none() {
        let rows: Vec<Row> = g
            .volumes
            .iter()
            .map(|v| {
                let fs = if v.error.is_some() { "?".to_string() } else { v.fs.clone() };
                Row::new(vec![
                    Cell::from(format!("{:>3}", v.index)),
                    Cell::from(v.describe.clone()),
                    Cell::from(fs).style(if v.error.is_some() { t.error() } else { Style::default() }),
                    Cell::from(v.label.clone()),
                    Cell::from(text::size(v.size)),
                ])
            })
            .collect();
        let widths = [
            Constraint::Length(4),
            Constraint::Min(16),
            Constraint::Length(7),
            Constraint::Length(12),
            Constraint::Length(10),
        ];
        let table = Table::new(rows, widths)
            .header(Row::new(vec!["No.", "Partition", "FS", "Label", "Size"]).style(t.title()))
            .row_highlight_style(t.selected())
            .block(block(app, title));
        f.render_stateful_widget(table, area, &mut st);
        return;
    }
    let name_w = (area.width as usize).saturating_sub(2 + 4 + 11 + 9 + 5 + 17 + 5).max(12);
    let base = g.path();
    let rows: Vec<Row> = g
        .rows
        .iter()
        .map(|e| {
            let marked = g.is_marked(&format!("{base}/{}", e.name));
            let name = format!("{}{}", e.name, if e.kind == Kind::Dir { "/" } else { "" });
            let (state, style) = match (e.deleted, e.kind) {
                (true, _) => ("deleted", t.warn()),
                (false, Kind::Symlink) => ("link", Style::default()),
                _ => ("", Style::default()),
            };
            let sure = e.confidence.filter(|_| e.deleted).map_or("", text::guest_confidence);
            Row::new(vec![
                Cell::from(if marked { "[x]" } else { "[ ]" }).style(if marked { t.marked() } else { t.dim() }),
                Cell::from(text::fit(&name, name_w, t.ascii)),
                Cell::from(if e.kind == Kind::Dir { String::new() } else { text::size(e.size) }),
                Cell::from(state).style(style),
                Cell::from(sure),
                Cell::from(text::time64(e.mtime)),
            ])
        })
        .collect();
    let table = file_table(app, title, rows, 8);
    f.render_stateful_widget(table, area, &mut st);
}

fn draw_details(f: &mut Frame, area: Rect, app: &App, g: &GuestView) {
    let t = app.theme;
    let x = &g.extract;
    let head = match &x.status {
        JobStatus::Running | JobStatus::Paused => {
            format!("extracting: {} files, {}", x.files, text::size(x.bytes))
        }
        _ => format!("{} marked", g.marked.len()),
    };
    let mut lines: Vec<Line> = Vec::new();
    if let Some(v) = g.volume.is_none().then(|| g.volumes.get(g.cursor)).flatten() {
        lines.push(field(app, "partition", format!("{} ({})", volume_name(v.index), v.describe)));
        lines.push(field(app, "size", text::size(v.size)));
        if let Some(e) = &v.error {
            lines.push(Line::styled(e.clone(), t.error()));
        } else {
            let label = if v.label.is_empty() { String::new() } else { format!(", label {}", v.label) };
            lines.push(field(app, "file system", format!("{}{label}", v.fs)));
        }
        lines.extend(g.notes.iter().map(|n| Line::styled(format!("note: {n}"), t.dim())));
    } else if let Some(e) = g.current() {
        let kind = match e.kind {
            Kind::File => "file",
            Kind::Dir => "folder",
            Kind::Symlink => "link",
            Kind::Other => "other",
        };
        let state = match (e.deleted, e.confidence) {
            (true, Some(c)) => format!(", deleted (confidence {})", text::guest_confidence(c)),
            (true, None) => ", deleted".into(),
            _ => String::new(),
        };
        lines.push(field(app, "what", format!("{kind}, {}{state}", text::size(e.size))));
        lines.push(field(
            app,
            "times",
            format!(
                "modified {}, accessed {}, created/changed {}",
                text::time64(e.mtime),
                text::time64(e.atime),
                text::time64(e.ctime)
            ),
        ));
        if let Some(m) = e.mode {
            lines.push(field(app, "mode", format!("{m:o}")));
        }
        if !e.streams.is_empty() {
            lines.push(field(app, "streams", e.streams.join(", ")));
        }
    }
    if x.status.active() && !x.current.is_empty() {
        lines.push(Line::styled(format!("now: {}", x.current), t.dim()));
    }
    if !x.status.active() {
        lines.extend(x.summary.iter().map(|l| Line::styled(l.clone(), t.dim())));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block(app, head)), area);
}

#[cfg(test)]
mod tests {
    use crate::guest::{Confidence, Entry, Kind};
    use crate::tui::app::{App, Overlay, Screen};
    use crate::tui::guest::{GuestView, VolumeRow};
    use crate::tui::theme::Theme;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// The guest view draws at any size, in every state, without a panic.
    #[test]
    fn draws_at_any_size() {
        let e = Entry {
            name: "x".repeat(300),
            deleted: true,
            confidence: Some(Confidence::Low),
            streams: vec!["s".into()],
            mtime: Some(-5),
            ..Entry::bare_root(1, Some(0o644))
        };
        let full = GuestView {
            disk: "volumes/ds/vm/".repeat(20),
            volumes: vec![VolumeRow { error: Some("bad".into()), ..Default::default() }],
            volume: Some(0),
            cwd: vec![e.clone()],
            rows: vec![e.clone(), Entry { kind: Kind::File, ..e }],
            notes: vec!["n".repeat(200)],
            ..Default::default()
        };
        let states = [
            GuestView { opening: true, ..Default::default() },
            GuestView { error: Some("e".repeat(500)), ..Default::default() },
            GuestView { volume: None, ..full.clone() },
            full.clone(),
            GuestView { list_error: Some("bad".into()), ..full },
        ];
        for theme in [Theme { mono: false, ascii: false }, Theme { mono: true, ascii: true }] {
            let mut app = App::new(theme, "/s".into());
            app.screen = Screen::Browse;
            for g in &states {
                app.guest = Some(g.clone());
                for o in [None, Some(Overlay::Help)] {
                    app.overlay = o;
                    for (w, h) in [(1, 1), (10, 3), (40, 10), (80, 24), (300, 100)] {
                        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
                        t.draw(|f| crate::tui::view::draw(f, &app)).unwrap();
                    }
                }
            }
        }
    }
}
