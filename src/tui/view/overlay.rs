//! Windows over the screen: help, preview, questions, messages, typed input.

use super::block;
use crate::tui::app::{App, Overlay, Screen};
use crate::tui::keys;
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// What each screen is for, first in its help.
fn intro(s: Screen) -> &'static str {
    match s {
        Screen::Hardware => {
            "The storage controllers (HBAs) and the disks behind them. Every disk is read-only; the boot medium is never read as a source."
        }
        Screen::Sources => {
            "The disks and images being read, and the VMFS volumes found on them. Enter browses a volume; s starts a deep scan when a volume is missing, damaged, or files were deleted."
        }
        Screen::Browse => {
            "Files and folders: live ones, and after a scan deleted, orphaned and older (formatted-over) ones with how sure the recovery is. Mark with Space, then r to recover."
        }
        Screen::Scan => {
            "The deep scan reads every byte once at disk speed and records what it finds. It can be paused, stopped and resumed; Browse shows its findings while it runs (b)."
        }
        Screen::Recover => {
            "Pick where the files go: a disk's file system (mounted read-write for you) or a folder. Sources are never written. s starts; finished files are kept if it stops."
        }
        Screen::Network => {
            "Send what is found over the network: an address for a network card (on the rescue image), then a web export (browser, curl) or an NBD export of the virtual disks (qemu-img convert on a KVM host). Clients need the secret shown; everything is read-only."
        }
    }
}

/// The guest view's help intro.
const GUEST_INTRO: &str = "The partitions and files inside a virtual disk, read through its snapshot chain without writing. Deleted entries show how sure their content is. Mark with Space, then r extracts to the Recover screen's destination (with a manifest keeping the original names).";

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))]).flex(Flex::Center).areas(area);
    let [r] = Layout::vertical([Constraint::Length(h.min(area.height))]).flex(Flex::Center).areas(r);
    r
}

pub fn draw(f: &mut Frame, body: Rect, app: &App) {
    let Some(o) = &app.overlay else { return };
    let t = app.theme;
    match o {
        Overlay::Help => {
            let area = centered(body, body.width.saturating_sub(4).min(76), body.height);
            let guest = app.screen == Screen::Browse && app.guest.is_some();
            let intro = if guest { GUEST_INTRO } else { intro(app.screen) };
            let mut lines = vec![Line::raw(intro), Line::raw("")];
            for b in keys::bindings_for(app) {
                let label = keys::label(b, t.ascii);
                lines.push(Line::from(vec![Span::styled(format!("{label:>7}  "), t.key()), Span::raw(b.what)]));
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled("any key closes this help", t.dim()));
            f.render_widget(Clear, area);
            let title =
                if guest { "Help: Browse, guest files".into() } else { format!("Help: {}", app.screen.title()) };
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block(app, title)), area);
        }
        Overlay::Preview => {
            let Some(p) = &app.browse.preview else { return };
            f.render_widget(Clear, body);
            let h = body.height.saturating_sub(2) as usize;
            let lines: Vec<Line> = p.lines.iter().skip(p.scroll).take(h).map(|l| Line::raw(l.as_str())).collect();
            let title = format!(
                "{} (Esc closes)",
                crate::tui::text::fit(&p.title, (body.width as usize).saturating_sub(18), t.ascii)
            );
            f.render_widget(Paragraph::new(lines).block(block(app, title)), body);
        }
        Overlay::ConfirmQuit => {
            question(
                f,
                body,
                app,
                "Quit?",
                "A job is running. Quit anyway? A scan resumes next time; finished files are kept. (y/n)",
            );
        }
        Overlay::Confirm { question: q, .. } => question(f, body, app, "Are you sure?", &format!("{q} (y/n)")),
        Overlay::Message(m) => question(f, body, app, "Note", &format!("{m}\n\n(any key)")),
        Overlay::Input { prompt, text, .. } => {
            let area = centered(body, body.width.saturating_sub(4).min(70), 5);
            f.render_widget(Clear, area);
            let cursor = if t.ascii { "_" } else { "▏" };
            let lines =
                vec![Line::raw(prompt.as_str()), Line::from(vec![Span::styled(format!("{text}{cursor}"), t.key())])];
            f.render_widget(Paragraph::new(lines).block(block(app, "Enter accepts, Esc cancels")), area);
        }
    }
}

fn question(f: &mut Frame, body: Rect, app: &App, title: &str, text: &str) {
    let w = body.width.saturating_sub(4).min(64);
    let inner = w.saturating_sub(2).max(1) as usize;
    let h = text.lines().map(|l| l.chars().count().div_ceil(inner).max(1)).sum::<usize>() as u16 + 2;
    let area = centered(body, w, h);
    f.render_widget(Clear, area);
    f.render_widget(Paragraph::new(text.to_string()).wrap(Wrap { trim: false }).block(block(app, title)), area);
}
