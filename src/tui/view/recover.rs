//! Recover: what is marked, where it goes (free space first), and the writing's progress.

use super::{block, field};
use crate::tui::app::{App, JobStatus};
use crate::tui::text;
use crate::tui::worker::OUTPUT_DIR;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    let r = &app.recover;
    let [what, dests, progress] =
        Layout::vertical([Constraint::Length(4), Constraint::Min(4), Constraint::Length(8)]).areas(area);
    let (n, size, data) = app.marked_files();
    let target = match &r.target {
        Some(p) => format!("{}/{OUTPUT_DIR}  ({} free)", p.display(), r.free.map_or_else(|| "?".into(), text::size)),
        None => "none yet: Enter on a disk below, or t to type a folder".into(),
    };
    let short = r.free.is_some_and(|fr| fr < data) && n > 0;
    let lines = vec![
        field(app, "marked", format!("{n} files, {} ({} with data)", text::size(size), text::size(data))),
        if short { field(app, "to", target).style(t.error()) } else { field(app, "to", target) },
    ];
    f.render_widget(Paragraph::new(lines).block(block(app, "What and where")), what);

    let rows: Vec<Row> = r
        .destinations
        .iter()
        .map(|d| {
            let mut why = d.refused.clone().unwrap_or_default();
            if d.release {
                why = "a source with nothing found: Enter asks to use it".into();
            }
            if d.boot_medium && why.is_empty() {
                why = "boot medium: asks first".into();
            }
            let at = d.mounted_at.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            let style = if d.refused.is_some() && !d.release { t.dim() } else { ratatui::style::Style::default() };
            Row::new(vec![d.name.clone(), d.text.clone(), at, why]).style(style)
        })
        .collect();
    let widths = [Constraint::Length(14), Constraint::Min(20), Constraint::Length(20), Constraint::Min(10)];
    let title = if r.destinations.is_empty() { "Destinations (none found: t types a folder)" } else { "Destinations" };
    let table = Table::new(rows, widths)
        .header(Row::new(vec!["Device", "File system", "Mounted at", "Note"]).style(t.title()))
        .row_highlight_style(t.selected())
        .block(block(app, title));
    let mut st = TableState::default().with_selected(Some(r.cursor));
    f.render_stateful_widget(table, dests, &mut st);

    let (status, style) = match &r.status {
        JobStatus::Idle => ("not started: s writes the marked files".to_string(), t.dim()),
        JobStatus::Running | JobStatus::Paused => ("writing".to_string(), t.ok()),
        JobStatus::Done => ("finished".to_string(), t.ok()),
        JobStatus::Stopped => ("stopped".to_string(), t.warn()),
        JobStatus::Failed(e) => (format!("failed: {e}"), t.error()),
    };
    let frac = if r.bytes_total > 0 { r.bytes_done as f64 / r.bytes_total as f64 } else { 0.0 };
    let w = (progress.width as usize).saturating_sub(12).max(10);
    let mut lines = vec![Line::styled(status, style)];
    if r.status != JobStatus::Idle {
        lines.push(Line::raw(format!("{} {:5.1}%", text::bar(frac, w, t.ascii), 100.0 * frac.min(1.0))));
        lines.push(field(app, "files", format!("{} of {}", r.files_done, r.files_total)));
        if !r.current.is_empty() {
            lines.push(field(app, "now", text::fit(&r.current, w, t.ascii)));
        }
    }
    lines.extend(r.summary.iter().map(|l| Line::raw(l.as_str())));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(block(app, "Writing")), progress);
}
