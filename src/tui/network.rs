//! The Network screen's decisions: addresses for the interfaces (on the rescue image), and the
//! web and NBD exports on or off. The worker does the work (`worker/net.rs`).

use super::app::{App, ExportKind, ExportState, InputFor, Overlay};
use super::event::{Command, JobEvent};
use super::keys::Action;

pub fn act(app: &mut App, action: Action) -> Vec<Command> {
    let nic = app.net.nics.get(app.net.cursor).map(|n| n.name.clone());
    match action {
        Action::Dhcp | Action::TypeAddress => {
            let Some(nic) = nic else {
                app.overlay = Some(Overlay::Message("No network interface: is the NIC's driver missing?".into()));
                return vec![];
            };
            if !app.net.appliance {
                app.overlay = Some(Overlay::Message(
                    "This is not the rescue image: set the network with this system's own tools, then press r.".into(),
                ));
                return vec![];
            }
            if action == Action::Dhcp {
                return set_address(app, nic, "dhcp".into());
            }
            app.overlay = Some(Overlay::Input {
                prompt: format!("Address for {nic}: IP/PREFIX[,GATEWAY[,DNS]], e.g. 192.168.1.50/24,192.168.1.1"),
                text: String::new(),
                then: InputFor::Address(nic),
            });
        }
        Action::ToggleWeb { tls } => {
            let Some((next, on)) = app.net.web.toggled() else { return vec![] };
            if on && app.items.is_empty() {
                app.overlay = Some(Overlay::Message("Nothing to serve yet: no volume is open.".into()));
                return vec![];
            }
            app.net.web = next;
            let kind = ExportKind::Web { tls: if on { tls } else { app.net.web_tls } };
            app.net.web_tls = tls && on;
            return vec![Command::Export { kind, on }];
        }
        Action::ToggleNbd => {
            let Some((next, on)) = app.net.nbd.toggled() else { return vec![] };
            app.net.nbd = next;
            return vec![Command::Export { kind: ExportKind::Nbd, on }];
        }
        _ => {}
    }
    vec![]
}

/// Ask the worker to set `nic`'s address (`dhcp` or a static one).
pub fn set_address(app: &mut App, nic: String, spec: String) -> Vec<Command> {
    if app.net.busy.is_some() {
        app.overlay = Some(Overlay::Message("A network change is already under way.".into()));
        return vec![];
    }
    app.net.busy = Some(if spec == "dhcp" { format!("DHCP on {nic}") } else { format!("setting {nic} to {spec}") });
    vec![Command::SetAddress { nic, spec }]
}

pub fn on_job(app: &mut App, ev: JobEvent) -> Vec<Command> {
    match ev {
        JobEvent::Nics { rows, appliance } => {
            app.net.nics = rows;
            app.net.appliance = appliance;
            app.net.ready = true;
            app.net.cursor = app.net.cursor.min(app.net.nics.len().saturating_sub(1));
        }
        JobEvent::NetSetup(r) => {
            app.net.busy = None;
            match r {
                Ok(done) => app.log(done),
                Err(e) => {
                    app.log(format!("network: {e}"));
                    app.overlay = Some(Overlay::Message(format!("The network setup failed: {e}")));
                }
            }
            // The addresses changed (or not): list them again.
            return vec![Command::Nics];
        }
        JobEvent::Export { kind, state } => {
            if let ExportState::Failed(e) = &state {
                app.log(format!("export: {e}"));
            }
            match kind {
                ExportKind::Web { .. } => app.net.web = state,
                ExportKind::Nbd => app.net.nbd = state,
            }
        }
        _ => {}
    }
    vec![]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::NicRow;
    use crate::tui::theme::Theme;
    use crate::tui::update::{on_job as job, update};

    fn app() -> App {
        let mut a = App::new(Theme { mono: true, ascii: true }, "/tmp/s".into());
        a.screen = crate::tui::app::Screen::Network;
        job(
            &mut a,
            JobEvent::Nics { rows: vec![NicRow { name: "eth0".into(), ..NicRow::default() }], appliance: true },
        );
        a
    }

    #[test]
    fn dhcp_and_typed_addresses_go_to_the_worker_once() {
        let mut a = app();
        assert_eq!(update(&mut a, Action::Dhcp), [Command::SetAddress { nic: "eth0".into(), spec: "dhcp".into() }]);
        // A second change while one runs is refused.
        assert!(update(&mut a, Action::Dhcp).is_empty());
        assert!(matches!(a.overlay, Some(Overlay::Message(_))));
        update(&mut a, Action::Close);
        assert_eq!(job(&mut a, JobEvent::NetSetup(Ok("eth0: address from DHCP".into()))), [Command::Nics]);
        update(&mut a, Action::TypeAddress);
        for c in "10.0.0.9/24".chars() {
            update(&mut a, Action::Char(c));
        }
        assert_eq!(
            update(&mut a, Action::Submit),
            [Command::SetAddress { nic: "eth0".into(), spec: "10.0.0.9/24".into() }]
        );
    }

    #[test]
    fn addresses_are_only_set_on_the_rescue_image() {
        let mut a = app();
        a.net.appliance = false;
        assert!(update(&mut a, Action::Dhcp).is_empty());
        assert!(matches!(&a.overlay, Some(Overlay::Message(m)) if m.contains("not the rescue image")));
    }

    #[test]
    fn exports_toggle() {
        let mut a = app();
        assert_eq!(update(&mut a, Action::ToggleNbd), [Command::Export { kind: ExportKind::Nbd, on: true }]);
        assert_eq!(a.net.nbd, ExportState::Starting);
        // Pressed again while starting: nothing.
        assert!(update(&mut a, Action::ToggleNbd).is_empty());
        job(&mut a, JobEvent::Export { kind: ExportKind::Nbd, state: ExportState::On(vec!["nbd://x".into()]) });
        assert_eq!(update(&mut a, Action::ToggleNbd), [Command::Export { kind: ExportKind::Nbd, on: false }]);
        assert_eq!(a.net.nbd, ExportState::Off);
        // The web export needs something open.
        assert!(update(&mut a, Action::ToggleWeb { tls: true }).is_empty());
        a.overlay = None;
        a.items.push(crate::tui::app::ItemRow::new(
            "volumes/ds/x",
            crate::recover::rebuild::Kind::File,
            crate::recover::rebuild::State::Live,
            1,
        ));
        assert_eq!(
            update(&mut a, Action::ToggleWeb { tls: true }),
            [Command::Export { kind: ExportKind::Web { tls: true }, on: true }]
        );
        job(&mut a, JobEvent::Export { kind: ExportKind::Web { tls: true }, state: ExportState::On(vec![]) });
        assert_eq!(
            update(&mut a, Action::ToggleWeb { tls: false }),
            [Command::Export { kind: ExportKind::Web { tls: true }, on: false }]
        );
    }
}
