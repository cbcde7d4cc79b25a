//! The read-only HTTP(S) export: browse a datastore's tree (HTML for browsers, JSON for
//! scripts), download files with Range requests (resumable), and download a virtual disk
//! assembled through its snapshot chain as one raw file (`/disk/...`), and browse the guest
//! file systems inside such a disk (`/guest/...`, its URL scheme in `guest.rs`).
//!
//! Every request needs the secret, as `Authorization: Bearer <secret>` or `?token=<secret>`;
//! without it the answer is 401 and nothing else. axum routes on hyper; the accept loop is ours
//! so that TLS handshakes, the connection limit and the header timeout are bounded per
//! connection. Content is read by a blocking task through the [`BlockSource`] (holes are not
//! read) and handed to hyper through a small bounded channel: a client that stops reading
//! holds one buffer, then times out.

mod guest;
pub mod range;
/// The TLS identity, shared with NBD (kept here under its old path).
pub use super::tls;

use super::NetError;
use super::auth::Secret;
use crate::block::{BlockSource, Source};
use crate::vdisk::{self, VmfsFiles};
use crate::vmfs::{FdType, Vmfs, VmfsFile};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use range::{RangeAnswer, parse_range};
use serde_json::json;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// One volume served, under `/files/<name>/`, `/disk/<name>/` and `/guest/<name>/`.
pub struct HttpVolume {
    pub name: String,
    pub fs: Arc<Vmfs>,
    /// The folder served as this volume's root ("/" for all of it).
    pub root: String,
}

/// Give each volume a name usable as a URL segment: a label that is empty, repeated or holds
/// a `/` is replaced by the file system's UUID.
pub fn name_volumes(vols: &mut [HttpVolume]) {
    let names: Vec<String> = vols.iter().map(|v| v.name.clone()).collect();
    for v in vols.iter_mut() {
        let dup = names.iter().filter(|n| **n == v.name).count() > 1;
        if v.name.is_empty() || dup || v.name.contains('/') {
            v.name = v.fs.desc.uuid.to_string();
        }
    }
}

/// Bounds on clients.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    /// Time to send a request's headers (slow-header clients) and to finish a TLS handshake.
    pub header_timeout: Duration,
    /// Time a client may take to take one buffer of a download.
    pub send_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { max_connections: 64, header_timeout: Duration::from_secs(20), send_timeout: Duration::from_secs(60) }
    }
}

/// What the server serves and how.
pub struct HttpConfig {
    pub volumes: Vec<HttpVolume>,
    pub secret: Secret,
    pub tls: Option<tls::TlsIdentity>,
    pub limits: HttpLimits,
}

/// Bytes per read and per body frame.
const PIECE: u64 = 1 << 20;
static ZEROS: [u8; PIECE as usize] = [0; PIECE as usize];

struct AppState {
    volumes: Vec<HttpVolume>,
    secret: Secret,
    send_timeout: Duration,
    /// Guest disks opened by `/guest/`, their file systems kept open for the next request.
    guests: guest::GuestCache,
}

/// A bound server; [`HttpServer::run`] serves until the process ends or it is stopped.
pub struct HttpServer {
    listener: std::net::TcpListener,
    config: HttpConfig,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Stops a running [`HttpServer`]: no new connections; downloads under way end with their
/// clients.
#[derive(Clone)]
pub struct HttpStop(Arc<std::sync::atomic::AtomicBool>, SocketAddr);

impl HttpStop {
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop: it looks at the flag after each connection.
        let mut to = self.1;
        if to.ip().is_unspecified() {
            to.set_ip(if to.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let _ = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(1));
    }
}

impl HttpServer {
    pub fn bind(addr: SocketAddr, config: HttpConfig) -> Result<Self, NetError> {
        let listener = std::net::TcpListener::bind(addr).map_err(|e| NetError::Bind(addr.to_string(), e))?;
        listener.set_nonblocking(true).map_err(NetError::Io)?;
        Ok(Self { listener, config, stop: Arc::default() })
    }

    /// A handle that stops [`HttpServer::run`].
    pub fn stop_handle(&self) -> Result<HttpStop, NetError> {
        Ok(HttpStop(Arc::clone(&self.stop), self.local_addr()?))
    }

    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.listener.local_addr().map_err(NetError::Io)
    }

    /// Serve forever on a small tokio runtime.
    pub fn run(self) -> Result<(), NetError> {
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(NetError::Io)?;
        rt.block_on(self.serve())
    }

    async fn serve(self) -> Result<(), NetError> {
        let HttpConfig { volumes, secret, tls, limits } = self.config;
        let acceptor = match &tls {
            Some(id) => Some(tokio_rustls::TlsAcceptor::from(id.server_config()?)),
            None => None,
        };
        let state =
            Arc::new(AppState { volumes, secret, send_timeout: limits.send_timeout, guests: Default::default() });
        let app = router(state);
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(NetError::Io)?;
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        loop {
            let accepted = listener.accept().await;
            if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!("http: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!("http: connection limit ({}) reached: refusing a client", limits.max_connections);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (app, acceptor, timeout) = (app.clone(), acceptor.clone(), limits.header_timeout);
            tokio::spawn(async move {
                let _permit = permit;
                match acceptor {
                    Some(acc) => match tokio::time::timeout(timeout, acc.accept(stream)).await {
                        Ok(Ok(s)) => serve_conn(s, app, timeout).await,
                        _ => tracing::debug!("http: TLS handshake failed or timed out"),
                    },
                    None => serve_conn(stream, app, timeout).await,
                }
            });
        }
    }
}

async fn serve_conn<I>(io: I, app: Router, header_timeout: Duration)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    if let Err(e) = conn.await {
        tracing::debug!("http: connection: {e}");
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/files/{vol}", get(files_root))
        .route("/files/{vol}/", get(files_root))
        .route("/files/{vol}/{*path}", get(files))
        .route("/disk/{vol}/{*path}", get(disk))
        .route("/guest/{vol}/{*path}", get(guest::guest))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), require_secret))
        .with_state(state)
}

/// The secret from `Authorization: Bearer` or the `token` query parameter, if any.
fn given_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a [u8]> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some((scheme, tok)) = v.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(tok.trim().as_bytes());
    }
    query?.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::as_bytes)
}

async fn require_secret(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match given_token(req.headers(), req.uri().query()) {
        Some(t) if st.secret.matches(t) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"vmfs-rescue\"")],
            "401 Unauthorized: give the secret as \"Authorization: Bearer <secret>\" or ?token=<secret>\n",
        )
            .into_response(),
    }
}

/// How a listing is wanted, and the query suffix links keep (the token, when it came that way).
struct View {
    json: bool,
    suffix: String,
}

fn view(req_headers: &HeaderMap, query: Option<&str>) -> View {
    let q: Vec<&str> = query.unwrap_or("").split('&').collect();
    let json = q.contains(&"format=json")
        || req_headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    let suffix = q.iter().find(|kv| kv.starts_with("token=")).map(|t| format!("?{t}")).unwrap_or_default();
    View { json, suffix }
}

fn error(code: StatusCode, msg: impl std::fmt::Display) -> Response {
    (code, format!("{} {msg}\n", code.as_u16())).into_response()
}

/// Escape text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Percent-encode a path for a link (every byte but unreserved characters and "/").
pub fn pct(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1>{body}\
         <p><small>vmfs-rescue: read-only</small></p></body></html>\n",
        t = esc(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn json_response(v: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], format!("{v}\n")).into_response()
}

async fn index(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let v = view(req.headers(), req.uri().query());
    if v.json {
        let vols: Vec<_> = st
            .volumes
            .iter()
            .map(|x| {
                json!({"name": x.name, "label": x.fs.desc.label, "uuid": x.fs.desc.uuid.to_string(),
                            "href": format!("/files/{}/", pct(&x.name))})
            })
            .collect();
        return json_response(json!({ "volumes": vols }));
    }
    let mut body = String::from("<ul>");
    for x in &st.volumes {
        body.push_str(&format!(
            "<li><a href=\"/files/{}/{}\">{}</a> (VMFS {})</li>",
            pct(&x.name),
            v.suffix,
            esc(&x.name),
            esc(&x.fs.desc.uuid.to_string())
        ));
    }
    body.push_str("</ul>");
    page("Volumes", &body)
}

fn volume<'a>(st: &'a AppState, name: &str) -> Option<&'a HttpVolume> {
    st.volumes.iter().find(|v| v.name == name)
}

/// The volume path of a URL path under a volume's root; ".." never climbs above the root.
fn volume_path(vol: &HttpVolume, rel: &str) -> String {
    let inside = vdisk::files::resolve("/", rel);
    let root = vol.root.trim_end_matches('/');
    format!("{root}{inside}").replace("//", "/")
}

async fn files_root(st: State<Arc<AppState>>, Path(vol): Path<String>, req: Request) -> Response {
    serve_path(st, vol, String::new(), req).await
}

async fn files(st: State<Arc<AppState>>, Path((vol, path)): Path<(String, String)>, req: Request) -> Response {
    serve_path(st, vol, path, req).await
}

/// A folder's listing or a file's content.
async fn serve_path(State(st): State<Arc<AppState>>, vol: String, rel: String, req: Request) -> Response {
    let Some(v) = volume(&st, &vol) else { return error(StatusCode::NOT_FOUND, "no such volume") };
    let fs = Arc::clone(&v.fs);
    let path = volume_path(v, &rel);
    let shown = vdisk::files::resolve("/", &rel);
    let lookup_path = path.clone();
    let found = tokio::task::spawn_blocking(move || {
        let fd = fs.lookup(&lookup_path)?;
        let listing = if fd.is_dir() {
            let mut rows = Vec::new();
            for e in fs.read_dir(&fd)? {
                let name = e.name_lossy();
                if name == "." || name == ".." {
                    continue;
                }
                let meta = fs.read_fd(e.addr).ok().map(|f| (f.meta.size, f.meta.mtime, f.meta.kind));
                rows.push((name, e.kind, meta));
            }
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            Some(rows)
        } else {
            None
        };
        Ok::<_, crate::vmfs::Error>((fs, fd, listing))
    })
    .await;
    let (fs, fd, listing) = match found {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return error(StatusCode::NOT_FOUND, e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let view = view(req.headers(), req.uri().query());
    if let Some(rows) = listing {
        return list(&vol, &shown, rows, &view);
    }
    match fd.meta.kind {
        FdType::File | FdType::SysFile => {}
        FdType::Symlink => {
            let t = fs.read_link(&fd).map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_default();
            return error(StatusCode::CONFLICT, format!("{shown} is a symbolic link to {t}"));
        }
        FdType::Rdm => return error(StatusCode::CONFLICT, "a raw device mapping: its data is on another LUN"),
        _ => return error(StatusCode::CONFLICT, "not a regular file"),
    }
    if let Err(e) = fs.check_size(&fd) {
        return error(StatusCode::CONFLICT, e);
    }
    let name = shown.rsplit('/').next().unwrap_or("file").to_string();
    let src: Source = Arc::new(VmfsFile::new(fs, fd, path));
    content(&st, src, &name, req.method(), req.headers())
}

type Row = (String, FdType, Option<(u64, u32, FdType)>);

fn type_name(k: FdType) -> &'static str {
    match k {
        FdType::Directory => "dir",
        FdType::File => "file",
        FdType::Symlink => "symlink",
        FdType::Rdm => "rdm",
        FdType::SysFile => "sysfile",
        _ => "other",
    }
}

/// Whether a file name is a VMDK that `/disk/` can assemble (a descriptor, not an extent).
fn is_disk_name(n: &str) -> bool {
    n.to_ascii_lowercase().ends_with(".vmdk") && !vdisk::chain::is_extent_name(n)
}

fn list(vol: &str, dir: &str, rows: Vec<Row>, v: &View) -> Response {
    let base = dir.trim_end_matches('/');
    let href = |name: &str, kind: FdType| {
        let slash = if kind == FdType::Directory { "/" } else { "" };
        format!("/files/{}{}/{}{slash}", pct(vol), pct(base), pct(name))
    };
    let disk_href = |name: &str| format!("/disk/{}{}/{}", pct(vol), pct(base), pct(name));
    let guest_href = |name: &str| format!("/guest/{}{}/{}/", pct(vol), pct(base), pct(name));
    if v.json {
        let entries: Vec<_> = rows
            .iter()
            .map(|(name, kind, meta)| {
                let kind = meta.map_or(*kind, |m| m.2);
                let mut e = json!({
                    "name": name, "type": type_name(kind), "size": meta.map(|m| m.0),
                    "mtime": meta.map(|m| m.1), "href": href(name, kind),
                });
                if kind == FdType::File && is_disk_name(name) {
                    e["disk_href"] = json!(disk_href(name));
                    e["guest_href"] = json!(guest_href(name));
                }
                e
            })
            .collect();
        return json_response(json!({"volume": vol, "path": dir, "entries": entries}));
    }
    let mut body = String::from("<table><tr><th>name</th><th>type</th><th>size</th><th></th></tr>");
    if dir != "/" {
        body.push_str(&format!("<tr><td><a href=\"../{}\">..</a></td></tr>", v.suffix));
    }
    for (name, kind, meta) in &rows {
        let kind = meta.map_or(*kind, |m| m.2);
        let extra = if kind == FdType::File && is_disk_name(name) {
            format!(
                "<a href=\"{}{s}\">virtual disk as raw</a> <a href=\"{}{s}\">guest files</a>",
                disk_href(name),
                guest_href(name),
                s = v.suffix
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<tr><td><a href=\"{}{}\">{}</a></td><td>{}</td><td align=right>{}</td><td>{extra}</td></tr>",
            href(name, kind),
            v.suffix,
            esc(name),
            type_name(kind),
            meta.map(|m| m.0.to_string()).unwrap_or_default()
        ));
    }
    body.push_str("</table>");
    page(&format!("{vol}:{dir}"), &body)
}

/// A virtual disk assembled through its chain, as one raw file.
async fn disk(State(st): State<Arc<AppState>>, Path((vol, rel)): Path<(String, String)>, req: Request) -> Response {
    let Some(v) = volume(&st, &vol) else { return error(StatusCode::NOT_FOUND, "no such volume") };
    let fs = Arc::clone(&v.fs);
    let path = volume_path(v, &rel);
    let opened = tokio::task::spawn_blocking(move || open_vdisk(fs, &path)).await;
    let d = match opened {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return error(StatusCode::NOT_FOUND, e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let stem = rel.rsplit('/').next().unwrap_or("disk").trim_end_matches(".vmdk").to_string();
    content(&st, Arc::new(d), &format!("{stem}.raw"), req.method(), req.headers())
}

/// Open the virtual disk whose leaf is `path` on `fs` through its chain (blocking), as
/// `/disk/` and `/guest/` serve it; chain problems are logged.
fn open_vdisk(fs: Arc<Vmfs>, path: &str) -> Result<vdisk::VirtualDisk, vdisk::VdiskError> {
    let d = vdisk::open(&VmfsFiles(fs), path)?;
    for p in &d.problems {
        tracing::warn!("http: {}: {p}", d.name());
    }
    Ok(d)
}

/// A source's bytes as a response: 200, 206 or 416; HEAD without a body.
fn content(st: &AppState, src: Source, name: &str, method: &Method, headers: &HeaderMap) -> Response {
    let len = src.len();
    let answer = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => parse_range(r, len),
        None => RangeAnswer::Full,
    };
    let (status, range) = match answer {
        RangeAnswer::Full => (StatusCode::OK, 0..len),
        RangeAnswer::Partial(r) => (StatusCode::PARTIAL_CONTENT, r),
        RangeAnswer::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}")), (header::ACCEPT_RANGES, "bytes".into())],
            )
                .into_response();
        }
    };
    let body = if method == Method::HEAD { Body::empty() } else { stream(src, range.clone(), st.send_timeout) };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    if status == StatusCode::PARTIAL_CONTENT {
        let cr = format!("bytes {}-{}/{len}", range.start, range.end - 1);
        if let Ok(v) = HeaderValue::from_str(&cr) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    let safe: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect();
    // RFC 6266: an ASCII stand-in for old clients, the real (UTF-8) name for the others.
    let star: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"; filename*=UTF-8''{star}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// A body fed by a blocking reader through a bounded channel.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    left: u64,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.left = self.left.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(http_body::Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// Read `range` of `src` on a blocking thread, holes as zeros without reading them.
fn stream(src: Source, range: Range<u64>, send_timeout: Duration) -> Body {
    let (tx, rx) = mpsc::channel(4);
    let left = range.end - range.start;
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let send = |item| rt.block_on(tx.send_timeout(item, send_timeout)).is_ok();
        let mut pos = range.start;
        let data = src.data_ranges(range.clone());
        let mut buf = Vec::new();
        for d in data
            .iter()
            .map(|d| d.start.max(range.start)..d.end.min(range.end))
            .chain(std::iter::once(range.end..range.end))
        {
            // The hole before this data range.
            while pos < d.start {
                let n = (d.start - pos).min(PIECE);
                if !send(Ok(Bytes::from_static(&ZEROS[..n as usize]))) {
                    return;
                }
                pos += n;
            }
            while pos < d.end {
                let n = (d.end - pos).min(PIECE) as usize;
                buf.resize(n, 0);
                if let Err(e) = src.read_at(pos, &mut buf) {
                    tracing::warn!("http: {}: {e}", src.name());
                    let _ = send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
                for u in src.unreadable(pos..pos + n as u64) {
                    tracing::warn!("http: {}: unreadable bytes {:#x}..{:#x} sent as zeros", src.name(), u.start, u.end);
                }
                if !send(Ok(Bytes::copy_from_slice(&buf))) {
                    return;
                }
                pos += n as u64;
            }
        }
    });
    Body::new(ChannelBody { rx, left })
}
