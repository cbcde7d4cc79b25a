//! `vmfs-rescue volumes`: what was found, from which devices, and what is missing.

use super::Outcome;
use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;
use vmfs_rescue::datastore;

pub fn run(paths: &[PathBuf], as_json: bool) -> Result<Outcome> {
    let sources = super::open_sources(paths)?;
    let (stores, notes) = datastore::find(&sources);
    let mut outcome = Outcome::Clean;
    for n in &notes {
        eprintln!("note: {n}");
    }
    if stores.is_empty() {
        eprintln!("no VMFS or VMware LVM volume found");
        return Ok(Outcome::Damaged);
    }
    for d in &stores {
        let v = &d.volume;
        if !v.missing.is_empty() || d.fs.is_err() {
            outcome = Outcome::Damaged;
        }
        let parts: Vec<_> = v
            .parts
            .iter()
            .map(|p| {
                json!({
                    "device": p.device_name,
                    "device_uuid": p.dev_uuid.to_string(),
                    "offset": p.device_offset,
                    "runs": p.runs.iter().map(|r| json!({"volume_offset": r.0, "device_offset": r.1, "length": r.2})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let missing: Vec<[u64; 2]> = v.missing.iter().map(|r| [r.start, r.end - r.start]).collect();
        let fsj = match &d.fs {
            Ok(fs) => json!({
                "label": fs.desc.label,
                "uuid": fs.desc.uuid.to_string(),
                "vmfs_version": fs.desc.vmfs_version(),
                "vmfs_l": fs.desc.is_vmfs_l(),
                "major": fs.desc.major,
                "minor": fs.desc.minor,
                "block_size": fs.desc.file_block_size,
                "sub_block_size": fs.desc.sub_block_size,
                "created": fs.desc.creation_time,
                "warnings": fs.warnings,
            }),
            Err(e) => json!({"error": e.to_string()}),
        };
        if as_json {
            let line = json!({
                "lv_uuid": v.uuid.to_string(),
                "lv_name": v.name,
                "lvm_version": v.lvm_major,
                "size": v.size,
                "fs": fsj,
                "label": d.label(),
                "uuid": d.fs.as_ref().ok().map(|f| f.desc.uuid.to_string()),
                "devices": parts,
                "missing": missing,
                "notes": v.notes,
            });
            println!("{line}");
        } else {
            match &d.fs {
                Ok(fs) => println!(
                    "{}  VMFS-{}{} ({}.{})  uuid {}  block {} KiB  size {} bytes ({:.1} GiB)",
                    fs.desc.label,
                    fs.desc.vmfs_version(),
                    if fs.desc.is_vmfs_l() { "-L" } else { "" },
                    fs.desc.major,
                    fs.desc.minor,
                    fs.desc.uuid,
                    fs.desc.file_block_size / 1024,
                    v.size,
                    v.size as f64 / (1u64 << 30) as f64
                ),
                Err(e) => println!("(no file system)  lv {}  size {}: {e}", v.uuid, v.size),
            }
            println!("  logical volume {} ({}), LVM {}", v.uuid, v.name, v.lvm_major);
            for p in &v.parts {
                println!("  device {} at offset {:#x} (device uuid {})", p.device_name, p.device_offset, p.dev_uuid);
                for r in &p.runs {
                    println!("    volume {:#x}..{:#x} <- device {:#x}", r.0, r.0 + r.2, r.1);
                }
            }
            for m in &v.missing {
                println!("  MISSING volume bytes {:#x}..{:#x} (read as zeros)", m.start, m.end);
            }
            for n in &v.notes {
                println!("  note: {n}");
            }
        }
    }
    Ok(outcome)
}
