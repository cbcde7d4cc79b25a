//! Destinations: the partitions (and unpartitioned disks) recovered files can be written to,
//! which of them are refused and why, where they are mounted; mounting one read-write.
//!
//! Refused: a source or a partition of a source disk (as [`crate::datastore::dest_on_source`]
//! decides it), any disk holding VMFS or VMware LVM (a possible source). The kernel's read-only
//! flag is no refusal: the rescue image sets it on every disk at boot, and [`mount`] clears it
//! on the one the admin chose (a write-protected medium then fails to mount, saying so). The
//! boot medium is offered but flagged: the TUI asks before writing to it.

use super::{FsKind, HwError, Inventory};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A place recovered files can go.
#[derive(Debug, Clone, Serialize)]
pub struct Destination {
    /// Kernel name of the partition or disk (`sdc1`).
    pub name: String,
    /// Device node.
    pub devnode: PathBuf,
    /// `MAJ:MIN`.
    pub dev: String,
    /// The whole disk it is on (`sdc`).
    pub disk: String,
    /// Its file system.
    pub fs: FsKind,
    /// Its label.
    pub label: Option<String>,
    /// Size of the partition in bytes.
    pub size: u64,
    /// On the boot medium: write there only when the admin chose it explicitly.
    pub boot_medium: bool,
    /// Where it is mounted already.
    pub mounted_at: Option<PathBuf>,
    /// Why it may not be used, if it may not.
    pub refused: Option<String>,
}

/// Every partition or unpartitioned disk with a writable file system, sources and VMFS disks
/// refused. `sources` are the paths opened as sources (devices or image files).
pub fn destinations(inv: &Inventory, sources: &[PathBuf]) -> Vec<Destination> {
    let mounts = current_mounts();
    destinations_with(inv, sources, &mounts)
}

/// [`destinations`] with the mount table given (tests).
pub fn destinations_with(inv: &Inventory, sources: &[PathBuf], mounts: &[Mount]) -> Vec<Destination> {
    let source_devs: BTreeMap<String, PathBuf> =
        sources.iter().filter_map(|s| Some((block_dev(s)?, s.clone()))).collect();
    let mut out = Vec::new();
    for disk in inv.disks() {
        let on_source = source_devs.get(&disk.dev);
        let vmfs = disk.holds_vmfs();
        let candidates: Vec<Spot> = if disk.partitions.is_empty() {
            vec![Spot {
                name: &disk.name,
                devnode: &disk.devnode,
                dev: &disk.dev,
                fs: disk.fs,
                label: &disk.label,
                size: disk.size,
            }]
        } else {
            disk.partitions
                .iter()
                .map(|p| Spot {
                    name: &p.name,
                    devnode: &p.devnode,
                    dev: &p.dev,
                    fs: p.fs,
                    label: &p.label,
                    size: p.size,
                })
                .collect()
        };
        for Spot { name, devnode, dev, fs, label, size } in candidates {
            let mount =
                mounts.iter().find(|m| m.dev == dev || (m.source.starts_with('/') && Path::new(&m.source) == devnode));
            // A device we may not read (a container's root disk) is known by its mount.
            let fs = fs.or_else(|| mount.and_then(|m| kind_of_fstype(&m.fstype)));
            let Some(fs) = fs.filter(|f| f.writable()) else { continue };
            let refused = if let Some(s) = source_devs.get(dev) {
                Some(format!("it is source {}", s.display()))
            } else if let Some(s) = on_source {
                Some(format!("it is on source disk {}", s.display()))
            } else if vmfs {
                Some(format!("disk {} holds VMFS: a possible source", disk.name))
            } else {
                None
            };
            let mounted_at = mount.map(|m| m.target.clone());
            out.push(Destination {
                name: name.to_string(),
                devnode: devnode.to_path_buf(),
                dev: dev.to_string(),
                disk: disk.name.clone(),
                fs,
                label: label.clone(),
                size,
                boot_medium: disk.boot_medium,
                mounted_at,
                refused,
            });
        }
    }
    out
}

/// The kind of a mounted file system from its mountinfo type.
pub fn kind_of_fstype(t: &str) -> Option<FsKind> {
    Some(match t {
        "vfat" | "msdos" => FsKind::Vfat,
        "exfat" => FsKind::Exfat,
        "ext2" => FsKind::Ext2,
        "ext3" => FsKind::Ext3,
        "ext4" => FsKind::Ext4,
        "ntfs" | "ntfs3" | "fuseblk" => FsKind::Ntfs,
        "xfs" => FsKind::Xfs,
        "btrfs" => FsKind::Btrfs,
        "iso9660" => FsKind::Iso9660,
        _ => return None,
    })
}

/// A partition, or a disk without partitions, as a destination candidate.
struct Spot<'a> {
    name: &'a str,
    devnode: &'a Path,
    dev: &'a str,
    fs: Option<FsKind>,
    label: &'a Option<String>,
    size: u64,
}

/// `MAJ:MIN` of a block-device path; `None` for anything else.
fn block_dev(p: &Path) -> Option<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(p).ok()?;
    m.file_type().is_block_device().then(|| format!("{}:{}", libc::major(m.rdev()), libc::minor(m.rdev())))
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Field 3, `MAJ:MIN` of the mounted device (anonymous for btrfs).
    pub dev: String,
    /// Field 5, the mount point (octal escapes decoded).
    pub target: PathBuf,
    /// The file-system type, after the ` - ` separator.
    pub fstype: String,
    /// The mount source (`/dev/sdc1`), after the type.
    pub source: String,
}

/// This process's mounts (none when `/proc` cannot be read).
fn current_mounts() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|t| mountinfo(&t)).unwrap_or_default()
}

/// Parse `/proc/self/mountinfo`: `ID PARENT MAJ:MIN ROOT TARGET OPTIONS [OPTIONAL...] - TYPE
/// SOURCE SUPEROPTIONS`. Malformed lines are skipped.
pub fn mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let mut r = right.split(' ');
            let (dev, target) = (f.get(2)?, f.get(4)?);
            parse_dev_field(dev)?;
            Some(Mount {
                dev: dev.to_string(),
                target: PathBuf::from(unescape_octal(target)),
                fstype: r.next()?.to_string(),
                source: unescape_octal(r.next()?),
            })
        })
        .collect()
}

fn parse_dev_field(s: &str) -> Option<()> {
    super::parse::dev_numbers(s).map(|_| ())
}

/// mountinfo's `\040`-style escapes (space, tab, newline, backslash).
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(oct) = b.get(i + 1..i + 4)
            && oct.iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = oct.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    // fsblkcnt_t and c_ulong are u64 here but narrower on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size())))
}

/// Mount `dest` read-write under `base/<name>` and return the mount point; when it is mounted
/// already, return where. Refused destinations are not mounted.
pub fn mount(dest: &Destination, base: &Path) -> Result<PathBuf, HwError> {
    if let Some(m) = &dest.mounted_at {
        return Ok(m.clone());
    }
    if let Some(reason) = &dest.refused {
        return Err(HwError::Refused { device: dest.devnode.clone(), reason: reason.clone() });
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let plan = mount_plan(dest.fs, &filesystems).map_err(|reason| HwError::Unsupported {
        device: dest.devnode.clone(),
        fs: dest.fs,
        reason,
    })?;
    let target = base.join(&dest.name);
    let mount_err = |fstype: &str, reason: String| HwError::Mount {
        device: dest.devnode.clone(),
        fstype: fstype.to_string(),
        target: target.clone(),
        reason,
    };
    // The rescue image marks every disk read-only at boot; the kernel refuses a read-write
    // mount of a partition while it or its disk carries the flag.
    for dev in [dest.devnode.with_file_name(&dest.disk), dest.devnode.clone()] {
        if let Err(e) = crate::block::BlockDevice::clear_read_only(&dev) {
            tracing::warn!(device = %dev.display(), error = %e, "could not clear the read-only flag");
        }
    }
    let created = !target.exists();
    std::fs::create_dir_all(&target).map_err(|e| mount_err(plan.fstype, format!("creating the mount point: {e}")))?;
    let result = if plan.fstype == "ntfs-3g" {
        run_ntfs3g(&dest.devnode, &target).map_err(|r| mount_err("ntfs-3g", r))
    } else {
        use nix::mount::MsFlags;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
        let mut tried = Vec::new();
        let mut ok = false;
        for opts in plan.options {
            let data = (!opts.is_empty()).then_some(*opts);
            match nix::mount::mount(Some(dest.devnode.as_path()), &target, Some(plan.fstype), flags, data) {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(e) => tried.push(format!("options {:?}: {e}", opts)),
            }
        }
        if ok { Ok(()) } else { Err(mount_err(plan.fstype, tried.join("; then "))) }
    };
    match result {
        Ok(()) => Ok(target),
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir(&target);
            }
            Err(e)
        }
    }
}

/// Make what was written under `dir` durable: `syncfs` on its file system and, when that file
/// system is FUSE over a block device (ntfs-3g), an fsync of the device too: FUSE's syncfs does
/// not reach the program, whose writes sit in the device's page cache.
pub fn sync_to_disk(dir: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(dir)?;
    nix::unistd::syncfs(&f).map_err(std::io::Error::from)?;
    if let Some(dev) = fuse_device_of(&current_mounts(), dir) {
        std::fs::File::open(dev)?.sync_all()?;
    }
    Ok(())
}

/// The block device under `dir`'s mount when that mount is `fuseblk` (the deepest mount point
/// that is a prefix of `dir`).
fn fuse_device_of(mounts: &[Mount], dir: &Path) -> Option<PathBuf> {
    let m = mounts.iter().filter(|m| dir.starts_with(&m.target)).max_by_key(|m| m.target.components().count())?;
    (m.fstype == "fuseblk" && m.source.starts_with("/dev/")).then(|| PathBuf::from(&m.source))
}

/// How to mount a kind: the kernel type and option sets to try in order.
#[derive(Debug, PartialEq, Eq)]
pub struct MountPlan {
    /// Kernel file-system type, or `ntfs-3g` for the FUSE program.
    pub fstype: &'static str,
    /// Option strings to try in turn.
    pub options: &'static [&'static str],
}

/// The plan for `fs` given `/proc/filesystems`; `Err` says why it cannot be mounted read-write.
/// vfat first asks for UTF-8 names and falls back to the kernel's default charset (the Debian
/// kernel's default, ascii, fails with EINVAL when nls_ascii is not loaded, and the other way
/// round for utf8). ext2/3 are mounted by the ext4 driver. NTFS uses the kernel's ntfs3 when it
/// has one, else the ntfs-3g program.
pub fn mount_plan(fs: FsKind, filesystems: &str) -> Result<MountPlan, String> {
    let has = |t: &str| filesystems.lines().any(|l| l.split_whitespace().last() == Some(t));
    let (fstype, options): (&'static str, &'static [&'static str]) = match fs {
        FsKind::Vfat => ("vfat", &["iocharset=utf8", ""]),
        FsKind::Exfat => ("exfat", &["iocharset=utf8", ""]),
        FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => ("ext4", &[""]),
        FsKind::Xfs => ("xfs", &[""]),
        FsKind::Btrfs => ("btrfs", &[""]),
        FsKind::Ntfs if has("ntfs3") => ("ntfs3", &["iocharset=utf8", ""]),
        FsKind::Ntfs => ("ntfs-3g", &[""]),
        other => return Err(format!("{other} is not a file system to write files to")),
    };
    // Module-backed types appear only once loaded; a missing one is tried anyway (the kernel may
    // load it on demand), so this only decides ntfs3 versus ntfs-3g.
    Ok(MountPlan { fstype, options })
}

/// Mount with the ntfs-3g program (FUSE), when the kernel has no ntfs3.
fn run_ntfs3g(dev: &Path, target: &Path) -> Result<(), String> {
    let out = std::process::Command::new("ntfs-3g")
        .arg("-o")
        .arg("nosuid,nodev,noexec,noatime")
        .arg(dev)
        .arg(target)
        .output()
        .map_err(|e| format!("the kernel has no ntfs3 and the ntfs-3g program could not run: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("ntfs-3g: {}", String::from_utf8_lossy(&out.stderr).trim())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let t = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
                 90 27 8:33 / /mnt/rescue\\040out rw,relatime shared:5 master:1 - vfat /dev/sdc1 rw\n\
                 91 27 0:50 / /srv/b rw - btrfs /dev/sdd2 rw\n\
                 garbage line\n\
                 1 2 x:y / /z rw - ext4 /dev/x rw\n";
        let m = mountinfo(t);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0],
            Mount { dev: "254:0".into(), target: "/".into(), fstype: "ext4".into(), source: "/dev/vda".into() }
        );
        assert_eq!(m[1].target, PathBuf::from("/mnt/rescue out"));
        assert_eq!(m[1].fstype, "vfat");
        assert_eq!(m[2].source, "/dev/sdd2");
        assert_eq!(unescape_octal("a\\134b\\777\\0"), "a\\b\\777\\0");
    }

    #[test]
    fn fuse_device_is_the_deepest_mount() {
        let text = "22 1 0:21 / / rw - rootfs rootfs rw\n\
                    30 22 8:17 / /run/vmfs-rescue/dest/sdb1 rw - fuseblk /dev/sdb1 rw\n\
                    31 22 8:33 / /run/vmfs-rescue/dest/sdc1 rw - ext4 /dev/sdc1 rw\n";
        let m = mountinfo(text);
        let under = |p: &str| fuse_device_of(&m, Path::new(p));
        assert_eq!(under("/run/vmfs-rescue/dest/sdb1/vmfs-rescue"), Some(PathBuf::from("/dev/sdb1")));
        assert_eq!(under("/run/vmfs-rescue/dest/sdc1/vmfs-rescue"), None);
        assert_eq!(under("/tmp"), None);
    }

    #[test]
    fn mount_plans() {
        let with = "nodev\tsysfs\n\text4\n\tvfat\nnodev\tfuse\n\tntfs3\n";
        assert_eq!(mount_plan(FsKind::Ntfs, with).unwrap().fstype, "ntfs3");
        assert_eq!(mount_plan(FsKind::Ntfs, "\text4\n").unwrap().fstype, "ntfs-3g");
        assert_eq!(mount_plan(FsKind::Ext3, "").unwrap().fstype, "ext4");
        assert_eq!(mount_plan(FsKind::Vfat, "").unwrap().options, &["iocharset=utf8", ""]);
        assert!(mount_plan(FsKind::Vmfs, with).is_err());
        assert!(mount_plan(FsKind::Iso9660, with).is_err());
    }

    #[test]
    fn free_bytes_of_tmp() {
        assert!(free_bytes(Path::new("/tmp")).unwrap() > 0);
        assert!(free_bytes(Path::new("/nonexistent/x")).is_err());
    }
}
