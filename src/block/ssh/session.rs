//! One SSH connection (russh on ring): host key check, login, remote commands, SFTP channels.
//!
//! The rest of the program is synchronous; the connection runs on its own small tokio runtime
//! and the sync methods block on it. Spawned work (the source's read-ahead) holds only the
//! shared [`Inner`], never the runtime, so the runtime is always dropped from a plain thread.

use super::{SshError, SshTarget};
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelStream, client::Msg};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Asks someone whether to accept a host key: `host:port` and the fingerprint; `true` accepts.
pub type AskHostKey = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// How the server's host key gets accepted.
#[derive(Clone)]
pub enum HostKeyCheck {
    /// Only this fingerprint (`SHA256:base64`, as `ssh-keygen -lf` and `ssh` print it).
    Expect(String),
    /// Ask someone: called with `host:port` and the fingerprint; `true` accepts.
    Ask(AskHostKey),
    /// Accept none: nobody to ask and nothing given (the error then names the fingerprint).
    Refuse,
}

/// How to log in; each given way is tried, the key first.
#[derive(Clone, Default)]
pub struct Auth {
    /// A private key file (OpenSSH or PEM format).
    pub key_file: Option<PathBuf>,
    /// The key file's passphrase, if it has one.
    pub passphrase: Option<String>,
    /// A password.
    pub password: Option<String>,
}

/// What a connection needs besides the target.
#[derive(Clone)]
pub struct SshOptions {
    /// Host key acceptance.
    pub host_key: HostKeyCheck,
    /// Login.
    pub auth: Auth,
    /// Longest wait for one remote command or the connection itself.
    pub timeout: Duration,
}

/// Whether `given` (with or without the `SHA256:` prefix and base64 padding) names `found`.
pub fn fingerprint_matches(given: &str, found: &str) -> bool {
    let norm = |s: &str| s.trim().trim_start_matches("SHA256:").trim_end_matches('=').to_string();
    !norm(given).is_empty() && norm(given) == norm(found)
}

struct Client {
    host: String,
    check: HostKeyCheck,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let fp = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
            PublicKeyOrCertificate::Certificate(c) => c.public_key().fingerprint(HashAlg::Sha256),
        }
        .to_string();
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(fp.clone());
        }
        Ok(match &self.check {
            HostKeyCheck::Expect(e) => fingerprint_matches(e, &fp),
            // A person answers on the terminal: let the runtime's other work go on meanwhile.
            HostKeyCheck::Ask(ask) => tokio::task::block_in_place(|| ask(&self.host, &fp)),
            HostKeyCheck::Refuse => false,
        })
    }
}

/// The fingerprint the host key check saw.
fn seen_fp(seen: &Mutex<Option<String>>) -> String {
    seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default()
}

/// What a remote command gave.
#[derive(Debug)]
pub struct Output {
    /// Exit status (`None`: killed by a signal or the server said nothing).
    pub status: Option<u32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// The start of standard error (at most [`MAX_STDERR`] bytes).
    pub stderr: Vec<u8>,
}

/// Standard error kept from a command: enough for a message.
const MAX_STDERR: usize = 4096;

/// The connection, shared by the sync side and spawned tasks.
pub(super) struct Inner {
    handle: Handle<Client>,
    host: String,
    timeout: Duration,
}

impl Inner {
    fn remote(&self, command: &str, why: String) -> SshError {
        SshError::Remote { host: self.host.clone(), command: command.to_string(), why }
    }

    /// Run `command`; standard output longer than `max_out` bytes is an error (a hostile or
    /// confused server cannot make us allocate more than we asked for).
    pub(super) async fn exec(&self, command: &str, max_out: usize) -> Result<Output, SshError> {
        let t = std::time::Instant::now();
        match tokio::time::timeout(self.timeout, self.exec_inner(command, max_out)).await {
            Ok(r) => {
                tracing::debug!(host = %self.host, command, ms = t.elapsed().as_millis(), "remote command");
                r
            }
            Err(_) => Err(self.remote(command, format!("no answer within {} s", self.timeout.as_secs()))),
        }
    }

    async fn exec_inner(&self, command: &str, max_out: usize) -> Result<Output, SshError> {
        let conn = |error| SshError::Connect { host: self.host.clone(), error };
        let mut ch = self.handle.channel_open_session().await.map_err(conn)?;
        // No reply asked: a refused command ends without an exit status, which `check` reports;
        // waiting for the reply would cost a round trip per read.
        ch.exec(false, command).await.map_err(conn)?;
        let mut out = Output { status: None, stdout: Vec::with_capacity(max_out.min(8 << 20)), stderr: Vec::new() };
        let mut eof = false;
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    if out.stdout.len().saturating_add(data.len()) > max_out {
                        let _ = ch.close().await;
                        return Err(self.remote(command, format!("more than the {max_out} bytes asked for")));
                    }
                    out.stdout.extend_from_slice(&data);
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    let room = MAX_STDERR.saturating_sub(out.stderr.len());
                    out.stderr.extend_from_slice(&data[..data.len().min(room)]);
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    out.status = Some(exit_status);
                    if eof {
                        break;
                    }
                }
                // The output is complete at EOF; the exit status may come before or after it.
                ChannelMsg::Eof => {
                    eof = true;
                    if out.status.is_some() {
                        break;
                    }
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        // Not waiting for the server's close of a finished command saves a round trip.
        let _ = ch.close().await;
        Ok(out)
    }

    /// Run `command` and hand its standard output on in pieces of `sizes` bytes (one per
    /// call, in order) through `out`, which holds at most a few: while nobody takes them, the
    /// channel's window closes and the remote command waits. Ends when `sizes` is exhausted,
    /// when the receiver is gone, or with an error for the piece the output fell short of.
    pub(super) async fn stream(
        &self,
        command: &str,
        mut sizes: impl Iterator<Item = usize>,
        out: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    ) {
        let short = |why: String| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, why);
        let mut ch = match self.handle.channel_open_session().await {
            Ok(ch) => ch,
            Err(e) => {
                let _ = out.send(Err(std::io::Error::other(format!("{}: SSH: {e}", self.host)))).await;
                return;
            }
        };
        if let Err(e) = ch.exec(false, command).await {
            let _ = out.send(Err(std::io::Error::other(format!("{}: SSH: {e}", self.host)))).await;
            return;
        }
        let Some(mut want) = sizes.next() else { return };
        let mut piece = Vec::with_capacity(want);
        let mut stderr = Vec::new();
        loop {
            let msg = match tokio::time::timeout(self.timeout, ch.wait()).await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => {
                    let why = format!("`{command}`: no data within {} s", self.timeout.as_secs());
                    let _ = out.send(Err(std::io::Error::other(why))).await;
                    let _ = ch.close().await;
                    return;
                }
            };
            match msg {
                ChannelMsg::Data { data } => {
                    let mut data = &data[..];
                    while !data.is_empty() {
                        let n = data.len().min(want - piece.len());
                        piece.extend_from_slice(&data[..n]);
                        data = &data[n..];
                        if piece.len() == want {
                            if out.send(Ok(std::mem::take(&mut piece))).await.is_err() {
                                let _ = ch.close().await;
                                return;
                            }
                            match sizes.next() {
                                Some(w) => {
                                    want = w;
                                    piece = Vec::with_capacity(want);
                                }
                                None => {
                                    let _ = ch.close().await;
                                    return;
                                }
                            }
                        }
                    }
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    let room = MAX_STDERR.saturating_sub(stderr.len());
                    stderr.extend_from_slice(&data[..data.len().min(room)]);
                }
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
        let err = String::from_utf8_lossy(&stderr).trim().to_string();
        let why = format!(
            "`{command}` ended {} bytes into a {want}-byte piece{}",
            piece.len(),
            if err.is_empty() { String::new() } else { format!(": {err}") }
        );
        let _ = out.send(Err(short(why))).await;
        let _ = ch.close().await;
    }

    /// A command that must succeed: its standard output, else an error with its stderr.
    pub(super) async fn check(&self, command: &str, max_out: usize) -> Result<Vec<u8>, SshError> {
        let o = self.exec(command, max_out).await?;
        if o.status == Some(0) {
            return Ok(o.stdout);
        }
        let status = o.status.map_or("no exit status".to_string(), |s| format!("exit status {s}"));
        let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
        Err(self.remote(command, if err.is_empty() { status } else { format!("{status}: {err}") }))
    }
}

/// A logged-in SSH connection.
pub struct SshSession {
    // Field order: the connection goes before the runtime that drives it.
    inner: Mutex<Arc<Inner>>,
    target: SshTarget,
    /// What logging in again takes: the options, with the host key accepted the first time
    /// (nobody is asked twice, and a different key is refused).
    again: SshOptions,
    rt: tokio::runtime::Runtime,
}

impl SshSession {
    /// Connect, check the host key, log in.
    pub fn connect(target: &SshTarget, opts: &SshOptions) -> Result<Self, SshError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ssh")
            .enable_all()
            .build()
            .map_err(SshError::Runtime)?;
        let host = target.host_port();
        let (handle, fp) = rt.block_on(Self::login(target, opts, &host))?;
        let inner = Mutex::new(Arc::new(Inner { handle, host, timeout: opts.timeout }));
        let again = SshOptions { host_key: HostKeyCheck::Expect(fp), ..opts.clone() };
        Ok(Self { inner, target: target.clone(), again, rt })
    }

    /// Whether the connection has ended (the server went away, the network dropped it).
    pub fn is_closed(&self) -> bool {
        self.inner().handle.is_closed()
    }

    /// Connect and log in again after the connection ended; work started before keeps the
    /// old (dead) connection and fails, later work uses the new one.
    pub fn reconnect(&self) -> Result<(), SshError> {
        let host = self.target.host_port();
        let (handle, _) = self.rt.block_on(Self::login(&self.target, &self.again, &host))?;
        let fresh = Arc::new(Inner { handle, host, timeout: self.again.timeout });
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        tracing::info!(host = %self.target.host_port(), "SSH: connected again");
        Ok(())
    }

    /// Log in; the handle and the host key's fingerprint.
    async fn login(target: &SshTarget, opts: &SshOptions, host: &str) -> Result<(Handle<Client>, String), SshError> {
        let seen = Arc::new(Mutex::new(None));
        let client = Client { host: host.to_string(), check: opts.host_key.clone(), seen: Arc::clone(&seen) };
        let config = client::Config {
            // Keep a long scan's connection alive through NAT and firewalls.
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 8,
            // Larger windows than the default: reads of MiBs per command without stalls.
            window_size: 16 << 20,
            nodelay: true,
            // AES-GCM first: servers and this client have AES in hardware, where it outruns
            // ChaCha20 (russh's first choice), and a scan pushes every byte through it.
            preferred: russh::Preferred {
                cipher: std::borrow::Cow::Owned(
                    [russh::cipher::AES_256_GCM, russh::cipher::CHACHA20_POLY1305]
                        .into_iter()
                        .chain(russh::Preferred::DEFAULT.cipher.iter().copied())
                        .fold(Vec::new(), |mut v, c| {
                            if !v.contains(&c) {
                                v.push(c);
                            }
                            v
                        }),
                ),
                ..russh::Preferred::DEFAULT
            },
            ..Default::default()
        };
        let conn = |error| SshError::Connect { host: host.to_string(), error };
        let connect = client::connect(Arc::new(config), (target.host.as_str(), target.port), client);
        let mut handle = match tokio::time::timeout(opts.timeout, connect).await {
            Err(_) => {
                return Err(SshError::Connect { host: host.to_string(), error: russh::Error::ConnectionTimeout });
            }
            Ok(Err(russh::Error::UnknownKey)) => {
                let found = seen.lock().ok().and_then(|s| s.clone()).unwrap_or_else(|| "(none shown)".into());
                let expected = match &opts.host_key {
                    HostKeyCheck::Expect(e) => Some(e.clone()),
                    _ => None,
                };
                return Err(SshError::HostKey { host: host.to_string(), found, expected });
            }
            Ok(r) => r.map_err(conn)?,
        };
        let mut tried = Vec::new();
        if let Some(path) = &opts.auth.key_file {
            tried.push(format!("key {}", path.display()));
            let key = russh::keys::load_secret_key(path, opts.auth.passphrase.as_deref())
                .map_err(|error| SshError::Key { file: path.display().to_string(), error })?;
            let hash = handle.best_supported_rsa_hash().await.map_err(conn)?.flatten();
            let r = handle
                .authenticate_publickey(target.user.clone(), PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                .await
                .map_err(conn)?;
            if r.success() {
                return Ok((handle, seen_fp(&seen)));
            }
        }
        if let Some(pw) = &opts.auth.password {
            tried.push("password".to_string());
            if handle.authenticate_password(target.user.clone(), pw.clone()).await.map_err(conn)?.success() {
                return Ok((handle, seen_fp(&seen)));
            }
        }
        if tried.is_empty() {
            tried.push("no key file and no password given".into());
        }
        Err(SshError::Auth { host: host.to_string(), user: target.user.clone(), how: tried.join(", ") })
    }

    /// The target this session was opened for.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// `host:port`.
    pub fn host(&self) -> String {
        self.target.host_port()
    }

    /// Run a command to its end; standard output is bounded by `max_out` bytes.
    pub fn exec(&self, command: &str, max_out: usize) -> Result<Output, SshError> {
        self.rt.block_on(self.inner().exec(command, max_out))
    }

    /// Run a command that must exit with status 0; its standard output.
    pub fn check(&self, command: &str, max_out: usize) -> Result<Vec<u8>, SshError> {
        self.rt.block_on(self.inner().check(command, max_out))
    }

    /// A channel running the `sftp` subsystem, as a byte stream for an SFTP client.
    pub fn sftp_channel(&self) -> Result<ChannelStream<Msg>, SshError> {
        let inner = &self.inner();
        let conn = |error| SshError::Connect { host: inner.host.clone(), error };
        self.rt.block_on(async {
            let ch = inner.handle.channel_open_session().await.map_err(conn)?;
            ch.request_subsystem(true, "sftp").await.map_err(conn)?;
            Ok(ch.into_stream())
        })
    }

    /// The runtime the connection runs on (the SFTP client runs its futures there too).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// The current connection.
    pub(super) fn inner(&self) -> Arc<Inner> {
        Arc::clone(&self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        let inner = &self.inner();
        let _ = self.rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(2),
                inner.handle.disconnect(russh::Disconnect::ByApplication, "", "en"),
            )
            .await
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_compare_as_openssh_prints_them() {
        let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        assert!(fingerprint_matches(fp, fp));
        assert!(fingerprint_matches("uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s=", fp));
        assert!(!fingerprint_matches("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2t", fp));
        assert!(!fingerprint_matches("", fp));
        assert!(!fingerprint_matches("SHA256:", "SHA256:"));
    }
}
