//! `vmfs-rescue serve http|nbd`: open what to serve, print the URLs and commands with the
//! secret, and run the library's server until interrupted.

use super::args::{Select, ServeCommand, ServeNet};
use super::{Outcome, UsageError, open_selected};
use anyhow::{Result, bail};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use vmfs_rescue::block::Source;
use vmfs_rescue::net::Secret;
use vmfs_rescue::net::http::{HttpConfig, HttpLimits, HttpServer, HttpVolume, name_volumes, pct, tls::TlsIdentity};
use vmfs_rescue::net::nbd::{Limits, NbdExport, NbdServer};
use vmfs_rescue::vdisk::{self, LocalFiles, VmfsFiles, files::local_path};

pub fn run(c: ServeCommand) -> Result<Outcome> {
    match c {
        ServeCommand::Http { sources, path, volume, tls, net } => http(sources, path, volume, tls, net),
        ServeCommand::Nbd { sources, path, volume, net } => nbd(sources, path, volume, net),
    }
}

fn secret(net: &ServeNet) -> Result<Secret> {
    Ok(match &net.secret {
        Some(s) => Secret::from_user(s).map_err(|e| UsageError(e.to_string()))?,
        None => Secret::generate()?,
    })
}

/// The host names to print in URLs: the listen address, or every address of this host's
/// interfaces that are up (loopback last) when listening on all of them.
fn hosts(addr: &SocketAddr) -> Vec<String> {
    let fmt = |ip: IpAddr| if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() };
    if !addr.ip().is_unspecified() {
        return vec![fmt(addr.ip())];
    }
    let mut v: Vec<IpAddr> = Vec::new();
    if let Ok(ifs) = nix::ifaddrs::getifaddrs() {
        for i in ifs {
            let Some(a) = i.address else { continue };
            let ip = match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Some(v4), _) => IpAddr::V4(v4.ip()),
                (_, Some(v6)) if addr.is_ipv6() && !v6.ip().is_unicast_link_local() => IpAddr::V6(v6.ip()),
                _ => continue,
            };
            if !v.contains(&ip) {
                v.push(ip);
            }
        }
    }
    v.sort_by_key(|ip| ip.is_loopback());
    if v.is_empty() {
        v.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    v.into_iter().map(fmt).collect()
}

fn listen(net: &ServeNet, port: u16) -> SocketAddr {
    net.listen.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
}

fn flush() {
    let _ = std::io::stdout().flush();
}

fn nbd(sources: Vec<std::path::PathBuf>, paths: Vec<String>, volume: Option<String>, net: ServeNet) -> Result<Outcome> {
    let secret = secret(&net)?;
    let mut exports = Vec::new();
    let mut open_disk = |files: &dyn vdisk::Files, path: &str, name: String| -> Result<()> {
        let d = vdisk::open(files, path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        for p in &d.problems {
            eprintln!("warning: {p}");
        }
        if exports.iter().any(|e: &NbdExport| e.name == name) {
            bail!(UsageError(format!("two disks would be exported as {name}")));
        }
        let disk: Source = Arc::new(d);
        exports.push(NbdExport { name, disk });
        Ok(())
    };
    if paths.is_empty() {
        for f in &sources {
            if !f.exists() {
                bail!(UsageError(format!("{}: no such file", f.display())));
            }
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            open_disk(&LocalFiles, &local_path(f), name)?;
        }
    } else {
        let (_stores, fs) = open_selected(&Select { sources: sources.clone(), volume, state: None })?;
        let files = VmfsFiles(Arc::clone(&fs));
        for p in &paths {
            let p = if p.starts_with('/') { p.clone() } else { format!("/{p}") };
            open_disk(&files, &p, p.trim_start_matches('/').to_string())?;
        }
    }
    let shown: Vec<(String, u64)> = exports.iter().map(|e| (e.name.clone(), e.disk.len())).collect();
    let addr = listen(&net, 10809);
    let server = NbdServer::bind(addr, exports, secret.clone(), Limits::default())?;
    let bound = server.local_addr()?;
    let hosts = hosts(&addr);
    let s = secret.expose();
    println!("NBD export, read-only: listening on {bound}");
    println!("  secret: {s} (export names are SECRET/DISK; they are not listed to clients)");
    for (name, size) in &shown {
        let uri = format!("nbd://{}:{}/{s}/{}", hosts[0], bound.port(), pct(name));
        let out = name.rsplit('/').next().unwrap_or(name).trim_end_matches(".vmdk");
        println!("  {name}: {size} bytes");
        println!("    qemu-img convert -p -f raw -O qcow2 '{uri}' {out}.qcow2");
        println!("    nbdinfo --map '{uri}'");
    }
    for h in hosts.iter().skip(1) {
        println!("  (also reachable as {h}:{})", bound.port());
    }
    println!("  (Ctrl-C stops the server)");
    flush();
    server.run()?;
    Ok(Outcome::Clean)
}

fn http(
    sources: Vec<std::path::PathBuf>,
    path: Option<String>,
    volume: Option<String>,
    tls: bool,
    net: ServeNet,
) -> Result<Outcome> {
    let secret = secret(&net)?;
    let root = path.map(|p| if p.starts_with('/') { p } else { format!("/{p}") }).unwrap_or_else(|| "/".into());
    let mut vols: Vec<HttpVolume> = Vec::new();
    if volume.is_some() {
        let (_stores, fs) = open_selected(&Select { sources: sources.clone(), volume, state: None })?;
        vols.push(HttpVolume { name: fs.desc.label.clone(), fs, root: root.clone() });
    } else {
        let srcs = super::open_sources(&sources)?;
        let (stores, _notes) = vmfs_rescue::datastore::find(&srcs);
        for d in stores {
            match d.fs {
                Ok(fs) => vols.push(HttpVolume { name: fs.desc.label.clone(), fs, root: root.clone() }),
                Err(e) => eprintln!("warning: volume {}: {e} (not served)", d.volume.uuid),
            }
        }
    }
    if vols.is_empty() {
        bail!("no readable VMFS volume on these sources");
    }
    name_volumes(&mut vols);
    for v in &vols {
        if v.root != "/" {
            v.fs.lookup(&v.root).map_err(|e| UsageError(format!("--path {}: {e}", v.root)))?;
        }
    }
    let addr = listen(&net, if tls { 8443 } else { 8080 });
    let hosts = hosts(&addr);
    let identity = if tls {
        let mut names = vec!["localhost".to_string()];
        names.extend(hosts.iter().map(|h| h.trim_matches(['[', ']']).to_string()));
        Some(TlsIdentity::generate(names)?)
    } else {
        None
    };
    let scheme = if tls { "https" } else { "http" };
    let (fingerprint, pin) = identity.as_ref().map(|i| (i.fingerprint.clone(), i.pubkey_pin.clone())).unzip();
    let first_vol = vols[0].name.clone();
    let server = HttpServer::bind(
        addr,
        HttpConfig { volumes: vols, secret: secret.clone(), tls: identity, limits: HttpLimits::default() },
    )?;
    let bound = server.local_addr()?;
    let s = secret.expose();
    println!("HTTP{} export, read-only: listening on {bound}", if tls { "S" } else { "" });
    println!("  secret: {s}");
    for h in &hosts {
        println!("  browse: {scheme}://{h}:{}/?token={s}", bound.port());
    }
    let h = &hosts[0];
    let curl =
        if tls { format!("curl --pinnedpubkey 'sha256//{}' -k", pin.as_deref().unwrap_or("")) } else { "curl".into() };
    println!(
        "  a file:   {curl} -C - -O -H 'Authorization: Bearer {s}' '{scheme}://{h}:{}/files/{}/PATH'",
        bound.port(),
        pct(&first_vol)
    );
    println!(
        "  a disk:   {curl} -C - -o DISK.raw -H 'Authorization: Bearer {s}' '{scheme}://{h}:{}/disk/{}/VM/DISK.vmdk'",
        bound.port(),
        pct(&first_vol)
    );
    println!("  listings as JSON: add ?format=json (or Accept: application/json)");
    if let Some(f) = fingerprint {
        println!("  certificate SHA-256 fingerprint: {f}");
    }
    println!("  (Ctrl-C stops the server)");
    flush();
    server.run()?;
    Ok(Outcome::Clean)
}
