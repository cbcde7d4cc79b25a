//! Running the system's file-system tools: e2fsprogs, dosfstools + mtools, ntfs-3g. Nothing is
//! mounted and nothing needs root; every tool works on a plain partition file.

use super::files::GenFile;
use crate::forge::ForgeError;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

/// Fixed timestamp for staged files and fake tool clocks (2023-06-01 12:00:00 UTC).
pub const FIXED_TIME: u64 = 1_685_620_800;

/// Locate `name` in PATH or the sbin directories (mkfs tools live there and a normal user's
/// PATH often lacks them); a missing tool names the Debian package that provides it.
pub fn find_tool(name: &str, package: &str) -> Result<PathBuf, ForgeError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(ForgeError::Tool {
        tool: name.into(),
        message: format!("not found; install the Debian package {package} (apt-get install {package})"),
    })
}

/// Run a tool quietly; a non-zero exit becomes [`ForgeError::Tool`] with its output.
pub fn run(
    name: &str,
    package: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, String)],
) -> Result<Vec<u8>, ForgeError> {
    let exe = find_tool(name, package)?;
    let mut cmd = Command::new(&exe);
    cmd.args(args).env("LC_ALL", "C.UTF-8").env("MTOOLS_SKIP_CHECK", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| ForgeError::Tool { tool: name.into(), message: e.to_string() })?;
    if !out.status.success() {
        return Err(ForgeError::Tool {
            tool: name.into(),
            message: format!(
                "{} ({}): {}{}",
                out.status,
                args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out.stdout)
}

/// Write the files under `dir` (holes left unwritten), with a fixed mtime on files and dirs.
pub fn stage(dir: &Path, files: &[GenFile]) -> Result<(), ForgeError> {
    let t = UNIX_EPOCH + Duration::from_secs(FIXED_TIME);
    for f in files {
        let p = dir.join(f.path.trim_start_matches('/'));
        let io = |e| ForgeError::io(&p, e);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let file = File::create(&p).map_err(io)?;
        file.set_len(f.data.len() as u64).map_err(io)?;
        let mut at = 0;
        for h in f.holes.iter().chain(std::iter::once(&(f.data.len()..f.data.len()))) {
            file.write_all_at(&f.data[at..h.start], at as u64).map_err(io)?;
            at = h.end;
        }
        file.set_modified(t).map_err(io)?;
    }
    // Directories last, deepest first, so creating children does not reset their times.
    let mut dirs: Vec<PathBuf> = Vec::new();
    collect_dirs(dir, &mut dirs)?;
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        File::open(&d).and_then(|f| f.set_modified(t)).map_err(|e| ForgeError::io(&d, e))?;
    }
    Ok(())
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ForgeError> {
    out.push(dir.to_path_buf());
    for e in fs::read_dir(dir).map_err(|e| ForgeError::io(dir, e))? {
        let e = e.map_err(|e| ForgeError::io(dir, e))?;
        if e.file_type().map_err(|er| ForgeError::io(e.path(), er))?.is_dir() {
            collect_dirs(&e.path(), out)?;
        }
    }
    Ok(())
}

/// The directories that must exist for `files`, parents first.
pub fn parent_dirs(files: &[GenFile]) -> Vec<String> {
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let mut acc = String::new();
        let parts: Vec<&str> = f.path.trim_start_matches('/').split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            acc.push('/');
            acc.push_str(part);
            if !dirs.contains(&acc) {
                dirs.push(acc.clone());
            }
        }
    }
    dirs
}
