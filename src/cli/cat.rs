//! `vmfs-rescue cat`: a file's content to standard output (holes as zeros).

use super::{Outcome, UsageError, open_selected};
use anyhow::{Result, bail};
use vmfs_rescue::extract::{CopyOptions, Sink, copy};
use vmfs_rescue::vmfs::{FdType, VmfsFile};

pub fn run(select: &super::args::Select, path: &str) -> Result<Outcome> {
    let (_stores, fs) = open_selected(select)?;
    let fd = fs.lookup(path)?;
    match fd.meta.kind {
        FdType::File | FdType::SysFile if !fd.is_dir() => {}
        FdType::Symlink => {
            let t = fs.read_link(&fd)?;
            bail!(UsageError(format!("{path} is a symlink to {}", String::from_utf8_lossy(&t))));
        }
        FdType::Rdm => bail!(UsageError(format!("{path} is a raw device mapping: its data is on another LUN"))),
        _ => bail!(UsageError(format!("{path} is not a regular file"))),
    }
    fs.check_size(&fd).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let file = VmfsFile::new(fs.clone(), fd, path);
    let mut out = std::io::stdout();
    let report = copy(&file, Sink::Stream(&mut out), CopyOptions { hole_hash_limit: 0, hash: false })?;
    if report.unreadable.is_empty() {
        Ok(Outcome::Clean)
    } else {
        for r in &report.unreadable {
            eprintln!("{path}: unreadable bytes {:#x}..{:#x} (written as zeros)", r.start, r.end);
        }
        Ok(Outcome::Damaged)
    }
}
