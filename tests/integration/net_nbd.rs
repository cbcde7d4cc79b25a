//! `serve nbd` with real clients on loopback: `qemu-img convert` and `qemu-img compare` of a
//! forged datastore's VMDK chains read in place on the VMFS volume (content = the forge's
//! ground truth), `nbdinfo --map` showing the holes, and bad clients (garbage handshakes, huge
//! lengths, many and slow connections) that must neither crash nor stall the server.

use crate::util::{SourceGuard, sha256_file};
use crate::vmfs::bin;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vmfs_rescue::forge::truth::Truth;
use vmfs_rescue::net::nbd::proto::*;

pub const SECRET: &str = "loopback-test-secret";

/// A `vmfs-rescue serve ...` child on a free loopback port, killed when dropped.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    /// What it printed before serving.
    pub banner: Vec<String>,
}

impl Served {
    pub fn start(args: &[&str]) -> Self {
        let mut child = bin()
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--secret", SECRET])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = Vec::new();
        let mut addr = None;
        // The banner ends with the "Ctrl-C" line, printed just before serving.
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            if let Some(a) = line.trim().rsplit_once("listening on ") {
                addr = Some(a.1.parse().unwrap());
            }
            banner.push(line.trim_end().to_string());
            let done = line.contains("Ctrl-C");
            line.clear();
            if done {
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| panic!("no address printed: {banner:?}"));
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Self { child, addr, banner }
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small healthy VMFS6 datastore with snapshot chains.
pub fn forged(dir: &Path) -> (PathBuf, Truth) {
    let (mut imgs, truth) = crate::forge_scenarios::forge(dir, "healthy", 6, "3G", &["ds.img"], true);
    (imgs.remove(0), truth)
}

fn uri(s: &Served, disk: &str) -> String {
    format!("nbd://{}/{SECRET}/{}", s.addr, disk.trim_start_matches('/'))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup-tools.sh installs the clients)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every disk of the datastore, assembled through its chain in place on the volume and pulled
/// with qemu-img: byte-identical to the ground truth, and `qemu-img compare` agrees.
#[test]
fn qemu_img_pulls_chains_identical_to_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let mut args = vec!["serve".to_string(), "nbd".into(), img.display().to_string()];
    for d in &truth.disks {
        args.extend(["--path".into(), d.chain[0].clone()]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut s = Served::start(&a);
    assert!(s.banner.iter().any(|l| l.contains("qemu-img convert") && l.contains(SECRET)), "{:?}", s.banner);
    let mut chained = 0;
    for d in &truth.disks {
        let out = dir.path().join("out.raw");
        run(Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "raw", &uri(&s, &d.chain[0])]).arg(&out));
        assert_eq!(sha256_file(&out), d.sha256, "{} ({} links)", d.chain[0], d.chain.len());
        run(Command::new("qemu-img").args(["compare", "-f", "raw", "-F", "raw", &uri(&s, &d.chain[0])]).arg(&out));
        std::fs::remove_file(&out).unwrap();
        chained += usize::from(d.chain.len() > 1);
    }
    assert!(chained > 0, "the healthy scenario holds snapshot chains");
    assert!(s.alive());
}

/// `nbdinfo --map`: the disks' holes are reported as holes (base:allocation), and the sum of
/// the map is the disk's size.
#[test]
fn nbdinfo_map_shows_holes() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let d = &truth.disks[0];
    let s = Served::start(&["serve", "nbd", img.to_str().unwrap(), "--path", &d.chain[0]]);
    let map = run(Command::new("nbdinfo").args(["--map", &uri(&s, &d.chain[0])]));
    let mut total = 0u64;
    let mut holes = 0u64;
    for l in map.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let len: u64 = f[1].parse().unwrap();
        total += len;
        if l.contains("hole,zero") {
            holes += len;
        }
    }
    assert_eq!(total, d.capacity, "{map}");
    assert!(holes > 0, "a thin disk has holes: {map}");
    let info = run(Command::new("nbdinfo").arg(uri(&s, &d.chain[0])));
    assert!(info.contains("is_read_only: true") && info.contains("base:allocation"), "{info}");
}

/// Secret missing or wrong, listing asked for: nothing is served or named.
#[test]
fn export_names_need_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let d = &truth.disks[0].chain[0];
    let s = Served::start(&["serve", "nbd", img.to_str().unwrap(), "--path", d]);
    for bad in [format!("nbd://{}/{}", s.addr, d.trim_start_matches('/')), format!("nbd://{}/wrong-secret{d}", s.addr)]
    {
        let out = Command::new("nbdinfo").arg(&bad).output().unwrap();
        assert!(!out.status.success(), "{bad} was served");
    }
    let out = Command::new("nbdinfo").args(["--list", &format!("nbd://{}/", s.addr)]).output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains(SECRET) && !all.contains("web01"), "the listing named exports: {all}");
}

/// A minimal client of our own, to send what real clients never do.
struct Raw(TcpStream);

impl Raw {
    fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Self(s)
    }
    fn read_n(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.0.read_exact(&mut b)?;
        Ok(b)
    }
    fn option(&mut self, code: u32, data: &[u8]) {
        let mut v = IHAVEOPT.to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        self.0.write_all(&v).unwrap();
    }
    /// One option reply: (type, data).
    fn reply(&mut self) -> (u32, Vec<u8>) {
        let h = self.read_n(20).unwrap();
        let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
        (kind, self.read_n(len as usize).unwrap())
    }
    /// Handshake with structured replies and base:allocation, then GO: returns the size.
    fn open(addr: SocketAddr, export: &str) -> (Self, u64) {
        let mut c = Self::connect(addr);
        let hello = c.read_n(18).unwrap();
        assert_eq!(&hello[..8], &NBDMAGIC.to_be_bytes());
        c.0.write_all(&(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).to_be_bytes()).unwrap();
        c.option(OPT_STRUCTURED_REPLY, &[]);
        assert_eq!(c.reply().0, REP_ACK);
        let name = format!("{SECRET}/{export}");
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name.as_bytes());
        let q = BASE_ALLOCATION.as_bytes();
        let mut m = d.clone();
        m.extend_from_slice(&1u32.to_be_bytes());
        m.extend_from_slice(&(q.len() as u32).to_be_bytes());
        m.extend_from_slice(q);
        c.option(OPT_SET_META_CONTEXT, &m);
        assert_eq!(c.reply().0, REP_META_CONTEXT);
        assert_eq!(c.reply().0, REP_ACK);
        d.extend_from_slice(&0u16.to_be_bytes());
        c.option(OPT_GO, &d);
        let mut size = 0;
        loop {
            let (kind, data) = c.reply();
            if kind == REP_INFO && data[..2] == INFO_EXPORT.to_be_bytes() {
                size = u64::from_be_bytes(data[2..10].try_into().unwrap());
            }
            if kind == REP_ACK {
                break;
            }
            assert!(kind < 1 << 31, "GO refused: {kind:#x}");
        }
        (c, size)
    }
    fn request(&mut self, kind: u16, handle: u64, offset: u64, len: u32) {
        let mut v = REQUEST_MAGIC.to_be_bytes().to_vec();
        v.extend_from_slice(&0u16.to_be_bytes());
        v.extend_from_slice(&kind.to_be_bytes());
        v.extend_from_slice(&handle.to_be_bytes());
        v.extend_from_slice(&offset.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        self.0.write_all(&v).unwrap();
    }
    /// The chunks of one structured reply: (type, payload), up to the DONE flag.
    fn chunks(&mut self) -> std::io::Result<Vec<(u16, Vec<u8>)>> {
        let mut v = Vec::new();
        loop {
            let h = self.read_n(20)?;
            assert_eq!(h[..4], STRUCTURED_REPLY_MAGIC.to_be_bytes());
            let flags = u16::from_be_bytes([h[4], h[5]]);
            let kind = u16::from_be_bytes([h[6], h[7]]);
            let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
            v.push((kind, self.read_n(len as usize)?));
            if flags & REPLY_FLAG_DONE != 0 {
                return Ok(v);
            }
        }
    }
    /// Whether the server closed the connection (EOF or reset within the timeout).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.0.read(&mut b), Ok(0) | Err(_))
    }
    /// Whether the server closes the connection, after whatever it sends first (a TLS
    /// alert): EOF or reset, not the read timeout.
    fn closed_by_server(&mut self) -> bool {
        let mut b = [0u8; 4096];
        for _ in 0..256 {
            match self.0.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            }
        }
        false
    }
}

/// Garbage, huge lengths, many idle and half-open connections, a client that never reads its
/// replies: each ends only its own connection, and qemu-img is still served meanwhile.
#[test]
fn bad_clients_do_not_crash_or_stall_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let d = &truth.disks[0];
    let name = d.chain[0].trim_start_matches('/');
    let mut s = Served::start(&["serve", "nbd", img.to_str().unwrap(), "--path", &d.chain[0]]);

    // Held open for the whole test: idle, half a handshake, a session that never reads.
    let mut held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
    let mut half = Raw::connect(s.addr);
    half.read_n(18).unwrap();
    half.0.write_all(&[0, 0]).unwrap();
    let (mut deaf, _) = Raw::open(s.addr, name);
    for h in 0..64 {
        deaf.request(CMD_READ, h, 0, 32 << 20);
    }

    // Garbage instead of client flags, then instead of an option.
    let mut g = Raw::connect(s.addr);
    g.read_n(18).unwrap();
    g.0.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(g.closed(), "unknown client flags must close");
    let mut g = Raw::connect(s.addr);
    g.read_n(18).unwrap();
    g.0.write_all(&FLAG_C_FIXED_NEWSTYLE.to_be_bytes()).unwrap();
    g.0.write_all(&[0xAB; 64]).unwrap();
    assert!(g.closed(), "an option without magic must close");
    // An option claiming 4 GiB of data.
    let mut g = Raw::connect(s.addr);
    g.read_n(18).unwrap();
    g.0.write_all(&FLAG_C_FIXED_NEWSTYLE.to_be_bytes()).unwrap();
    let mut v = IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&OPT_GO.to_be_bytes());
    v.extend_from_slice(&u32::MAX.to_be_bytes());
    g.0.write_all(&v).unwrap();
    assert!(g.closed(), "a 4 GiB option must close");
    // Malformed GO data is answered, and the session goes on.
    let mut g = Raw::connect(s.addr);
    g.read_n(18).unwrap();
    g.0.write_all(&FLAG_C_FIXED_NEWSTYLE.to_be_bytes()).unwrap();
    g.option(OPT_GO, &[0xff, 0xff, 0xff, 0xff, 1]);
    assert_eq!(g.reply().0, REP_ERR_INVALID);
    g.option(OPT_ABORT, &[]);
    assert_eq!(g.reply().0, REP_ACK);

    // In session: too long, past the end, zero length, writes, unknown commands.
    let (mut c, size) = Raw::open(s.addr, name);
    assert_eq!(size, d.capacity);
    let errno = |ch: &[(u16, Vec<u8>)]| {
        assert_eq!(ch.len(), 1, "one error chunk");
        assert!(ch[0].0 == REPLY_TYPE_ERROR, "{:?}", ch[0].0);
        u32::from_be_bytes(ch[0].1[..4].try_into().unwrap())
    };
    c.request(CMD_READ, 1, 0, 64 << 20);
    assert_eq!(errno(&c.chunks().unwrap()), EINVAL);
    c.request(CMD_READ, 2, size - 1, 2);
    assert_eq!(errno(&c.chunks().unwrap()), EINVAL);
    c.request(CMD_READ, 3, u64::MAX - 1, 4096);
    assert_eq!(errno(&c.chunks().unwrap()), EINVAL);
    c.request(CMD_BLOCK_STATUS, 4, size, 512);
    assert_eq!(errno(&c.chunks().unwrap()), EINVAL);
    c.request(CMD_WRITE, 5, 0, 512);
    c.0.write_all(&[0u8; 512]).unwrap();
    let r = c.read_n(16).unwrap();
    assert_eq!(u32::from_be_bytes(r[4..8].try_into().unwrap()), EPERM, "a write on a read-only export");
    c.request(99, 6, 0, 0);
    assert_eq!(u32::from_be_bytes(c.read_n(16).unwrap()[4..8].try_into().unwrap()), EINVAL);
    // Still in step: a good read and a block status.
    c.request(CMD_READ, 7, 0, 4096);
    let ch = c.chunks().unwrap();
    assert_eq!(ch.iter().map(|(k, p)| if *k == REPLY_TYPE_OFFSET_DATA { p.len() - 8 } else { 0 }).sum::<usize>(), 4096);
    c.request(CMD_BLOCK_STATUS, 8, 0, size.min(u64::from(u32::MAX)) as u32);
    let ch = c.chunks().unwrap();
    assert_eq!(ch[0].0, REPLY_TYPE_BLOCK_STATUS);
    // A write whose payload is too large to skip ends the session.
    c.request(CMD_WRITE, 9, 0, u32::MAX);
    assert!(c.closed(), "a 4 GiB write payload must close");

    // Meanwhile a real client is served in full.
    let out = dir.path().join("out.raw");
    run(Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "raw", &uri(&s, &d.chain[0])]).arg(&out));
    assert_eq!(sha256_file(&out), d.sha256);
    assert!(s.alive(), "the server survived");
    held.clear();
}

/// `serve nbd --tls` with its CA in `dir`.
fn served_tls(img: &Path, disk: &str, dir: &Path) -> Served {
    let (img, dir) = (img.to_str().unwrap(), dir.to_str().unwrap());
    Served::start(&["serve", "nbd", img, "--path", disk, "--tls", "--tls-dir", dir])
}

/// qemu-img through `tls-creds-x509` with the CA folder `certs`, as the banner prints it.
fn qemu_img_tls(s: &Served, disk: &str, certs: &Path, out: &Path) -> Command {
    let mut c = Command::new("qemu-img");
    c.args(["convert", "-O", "raw", "--object"])
        .arg(format!("tls-creds-x509,id=tls0,dir={},endpoint=client", certs.display()))
        .arg("--image-opts")
        .arg(format!(
            "driver=nbd,server.type=inet,server.host={},server.port={},export={SECRET}/{},tls-creds=tls0",
            s.addr.ip(),
            s.addr.port(),
            disk.trim_start_matches('/')
        ))
        .arg(out);
    c
}

fn nbds_uri(s: &Served, disk: &str, certs: &Path) -> String {
    format!("nbds://{}/{SECRET}/{}?tls-certificates={}", s.addr, disk.trim_start_matches('/'), certs.display())
}

/// With --tls: the CA is written where asked and its fingerprint printed; qemu-img pulls a
/// chained disk through tls-creds-x509 identical to the truth; nbdinfo over nbds:// sees TLS
/// and the holes.
#[test]
fn tls_clients_verify_the_certificate_and_read_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let d = truth.disks.iter().find(|d| d.chain.len() > 1).expect("a chained disk");
    let certs = dir.path().join("certs");
    let mut s = served_tls(&img, &d.chain[0], &certs);
    let banner = s.banner.join("\n");
    assert!(
        banner.contains("TLS required") && banner.contains("tls-creds-x509") && banner.contains("nbds://"),
        "{banner}"
    );
    let fp = run(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(certs.join("ca-cert.pem")));
    let fp = fp.trim().rsplit('=').next().unwrap().to_string();
    assert!(fp.len() == 95 && banner.contains(&fp), "CA fingerprint {fp} not printed: {banner}");

    let out = dir.path().join("out.raw");
    run(&mut qemu_img_tls(&s, &d.chain[0], &certs, &out));
    assert_eq!(sha256_file(&out), d.sha256, "{} ({} links)", d.chain[0], d.chain.len());

    let uri = nbds_uri(&s, &d.chain[0], &certs);
    run(Command::new("nbdinfo").args(["--is", "tls", &uri]));
    let map = run(Command::new("nbdinfo").args(["--map", &uri]));
    let (mut total, mut holes) = (0u64, 0u64);
    for l in map.lines() {
        let len: u64 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
        total += len;
        if l.contains("hole,zero") {
            holes += len;
        }
    }
    assert_eq!(total, d.capacity, "{map}");
    assert!(holes > 0, "a thin disk has holes: {map}");

    // Another CA (another run's) is not trusted: the client refuses the server.
    let other = dir.path().join("other");
    let s2 = served_tls(&img, &d.chain[0], &other);
    let bad = Command::new("nbdinfo").arg(nbds_uri(&s, &d.chain[0], &other)).output().unwrap();
    assert!(!bad.status.success(), "a certificate from another CA was accepted");
    drop(s2);
    // An existing ca-cert.pem is never replaced.
    let again = bin()
        .args(["serve", "nbd", img.to_str().unwrap(), "--path", &d.chain[0], "--tls", "--tls-dir"])
        .arg(&certs)
        .args(["--listen", "127.0.0.1:0", "--secret", SECRET])
        .output()
        .unwrap();
    assert!(!again.status.success(), "ca-cert.pem was overwritten");
    assert!(s.alive());
}

/// With --tls, plain clients get nothing: qemu-img and nbdinfo fail, options before STARTTLS
/// are answered NBD_REP_ERR_TLS_REQD, EXPORT_NAME closes; STARTTLS followed by garbage or a
/// half handshake ends only that connection, and a TLS client is served afterwards.
#[test]
fn tls_required_refuses_plain_and_survives_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let d = &truth.disks[0];
    let certs = dir.path().join("certs");
    let mut s = served_tls(&img, &d.chain[0], &certs);

    let out = dir.path().join("plain.raw");
    let plain =
        Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "raw", &uri(&s, &d.chain[0])]).arg(&out).output();
    assert!(!plain.unwrap().status.success(), "qemu-img read without TLS");
    let plain = Command::new("nbdinfo").arg(uri(&s, &d.chain[0])).output().unwrap();
    assert!(!plain.status.success(), "nbdinfo read without TLS");

    let name = format!("{SECRET}/{}", d.chain[0].trim_start_matches('/'));
    let mut go = (name.len() as u32).to_be_bytes().to_vec();
    go.extend_from_slice(name.as_bytes());
    go.extend_from_slice(&0u16.to_be_bytes());
    let hello = |addr| {
        let mut c = Raw::connect(addr);
        c.read_n(18).unwrap();
        c.0.write_all(&(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).to_be_bytes()).unwrap();
        c
    };
    let mut c = hello(s.addr);
    for (code, data) in [(OPT_GO, &go[..]), (OPT_STRUCTURED_REPLY, &[][..]), (OPT_LIST, &[][..])] {
        c.option(code, data);
        assert_eq!(c.reply().0, REP_ERR_TLS_REQD, "option {code} before STARTTLS");
    }
    c.option(OPT_ABORT, &[]);
    assert_eq!(c.reply().0, REP_ACK);
    let mut c = hello(s.addr);
    c.option(OPT_EXPORT_NAME, name.as_bytes());
    assert!(c.closed_by_server(), "EXPORT_NAME before STARTTLS must close");

    // STARTTLS, then garbage where the ClientHello should be.
    let mut g = hello(s.addr);
    g.option(OPT_STARTTLS, &[]);
    assert_eq!(g.reply().0, REP_ACK);
    g.0.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff]).unwrap();
    let _ = g.0.write_all(&[0xAB; 4096]);
    assert!(g.closed_by_server(), "garbage instead of a TLS handshake must close");
    // STARTTLS, then plaintext NBD as if nothing happened.
    let mut g = hello(s.addr);
    g.option(OPT_STARTTLS, &[]);
    assert_eq!(g.reply().0, REP_ACK);
    let mut v = IHAVEOPT.to_be_bytes().to_vec();
    v.extend_from_slice(&OPT_GO.to_be_bytes());
    g.0.write_all(&v).unwrap();
    assert!(g.closed_by_server(), "plaintext after STARTTLS must close");
    // Half a handshake, held open while a TLS client is served.
    let mut half = hello(s.addr);
    half.option(OPT_STARTTLS, &[]);
    assert_eq!(half.reply().0, REP_ACK);
    half.0.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();

    let out = dir.path().join("tls.raw");
    run(&mut qemu_img_tls(&s, &d.chain[0], &certs, &out));
    assert_eq!(sha256_file(&out), d.sha256);
    assert!(s.alive(), "the server survived");
    drop(half);
}
