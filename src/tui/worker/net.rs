//! The worker's network part: interfaces listed and set up, and the web and NBD exports of the
//! volumes and disks the catalogue holds, started and stopped on request.

use super::{Worker, lock};
use crate::hw;
use crate::net::Secret;
use crate::net::http::{HttpConfig, HttpLimits, HttpServer, HttpStop, HttpVolume, name_volumes, pct, tls::TlsIdentity};
use crate::net::nbd::{Limits, NbdExport, NbdServer, StopHandle};
use crate::recover::rebuild::{Catalog, Kind, State};
use crate::tui::app::{ExportKind, ExportState, NicRow};
use crate::tui::event::JobEvent;
use crate::tui::text;
use crate::vdisk::{self, VmfsFiles, chain::is_extent_name};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The running exports and their one secret (shown on the screen, the same for both).
#[derive(Default)]
pub(super) struct Exports {
    secret: Option<Secret>,
    web: Option<HttpStop>,
    nbd: Option<StopHandle>,
}

impl Worker {
    pub(super) fn nics(&self) {
        let mut v = hw::net::nics_at(&self.sh.opts.roots);
        hw::net::add_addresses(&mut v);
        let rows = v.iter().map(nic_row).collect();
        self.send(JobEvent::Nics { rows, appliance: hw::net::on_appliance(&self.sh.opts.roots) });
    }

    pub(super) fn set_address(&self, nic: &str, spec: &str) {
        let r = hw::net::parse_setup(spec)
            .and_then(|s| hw::net::configure(&self.sh.opts.roots, nic, &s))
            .map_err(|e| e.to_string());
        self.send(JobEvent::NetSetup(r));
    }

    pub(super) fn export(&self, kind: ExportKind, on: bool) {
        // Whatever runs of this kind stops first (a restart with or without TLS).
        {
            let mut ex = lock(&self.sh.exports);
            match kind {
                ExportKind::Web { .. } => ex.web.take().map(|s| s.stop()),
                ExportKind::Nbd => ex.nbd.take().map(|s| s.stop()),
            };
        }
        if !on {
            self.send(JobEvent::Log(format!("{} export stopped", name(kind))));
            self.send(JobEvent::Export { kind, state: ExportState::Off });
            return;
        }
        let state = match self.start(kind) {
            Ok(lines) => {
                self.send(JobEvent::Log(format!("{} export started", name(kind))));
                ExportState::On(lines)
            }
            Err(e) => ExportState::Failed(format!("{e:#}")),
        };
        self.send(JobEvent::Export { kind, state });
    }

    fn start(&self, kind: ExportKind) -> anyhow::Result<Vec<String>> {
        let cat = lock(&self.sh.data).catalog.clone();
        let Some(cat) = cat else { anyhow::bail!("no volume is open yet") };
        let secret = {
            let mut ex = lock(&self.sh.exports);
            match &ex.secret {
                Some(s) => s.clone(),
                None => ex.secret.insert(Secret::generate()?).clone(),
            }
        };
        let mut nics = hw::net::nics_at(&self.sh.opts.roots);
        hw::net::add_addresses(&mut nics);
        let mut hosts = hosts(&nics);
        if hosts.is_empty() {
            // No address yet: the URLs are shown with a placeholder to replace.
            hosts.push("THIS-HOST".into());
        }
        match kind {
            ExportKind::Web { tls } => self.start_web(&cat, secret, tls, &hosts),
            ExportKind::Nbd => self.start_nbd(&cat, secret, &hosts),
        }
    }

    fn start_web(&self, cat: &Catalog, secret: Secret, tls: bool, hosts: &[String]) -> anyhow::Result<Vec<String>> {
        let mut volumes: Vec<HttpVolume> = cat
            .volumes
            .iter()
            .map(|v| HttpVolume { name: v.name.clone(), fs: Arc::clone(&v.fs), root: "/".into() })
            .collect();
        name_volumes(&mut volumes);
        anyhow::ensure!(!volumes.is_empty(), "no readable VMFS volume to serve");
        let first = volumes[0].name.clone();
        let identity = if tls {
            let mut names = vec!["localhost".to_string()];
            names.extend(hosts.iter().cloned());
            Some(TlsIdentity::generate(names)?)
        } else {
            None
        };
        let (fingerprint, pin) = identity.as_ref().map(|i| (i.fingerprint.clone(), i.pubkey_pin.clone())).unzip();
        let config = HttpConfig { volumes, secret: secret.clone(), tls: identity, limits: HttpLimits::default() };
        let ports = self.sh.opts.ports;
        let port = if tls { ports.https } else { ports.http };
        let server = HttpServer::bind(default_addr(port), config)?;
        let port = server.local_addr()?.port();
        lock(&self.sh.exports).web = Some(server.stop_handle()?);
        spawn("tui-http", move || server.run().map_err(|e| e.to_string()), self.clone(), ExportKind::Web { tls });
        let s = secret.expose();
        let scheme = if tls { "https" } else { "http" };
        let mut lines = vec![format!("secret: {s}")];
        lines.extend(hosts.iter().map(|h| format!("browse: {scheme}://{h}:{port}/?token={s}")));
        let h = hosts.first().map_or("THIS-HOST", String::as_str);
        let curl = match &pin {
            Some(p) => format!("curl -k --pinnedpubkey 'sha256//{p}'"),
            None => "curl".into(),
        };
        lines.push(format!(
            "a file: {curl} -C - -O -H 'Authorization: Bearer {s}' '{scheme}://{h}:{port}/files/{}/PATH'",
            pct(&first)
        ));
        lines.push(format!(
            "a disk: {curl} -C - -o DISK.raw -H 'Authorization: Bearer {s}' '{scheme}://{h}:{port}/disk/{}/VM/DISK.vmdk'",
            pct(&first)
        ));
        lines.push(format!(
            "a guest file: {curl} -C - -O -H 'Authorization: Bearer {s}' '{scheme}://{h}:{port}/guest/{}/VM/DISK.vmdk/1/PATH'",
            pct(&first)
        ));
        if let Some(f) = fingerprint {
            lines.push(format!("certificate SHA-256: {f}"));
        }
        Ok(lines)
    }

    fn start_nbd(&self, cat: &Catalog, secret: Secret, hosts: &[String]) -> anyhow::Result<Vec<String>> {
        let mut exports = Vec::new();
        for v in cat.volumes.iter().filter(|v| !v.previous) {
            let files = VmfsFiles(Arc::clone(&v.fs));
            for it in &cat.items {
                let in_volume = it.path.len() > 2 && it.path[0] == "volumes" && it.path[1] == v.name;
                let Some(orig) = it.original.as_deref().filter(|_| in_volume) else { continue };
                let file = orig.rsplit('/').next().unwrap_or(orig);
                if it.kind != Kind::File || it.state != State::Live || !file.ends_with(".vmdk") || is_extent_name(file)
                {
                    continue;
                }
                match vdisk::open(&files, orig) {
                    Ok(d) => {
                        let name = format!("{}{orig}", v.name.replace('/', "_"));
                        exports.push(NbdExport { name, disk: Arc::new(d) });
                    }
                    Err(e) => self.send(JobEvent::Log(format!("NBD: {orig} not exported: {e}"))),
                }
            }
        }
        anyhow::ensure!(!exports.is_empty(), "no virtual disk on the open volumes");
        let shown: Vec<(String, u64)> = exports.iter().map(|e| (e.name.clone(), e.disk.len())).collect();
        let server = NbdServer::bind(default_addr(self.sh.opts.ports.nbd), exports, secret.clone(), Limits::default())?;
        let port = server.local_addr()?.port();
        lock(&self.sh.exports).nbd = Some(server.stop_handle()?);
        spawn("tui-nbd", move || server.run().map_err(|e| e.to_string()), self.clone(), ExportKind::Nbd);
        let s = secret.expose();
        let h = hosts.first().map_or("THIS-HOST", String::as_str);
        let mut lines = vec![format!("secret: {s} (export names are SECRET/DISK; never listed to clients)")];
        for (name, size) in &shown {
            lines.push(format!("nbd://{h}:{port}/{s}/{}  ({})", pct(name), text::size(*size)));
        }
        if let Some((name, _)) = shown.first() {
            let out = name.rsplit('/').next().unwrap_or(name).trim_end_matches(".vmdk");
            lines.push(format!("qemu-img convert -p -O qcow2 'nbd://{h}:{port}/{s}/{}' {out}.qcow2", pct(name)));
        }
        Ok(lines)
    }
}

fn default_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

/// Run a server on a thread; a failure is reported as that export's state.
fn spawn(name: &str, run: impl FnOnce() -> Result<(), String> + Send + 'static, w: Worker, kind: ExportKind) {
    let _ = std::thread::Builder::new().name(name.into()).spawn(move || {
        if let Err(e) = run() {
            w.send(JobEvent::Export { kind, state: ExportState::Failed(e) });
        }
    });
}

fn name(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::Web { tls: false } => "HTTP",
        ExportKind::Web { tls: true } => "HTTPS",
        ExportKind::Nbd => "NBD",
    }
}

/// The addresses clients can use: every IPv4 address of the interfaces.
fn hosts(nics: &[hw::net::Nic]) -> Vec<String> {
    nics.iter()
        .flat_map(|n| &n.addrs)
        .filter_map(|a| a.split_once('/').map(|(ip, _)| ip))
        .filter(|ip| ip.parse::<Ipv4Addr>().is_ok())
        .map(String::from)
        .collect()
}

fn nic_row(n: &hw::net::Nic) -> NicRow {
    let mut text = vec![if n.driver.is_empty() { "virtual".to_string() } else { n.driver.clone() }];
    if !n.mac.is_empty() {
        text.push(n.mac.clone());
    }
    if let Some(s) = n.speed_mbps {
        text.push(if s >= 1000 { format!("{} Gb/s", s / 1000) } else { format!("{s} Mb/s") });
    }
    NicRow { name: n.name.clone(), text: text.join("  "), link: n.carrier, addrs: n.addrs.clone() }
}
