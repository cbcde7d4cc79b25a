//! Descriptors and .vmx files written by us where the originals are lost: a VM folder whose
//! extent files (`-flat`, `-delta`, `-sesparse`) came back without the small text files that
//! describe them gets new ones, made from the extents' own sizes and headers, each marked as
//! regenerated in its first lines and in the report.

use super::item::{Confidence, Item, Kind, State};
use crate::block::{MemSource, Source, Tolerant};
use crate::le::{u32_at, u64_at};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One extent file found in a folder.
struct Extent {
    /// File name, e.g. "web01-000001-sesparse.vmdk".
    name: String,
    /// The descriptor name it belongs to ("web01-000001.vmdk").
    disk: String,
    /// "" for the base, "000001".. for snapshot links.
    link: String,
    /// createType and extent type.
    kind: (&'static str, &'static str),
    sectors: u64,
}

/// Add regenerated descriptors and .vmx files for folders that need them.
pub fn regenerate(items: &mut Vec<Item>) {
    let mut folders: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        if let Some((_, dir)) = it.path.split_last() {
            folders.entry(dir.to_vec()).or_default().push(i);
        }
    }
    let mut new = Vec::new();
    for (dir, idx) in folders {
        let written = |name: &str| {
            idx.iter().any(|&i| items[i].path.last().is_some_and(|n| n == name) && items[i].content.is_some())
        };
        let mut extents: Vec<Extent> = idx.iter().filter_map(|&i| extent(&items[i])).collect();
        extents.sort_by(|a, b| a.link.cmp(&b.link));
        // Without the base extent (not recovered), the links still get descriptors: their
        // parent is named after the first link ("vm-000001.vmdk" -> "vm.vmdk").
        let Some(first) = extents.first() else { continue };
        let base = extents.iter().find(|e| e.link.is_empty());
        let base_disk = base.map_or_else(|| base_name(&first.disk), |b| b.disk.clone());
        let base_sectors = base.map_or(first.sectors, |b| b.sectors);
        let volume = items[idx[0]].volume.clone();
        // Stable per disk: the same names give the same CIDs on every run.
        let cid = |disk: &str| -> u32 {
            let h = <sha2::Sha256 as sha2::Digest>::digest(disk.as_bytes());
            u32::from_le_bytes([h[0], h[1], h[2], h[3]]) | 1
        };
        let mut parent: Option<String> = base.is_none().then(|| base_disk.clone());
        // Links sort after the base ("" < "000001" < "000002"): each one's parent is the one before.
        for e in &extents {
            if !written(&e.disk) {
                let p = parent.as_deref().map(|p| (p, cid(p)));
                let text = descriptor(e, cid(&e.disk), p, base_sectors);
                let what = if base.is_none() && !e.link.is_empty() {
                    format!(
                        "descriptor for {} (size from the extent; its parent {base_disk} was not recovered)",
                        e.name
                    )
                } else {
                    format!("descriptor for {} (size from the extent)", e.name)
                };
                new.push(regenerated(&dir, &e.disk, &volume, text, &what));
            }
            parent = Some(e.disk.clone());
        }
        let leaf = extents.last().map_or(base_disk.clone(), |e| e.disk.clone());
        let vm = base_disk.trim_end_matches(".vmdk").to_string();
        if !idx.iter().any(|&i| items[i].path.last().is_some_and(|n| n.ends_with(".vmx")) && items[i].content.is_some())
        {
            let text = vmx(&vm, &leaf);
            new.push(regenerated(
                &dir,
                &format!("{vm}.vmx"),
                &volume,
                text,
                "minimal .vmx naming the newest disk link",
            ));
        }
    }
    items.extend(new);
}

/// The base descriptor a snapshot link's descriptor descends from: "vm-000001.vmdk" -> "vm.vmdk".
fn base_name(link_disk: &str) -> String {
    let stem = link_disk.trim_end_matches(".vmdk");
    match stem.rsplit_once('-') {
        Some((b, n)) if n.len() == 6 && n.bytes().all(|c| c.is_ascii_digit()) => format!("{b}.vmdk"),
        _ => link_disk.to_string(),
    }
}

fn regenerated(dir: &[String], name: &str, volume: &str, text: String, what: &str) -> Item {
    let mut path = dir.to_vec();
    path.push(name.to_string());
    let size = text.len() as u64;
    let content: Source = Arc::new(Tolerant::new(MemSource::new(name.to_string(), text.into_bytes())));
    Item {
        path,
        kind: Kind::File,
        state: State::Regenerated,
        original: None,
        volume: volume.into(),
        fd: None,
        size,
        mtime: 0,
        method: format!("regenerated: {what}; the original was lost"),
        confidence: Confidence::Medium,
        content: Some(content),
        missing: Vec::new(),
    }
}

/// What an extent file is, read from its name and, for deltas, its header.
fn extent(it: &Item) -> Option<Extent> {
    let name = it.path.last()?.clone();
    let src = it.content.as_ref()?;
    let (stem, kind) = if let Some(s) = name.strip_suffix("-flat.vmdk") {
        (s, ("vmfs", "VMFS"))
    } else if let Some(s) = name.strip_suffix("-sesparse.vmdk") {
        (s, ("seSparse", "SESPARSE"))
    } else if let Some(s) = name.strip_suffix("-delta.vmdk") {
        (s, ("vmfsSparse", "VMFSSPARSE"))
    } else {
        return None;
    };
    let sectors = match kind.0 {
        "vmfs" => src.len() / 512,
        _ => {
            let mut h = [0u8; 64];
            src.read_at(0, &mut h).ok()?;
            if kind.0 == "seSparse" {
                // constMagic 0xCAFEBABE, then capacity in sectors at 0x10.
                (u64_at(&h, 0)? == 0xCAFE_BABE).then(|| u64_at(&h, 0x10))??
            } else {
                // "COWD", version 1, capacity in sectors at 0x0C.
                (&h[..4] == b"COWD").then(|| u32_at(&h, 0x0C).map(u64::from))??
            }
        }
    };
    if sectors == 0 {
        return None;
    }
    let link = match stem.rsplit_once('-') {
        Some((_, n)) if n.len() == 6 && n.bytes().all(|c| c.is_ascii_digit()) => n.to_string(),
        _ => String::new(),
    };
    if kind.0 != "vmfs" && link.is_empty() {
        return None;
    }
    Some(Extent { disk: format!("{stem}.vmdk"), name, link, kind, sectors })
}

fn descriptor(e: &Extent, cid: u32, parent: Option<(&str, u32)>, base_sectors: u64) -> String {
    let mut t =
        String::from("# Disk DescriptorFile\n# Regenerated by vmfs-rescue: the original descriptor was lost.\n");
    t.push_str(&format!("version=1\nencoding=\"UTF-8\"\nCID={cid:08x}\n"));
    match parent {
        Some((name, pcid)) if !e.link.is_empty() => {
            t.push_str(&format!("parentCID={pcid:08x}\ncreateType=\"{}\"\nparentFileNameHint=\"{name}\"\n", e.kind.0));
        }
        _ => t.push_str(&format!("parentCID=ffffffff\ncreateType=\"{}\"\n", e.kind.0)),
    }
    t.push_str(&format!(
        "\n# Extent description\nRW {} {} \"{}\"\n\n# The Disk Data Base\n#DDB\n\n",
        e.sectors, e.kind.1, e.name
    ));
    t.push_str("ddb.adapterType = \"lsilogic\"\n");
    if e.link.is_empty() {
        // ESXi's SCSI geometry: 255 heads, 63 sectors per track.
        let cyl = (base_sectors / (255 * 63)).min(65535);
        t.push_str(&format!(
            "ddb.geometry.cylinders = \"{cyl}\"\nddb.geometry.heads = \"255\"\nddb.geometry.sectors = \"63\"\nddb.virtualHWVersion = \"13\"\n"
        ));
    } else if e.kind.0 == "seSparse" {
        t.push_str("ddb.grain = \"8\"\n");
    }
    t
}

fn vmx(vm: &str, leaf: &str) -> String {
    format!(
        "# Regenerated by vmfs-rescue: the original .vmx was lost. Check memory, CPUs, network\n\
         # and the guest OS type before powering this VM on.\n\
         .encoding = \"UTF-8\"\nconfig.version = \"8\"\nvirtualHW.version = \"13\"\ndisplayName = \"{vm}\"\n\
         guestOS = \"other-64\"\nmemSize = \"2048\"\nnumvcpus = \"1\"\nscsi0.present = \"TRUE\"\n\
         scsi0.virtualDev = \"lsilogic\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.deviceType = \"scsi-hardDisk\"\n\
         scsi0:0.fileName = \"{leaf}\"\n"
    )
}
