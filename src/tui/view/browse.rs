//! Browse: one folder of the catalogue, with marks, states and a details pane.

use super::{block, field};
use crate::recover::rebuild::Kind;
use crate::tui::app::App;
use crate::tui::text;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

/// Width from which the details pane sits to the right of the list.
const SIDE_BY_SIDE: u16 = 120;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let (list, details) = if area.width >= SIDE_BY_SIDE {
        let [l, d] = Layout::horizontal([Constraint::Min(60), Constraint::Length(48)]).areas(area);
        (l, d)
    } else {
        let [l, d] = Layout::vertical([Constraint::Min(5), Constraint::Length(6)]).areas(area);
        (l, d)
    };
    draw_list(f, list, app);
    draw_details(f, details, app);
}

fn draw_list(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    let cwd = format!("/{}", app.browse.cwd.join("/"));
    let origin = if app.from_scan { "volumes and scan" } else { "volumes; s on Scan finds deleted files" };
    let title = format!("{} [{origin}]", text::fit(&cwd, (area.width as usize).saturating_sub(50).max(10), t.ascii));
    if app.items.is_empty() {
        let msg = if app.busy.is_some() {
            "Reading the volumes..."
        } else {
            "Nothing found yet. A deep scan (4 Scan, s) looks for deleted and lost data."
        };
        f.render_widget(Paragraph::new(msg).block(block(app, title)), area);
        return;
    }
    let name_w = (area.width as usize).saturating_sub(2 + 3 + 11 + 12 + 17 + 4).max(12);
    let rows: Vec<Row> = app
        .browse
        .rows
        .iter()
        .map(|r| {
            let mut p = app.browse.cwd.clone();
            p.push(r.name.clone());
            let marked = app.is_marked(&p.join("/"));
            let indent = if r.indent > 0 { if t.ascii { " `-" } else { " └ " } } else { "" };
            let name = format!("{indent}{}{}", r.name, if r.dir { "/" } else { "" });
            let note = r.note.as_deref().map(|n| format!("  {n}")).unwrap_or_default();
            let item = r.item.and_then(|i| app.items.get(i));
            let lost = item.is_some_and(|i| !i.recoverable && i.kind == Kind::File);
            let link = item.is_some_and(|i| i.kind == Kind::Symlink);
            let state = r.state.map_or("", text::state);
            // A folder's state is what it holds when it has no entry of its own.
            let state = match (lost, link, r.dir && r.item.is_none() && r.state.is_some()) {
                (true, _, _) => "LOST".to_string(),
                (_, true, _) => "link".to_string(),
                (_, _, true) => format!("has {state}"),
                _ => state.to_string(),
            };
            let mut st = r.state.map_or(ratatui::style::Style::default(), |s| t.state(s));
            if lost {
                st = t.error();
            }
            Row::new(vec![
                Cell::from(if marked { "[x]" } else { "[ ]" }).style(if marked { t.marked() } else { t.dim() }),
                Cell::from(Line::from(vec![
                    Span::raw(text::fit(&name, name_w, t.ascii)),
                    Span::styled(text::fit(&note, name_w.saturating_sub(name.chars().count()), t.ascii), t.dim()),
                ])),
                Cell::from(if r.dir && r.files == 0 && r.size == 0 { String::new() } else { text::size(r.size) }),
                Cell::from(state).style(st),
                Cell::from(item.map_or_else(String::new, |i| text::time(i.mtime))),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(3),
        Constraint::Min(12),
        Constraint::Length(11),
        Constraint::Length(11),
        Constraint::Length(16),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(vec!["", "Name", "Size", "State", "Modified"]).style(t.title()))
        .row_highlight_style(t.selected())
        .block(block(app, title));
    let mut st = TableState::default().with_selected(Some(app.browse.cursor));
    f.render_stateful_widget(table, area, &mut st);
}

fn draw_details(f: &mut Frame, area: Rect, app: &App) {
    let (n, size, _) = app.marked_files();
    let marked = format!("{n} files marked ({})", text::size(size));
    let mut lines: Vec<Line> = Vec::new();
    let row = app.browse.rows.get(app.browse.cursor);
    match (row, app.current_item()) {
        (Some(r), Some(it)) => {
            lines.push(field(
                app,
                "state",
                format!("{}, confidence {}", text::state(it.state), text::confidence(it.confidence)),
            ));
            lines.push(field(app, "how", it.method.clone()));
            if let Some(o) = &it.original {
                lines.push(field(app, "was", o.clone()));
            }
            let alloc = it.allocated.map(|a| format!(", {} with data", text::size(a))).unwrap_or_default();
            lines.push(field(app, "size", format!("{}{alloc}", text::size(if r.dir { r.size } else { it.size }))));
            if let Some(note) = &r.note {
                lines.push(field(app, "what", note.clone()));
            }
            for m in &it.missing {
                lines.push(Line::styled(format!("missing: {m}"), app.theme.error()));
            }
        }
        (Some(r), None) => {
            lines.push(field(app, "folder", format!("{} files, {}", r.files, text::size(r.size))));
            if let Some(note) = &r.note {
                lines.push(field(app, "what", note.clone()));
            }
        }
        _ => {}
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(block(app, marked)), area);
}
