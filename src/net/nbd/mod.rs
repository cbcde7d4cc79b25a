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

pub mod proto;

use super::NetError;
use super::auth::{Secret, ct_eq};
use crate::block::{BlockSource, Source};
use proto::*;
use std::io::{IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

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
    /// Bind `addr` (port 0: any free port) for these exports.
    pub fn bind(addr: SocketAddr, exports: Vec<NbdExport>, secret: Secret, limits: Limits) -> Result<Self, NetError> {
        let listener = TcpListener::bind(addr).map_err(|e| NetError::Bind(addr.to_string(), e))?;
        let shared = Arc::new(Shared {
            exports,
            secret,
            limits,
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
fn read_full(s: &mut TcpStream, buf: &mut [u8], deadline: Option<Instant>) -> Result<(), End> {
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
fn write_two(s: &mut TcpStream, head: &[u8], body: &[u8]) -> std::io::Result<()> {
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

/// Find the export an export name names, if it carries the secret.
fn lookup(shared: &Shared, name: &[u8]) -> Option<usize> {
    let slash = name.iter().position(|&b| b == b'/')?;
    let (secret, rest) = (&name[..slash], &name[slash + 1..]);
    if !shared.secret.matches(secret) {
        return None;
    }
    let rest = rest.strip_prefix(b"/").unwrap_or(rest);
    shared.exports.iter().position(|e| ct_eq(e.name.trim_start_matches('/').as_bytes(), rest))
}

fn transmission_flags() -> u16 {
    // Read-only: several connections cannot see each other's writes, as there are none.
    FLAG_HAS_FLAGS | FLAG_READ_ONLY | FLAG_CAN_MULTI_CONN
}

/// The negotiation outcome.
struct Chosen {
    export: usize,
    structured: bool,
    base_allocation: bool,
}

/// One connection: handshake, then transmission.
fn session(mut s: TcpStream, shared: &Shared) -> Result<(), End> {
    let lim = &shared.limits;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(lim.write_timeout))?;
    let Some(chosen) = handshake(&mut s, shared)? else { return Ok(()) };
    s.set_read_timeout(Some(lim.idle_timeout))?;
    transmission(s, shared, chosen)
}

/// The fixed newstyle negotiation; None when the client aborted.
fn handshake(s: &mut TcpStream, shared: &Shared) -> Result<Option<Chosen>, End> {
    let lim = &shared.limits;
    let deadline = Some(Instant::now() + lim.handshake_timeout);
    let mut hello = NBDMAGIC.to_be_bytes().to_vec();
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    s.write_all(&hello)?;
    let mut cf = [0u8; 4];
    read_full(s, &mut cf, deadline)?;
    let cflags = u32::from_be_bytes(cf);
    if cflags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(End::Protocol("unknown client flags"));
    }
    if cflags & FLAG_C_FIXED_NEWSTYLE == 0 {
        // Without fixed newstyle an unsupported option could not be answered.
        return Err(End::Protocol("client does not speak fixed newstyle"));
    }
    let no_zeroes = cflags & FLAG_C_NO_ZEROES != 0;
    let (mut structured, mut base_allocation) = (false, false);
    for _ in 0..lim.max_options {
        let mut h = [0u8; OPTION_HEADER_LEN];
        read_full(s, &mut h, deadline)?;
        let Some((code, len)) = parse_option_header(&h) else {
            return Err(End::Protocol("option without IHAVEOPT magic"));
        };
        if len > lim.max_option {
            return Err(End::Protocol("option data too long"));
        }
        let mut data = vec![0u8; len as usize];
        read_full(s, &mut data, deadline)?;
        let reply = |s: &mut TcpStream, kind: u32, d: &[u8]| s.write_all(&option_reply(code, kind, d));
        let opt = match parse_option(code, &data) {
            Ok(o) => o,
            Err(e) => {
                reply(s, REP_ERR_INVALID, e.0.as_bytes())?;
                continue;
            }
        };
        match opt {
            Opt::ExportName(name) => {
                // No way to answer "unknown" here: the protocol says close.
                let Some(i) = lookup(shared, &name) else { return Err(End::Protocol("unknown export name")) };
                let mut v = shared.exports[i].disk.len().to_be_bytes().to_vec();
                v.extend_from_slice(&transmission_flags().to_be_bytes());
                if !no_zeroes {
                    v.extend_from_slice(&[0u8; 124]);
                }
                s.write_all(&v)?;
                return Ok(Some(Chosen { export: i, structured: false, base_allocation: false }));
            }
            Opt::Abort => {
                reply(s, REP_ACK, &[])?;
                return Ok(None);
            }
            Opt::List => reply(s, REP_ERR_POLICY, b"export names carry the secret: they are not listed")?,
            Opt::StartTls => reply(s, REP_ERR_UNSUP, b"TLS is not offered: the export name carries the secret")?,
            Opt::StructuredReply => {
                structured = true;
                reply(s, REP_ACK, &[])?;
            }
            Opt::Info { go, name, requests } => {
                let Some(i) = lookup(shared, &name) else {
                    reply(s, REP_ERR_UNKNOWN, b"no such export")?;
                    continue;
                };
                let size = shared.exports[i].disk.len();
                reply(s, REP_INFO, &info_export(size, transmission_flags()))?;
                if requests.contains(&INFO_BLOCK_SIZE) {
                    reply(s, REP_INFO, &info_block_size(1, PREFERRED_BLOCK, lim.max_request))?;
                }
                reply(s, REP_ACK, &[])?;
                if go {
                    return Ok(Some(Chosen { export: i, structured, base_allocation }));
                }
            }
            Opt::MetaContext { set, name, queries } => {
                if !structured {
                    reply(s, REP_ERR_INVALID, b"negotiate structured replies first")?;
                    continue;
                }
                if lookup(shared, &name).is_none() {
                    reply(s, REP_ERR_UNKNOWN, b"no such export")?;
                    continue;
                }
                // LIST with no query lists every context; "base:" lists the namespace.
                let wanted = |q: &[u8]| q == BASE_ALLOCATION.as_bytes() || (!set && q == b"base:");
                let hit = if set {
                    queries.iter().any(|q| wanted(q))
                } else {
                    queries.is_empty() || queries.iter().any(|q| wanted(q))
                };
                if hit {
                    reply(s, REP_META_CONTEXT, &meta_context(BASE_ALLOCATION_ID, BASE_ALLOCATION))?;
                }
                if set {
                    base_allocation = hit;
                }
                reply(s, REP_ACK, &[])?;
            }
            Opt::Unknown(_) => reply(s, REP_ERR_UNSUP, b"option not supported")?,
        }
    }
    Err(End::Protocol("too many options"))
}

/// A request handed to a worker.
enum Job {
    Read { handle: u64, offset: u64, len: u32 },
    Status { handle: u64, offset: u64, len: u32, one: bool },
}

/// Serve requests until the client disconnects or breaks the protocol.
fn transmission(mut s: TcpStream, shared: &Shared, c: Chosen) -> Result<(), End> {
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
fn read_requests(
    s: &mut TcpStream,
    sess: &Session,
    writer: &Mutex<TcpStream>,
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

fn write_locked(w: &Mutex<TcpStream>, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let mut g = w.lock().map_err(|_| std::io::Error::other("writer poisoned"))?;
    write_two(&mut g, head, body)
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
fn serve_read(
    shared: &Shared,
    export: usize,
    w: &Mutex<TcpStream>,
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
fn serve_status(
    disk: &dyn BlockSource,
    w: &Mutex<TcpStream>,
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
