//! Browse: one folder of the catalogue, with marks, states and a details pane.

use super::{block, field, file_table};
use crate::recover::rebuild::{Kind, State as ItemState};
use crate::tui::app::App;
use crate::tui::text;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, TableState};

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
    let name_w = (area.width as usize).saturating_sub(2 + 3 + 11 + 12 + 5 + 17 + 5).max(12);
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
                // How sure a recovered item is; live ones need no word.
                match item.filter(|i| i.state != ItemState::Live) {
                    Some(i) => Cell::from(text::confidence(i.confidence)).style(t.confidence(i.confidence)),
                    None => Cell::from(""),
                },
                Cell::from(item.map_or_else(String::new, |i| text::time(i.mtime))),
            ])
        })
        .collect();
    let table = file_table(app, title, rows, 11);
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
    // The file's first lines under its facts, where there is room (Enter shows all of it).
    let room = (area.height as usize).saturating_sub(2 + lines.len() + 1);
    if let (Some(p), Some(it)) = (&app.browse.preview, app.current_item())
        && p.title == it.out_path()
        && room > 0
    {
        lines.push(Line::raw(""));
        // Skip the facts the preview repeats at its top.
        let body = p.lines.iter().skip_while(|l| !l.is_empty()).skip(1);
        let w = (area.width as usize).saturating_sub(2);
        lines.extend(body.take(room).map(|l| Line::styled(text::fit(l, w, app.theme.ascii), app.theme.dim())));
    }
    f.render_widget(Paragraph::new(lines).block(block(app, marked)), area);
}
