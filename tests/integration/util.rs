//! Shared test helpers: the corpus, decompressed image cache, and the source-unchanged guard.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The corpus root from `VMFS_RESCUE_CORPUS`, or `None` (tests then skip, loudly) outside CI.
/// In CI (`CI` set), a missing corpus is a failure.
pub fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VMFS_RESCUE_CORPUS") {
        Some(p) if Path::new(&p).is_dir() => Some(PathBuf::from(p)),
        _ => {
            assert!(std::env::var_os("CI").is_none(), "VMFS_RESCUE_CORPUS must point at shared/corpus in CI");
            eprintln!("SKIP: VMFS_RESCUE_CORPUS not set");
            None
        }
    }
}

/// Where decompressed corpus images are cached (outside the corpus, never in it).
pub fn cache_dir() -> PathBuf {
    let dir = std::env::var_os("VMFS_RESCUE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/corpus-cache"));
    std::fs::create_dir_all(&dir).expect("create cache dir");
    dir
}

static DECOMPRESS: Mutex<()> = Mutex::new(());

/// The decompressed, sparse form of corpus file `rel` (e.g. `vmfs/dissect.vmfs-3.13/vmfs/vmfs5.bin.gz`,
/// or a `.bz2` as qemu ships its samples). Cached across runs; the cache file is written under a
/// temporary name and renamed, so a killed run never leaves a half image behind.
pub fn corpus_image(rel: &str) -> Option<PathBuf> {
    let root = corpus()?;
    let src = root.join(rel);
    assert!(src.is_file(), "corpus file {} missing", src.display());
    let name = rel.trim_end_matches(".gz").trim_end_matches(".bz2").replace('/', "__");
    let out = cache_dir().join(name);
    let _g = DECOMPRESS.lock().unwrap_or_else(|e| e.into_inner());
    if out.is_file() {
        return Some(out);
    }
    let tmp = out.with_extension("partial");
    let file = File::open(&src).expect("open corpus file");
    let mut dec: Box<dyn Read> = if rel.ends_with(".bz2") {
        Box::new(bzip2::read::MultiBzDecoder::new(file))
    } else {
        Box::new(flate2::read::GzDecoder::new(file))
    };
    let mut f = File::create(&tmp).expect("create cache file");
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = dec.read(&mut buf[filled..]).expect("decompress");
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        // Keep the cache sparse: seek over all-zero 64 KiB pieces.
        for chunk in buf[..filled].chunks(65536) {
            if chunk.iter().all(|&b| b == 0) {
                f.seek(SeekFrom::Current(chunk.len() as i64)).unwrap();
            } else {
                f.write_all(chunk).unwrap();
            }
        }
        len += filled as u64;
    }
    f.set_len(len).unwrap();
    drop(f);
    std::fs::rename(&tmp, &out).unwrap();
    Some(out)
}

/// SHA-256 of a whole file, hex.
pub fn sha256_file(path: &Path) -> String {
    let mut f = File::open(path).expect("open for hashing");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

/// A fingerprint of a sparse file's content: its length, then every data range (from
/// SEEK_DATA/SEEK_HOLE) with its offset. Any write changes it, and holes cost nothing to hash.
pub fn sparse_fingerprint(path: &Path) -> String {
    use std::os::unix::fs::FileExt;
    if !std::fs::metadata(path).unwrap().is_file() {
        // Block devices have no holes to skip.
        return sha256_file(path);
    }
    let src = vmfs_rescue::block::open_path(path).expect("open for hashing");
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut h = Sha256::new();
    h.update(len.to_le_bytes());
    let mut buf = vec![0u8; 1 << 20];
    for r in src.data_ranges(0..len) {
        h.update(r.start.to_le_bytes());
        let mut pos = r.start;
        while pos < r.end {
            let n = (r.end - pos).min(buf.len() as u64) as usize;
            f.read_exact_at(&mut buf[..n], pos).unwrap();
            h.update(&buf[..n]);
            pos += n as u64;
        }
    }
    hex(&h.finalize())
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hashes sources when created and checks them again when dropped: tests prove we never write.
pub struct SourceGuard {
    files: Vec<(PathBuf, String, std::time::SystemTime)>,
}

impl SourceGuard {
    /// Remember the content hash and mtime of every path.
    pub fn new(paths: &[PathBuf]) -> Self {
        let files = paths
            .iter()
            .map(|p| (p.clone(), sparse_fingerprint(p), std::fs::metadata(p).unwrap().modified().unwrap()))
            .collect();
        Self { files }
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        for (p, h, m) in &self.files {
            assert_eq!(&sparse_fingerprint(p), h, "source {} changed", p.display());
            assert_eq!(&std::fs::metadata(p).unwrap().modified().unwrap(), m, "source {} mtime changed", p.display());
        }
    }
}

/// The corpus `vmfs/manifest.json`, parsed (None when the corpus is not configured).
pub fn manifest() -> Option<Vec<serde_json::Value>> {
    let root = corpus()?;
    let text = std::fs::read_to_string(root.join("vmfs/manifest.json")).expect("manifest");
    Some(serde_json::from_str(&text).expect("manifest json"))
}

/// The decompressed images of one manifest entry, in manifest order.
pub fn images(entry: &serde_json::Value) -> Vec<PathBuf> {
    entry["image_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| corpus_image(&format!("vmfs/{}", f["path"].as_str().unwrap())).unwrap())
        .collect()
}

/// The last component of `p`, as text.
pub fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
