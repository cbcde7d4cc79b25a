//! Colours and borders. Only the 16 ANSI colours are used (a VGA console has no more); a
//! monochrome theme uses bold and reverse only; serial terminals without line drawing get
//! ASCII borders.

use crate::recover::rebuild::{Confidence, State};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;

/// How the screens are painted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub mono: bool,
    pub ascii: bool,
}

/// ASCII borders for terminals without line-drawing characters.
const ASCII: border::Set<'static> = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

impl Theme {
    /// From the environment: `NO_COLOR` or a dumb/vt100-class `TERM` turn colour off, and a
    /// vt100-class `TERM` also turns line drawing off.
    pub fn from_env(force_mono: bool) -> Self {
        let term = std::env::var("TERM").unwrap_or_default();
        let plain_term = matches!(term.as_str(), "" | "dumb" | "vt100" | "vt102" | "vt220" | "ansi-mono");
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self { mono: force_mono || no_color || plain_term, ascii: plain_term }
    }

    fn fg(self, c: Color) -> Style {
        if self.mono { Style::default() } else { Style::default().fg(c) }
    }

    pub fn border(self) -> border::Set<'static> {
        if self.ascii { ASCII } else { border::PLAIN }
    }
    /// The cursor line.
    pub fn selected(self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default().bg(Color::Blue).fg(Color::White).add_modifier(Modifier::BOLD)
        }
    }
    pub fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn tab_active(self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::default().bg(Color::Cyan).fg(Color::Black).add_modifier(Modifier::BOLD)
        }
    }
    pub fn key(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    pub fn dim(self) -> Style {
        if self.mono { Style::default() } else { Style::default().fg(Color::DarkGray) }
    }
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    pub fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn marked(self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }
    /// An item by how it came back.
    pub fn state(self, s: State) -> Style {
        match s {
            State::Live => Style::default(),
            State::Deleted | State::Previous => self.fg(Color::Yellow),
            State::Damaged => self.fg(Color::Red),
            State::Orphaned => self.fg(Color::Magenta),
            State::Carved | State::Regenerated => self.fg(Color::Cyan),
        }
    }
    pub fn confidence(self, c: Confidence) -> Style {
        match c {
            Confidence::High => self.ok(),
            Confidence::Medium => self.fg(Color::Yellow),
            Confidence::Low => self.fg(Color::Red),
        }
    }
}
