//! Named scenarios: a realistic datastore, then damage done the way it happens, with the
//! ground truth written beside the images.

use super::ForgeError;
use super::content::{ContentOptions, Populated, populate};
use super::disk::{SECTOR, Table, Target};
use super::truth::{Truth, TruthDamage, TruthImage, TruthRange};
use super::vmfs::Writer;
use super::volume::{VolumeSpec, create, reformat};
use std::path::{Path, PathBuf};

/// A scenario's name and what it does.
pub struct Scenario {
    pub name: &'static str,
    pub story: &'static str,
}

/// Every scenario, in the order `forge --list` shows them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario { name: "healthy", story: "an undamaged datastore (give two images to span it over two devices)" },
    Scenario {
        name: "deleted",
        story: "a VMDK and a whole VM folder deleted as ESXi deletes them (full size: the huge thin disk too)",
    },
    Scenario {
        name: "deleted-thin",
        story: "a VM whose thin disk is addressed through pointer blocks (over 1 GiB) deleted with its folder",
    },
    Scenario {
        name: "deleted-flat",
        story: "a flat extent removed from the ESXi shell (rm), its descriptor left in place",
    },
    Scenario { name: "reformatted", story: "a new, empty VMFS of the same version created over the datastore" },
    Scenario { name: "reformatted-5-over-6", story: "a new VMFS5 created over a VMFS6 datastore" },
    Scenario { name: "no-partition-table", story: "the GPT (primary and backup) wiped" },
    Scenario {
        name: "no-partition-table-odd-offset",
        story: "the VMFS partition started at LBA 63 (MBR), and the MBR is wiped",
    },
    Scenario { name: "lvm-header-zeroed", story: "the LVM device header and tables zeroed" },
    Scenario { name: "fs-descriptor-zeroed", story: "the VMFS FS descriptor (superblock) zeroed" },
    Scenario { name: "fd-cluster-corrupt", story: "garbage over the file descriptors of one VM's files" },
    Scenario { name: "root-dir-lost", story: "the root directory's blocks zeroed" },
    Scenario { name: "descriptor-lost", story: ".vmdk descriptors and .vmx files deleted, extents left" },
    Scenario {
        name: "snapshot-chain-broken",
        story: "a snapshot whose parent's CID changed, and one whose parent hint names a missing file",
    },
    Scenario { name: "bad-sectors", story: "unreadable sectors in metadata and in data (a map for --bad-sectors)" },
    Scenario { name: "demo", story: "small: a healthy VM, a deleted VM, a broken snapshot chain" },
];

/// What to forge.
#[derive(Clone, Debug)]
pub struct Options {
    pub scenario: String,
    pub version: u32,
    /// Size of each image.
    pub size: u64,
    pub outs: Vec<PathBuf>,
    pub seed: u64,
    /// Smaller guest disks, no huge thin disk.
    pub small: bool,
}

/// Formatting time of the forged datastores (2025-06-15): fixed, so images are reproducible.
pub const TIME: u32 = 1_750_000_000;

/// Forge `opts.scenario`; returns the ground truth (also written to `<first image>.truth.json`).
pub fn forge(opts: &Options) -> Result<Truth, ForgeError> {
    if !SCENARIOS.iter().any(|s| s.name == opts.scenario) {
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        return Err(ForgeError::Layout(format!("no scenario {:?}; known: {}", opts.scenario, names.join(", "))));
    }
    if opts.outs.is_empty() || opts.outs.len() > 2 {
        return Err(ForgeError::Layout("give one output image, or two for a spanned volume".into()));
    }
    let name = opts.scenario.as_str();
    let first_version = if name == "reformatted-5-over-6" { 6 } else { opts.version };
    let table = if name == "no-partition-table-odd-offset" {
        Table::Mbr { start: 63 * SECTOR }
    } else if first_version == 3 {
        // ESX 3.x partitioned with MBR, VMFS at LBA 128 (64 KiB aligned).
        Table::Mbr { start: 128 * SECTOR }
    } else {
        Table::Gpt
    };
    let work = opts.outs[0].with_extension("forge-work");
    std::fs::create_dir_all(&work).map_err(|e| ForgeError::io(&work, e))?;
    let spec = VolumeSpec {
        version: first_version,
        disks: opts.outs.iter().map(|p| (p.clone(), opts.size)).collect(),
        table,
        label: format!("datastore{first_version}"),
        seed: opts.seed,
        time: TIME,
    };
    let mut w = create(&spec)?;
    let copts = ContentOptions {
        seed: opts.seed,
        small: opts.small || name == "demo",
        // VMFS3 has no double-indirect pointers: files stop at 256 GiB with 1 MiB blocks.
        huge_thin: !(opts.small || name == "demo") && first_version != 3,
        // Over 1 GiB: more than one pointer block's reach on VMFS3/5.
        thin_mib: (name == "deleted-thin").then_some(1100),
        time: TIME,
        volume_path: format!("/vmfs/volumes/{}", w.p.desc.uuid),
    };
    let populated = populate(&mut w, &copts, &work);
    let _ = std::fs::remove_dir_all(&work);
    let mut pop = populated?;
    let mut damage = Vec::new();
    let mut bad = Vec::new();
    // Damage done through the file system, before its metadata is written.
    match name {
        "deleted-thin" => delete(&mut w, &mut pop, "/web01")?,
        // `rm win01-flat.vmdk` in the ESXi shell: the descriptor stays, naming it.
        "deleted-flat" => delete(&mut w, &mut pop, "/win01/win01-flat.vmdk")?,
        "deleted" | "demo" => {
            if name == "deleted" {
                delete(&mut w, &mut pop, "/win01/win01-flat.vmdk")?;
                delete(&mut w, &mut pop, "/win01/win01.vmdk")?;
                // Full size: the huge thin disk too, whose map is double-indirect.
                if pop.get("/archive01").is_some() {
                    delete(&mut w, &mut pop, "/archive01")?;
                }
            }
            delete(&mut w, &mut pop, "/db01")?;
            if name == "demo" {
                break_cid(&mut w, &mut pop, "web01")?;
            }
        }
        "descriptor-lost" => {
            let victims: Vec<String> = pop
                .files
                .iter()
                .filter(|c| c.truth.state == "live")
                .map(|c| c.truth.path.clone())
                .filter(|p| {
                    p.ends_with(".vmx")
                        || (p.ends_with(".vmdk")
                            && !p.ends_with("-flat.vmdk")
                            && !p.ends_with("-delta.vmdk")
                            && !p.ends_with("-sesparse.vmdk"))
                })
                .collect();
            for v in victims {
                delete(&mut w, &mut pop, &v)?;
            }
            for d in &mut pop.disks {
                d.status = "descriptor-lost".into();
            }
        }
        "snapshot-chain-broken" => {
            break_cid(&mut w, &mut pop, "web01")?;
            break_hint(&mut w, &mut pop, "db01")?;
        }
        _ => {}
    }
    let t = w.finish()?;
    let mut truth = base_truth(name, &t, &pop, table)?;
    // Damage done to the bytes afterwards.
    super::damage::apply(name, opts, &t, &mut truth, &mut damage, &mut bad)?;
    truth.damage = damage;
    truth.bad_sectors = bad;
    t.sync()?;
    drop(t);
    if name.starts_with("reformatted") {
        let old = truth;
        let spec2 = VolumeSpec {
            version: opts.version,
            label: format!("datastore{}-new", opts.version),
            seed: opts.seed ^ 0xF0F0,
            time: TIME + 86_400 * 30,
            ..spec.clone()
        };
        let offsets: Vec<u64> = old.images.iter().map(|i| i.partition_offset).collect();
        let w2 = reformat(&spec2, &offsets)?;
        let t2 = w2.finish()?;
        let mut new = base_truth(name, &t2, &Populated::default(), table)?;
        let written = t2.written();
        let mut prev = old;
        super::damage::mark_overwritten(&mut prev, &written);
        prev.scenario = format!("{name} (before)");
        new.damage.push(TruthDamage {
            kind: "reformatted".into(),
            description: format!(
                "VMFS{} {} was formatted over VMFS{} {}; its files are listed under \"previous\"",
                new.version, new.fs_uuid, prev.version, prev.fs_uuid
            ),
            ranges: Vec::new(),
            affects: prev.files.iter().map(|f| f.path.clone()).collect(),
            reader_reports: Vec::new(),
        });
        new.previous = Some(Box::new(prev));
        truth = new;
    }
    truth.story = SCENARIOS.iter().find(|s| s.name == name).map_or("", |s| s.story).into();
    truth.save(&Truth::path_for(&opts.outs[0]))?;
    Ok(truth)
}

/// Delete `path` through the writer and record it.
fn delete(w: &mut Writer, pop: &mut Populated, path: &str) -> Result<(), ForgeError> {
    let c = pop.get(path).ok_or_else(|| ForgeError::Layout(format!("{path} was not created")))?.clone();
    w.remove(c.parent, &c.name)?;
    pop.mark(path, "deleted");
    Ok(())
}

/// The VM's base disk was written after its snapshot was taken: the base descriptor gets a
/// new CID, and the child's parentCID no longer matches.
fn break_cid(w: &mut Writer, pop: &mut Populated, vm: &str) -> Result<(), ForgeError> {
    let path = format!("/{vm}/{vm}.vmdk");
    edit_text(w, pop, &path, |t| t.replace("CID=fffffffe", "CID=3c9a5e21"))?;
    if let Some(d) = pop.disks.iter_mut().find(|d| d.vm == vm) {
        d.status = "cid-mismatch".into();
    }
    Ok(())
}

/// The snapshot's parentFileNameHint names a file that does not exist.
fn break_hint(w: &mut Writer, pop: &mut Populated, vm: &str) -> Result<(), ForgeError> {
    let path = format!("/{vm}/{vm}-000001.vmdk");
    edit_text(w, pop, &path, |t| {
        t.replace(&format!("parentFileNameHint=\"{vm}.vmdk\""), &format!("parentFileNameHint=\"{vm}-orig.vmdk\""))
    })?;
    if let Some(d) = pop.disks.iter_mut().find(|d| d.vm == vm) {
        d.status = if d.status == "ok" { "parent-missing".into() } else { format!("{}+parent-missing", d.status) };
    }
    Ok(())
}

/// Rewrite a small text file in place and update its truth.
fn edit_text(w: &mut Writer, pop: &mut Populated, path: &str, f: impl Fn(&str) -> String) -> Result<(), ForgeError> {
    let c = pop.get(path).ok_or_else(|| ForgeError::Layout(format!("{path} was not created")))?.clone();
    let old = w.read_small(c.fd)?;
    let new = f(&String::from_utf8_lossy(&old));
    if new.as_bytes() == old.as_slice() {
        return Err(ForgeError::Layout(format!("{path}: the edit changed nothing")));
    }
    w.rewrite_small(c.fd, new.as_bytes())?;
    if let Some(e) = pop.files.iter_mut().find(|x| x.truth.path == path) {
        e.truth.size = new.len() as u64;
        e.truth.sha256 = Some(crate::extract::hex(&<sha2::Sha256 as sha2::Digest>::digest(new.as_bytes())));
    }
    Ok(())
}

/// The truth common to every scenario: images, volume, files.
fn base_truth(name: &str, t: &Target, pop: &Populated, table: Table) -> Result<Truth, ForgeError> {
    let p = t.params.as_ref().ok_or_else(|| ForgeError::Layout("target without parameters".into()))?;
    Ok(Truth {
        scenario: name.into(),
        version: p.version,
        label: p.desc.label.clone(),
        fs_uuid: p.desc.uuid.to_string(),
        lv_uuid: p.desc.lv_uuid.to_string(),
        block_size: p.geo.fbs,
        volume_size: p.vol_size,
        images: t
            .disks
            .iter()
            .map(|d| TruthImage {
                name: file_name(&d.path),
                size: d.len,
                partition_offset: d.part_off,
                table: match table {
                    Table::Gpt => "gpt",
                    Table::Mbr { .. } => "mbr",
                    Table::None => "none",
                }
                .into(),
            })
            .collect(),
        files: pop.files.iter().map(|c| c.truth.clone()).collect(),
        disks: pop.disks.clone(),
        guest_files: pop.guest_files.clone(),
        ..Default::default()
    })
    .map(|mut t| {
        t.files.sort_by(|a, b| a.path.cmp(&b.path));
        t
    })
}

/// The last component of `p`.
pub fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A range on image `image` for the truth.
pub fn range(image: &str, offset: u64, len: u64) -> TruthRange {
    TruthRange { image: image.into(), offset, len, sha256: None }
}
