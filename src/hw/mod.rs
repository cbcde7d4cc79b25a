//! The hardware inventory: storage controllers (PCI address, vendor and model, driver, SCSI
//! hosts) and under each its disks (identity, geometry, transport, partitions and what they
//! hold), the boot medium marked; and the destinations recovered files can be written to
//! ([`dest`]).
//!
//! It reads sysfs directly and links no libudev: Debian ships no static libudev, and the
//! appliance's initramfs runs no udevd (only busybox mdev), so libudev would know no more than
//! sysfs does. Where udevd *does* run, its database (`/run/udev/data/bMAJ:MIN`, plain text) fills
//! in what sysfs lacks: serial, WWN, model. A SCSI disk's serial and WWN otherwise come from its
//! VPD pages (`device/vpd_pg80`, `device/vpd_pg83`).
//!
//! Everything is read under a [`Roots`], so tests feed fake trees. Partitions and disks are
//! identified by reading a few KiB read-only ([`probe`]); nothing is ever written, and the
//! kernel's read-only flag is *not* set by the inventory (it would outlive us and make the
//! destination the admin picks next unmountable read-write).

pub mod dest;
pub mod ids;
pub mod net;
pub mod parse;
pub mod probe;
mod sysfs;

pub use dest::{Destination, destinations, free_bytes, mount};
pub use probe::FsKind;

use serde::Serialize;
use std::path::{Path, PathBuf};

/// Errors of the hardware layer; each names the device or path concerned.
#[derive(Debug, thiserror::Error)]
pub enum HwError {
    /// sysfs is not there (not mounted, or not Linux).
    #[error("no sysfs block devices under {path}: {error}")]
    NoSysfs {
        /// The directory that could not be listed.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The destination may not be written.
    #[error("{device}: refused as destination: {reason}")]
    Refused {
        /// The device.
        device: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file system cannot be mounted read-write by this program.
    #[error("{device}: cannot mount a {fs} file system read-write: {reason}")]
    Unsupported {
        /// The device.
        device: PathBuf,
        /// Its kind.
        fs: FsKind,
        /// Why.
        reason: String,
    },
    /// A mount (or the mount point) failed.
    #[error("{device}: mounting {fstype} at {target} failed: {reason}")]
    Mount {
        /// The device.
        device: PathBuf,
        /// The kernel file-system type (or `ntfs-3g`).
        fstype: String,
        /// The mount point.
        target: PathBuf,
        /// What failed, with the attempts made.
        reason: String,
    },
}

/// Where the inventory reads from; [`Roots::default`] is the running system.
#[derive(Debug, Clone)]
pub struct Roots {
    /// sysfs (`/sys`).
    pub sys: PathBuf,
    /// Device nodes (`/dev`).
    pub dev: PathBuf,
    /// udevd's database (`/run/udev/data`); absent without udevd.
    pub udev_data: PathBuf,
    /// `/run`: the appliance's init writes `vmfs-rescue/boot-device` there.
    pub run: PathBuf,
    /// The boot disk's kernel name, overriding `<run>/vmfs-rescue/boot-device`; the default takes
    /// it from `VMFS_RESCUE_BOOT_DEVICE`.
    pub boot_device: Option<String>,
    /// `pci.ids` files to try, in order; none found: the built-in names ([`ids`]).
    pub pci_ids: Vec<PathBuf>,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            sys: "/sys".into(),
            dev: "/dev".into(),
            udev_data: "/run/udev/data".into(),
            run: "/run".into(),
            boot_device: std::env::var("VMFS_RESCUE_BOOT_DEVICE").ok().filter(|s| !s.trim().is_empty()),
            pci_ids: ids::PCI_IDS_PATHS.iter().map(|p| Path::new("/").join(p)).collect(),
        }
    }
}

/// Every storage controller and disk.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    /// Controllers sorted by PCI address; the synthetic `virtual` and `platform` ones last.
    pub controllers: Vec<Controller>,
    /// What the inventory could not see or decided (no udev database, the boot medium, ...).
    pub notes: Vec<String>,
}

impl Inventory {
    /// Every disk, controller by controller.
    pub fn disks(&self) -> impl Iterator<Item = &Disk> {
        self.controllers.iter().flat_map(|c| c.disks.iter())
    }
    /// The disk with this kernel name.
    pub fn disk(&self, name: &str) -> Option<&Disk> {
        self.disks().find(|d| d.name == name)
    }
}

/// A storage controller (or a synthetic one for disks with no PCI parent).
#[derive(Debug, Clone, Serialize)]
pub struct Controller {
    /// PCI address (`0000:03:00.0`), or `virtual` (loop, device-mapper, md) or `platform`
    /// (any other non-PCI parent).
    pub id: String,
    /// Vendor name (pci.ids or built-in), else the hex id; empty for synthetic controllers.
    pub vendor: String,
    /// Device name (pci.ids or built-in), else `device XXXX`.
    pub model: String,
    /// PCI class name ("Serial Attached SCSI controller", "RAID bus controller", ...).
    pub class: String,
    /// The bound kernel driver (`megaraid_sas`, `ahci`, `nvme`, `virtio-pci`, ...).
    pub driver: Option<String>,
    /// Short kind: "SAS/SCSI", "RAID", "SATA", "IDE/ATA", "NVMe", "USB", "virtio", "Fibre
    /// Channel", "storage", "virtual", "platform", "other".
    pub kind: String,
    /// SCSI hosts (`host2`) on this controller.
    pub hosts: Vec<String>,
    /// Its disks, in name order.
    pub disks: Vec<Disk>,
}

/// A whole disk.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// Kernel name (`sda`, `nvme0n1`, `vda`).
    pub name: String,
    /// Device node (`/dev/sda`).
    pub devnode: PathBuf,
    /// Device numbers as `MAJ:MIN` (as `/proc/self/mountinfo` and udev spell them).
    pub dev: String,
    /// SCSI vendor (INQUIRY), if any.
    pub vendor: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// World-wide name (`0x5000c500...`, or `eui.`/`nvme.` forms for NVMe).
    pub wwn: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size.
    pub logical_sector: u32,
    /// Physical sector size.
    pub physical_sector: u32,
    /// sas, sata, ata, scsi, fc, iscsi, nvme, usb, virtio, mmc, loop, dm, md, virtual, unknown.
    pub transport: String,
    /// The kernel's removable flag.
    pub removable: bool,
    /// The kernel's read-only flag (a write-protected medium, or BLKROSET by a source open).
    pub read_only: bool,
    /// Spinning disk (`queue/rotational`), when the kernel says.
    pub rotational: Option<bool>,
    /// The medium the rescue system booted from: never a source, a destination only when chosen.
    pub boot_medium: bool,
    /// What the whole disk holds (an unpartitioned file system, an isohybrid ISO, VMFS).
    pub fs: Option<FsKind>,
    /// Its label.
    pub label: Option<String>,
    /// Partitions in order.
    pub partitions: Vec<Partition>,
}

impl Disk {
    /// Whether the disk or one of its partitions holds VMFS or VMware LVM.
    pub fn holds_vmfs(&self) -> bool {
        self.fs.is_some_and(FsKind::is_vmware) || self.partitions.iter().any(|p| p.fs.is_some_and(FsKind::is_vmware))
    }
}

/// A partition of a disk.
#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    /// Kernel name (`sda1`, `nvme0n1p1`).
    pub name: String,
    /// Device node.
    pub devnode: PathBuf,
    /// Device numbers as `MAJ:MIN`.
    pub dev: String,
    /// Start in bytes from the disk start.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// The kernel's read-only flag.
    pub read_only: bool,
    /// What it holds, when recognised.
    pub fs: Option<FsKind>,
    /// Its label.
    pub label: Option<String>,
}

/// Labels that make a disk the boot medium when nothing names it: the appliance image's ISO 9660
/// volume id or FAT label.
pub const BOOT_LABELS: [&str; 2] = ["VMFS_RESCUE", "VMFSRESCUE"];

/// The inventory of the running system.
pub fn inventory() -> Result<Inventory, HwError> {
    inventory_at(&Roots::default())
}

/// The inventory of the system under `roots`.
pub fn inventory_at(roots: &Roots) -> Result<Inventory, HwError> {
    let mut inv = sysfs::scan(roots)?;
    mark_boot_medium(&mut inv, roots);
    Ok(inv)
}

/// Mark the boot medium: the disk named by `roots.boot_device` or `<run>/vmfs-rescue/boot-device`
/// (a partition's name means its disk), else the disk carrying a [`BOOT_LABELS`] label.
fn mark_boot_medium(inv: &mut Inventory, roots: &Roots) {
    let file = roots.run.join("vmfs-rescue/boot-device");
    let named = match &roots.boot_device {
        Some(n) => Some((n.clone(), "VMFS_RESCUE_BOOT_DEVICE".to_string())),
        None => std::fs::read_to_string(&file).ok().map(|s| (s, file.display().to_string())),
    };
    if let Some((raw, from)) = named {
        let want = raw.trim().trim_start_matches("/dev/").to_string();
        let hit = inv
            .controllers
            .iter_mut()
            .flat_map(|c| c.disks.iter_mut())
            .find(|d| d.name == want || d.partitions.iter().any(|p| p.name == want));
        match hit {
            Some(d) => {
                d.boot_medium = true;
                inv.notes.push(format!("boot medium: {} (named by {from})", d.name));
                return;
            }
            None if !want.is_empty() => {
                inv.notes.push(format!("boot device {want:?} named by {from} is not among the disks"))
            }
            None => {}
        }
    }
    let is_boot =
        |l: &Option<String>| l.as_deref().is_some_and(|l| BOOT_LABELS.iter().any(|b| l.eq_ignore_ascii_case(b)));
    for d in inv.controllers.iter_mut().flat_map(|c| c.disks.iter_mut()) {
        if is_boot(&d.label) || d.partitions.iter().any(|p| is_boot(&p.label)) {
            d.boot_medium = true;
            inv.notes.push(format!("boot medium: {} (by its label)", d.name));
        }
    }
}
