//! `vmfs-rescue serve http|nbd`: open what to serve, print the URLs and commands with the
//! secret, and run the library's server until interrupted.

use super::args::{Select, ServeCommand, ServeNet};
use super::{Outcome, UsageError, open_selected};
use anyhow::{Result, bail};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vmfs_rescue::block::Source;
use vmfs_rescue::net::Secret;
use vmfs_rescue::net::http::{HttpConfig, HttpLimits, HttpServer, HttpVolume, name_volumes, pct, tls::TlsIdentity};
use vmfs_rescue::net::nbd::{Limits, NbdExport, NbdServer};
use vmfs_rescue::vdisk::{self, LocalFiles, VmfsFiles, files::local_path};

pub fn run(c: ServeCommand) -> Result<Outcome> {
    match c {
        ServeCommand::Http { sources, path, volume, tls, net } => http(sources, path, volume, tls, net),
        ServeCommand::Nbd { sources, path, volume, tls, tls_dir, net } => {
            nbd(sources, path, volume, tls.then_some(tls_dir), net)
        }
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

/// The names a certificate is made for: localhost and every host printed.
fn cert_names(hosts: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    names.extend(hosts.iter().map(|h| h.trim_matches(['[', ']']).to_string()));
    names
}

/// Write the CA certificate as `DIR/ca-cert.pem` (DIR: the one given, created if missing, or a
/// new one under the temp dir); never over an existing file, never on a source.
fn write_ca(dir: Option<PathBuf>, pem: &str, sources: &[PathBuf]) -> Result<PathBuf> {
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| UsageError(format!("--tls-dir {}: {e}", d.display())))?;
            d
        }
        None => {
            let base = std::env::temp_dir();
            let mut n = 0u32;
            loop {
                let d = base.join(format!("vmfs-rescue-nbd-tls-{}-{n}", std::process::id()));
                match std::fs::create_dir(&d) {
                    Ok(()) => break d,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                    Err(e) => bail!("{}: {e}", d.display()),
                }
            }
        }
    };
    let dir = dir.canonicalize().map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    if let Some(src) = vmfs_rescue::datastore::dest_on_source(&dir, sources) {
        bail!(UsageError(format!("refusing to write to {}: it is on source {}", dir.display(), src.display())));
    }
    let file = dir.join("ca-cert.pem");
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&file).map_err(|e| {
        UsageError(format!(
            "{}: {e} (an existing ca-cert.pem is never replaced: choose another --tls-dir)",
            file.display()
        ))
    })?;
    f.write_all(pem.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(dir)
}

/// A value of qemu's --image-opts / --object syntax: commas doubled.
fn qemu_opt(v: &str) -> String {
    v.replace(',', ",,")
}

/// Print the commands for one disk served over TLS.
fn print_tls_commands(host: &str, port: u16, secret: &str, name: &str, dir: &Path) {
    let out = name.rsplit('/').next().unwrap_or(name).trim_end_matches(".vmdk");
    let d = dir.display().to_string();
    let opts = format!(
        "driver=nbd,server.type=inet,server.host={},server.port={port},export={},tls-creds=tls0",
        qemu_opt(host.trim_matches(['[', ']'])),
        qemu_opt(&format!("{secret}/{name}"))
    );
    println!(
        "    qemu-img convert -p -O qcow2 --object 'tls-creds-x509,id=tls0,dir={},endpoint=client' --image-opts '{opts}' {out}.qcow2",
        qemu_opt(&d)
    );
    println!("    nbdinfo --map 'nbds://{host}:{port}/{secret}/{}?tls-certificates={}'", pct(name), pct(&d));
}

fn nbd(
    sources: Vec<std::path::PathBuf>,
    paths: Vec<String>,
    volume: Option<String>,
    tls: Option<Option<PathBuf>>,
    net: ServeNet,
) -> Result<Outcome> {
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
    let hosts = hosts(&addr);
    let identity = match &tls {
        Some(_) => Some(TlsIdentity::generate_with_ca(cert_names(&hosts))?),
        None => None,
    };
    let server = NbdServer::bind_with_tls(addr, exports, secret.clone(), Limits::default(), identity.as_ref())?;
    let bound = server.local_addr()?;
    // Written once the port is ours, so a failed bind leaves nothing behind.
    let ca_dir = match (tls, &identity) {
        (Some(dir), Some(id)) => Some(write_ca(dir, &id.ca_pem(), &sources)?),
        _ => None,
    };
    let s = secret.expose();
    println!("NBD export, read-only{}: listening on {bound}", if ca_dir.is_some() { ", TLS required" } else { "" });
    println!("  secret: {s} (export names are SECRET/DISK; they are not listed to clients)");
    if let (Some(dir), Some(id)) = (&ca_dir, &identity) {
        println!(
            "  TLS: CA certificate written to {} (copy the folder to the client)",
            dir.join("ca-cert.pem").display()
        );
        println!("    CA SHA-256 fingerprint:     {}", id.ca_fingerprint);
        println!("    server SHA-256 fingerprint: {}", id.fingerprint);
        println!("    (openssl x509 -noout -fingerprint -sha256 -in ca-cert.pem shows the first)");
    }
    for (name, size) in &shown {
        println!("  {name}: {size} bytes");
        if let Some(dir) = &ca_dir {
            print_tls_commands(&hosts[0], bound.port(), s, name, dir);
            continue;
        }
        let uri = format!("nbd://{}:{}/{s}/{}", hosts[0], bound.port(), pct(name));
        let out = name.rsplit('/').next().unwrap_or(name).trim_end_matches(".vmdk");
        println!("    qemu-img convert -p -f raw -O qcow2 '{uri}' {out}.qcow2");
        println!("    nbdinfo --map '{uri}'");
    }
    if ca_dir.is_some() {
        println!(
            "  (the certificate names {}: through another name, add tls-hostname=localhost to the",
            cert_names(&hosts).join(", ")
        );
        println!("   --image-opts; qemu-img's --object dir and nbdinfo's tls-certificates= name the copied folder)");
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
    let identity = if tls { Some(TlsIdentity::generate(cert_names(&hosts))?) } else { None };
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
