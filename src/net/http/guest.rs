//! The guest view of the HTTP export: the partitions and files inside a virtual disk of a
//! served volume, read by the guest layer ([`crate::guest`]) from the disk assembled through
//! its snapshot chain, the same disk `/disk/` serves.
//!
//! URLs. The VMFS part of the path ends at its first component that names a VMDK descriptor
//! (a name ending in `.vmdk` that is not an extent's, such as `-flat.vmdk`, `-delta.vmdk` or
//! `-sesparse.vmdk`); the next component is a volume number of that disk:
//!
//! | URL | answer |
//! |---|---|
//! | `/guest/<vol>/<folder>/<disk>.vmdk/` | the disk's volumes: number, table entry, file system, label, size |
//! | `/guest/<vol>/<folder>/<disk>.vmdk/<N>/` | the root folder of volume N |
//! | `/guest/<vol>/<folder>/<disk>.vmdk/<N>/<guest path>` | a folder's listing, or a file's content |
//!
//! N is a partition's number as the table numbers it, `0` for a disk without a table, Linux
//! LVM2 logical volumes after the partitions (as `guest ls` lists them). Query parameters:
//! `format=json` (or `Accept: application/json`) for listings; `stream=NAME` for an NTFS
//! alternate data stream of a file; `id=N` picks, among entries of one name (a deleted file
//! beside a live one), the one whose reader handle is N (listings add it to such links).
//! Listings include deleted entries, marked with the reader's confidence in their content.
//! File content goes through the export's `content` path: Range requests, resumed downloads,
//! holes sent as zeros without being read.
//!
//! Guest names are data from the disk: they are escaped in HTML and percent-encoded in links
//! (`/` too). `..` in a guest path goes up one folder and never above the volume's root (404).
//! Answers: 404 when the disk, volume or path does not exist, 409 when it exists but cannot be
//! served (an unknown or damaged file system, a symbolic link, a device).
//!
//! Opening a chain and a file system costs reads (NTFS scans its MFT, FAT decodes its table),
//! so the last [`CACHED_DISKS`] disks opened stay open, each with the file systems of its
//! volumes, opened when first asked for.

use super::{AppState, HttpVolume, content, error, esc, is_disk_name, json_response, open_vdisk, page, pct, view};
use super::{View, volume, volume_path};
use crate::block::{Source, read_vec};
use crate::guest::{self, Entry, GuestError, GuestFs, Kind};
use crate::vdisk;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

/// Guest disks kept open (each with the file systems opened on it).
pub(super) const CACHED_DISKS: usize = 4;
/// Longest symbolic-link target read to say where a link points.
const MAX_LINK: u64 = 4096;

/// A volume's file system, or why it could not be opened.
type OpenedFs = Result<Arc<dyn GuestFs>, Arc<GuestError>>;

/// A guest disk opened through its chain: its volumes and their file systems (opened once).
struct OpenedDisk {
    volumes: Vec<guest::Volume>,
    /// What the partition table and the LVM2 reader noted.
    notes: Vec<String>,
    fs: Vec<OnceLock<OpenedFs>>,
}

impl OpenedDisk {
    fn open(disk: Source) -> Result<Self, GuestError> {
        let g = guest::open_disk(&disk)?;
        let mut notes: Vec<String> =
            g.table.iter().flat_map(|t| t.notes.iter().map(|n| format!("partition table: {n}"))).collect();
        notes.extend(g.notes);
        let fs = g.volumes.iter().map(|_| OnceLock::new()).collect();
        Ok(Self { volumes: g.volumes, notes, fs })
    }

    /// The file system of the `i`-th volume, opened the first time it is asked for.
    fn fs(&self, i: usize) -> Option<&OpenedFs> {
        let v = self.volumes.get(i)?;
        Some(self.fs.get(i)?.get_or_init(|| guest::open_fs(&v.source).map(Arc::from).map_err(Arc::new)))
    }
}

/// The guest disks opened last, newest first, by (volume name, descriptor path in the volume).
#[derive(Default)]
pub(super) struct GuestCache(Mutex<VecDeque<(String, String, Arc<OpenedDisk>)>>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An answer that is not content: status and text.
type Failure = (StatusCode, String);

impl GuestCache {
    /// Disk `path` of volume `v`, from the cache or opened now (blocking; not under the lock,
    /// so one slow disk does not hold up the others).
    fn get(&self, v: &HttpVolume, path: &str) -> Result<Arc<OpenedDisk>, Failure> {
        let take = |q: &mut VecDeque<(String, String, Arc<OpenedDisk>)>| {
            let i = q.iter().position(|(n, p, _)| *n == v.name && p == path)?;
            let e = q.remove(i)?;
            let d = Arc::clone(&e.2);
            q.push_front(e);
            Some(d)
        };
        if let Some(d) = take(&mut lock(&self.0)) {
            return Ok(d);
        }
        let disk = open_vdisk(Arc::clone(&v.fs), path).map_err(|e| (StatusCode::NOT_FOUND, e.to_string()))?;
        let opened = OpenedDisk::open(Arc::new(disk)).map_err(|e| (StatusCode::CONFLICT, format!("{path}: {e}")))?;
        let mut q = lock(&self.0);
        if let Some(d) = take(&mut q) {
            return Ok(d);
        }
        let d = Arc::new(opened);
        q.push_front((v.name.clone(), path.to_string(), Arc::clone(&d)));
        q.truncate(CACHED_DISKS);
        Ok(d)
    }
}

/// A `/guest/` URL after the volume name.
#[derive(Debug, PartialEq, Eq)]
struct GuestUrl {
    /// The VMFS path up to the descriptor, as given.
    disk: String,
    /// The volume number; `None` asks for the list of volumes.
    part: Option<u32>,
    /// The guest path's components, `.` and `..` applied.
    path: Vec<String>,
}

/// Split a `/guest/<vol>/` URL's rest at its first VMDK descriptor name, then the volume number.
fn parse_url(rel: &str) -> Result<GuestUrl, String> {
    let comps: Vec<&str> = rel.split('/').collect();
    let Some(at) = comps.iter().position(|c| is_disk_name(c)) else {
        return Err("no VMDK descriptor in the path: /guest/VOLUME/FOLDER/DISK.vmdk/PARTITION/PATH".into());
    };
    let (disk, rest) = comps.split_at(at + 1);
    let disk = disk.join("/");
    let mut rest = rest.iter().filter(|c| !c.is_empty() && **c != ".");
    let Some(n) = rest.next() else { return Ok(GuestUrl { disk, part: None, path: Vec::new() }) };
    let part = match n.parse::<u32>() {
        Ok(p) if n.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return Err(format!("{n:?} is not a partition number (the disk's page lists them)")),
    };
    let mut path = Vec::new();
    for c in rest {
        if *c == ".." {
            if path.pop().is_none() {
                return Err("\"..\" would leave the guest volume's root".into());
            }
        } else {
            path.push((*c).to_string());
        }
    }
    Ok(GuestUrl { disk, part: Some(part), path })
}

/// One row of a disk's volume list.
struct PartRow {
    index: u32,
    describe: String,
    start: u64,
    size: u64,
    /// File-system type and label, or why it could not be opened.
    fs: Result<(String, Option<String>), String>,
}

/// What a `/guest/` request found.
enum Answer {
    Parts(Vec<PartRow>, Vec<String>),
    Dir(Vec<Entry>),
    File(Source, String),
}

/// `GET /guest/<vol>/<rest>`: a disk's volumes, a guest folder's listing or a guest file.
pub(super) async fn guest(
    State(st): State<Arc<AppState>>,
    Path((vol, rel)): Path<(String, String)>,
    req: Request,
) -> Response {
    let Some(v) = volume(&st, &vol) else { return error(StatusCode::NOT_FOUND, "no such volume") };
    let url = match parse_url(&rel) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::NOT_FOUND, e),
    };
    let q: HashMap<String, String> = Query::try_from_uri(req.uri()).map(|Query(q)| q).unwrap_or_default();
    let stream = q.get("stream").cloned();
    let id = match q.get("id").map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(i)) => Some(i),
        Some(Err(_)) => return error(StatusCode::NOT_FOUND, "id= is not an entry id"),
    };
    let disk_path = volume_path(v, &url.disk);
    let shown = vdisk::files::resolve("/", &url.disk);
    let (state, name) = (Arc::clone(&st), vol.clone());
    let found = tokio::task::spawn_blocking(move || {
        let a = answer(&state, &name, &disk_path, &url, id, stream.as_deref());
        (a, url)
    })
    .await;
    let (answer, url) = match found {
        Ok(x) => x,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let v = view(req.headers(), req.uri().query());
    let at = Place { vol: &vol, disk: &shown, url: &url };
    match answer {
        Ok(Answer::Parts(rows, notes)) => parts(&at, &rows, &notes, &v),
        Ok(Answer::Dir(entries)) => listing(&at, &entries, &v),
        Ok(Answer::File(src, name)) => content(&st, src, &name, req.method(), req.headers()),
        Err((code, msg)) => error(code, msg),
    }
}

/// The status a guest-layer error answers with.
fn fail(e: GuestError) -> Failure {
    let code = match e {
        GuestError::NotFound { .. } | GuestError::NotADirectory { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::CONFLICT,
    };
    (code, e.to_string())
}

/// The blocking part: open (or find open) the disk and the volume, look the path up.
fn answer(
    st: &AppState,
    vol: &str,
    disk: &str,
    url: &GuestUrl,
    id: Option<u64>,
    stream: Option<&str>,
) -> Result<Answer, Failure> {
    let v = volume(st, vol).ok_or((StatusCode::NOT_FOUND, "no such volume".into()))?;
    let d = st.guests.get(v, disk)?;
    let Some(n) = url.part else {
        let rows = d
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| PartRow {
                index: v.index,
                describe: v.describe.clone(),
                start: v.start,
                size: v.source.len(),
                fs: match d.fs(i) {
                    Some(Ok(f)) => Ok((f.fs_type(), f.label())),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("not opened".into()),
                },
            })
            .collect();
        return Ok(Answer::Parts(rows, d.notes.clone()));
    };
    let no_part = || {
        let have: Vec<String> = d.volumes.iter().map(|v| v.index.to_string()).collect();
        (StatusCode::NOT_FOUND, format!("no partition {n} on this disk (there are: {})", have.join(", ")))
    };
    let i = d.volumes.iter().position(|v| v.index == n).ok_or_else(no_part)?;
    let fs = match d.fs(i) {
        Some(Ok(f)) => Arc::clone(f),
        Some(Err(e)) => return Err((StatusCode::CONFLICT, format!("partition {n}: {e}"))),
        None => return Err(no_part()),
    };
    let e = find(&*fs, &url.path, id).map_err(fail)?;
    let shown = format!("/{}", url.path.join("/"));
    match e.kind {
        Kind::Dir if stream.is_none() => {
            let mut entries = fs.list(&e).map_err(fail)?;
            entries.sort_by(|a, b| a.name.cmp(&b.name).then(a.deleted.cmp(&b.deleted)));
            Ok(Answer::Dir(entries))
        }
        Kind::File | Kind::Dir => {
            let src = fs.open(&e, stream).map_err(fail)?;
            let name = match stream {
                Some(s) => format!("{}_{s}", e.name),
                None => e.name.clone(),
            };
            Ok(Answer::File(src, name))
        }
        Kind::Symlink => {
            let target = fs
                .open(&e, None)
                .and_then(|s| read_vec(&*s, 0, s.len().min(MAX_LINK) as usize).map_err(GuestError::from))
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_else(|err| format!("(unreadable: {err})"));
            Err((StatusCode::CONFLICT, format!("{shown} is a symbolic link to {target}")))
        }
        Kind::Other => Err((StatusCode::CONFLICT, format!("{shown} is not a regular file (a device, socket or fifo)"))),
    }
}

/// The entry at `path`; with `id`, the last component is the entry of that name and id.
fn find(fs: &dyn GuestFs, path: &[String], id: Option<u64>) -> Result<Entry, GuestError> {
    let joined = format!("/{}", path.join("/"));
    let (Some(id), Some((last, parent))) = (id, path.split_last()) else { return guest::lookup(fs, &joined) };
    let parent_path = format!("/{}", parent.join("/"));
    let dir = guest::lookup(fs, &parent_path)?;
    if dir.kind != Kind::Dir {
        return Err(GuestError::NotADirectory { path: parent_path });
    }
    fs.list(&dir)?.into_iter().find(|e| e.name == *last && e.id == id).ok_or(GuestError::NotFound { path: joined })
}

/// Where a page is: for its title and links.
struct Place<'a> {
    vol: &'a str,
    /// The descriptor's path as the URL shows it.
    disk: &'a str,
    url: &'a GuestUrl,
}

impl Place<'_> {
    /// `/guest/<vol>/<disk>`, percent-encoded, no trailing slash.
    fn disk_href(&self) -> String {
        format!("/guest/{}{}", pct(self.vol), pct(self.disk))
    }

    /// The current folder's URL, percent-encoded, no trailing slash.
    fn dir_href(&self, n: u32) -> String {
        let mut h = format!("{}/{n}", self.disk_href());
        for c in &self.url.path {
            h.push('/');
            h.push_str(&segment(c));
        }
        h
    }
}

/// Percent-encode one path component: a guest name may hold `/`.
fn segment(s: &str) -> String {
    pct(s).replace('/', "%2F")
}

/// `href` with query parameters `extra` (percent-encoded) and the view's token suffix.
fn link(href: String, suffix: &str, extra: &[(&str, &str)]) -> String {
    let mut q: Vec<String> = extra.iter().map(|(k, v)| format!("{k}={}", segment(v))).collect();
    q.extend(suffix.strip_prefix('?').map(str::to_string));
    if q.is_empty() { href } else { format!("{href}?{}", q.join("&")) }
}

/// A disk's volumes as a page or JSON.
fn parts(at: &Place, rows: &[PartRow], notes: &[String], v: &View) -> Response {
    let href = |n: u32, suffix: &str| link(format!("{}/{n}/", at.disk_href()), suffix, &[]);
    if v.json {
        let parts: Vec<_> = rows
            .iter()
            .map(|r| {
                let mut p = json!({"part": r.index, "describe": r.describe, "start": r.start, "size": r.size,
                                   "href": href(r.index, "")});
                match &r.fs {
                    Ok((fs, label)) => {
                        p["fs"] = json!(fs);
                        p["label"] = json!(label);
                    }
                    Err(e) => p["error"] = json!(e),
                }
                p
            })
            .collect();
        return json_response(json!({"volume": at.vol, "disk": at.disk, "partitions": parts, "notes": notes}));
    }
    let mut body =
        String::from("<table><tr><th>#</th><th>partition</th><th>file system</th><th>label</th><th>size</th></tr>");
    for r in rows {
        let (fs, label) = match &r.fs {
            Ok((fs, label)) => (esc(fs), esc(label.as_deref().unwrap_or(""))),
            Err(e) => (format!("<em>{}</em>", esc(e)), String::new()),
        };
        body.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{fs}</td><td>{label}</td><td align=right>{}</td></tr>",
            href(r.index, &v.suffix),
            r.index,
            esc(&r.describe),
            r.size
        ));
    }
    body.push_str("</table>");
    for n in notes {
        body.push_str(&format!("<p>note: {}</p>", esc(n)));
    }
    page(&format!("{}:{} (guest volumes)", at.vol, at.disk), &body)
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::Other => "other",
    }
}

/// "deleted (medium confidence)" for a deleted entry, else "".
fn state_text(e: &Entry) -> String {
    match (e.deleted, e.confidence) {
        (true, Some(c)) => format!("deleted ({} confidence)", format!("{c:?}").to_lowercase()),
        (true, None) => "deleted".into(),
        _ => String::new(),
    }
}

/// A guest folder as a page or JSON.
fn listing(at: &Place, entries: &[Entry], v: &View) -> Response {
    let n = at.url.part.unwrap_or(0);
    let dir = at.dir_href(n);
    let mut seen = HashSet::new();
    let repeated: HashSet<&str> = entries.iter().map(|e| e.name.as_str()).filter(|n| !seen.insert(*n)).collect();
    let id_of = |e: &Entry| e.id.to_string();
    let href = |e: &Entry, suffix: &str| {
        let slash = if e.kind == Kind::Dir { "/" } else { "" };
        let id = id_of(e);
        let extra: &[(&str, &str)] = if repeated.contains(e.name.as_str()) { &[("id", &id)] } else { &[] };
        link(format!("{dir}/{}{slash}", segment(&e.name)), suffix, extra)
    };
    let stream_href = |e: &Entry, s: &str, suffix: &str| {
        let id = id_of(e);
        let mut extra = vec![("stream", s)];
        if repeated.contains(e.name.as_str()) {
            extra.push(("id", &id));
        }
        link(format!("{dir}/{}", segment(&e.name)), suffix, &extra)
    };
    let path = format!("/{}", at.url.path.join("/"));
    if v.json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                let mut j = serde_json::to_value(e).unwrap_or_default();
                j["href"] = json!(href(e, ""));
                if !e.streams.is_empty() {
                    let s: serde_json::Map<_, _> =
                        e.streams.iter().map(|s| (s.clone(), json!(stream_href(e, s, "")))).collect();
                    j["stream_hrefs"] = json!(s);
                }
                j
            })
            .collect();
        return json_response(json!({"volume": at.vol, "disk": at.disk, "part": n, "path": path, "entries": rows}));
    }
    // The parent folder, or the disk's volume list from a root.
    let up = match at.url.path.split_last() {
        Some((_, parent)) => {
            let names: String = parent.iter().map(|c| format!("/{}", segment(c))).collect();
            format!("{}/{n}{names}/", at.disk_href())
        }
        None => format!("{}/", at.disk_href()),
    };
    let up = link(up, &v.suffix, &[]);
    let mut body = format!(
        "<table><tr><th>name</th><th>type</th><th>size</th><th>modified (UTC)</th><th>state</th><th>streams</th></tr>\
         <tr><td><a href=\"{}\">..</a></td></tr>",
        esc(&up)
    );
    for e in entries {
        let name = if e.deleted { format!("<s>{}</s>", esc(&e.name)) } else { esc(&e.name) };
        let streams: Vec<String> = e
            .streams
            .iter()
            .map(|s| format!("<a href=\"{}\">{}</a>", esc(&stream_href(e, s, &v.suffix)), esc(s)))
            .collect();
        body.push_str(&format!(
            "<tr><td><a href=\"{}\">{name}</a></td><td>{}</td><td align=right>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&href(e, &v.suffix)),
            kind_name(e.kind),
            e.size,
            e.mtime.map(crate::calendar::utc).unwrap_or_default(),
            state_text(e),
            streams.join(" ")
        ));
    }
    body.push_str("</table>");
    page(&format!("{}:{} partition {n}: {path}", at.vol, at.disk), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(disk: &str, part: Option<u32>, path: &[&str]) -> GuestUrl {
        GuestUrl { disk: disk.into(), part, path: path.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn urls_split_at_the_descriptor_then_the_partition() {
        assert_eq!(parse_url("vm/vm.vmdk"), Ok(url("vm/vm.vmdk", None, &[])));
        assert_eq!(parse_url("vm/vm.vmdk/"), Ok(url("vm/vm.vmdk", None, &[])));
        assert_eq!(parse_url("vm/vm.vmdk/2/"), Ok(url("vm/vm.vmdk", Some(2), &[])));
        assert_eq!(parse_url("a/vm.vmdk/1/x/./y/../z.vmdk/"), Ok(url("a/vm.vmdk", Some(1), &["x", "z.vmdk"])));
        // An extent is not a descriptor: the split is at the descriptor after it.
        assert_eq!(parse_url("vm-flat.vmdk/vm.VMDK/0"), Ok(url("vm-flat.vmdk/vm.VMDK", Some(0), &[])));
        assert!(parse_url("vm/vm-flat.vmdk/1/").is_err());
        assert!(parse_url("vm/").is_err());
        for bad in ["vm.vmdk/x/", "vm.vmdk/-1/", "vm.vmdk/+1/", "vm.vmdk/99999999999/", "vm.vmdk/../"] {
            assert!(parse_url(bad).unwrap_err().contains("not a partition number"), "{bad}");
        }
        for bad in ["vm.vmdk/1/..", "vm.vmdk/1/a/../../etc", "vm.vmdk/1/../../../../files/x"] {
            assert!(parse_url(bad).unwrap_err().contains("root"), "{bad}");
        }
    }

    #[test]
    fn links_encode_hostile_names() {
        assert_eq!(segment("a/b c<\"&"), "a%2Fb%20c%3C%22%26");
        assert_eq!(link("/x".into(), "?token=t", &[("stream", "s:1&x")]), "/x?stream=s%3A1%26x&token=t");
        assert_eq!(link("/x".into(), "", &[]), "/x");
        let e = Entry { deleted: true, confidence: Some(guest::Confidence::Low), ..Entry::bare_root(1, None) };
        assert_eq!(state_text(&e), "deleted (low confidence)");
    }
}
