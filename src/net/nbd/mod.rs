//! Our NBD server: assembled virtual disks (or any [`BlockSource`]) exported read-only over
//! the fixed newstyle handshake, with NBD_OPT_GO/INFO, structured replies and the
//! `base:allocation` metadata context, so `qemu-img convert nbd://...`, `nbdinfo --map` and
//! `nbdcopy` work and holes travel as holes.
//!
//! Export names carry the secret: `<secret>/<disk>`. NBD_OPT_LIST is refused (it would hand
//! out the names). Unreadable bytes are served as the zeros the bad-sector-tolerant layer
//! reads there, and logged once per range: a rescue copy with a few zeroed sectors is worth
//! more than a copy that `qemu-img` aborts; `base:allocation` reports them as data, never as
//! holes, and `vdisk info` names them.
//!
//! One thread per connection, std sockets with read and write timeouts; after the handshake a
//! connection's requests are served by a few worker threads so disk reads and sends overlap
//! (replies may come out of order: each carries its handle). Reads go through the
//! [`BlockSource`], never a memory map.
//!
//! With TLS ([`NbdServer::bind_with_tls`]) the server runs the spec's FORCEDTLS mode: before
//! NBD_OPT_STARTTLS only STARTTLS and ABORT are answered (other options get
//! NBD_REP_ERR_TLS_REQD, NBD_OPT_EXPORT_NAME closes); after its ACK the TLS handshake runs on
//! the same socket and the negotiation goes on inside TLS ([`tls`]: a pump thread per
//! connection, the session code on a plaintext socket pair). Certificates only: rustls has no
//! TLS-PSK.

mod negotiate;
pub mod proto;
pub mod tls;

use super::NetError;
use super::auth::Secret;
use super::tls::TlsIdentity;
use crate::block::{BlockSource, Source};
use negotiate::{Chosen, Negotiated, greet, options};
use proto::*;
use std::io::{IoSlice, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tls::Conn;
use tokio_rustls::rustls::ServerConfig;

/// One exported disk.
pub struct NbdExport {
    /// The name after the secret (`<secret>/<name>`).
    pub name: String,
    pub disk: Source,
}

/// Bounds that keep a bad client from exhausting the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest READ (and WRITE payload skipped before refusing it), advertised as the maximum
    /// block size.
    pub max_request: u32,
    /// Largest option data accepted; a longer option closes the connection.
    pub max_option: u32,
    /// Options per handshake before the connection is closed.
    pub max_options: usize,
    /// Connections at once (handshaking or transmitting); more are closed at once.
    pub max_connections: usize,
    /// Time from accept to the end of the handshake.
    pub handshake_timeout: Duration,
    /// Time without a request before an open session is closed.
    pub idle_timeout: Duration,
    /// Time a client may take to accept a reply's bytes.
    pub write_timeout: Duration,
    /// Worker threads per session.
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request: 32 << 20,
            max_option: 64 << 10,
            max_options: 64,
            max_connections: 64,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(60),
            workers: 4,
        }
    }
}

/// Data is sent in OFFSET_DATA chunks of at most this many bytes (memory per worker).
const CHUNK: u64 = 4 << 20;
/// Block status descriptors per reply at most (the client asks again for the rest).
const MAX_DESCRIPTORS: usize = 1 << 16;
/// Preferred block size advertised.
const PREFERRED_BLOCK: u32 = 4096;

struct Shared {
    exports: Vec<NbdExport>,
    secret: Secret,
    limits: Limits,
    /// TLS required (FORCEDTLS) with this configuration; None: no TLS offered.
    tls: Option<Arc<ServerConfig>>,
    active: AtomicUsize,
    stop: AtomicBool,
    /// Unreadable ranges already logged, per export.
    logged: Mutex<Vec<(usize, Range<u64>)>>,
}

/// A bound NBD server; [`NbdServer::run`] serves until [`StopHandle::stop`].
pub struct NbdServer {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// Stops a running server (its accept loop; open sessions end with their clients).
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>, SocketAddr);

impl StopHandle {
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.1, Duration::from_secs(1));
    }
}

impl NbdServer {
    /// Bind `addr` (port 0: any free port) for these exports, without TLS.
    pub fn bind(addr: SocketAddr, exports: Vec<NbdExport>, secret: Secret, limits: Limits) -> Result<Self, NetError> {
        Self::bind_with_tls(addr, exports, secret, limits, None)
    }

    /// Bind as [`NbdServer::bind`]; with an identity, every client must upgrade to TLS
    /// (NBD_OPT_STARTTLS) before anything else.
    pub fn bind_with_tls(
        addr: SocketAddr,
        exports: Vec<NbdExport>,
        secret: Secret,
        limits: Limits,
        tls: Option<&TlsIdentity>,
    ) -> Result<Self, NetError> {
        // No ALPN: NBD clients send none.
        let tls = tls.map(|id| id.server_config_alpn(Vec::new())).transpose()?;
        let listener = TcpListener::bind(addr).map_err(|e| NetError::Bind(addr.to_string(), e))?;
        let shared = Arc::new(Shared {
            exports,
            secret,
            limits,
            tls,
            active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            logged: Mutex::new(Vec::new()),
        });
        Ok(Self { listener, shared })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.listener.local_addr().map_err(NetError::Io)
    }

    /// A handle that stops [`NbdServer::run`].
    pub fn stop_handle(&self) -> Result<StopHandle, NetError> {
        Ok(StopHandle(Arc::clone(&self.shared), self.local_addr()?))
    }

    /// Accept connections until stopped; each gets its own thread.
    pub fn run(self) -> Result<(), NetError> {
        for conn in self.listener.incoming() {
            if self.shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = conn else {
                // Out of descriptors and the like: wait rather than spin.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let n = self.shared.active.fetch_add(1, Ordering::SeqCst);
            if n >= self.shared.limits.max_connections {
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(
                    "nbd: connection limit ({}) reached: refusing a client",
                    self.shared.limits.max_connections
                );
                drop(stream);
                continue;
            }
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new().name("nbd-conn".into()).spawn(move || {
                let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                match session(stream, &shared) {
                    Ok(()) => tracing::info!("nbd: {peer}: session ended"),
                    Err(e) => tracing::info!("nbd: {peer}: {e}"),
                }
                shared.active.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

/// Why a connection ended early (logged, never fatal to the server).
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

/// Read exactly `buf.len()` bytes before `deadline` (None: with the socket's current timeout).
fn read_full<S: Conn>(s: &mut S, buf: &mut [u8], deadline: Option<Instant>) -> Result<(), End> {
    let mut got = 0;
    while got < buf.len() {
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(End::Protocol("handshake took too long"));
            }
            s.set_read_timeout(Some(left))?;
        }
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(End::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Write a header and a body as one sequence (fewer packets than two `write_all`s).
fn write_two<W: Write>(s: &mut W, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let mut bufs = [IoSlice::new(head), IoSlice::new(body)];
    let mut bufs = &mut bufs[..];
    while !bufs.is_empty() {
        match s.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One connection: handshake (with TLS when required), then transmission.
fn session(mut s: TcpStream, shared: &Shared) -> Result<(), End> {
    let lim = &shared.limits;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(lim.write_timeout))?;
    let deadline = Instant::now() + lim.handshake_timeout;
    let no_zeroes = greet(&mut s, deadline)?;
    let mut budget = lim.max_options;
    let (mode, config) = match &shared.tls {
        Some(c) => (TlsMode::Required, Some(Arc::clone(c))),
        None => (TlsMode::Off, None),
    };
    match options(&mut s, shared, deadline, mode, no_zeroes, &mut budget)? {
        Negotiated::Abort => Ok(()),
        Negotiated::Go(chosen) => {
            s.set_read_timeout(Some(lim.idle_timeout))?;
            transmission(s, shared, chosen)
        }
        Negotiated::StartTls => {
            let config = config.ok_or(End::Protocol("STARTTLS accepted without TLS"))?;
            let (plain, pump) = tls::start(s, config, deadline, lim.write_timeout)?;
            let r = after_starttls(plain, shared, deadline, no_zeroes, &mut budget);
            // Every clone of the plaintext end is closed by now: the pump sends what is left.
            pump.join();
            r
        }
    }
}

/// The rest of a TLS connection, on the plaintext end of its pump.
fn after_starttls<S: Conn>(
    mut s: S,
    shared: &Shared,
    deadline: Instant,
    no_zeroes: bool,
    budget: &mut usize,
) -> Result<(), End> {
    s.set_write_timeout(Some(shared.limits.write_timeout))?;
    // State negotiated before TLS is forgotten: `options` starts afresh.
    match options(&mut s, shared, deadline, TlsMode::Active, no_zeroes, budget)? {
        Negotiated::Abort => Ok(()),
        Negotiated::Go(chosen) => {
            s.set_read_timeout(Some(shared.limits.idle_timeout))?;
            transmission(s, shared, chosen)
        }
        Negotiated::StartTls => Err(End::Protocol("STARTTLS inside TLS")),
    }
}

/// A request handed to a worker.
enum Job {
    Read { handle: u64, offset: u64, len: u32 },
    Status { handle: u64, offset: u64, len: u32, one: bool },
}

/// Serve requests until the client disconnects or breaks the protocol.
fn transmission<S: Conn>(mut s: S, shared: &Shared, c: Chosen) -> Result<(), End> {
    let export = &shared.exports[c.export];
    let sess = Session {
        size: export.disk.len(),
        max_request: shared.limits.max_request,
        structured: c.structured,
        base_allocation: c.base_allocation,
    };
    let writer = Mutex::new(s.try_clone()?);
    let failed = AtomicBool::new(false);
    let workers = shared.limits.workers.max(1);
    // Bounded: a client that sends requests and never reads replies stalls here, then its
    // replies hit the write timeout and the session ends.
    let (tx, rx) = mpsc::sync_channel::<Job>(workers * 2);
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    if failed.load(Ordering::SeqCst) {
                        continue;
                    }
                    let r = match job {
                        Job::Read { handle, offset, len } => {
                            serve_read(shared, c.export, &writer, &sess, handle, offset, len)
                        }
                        Job::Status { handle, offset, len, one } => {
                            serve_status(&*export.disk, &writer, handle, offset, len, one)
                        }
                    };
                    if r.is_err() {
                        failed.store(true, Ordering::SeqCst);
                        // Wake the request reader.
                        if let Ok(w) = writer.lock() {
                            let _ = w.shutdown(Shutdown::Both);
                        }
                    }
                }
            });
        }
        let result = read_requests(&mut s, &sess, &writer, &tx, &failed);
        drop(tx);
        result
    })
}

/// The request loop: parse, decide, answer the trivial ones, queue reads for the workers.
fn read_requests<S: Conn>(
    s: &mut S,
    sess: &Session,
    writer: &Mutex<S>,
    tx: &mpsc::SyncSender<Job>,
    failed: &AtomicBool,
) -> Result<(), End> {
    loop {
        let mut b = [0u8; REQUEST_LEN];
        if let Err(e) = read_full(s, &mut b, None) {
            return if failed.load(Ordering::SeqCst) { Err(End::Protocol("reply could not be sent")) } else { Err(e) };
        }
        let Some(r) = parse_request(&b) else { return Err(End::Protocol("request without magic")) };
        match decide(&r, sess) {
            Action::Read { offset, len } => {
                tx.send(Job::Read { handle: r.handle, offset, len }).map_err(|_| End::Protocol("workers gone"))?
            }
            Action::BlockStatus { offset, len, one } => tx
                .send(Job::Status { handle: r.handle, offset, len, one })
                .map_err(|_| End::Protocol("workers gone"))?,
            Action::Ok => write_locked(writer, &simple_reply(0, r.handle), &[])?,
            Action::Error { errno, discard, why } => {
                // A refused WRITE's payload is read and dropped, in pieces, to stay in step.
                let mut left = discard as usize;
                let mut sink = vec![0u8; left.min(1 << 20)];
                while left > 0 {
                    let n = left.min(sink.len());
                    read_full(s, &mut sink[..n], None)?;
                    left -= n;
                }
                tracing::debug!("nbd: request {:?} refused: {why}", r.kind);
                let structured_kind = matches!(r.kind, CMD_READ | CMD_BLOCK_STATUS);
                if sess.structured && structured_kind {
                    write_locked(writer, &error_chunk(r.handle, errno, why, None), &[])?;
                } else {
                    write_locked(writer, &simple_reply(errno, r.handle), &[])?;
                }
            }
            Action::Disconnect => return Ok(()),
            Action::Drop(why) => return Err(End::Protocol(why)),
        }
    }
}

fn write_locked<S: Conn>(w: &Mutex<S>, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let mut g = w.lock().map_err(|_| std::io::Error::other("writer poisoned"))?;
    write_two(&mut *g, head, body)
}

/// Log unreadable ranges met in `r` once each (they are served as zeros).
fn note_unreadable(shared: &Shared, export: usize, disk: &dyn BlockSource, r: Range<u64>) {
    let bad = disk.unreadable(r);
    if bad.is_empty() {
        return;
    }
    let Ok(mut logged) = shared.logged.lock() else { return };
    for b in bad {
        if logged.iter().any(|(e, l)| *e == export && l.start <= b.start && b.end <= l.end) {
            continue;
        }
        tracing::warn!(
            "nbd: {}: unreadable bytes {:#x}..{:#x} served as zeros",
            shared.exports[export].name,
            b.start,
            b.end
        );
        logged.push((export, b));
    }
}

/// Split `offset..offset+len` into data pieces (at most [`CHUNK`] each) and holes.
pub fn read_plan(disk: &dyn BlockSource, offset: u64, len: u32) -> Vec<(Range<u64>, bool)> {
    let mut out = Vec::new();
    for (r, data) in pieces(disk, offset, len) {
        if !data {
            out.push((r, false));
            continue;
        }
        let mut p = r.start;
        while p < r.end {
            let e = (p + CHUNK).min(r.end);
            out.push((p..e, true));
            p = e;
        }
    }
    out
}

/// Answer a READ: structured (data and hole chunks) or simple (all bytes after the header).
fn serve_read<S: Conn>(
    shared: &Shared,
    export: usize,
    w: &Mutex<S>,
    sess: &Session,
    handle: u64,
    offset: u64,
    len: u32,
) -> std::io::Result<()> {
    let disk = &*shared.exports[export].disk;
    if !sess.structured {
        let mut buf = vec![0u8; len as usize];
        return match disk.read_at(offset, &mut buf) {
            Ok(()) => {
                note_unreadable(shared, export, disk, offset..offset + u64::from(len));
                write_locked(w, &simple_reply(0, handle), &buf)
            }
            Err(e) => {
                tracing::warn!("nbd: read at {offset:#x}: {e}");
                write_locked(w, &simple_reply(EIO, handle), &[])
            }
        };
    }
    let plan = read_plan(disk, offset, len);
    let last = plan.len().saturating_sub(1);
    let mut buf = Vec::new();
    for (i, (r, data)) in plan.into_iter().enumerate() {
        let flags = if i == last { REPLY_FLAG_DONE } else { 0 };
        let n = (r.end - r.start) as usize;
        if data {
            buf.resize(n, 0);
            if let Err(e) = disk.read_at(r.start, &mut buf[..n]) {
                tracing::warn!("nbd: read at {:#x}: {e}", r.start);
                return write_locked(w, &error_chunk(handle, EIO, "read error", Some(r.start)), &[]);
            }
            note_unreadable(shared, export, disk, r.clone());
            let mut head = chunk_header(flags, REPLY_TYPE_OFFSET_DATA, handle, (n + 8) as u32).to_vec();
            head.extend_from_slice(&r.start.to_be_bytes());
            write_locked(w, &head, &buf[..n])?;
        } else {
            let mut head = chunk_header(flags, REPLY_TYPE_OFFSET_HOLE, handle, 12).to_vec();
            head.extend_from_slice(&r.start.to_be_bytes());
            head.extend_from_slice(&(n as u32).to_be_bytes());
            write_locked(w, &head, &[])?;
        }
    }
    Ok(())
}

/// The `base:allocation` descriptors of `offset..offset+len`: (length, status).
pub fn allocation_descriptors(disk: &dyn BlockSource, offset: u64, len: u32, one: bool) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let cap = if one { 1 } else { MAX_DESCRIPTORS };
    for (r, data) in pieces(disk, offset, len) {
        let status = if data { 0 } else { STATE_HOLE | STATE_ZERO };
        let n = (r.end - r.start) as u32;
        let full = out.len() >= cap;
        match out.last_mut() {
            Some((l, st)) if *st == status => *l += n,
            _ if full => break,
            _ => out.push((n, status)),
        }
    }
    out
}

/// Data and hole pieces of a range, not split into chunks.
fn pieces(disk: &dyn BlockSource, offset: u64, len: u32) -> Vec<(Range<u64>, bool)> {
    let end = offset + u64::from(len);
    let mut out = Vec::new();
    let mut pos = offset;
    for d in disk.data_ranges(offset..end) {
        let d = d.start.max(offset)..d.end.min(end);
        if d.start >= d.end {
            continue;
        }
        if d.start > pos {
            out.push((pos..d.start, false));
        }
        out.push((d.clone(), true));
        pos = d.end;
    }
    if pos < end {
        out.push((pos..end, false));
    }
    out
}

/// Answer a BLOCK_STATUS with one `base:allocation` chunk.
fn serve_status<S: Conn>(
    disk: &dyn BlockSource,
    w: &Mutex<S>,
    handle: u64,
    offset: u64,
    len: u32,
    one: bool,
) -> std::io::Result<()> {
    let d = allocation_descriptors(disk, offset, len, one);
    let mut payload = BASE_ALLOCATION_ID.to_be_bytes().to_vec();
    for (l, st) in d {
        payload.extend_from_slice(&l.to_be_bytes());
        payload.extend_from_slice(&st.to_be_bytes());
    }
    let head = chunk_header(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, handle, payload.len() as u32);
    write_locked(w, &head, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::SparseMem;
    use std::io::Read;

    fn disk() -> SparseMem {
        let mut d = SparseMem { name: "t".into(), len: 16 << 20, ..Default::default() };
        d.regions.insert(1 << 20, vec![0xAA; 4096]);
        d.regions.insert(6 << 20, vec![0xBB; 9 << 20]);
        d
    }

    #[test]
    fn holes_are_holes_and_data_is_chunked() {
        let d = disk();
        let plan = read_plan(&d, 0, 16 << 20);
        assert_eq!(plan[0], (0..1 << 20, false));
        assert_eq!(plan[1], ((1 << 20)..(1 << 20) + 4096, true));
        assert_eq!(plan[2], ((1 << 20) + 4096..6 << 20, false));
        // 9 MiB of data in 4 MiB chunks, then the tail hole.
        let data: Vec<_> = plan.iter().filter(|p| p.1).map(|p| p.0.end - p.0.start).collect();
        assert_eq!(data, vec![4096, 4 << 20, 4 << 20, 1 << 20]);
        assert_eq!(plan.last(), Some(&((15 << 20)..16 << 20, false)));
        let total: u64 = plan.iter().map(|p| p.0.end - p.0.start).sum();
        assert_eq!(total, 16 << 20);
        let st = allocation_descriptors(&d, 0, 16 << 20, false);
        assert_eq!(st[0], (1 << 20, STATE_HOLE | STATE_ZERO));
        assert_eq!(st[1], (4096, 0));
        assert_eq!(st.iter().map(|x| u64::from(x.0)).sum::<u64>(), 16 << 20);
        assert_eq!(allocation_descriptors(&d, 0, 16 << 20, true), vec![(1 << 20, STATE_HOLE | STATE_ZERO)]);
    }

    #[test]
    fn serves_until_stopped() {
        let exports = vec![NbdExport { name: "d".into(), disk: Arc::new(disk()) }];
        let secret = Secret::from_user("unit-test-secret").unwrap();
        let server = NbdServer::bind("127.0.0.1:0".parse().unwrap(), exports, secret, Limits::default()).unwrap();
        let (addr, stop) = (server.local_addr().unwrap(), server.stop_handle().unwrap());
        let t = std::thread::spawn(move || server.run());
        let mut c = TcpStream::connect(addr).unwrap();
        let mut hello = [0u8; 18];
        c.read_exact(&mut hello).unwrap();
        assert_eq!(hello[..8], NBDMAGIC.to_be_bytes());
        c.write_all(&(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).to_be_bytes()).unwrap();
        let mut opt = IHAVEOPT.to_be_bytes().to_vec();
        opt.extend_from_slice(&OPT_EXPORT_NAME.to_be_bytes());
        let name = b"unit-test-secret/d";
        opt.extend_from_slice(&(name.len() as u32).to_be_bytes());
        opt.extend_from_slice(name);
        c.write_all(&opt).unwrap();
        let mut reply = [0u8; 10];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(u64::from_be_bytes(reply[..8].try_into().unwrap()), 16 << 20);
        drop(c);
        stop.stop();
        t.join().unwrap().unwrap();
    }
}
