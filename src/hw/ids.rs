//! PCI names: from the system's `pci.ids` when it has one, else from a small built-in table of
//! the storage and network vendors (and the devices QEMU emulates) a rescue is likely to meet,
//! else the hex ids. The appliance image may carry no `pci.ids` (1.3 MB), hence the table.

use std::path::Path;

/// Where distributions keep `pci.ids`, relative to the root.
pub const PCI_IDS_PATHS: [&str; 3] = ["usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids", "usr/share/pci.ids"];

/// Read the first `pci.ids` found under `root` (usually `/`).
pub fn load_pci_ids(root: &Path) -> Option<String> {
    PCI_IDS_PATHS.iter().find_map(|p| std::fs::read_to_string(root.join(p)).ok())
}

/// Vendor and device names of `vendor:device` in `pci.ids` text. The format: a vendor line
/// `vvvv  Name`, its devices as `\tdddd  Name`, subsystems as `\t\t...`; classes start at `C `.
pub fn lookup(text: &str, vendor: u16, device: u16) -> (Option<String>, Option<String>) {
    let v = format!("{vendor:04x}");
    let d = format!("{device:04x}");
    let mut vendor_name = None;
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with("C ") {
            break;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            if vendor_name.is_some()
                && !rest.starts_with('\t')
                && let Some((id, name)) = split_id(rest)
                && id.eq_ignore_ascii_case(&d)
            {
                return (vendor_name, Some(name.to_string()));
            }
            continue;
        }
        if vendor_name.is_some() {
            break; // the next vendor: the device is not listed
        }
        if let Some((id, name)) = split_id(line)
            && id.eq_ignore_ascii_case(&v)
        {
            vendor_name = Some(name.to_string());
        }
    }
    (vendor_name, None)
}

/// The name of PCI class `class` (0xCCSS) from the `C cc  Name` / `\tss  Name` section.
pub fn lookup_class(text: &str, class: u16) -> Option<String> {
    let c = format!("{:02x}", class >> 8);
    let s = format!("{:02x}", class & 0xFF);
    let mut in_class = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("C ") {
            if in_class {
                return None;
            }
            in_class = split_id(rest).is_some_and(|(id, _)| id.eq_ignore_ascii_case(&c));
        } else if in_class
            && let Some(rest) = line.strip_prefix('\t')
            && !rest.starts_with('\t')
            && let Some((id, name)) = split_id(rest)
            && id.eq_ignore_ascii_case(&s)
        {
            return Some(name.to_string());
        }
    }
    None
}

/// `id  name` (two spaces in pci.ids; any whitespace accepted).
fn split_id(line: &str) -> Option<(&str, &str)> {
    let (id, name) = line.split_once(char::is_whitespace)?;
    let name = name.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty()).then_some((id, name))
}

/// Built-in vendor names (pci.ids spelling, shortened where pci.ids is long).
pub fn builtin_vendor(vendor: u16) -> Option<&'static str> {
    Some(match vendor {
        0x1000 => "Broadcom / LSI",
        0x1002 => "AMD/ATI",
        0x1022 => "AMD",
        0x103c => "Hewlett-Packard Company",
        0x1077 => "QLogic Corp.",
        0x1014 => "IBM",
        0x10df => "Emulex Corporation",
        0x10de => "NVIDIA Corporation",
        0x10ec => "Realtek Semiconductor Co., Ltd.",
        0x1028 => "Dell",
        0x1106 => "VIA Technologies, Inc.",
        0x1095 => "Silicon Image, Inc.",
        0x1b4b => "Marvell Technology Group Ltd.",
        0x1b21 => "ASMedia Technology Inc.",
        0x1b36 => "Red Hat, Inc.",
        0x1af4 => "Red Hat, Inc. (virtio)",
        0x144d => "Samsung Electronics Co Ltd",
        0x14e4 => "Broadcom Inc. and subsidiaries",
        0x15ad => "VMware",
        0x1590 => "Hewlett Packard Enterprise",
        0x15b3 => "Mellanox Technologies",
        0x1657 => "Brocade Communications Systems, Inc.",
        0x17d3 => "Areca Technology Corp.",
        0x19a2 => "Emulex Corporation",
        0x1c5c => "SK hynix",
        0x1cc1 => "ADATA Technology Co., Ltd.",
        0x1d0f => "Amazon.com, Inc.",
        0x1e0f => "KIOXIA Corporation",
        0x1344 => "Micron Technology Inc",
        0x15b7 => "Sandisk Corp",
        0x126f => "Silicon Motion, Inc.",
        0x1987 => "Phison Electronics Corporation",
        0x2646 => "Kingston Technology Company, Inc.",
        0x8086 => "Intel Corporation",
        0x9004 | 0x9005 => "Adaptec / Microsemi / Microchip",
        0x11f8 => "PMC-Sierra / Microchip",
        0x117c => "ATTO Technology, Inc.",
        0x1cb8 => "Dawning Information Industry Co., Ltd.",
        _ => return None,
    })
}

/// Built-in names of devices QEMU emulates and a few common HBAs.
pub fn builtin_device(vendor: u16, device: u16) -> Option<&'static str> {
    Some(match (vendor, device) {
        (0x1000, 0x0012) => "53c895a",
        (0x1000, 0x0054) => "SAS1068 PCI-X Fusion-MPT SAS",
        (0x1000, 0x0411) => "MegaRAID SAS 1078",
        (0x1000, 0x005b) => "MegaRAID SAS 2208 [Thunderbolt]",
        (0x1000, 0x005d) => "MegaRAID SAS-3 3108 [Invader]",
        (0x1000, 0x0097) => "SAS3008 PCI-Express Fusion-MPT SAS-3",
        (0x1000, 0x0087) => "SAS2308 PCI-Express Fusion-MPT SAS-2",
        (0x1000, 0x0072) => "SAS2008 PCI-Express Fusion-MPT SAS-2 [Falcon]",
        (0x1000, 0x00af) => "SAS3408 Fusion-MPT Tri-Mode I/O Controller Chip (IOC)",
        (0x1000, 0x0014) => "MegaRAID Tri-Mode SAS3516",
        (0x1000, 0x0016) => "MegaRAID Tri-Mode SAS3508",
        (0x103c, 0x323a) => "Smart Array G6 controllers",
        (0x103c, 0x323b) => "Smart Array Gen8 Controllers",
        (0x9005, 0x028f) => "Smart Storage PQI 12G SAS/PCIe 3",
        (0x15ad, 0x07c0) => "PVSCSI SCSI Controller",
        (0x15ad, 0x07e0) => "SATA AHCI controller",
        (0x15ad, 0x07f0) => "NVMe SSD Controller",
        (0x1af4, 0x1001 | 0x1042) => "Virtio block device",
        (0x1af4, 0x1004 | 0x1048) => "Virtio SCSI",
        (0x1af4, 0x1000 | 0x1041) => "Virtio network device",
        (0x1b36, 0x0010) => "QEMU NVM Express Controller",
        (0x1b36, 0x000d) => "QEMU XHCI Host Controller",
        (0x8086, 0x2922) => "82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]",
        (0x8086, 0x7010) => "82371SB PIIX3 IDE [Natoma/Triton II]",
        (0x8086, 0x7111) => "82371AB/EB/MB PIIX4 IDE",
        (0x8086, 0x24cd) => "82801DB/DBM (ICH4/ICH4-M) USB2 EHCI Controller",
        (0x8086, 0x2934) => "82801I (ICH9 Family) USB UHCI Controller #1",
        _ => return None,
    })
}

/// Built-in PCI class names (0xCCSS) for storage and the buses disks hang off.
pub fn builtin_class(class: u16) -> Option<&'static str> {
    Some(match class {
        0x0100 => "SCSI storage controller",
        0x0101 => "IDE interface",
        0x0102 => "Floppy disk controller",
        0x0104 => "RAID bus controller",
        0x0105 => "ATA controller",
        0x0106 => "SATA controller",
        0x0107 => "Serial Attached SCSI controller",
        0x0108 => "Non-Volatile memory controller",
        0x0180 => "Mass storage controller",
        0x0200 => "Ethernet controller",
        0x0c03 => "USB controller",
        0x0c04 => "Fibre Channel",
        0x0c05 => "SMBus",
        0x0805 => "SD Host controller",
        0xff00 => "Unassigned class",
        _ => return None,
    })
}

/// The short kind of a controller from its PCI class (0xCCSS) and vendor.
pub fn kind_of(class: u16, vendor: u16) -> String {
    if vendor == 0x1af4 {
        return "virtio".into();
    }
    match class {
        0x0100 | 0x0107 => "SAS/SCSI",
        0x0104 => "RAID",
        0x0101 | 0x0105 => "IDE/ATA",
        0x0106 => "SATA",
        0x0108 => "NVMe",
        0x0c03 => "USB",
        0x0c04 => "Fibre Channel",
        0x0805 => "SD/MMC",
        c if c >> 8 == 0x01 => "storage",
        _ => "other",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: &str = "# pci.ids sample\n\
1000  Broadcom / LSI\n\
\t0054  SAS1068 PCI-X Fusion-MPT SAS\n\
\t\t1000 8000  SAS3041X\n\
\t005d  MegaRAID SAS-3 3108 [Invader]\n\
1001  Kolter Electronic\n\
\t005d  Not this one\n\
8086  Intel Corporation\n\
C 00  Unclassified device\n\
\t00  Non-VGA unclassified device\n\
C 01  Mass storage controller\n\
\t00  SCSI storage controller\n\
\t07  Serial Attached SCSI controller\n\
\t\t01  Serial Storage Bus\n\
C 02  Network controller\n\
\t07  Not storage\n";

    #[test]
    fn vendor_device_and_class_lines() {
        assert_eq!(
            lookup(IDS, 0x1000, 0x005d),
            (Some("Broadcom / LSI".into()), Some("MegaRAID SAS-3 3108 [Invader]".into()))
        );
        assert_eq!(
            lookup(IDS, 0x1000, 0x8000),
            (Some("Broadcom / LSI".into()), None),
            "subsystem lines are not devices"
        );
        assert_eq!(lookup(IDS, 0x8086, 0x005d), (Some("Intel Corporation".into()), None));
        assert_eq!(lookup(IDS, 0x1234, 0x0001), (None, None));
        assert_eq!(lookup_class(IDS, 0x0107).as_deref(), Some("Serial Attached SCSI controller"));
        assert_eq!(lookup_class(IDS, 0x0207).as_deref(), Some("Not storage"));
        assert_eq!(lookup_class(IDS, 0x0108), None);
        assert_eq!(lookup("\t\t\n C\n1000\n\tzz  x\n", 0x1000, 0), (None, None));
    }

    #[test]
    fn builtins_and_kinds() {
        assert_eq!(builtin_vendor(0x1000), Some("Broadcom / LSI"));
        assert_eq!(builtin_device(0x1af4, 0x1042), Some("Virtio block device"));
        assert_eq!(builtin_class(0x0104), Some("RAID bus controller"));
        assert_eq!(kind_of(0x0180, 0x1af4), "virtio");
        assert_eq!(kind_of(0x0106, 0x8086), "SATA");
        assert_eq!(kind_of(0x0108, 0x144d), "NVMe");
        assert_eq!(kind_of(0x0c03, 0x1b36), "USB");
    }
}
