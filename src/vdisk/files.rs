//! Where a virtual disk's files come from: a local folder, or a VMFS volume (a VMDK on a
//! datastore is read in place, without copying its extents out first).

use super::error::{Result, VdiskError};
use crate::block::Source;
use crate::vmfs::{Vmfs, VmfsFile};
use std::path::PathBuf;
use std::sync::Arc;

/// A file namespace with "/"-separated paths.
pub trait Files: Send + Sync {
    /// Open `path` read-only.
    fn open(&self, path: &str) -> Result<Source>;
    /// Names in folder `dir`.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// The device a raw-device-mapping file points at, when this namespace records it.
    fn rdm_target(&self, path: &str) -> Option<String> {
        let _ = path;
        None
    }
}

/// Join `rel` to the folder of `base`, resolving "." and ".." (never above the root).
pub fn resolve(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = if rel.starts_with('/') {
        Vec::new()
    } else {
        base.rsplit_once('/').map_or("", |(d, _)| d).split('/').filter(|s| !s.is_empty()).collect()
    };
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Files of the local file system (paths are absolute or relative to the process).
pub struct LocalFiles;

impl Files for LocalFiles {
    fn open(&self, path: &str) -> Result<Source> {
        crate::block::open_path(std::path::Path::new(path))
            .map_err(|e| VdiskError::Missing { file: path.into(), why: e.to_string() })
    }
    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(if dir.is_empty() { "/" } else { dir })
            .map_err(|e| VdiskError::Io { file: dir.into(), source: e })?;
        Ok(rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
    }
}

/// Files inside a VMFS volume.
pub struct VmfsFiles(pub Arc<Vmfs>);

impl Files for VmfsFiles {
    fn open(&self, path: &str) -> Result<Source> {
        let fd = self.0.lookup(path).map_err(|e| VdiskError::Missing { file: path.into(), why: e.to_string() })?;
        Ok(Arc::new(VmfsFile::new(Arc::clone(&self.0), fd, path)))
    }
    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let fd = self.0.lookup(if dir.is_empty() { "/" } else { dir })?;
        Ok(self.0.read_dir(&fd)?.into_iter().map(|e| e.name_lossy()).collect())
    }
    fn rdm_target(&self, path: &str) -> Option<String> {
        let fd = self.0.lookup(path).ok()?;
        let t = fd.rdm_target(&self.0.geo)?;
        Some(format!("{} {} LUN {} ({})", t.vendor, t.model, t.lun, t.id))
    }
}

/// The absolute local path of `p` as a "/"-path for [`LocalFiles`].
pub fn local_path(p: &std::path::Path) -> String {
    let abs: PathBuf =
        if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(p) };
    abs.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn resolves_like_a_folder() {
        assert_eq!(resolve("/vm/a.vmdk", "a-flat.vmdk"), "/vm/a-flat.vmdk");
        assert_eq!(resolve("/vm/a.vmdk", "../base/b.vmdk"), "/base/b.vmdk");
        assert_eq!(resolve("/vm/a.vmdk", "/x/y.vmdk"), "/x/y.vmdk");
        assert_eq!(resolve("/a.vmdk", "../../../etc/passwd"), "/etc/passwd");
    }
}
