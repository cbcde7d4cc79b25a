//! Keys are data: one table per screen maps keys to actions, and the same tables print the key
//! bar and the `?` help.

use super::app::{App, Overlay, Screen};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    ToggleLog,
    Go(Screen),
    NextScreen,
    PrevScreen,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    /// Enter: open a folder, preview a file, browse a volume, choose a destination.
    Open,
    Back,
    Mark,
    MarkAll,
    /// Go to Recover with what is marked.
    RecoverMarked,
    StartScan,
    PauseScan,
    StopScan,
    /// Rebuild the catalogue from the findings so far.
    Refresh,
    TypeDest,
    /// Network: DHCP on the interface under the cursor.
    Dhcp,
    /// Network: type an address for the interface under the cursor.
    TypeAddress,
    /// Network: the web export on or off (with TLS or without).
    ToggleWeb {
        tls: bool,
    },
    ToggleNbd,
    StartRecover,
    StopRecover,
    /// Browse: open the virtual disk under the cursor in the guest view.
    OpenGuest,
    /// Leave the guest view.
    LeaveGuest,
    // Inside overlays.
    Yes,
    No,
    Close,
    Char(char),
    Erase,
    Submit,
}

/// One key binding: the keys, how the key bar names them, what they do.
pub struct Binding {
    pub keys: &'static [KeyCode],
    pub label: &'static str,
    /// The key bar's word.
    pub short: &'static str,
    /// The help's sentence.
    pub what: &'static str,
    pub action: Action,
    /// Shown in the key bar (the rest only in the help).
    pub bar: bool,
}

const fn b(keys: &'static [KeyCode], label: &'static str, what: &'static str, action: Action, bar: bool) -> Binding {
    Binding { keys, label, short: what, what, action, bar }
}

/// A binding shown in the key bar under a shorter word than in the help.
const fn k(
    keys: &'static [KeyCode],
    label: &'static str,
    short: &'static str,
    what: &'static str,
    action: Action,
) -> Binding {
    Binding { keys, label, short, what, action, bar: true }
}

use KeyCode::{Backspace, Char, Down, End, Enter, Esc, F, Home, Left, PageDown, PageUp, Right, Up};

const MOVE: [Binding; 4] = [
    k(&[Up, Char('k')], "↑↓", "move", "move up (also k)", Action::Up),
    b(&[Down, Char('j')], "↓", "move down (also j)", Action::Down, false),
    b(&[PageUp], "PgUp", "page up", Action::PageUp, false),
    b(&[PageDown], "PgDn", "page down", Action::PageDown, false),
];
const ENDS: [Binding; 2] =
    [b(&[Home], "Home", "first line", Action::Home, false), b(&[End], "End", "last line", Action::End, false)];

const HARDWARE: &[Binding] =
    &[k(&[Char('r'), F(5)], "r", "refresh", "look for controllers and disks again", Action::Refresh)];
const SOURCES: &[Binding] = &[
    k(&[Enter], "Enter", "browse", "browse the volume", Action::Open),
    k(&[Char('s')], "s", "deep scan", "deep scan: finds deleted and lost files, disks and volumes", Action::StartScan),
];
const BROWSE: &[Binding] = &[
    k(&[Enter, Right], "Enter", "open", "open a folder / preview a file", Action::Open),
    k(&[Backspace, Left], "Bksp", "up", "up one folder", Action::Back),
    k(&[Char(' ')], "Space", "mark", "mark / unmark (a disk descriptor marks its extents too)", Action::Mark),
    b(&[Char('a')], "a", "mark / unmark everything here", Action::MarkAll, false),
    k(&[Char('r')], "r", "recover", "recover what is marked (or the line under the cursor)", Action::RecoverMarked),
    k(&[Char('g')], "g", "guest", "guest files: the partitions and files inside this virtual disk", Action::OpenGuest),
    b(&[F(5)], "F5", "refresh with what the scan found so far", Action::Refresh, false),
];
/// Browse with a virtual disk opened (the guest view).
const GUEST: &[Binding] = &[
    k(&[Enter, Right], "Enter", "open", "open a volume or folder / preview a file", Action::Open),
    k(&[Backspace, Left], "Bksp", "up", "up one folder (from the volumes: back to Browse)", Action::Back),
    k(&[Char(' ')], "Space", "mark", "mark / unmark a file or folder", Action::Mark),
    b(&[Char('a')], "a", "mark / unmark everything here", Action::MarkAll, false),
    k(
        &[Char('r')],
        "r",
        "extract",
        "extract what is marked (or the line under the cursor) to the Recover screen's destination",
        Action::RecoverMarked,
    ),
    b(&[Char('x')], "x", "stop extracting (finished files are kept)", Action::StopRecover, false),
    k(&[Esc, Char('g')], "Esc", "close", "close the disk: back to Browse", Action::LeaveGuest),
];
const SCAN: &[Binding] = &[
    k(&[Char('s')], "s", "start", "start or resume the scan", Action::StartScan),
    k(&[Char('p')], "p", "pause", "pause / continue", Action::PauseScan),
    k(&[Char('x')], "x", "stop", "stop (s resumes it later, even after a restart)", Action::StopScan),
    k(&[Char('b'), F(5)], "b", "browse", "browse what was found so far", Action::Refresh),
];
const RECOVER: &[Binding] = &[
    k(&[Enter], "Enter", "choose", "write to this disk (it is mounted for you)", Action::Open),
    k(&[Char('t')], "t", "folder", "type the folder to write to", Action::TypeDest),
    k(&[Char('s')], "s", "start", "start writing the marked files", Action::StartRecover),
    k(&[Char('x')], "x", "stop", "stop writing (finished files are kept)", Action::StopRecover),
    b(&[Char('r'), F(5)], "r", "look for destinations again", Action::Refresh, false),
];
const NETWORK: &[Binding] = &[
    k(&[Char('d')], "d", "DHCP", "get an address by DHCP on this interface (rescue image)", Action::Dhcp),
    k(&[Char('a')], "a", "address", "type an address: IP/PREFIX[,GATEWAY[,DNS]] (rescue image)", Action::TypeAddress),
    k(
        &[Char('h')],
        "h",
        "web",
        "web export on / off: browse and download files and disks",
        Action::ToggleWeb { tls: false },
    ),
    b(
        &[Char('t')],
        "t",
        "the web export with TLS (HTTPS, self-signed) on / off",
        Action::ToggleWeb { tls: true },
        false,
    ),
    k(&[Char('n')], "n", "NBD", "NBD export of the virtual disks on / off (qemu-img convert)", Action::ToggleNbd),
    b(&[Char('r'), F(5)], "r", "list the interfaces again", Action::Refresh, false),
];
const GLOBAL: &[Binding] = &[
    b(&[KeyCode::Tab], "Tab", "next screen (or 1-6)", Action::NextScreen, false),
    b(&[KeyCode::BackTab], "S-Tab", "previous screen", Action::PrevScreen, false),
    b(&[Char('1')], "1", "Hardware", Action::Go(Screen::Hardware), false),
    b(&[Char('2')], "2", "Sources", Action::Go(Screen::Sources), false),
    b(&[Char('3')], "3", "Browse", Action::Go(Screen::Browse), false),
    b(&[Char('4')], "4", "Scan", Action::Go(Screen::Scan), false),
    b(&[Char('5')], "5", "Recover", Action::Go(Screen::Recover), false),
    b(&[Char('6')], "6", "Network", Action::Go(Screen::Network), false),
    b(&[Char('l')], "l", "show / hide the log", Action::ToggleLog, false),
    k(&[Char('?'), F(1)], "?", "help", "this help", Action::Help),
    k(&[Char('q')], "q", "quit", "quit (asks first while a job runs)", Action::Quit),
];

/// How a binding's keys are printed: arrows spelled out where line drawing is off.
pub fn label(b: &Binding, ascii: bool) -> String {
    if ascii { b.label.replace("↑↓", "Up/Dn").replace('↓', "Down") } else { b.label.to_string() }
}

/// The bindings of `screen` (moves first), then the global ones.
pub fn bindings(screen: Screen) -> Vec<&'static Binding> {
    let own: &[Binding] = match screen {
        Screen::Hardware => HARDWARE,
        Screen::Sources => SOURCES,
        Screen::Browse => BROWSE,
        Screen::Scan => SCAN,
        Screen::Recover => RECOVER,
        Screen::Network => NETWORK,
    };
    let moves = !matches!(screen, Screen::Scan);
    let mut v: Vec<&Binding> = Vec::new();
    if moves {
        v.extend(MOVE.iter().chain(ENDS.iter()));
    }
    v.extend(own.iter());
    v.extend(GLOBAL.iter());
    v
}

/// The bindings in force in `app`: those of its screen, or of the guest view when it is open.
pub fn bindings_for(app: &App) -> Vec<&'static Binding> {
    if app.screen != Screen::Browse || app.guest.is_none() {
        return bindings(app.screen);
    }
    MOVE.iter().chain(ENDS.iter()).chain(GUEST.iter()).chain(GLOBAL.iter()).collect()
}

/// The action `key` means in `app`'s current screen and overlay.
pub fn action(app: &App, key: KeyEvent) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == Char('c') {
        return Some(Action::Quit);
    }
    match &app.overlay {
        Some(Overlay::Input { .. }) => {
            return match key.code {
                Enter => Some(Action::Submit),
                Esc => Some(Action::Close),
                Backspace => Some(Action::Erase),
                Char(c) => Some(Action::Char(c)),
                _ => None,
            };
        }
        Some(Overlay::Confirm { .. } | Overlay::ConfirmQuit) => {
            return match key.code {
                Char('y' | 'Y') => Some(Action::Yes),
                Char('n' | 'N') | Esc => Some(Action::No),
                _ => None,
            };
        }
        Some(Overlay::Preview) => {
            return match key.code {
                Up | Char('k') => Some(Action::Up),
                Down | Char('j') => Some(Action::Down),
                PageUp => Some(Action::PageUp),
                PageDown | Char(' ') => Some(Action::PageDown),
                Home => Some(Action::Home),
                End => Some(Action::End),
                _ => Some(Action::Close),
            };
        }
        Some(Overlay::Help | Overlay::Message(_)) => return Some(Action::Close),
        None => {}
    }
    bindings_for(app).into_iter().find(|b| b.keys.contains(&key.code)).map(|b| b.action)
}
