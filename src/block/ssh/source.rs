//! A remote device or image read with `dd` over SSH exec channels.
//!
//! Random reads (VMFS metadata) fetch one 4 MiB chunk each: `dd if=PATH bs=4194304 skip=N
//! count=1`, plain operands that ESXi's busybox `dd` knows too, and keep the last few chunks for
//! reads that come back to them. Once reads go in order (two chunks in a row, or the caller
//! says so), one long `dd if=PATH bs=4194304 skip=N` streams the rest: a command per chunk
//! cost a round trip and a process start on the far side each (about 140 ms), which held a scan
//! to a fraction of what the link carries. The stream holds at most [`AHEAD`] chunks: while
//! nobody reads, the SSH window closes and the remote `dd` waits. A read elsewhere ends it.
//!
//! A chunk that fails is remembered: reads inside it then ask `dd` for exactly their sectors
//! (`bs=512`), so the `Tolerant` layer above narrows the failure down to the sector as it does
//! on a local disk. Never writes: the only command run on the path is `dd if=` (and the size
//! query), with the path shell-quoted.

use super::{SshError, SshOptions, SshSession, SshTarget, parse_size, shell_quote};
use crate::block::RawSource;
use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Bytes per remote read.
const CHUNK: u64 = 4 << 20;
/// Chunks a stream holds ahead of the reader.
const AHEAD: usize = 4;
/// Remote commands at once (OpenSSH's MaxSessions is 10; leave room for others).
const CHANNELS: usize = 7;
/// Fetched chunks kept for reads that come back to them.
const KEEP: usize = 8;
/// Times a read connects again after the connection ended, with waits of 1, 2, 4, ... s.
const RECONNECTS: u32 = 4;
/// Chunks remembered as failed (then read sector by sector).
const MAX_BAD: usize = 4096;

type Fetch = JoinHandle<io::Result<Vec<u8>>>;

/// A long `dd` handing over consecutive chunks from `next` on; dropping it stops the command.
struct Stream {
    next: u64,
    rx: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct State {
    ready: VecDeque<(u64, Arc<Vec<u8>>)>,
    stream: Option<Stream>,
    bad: BTreeSet<u64>,
    last: Option<u64>,
    run: u32,
}

/// How a read gets its chunk.
enum Plan {
    Fetch(Fetch),
    Stream(Stream),
}

/// A file or block device on an SSH host, read-only.
pub struct SshSource {
    state: Mutex<State>,
    slots: Arc<Semaphore>,
    path: String,
    name: String,
    len: u64,
    // Last: the runtime must outlive the fetches dropped with `state`.
    session: SshSession,
}

impl SshSource {
    /// Connect and find the size of `target.path` (`blockdev --getsize64`, else `stat -L -c %s`,
    /// else `wc -c`).
    pub fn open(target: &SshTarget, opts: &SshOptions) -> Result<Self, SshError> {
        let session = SshSession::connect(target, opts)?;
        let q = shell_quote(&target.path);
        let cmd = format!("blockdev --getsize64 {q} 2>/dev/null || stat -L -c %s {q} 2>/dev/null || wc -c < {q}");
        let out = session.check(&cmd, 256)?;
        let len = parse_size(&out).filter(|n| *n > 0).ok_or_else(|| SshError::Remote {
            host: session.host().to_string(),
            command: cmd.clone(),
            why: format!("no usable size in {:?}", String::from_utf8_lossy(&out[..out.len().min(80)])),
        })?;
        let name = format!("ssh://{}@{}{}", target.user, target.host_port(), target.path);
        Ok(Self {
            state: Mutex::new(State::default()),
            slots: Arc::new(Semaphore::new(CHANNELS)),
            path: target.path.clone(),
            name,
            len,
            session,
        })
    }

    /// Start fetching chunk `idx` on the runtime.
    fn spawn(&self, idx: u64) -> Fetch {
        let want = CHUNK.min(self.len.saturating_sub(idx * CHUNK));
        let cmd = format!("dd if={} bs={CHUNK} skip={idx} count=1", shell_quote(&self.path));
        self.spawn_cmd(cmd, want)
    }

    fn spawn_cmd(&self, cmd: String, want: u64) -> Fetch {
        let inner = self.session.inner();
        let slots = Arc::clone(&self.slots);
        self.session.runtime().spawn(async move {
            let _permit = slots.acquire_owned().await.map_err(|_| io::Error::other("source closed"))?;
            let want = usize::try_from(want).map_err(io::Error::other)?;
            let data = inner.check(&cmd, want).await.map_err(to_io)?;
            if data.len() != want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("`{cmd}` gave {} of {want} bytes", data.len()),
                ));
            }
            Ok(data)
        })
    }

    fn wait(&self, f: Fetch) -> io::Result<Vec<u8>> {
        self.session.runtime().block_on(f).map_err(io::Error::other)?
    }

    /// Read exactly the sectors of `offset..offset+buf.len()` (inside a chunk that failed).
    fn read_sectors(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let first = offset / 512;
        let end = offset.saturating_add(buf.len() as u64).min(self.len).div_ceil(512);
        let cmd = format!("dd if={} bs=512 skip={first} count={}", shell_quote(&self.path), end - first);
        let want = (end * 512).min(self.len) - first * 512;
        let data = self.wait(self.spawn_cmd(cmd, want))?;
        let skip = usize::try_from(offset - first * 512).map_err(io::Error::other)?;
        let n = buf.len().min(data.len().saturating_sub(skip));
        buf[..n].copy_from_slice(&data[skip..skip + n]);
        Ok(n)
    }

    /// Start streaming chunks from `idx` to the end.
    fn stream_from(&self, idx: u64) -> Stream {
        let len = self.len;
        let sizes = (idx..len.div_ceil(CHUNK)).map(move |i| CHUNK.min(len - i * CHUNK) as usize);
        let cmd = format!("dd if={} bs={CHUNK} skip={idx}", shell_quote(&self.path));
        let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
        let (inner, slots) = (self.session.inner(), Arc::clone(&self.slots));
        let task = self.session.runtime().spawn(async move {
            let Ok(_permit) = slots.acquire_owned().await else { return };
            inner.stream(&cmd, sizes, tx).await;
        });
        Stream { next: idx, rx, task }
    }

    /// Log in again after the connection ended, a few times with growing waits; the error of
    /// the last try when none succeeds (the read fails for good: `Tolerant` gives up on the
    /// device, as for a disk that went away).
    fn reconnect(&self) -> io::Result<()> {
        if let Ok(mut st) = self.state.lock() {
            st.stream = None;
        }
        let mut last = None;
        for attempt in 0..RECONNECTS {
            std::thread::sleep(std::time::Duration::from_secs(1 << attempt));
            tracing::warn!(source = %self.name, attempt = attempt + 1, "SSH connection lost: connecting again");
            match self.session.reconnect() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| io::Error::other("SSH connection lost"), to_io))
    }

    /// Follow the reading pattern: `run` counts chunks read in order (after two, a stream).
    fn follow(st: &mut State, idx: u64) {
        if st.last != Some(idx) {
            // `last` is None at the start, or after `advise_sequential` (which sets `run`).
            let next = st.last.map_or(st.run >= 2, |l| idx == l + 1);
            st.run = if next { st.run.saturating_add(1) } else { 0 };
            st.last = Some(idx);
        }
    }

    /// Chunk `idx` by `plan`; a stream that breaks there gets one fetch of the chunk alone.
    fn get(&self, idx: u64, plan: Plan) -> io::Result<Vec<u8>> {
        let mut s = match plan {
            Plan::Fetch(f) => return self.wait(f),
            Plan::Stream(s) => s,
        };
        match self.session.runtime().block_on(s.rx.recv()) {
            Some(Ok(data)) => {
                s.next += 1;
                if let Ok(mut st) = self.state.lock() {
                    st.stream = Some(s);
                }
                Ok(data)
            }
            broke => {
                if let Some(Err(e)) = broke {
                    tracing::debug!(source = %self.name, chunk = idx, error = %e, "remote stream broke");
                }
                drop(s);
                self.wait(self.spawn(idx))
            }
        }
    }
}

/// Errors of the connection itself are fatal for `Tolerant` (no retry helps a closed
/// connection); a failing command is an I/O error of those bytes.
fn to_io(e: SshError) -> io::Error {
    match e {
        SshError::Connect { .. } => io::Error::from_raw_os_error(libc::ENODEV),
        e => io::Error::other(e.to_string()),
    }
}

impl RawSource for SshSource {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn sector_size(&self) -> u32 {
        512
    }
    fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let idx = offset / CHUNK;
        let plan = {
            let mut st = self.state.lock().map_err(|_| io::Error::other("poisoned"))?;
            if st.bad.contains(&idx) {
                drop(st);
                return self.read_sectors(offset, buf);
            }
            if let Some((_, data)) = st.ready.iter().find(|(i, _)| *i == idx) {
                return Ok(copy_out(data, offset - idx * CHUNK, buf));
            }
            Self::follow(&mut st, idx);
            if st.run >= 2 {
                match st.stream.take() {
                    Some(s) if s.next == idx => Plan::Stream(s),
                    _ => Plan::Stream(self.stream_from(idx)),
                }
            } else {
                // A read elsewhere: a stream left running would hold the connection's buffers.
                st.stream = None;
                Plan::Fetch(self.spawn(idx))
            }
        };
        let mut got = self.get(idx, plan);
        if got.is_err() && self.session.is_closed() {
            // The connection ended (network, server restart): log in again and read again.
            // Only errors after that count against the chunk.
            got = self.reconnect().and_then(|()| self.get(idx, Plan::Fetch(self.spawn(idx))));
        }
        match got {
            Ok(data) => {
                let data = Arc::new(data);
                let n = copy_out(&data, offset - idx * CHUNK, buf);
                let mut st = self.state.lock().map_err(|_| io::Error::other("poisoned"))?;
                if st.ready.len() >= KEEP {
                    st.ready.pop_front();
                }
                st.ready.push_back((idx, data));
                Ok(n)
            }
            Err(e) => {
                tracing::debug!(source = %self.name, chunk = idx, error = %e, "remote read failed");
                if let Ok(mut st) = self.state.lock()
                    && st.bad.len() < MAX_BAD
                {
                    st.bad.insert(idx);
                }
                Err(e)
            }
        }
    }
    fn advise_sequential(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.run = 2;
            st.last = None;
        }
    }
}

fn copy_out(data: &[u8], at: u64, buf: &mut [u8]) -> usize {
    let at = usize::try_from(at).unwrap_or(usize::MAX).min(data.len());
    let n = buf.len().min(data.len() - at);
    buf[..n].copy_from_slice(&data[at..at + n]);
    n
}

impl Drop for SshSource {
    fn drop(&mut self) {
        if let Ok(mut st) = self.state.lock() {
            st.stream = None;
        }
    }
}
