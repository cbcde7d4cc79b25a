//! NBD over TLS: after NBD_OPT_STARTTLS is acknowledged, the TCP socket goes to a pump thread
//! that runs the rustls session (the handshake, then records both ways) with non-blocking I/O
//! under poll(2), and the session code goes on, unchanged, on the other end of a
//! `UnixStream::pair()` in plaintext. A rustls stream cannot be read by one thread while
//! worker threads write replies; a socket pair can, like the TCP socket it stands for.
//!
//! Bounds: the TLS handshake must end by the handshake deadline (a client that stops in the
//! middle, or sends garbage, ends its connection, nothing else); TLS records waiting for a
//! client that does not read for the write timeout end the connection; rustls' own buffer
//! limit and the pump's one buffer hold the memory of a session in each direction. The
//! session thread joins its pump before it gives its connection slot back, so the connection
//! limit counts TLS sessions whole.

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_rustls::rustls::{ServerConfig, ServerConnection};

/// What the session code needs of its connection: TCP without TLS, the plaintext end of a
/// socket pair with it.
pub trait Conn: Read + Write + Send + Sized {
    fn try_clone(&self) -> io::Result<Self>;
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()>;
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

macro_rules! conn {
    ($t:ty) => {
        impl Conn for $t {
            fn try_clone(&self) -> io::Result<Self> {
                <$t>::try_clone(self)
            }
            fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
                <$t>::set_read_timeout(self, d)
            }
            fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
                <$t>::set_write_timeout(self, d)
            }
            fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                <$t>::shutdown(self, how)
            }
        }
    };
}
conn!(TcpStream);
conn!(UnixStream);

/// Plaintext moved per step (one TLS record's worth).
const STEP: usize = 16 << 10;

/// The pump thread of one TLS connection.
pub struct Pump(JoinHandle<()>);

impl Pump {
    /// Wait for the pump to end: it does once every clone of the plaintext end is closed and
    /// what is left is sent (bounded by the write timeout), or at once when the client is gone.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

/// Start TLS on `tcp` (NBD_REP_ACK to STARTTLS already sent): the handshake must end by
/// `deadline`; a client that accepts no bytes for `stall` is dropped. Returns the plaintext
/// end the session goes on with.
pub fn start(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    deadline: Instant,
    stall: Duration,
) -> io::Result<(UnixStream, Pump)> {
    let tls = ServerConnection::new(config).map_err(io::Error::other)?;
    let (session_end, pump_end) = UnixStream::pair()?;
    tcp.set_nonblocking(true)?;
    pump_end.set_nonblocking(true)?;
    let t = std::thread::Builder::new().name("nbd-tls".into()).spawn(move || {
        let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        if let Err(e) = run(tcp, pump_end, tls, deadline, stall) {
            tracing::info!("nbd: {peer}: TLS: {e}");
        }
    })?;
    Ok((session_end, Pump(t)))
}

fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

/// The pump loop: TLS records between `tcp` and rustls, plaintext between rustls and `plain`.
fn run(
    mut tcp: TcpStream,
    mut plain: UnixStream,
    mut tls: ServerConnection,
    deadline: Instant,
    stall: Duration,
) -> io::Result<()> {
    // Decrypted bytes not yet taken by the session, and where they start.
    let mut down = Vec::with_capacity(STEP);
    let mut down_at = 0;
    let mut up = vec![0u8; STEP];
    // The client sent close_notify or closed; the session closed its end.
    let (mut client_done, mut session_done) = (false, false);
    // Since when TLS records have waited for the client without any being taken.
    let mut out_waiting: Option<Instant> = None;
    loop {
        // TLS records to the client.
        let mut sent = false;
        while tls.wants_write() {
            match tls.write_tls(&mut tcp) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => sent = true,
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        out_waiting = if !tls.wants_write() || sent { None } else { out_waiting.or(Some(Instant::now())) };

        // Decrypted bytes to the session.
        loop {
            if down_at == down.len() {
                down.clear();
                down_at = 0;
                down.resize(STEP, 0);
                match tls.reader().read(&mut down) {
                    Ok(n) => {
                        down.truncate(n);
                        if n == 0 {
                            // close_notify: nothing more will come.
                            client_done = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        down.clear();
                        break;
                    }
                    Err(_) => {
                        // Closed without close_notify (after the last buffered byte).
                        down.clear();
                        client_done = true;
                        break;
                    }
                }
            }
            match plain.write(&down[down_at..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => down_at += n,
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }

        // The session's bytes into TLS, once the handshake is done and the last records left.
        let mut took = false;
        if !session_done && !tls.is_handshaking() && !tls.wants_write() {
            match plain.read(&mut up) {
                Ok(0) => {
                    session_done = true;
                    tls.send_close_notify();
                    took = true;
                }
                Ok(n) => {
                    // The outgoing buffer is empty and holds 64 KiB: all of it is taken.
                    tls.writer().write_all(&up[..n])?;
                    took = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }

        // TLS records from the client.
        let mut got = false;
        if !client_done && tls.wants_read() {
            match tls.read_tls(&mut tcp) {
                Ok(0) => client_done = true,
                Ok(_) => {
                    got = true;
                    if let Err(e) = tls.process_new_packets() {
                        // Tell the client why (best effort), then close.
                        let _ = tls.write_tls(&mut tcp);
                        return Err(io::Error::other(e));
                    }
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }

        if session_done && !tls.wants_write() {
            // All sent, close_notify included.
            let _ = tcp.shutdown(Shutdown::Write);
            return Ok(());
        }
        if client_done && down_at == down.len() {
            // The client is gone and the session has all it sent: closing our end tells it.
            return Ok(());
        }
        if sent || took || got {
            continue;
        }

        // Nothing moved: wait for one of the sockets, within the bounds.
        let now = Instant::now();
        let mut wait = Duration::from_secs(10);
        if tls.is_handshaking() {
            if now >= deadline {
                return Err(io::Error::new(ErrorKind::TimedOut, "TLS handshake took too long"));
            }
            wait = wait.min(deadline - now);
        }
        if let Some(since) = out_waiting {
            let waited = now.duration_since(since);
            if waited >= stall {
                return Err(io::Error::new(ErrorKind::TimedOut, "client stopped taking data"));
            }
            wait = wait.min(stall - waited);
        }
        let mut tcp_ev = PollFlags::empty();
        if tls.wants_read() {
            tcp_ev |= PollFlags::POLLIN;
        }
        if tls.wants_write() {
            tcp_ev |= PollFlags::POLLOUT;
        }
        let mut plain_ev = PollFlags::empty();
        if down_at < down.len() {
            plain_ev |= PollFlags::POLLOUT;
        }
        if !session_done && !tls.is_handshaking() && !tls.wants_write() {
            plain_ev |= PollFlags::POLLIN;
        }
        // Only sockets we wait on are polled: a hung-up socket we do not read would
        // otherwise wake us at once, again and again.
        let mut fds = Vec::with_capacity(2);
        if !tcp_ev.is_empty() {
            fds.push(PollFd::new(tcp.as_fd(), tcp_ev));
        }
        if !plain_ev.is_empty() {
            fds.push(PollFd::new(plain.as_fd(), plain_ev));
        }
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::*;
    use super::super::{Limits, NbdExport, NbdServer, StopHandle};
    use crate::block::SparseMem;
    use crate::net::{Secret, tls::TlsIdentity};
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio_rustls::rustls;

    const NAME: &[u8] = b"unit-test-secret/d";

    fn serve(limits: Limits) -> (SocketAddr, StopHandle, std::thread::JoinHandle<()>, TlsIdentity) {
        let mut d = SparseMem { name: "t".into(), len: 4 << 20, ..Default::default() };
        d.regions.insert(1 << 20, vec![0xAA; 4096]);
        let exports = vec![NbdExport { name: "d".into(), disk: Arc::new(d) }];
        let secret = Secret::from_user("unit-test-secret").unwrap();
        let id = TlsIdentity::generate_with_ca(vec!["127.0.0.1".into()]).unwrap();
        let server =
            NbdServer::bind_with_tls("127.0.0.1:0".parse().unwrap(), exports, secret, limits, Some(&id)).unwrap();
        let (addr, stop) = (server.local_addr().unwrap(), server.stop_handle().unwrap());
        let t = std::thread::spawn(move || server.run().unwrap());
        (addr, stop, t, id)
    }

    /// Connect and greet; a connection refused for the limit is tried again (a slot comes
    /// back when its session thread has ended, just after the client saw the close).
    fn hello(addr: SocketAddr) -> TcpStream {
        for _ in 0..100 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut h = [0u8; 18];
            if c.read_exact(&mut h).is_err() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            c.write_all(&(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).to_be_bytes()).unwrap();
            return c;
        }
        panic!("no connection slot came back");
    }

    fn option(c: &mut impl Write, code: u32, data: &[u8]) {
        let mut v = IHAVEOPT.to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        c.write_all(&v).unwrap();
    }

    /// One option reply's type (its data read and dropped).
    fn reply(c: &mut impl Read) -> u32 {
        let mut h = [0u8; 20];
        c.read_exact(&mut h).unwrap();
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
        c.read_exact(&mut vec![0u8; len as usize]).unwrap();
        u32::from_be_bytes(h[12..16].try_into().unwrap())
    }

    fn closed(c: &mut impl Read) -> bool {
        matches!(c.read(&mut [0u8; 1]), Ok(0) | Err(_))
    }

    fn go_data() -> Vec<u8> {
        let mut d = (NAME.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(NAME);
        d.extend_from_slice(&0u16.to_be_bytes());
        d
    }

    /// A rustls client trusting only the identity's CA, on a connection past STARTTLS.
    fn tls_client(id: &TlsIdentity, tcp: TcpStream) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(id.ca_der().to_vec())).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        rustls::StreamOwned::new(rustls::ClientConnection::new(Arc::new(config), name).unwrap(), tcp)
    }

    /// Before STARTTLS everything is refused; after it, the negotiation and a read go through
    /// TLS with a certificate chain a verifying client accepts.
    #[test]
    fn starttls_upgrades_and_serves_inside_tls() {
        let (addr, stop, t, id) = serve(Limits::default());
        let mut c = hello(addr);
        option(&mut c, OPT_GO, &go_data());
        assert_eq!(reply(&mut c), REP_ERR_TLS_REQD);
        option(&mut c, OPT_STARTTLS, b"x");
        assert_eq!(reply(&mut c), REP_ERR_INVALID, "STARTTLS with data");
        option(&mut c, OPT_STARTTLS, &[]);
        assert_eq!(reply(&mut c), REP_ACK);
        let mut s = tls_client(&id, c);
        option(&mut s, OPT_STARTTLS, &[]);
        assert_eq!(reply(&mut s), REP_ERR_INVALID, "STARTTLS inside TLS");
        option(&mut s, OPT_GO, &go_data());
        let mut kinds = Vec::new();
        while kinds.last() != Some(&REP_ACK) {
            kinds.push(reply(&mut s));
        }
        assert_eq!(kinds, vec![REP_INFO, REP_ACK]);
        let mut r = REQUEST_MAGIC.to_be_bytes().to_vec();
        r.extend_from_slice(&0u16.to_be_bytes());
        r.extend_from_slice(&CMD_READ.to_be_bytes());
        r.extend_from_slice(&7u64.to_be_bytes());
        r.extend_from_slice(&(1u64 << 20).to_be_bytes());
        r.extend_from_slice(&4096u32.to_be_bytes());
        s.write_all(&r).unwrap();
        let mut head = [0u8; 16];
        s.read_exact(&mut head).unwrap();
        assert_eq!(head[..4], SIMPLE_REPLY_MAGIC.to_be_bytes());
        assert_eq!(head[4..8], [0; 4]);
        let mut data = vec![0u8; 4096];
        s.read_exact(&mut data).unwrap();
        assert!(data.iter().all(|&b| b == 0xAA));
        s.conn.send_close_notify();
        let _ = s.flush();
        drop(s);
        stop.stop();
        t.join().unwrap();
    }

    /// EXPORT_NAME before TLS closes; garbage or silence after STARTTLS ends that connection
    /// within the handshake timeout, and the connection slots come back.
    #[test]
    fn bad_tls_clients_end_only_their_connection() {
        let limits = Limits { handshake_timeout: Duration::from_secs(1), max_connections: 2, ..Limits::default() };
        let (addr, stop, t, id) = serve(limits);
        let mut c = hello(addr);
        option(&mut c, OPT_EXPORT_NAME, NAME);
        assert!(closed(&mut c));
        let mut g = hello(addr);
        option(&mut g, OPT_STARTTLS, &[]);
        assert_eq!(reply(&mut g), REP_ACK);
        g.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).unwrap();
        assert!(closed(&mut g), "garbage handshake");
        let mut silent = hello(addr);
        option(&mut silent, OPT_STARTTLS, &[]);
        assert_eq!(reply(&mut silent), REP_ACK);
        let t0 = std::time::Instant::now();
        assert!(closed(&mut silent), "silent handshake");
        assert!(t0.elapsed() < Duration::from_secs(10));
        // Both slots are free again (max_connections 2): two TLS clients at once.
        let mut both = Vec::new();
        for _ in 0..2 {
            let mut c = hello(addr);
            option(&mut c, OPT_STARTTLS, &[]);
            assert_eq!(reply(&mut c), REP_ACK);
            let mut s = tls_client(&id, c);
            option(&mut s, OPT_ABORT, &[]);
            assert_eq!(reply(&mut s), REP_ACK);
            both.push(s);
        }
        drop(both);
        stop.stop();
        t.join().unwrap();
    }
}
