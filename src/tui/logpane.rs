//! Logging while the UI owns the terminal: everything to a file, warnings and up also to the
//! log pane.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Lines waiting for the log pane.
#[derive(Clone, Default)]
pub struct Pane(Arc<Mutex<VecDeque<String>>>);

impl Pane {
    /// Take the waiting lines.
    pub fn drain(&self) -> Vec<String> {
        self.0.lock().map(|mut q| q.drain(..).collect()).unwrap_or_default()
    }
}

struct PaneLayer(Pane);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for PaneLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Message(format!("{}: ", event.metadata().level().as_str().to_lowercase()));
        event.record(&mut m);
        if let Ok(mut q) = (self.0).0.lock() {
            // Bounded: nobody drains the pane while the UI is not drawing.
            if q.len() < 1000 {
                q.push_back(m.0);
            }
        }
    }
}

/// Install the file log and the pane; returns the pane.
pub fn init(file: &Path) -> Pane {
    let pane = Pane::default();
    let file_layer = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .ok()
        .map(|f| fmt::layer().with_writer(Mutex::new(f)).with_ansi(false).with_filter(EnvFilter::new("debug")));
    let pane_layer = PaneLayer(pane.clone()).with_filter(EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry().with(file_layer).with(pane_layer).try_init();
    pane
}
