//! Scan: progress of the deep scan, and what it found so far by kind.

use super::{block, field};
use crate::tui::app::{App, JobStatus};
use crate::tui::text;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    let s = &app.scan;
    let [top, bottom] = Layout::vertical([Constraint::Length(9), Constraint::Min(3)]).areas(area);
    let (status, style) = match &s.status {
        JobStatus::Idle => ("not started: press s to scan every byte of the sources once".to_string(), t.dim()),
        JobStatus::Running => ("scanning".to_string(), t.ok()),
        JobStatus::Paused => ("paused: p continues".to_string(), t.warn()),
        JobStatus::Done => ("finished: the findings are in Browse (3)".to_string(), t.ok()),
        JobStatus::Stopped => ("stopped: s resumes where it stopped".to_string(), t.warn()),
        JobStatus::Failed(e) => (format!("failed: {e}"), t.error()),
    };
    let frac = if s.total > 0 { s.done as f64 / s.total as f64 } else { 0.0 };
    let w = (top.width as usize).saturating_sub(12).max(10);
    let mut lines = vec![
        Line::styled(status, style),
        Line::raw(format!("{} {:5.1}%", text::bar(frac, w, t.ascii), 100.0 * frac)),
        field(app, "read", format!("{} of {}", text::size(s.done), text::size(s.total))),
        field(
            app,
            "speed",
            format!("{:.1} MB/s, {} left", s.throughput / 1e6, s.eta_secs.map_or_else(|| "?".into(), text::duration)),
        ),
        field(app, "findings", s.findings.to_string()),
    ];
    let bad = field(app, "unreadable", if s.unreadable == 0 { "none".into() } else { text::size(s.unreadable) });
    lines.push(if s.unreadable > 0 { bad.style(t.error()) } else { bad });
    lines.push(field(app, "index", format!("{}{}", s.state_dir.display(), if s.resumed { " (resumed)" } else { "" })));
    f.render_widget(Paragraph::new(lines).block(block(app, "Deep scan")), top);

    let mut counts: Vec<String> = s.counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    if counts.is_empty() {
        counts.push("nothing yet".into());
    }
    let per_line = ((bottom.width as usize).saturating_sub(2) / 28).max(1);
    let lines: Vec<Line> =
        counts.chunks(per_line).map(|c| Line::raw(c.iter().map(|x| format!("{x:<28}")).collect::<String>())).collect();
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block(app, "Found so far")), bottom);
}
