//! Drawing: the tab line, the current screen, the log pane, the key bar and any overlay. Every
//! function here only reads the state.

mod browse;
mod guest;
mod hardware;
mod network;
mod overlay;
mod recover;
mod scan;
mod sources;

use super::app::{App, Screen};
use super::keys;
use super::text;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

/// Height of the log pane when shown.
const LOG_HEIGHT: u16 = 7;

/// Draw the whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let log_h = if app.show_log { LOG_HEIGHT.min(area.height.saturating_sub(6)) } else { 0 };
    let [tabs, body, log, keybar] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(log_h), Constraint::Length(1)])
            .areas(area);
    draw_tabs(f, tabs, app);
    match app.screen {
        Screen::Hardware => hardware::draw(f, body, app),
        Screen::Sources => sources::draw(f, body, app),
        Screen::Browse => match &app.guest {
            Some(g) => guest::draw(f, body, app, g),
            None => browse::draw(f, body, app),
        },
        Screen::Scan => scan::draw(f, body, app),
        Screen::Recover => recover::draw(f, body, app),
        Screen::Network => network::draw(f, body, app),
    }
    if log_h > 0 {
        draw_log(f, log, app);
    }
    draw_keybar(f, keybar, app);
    overlay::draw(f, body, app);
}

/// A bordered block with a title, in the theme's borders.
pub(super) fn block<'a>(app: &App, title: impl Into<String>) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_set(app.theme.border())
        .title(Span::styled(format!(" {} ", title.into()), app.theme.title()))
}

/// The file table both Browse and the guest view draw: mark, name, size, state, how sure,
/// modified. Only the State column's width differs (recovered states are longer words).
pub(super) fn file_table<'a>(app: &App, title: impl Into<String>, rows: Vec<Row<'a>>, state_w: u16) -> Table<'a> {
    let widths = [
        Constraint::Length(3),
        Constraint::Min(12),
        Constraint::Length(11),
        Constraint::Length(state_w),
        Constraint::Length(4),
        Constraint::Length(16),
    ];
    Table::new(rows, widths)
        .header(Row::new(vec!["", "Name", "Size", "State", "Sure", "Modified"]).style(app.theme.title()))
        .row_highlight_style(app.theme.selected())
        .block(block(app, title))
}

fn draw_tabs(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    // What runs in the background, on the right.
    let mut status = Vec::new();
    if app.scan.status.active() {
        let pct = if app.scan.total > 0 { 100.0 * app.scan.done as f64 / app.scan.total as f64 } else { 0.0 };
        let paused = if app.scan.status == super::app::JobStatus::Paused { " paused" } else { "" };
        status.push(format!("scan {pct:.0}%{paused}"));
    }
    if app.recover.status.active() {
        status.push(format!("writing {}/{}", app.recover.files_done, app.recover.files_total));
    }
    if let Some(g) = app.guest.as_ref().filter(|_| app.guest_extracting()) {
        status.push(format!("extracting {} files", g.extract.files));
    }
    if let Some(b) = &app.busy {
        status.push(format!("{b}..."));
    }
    let right = status.join(" | ");
    // On a narrow screen the other tabs shrink to their numbers so the status fits.
    let tabs = |short: bool| {
        let mut spans = vec![Span::styled(" vmfs-rescue ", t.title())];
        for (i, s) in Screen::ALL.iter().enumerate() {
            let active = *s == app.screen;
            let style = if active { t.tab_active() } else { Style::default() };
            let label = if short && !active { format!("{}", i + 1) } else { format!("{} {}", i + 1, s.title()) };
            spans.push(Span::raw(" "));
            spans.push(Span::styled(label, style));
        }
        spans
    };
    let width = |spans: &[Span]| spans.iter().map(|s| s.width()).sum::<usize>();
    let mut spans = tabs(false);
    if !right.is_empty() && width(&spans) + right.chars().count() + 2 > area.width as usize {
        spans = tabs(true);
    }
    let left = width(&spans);
    let room = (area.width as usize).saturating_sub(left + 2);
    if !right.is_empty() && room > 4 {
        let r = text::fit(&right, room, app.theme.ascii);
        let pad = room - r.chars().count();
        spans.push(Span::raw(" ".repeat(pad + 1)));
        spans.push(Span::styled(r, t.warn()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_keybar(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    let mut spans = Vec::new();
    let mut used = 0usize;
    for b in keys::bindings_for(app).into_iter().filter(|b| b.bar) {
        let label = keys::label(b, t.ascii);
        let short = b.short;
        let w = label.chars().count() + short.chars().count() + 3;
        if used + w > area.width as usize {
            break;
        }
        used += w;
        spans.push(Span::styled(format!(" {label}"), t.key()));
        spans.push(Span::raw(format!(" {short} ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_log(f: &mut Frame, area: Rect, app: &App) {
    let h = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> =
        app.log.iter().skip(app.log.len().saturating_sub(h)).map(|l| Line::raw(l.as_str())).collect();
    f.render_widget(Paragraph::new(lines).block(block(app, "Log")), area);
}

/// A line "label: value" with the label dimmed.
pub(super) fn field<'a>(app: &App, label: &str, value: impl Into<String>) -> Line<'a> {
    Line::from(vec![Span::styled(format!("{label}: "), app.theme.dim()), Span::raw(value.into())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover::rebuild::{Confidence, Kind, State};
    use crate::tui::app::{DestRow, HwRow, ItemRow, JobStatus, Overlay, Preview, SourceRow, VolumeRow};
    use crate::tui::theme::Theme;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn full_app(theme: Theme) -> App {
        let mut a = App::new(theme, "/state".into());
        a.hardware = vec![HwRow { depth: 0, name: "0000:03:00.0".into(), text: "RAID x".into(), ..Default::default() }];
        a.hw_ready = true;
        a.sources =
            vec![SourceRow { path: "/dev/sda".into(), size: 1 << 40, found: vec!["VMFS6 ds".into()], error: None }];
        a.volumes = vec![VolumeRow {
            label: "ds".into(),
            version: "VMFS6".into(),
            error: Some("bad".into()),
            ..Default::default()
        }];
        a.items = vec![ItemRow {
            path: vec!["volumes".into(), "ds".into(), "a-very-long-file-name-of-a-disk-flat.vmdk".into()],
            kind: Kind::File,
            state: State::Deleted,
            confidence: Confidence::Low,
            size: 1 << 30,
            mtime: 1_700_000_000,
            original: Some("/a".into()),
            method: "carved".into(),
            missing: vec!["half of it".into()],
            recoverable: false,
            allocated: Some(1 << 20),
            note: Some("disk 1 GiB".into()),
            extents: vec![],
        }];
        a.browse.cwd = vec!["volumes".into(), "ds".into()];
        crate::tui::update::reload_rows(&mut a, None);
        a.browse.preview = Some(Preview { title: "volumes/ds/a".into(), lines: vec!["x".repeat(300); 50], scroll: 3 });
        a.scan.status = JobStatus::Running;
        a.scan.total = 100;
        a.scan.done = 40;
        a.scan.counts = vec![("fd".into(), 3)];
        a.recover.destinations = vec![DestRow { name: "sdb1".into(), boot_medium: true, ..Default::default() }];
        a.recover.status = JobStatus::Failed("disk full".into());
        a.recover.summary = vec!["a line".into(); 20];
        a.show_log = true;
        for i in 0..30 {
            a.log(format!("log line {i}"));
        }
        a
    }

    /// At 80 columns the background jobs' status is shown whole: the other tabs shrink to numbers.
    #[test]
    fn tab_line_keeps_the_job_status_whole_at_80_columns() {
        let mut app = full_app(Theme { mono: false, ascii: false });
        app.recover.status = JobStatus::Running;
        app.recover.files_done = 12;
        app.recover.files_total = 345;
        app.screen = Screen::Browse;
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|f| draw(f, &app)).unwrap();
        let top: String = (0..80).map(|x| t.backend().buffer()[(x, 0)].symbol().to_string()).collect();
        assert!(top.contains("scan 40% | writing 12/345"), "{top}");
        assert!(top.contains("3 Browse") && top.contains(" 1 2 ") && !top.contains("Hardware"), "{top}");
        // Wide enough: every tab keeps its name.
        let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
        t.draw(|f| draw(f, &app)).unwrap();
        let top: String = (0..160).map(|x| t.backend().buffer()[(x, 0)].symbol().to_string()).collect();
        assert!(top.contains("1 Hardware") && top.contains("scan 40% | writing 12/345"), "{top}");
    }

    /// Every screen and overlay draws at any size, down to a single cell, without a panic.
    #[test]
    fn every_screen_draws_at_any_size() {
        let overlays = [
            None,
            Some(Overlay::Help),
            Some(Overlay::ConfirmQuit),
            Some(Overlay::Preview),
            Some(Overlay::Input { prompt: "p".into(), text: "t".repeat(200), then: crate::tui::app::InputFor::Folder }),
            Some(Overlay::Message("m ".repeat(200))),
        ];
        for theme in [Theme { mono: false, ascii: false }, Theme { mono: true, ascii: true }] {
            let mut app = full_app(theme);
            for (w, h) in [(1, 1), (2, 2), (10, 3), (20, 5), (40, 10), (80, 24), (300, 100)] {
                for s in Screen::ALL {
                    for o in &overlays {
                        app.screen = s;
                        app.overlay = o.clone();
                        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
                        t.draw(|f| draw(f, &app)).unwrap();
                    }
                }
            }
        }
    }
}
