//! Hardware: storage controllers, their disks and partitions.

use super::block;
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState};

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    if !app.hw_ready {
        f.render_widget(
            Paragraph::new("Looking for storage controllers and disks...").block(block(app, "Hardware")),
            area,
        );
        return;
    }
    if app.hardware.is_empty() {
        f.render_widget(
            Paragraph::new("No storage controller or disk found. Is the HBA's driver missing? See the log (l).")
                .block(block(app, "Hardware")),
            area,
        );
        return;
    }
    let rows: Vec<Row> = app
        .hardware
        .iter()
        .map(|h| {
            let indent = "  ".repeat(h.depth as usize);
            // Tags first: on a narrow screen the end of the line is cut.
            let mut text = Vec::new();
            if h.boot_medium {
                text.push(Span::styled("[boot medium] ", t.warn()));
            }
            if h.source {
                text.push(Span::styled("[source] ", t.ok()));
            }
            let name_style = if h.depth == 0 { t.title() } else { ratatui::style::Style::default() };
            text.push(Span::raw(h.text.clone()));
            Row::new(vec![
                ratatui::widgets::Cell::from(Span::styled(format!("{indent}{}", h.name), name_style)),
                ratatui::widgets::Cell::from(Line::from(text)),
            ])
        })
        .collect();
    let table = Table::new(rows, [Constraint::Length(16), Constraint::Min(20)])
        .row_highlight_style(t.selected())
        .block(block(app, "Storage controllers and disks"));
    let mut st = TableState::default().with_selected(Some(app.hw_cursor));
    f.render_stateful_widget(table, area, &mut st);
}
