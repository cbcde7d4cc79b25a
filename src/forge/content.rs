//! Datastore content that looks real: VM folders with their .vmx, .vmsd, .nvram and logs,
//! descriptor + flat VMDKs (thin, lazy-zeroed and eager-zeroed thick) holding a guest disk
//! made by the system's mkfs tools, snapshot deltas (vmfsSparse on VMFS5, SEsparse on VMFS6),
//! a huge thin disk that needs double-indirect pointers, and loose files.

use super::ForgeError;
use super::guest::{FsKind, GuestSpec, TableKind, build_guest_disk};
use super::truth::{TruthDisk, TruthFile, TruthGuestFile, TruthRange, WHOLE_HASH_LIMIT};
use super::vmdk::{
    CowdOptions, Delta, Descriptor, DiskKind, Firmware, SesparseOptions, SnapshotInfo, SplitMix64, VmDisk, VmSpec,
    nvram, sesparse_extent, vmfs_sparse_extent, vmsd, vmware_log, vmx,
};
use super::vmfs::{Placed, Provisioning, ROOT, Writer};
use crate::block::{BlockSource, Source, SparseMem};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// What to put on the datastore.
#[derive(Clone, Debug)]
pub struct ContentOptions {
    pub seed: u64,
    /// Smaller guest disks (the demo must be quick).
    pub small: bool,
    /// Include the huge thin disk (300 GiB on VMFS5, 3 TiB on VMFS6) that needs
    /// double-indirect addressing.
    pub huge_thin: bool,
    /// The thin VM's (web01) disk size in MiB, when a scenario needs it larger.
    pub thin_mib: Option<u64>,
    /// Unix time of the files.
    pub time: u32,
    /// `/vmfs/volumes/<uuid>` of the datastore, for the .vmx paths.
    pub volume_path: String,
}

/// One VM of the standard datastore.
#[derive(Clone, Debug)]
pub struct VmPlan {
    pub name: &'static str,
    pub guest_os: &'static str,
    pub fs: FsKind,
    pub table: TableKind,
    pub prov: Provisioning,
    pub capacity_mib: u64,
    /// A snapshot delta over the base disk.
    pub snapshot: bool,
}

/// The standard VMs: a Linux web server (thin, ext4, one snapshot), a database VM
/// (lazy-zeroed thick, FAT32, one snapshot), and a Windows server (eager-zeroed thick, NTFS).
pub fn standard_vms(small: bool) -> Vec<VmPlan> {
    let m = |big: u64, little: u64| if small { little } else { big };
    vec![
        VmPlan {
            name: "web01",
            guest_os: "ubuntu64Guest",
            fs: FsKind::Ext4,
            table: TableKind::Gpt,
            prov: Provisioning::Thin,
            capacity_mib: m(512, 48),
            snapshot: true,
        },
        VmPlan {
            name: "db01",
            guest_os: "debian11_64Guest",
            fs: FsKind::Fat32,
            table: TableKind::Mbr,
            prov: Provisioning::LazyThick,
            capacity_mib: m(768, 64),
            snapshot: true,
        },
        VmPlan {
            name: "win01",
            guest_os: "windows2019srv_64Guest",
            fs: FsKind::Ntfs,
            table: TableKind::Gpt,
            prov: Provisioning::EagerThick,
            capacity_mib: m(640, 40),
            snapshot: false,
        },
    ]
}

/// A file the content step created.
#[derive(Clone, Debug)]
pub struct Created {
    pub truth: TruthFile,
    /// Parent directory FD and name (for deletion).
    pub parent: u32,
    /// Its FD address.
    pub fd: u32,
    pub name: String,
}

/// What `populate` wrote.
#[derive(Clone, Debug, Default)]
pub struct Populated {
    pub files: Vec<Created>,
    pub disks: Vec<TruthDisk>,
    pub guest_files: Vec<TruthGuestFile>,
    /// VM folder name → directory FD.
    pub vm_dirs: BTreeMap<String, u32>,
}

impl Populated {
    /// The created file at `path`.
    pub fn get(&self, path: &str) -> Option<&Created> {
        self.files.iter().find(|c| c.truth.path == path)
    }

    /// Set the state of `path` (and everything under it).
    pub fn mark(&mut self, path: &str, state: &str) {
        let under = format!("{path}/");
        for c in &mut self.files {
            if c.truth.path == path || c.truth.path.starts_with(&under) {
                c.truth.state = state.into();
                // A freed FD is written cleared: a resident file's bytes went with it.
                if state == "deleted" && c.truth.zla == "0x10d1" && c.truth.size > 0 {
                    c.truth.overwritten = vec![[0, c.truth.size]];
                }
            }
        }
    }
}

/// SHA-256 of a source, whole (small files) or per allocated block (huge sparse files).
fn hashes(src: &dyn BlockSource, placed: Option<&Placed>) -> Result<(Option<String>, Vec<TruthRange>), ForgeError> {
    if src.len() <= WHOLE_HASH_LIMIT {
        return Ok((Some(super::vmdk::sha256_source(src)?), Vec::new()));
    }
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for &(off, _, len) in placed.map(|p| p.extents.as_slice()).unwrap_or(&[]) {
        let n = len.min(src.len() - off);
        buf.resize(n as usize, 0);
        src.read_at(off, &mut buf)?;
        out.push(TruthRange {
            image: String::new(),
            offset: off,
            len: n,
            sha256: Some(crate::extract::hex(&Sha256::digest(&buf))),
        });
    }
    Ok((None, out))
}

/// Merge adjacent extents for the truth file.
fn extents(p: &Placed) -> Vec<[u64; 3]> {
    let mut out: Vec<[u64; 3]> = Vec::new();
    for &(f, v, l) in &p.extents {
        if let Some(last) = out.last_mut()
            && last[0] + last[2] == f
            && last[1] + last[2] == v
        {
            last[2] += l;
            continue;
        }
        out.push([f, v, l]);
    }
    out
}

/// Writes files into the datastore and records their truth.
pub struct Filler<'a> {
    pub w: &'a mut Writer,
    pub out: Populated,
}

impl Filler<'_> {
    /// Create directory `path` (its parent must exist).
    pub fn mkdir(&mut self, parent: u32, parent_path: &str, name: &str) -> Result<u32, ForgeError> {
        let fd = self.w.mkdir(parent, name)?;
        let fd_offset = self.w.fd_offset(fd)?;
        self.out.files.push(Created {
            truth: TruthFile {
                path: format!("{parent_path}/{name}"),
                kind: "dir".into(),
                state: "live".into(),
                fd: format!("{fd:#x}"),
                fd_offset,
                ..Default::default()
            },
            parent,
            fd,
            name: name.into(),
        });
        Ok(fd)
    }

    /// Create regular file `name` with the content of `src`.
    pub fn file(
        &mut self,
        parent: u32,
        parent_path: &str,
        name: &str,
        src: &dyn BlockSource,
        prov: Provisioning,
        mode: u32,
    ) -> Result<Placed, ForgeError> {
        let placed = self.w.add_file(parent, name, src, prov, mode)?;
        let (sha256, block_hashes) = hashes(src, Some(&placed))?;
        self.out.files.push(Created {
            truth: TruthFile {
                path: format!("{parent_path}/{name}"),
                kind: "file".into(),
                size: src.len(),
                state: "live".into(),
                sha256,
                block_hashes,
                provisioning: Some(
                    match prov {
                        Provisioning::Thin => "thin",
                        Provisioning::LazyThick => "lazy-thick",
                        Provisioning::EagerThick => "eager-thick",
                    }
                    .into(),
                ),
                fd: format!("{:#x}", placed.fd),
                fd_offset: placed.fd_offset,
                zla: format!("{:#x}", placed.zla),
                block_size: placed.block_size,
                extents: extents(&placed),
                ..Default::default()
            },
            parent,
            fd: placed.fd,
            name: name.into(),
        });
        Ok(placed)
    }

    /// A small text file.
    pub fn text(
        &mut self,
        parent: u32,
        parent_path: &str,
        name: &str,
        text: &[u8],
        mode: u32,
    ) -> Result<(), ForgeError> {
        let src = SparseMem::from_bytes(name, text.to_vec());
        self.file(parent, parent_path, name, &src, Provisioning::Thin, mode).map(|_| ())
    }

    /// A symbolic link.
    pub fn symlink(&mut self, parent: u32, parent_path: &str, name: &str, target: &str) -> Result<(), ForgeError> {
        let fd = self.w.symlink(parent, name, target)?;
        let fd_offset = self.w.fd_offset(fd)?;
        self.out.files.push(Created {
            truth: TruthFile {
                path: format!("{parent_path}/{name}"),
                kind: "symlink".into(),
                size: target.len() as u64,
                state: "live".into(),
                fd: format!("{fd:#x}"),
                fd_offset,
                symlink_target: Some(target.into()),
                ..Default::default()
            },
            parent,
            fd,
            name: name.into(),
        });
        Ok(())
    }
}

fn sha(src: &dyn BlockSource) -> Result<String, ForgeError> {
    super::vmdk::sha256_source(src)
}

/// Fill the datastore: every standard VM, an ISO folder, a symlink, and (optionally) the huge
/// thin disk. `work` holds the guest disk images while they are copied in.
pub fn populate(w: &mut Writer, opts: &ContentOptions, work: &Path) -> Result<Populated, ForgeError> {
    let v6 = w.p.v6();
    let mut f = Filler { w, out: Populated::default() };
    let mut rng = SplitMix64::new(opts.seed, 0x636f_6e74);
    for (i, mut plan) in standard_vms(opts.small).into_iter().enumerate() {
        if let Some(mib) = opts.thin_mib.filter(|_| plan.prov == Provisioning::Thin) {
            plan.capacity_mib = mib;
        }
        let seed = opts.seed.wrapping_add(1000 * (i as u64 + 1));
        vm(&mut f, &plan, seed, opts, work, v6, &mut rng)?;
    }
    // An ISO library folder with a small image, and a link to the web server's log.
    let iso = f.mkdir(ROOT, "", "ISO")?;
    let mut img = SparseMem::zeros("tools.iso", 6 * MIB + 2048);
    img.regions.insert(0x8000, b"\x01CD001\x01\x00VMWARE TOOLS".to_vec());
    img.regions.insert(MIB, rng.bytes(3 * MIB as usize));
    f.file(iso, "/ISO", "vmware-tools.iso", &img, Provisioning::Thin, 0o644)?;
    f.symlink(ROOT, "", "latest-web01.log", "web01/vmware.log")?;
    if opts.huge_thin {
        huge(&mut f, v6, &mut rng)?;
    }
    Ok(f.out)
}

/// One VM folder.
fn vm(
    f: &mut Filler<'_>,
    plan: &VmPlan,
    seed: u64,
    opts: &ContentOptions,
    work: &Path,
    v6: bool,
    rng: &mut SplitMix64,
) -> Result<(), ForgeError> {
    let name = plan.name;
    let dir_path = format!("/{name}");
    let dir = f.mkdir(ROOT, "", name)?;
    f.out.vm_dirs.insert(name.into(), dir);
    let guest = build_guest_disk(
        work,
        &GuestSpec { name: name.into(), size: plan.capacity_mib * MIB, table: plan.table, fs: plan.fs, seed },
    )?;
    // Read through the block layer, which knows the image's holes: a thin VMDK stays thin.
    let base: Source = crate::block::open_path(&guest.image).map_err(|e| ForgeError::io(&guest.image, e))?;
    let kind = match plan.prov {
        Provisioning::Thin => DiskKind::Thin,
        Provisioning::LazyThick => DiskKind::Thick { eager: false },
        Provisioning::EagerThick => DiskKind::Thick { eager: true },
    };
    let mut ids = [0u8; 16];
    rng.fill(&mut ids);
    let base_desc = Descriptor::base(name, base.len() / 512, kind, ids)?;
    f.file(dir, &dir_path, &base_desc.extent_file, &*base, plan.prov, 0o600)?;
    f.text(dir, &dir_path, &format!("{name}.vmdk"), base_desc.text().as_bytes(), 0o600)?;
    let base_sha = sha(&*base)?;
    let mut disk = TruthDisk {
        vm: name.into(),
        chain: vec![format!("{dir_path}/{name}.vmdk")],
        extents: vec![format!("{dir_path}/{}", base_desc.extent_file)],
        kinds: vec![base_desc.kind.create_type().into()],
        capacity: base.len(),
        sha256: base_sha.clone(),
        base_sha256: base_sha,
        status: "ok".into(),
        guest_fs: match plan.fs {
            FsKind::Ext4 => "ext4",
            FsKind::Fat32 => "fat32",
            FsKind::Ntfs => "ntfs",
        }
        .into(),
        guest_partition_offset: guest.partition_offset,
    };
    let mut leaf = format!("{name}.vmdk");
    let mut snapshots = Vec::new();
    if plan.snapshot {
        // The guest wrote boot code and the unpartitioned tail after the snapshot; its file
        // system (and the guest files' truth) is the same in both views.
        let mut delta = Delta::new(Arc::clone(&base))?;
        delta.write(0, &rng.bytes(440))?;
        let tail = base.len() - MIB;
        delta.write(tail, &rng.bytes(512))?;
        delta.write(tail + 4096, &rng.bytes(64 << 10))?;
        delta.write(tail + 256 * 1024 + 512, &rng.bytes(3 * 4096))?;
        let dkind = if v6 { DiskKind::SeSparse } else { DiskKind::VmfsSparse };
        let stem = format!("{name}-000001");
        let mut ids12 = [0u8; 12];
        rng.fill(&mut ids12);
        let child = Descriptor::delta(&stem, &base_desc, &format!("{name}.vmdk"), dkind, rng.next_u32(), ids12)?;
        let extent = if v6 {
            sesparse_extent(&delta, &SesparseOptions::default())?
        } else {
            vmfs_sparse_extent(&delta, &CowdOptions::default())?
        };
        f.file(dir, &dir_path, &child.extent_file, &extent, Provisioning::Thin, 0o600)?;
        f.text(dir, &dir_path, &format!("{stem}.vmdk"), child.text().as_bytes(), 0o600)?;
        disk.chain.insert(0, format!("{dir_path}/{stem}.vmdk"));
        disk.extents.insert(0, format!("{dir_path}/{}", child.extent_file));
        disk.kinds.insert(0, child.kind.create_type().into());
        disk.sha256 = sha(&*delta.merged())?;
        leaf = format!("{stem}.vmdk");
        snapshots.push(SnapshotInfo {
            uid: 1,
            parent: None,
            display_name: "before upgrade".into(),
            description: "taken by the forge".into(),
            create_time_us: i64::from(opts.time) * 1_000_000 - 86_400_000_000,
            disks: vec![("scsi0:0".into(), format!("{name}.vmdk"))],
        });
    }
    for g in &guest.files {
        f.out.guest_files.push(TruthGuestFile {
            disk: disk.chain[0].clone(),
            path: g.path.clone(),
            size: g.size,
            sha256: g.sha256.clone(),
        });
    }
    f.out.disks.push(disk);
    let spec = VmSpec {
        name: name.into(),
        guest_os: plan.guest_os.into(),
        mem_mb: 4096,
        vcpus: 2,
        hw_version: 19,
        firmware: if plan.table == TableKind::Gpt { Firmware::Efi } else { Firmware::Bios },
        folder_path: format!("{}/{name}", opts.volume_path),
        disks: vec![VmDisk { node: "scsi0:0".into(), leaf_file: leaf }],
        snapshots,
        seed,
    };
    f.text(dir, &dir_path, &format!("{name}.vmx"), vmx(&spec)?.as_bytes(), 0o755)?;
    f.text(dir, &dir_path, &format!("{name}.vmsd"), vmsd(&spec)?.as_bytes(), 0o644)?;
    f.text(dir, &dir_path, &format!("{name}.nvram"), &nvram(seed, spec.firmware), 0o644)?;
    let start = i64::from(opts.time) - 7 * 86_400;
    f.text(dir, &dir_path, "vmware.log", vmware_log(&spec, start)?.as_bytes(), 0o644)?;
    f.text(dir, &dir_path, "vmware-1.log", vmware_log(&spec, start - 30 * 86_400)?.as_bytes(), 0o644)?;
    let _ = std::fs::remove_file(&guest.image);
    Ok(())
}

/// A thin disk beyond the reach of single-indirect pointers (over 256 GiB on VMFS5, over
/// 2.5 TiB on VMFS6), with data near its start, in the middle and at its end.
fn huge(f: &mut Filler<'_>, v6: bool, rng: &mut SplitMix64) -> Result<(), ForgeError> {
    let cap = if v6 { 3 << 40 } else { 300 * GIB };
    let dir = f.mkdir(ROOT, "", "archive01")?;
    let mut c = SparseMem::zeros("archive01-flat.vmdk", cap);
    for off in [0, 7 * MIB + 4096, cap / 2 + 12345 * 512, cap - MIB] {
        c.regions.insert(off, rng.bytes(MIB as usize));
    }
    let mut ids = [0u8; 16];
    rng.fill(&mut ids);
    let d = Descriptor::base("archive01", cap / 512, DiskKind::Thin, ids)?;
    f.file(dir, "/archive01", &d.extent_file, &c, Provisioning::Thin, 0o600)?;
    f.text(dir, "/archive01", "archive01.vmdk", d.text().as_bytes(), 0o600)?;
    Ok(())
}
