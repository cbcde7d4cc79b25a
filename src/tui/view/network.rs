//! Network: the interfaces with their link and addresses, and the exports with the URLs and
//! secret clients need.

use super::{block, field};
use crate::tui::app::{App, ExportState};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let t = app.theme;
    let n = &app.net;
    let nic_h = (n.nics.len().max(1) as u16 + 3).min(8);
    let [nics, web, nbd] =
        Layout::vertical([Constraint::Length(nic_h), Constraint::Min(4), Constraint::Min(4)]).areas(area);
    let title = match (&n.busy, n.appliance) {
        (Some(b), _) => format!("Network interfaces ({b}...)"),
        (None, true) => "Network interfaces (d DHCP, a address)".to_string(),
        (None, false) => "Network interfaces (set by this system)".to_string(),
    };
    if !n.ready {
        f.render_widget(Paragraph::new("Looking for network interfaces...").block(block(app, title)), nics);
    } else if n.nics.is_empty() {
        f.render_widget(
            Paragraph::new("No network interface found: is the NIC's driver missing? See the log (l).")
                .wrap(Wrap { trim: true })
                .block(block(app, title)),
            nics,
        );
    } else {
        let rows: Vec<Row> = n
            .nics
            .iter()
            .map(|c| {
                let (link, style) = match c.link {
                    Some(true) => ("up", t.ok()),
                    Some(false) => ("no cable", t.warn()),
                    None => ("down", t.dim()),
                };
                let addrs = if c.addrs.is_empty() { "no address".to_string() } else { c.addrs.join(" ") };
                Row::new(vec![
                    ratatui::widgets::Cell::from(c.name.clone()),
                    ratatui::widgets::Cell::from(link).style(style),
                    ratatui::widgets::Cell::from(addrs),
                    ratatui::widgets::Cell::from(c.text.clone()),
                ])
            })
            .collect();
        let widths = [Constraint::Length(10), Constraint::Length(9), Constraint::Min(18), Constraint::Min(12)];
        let table = Table::new(rows, widths)
            .header(Row::new(vec!["Interface", "Link", "Addresses", "Driver, MAC, speed"]).style(t.title()))
            .row_highlight_style(t.selected())
            .block(block(app, title));
        let mut st = TableState::default().with_selected(Some(n.cursor));
        f.render_stateful_widget(table, nics, &mut st);
    }
    let web_title = if n.web_tls { "Web export, HTTPS (h or t: on/off)" } else { "Web export (h: HTTP, t: HTTPS)" };
    export(f, web, app, web_title, &n.web, "browse the volumes, download files and whole disks (curl -C - resumes)");
    export(f, nbd, app, "NBD export (n: on/off)", &n.nbd, "the virtual disks for qemu-img convert, nbdinfo, nbdcopy");
}

fn export(f: &mut Frame, area: Rect, app: &App, title: &str, s: &ExportState, what: &str) {
    let t = app.theme;
    let lines: Vec<Line> = match s {
        ExportState::Off => vec![Line::styled(format!("off: {what}"), t.dim())],
        ExportState::Starting => vec![Line::styled("starting...", t.warn())],
        ExportState::Failed(e) => vec![Line::styled(format!("failed: {e}"), t.error())],
        ExportState::On(l) => l
            .iter()
            .map(|x| match x.split_once(": ") {
                Some((k, v)) if !k.contains(' ') || k.starts_with("a ") => field(app, k, v.to_string()),
                _ => Line::raw(x.clone()),
            })
            .collect(),
    };
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block(app, title)), area);
}
