//! Sources: what is being read, and the volumes found on it.

use super::block;
use crate::tui::app::App;
use crate::tui::text;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState};

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    // Never `clamp`: on a tiny terminal the upper bound falls below the lower one.
    let src_h = (app.sources.len() as u16 + 2).min(area.height / 2).max(3.min(area.height));
    let [top, bottom] = Layout::vertical([Constraint::Length(src_h), Constraint::Min(3)]).areas(area);
    let mut lines: Vec<Line> = Vec::new();
    if app.sources.is_empty() {
        lines.push(Line::raw(if app.busy.is_some() { "Opening the disks..." } else { "No disk or image to read." }));
    }
    for s in &app.sources {
        let (what, style) = match (&s.error, s.found.is_empty()) {
            (Some(e), _) => (format!("cannot open: {e}"), t.error()),
            (None, true) => ("no volume found: press s for a deep scan".to_string(), t.warn()),
            (None, false) => (s.found.join(", "), t.ok()),
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<24} {:>10}  ", text::fit(&s.path, 24, t.ascii), text::size(s.size))),
            Span::styled(what, style),
        ]));
    }
    f.render_widget(Paragraph::new(lines).block(block(app, "Sources (read-only)")), top);

    if app.volumes.is_empty() {
        let msg = if app.busy.is_some() {
            "Looking for VMFS volumes..."
        } else {
            "No VMFS volume found. Press s: the deep scan reads every byte once and finds volumes, files and disks whose metadata is lost."
        };
        f.render_widget(
            Paragraph::new(msg).wrap(ratatui::widgets::Wrap { trim: true }).block(block(app, "Volumes")),
            bottom,
        );
        return;
    }
    let rows: Vec<Row> = app
        .volumes
        .iter()
        .map(|v| {
            let parts =
                if v.parts_expected > 0 { format!("{}/{}", v.parts, v.parts_expected) } else { v.parts.to_string() };
            let problem = match (&v.error, v.missing_bytes) {
                (Some(e), _) => e.clone(),
                (None, 0) => String::new(),
                (None, m) => format!("{} missing", text::size(m)),
            };
            let style = if problem.is_empty() { t.ok() } else { t.error() };
            Row::new(vec![
                v.label.clone(),
                v.version.clone(),
                text::size(v.size),
                v.state.clone(),
                parts,
                if problem.is_empty() { "ok".into() } else { problem },
            ])
            .style(style)
        })
        .collect();
    let widths = [
        Constraint::Min(16),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(vec!["Label", "Version", "Size", "State", "Extents", "Problems"]).style(t.title()))
        .row_highlight_style(t.selected())
        .block(block(app, "Volumes (Enter browses)"));
    let mut st = TableState::default().with_selected(Some(app.src_cursor));
    f.render_stateful_widget(table, bottom, &mut st);
}
