//! The sysfs walk: `/sys/block/*` (each disk's directory, reached through its symlink into
//! `/sys/devices`), its ancestors up to the PCI function that owns it, `/sys/bus/pci/devices`
//! for controllers with nothing attached, `/sys/class/scsi_host` for their hosts.
//!
//! Which disks are listed: every disk with a PCI or platform parent, even empty (a card reader
//! without a card, a CD drive: the boot medium may be one). Of the virtual ones (under
//! `/sys/devices/virtual`) only those with a size: an attached loop device is an image the admin
//! may want to read, an assembled dm or md device may be a datastore's disk; `ram*` and `zram*`
//! (memory) are never listed, nor hidden disks (NVMe per-path devices).

use super::ids;
use super::parse;
use super::probe;
use super::{Controller, Disk, HwError, Inventory, Partition, Roots};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Drivers of SAS HBAs and RAID controllers: their disks' transport is "sas" when the path
/// shows no other (RAID logical drives hang directly off the host).
const SAS_DRIVERS: [&str; 14] = [
    "megaraid_sas",
    "mpt3sas",
    "mpt2sas",
    "mptsas",
    "smartpqi",
    "hpsa",
    "aacraid",
    "pm80xx",
    "mvsas",
    "isci",
    "arcmsr",
    "3w-sas",
    "hisi_sas_v3_hw",
    "megaraid",
];

/// A sysfs attribute, trimmed; `None` when missing or empty.
fn attr(p: &Path) -> Option<String> {
    let s = std::fs::read_to_string(p).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// An attribute as a number (decimal or `0x` hex).
fn num(p: &Path) -> Option<u64> {
    let s = attr(p)?;
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The last component of a symlink's target (`driver`, `subsystem`).
fn link_name(p: &Path) -> Option<String> {
    Some(std::fs::read_link(p).ok()?.file_name()?.to_string_lossy().into_owned())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort_by(|a, b| natural(a, b));
    v
}

/// `sda < sdb < sdaa`, `nvme2n1 < nvme10n1`: shorter first, then by bytes.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What the path from a disk up to `/sys/devices` shows.
#[derive(Default, Debug)]
struct Ancestry {
    pci: Option<PathBuf>,
    usb_device: Option<PathBuf>,
    scsi: bool,
    ata: bool,
    sas: bool,
    fc: bool,
    iscsi: bool,
    usb: bool,
    virtio: bool,
    nvme: bool,
    mmc: bool,
    /// `virtual`, `platform`, ...: the first component under `/sys/devices`.
    top: String,
}

fn ancestry(devices: &Path, start: &Path) -> Ancestry {
    let mut a = Ancestry::default();
    if let Ok(rest) = start.strip_prefix(devices) {
        a.top = rest.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    }
    let mut cur = Some(start);
    while let Some(dir) = cur {
        if dir == devices || !dir.starts_with(devices) {
            break;
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match link_name(&dir.join("subsystem")).as_deref() {
            Some("pci") => {
                a.pci = Some(dir.to_path_buf());
                break;
            }
            Some("usb") => {
                a.usb = true;
                if a.usb_device.is_none() && dir.join("idVendor").exists() {
                    a.usb_device = Some(dir.to_path_buf());
                }
            }
            Some("virtio") => a.virtio = true,
            Some("scsi") => a.scsi = true,
            Some("nvme") | Some("nvme-subsystem") => a.nvme = true,
            Some("mmc") => a.mmc = true,
            _ => {}
        }
        let digits_after =
            |p: &str| name.strip_prefix(p).is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()));
        if digits_after("ata") {
            a.ata = true;
        }
        if ["end_device-", "port-", "expander-"].iter().any(|p| name.starts_with(p)) {
            a.sas = true;
        }
        if name.starts_with("rport-") {
            a.fc = true;
        }
        if digits_after("session") {
            a.iscsi = true;
        }
        cur = dir.parent();
    }
    a
}

/// A controller's description from its PCI function directory.
fn pci_controller(dir: &Path, pci_ids: Option<&str>) -> Controller {
    let vendor = num(&dir.join("vendor")).and_then(|v| u16::try_from(v).ok()).unwrap_or(0xFFFF);
    let device = num(&dir.join("device")).and_then(|v| u16::try_from(v).ok()).unwrap_or(0xFFFF);
    let class = num(&dir.join("class")).and_then(|c| u16::try_from(c >> 8).ok()).unwrap_or(0);
    let (vn, dn) = pci_ids.map(|t| ids::lookup(t, vendor, device)).unwrap_or((None, None));
    let class_name = pci_ids.and_then(|t| ids::lookup_class(t, class));
    Controller {
        id: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        vendor: vn
            .or_else(|| ids::builtin_vendor(vendor).map(str::to_string))
            .unwrap_or_else(|| format!("{vendor:04x}")),
        model: dn
            .or_else(|| ids::builtin_device(vendor, device).map(str::to_string))
            .unwrap_or_else(|| format!("device {device:04x}")),
        class: class_name
            .or_else(|| ids::builtin_class(class).map(str::to_string))
            .unwrap_or_else(|| format!("class {class:04x}")),
        driver: link_name(&dir.join("driver")),
        kind: ids::kind_of(class, vendor),
        hosts: Vec::new(),
        disks: Vec::new(),
    }
}

fn synthetic(top: &str) -> Controller {
    let (id, model) = if top == "virtual" {
        ("virtual", "virtual block devices (loop, device-mapper, md)")
    } else {
        ("platform", "block devices without a PCI parent")
    };
    Controller {
        id: id.into(),
        vendor: String::new(),
        model: model.into(),
        class: String::new(),
        driver: None,
        kind: id.into(),
        hosts: Vec::new(),
        disks: Vec::new(),
    }
}

/// The walk's state: controllers by id.
struct Walk<'a> {
    roots: &'a Roots,
    devices: PathBuf,
    pci_ids: Option<String>,
    controllers: BTreeMap<String, Controller>,
    notes: Vec<String>,
}

impl Walk<'_> {
    /// The controller owning `anc`, created on first use.
    fn controller(&mut self, anc: &Ancestry) -> &mut Controller {
        let key = match &anc.pci {
            Some(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            None if anc.top == "virtual" => "virtual".into(),
            None => "platform".into(),
        };
        let pci_ids = self.pci_ids.as_deref();
        self.controllers.entry(key).or_insert_with(|| match &anc.pci {
            Some(p) => pci_controller(p, pci_ids),
            None => synthetic(&anc.top),
        })
    }
}

/// Walk sysfs under `roots`: controllers, hosts, disks, partitions, and what each holds.
pub(super) fn scan(roots: &Roots) -> Result<Inventory, HwError> {
    let sys = roots.sys.canonicalize().unwrap_or_else(|_| roots.sys.clone());
    let mut notes = Vec::new();
    let pci_ids = roots.pci_ids.iter().find_map(|p| std::fs::read_to_string(p).ok());
    if pci_ids.is_none() {
        notes.push("no pci.ids on this system: controller names from the built-in table".to_string());
    }
    if !roots.udev_data.is_dir() {
        notes.push(format!(
            "no udev database at {} (udevd not running): serials and WWNs from sysfs and SCSI VPD pages",
            roots.udev_data.display()
        ));
    }
    let mut w = Walk { roots, devices: sys.join("devices"), pci_ids, controllers: BTreeMap::new(), notes: Vec::new() };

    // Every mass-storage PCI function, with or without disks.
    for name in names_in(&sys.join("bus/pci/devices")) {
        let Ok(dir) = sys.join("bus/pci/devices").join(&name).canonicalize() else { continue };
        if num(&dir.join("class")).is_some_and(|c| c >> 16 == 0x01) {
            let anc = Ancestry { pci: Some(dir), ..Ancestry::default() };
            w.controller(&anc);
        }
    }
    // SCSI hosts, on whichever controller owns them (an xHCI for usb-storage).
    for host in names_in(&sys.join("class/scsi_host")) {
        let Ok(dir) = sys.join("class/scsi_host").join(&host).canonicalize() else { continue };
        let anc = ancestry(&w.devices, &dir);
        let c = w.controller(&anc);
        if !c.hosts.contains(&host) {
            c.hosts.push(host);
        }
    }
    // Disks.
    let (block_dir, from_class) =
        if sys.join("block").is_dir() { (sys.join("block"), false) } else { (sys.join("class/block"), true) };
    std::fs::read_dir(&block_dir).map_err(|error| HwError::NoSysfs { path: block_dir.clone(), error })?;
    for name in names_in(&block_dir) {
        let link = block_dir.join(&name);
        if from_class && link.join("partition").exists() {
            continue;
        }
        if let Some((anc, disk)) = w.disk(&name, &link) {
            w.controller(&anc).disks.push(disk);
        }
    }
    let mut controllers: Vec<Controller> = w.controllers.into_values().collect();
    for c in &mut controllers {
        c.hosts.sort_by(|a, b| natural(a, b));
        c.disks.sort_by(|a, b| natural(&a.name, &b.name));
    }
    // PCI addresses sort as text; the synthetic controllers go last.
    controllers.sort_by_key(|c| (c.id == "virtual" || c.id == "platform", c.id.clone()));
    notes.append(&mut w.notes);
    Ok(Inventory { controllers, notes })
}

impl Walk<'_> {
    /// One disk: `None` when it is not listed (see the module doc).
    fn disk(&mut self, name: &str, link: &Path) -> Option<(Ancestry, Disk)> {
        if ["ram", "zram"].iter().any(|p| name.strip_prefix(p).is_some_and(|r| r.bytes().all(|b| b.is_ascii_digit()))) {
            return None;
        }
        let dir = link.canonicalize().ok()?;
        if attr(&dir.join("hidden")).as_deref() == Some("1") {
            return None;
        }
        let size = num(&dir.join("size")).unwrap_or(0).saturating_mul(512);
        let mut anc = ancestry(&self.devices, &dir);
        if anc.pci.is_none() && anc.top == "virtual" {
            // NVMe native multipath: /sys/devices/virtual/nvme-subsystem/nvme-subsysN/nvmeXnY; the
            // subsystem lists its controllers as nvmeX links into the PCI tree.
            if let Some(sub) = dir.parent() {
                let ctrl = names_in(sub).into_iter().find(|n| {
                    n.strip_prefix("nvme").is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                });
                if let Some(c) = ctrl.and_then(|c| sub.join(c).canonicalize().ok()) {
                    anc = ancestry(&self.devices, &c);
                    anc.nvme = true;
                }
            }
            if anc.top == "virtual" && size == 0 {
                return None;
            }
        }
        let driver = anc.pci.as_ref().and_then(|p| link_name(&p.join("driver")));
        let class = anc.pci.as_ref().and_then(|p| num(&p.join("class"))).map(|c| c >> 8);
        let transport = transport(name, &anc, driver.as_deref(), class);
        let dev = attr(&dir.join("dev")).unwrap_or_default();
        let udev = parse::dev_numbers(&dev)
            .and_then(|(a, b)| std::fs::read_to_string(self.roots.udev_data.join(format!("b{a}:{b}"))).ok())
            .map(|t| parse::udev_properties(&t))
            .unwrap_or_default();
        let u = |k: &str| udev.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let device = dir.join("device");
        let vpd = |page: &str| std::fs::read(device.join(page)).ok();

        let vendor = attr(&device.join("vendor")).filter(|v| !v.starts_with("0x")).or_else(|| u("ID_VENDOR"));
        let model =
            attr(&device.join("model")).or_else(|| u("ID_MODEL_ENC").map(|m| unescape(&m))).or_else(|| u("ID_MODEL"));
        let serial = u("ID_SERIAL_SHORT")
            .or_else(|| attr(&device.join("serial")))
            .or_else(|| attr(&dir.join("serial")))
            .or_else(|| vpd("vpd_pg80").and_then(|p| parse::vpd_serial(&p)))
            .or_else(|| anc.usb_device.as_ref().and_then(|d| attr(&d.join("serial"))));
        let wwn = u("ID_WWN_WITH_EXTENSION")
            .or_else(|| u("ID_WWN"))
            .or_else(|| attr(&dir.join("wwid")).and_then(|w| parse::wwid(&w)))
            .or_else(|| attr(&device.join("wwid")).and_then(|w| parse::wwid(&w)))
            .or_else(|| vpd("vpd_pg83").and_then(|p| parse::vpd_wwn(&p)));

        let devnode = self.devnode(&dir, name);
        let whole = if size > 0 { self.probe(&devnode) } else { None };
        let mut partitions: Vec<(u64, Partition)> = names_in(&dir)
            .into_iter()
            .filter(|n| dir.join(n).join("partition").is_file())
            .map(|n| {
                let p = dir.join(&n);
                let psize = num(&p.join("size")).unwrap_or(0).saturating_mul(512);
                let devnode = self.devnode(&p, &n);
                let probed = if psize > 0 { self.probe(&devnode) } else { None };
                let part = Partition {
                    dev: attr(&p.join("dev")).unwrap_or_default(),
                    start: num(&p.join("start")).unwrap_or(0).saturating_mul(512),
                    size: psize,
                    read_only: num(&p.join("ro")) == Some(1),
                    fs: probed.as_ref().map(|x| x.fs),
                    label: probed.and_then(|x| x.label),
                    devnode,
                    name: n,
                };
                (num(&p.join("partition")).unwrap_or(u64::MAX), part)
            })
            .collect();
        partitions.sort_by_key(|(n, _)| *n);

        let sector = |f: &str| num(&dir.join("queue").join(f)).and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
        let disk = Disk {
            name: name.to_string(),
            devnode,
            dev,
            vendor,
            model,
            serial,
            wwn,
            size,
            logical_sector: sector("logical_block_size").unwrap_or(512),
            physical_sector: sector("physical_block_size").or(sector("logical_block_size")).unwrap_or(512),
            transport,
            removable: num(&dir.join("removable")) == Some(1),
            read_only: num(&dir.join("ro")) == Some(1),
            rotational: num(&dir.join("queue/rotational")).map(|r| r == 1),
            boot_medium: false,
            fs: whole.as_ref().map(|x| x.fs),
            label: whole.and_then(|x| x.label),
            partitions: partitions.into_iter().map(|(_, p)| p).collect(),
        };
        Some((anc, disk))
    }

    /// What `devnode` holds; a device that cannot be opened is noted.
    fn probe(&mut self, devnode: &Path) -> Option<probe::Probed> {
        probe::probe_path(devnode).unwrap_or_else(|e| {
            self.notes.push(format!("{}: not readable ({e}): what it holds is unknown", devnode.display()));
            None
        })
    }

    /// `<dev>/DEVNAME` from the `uevent` file, else the name with `!` as `/` (as udev does).
    fn devnode(&self, dir: &Path, name: &str) -> PathBuf {
        let devname = std::fs::read_to_string(dir.join("uevent"))
            .ok()
            .and_then(|t| parse::uevent(&t).remove("DEVNAME"))
            .filter(|n| !n.is_empty() && !n.split('/').any(|c| c == ".."))
            .unwrap_or_else(|| name.replace('!', "/"));
        self.roots.dev.join(devname)
    }
}

/// The transport word for a disk (see [`Disk::transport`]).
fn transport(name: &str, a: &Ancestry, driver: Option<&str>, class: Option<u64>) -> String {
    let t = if a.nvme || name.starts_with("nvme") {
        "nvme"
    } else if a.usb {
        "usb"
    } else if a.mmc || name.starts_with("mmcblk") {
        "mmc"
    } else if a.scsi {
        if a.ata {
            if class == Some(0x0101) { "ata" } else { "sata" }
        } else if a.sas {
            "sas"
        } else if a.fc {
            "fc"
        } else if a.iscsi {
            "iscsi"
        } else if driver.is_some_and(|d| SAS_DRIVERS.contains(&d)) {
            "sas"
        } else {
            "scsi"
        }
    } else if a.virtio || name.starts_with("vd") && a.pci.is_some() {
        "virtio"
    } else if a.top == "virtual" {
        if name.starts_with("loop") {
            "loop"
        } else if name.starts_with("dm-") {
            "dm"
        } else if name.starts_with("md") {
            "md"
        } else {
            "virtual"
        }
    } else {
        "unknown"
    };
    t.to_string()
}

/// udev's `\xHH` escapes (`ID_MODEL_ENC`) decoded; blanks trimmed.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(v) = b
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_escapes_and_natural_order() {
        assert_eq!(unescape("ST300MM0008\\x20\\x20\\x20"), "ST300MM0008");
        assert_eq!(unescape("a\\x2"), "a\\x2");
        assert_eq!(unescape("\\xzz"), "\\xzz");
        let mut v = vec!["sdaa", "sdb", "sda", "nvme10n1", "nvme2n1"];
        v.sort_by(|a, b| natural(a, b));
        assert_eq!(v, ["sda", "sdb", "sdaa", "nvme2n1", "nvme10n1"]);
    }

    #[test]
    fn transport_words() {
        let pci = Some(PathBuf::from("/sys/devices/pci0000:00/0000:00:02.0"));
        let a = Ancestry { pci: pci.clone(), scsi: true, ..Ancestry::default() };
        assert_eq!(transport("sda", &a, Some("megaraid_sas"), Some(0x0104)), "sas");
        assert_eq!(transport("sda", &a, Some("virtio_scsi"), Some(0x0100)), "scsi");
        let a = Ancestry { pci: pci.clone(), scsi: true, ata: true, ..Ancestry::default() };
        assert_eq!(transport("sda", &a, Some("ahci"), Some(0x0106)), "sata");
        assert_eq!(transport("sda", &a, Some("ata_piix"), Some(0x0101)), "ata");
        let a = Ancestry { pci: pci.clone(), virtio: true, ..Ancestry::default() };
        assert_eq!(transport("vda", &a, Some("virtio-pci"), Some(0x0180)), "virtio");
        let a = Ancestry { top: "virtual".into(), ..Ancestry::default() };
        assert_eq!(transport("loop0", &a, None, None), "loop");
        assert_eq!(transport("dm-0", &a, None, None), "dm");
    }
}
