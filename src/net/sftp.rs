//! Push over SFTP: a source's content written to a folder on an SSH host (russh-sftp on the
//! connection of `block::ssh`), through the copy pipeline of `extract` as a [`DataSink`].
//!
//! A file is written as `NAME.part` and renamed to `NAME` only once complete, so a final name
//! on the far side always means a whole file. A `NAME.part` left by an interrupted push is
//! continued: its length says how far the earlier push got (SFTP servers apply writes in
//! order, and we write in file order); the last MiB below it is sent again and the MiB before
//! that is read back and compared with the source, so a `.part` of other content starts over.

use crate::block::BlockSource;
use crate::block::ssh::{SshError, SshOptions, SshSession, SshTarget};
use crate::extract::{CopyOptions, CopyReport, DataSink, Sink, copy};
use russh_sftp::client::SftpSession;
use russh_sftp::client::fs::File;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use std::io::{self, SeekFrom};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Resume granularity: a `.part` is continued from its length rounded down to this, less one
/// more of it (sent again in case the far side's last write was torn).
const RESUME_UNIT: u64 = 1 << 20;
/// Longest remote text file we read (the resume journal).
const MAX_TEXT: u64 = 64 << 20;

/// Errors of a push.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Connecting or logging in.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// An SFTP request on a remote path failed.
    #[error("{host}: SFTP {op} {path}: {error}")]
    Sftp {
        /// host:port
        host: String,
        /// What we asked.
        op: &'static str,
        /// The remote path.
        path: String,
        /// The server's answer.
        error: String,
    },
    /// Reading the source or writing the stream failed.
    #[error("pushing {path}: {error}")]
    Copy {
        /// The remote path.
        path: String,
        /// What failed.
        #[source]
        error: io::Error,
    },
}

/// What one file's push did.
#[derive(Debug)]
pub struct PushReport {
    /// The copy: size, SHA-256 of the whole content (as read from the source), unreadable ranges.
    pub copy: CopyReport,
    /// Where an earlier `.part` was continued (0: sent from the start).
    pub resumed_at: u64,
}

/// An SFTP connection with a destination folder.
pub struct SftpPush {
    sftp: SftpSession,
    root: String,
    session: SshSession,
}

impl SftpPush {
    /// Connect, log in, start SFTP and create the destination folder `target.path` (and its
    /// parents) if missing.
    pub fn connect(target: &SshTarget, opts: &SshOptions) -> Result<Self, PushError> {
        let session = SshSession::connect(target, opts)?;
        let stream = session.sftp_channel()?;
        let cfg = russh_sftp::client::Config {
            max_write_packet_len: 64 << 10,
            max_concurrent_writes: 32,
            request_timeout_secs: opts.timeout.as_secs().max(10),
            ..Default::default()
        };
        let sftp = session.runtime().block_on(SftpSession::new_with_config(stream, cfg)).map_err(|e| {
            PushError::Sftp { host: session.host(), op: "start", path: String::new(), error: e.to_string() }
        })?;
        let root = if target.path.len() > 1 { target.path.trim_end_matches('/').to_string() } else { "/".into() };
        let push = Self { sftp, root, session };
        push.mkdir_p("")?;
        Ok(push)
    }

    fn err(&self, op: &'static str, path: &str, e: impl std::fmt::Display) -> PushError {
        PushError::Sftp { host: self.session.host(), op, path: path.into(), error: e.to_string() }
    }

    /// The remote path of `rel` (a "/"-separated path below the destination folder).
    pub fn remote(&self, rel: &str) -> String {
        let rel = rel.trim_matches('/');
        match (self.root.as_str(), rel) {
            (r, "") => r.to_string(),
            ("/", rel) => format!("/{rel}"),
            (r, rel) => format!("{r}/{rel}"),
        }
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.session.runtime().block_on(f)
    }

    /// Size of a remote file, `None` if it does not exist (or cannot be seen).
    pub fn size_of(&self, rel: &str) -> Option<u64> {
        self.block(self.sftp.metadata(self.remote(rel))).ok().and_then(|m| m.size)
    }

    /// Create the folder `rel` and the missing ones above it.
    pub fn mkdir_p(&self, rel: &str) -> Result<(), PushError> {
        let full = self.remote(rel);
        let mut cur = String::new();
        for c in full.split('/').filter(|c| !c.is_empty()) {
            cur.push('/');
            cur.push_str(c);
            if self.block(self.sftp.metadata(cur.clone())).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if let Err(e) = self.block(self.sftp.create_dir(cur.clone())) {
                // Someone else may have made it meanwhile.
                if !self.block(self.sftp.metadata(cur.clone())).is_ok_and(|m| m.is_dir()) {
                    return Err(self.err("mkdir", &cur, e));
                }
            }
        }
        Ok(())
    }

    /// A small remote text file (the resume journal), `None` if missing or too large.
    pub fn read_text(&self, rel: &str) -> Option<String> {
        if self.size_of(rel)? > MAX_TEXT {
            return None;
        }
        let bytes = self.block(self.sftp.read(self.remote(rel))).ok()?;
        String::from_utf8(bytes).ok()
    }

    /// Append a line to a remote text file (created if missing).
    pub fn append_line(&self, rel: &str, line: &str) -> Result<(), PushError> {
        let path = self.remote(rel);
        self.block(async {
            let flags = OpenFlags::CREATE | OpenFlags::WRITE | OpenFlags::APPEND;
            let mut f = self.sftp.open_with_flags(path.clone(), flags).await?;
            // Some servers ignore APPEND: write at the end explicitly.
            f.seek(SeekFrom::End(0)).await?;
            f.write_all(format!("{line}\n").as_bytes()).await?;
            f.shutdown().await?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        })
        .map_err(|e| self.err("append", &path, e))
    }

    /// Write a small file atomically: `rel.part`, then renamed over `rel`.
    pub fn write_atomic(&self, rel: &str, bytes: &[u8]) -> Result<(), PushError> {
        let part = format!("{rel}.part");
        let path = self.remote(&part);
        self.block(async {
            let mut f = self.sftp.create(path.clone()).await?;
            f.write_all(bytes).await?;
            f.shutdown().await?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        })
        .map_err(|e| self.err("write", &path, e))?;
        self.finish(&part, rel)
    }

    /// Rename `part` over `rel` (SFTPv3 rename refuses an existing target: remove it first).
    fn finish(&self, part: &str, rel: &str) -> Result<(), PushError> {
        let (from, to) = (self.remote(part), self.remote(rel));
        if self.block(self.sftp.metadata(to.clone())).is_ok() {
            self.block(self.sftp.remove_file(to.clone())).map_err(|e| self.err("remove", &to, e))?;
        }
        self.block(self.sftp.rename(from.clone(), to.clone())).map_err(|e| self.err("rename", &from, e))
    }

    /// Push all of `src` to `rel`: through `rel.part` (continued if one is there), renamed
    /// when complete. Unreadable source bytes are sent as zeros and reported.
    pub fn push(&self, src: &dyn BlockSource, rel: &str, opts: CopyOptions) -> Result<PushReport, PushError> {
        let part = format!("{rel}.part");
        let path = self.remote(&part);
        let size = src.len();
        let mut resumed_at = match self.size_of(&part) {
            Some(len) if len > 0 => (len.min(size) / RESUME_UNIT * RESUME_UNIT).saturating_sub(RESUME_UNIT),
            _ => 0,
        };
        if resumed_at > 0 && !self.same_tail(src, &path, resumed_at) {
            tracing::info!(path = %path, "the partial file holds other content: sending from the start");
            resumed_at = 0;
        }
        let flags =
            if resumed_at > 0 { OpenFlags::WRITE } else { OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE };
        let file =
            self.block(self.sftp.open_with_flags(path.clone(), flags)).map_err(|e| self.err("open", &path, e))?;
        let mut sink = SftpSink { push: self, file: Some(file), skip_below: resumed_at, pos: u64::MAX };
        let report =
            copy(src, Sink::Data(&mut sink), opts).map_err(|error| PushError::Copy { path: path.clone(), error })?;
        let file = sink.file.take().ok_or_else(|| self.err("close", &path, "file gone"))?;
        self.block(async {
            let mut file = file;
            file.flush().await?;
            // The size covers a hole at the end (holes are never sent) and cuts a longer `.part`.
            let mut attrs = FileAttributes::empty();
            attrs.size = Some(size);
            file.set_metadata(attrs).await?;
            // fsync@openssh.com where the server has it; not every server does.
            let _ = file.sync_all().await;
            file.shutdown().await?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        })
        .map_err(|e| self.err("close", &path, e))?;
        self.finish(&part, rel)?;
        Ok(PushReport { copy: report, resumed_at })
    }

    /// Whether the remote bytes just below `at` equal the source's.
    fn same_tail(&self, src: &dyn BlockSource, path: &str, at: u64) -> bool {
        let start = at.saturating_sub(RESUME_UNIT);
        let Ok(n) = usize::try_from(at - start) else { return false };
        let mut mine = vec![0u8; n];
        if src.read_at(start, &mut mine).is_err() {
            return false;
        }
        let theirs = self.block(async {
            let mut f = self.sftp.open(path.to_string()).await.ok()?;
            f.seek(SeekFrom::Start(start)).await.ok()?;
            let mut buf = vec![0u8; n];
            f.read_exact(&mut buf).await.ok()?;
            let _ = f.shutdown().await;
            Some(buf)
        });
        theirs.is_some_and(|t| t == mine)
    }
}

/// The copy pipeline's writer end: pieces in file order, holes skipped, everything below
/// `skip_below` already on the far side.
struct SftpSink<'a> {
    push: &'a SftpPush,
    file: Option<File>,
    skip_below: u64,
    pos: u64,
}

impl DataSink for SftpSink<'_> {
    fn write_data(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset.saturating_add(data.len() as u64);
        if end <= self.skip_below {
            return Ok(());
        }
        let start = offset.max(self.skip_below);
        let from = usize::try_from(start - offset).map_err(io::Error::other)?;
        let file = self.file.as_mut().ok_or_else(|| io::Error::other("file closed"))?;
        let seek = self.pos != start;
        self.push.block(async {
            if seek {
                file.seek(SeekFrom::Start(start)).await?;
            }
            file.write_all(&data[from..]).await
        })?;
        self.pos = end;
        Ok(())
    }
}
