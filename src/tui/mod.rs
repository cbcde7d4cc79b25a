//! The terminal UI (ratatui + crossterm): a front end to the library holding no recovery logic.
//!
//! - `app.rs` the state; `event.rs` what flows through the loop; `keys.rs` the key tables;
//! - `update.rs` the decisions; `worker.rs` the jobs, on threads; `hwview.rs` hardware as rows;
//! - `guest.rs` Browse's guest view (a virtual disk's volumes and files): state and decisions;
//! - `view/` the drawing, one file per screen; `text.rs` words; `theme.rs` colours and borders.
//!
//! The loop is generic over the ratatui backend, so tests drive it on a `TestBackend`.

pub mod app;
pub mod event;
pub mod guest;
pub mod hwview;
pub mod keys;
mod logpane;
mod network;
pub mod text;
pub mod theme;
pub mod tree;
pub mod update;
pub mod view;
pub mod worker;

use app::App;
use event::{Command, Event};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event as ct;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;
use worker::Worker;

/// How often the screen is redrawn without input (progress keeps moving).
const TICK: Duration = Duration::from_millis(250);

/// What `vmfs-rescue tui` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    pub worker: worker::Options,
    /// Monochrome even where colours work.
    pub mono: bool,
    /// The log file (the terminal belongs to the UI).
    pub log_file: PathBuf,
}

/// The commands a fresh UI starts with.
pub fn startup() -> Vec<Command> {
    vec![Command::Inventory, Command::OpenSources]
}

/// Run the UI on the terminal until the admin quits.
pub fn run(opts: Options) -> anyhow::Result<()> {
    let pane = logpane::init(&opts.log_file);
    let (tx, rx) = channel();
    let worker = Worker::new(opts.worker.clone(), tx.clone());
    let mut app = App::new(theme::Theme::from_env(opts.mono), opts.worker.state_dir.clone());
    app.log(format!("log file: {}", opts.log_file.display()));
    // ratatui::init enters raw mode and the alternate screen and installs a panic hook that
    // restores the terminal before the panic message prints. A serial line reports no size
    // (0x0): draw 80x24 there, or what COLUMNS and LINES say.
    let mut terminal = match ct_size() {
        Some(_) => ratatui::init(),
        None => {
            let (w, h) = env_size();
            let msg = format!("the terminal reports no size: drawing {w}x{h} (set COLUMNS and LINES to change)");
            tracing::info!("{msg}");
            app.log(msg);
            ratatui::init_with_options(ratatui::TerminalOptions {
                viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, w, h)),
            })
        }
    };
    spawn_input(tx.clone());
    let result = run_loop(&mut terminal, &mut app, &worker, &rx, Some(&pane), startup());
    ratatui::restore();
    result
}

/// The terminal's size, unless it reports none.
fn ct_size() -> Option<(u16, u16)> {
    ratatui::crossterm::terminal::size().ok().filter(|&(w, h)| w > 0 && h > 0)
}

/// COLUMNS x LINES, else 80x24.
fn env_size() -> (u16, u16) {
    let get =
        |k: &str, d: u16| std::env::var(k).ok().and_then(|v| v.parse().ok()).filter(|&v: &u16| v >= 20).unwrap_or(d);
    (get("COLUMNS", 80), get("LINES", 24))
}

/// Keys and resizes from the terminal into the loop's channel.
fn spawn_input(tx: Sender<Event>) {
    std::thread::spawn(move || {
        loop {
            let ev = match ct::read() {
                Ok(ct::Event::Key(k)) if k.kind != ct::KeyEventKind::Release => Event::Key(k),
                Ok(ct::Event::Resize(..)) => Event::Resize,
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
}

/// The loop: draw, wait for one event (or a tick), update, hand commands to the worker.
pub fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    worker: &Worker,
    rx: &Receiver<Event>,
    pane: Option<&logpane::Pane>,
    first: Vec<Command>,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    for c in first {
        worker.submit(c);
    }
    while !app.quit {
        if let Some(p) = pane {
            for l in p.drain() {
                app.log(l);
            }
        }
        terminal.draw(|f| view::draw(f, app))?;
        let ev = match rx.recv_timeout(TICK) {
            Ok(e) => e,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Event::Tick,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        for c in handle(app, ev) {
            worker.submit(c);
        }
    }
    Ok(())
}

/// One event applied to the state; the commands it asks for.
pub fn handle(app: &mut App, ev: Event) -> Vec<Command> {
    match ev {
        Event::Key(k) => keys::action(app, k).map(|a| update::update(app, a)).unwrap_or_default(),
        Event::Job(j) => update::on_job(app, j),
        Event::Resize | Event::Tick => Vec::new(),
    }
}
