//! The other files of an ESXi VM folder: `.vmx`, `.vmsd`, `.nvram` and `vmware.log`. Recovery
//! reads the first two to find each disk's leaf and the snapshot tree, and the log to date
//! events; the nvram is only there so folders look like ESXi 7/8 ones. All are deterministic
//! functions of a [`VmSpec`] and its seed.

use super::descriptor::uuid_text;
use super::rng::SplitMix64;
use crate::forge::ForgeError;
use std::fmt::Write as _;

/// Firmware, which decides the nvram flavour and `firmware = "efi"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS.
    Bios,
    /// UEFI.
    Efi,
}

/// A virtual disk as the .vmx names it.
#[derive(Clone, Debug)]
pub struct VmDisk {
    /// Node, e.g. `scsi0:0`.
    pub node: String,
    /// Leaf descriptor of the disk's chain (`vm-000001.vmdk` when a snapshot exists).
    pub leaf_file: String,
}

/// One snapshot in the .vmsd.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    /// `uid` (from 1).
    pub uid: u32,
    /// Uid of the parent snapshot; `None` for the root.
    pub parent: Option<u32>,
    /// `displayName`.
    pub display_name: String,
    /// `description`.
    pub description: String,
    /// Creation time, microseconds since 1970-01-01 UTC.
    pub create_time_us: i64,
    /// `(node, descriptor)` of the links this snapshot froze.
    pub disks: Vec<(String, String)>,
}

/// What a VM folder's text files describe.
#[derive(Clone, Debug)]
pub struct VmSpec {
    /// `displayName` and the base of every file name.
    pub name: String,
    /// `guestOS`, e.g. `ubuntu64Guest`, `windows2019srv_64Guest`.
    pub guest_os: String,
    /// `memSize` in MiB.
    pub mem_mb: u32,
    /// `numvcpus`.
    pub vcpus: u32,
    /// `virtualHW.version` (19 = ESXi 7.0 U2, 20 = ESXi 8.0).
    pub hw_version: u32,
    /// Firmware.
    pub firmware: Firmware,
    /// `/vmfs/volumes/<datastore uuid>/<folder>`: where `sched.swap.derivedName` points.
    pub folder_path: String,
    /// Disks, in controller order.
    pub disks: Vec<VmDisk>,
    /// Snapshots, parents first; the last is `snapshot.current`.
    pub snapshots: Vec<SnapshotInfo>,
    /// Seed for uuids, MAC address and log content.
    pub seed: u64,
}

impl VmSpec {
    fn check(&self) -> Result<(), ForgeError> {
        let bad = |s: &str| s.is_empty() || s.contains(['"', '\n', '\0']);
        if bad(&self.name) || bad(&self.guest_os) || bad(&self.folder_path) {
            return Err(ForgeError::Layout(format!("VM spec {:?} has an empty or unquotable name", self.name)));
        }
        if self.disks.iter().any(|d| bad(&d.node) || bad(&d.leaf_file) || !d.node.contains(':')) {
            return Err(ForgeError::Layout(format!("VM {}: bad disk node or file name", self.name)));
        }
        Ok(())
    }
}

/// The `.vmx` text, as ESXi 7/8 writes it (`key = "value"`, one per line).
pub fn vmx(spec: &VmSpec) -> Result<String, ForgeError> {
    spec.check()?;
    let mut g = SplitMix64::new(spec.seed, 0x766d78);
    let bios = g.uuid();
    let location = g.uuid();
    let mut vc = g.uuid();
    vc[0] = 0x50;
    let mut bios42 = bios;
    bios42[0] = 0x42;
    let mac = g.next_u32();
    let n = &spec.name;
    let mut kv: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| kv.push((k.to_string(), v));
    put(".encoding", "UTF-8".into());
    put("config.version", "8".into());
    put("virtualHW.version", spec.hw_version.to_string());
    put("vmci0.present", "TRUE".into());
    put("floppy0.present", "FALSE".into());
    put("numvcpus", spec.vcpus.to_string());
    put("memSize", spec.mem_mb.to_string());
    if spec.firmware == Firmware::Efi {
        put("firmware", "efi".into());
    }
    put("bios.bootRetry.delay", "10".into());
    put("powerType.suspend", "soft".into());
    put("tools.upgrade.policy", "manual".into());
    put("sched.cpu.units", "mhz".into());
    put("sched.cpu.affinity", "all".into());
    put("vm.createDate", (1_600_000_000_000_000 + (g.next_u64() % 100_000_000_000_000)).to_string());
    let mut controllers: Vec<&str> = spec.disks.iter().filter_map(|d| d.node.split(':').next()).collect();
    controllers.dedup();
    for c in controllers {
        put(&format!("{c}.virtualDev"), "pvscsi".into());
        put(&format!("{c}.present"), "TRUE".into());
    }
    for d in &spec.disks {
        put(&format!("{}.deviceType", d.node), "scsi-hardDisk".into());
        put(&format!("{}.fileName", d.node), d.leaf_file.clone());
        put(&format!("{}.present", d.node), "TRUE".into());
    }
    put("ethernet0.virtualDev", "vmxnet3".into());
    put("ethernet0.networkName", "VM Network".into());
    put("ethernet0.addressType", "vpx".into());
    put(
        "ethernet0.generatedAddress",
        format!("00:50:56:{:02x}:{:02x}:{:02x}", (mac >> 16) as u8 & 0x3f, (mac >> 8) as u8, mac as u8),
    );
    put("ethernet0.uptCompatibility", "TRUE".into());
    put("ethernet0.present", "TRUE".into());
    put("displayName", n.clone());
    put("guestOS", spec.guest_os.clone());
    put("toolScripts.afterPowerOn", "TRUE".into());
    put("toolScripts.afterResume", "TRUE".into());
    put("toolScripts.beforeSuspend", "TRUE".into());
    put("toolScripts.beforePowerOff", "TRUE".into());
    put("tools.syncTime", "FALSE".into());
    put("uuid.bios", uuid_text(&bios42));
    put("uuid.location", uuid_text(&location));
    put("vc.uuid", uuid_text(&vc));
    put("sched.cpu.min", "0".into());
    put("sched.cpu.shares", "normal".into());
    put("sched.mem.min", "0".into());
    put("sched.mem.minSize", "0".into());
    put("sched.mem.shares", "normal".into());
    put("migrate.encryptionMode", "opportunistic".into());
    put("nvram", format!("{n}.nvram"));
    put("extendedConfigFile", format!("{n}.vmxf"));
    put("sched.swap.derivedName", format!("{}/{n}-{:08x}.vswp", spec.folder_path, g.next_u32()));
    put("cleanShutdown", "TRUE".into());
    put("softPowerOff", "TRUE".into());
    Ok(kv.iter().map(|(k, v)| format!("{k} = \"{v}\"\n")).collect())
}

/// The `.vmsd` text: empty (0 bytes, as ESXi leaves it) when there is no snapshot.
pub fn vmsd(spec: &VmSpec) -> Result<String, ForgeError> {
    spec.check()?;
    let mut s = String::new();
    let Some(last) = spec.snapshots.last() else { return Ok(s) };
    let last_uid = spec.snapshots.iter().map(|x| x.uid).max().unwrap_or(0);
    let _ = writeln!(s, ".encoding = \"UTF-8\"");
    let _ = writeln!(s, "snapshot.lastUID = \"{last_uid}\"");
    let _ = writeln!(s, "snapshot.current = \"{}\"", last.uid);
    for (i, sn) in spec.snapshots.iter().enumerate() {
        let p = format!("snapshot{i}");
        let _ = writeln!(s, "{p}.uid = \"{}\"", sn.uid);
        let _ = writeln!(s, "{p}.filename = \"{}-Snapshot{}.vmsn\"", spec.name, sn.uid);
        if let Some(parent) = sn.parent {
            let _ = writeln!(s, "{p}.parent = \"{parent}\"");
        }
        let _ = writeln!(s, "{p}.displayName = \"{}\"", sn.display_name.replace('"', "|22"));
        if !sn.description.is_empty() {
            let _ = writeln!(s, "{p}.description = \"{}\"", sn.description.replace('"', "|22"));
        }
        let _ = writeln!(s, "{p}.type = \"1\"");
        let t = sn.create_time_us;
        let _ = writeln!(s, "{p}.createTimeHigh = \"{}\"", (t >> 32) as i32);
        let _ = writeln!(s, "{p}.createTimeLow = \"{}\"", t as u32 as i32);
        let _ = writeln!(s, "{p}.numDisks = \"{}\"", sn.disks.len());
        for (k, (node, file)) in sn.disks.iter().enumerate() {
            let _ = writeln!(s, "{p}.disk{k}.fileName = \"{file}\"");
            let _ = writeln!(s, "{p}.disk{k}.node = \"{node}\"");
        }
    }
    let _ = writeln!(s, "snapshot.numSnapshots = \"{}\"", spec.snapshots.len());
    Ok(s)
}

/// Size of a BIOS VM's `.nvram` on ESXi.
pub const NVRAM_LEN: usize = 8684;

/// `.nvram` bytes: the "MRVN" magic and version 1 that real VMware nvram files start with
/// (from public firmware-analysis code), then tagged blocks named as real ones are (CMOS,
/// ESCD, NAPI, BBSI, ELOG, ACFG; EFI VMs add an `EFI_NV`/`VMWNVRAM` variable store) filled with
/// seeded bytes and 0xFF padding. The inner layouts are imitated, not reproduced.
pub fn nvram(seed: u64, firmware: Firmware) -> Vec<u8> {
    let mut g = SplitMix64::new(seed, 0x6e7672616d);
    let mut out = Vec::with_capacity(NVRAM_LEN);
    out.extend_from_slice(b"MRVN");
    out.extend_from_slice(&1u32.to_le_bytes());
    let blocks: [(&[u8; 4], usize); 6] =
        [(b"CMOS", 128), (b"ESCD", 1024), (b"NAPI", 256), (b"BBSI", 512), (b"ELOG", 512), (b"ACFG", 344)];
    for (tag, len) in blocks {
        out.extend_from_slice(tag);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        let mut body = g.bytes(len);
        // Mostly-empty tables, as real nvram is.
        for b in body.iter_mut() {
            if *b > 0x30 {
                *b = 0;
            }
        }
        out.extend_from_slice(&body);
    }
    if firmware == Firmware::Efi {
        out.extend_from_slice(b"\x01EFI_NV\0\0");
        out.extend_from_slice(&2048u32.to_le_bytes());
        out.extend_from_slice(b"VMWNVRAM");
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&2000u32.to_le_bytes());
        let name: Vec<u8> = "BootOrder\0".encode_utf16().flat_map(u16::to_le_bytes).collect();
        out.extend_from_slice(&g.uuid());
        out.extend_from_slice(&7u32.to_le_bytes());
        out.extend_from_slice(&((name.len() + 4) as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&name);
        out.extend_from_slice(&[0, 0, 1, 0]);
    }
    out.resize(NVRAM_LEN.max(out.len()), 0xFF);
    out
}

/// A `vmware.log` of a power-on, in ESXi 7 format (`<ISO time>| vmx| I005: ...`), starting at
/// `start_unix` seconds.
pub fn vmware_log(spec: &VmSpec, start_unix: i64) -> Result<String, ForgeError> {
    spec.check()?;
    let mut g = SplitMix64::new(spec.seed, 0x6c6f67);
    let mut ms = start_unix.saturating_mul(1000);
    let mut s = String::new();
    let mut clock = SplitMix64::new(spec.seed, 0x74696d65);
    let mut line = |thread: &str, msg: String| {
        ms += 1 + clock.below(40) as i64;
        let _ = writeln!(s, "{}| {thread}| I005: {msg}", iso_time_ms(ms));
    };
    let pid = 2_000_000 + g.below(900_000);
    line("vmx", format!("Log for VMware ESX pid={pid} version=7.0.3 build=build-21930508 option=Release"));
    line("vmx", "The host is x86_64.".into());
    line("vmx", "Host codepage=UTF-8 encoding=UTF-8".into());
    let host = g.below(20);
    line("vmx", format!("Hostname=esx{host:02}.lab.local"));
    line("vmx", format!("DICT --- CONFIGURATION {}/{}.vmx", spec.folder_path, spec.name));
    line("vmx", format!("DICT                displayName = \"{}\"", spec.name));
    line("vmx", format!("DICT                    guestOS = \"{}\"", spec.guest_os));
    line("vmx", format!("DICT                    memSize = \"{}\"", spec.mem_mb));
    for d in &spec.disks {
        line("vmx", format!("DICT             {}.fileName = \"{}\"", d.node, d.leaf_file));
    }
    line("vmx", "Monitor Mode: CPL0".into());
    for d in &spec.disks {
        let path = format!("{}/{}", spec.folder_path, d.leaf_file);
        line("vmx", format!("DISK: OPEN {} '{path}' persistent R[]", d.node));
        line("vmx", format!("DISKLIB-LINK  : Opened '{path}' (0xa): vmfs, 0 sectors / 0 Bytes."));
        let took = 5 + g.below(60);
        line("vmx", format!("DISK: Opening disks took {took} ms."));
    }
    for k in 0..spec.vcpus {
        let world = 1_000_000 + g.below(99_999);
        line(&format!("vcpu-{k}"), format!("VMMon_Start: vcpu-{k}: worldID={world}"));
    }
    line("vmx", "Tools: Running status rpc handler: 0 => 1.".into());
    line("vmx", "Guest: toolbox: Version: build-19345655".into());
    Ok(s)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch (proleptic Gregorian, UTC).
pub fn iso_time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::calendar::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", sod / 3600, sod / 60 % 60, sod % 60, ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            name: "web01".into(),
            guest_os: "ubuntu64Guest".into(),
            mem_mb: 2048,
            vcpus: 2,
            hw_version: 19,
            firmware: Firmware::Bios,
            folder_path: "/vmfs/volumes/64a1b2c3-11223344-5566-001122334455/web01".into(),
            disks: vec![VmDisk { node: "scsi0:0".into(), leaf_file: "web01-000001.vmdk".into() }],
            snapshots: vec![SnapshotInfo {
                uid: 1,
                parent: None,
                display_name: "before upgrade".into(),
                description: String::new(),
                create_time_us: 1_669_800_000_123_456,
                disks: vec![("scsi0:0".into(), "web01.vmdk".into())],
            }],
            seed: 42,
        }
    }

    #[test]
    fn vmx_vmsd_log_nvram() {
        let s = spec();
        let v = vmx(&s).unwrap();
        assert!(v.starts_with(".encoding = \"UTF-8\"\nconfig.version = \"8\"\nvirtualHW.version = \"19\"\n"));
        assert!(v.contains("scsi0.virtualDev = \"pvscsi\"\n"));
        assert!(v.contains("scsi0:0.fileName = \"web01-000001.vmdk\"\n"));
        assert!(v.contains("nvram = \"web01.nvram\"\n"));
        assert!(v.contains("uuid.bios = \"42 "));
        assert_eq!(v, vmx(&s).unwrap());
        let d = vmsd(&s).unwrap();
        assert!(d.contains("snapshot0.disk0.fileName = \"web01.vmdk\"\n"));
        assert!(d.contains("snapshot0.filename = \"web01-Snapshot1.vmsn\"\n"));
        // 1669800000123456 = 0x00058EBB_6C1E1C40 (low half negative as i32).
        let hi: i64 = 1_669_800_000_123_456 >> 32;
        assert!(d.contains(&format!("snapshot0.createTimeHigh = \"{hi}\"")));
        let lo = (1_669_800_000_123_456i64 as u32) as i32;
        assert!(d.contains(&format!("snapshot0.createTimeLow = \"{lo}\"")));
        assert!(d.contains("snapshot.numSnapshots = \"1\""));
        assert_eq!(vmsd(&VmSpec { snapshots: vec![], ..s.clone() }).unwrap(), "");
        let log = vmware_log(&s, 1_669_800_000).unwrap();
        assert!(log.starts_with("2022-11-30T09:20:00."), "{log}");
        assert!(log.contains("| vmx| I005: Log for VMware ESX"));
        let nv = nvram(1, Firmware::Efi);
        assert_eq!(&nv[..4], b"MRVN");
        assert_eq!(nv.len(), NVRAM_LEN);
        assert_eq!(nv, nvram(1, Firmware::Efi));
        assert_eq!(iso_time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert!(vmx(&VmSpec { name: "a\"b".into(), ..s }).is_err());
    }
}
