//! The hardware inventory on fake sysfs trees laid out as the kernel lays them out (directories,
//! and `device`, `driver`, `subsystem` symlinks; the shapes were read off this machine's /sys for
//! virtio-blk and taken from the kernel's documented layouts for the rest), on this machine's
//! real /sys, and through the `devices` command.

use crate::vmfs::bin;
use std::fs;
use std::path::{Component, Path, PathBuf};
use vmfs_rescue::hw::{self, Controller, Disk, FsKind, Inventory, Roots};

/// A fake root: `sys/`, `dev/` (regular files stand in for device nodes), `udev/`, `run/`.
struct Fake {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

/// `to` relative to the directory `from` (both absolute, no `..`).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut p = PathBuf::new();
    for _ in common..f.len() {
        p.push("..");
    }
    for c in &t[common..] {
        p.push(c);
    }
    p
}

impl Fake {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        for d in ["sys/devices", "sys/block", "sys/bus/pci/devices", "sys/class/scsi_host", "dev", "udev", "run"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        Self { _tmp: tmp, root }
    }
    fn roots(&self) -> Roots {
        Roots {
            sys: self.root.join("sys"),
            dev: self.root.join("dev"),
            udev_data: self.root.join("udev"),
            run: self.root.join("run"),
            boot_device: None,
            pci_ids: vec![],
        }
    }
    fn sys(&self, rel: &str) -> PathBuf {
        self.root.join("sys").join(rel)
    }
    /// Write `sys/rel` (parents created).
    fn put(&self, rel: &str, content: impl AsRef<[u8]>) {
        let p = self.sys(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    /// A relative symlink `sys/at` -> `sys/target`, as sysfs makes them.
    fn link(&self, at: &str, target: &str) {
        let at = self.sys(at);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        let t = self.sys(target);
        fs::create_dir_all(&t).unwrap();
        std::os::unix::fs::symlink(relative(at.parent().unwrap(), &t), &at).unwrap();
    }
    fn subsystem(&self, dev: &str, bus: &str) {
        self.link(&format!("{dev}/subsystem"), bus);
    }
    /// A PCI function under `devices/pci0000:00/`; returns its sysfs path.
    fn pci(&self, addr: &str, vendor: u16, device: u16, class: u32, driver: &str) -> String {
        let d = format!("devices/pci0000:00/{addr}");
        self.put(&format!("{d}/vendor"), format!("0x{vendor:04x}\n"));
        self.put(&format!("{d}/device"), format!("0x{device:04x}\n"));
        self.put(&format!("{d}/class"), format!("0x{class:06x}\n"));
        self.subsystem(&d, "bus/pci");
        self.link(&format!("{d}/driver"), &format!("bus/pci/drivers/{driver}"));
        self.link(&format!("bus/pci/devices/{addr}"), &d);
        d
    }
    /// A SCSI host directory `parent/hostN` with its `scsi_host` class device.
    fn host(&self, parent: &str, n: u32) -> String {
        let h = format!("{parent}/host{n}");
        self.subsystem(&h, "bus/scsi");
        self.subsystem(&format!("{h}/scsi_host/host{n}"), "class/scsi_host");
        self.link(&format!("class/scsi_host/host{n}"), &format!("{h}/scsi_host/host{n}"));
        h
    }
    /// A SCSI device `H:C:T:L` under `host` (through its target directory), with INQUIRY strings.
    fn scsi_dev(&self, host: &str, hctl: [u32; 4], vendor: &str, model: &str) -> String {
        let [h, c, t, l] = hctl;
        let d = format!("{host}/target{h}:{c}:{t}/{h}:{c}:{t}:{l}");
        self.subsystem(&d, "bus/scsi");
        self.put(&format!("{d}/vendor"), format!("{vendor:<8}\n"));
        self.put(&format!("{d}/model"), format!("{model:<16}\n"));
        d
    }
    /// A disk: the gendisk directory `dir` (its `device` link to `parent`), `/sys/block/NAME`.
    #[allow(clippy::too_many_arguments)]
    fn disk(&self, dir: &str, parent: &str, dev: &str, sectors: u64, lbs: u32, pbs: u32, removable: bool, rot: bool) {
        let name = dir.rsplit('/').next().unwrap();
        self.put(&format!("{dir}/dev"), format!("{dev}\n"));
        self.put(&format!("{dir}/size"), format!("{sectors}\n"));
        self.put(&format!("{dir}/removable"), format!("{}\n", u8::from(removable)));
        self.put(&format!("{dir}/ro"), "0\n");
        self.put(&format!("{dir}/hidden"), "0\n");
        self.put(&format!("{dir}/queue/logical_block_size"), format!("{lbs}\n"));
        self.put(&format!("{dir}/queue/physical_block_size"), format!("{pbs}\n"));
        self.put(&format!("{dir}/queue/rotational"), format!("{}\n", u8::from(rot)));
        self.put(
            &format!("{dir}/uevent"),
            format!(
                "MAJOR={}\nMINOR={}\nDEVNAME={name}\nDEVTYPE=disk\n",
                &dev[..dev.find(':').unwrap()],
                &dev[dev.find(':').unwrap() + 1..]
            ),
        );
        self.subsystem(dir, "class/block");
        self.link(&format!("{dir}/device"), parent);
        self.link(&format!("block/{name}"), dir);
    }
    fn partition(&self, disk_dir: &str, name: &str, dev: &str, n: u32, start: u64, sectors: u64) {
        let p = format!("{disk_dir}/{name}");
        self.put(&format!("{p}/partition"), format!("{n}\n"));
        self.put(&format!("{p}/dev"), format!("{dev}\n"));
        self.put(&format!("{p}/start"), format!("{start}\n"));
        self.put(&format!("{p}/size"), format!("{sectors}\n"));
        self.put(&format!("{p}/ro"), "0\n");
        self.put(&format!("{p}/uevent"), format!("DEVNAME={name}\nDEVTYPE=partition\n"));
        self.subsystem(&p, "class/block");
    }
    /// A stand-in device node holding `bytes`.
    fn node(&self, name: &str, bytes: &[u8]) {
        fs::write(self.root.join("dev").join(name), bytes).unwrap();
    }
}

/// The VPD page 0x80 bytes for `serial`.
fn pg80(serial: &str) -> Vec<u8> {
    let mut p = vec![0, 0x80, 0, u8::try_from(serial.len()).unwrap()];
    p.extend_from_slice(serial.as_bytes());
    p
}

/// The VPD page 0x83 bytes with one logical-unit NAA designator.
fn pg83(naa: &[u8]) -> Vec<u8> {
    let mut p =
        vec![0, 0x83, 0, u8::try_from(naa.len() + 4).unwrap(), 0x01, 0x03, 0x00, u8::try_from(naa.len()).unwrap()];
    p.extend_from_slice(naa);
    p
}

/// A FAT32 boot sector with `label`, padded to 70 KiB.
fn fat32(label: &str) -> Vec<u8> {
    let mut b = vec![0u8; 70 << 10];
    b[0] = 0xEB;
    b[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
    b[0x0D] = 8;
    b[0x0E] = 32;
    b[0x10] = 2;
    b[0x42] = 0x29;
    b[0x47..0x52].copy_from_slice(format!("{label:<11}").as_bytes());
    b[0x52..0x5A].copy_from_slice(b"FAT32   ");
    b[510] = 0x55;
    b[511] = 0xAA;
    b
}

/// An ext4 superblock with `label`.
fn ext4(label: &str) -> Vec<u8> {
    let mut b = vec![0u8; 70 << 10];
    b[0x438..0x43A].copy_from_slice(&0xEF53u16.to_le_bytes());
    b[0x45C] = 0x04; // has_journal
    b[0x460] = 0x40; // extents
    b[0x478..0x478 + label.len()].copy_from_slice(label.as_bytes());
    b
}

/// The six machines-in-one of the test: megaraid_sas SAS disk, ahci SATA disk (two partitions),
/// NVMe namespace (native multipath layout), usb-storage stick (FAT label VMFS_RESCUE), virtio-blk
/// disk, an HBA with nothing attached; plus a NIC, an idle and an attached loop device, zram.
fn build() -> Fake {
    let f = Fake::new();
    // megaraid_sas: /sys/block/sda -> .../0000:03:00.0/host2/target2:2:0/2:2:0:0/block/sda
    let mr = f.pci("0000:03:00.0", 0x1000, 0x005d, 0x010400, "megaraid_sas");
    let h2 = f.host(&mr, 2);
    let sd = f.scsi_dev(&h2, [2, 2, 0, 0], "AVAGO", "MR9361-8i");
    f.put(&format!("{sd}/vpd_pg80"), pg80("VPDSERIAL"));
    f.put(&format!("{sd}/vpd_pg83"), pg83(&[0x60, 0x06, 0x05, 0xb0, 0x0a, 0xbc, 0, 0, 0x28, 0x1d, 0, 0, 0, 0, 0, 1]));
    f.disk(&format!("{sd}/block/sda"), &sd, "8:0", 585_937_500, 512, 4096, false, true);
    fs::write(
        f.root.join("udev/b8:0"),
        "S:disk/by-id/wwn-0x600605b00abc\nE:ID_SERIAL_SHORT=00a1b2c3d4\nE:ID_BUS=scsi\n",
    )
    .unwrap();

    // ahci: /sys/block/sdb -> .../0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sdb
    let ahci = f.pci("0000:00:1f.2", 0x8086, 0x2922, 0x010601, "ahci");
    let h0 = f.host(&format!("{ahci}/ata1"), 0);
    let sd = f.scsi_dev(&h0, [0, 0, 0, 0], "ATA", "Samsung SSD 860");
    f.put(&format!("{sd}/vpd_pg80"), pg80("  S3Z9NB0K123456  "));
    f.put(&format!("{sd}/wwid"), "naa.5002538E40A1B2C3\n");
    let sdb = format!("{sd}/block/sdb");
    f.disk(&sdb, &sd, "8:16", 1_953_525_168, 512, 512, false, false);
    f.partition(&sdb, "sdb1", "8:17", 1, 2048, 1_048_576);
    f.partition(&sdb, "sdb2", "8:18", 2, 1_050_624, 2_097_152);
    f.node("sdb1", &ext4("data"));
    f.node("sdb2", &vec![0u8; 70 << 10]);

    // NVMe with native multipath: the namespace's disk sits under the virtual subsystem, which
    // links its controllers into the PCI tree.
    let nv = f.pci("0000:04:00.0", 0x144d, 0xa808, 0x010802, "nvme");
    let ctrl = format!("{nv}/nvme/nvme0");
    f.subsystem(&ctrl, "class/nvme");
    let subsys = "devices/virtual/nvme-subsystem/nvme-subsys0";
    f.subsystem(subsys, "class/nvme-subsystem");
    f.put(&format!("{subsys}/model"), "Samsung SSD 970 EVO Plus 1TB            \n");
    f.put(&format!("{subsys}/serial"), "S4EWNX0R123456      \n");
    f.link(&format!("{subsys}/nvme0"), &ctrl);
    let ns = format!("{subsys}/nvme0n1");
    f.disk(&ns, subsys, "259:0", 1_953_525_168, 512, 512, false, false);
    f.put(&format!("{ns}/wwid"), "eui.0025388b71b0e91b\n");
    // The hidden per-path disk is not listed.
    f.put(&format!("{ctrl}/nvme0c0n1/hidden"), "1\n");

    // usb-storage behind xHCI: .../0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdc
    let xhci = f.pci("0000:00:14.0", 0x8086, 0xa36d, 0x0c0330, "xhci_hcd");
    for (d, vendor) in [(format!("{xhci}/usb2"), Some("1d6b")), (format!("{xhci}/usb2/2-1"), Some("0781"))] {
        f.subsystem(&d, "bus/usb");
        if let Some(v) = vendor {
            f.put(&format!("{d}/idVendor"), format!("{v}\n"));
        }
    }
    f.put(&format!("{xhci}/usb2/2-1/serial"), "4C530001234567\n");
    let intf = format!("{xhci}/usb2/2-1/2-1:1.0");
    f.subsystem(&intf, "bus/usb");
    let h6 = f.host(&intf, 6);
    let sd = f.scsi_dev(&h6, [6, 0, 0, 0], "SanDisk", "Cruzer Blade");
    let sdc = format!("{sd}/block/sdc");
    f.disk(&sdc, &sd, "8:32", 30_031_872, 512, 512, true, true);
    f.partition(&sdc, "sdc1", "8:33", 1, 2048, 204_800);
    f.node("sdc1", &fat32("VMFS_RESCUE"));

    // virtio-blk: /sys/block/vda -> ../devices/pci0000:00/0000:00:05.0/virtio3/block/vda
    let vb = f.pci("0000:00:05.0", 0x1af4, 0x1042, 0x018000, "virtio-pci");
    let v3 = format!("{vb}/virtio3");
    f.subsystem(&v3, "bus/virtio");
    f.link(&format!("{v3}/driver"), "bus/virtio/drivers/virtio_blk");
    f.put(&format!("{v3}/vendor"), "0x1af4\n");
    let vda = format!("{v3}/block/vda");
    f.disk(&vda, &v3, "254:0", 2_097_152, 512, 4096, false, true);
    f.put(&format!("{vda}/serial"), "vdserial42\n");
    f.node("vda", &fat32("RESCUEOUT"));

    // An HBA with nothing attached (QEMU's mptsas1068), a NIC (not storage).
    let mpt = f.pci("0000:00:06.0", 0x1000, 0x0054, 0x010000, "mptsas");
    f.host(&mpt, 7);
    f.pci("0000:00:03.0", 0x1af4, 0x1041, 0x020000, "virtio-pci");

    // Virtual: an idle loop device (size 0), an attached one, zram (never listed).
    for (name, dev, sectors) in [("loop0", "7:0", 0), ("loop1", "7:1", 20480), ("zram0", "252:0", 8_388_608)] {
        let d = format!("devices/virtual/block/{name}");
        f.put(&format!("{d}/dev"), format!("{dev}\n"));
        f.put(&format!("{d}/size"), format!("{sectors}\n"));
        f.put(&format!("{d}/ro"), "0\n");
        f.subsystem(&d, "class/block");
        f.link(&format!("block/{name}"), &d);
    }
    f
}

fn controller<'a>(inv: &'a Inventory, id: &str) -> &'a Controller {
    inv.controllers.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("controller {id} missing: {inv:#?}"))
}

fn disk<'a>(c: &'a Controller, name: &str) -> &'a Disk {
    c.disks.iter().find(|d| d.name == name).unwrap_or_else(|| panic!("disk {name} missing under {}", c.id))
}

#[test]
fn hw_fake_tree_lists_every_controller_and_disk_with_its_fields() {
    let f = build();
    let inv = hw::inventory_at(&f.roots()).unwrap();
    let ids: Vec<&str> = inv.controllers.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["0000:00:05.0", "0000:00:06.0", "0000:00:14.0", "0000:00:1f.2", "0000:03:00.0", "0000:04:00.0", "virtual"]
    );

    let mr = controller(&inv, "0000:03:00.0");
    assert_eq!((mr.vendor.as_str(), mr.model.as_str()), ("Broadcom / LSI", "MegaRAID SAS-3 3108 [Invader]"));
    assert_eq!((mr.class.as_str(), mr.kind.as_str()), ("RAID bus controller", "RAID"));
    assert_eq!(mr.driver.as_deref(), Some("megaraid_sas"));
    assert_eq!(mr.hosts, ["host2"]);
    let sda = disk(mr, "sda");
    assert_eq!(sda.devnode, f.root.join("dev/sda"));
    assert_eq!(sda.dev, "8:0");
    assert_eq!((sda.vendor.as_deref(), sda.model.as_deref()), (Some("AVAGO"), Some("MR9361-8i")));
    assert_eq!(sda.serial.as_deref(), Some("00a1b2c3d4"), "the udev database comes before the VPD page");
    assert_eq!(sda.wwn.as_deref(), Some("0x600605b00abc0000281d000000000001"), "from VPD 0x83");
    assert_eq!((sda.size, sda.logical_sector, sda.physical_sector), (585_937_500 * 512, 512, 4096));
    assert_eq!(
        (sda.transport.as_str(), sda.removable, sda.read_only, sda.rotational),
        ("sas", false, false, Some(true))
    );
    assert!(!sda.boot_medium && sda.partitions.is_empty() && sda.fs.is_none());

    let ahci = controller(&inv, "0000:00:1f.2");
    assert_eq!(
        (ahci.kind.as_str(), ahci.class.as_str(), ahci.driver.as_deref()),
        ("SATA", "SATA controller", Some("ahci"))
    );
    assert_eq!(ahci.vendor, "Intel Corporation");
    assert_eq!(ahci.hosts, ["host0"]);
    let sdb = disk(ahci, "sdb");
    assert_eq!((sdb.vendor.as_deref(), sdb.model.as_deref()), (Some("ATA"), Some("Samsung SSD 860")));
    assert_eq!(sdb.serial.as_deref(), Some("S3Z9NB0K123456"), "from VPD 0x80, blanks trimmed");
    assert_eq!(sdb.wwn.as_deref(), Some("0x5002538e40a1b2c3"), "from device/wwid");
    assert_eq!((sdb.transport.as_str(), sdb.rotational), ("sata", Some(false)));
    let p: Vec<_> = sdb
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.dev.as_str(), p.start, p.size, p.fs, p.label.as_deref()))
        .collect();
    assert_eq!(
        p,
        [
            ("sdb1", "8:17", 2048 * 512, 1_048_576 * 512, Some(FsKind::Ext4), Some("data")),
            ("sdb2", "8:18", 1_050_624 * 512, 2_097_152 * 512, None, None)
        ]
    );
    assert_eq!(sdb.partitions[0].devnode, f.root.join("dev/sdb1"));

    let nv = controller(&inv, "0000:04:00.0");
    assert_eq!(
        (nv.kind.as_str(), nv.class.as_str(), nv.driver.as_deref()),
        ("NVMe", "Non-Volatile memory controller", Some("nvme"))
    );
    assert!(nv.hosts.is_empty());
    assert_eq!(nv.disks.len(), 1, "the hidden per-path disk is not listed");
    let ns = disk(nv, "nvme0n1");
    assert_eq!((ns.vendor.as_deref(), ns.model.as_deref()), (None, Some("Samsung SSD 970 EVO Plus 1TB")));
    assert_eq!(ns.serial.as_deref(), Some("S4EWNX0R123456"));
    assert_eq!(ns.wwn.as_deref(), Some("eui.0025388b71b0e91b"));
    assert_eq!((ns.transport.as_str(), ns.dev.as_str(), ns.size), ("nvme", "259:0", 1_953_525_168 * 512));

    let usb = controller(&inv, "0000:00:14.0");
    assert_eq!(
        (usb.kind.as_str(), usb.class.as_str(), usb.driver.as_deref()),
        ("USB", "USB controller", Some("xhci_hcd"))
    );
    assert_eq!(usb.hosts, ["host6"]);
    let sdc = disk(usb, "sdc");
    assert_eq!((sdc.vendor.as_deref(), sdc.model.as_deref()), (Some("SanDisk"), Some("Cruzer Blade")));
    assert_eq!(sdc.serial.as_deref(), Some("4C530001234567"), "from the USB device");
    assert_eq!(sdc.wwn, None);
    assert_eq!((sdc.transport.as_str(), sdc.removable), ("usb", true));
    assert_eq!(sdc.partitions[0].fs, Some(FsKind::Vfat));
    assert_eq!(sdc.partitions[0].label.as_deref(), Some("VMFS_RESCUE"));
    assert!(sdc.boot_medium, "the VMFS_RESCUE label marks the boot medium when nothing names it");
    assert!(inv.notes.iter().any(|n| n == "boot medium: sdc (by its label)"), "{:?}", inv.notes);
    assert_eq!(inv.disks().filter(|d| d.boot_medium).count(), 1);

    let vb = controller(&inv, "0000:00:05.0");
    assert_eq!(
        (vb.kind.as_str(), vb.class.as_str(), vb.model.as_str()),
        ("virtio", "Mass storage controller", "Virtio block device")
    );
    let vda = disk(vb, "vda");
    assert_eq!((vda.vendor.as_deref(), vda.model.as_deref(), vda.serial.as_deref()), (None, None, Some("vdserial42")));
    assert_eq!((vda.transport.as_str(), vda.physical_sector, vda.size), ("virtio", 4096, 1 << 30));
    assert_eq!(
        (vda.fs, vda.label.as_deref()),
        (Some(FsKind::Vfat), Some("RESCUEOUT")),
        "an unpartitioned disk's file system"
    );

    let mpt = controller(&inv, "0000:00:06.0");
    assert_eq!(
        (mpt.model.as_str(), mpt.kind.as_str(), mpt.driver.as_deref()),
        ("SAS1068 PCI-X Fusion-MPT SAS", "SAS/SCSI", Some("mptsas"))
    );
    assert_eq!(mpt.hosts, ["host7"]);
    assert!(mpt.disks.is_empty());

    let virt = controller(&inv, "virtual");
    let names: Vec<&str> = virt.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["loop1"], "idle loop devices and zram are not listed");
    assert_eq!((virt.disks[0].transport.as_str(), virt.disks[0].size), ("loop", 20480 * 512));

    assert!(inv.notes.iter().any(|n| n.contains("no pci.ids")));
    assert!(!inv.notes.iter().any(|n| n.contains("udev database")), "the fake udev database exists");
    // JSON carries the same.
    let j = serde_json::to_value(&inv).unwrap();
    assert_eq!(j["controllers"][0]["disks"][0]["fs"], "vfat");
}

#[test]
fn hw_boot_medium_named_by_file_or_override_and_pci_ids_names() {
    let f = build();
    fs::create_dir_all(f.root.join("run/vmfs-rescue")).unwrap();
    fs::write(f.root.join("run/vmfs-rescue/boot-device"), "sdb1\n").unwrap();
    let ids = f.root.join("pci.ids");
    fs::write(&ids, "1000  LSI Logic / Symbios Logic\n\t005d  MegaRAID 3108 FROM FILE\n8086  Intel Corporation\nC 01  Mass storage controller\n\t04  RAID controller FROM FILE\n").unwrap();
    let mut roots = f.roots();
    roots.pci_ids = vec![f.root.join("missing.ids"), ids];
    let inv = hw::inventory_at(&roots).unwrap();
    let boot: Vec<&str> = inv.disks().filter(|d| d.boot_medium).map(|d| d.name.as_str()).collect();
    assert_eq!(boot, ["sdb"], "a partition's name means its disk; the file wins over labels");
    let mr = controller(&inv, "0000:03:00.0");
    assert_eq!(
        (mr.vendor.as_str(), mr.model.as_str(), mr.class.as_str()),
        ("LSI Logic / Symbios Logic", "MegaRAID 3108 FROM FILE", "RAID controller FROM FILE")
    );
    // A device pci.ids does not list falls back to the built-in name.
    assert_eq!(
        controller(&inv, "0000:00:1f.2").model,
        "82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]"
    );

    roots.boot_device = Some("/dev/nvme0n1".into());
    let inv = hw::inventory_at(&roots).unwrap();
    let boot: Vec<&str> = inv.disks().filter(|d| d.boot_medium).map(|d| d.name.as_str()).collect();
    assert_eq!(boot, ["nvme0n1"], "the override wins over the file");

    roots.boot_device = Some("sdz".into());
    let inv = hw::inventory_at(&roots).unwrap();
    assert!(inv.notes.iter().any(|n| n.contains("\"sdz\"") && n.contains("not among the disks")), "{:?}", inv.notes);
    assert_eq!(inv.disks().filter(|d| d.boot_medium).map(|d| d.name.as_str()).collect::<Vec<_>>(), ["sdc"]);
}

#[test]
fn hw_destinations_refuse_sources_and_vmfs_and_flag_the_boot_medium() {
    let f = build();
    let inv = hw::inventory_at(&f.roots()).unwrap();
    let mounts =
        hw::dest::mountinfo(&format!("40 1 8:17 / /mnt/data rw - ext4 {} rw\n", f.root.join("dev/sdb1").display()));
    let d = hw::dest::destinations_with(&inv, &[], &mounts);
    let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["vda", "sdc1", "sdb1"], "writable file systems only, controller by controller");
    let sdb1 = d.iter().find(|d| d.name == "sdb1").unwrap();
    assert_eq!(
        (sdb1.disk.as_str(), sdb1.fs, sdb1.mounted_at.as_deref()),
        ("sdb", FsKind::Ext4, Some(Path::new("/mnt/data")))
    );
    assert!(sdb1.refused.is_none());
    let sdc1 = d.iter().find(|d| d.name == "sdc1").unwrap();
    assert!(sdc1.boot_medium && sdc1.refused.is_none(), "the boot medium is offered, flagged");
    // A mounted destination is returned as it is.
    assert_eq!(hw::mount(sdb1, Path::new("/nonexistent")).unwrap(), PathBuf::from("/mnt/data"));

    // Sources are compared by device number: only real block devices can be; here /dev/vda when
    // this machine has it. Refusal reasons are checked on a modified inventory instead.
    let mut inv2 = inv.clone();
    for c in &mut inv2.controllers {
        for dk in &mut c.disks {
            if dk.name == "sdb" {
                dk.partitions[1].fs = Some(FsKind::VmwareLvm);
            }
        }
    }
    let d = hw::dest::destinations_with(&inv2, &[], &[]);
    let sdb1 = d.iter().find(|d| d.name == "sdb1").unwrap();
    assert_eq!(sdb1.refused.as_deref(), Some("disk sdb holds VMFS: a possible source"));
    let err = hw::mount(sdb1, Path::new("/nonexistent")).unwrap_err().to_string();
    assert!(err.contains("sdb1") && err.contains("refused"), "{err}");

    if Path::new("/dev/vda").exists() {
        let real = hw::inventory().unwrap();
        let d = hw::dest::destinations_with(
            &real,
            &[PathBuf::from("/dev/vda")],
            &[hw::dest::Mount {
                dev: "254:0".into(),
                target: "/".into(),
                fstype: "ext4".into(),
                source: "/dev/vda".into(),
            }],
        );
        for x in d.iter().filter(|x| x.disk == "vda") {
            assert!(x.refused.as_deref().is_some_and(|r| r.contains("source /dev/vda")), "{x:?}");
        }
    }
}

#[test]
fn hw_probe_recognises_what_the_real_mkfs_tools_write() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], FsKind, &str); 5] = [
        ("mkfs.vfat", &["-n", "RESCUEOUT"], FsKind::Vfat, "RESCUEOUT"),
        ("mkfs.ext4", &["-q", "-F", "-L", "extlabel"], FsKind::Ext4, "extlabel"),
        ("mkfs.ext4", &["-q", "-F", "-t", "ext2", "-L", "old"], FsKind::Ext2, "old"),
        ("mkfs.ntfs", &["-q", "-F", "-f", "-L", "NtfsOut"], FsKind::Ntfs, "NtfsOut"),
        ("mkswap", &["-L", "sw1"], FsKind::Swap, "sw1"),
    ];
    for (i, (tool, args, kind, label)) in cases.iter().enumerate() {
        let img = tmp.path().join(format!("img{i}"));
        fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
        let out = match std::process::Command::new(tool).args(*args).arg(&img).output() {
            Ok(o) => o,
            Err(_) => {
                eprintln!("SKIP {tool}: not installed");
                continue;
            }
        };
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
        let p = hw::probe::probe_path(&img).unwrap().unwrap_or_else(|| panic!("{tool}: not recognised"));
        assert_eq!((p.fs, p.label.as_deref()), (*kind, Some(*label)), "{tool} {args:?}");
    }
    // An ISO 9660 image with the appliance's volume id (xorriso, when installed).
    let dir = tmp.path().join("iso");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("f"), "x").unwrap();
    let iso = tmp.path().join("a.iso");
    match std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "VMFSRESCUE", "-o"])
        .arg(&iso)
        .arg(&dir)
        .output()
    {
        Ok(o) if o.status.success() => {
            let p = hw::probe::probe_path(&iso).unwrap().unwrap();
            assert_eq!((p.fs, p.label.as_deref()), (FsKind::Iso9660, Some("VMFSRESCUE")));
        }
        _ => eprintln!("SKIP xorriso"),
    }
    assert!(hw::probe::probe_path(&tmp.path().join("missing")).is_err());
    let empty = tmp.path().join("empty");
    fs::write(&empty, []).unwrap();
    assert_eq!(hw::probe::probe_path(&empty).unwrap(), None);
}

#[test]
fn hw_real_machine_lists_vda_under_a_virtio_controller() {
    if !Path::new("/sys/block/vda").exists() {
        eprintln!("SKIP: this machine has no vda");
        return;
    }
    let inv = hw::inventory().unwrap();
    let (c, d) = inv
        .controllers
        .iter()
        .find_map(|c| c.disks.iter().find(|d| d.name == "vda").map(|d| (c, d)))
        .unwrap_or_else(|| panic!("vda not listed: {inv:#?}"));
    assert_eq!((c.kind.as_str(), d.transport.as_str()), ("virtio", "virtio"));
    assert!(c.id.contains(':'), "a PCI address: {}", c.id);
    let out = std::process::Command::new("blockdev").args(["--getsize64", "/dev/vda"]).output();
    let expect: u64 = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().parse().unwrap(),
        _ => {
            // A container may not let us open the device: /proc/partitions counts 1 KiB blocks.
            eprintln!("blockdev cannot open /dev/vda here; comparing with /proc/partitions");
            let t = fs::read_to_string("/proc/partitions").unwrap();
            let line = t.lines().find(|l| l.split_whitespace().nth(3) == Some("vda")).unwrap();
            line.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap() * 1024
        }
    };
    assert_eq!(d.size, expect);
    assert_eq!(d.devnode, PathBuf::from("/dev/vda"));
    assert!(d.logical_sector >= 512 && d.physical_sector >= d.logical_sector);
}

#[test]
fn hw_devices_command_text_and_json() {
    let out = bin().arg("devices").env_remove("VMFS_RESCUE_BOOT_DEVICE").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let out = bin().args(["devices", "--json"]).env_remove("VMFS_RESCUE_BOOT_DEVICE").output().unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ctrls = j["controllers"].as_array().unwrap();
    assert!(!ctrls.is_empty(), "{text}");
    for c in ctrls {
        let id = c["id"].as_str().unwrap();
        assert!(text.lines().any(|l| l.starts_with(id)), "controller {id} not in the text:\n{text}");
        for d in c["disks"].as_array().unwrap() {
            let name = d["name"].as_str().unwrap();
            assert!(text.lines().any(|l| l.trim_start().starts_with(name)), "disk {name} not in the text:\n{text}");
            for k in [
                "model",
                "serial",
                "wwn",
                "size",
                "logical_sector",
                "physical_sector",
                "transport",
                "removable",
                "boot_medium",
            ] {
                assert!(d.get(k).is_some(), "{k} missing in {d}");
            }
        }
    }
    if Path::new("/sys/block/vda").exists() {
        assert!(text.contains("vda") && text.contains("virtio"), "{text}");
    }
    let out = bin().args(["devices", "--destinations", "--json"]).output().unwrap();
    assert!(out.status.success());
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d.is_array());
    let out = bin().args(["devices", "/dev/vda"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "sources need --destinations");
}

fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// A loop device over a temporary image: unmounted and detached on drop.
struct LoopDev {
    dev: PathBuf,
    mounted: Option<PathBuf>,
}

impl LoopDev {
    fn attach(img: &Path) -> Option<Self> {
        let out = std::process::Command::new("losetup").args(["--find", "--show"]).arg(img).output().ok()?;
        if !out.status.success() {
            eprintln!("SKIP: losetup failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        Some(Self { dev: PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()), mounted: None })
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        if let Some(m) = &self.mounted {
            let _ = nix::mount::umount(m.as_path());
        }
        let _ = std::process::Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// A temporary image made by `mkfs` with `args`, behind a loop device (root and loop devices
/// needed; the image is a temp file, no real disk is touched).
fn loop_with(tmp: &Path, mkfs: &str, args: &[&str]) -> Option<LoopDev> {
    if !Path::new("/dev/loop-control").exists() || !is_root() {
        eprintln!("SKIP: needs root and loop devices");
        return None;
    }
    let img = tmp.join(format!("{mkfs}.img"));
    fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    let ok =
        std::process::Command::new(mkfs).args(args).arg(&img).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("SKIP: {mkfs} failed or is missing");
        return None;
    }
    LoopDev::attach(&img)
}

#[test]
fn hw_mount_a_loop_destination_read_write_and_report_a_failing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut lo) = loop_with(tmp.path(), "mkfs.ext4", &["-q", "-F", "-L", "hwdest"]) else { return };
    let name = lo.dev.file_name().unwrap().to_string_lossy().into_owned();
    let inv = hw::inventory().unwrap();
    let disk = controller(&inv, "virtual").disks.iter().find(|d| d.name == name);
    let Some(disk) = disk else { panic!("{name} not listed under virtual: {inv:#?}") };
    if disk.fs.is_none() {
        eprintln!("SKIP: {} not readable here", lo.dev.display());
        return;
    }
    assert_eq!((disk.fs, disk.label.as_deref(), disk.transport.as_str()), (Some(FsKind::Ext4), Some("hwdest"), "loop"));
    let dests = hw::destinations(&inv, &[]);
    let d = dests.iter().find(|d| d.name == name).unwrap();
    assert!(d.refused.is_none() && d.mounted_at.is_none(), "{d:?}");
    let base = tmp.path().join("mnt");
    // As the rescue image leaves every disk at boot: read-only in the kernel. The destination
    // the admin picks is made writable again by mount().
    let ro = std::process::Command::new("blockdev").arg("--setro").arg(&lo.dev).status().unwrap();
    assert!(ro.success());
    let at = hw::mount(d, &base).unwrap();
    lo.mounted = Some(at.clone());
    assert_eq!(at, base.join(&name));
    fs::write(at.join("written.txt"), "recovered").unwrap();
    assert!(hw::free_bytes(&at).unwrap() > 0);
    // Now listed as mounted, and mount() answers with where.
    let again = hw::destinations(&hw::inventory().unwrap(), &[]);
    let d2 = again.iter().find(|d| d.name == name).unwrap();
    assert_eq!(d2.mounted_at.as_deref(), Some(at.as_path()));
    assert_eq!(hw::mount(d2, Path::new("/elsewhere")).unwrap(), at);
    // As a source it is refused.
    let as_src = hw::destinations(&hw::inventory().unwrap(), std::slice::from_ref(&lo.dev));
    let d3 = as_src.iter().find(|d| d.name == name).unwrap();
    assert_eq!(d3.refused.as_deref(), Some(format!("it is source {}", lo.dev.display()).as_str()));
    nix::mount::umount(at.as_path()).unwrap();
    lo.mounted = None;

    // A kernel without the file system: the error names the device, the type and each attempt.
    let Some(vf) = loop_with(tmp.path(), "mkfs.vfat", &["-n", "VFATDEST"]) else { return };
    let mut dest = d.clone();
    dest.name = vf.dev.file_name().unwrap().to_string_lossy().into_owned();
    dest.devnode = vf.dev.clone();
    dest.fs = FsKind::Vfat;
    match hw::mount(&dest, &base) {
        Ok(at) => {
            let _ = nix::mount::umount(at.as_path());
            eprintln!("this kernel mounts vfat: the failure path is not exercised");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&vf.dev.display().to_string()) && msg.contains("vfat"), "{msg}");
            assert!(msg.contains("iocharset=utf8") && msg.contains("then"), "both attempts are reported: {msg}");
            assert!(!base.join(&dest.name).exists(), "the mount point made for it is removed again");
        }
    }
}
