//! From sources to datastores: open devices and images, find volumes, open VMFS on each.

use crate::block::ssh::{SshError, SshOptions};
use crate::block::{Source, open_path, open_ssh};
use crate::container::{self, LogicalVolume};
use crate::vmfs::Vmfs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A logical volume and, if it holds one, its VMFS file system.
pub struct Datastore {
    /// The assembled volume.
    pub volume: LogicalVolume,
    /// The file system, or why it could not be opened.
    pub fs: Result<Arc<Vmfs>, crate::vmfs::Error>,
}

impl Datastore {
    /// Label of the file system, if open.
    pub fn label(&self) -> Option<&str> {
        self.fs.as_ref().ok().map(|f| f.desc.label.as_str())
    }
    /// Whether `sel` (a label, FS UUID or LV UUID) names this datastore.
    pub fn matches(&self, sel: &str) -> bool {
        let lv = self.volume.uuid.to_string();
        match &self.fs {
            Ok(fs) => fs.desc.label == sel || fs.desc.uuid.to_string() == sel || lv == sel,
            Err(_) => lv == sel,
        }
    }
}

/// Open every path read-only (block devices get BLKROSET).
pub fn open_sources(paths: &[PathBuf]) -> std::io::Result<Vec<Source>> {
    open_sources_with(paths, None)
}

/// Open every path read-only; `ssh://user@host[:port]/path` sources are read over SSH with
/// `ssh` (without it they are refused: the host key and login must come from somewhere).
pub fn open_sources_with(paths: &[PathBuf], ssh: Option<&SshOptions>) -> std::io::Result<Vec<Source>> {
    use std::io::{Error, ErrorKind};
    paths
        .iter()
        .map(|p| {
            if crate::block::is_remote(p) {
                let url = p.to_string_lossy();
                let opts = ssh.ok_or_else(|| {
                    Error::new(ErrorKind::InvalidInput, format!("{url}: SSH sources are not available here"))
                })?;
                return open_ssh(&url, opts).map_err(|e| {
                    let kind =
                        if matches!(e, SshError::BadUrl(..)) { ErrorKind::InvalidInput } else { ErrorKind::Other };
                    Error::new(kind, e.to_string())
                });
            }
            if p.is_dir() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{}: is a directory, not a disk image or block device", p.display()),
                ));
            }
            open_path(p).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        })
        .collect()
}

/// Find every volume on `sources` and open VMFS on each.
pub fn find(sources: &[Source]) -> (Vec<Datastore>, Vec<String>) {
    let found = container::discover(sources);
    let stores = found
        .volumes
        .into_iter()
        .map(|volume| {
            let fs = Vmfs::open(Arc::clone(&volume.source)).map(Arc::new);
            Datastore { volume, fs }
        })
        .collect();
    (stores, found.notes)
}

/// Whether `dest` lies on one of the block-device `sources` (or a partition of one).
pub fn dest_on_source(dest: &Path, sources: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dest_dev = std::fs::metadata(dest).ok()?.dev();
    let canon_dest = dest.canonicalize().ok();
    for s in sources {
        let Ok(m) = std::fs::metadata(s) else { continue };
        if let (Some(d), Ok(sc)) = (&canon_dest, s.canonicalize())
            && d.starts_with(&sc)
        {
            return Some(s.clone());
        }
        if !m.file_type().is_block_device() {
            continue;
        }
        let rdev = m.rdev();
        if rdev == dest_dev || whole_disk_of(dest_dev) == Some(rdev) {
            return Some(s.clone());
        }
    }
    None
}

/// The whole-disk device number of a partition's device number, from sysfs.
fn whole_disk_of(dev: u64) -> Option<u64> {
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let link = std::fs::canonicalize(format!("/sys/dev/block/{maj}:{min}")).ok()?;
    let parent = link.parent()?.join("dev");
    let text = std::fs::read_to_string(parent).ok()?;
    let (a, b) = text.trim().split_once(':')?;
    Some(libc::makedev(a.parse().ok()?, b.parse().ok()?))
}
