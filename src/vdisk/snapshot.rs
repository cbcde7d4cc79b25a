//! VMware snapshot trees (`.vmsd`): which disk file each snapshot froze, so a chain can be
//! opened as it was at any snapshot. `.vmsd` and `.vmx` are the same "dictionary" text:
//! `key = "value"` lines, keys case-insensitive, `|XX` hex escapes inside values.

use super::chain::VirtualDisk;
use super::error::{Result, VdiskError};
use super::files::{Files, resolve};
use std::collections::BTreeMap;

/// Largest dictionary file read (real `.vmsd`/`.vmx` files are a few KiB).
pub const MAX_DICT: u64 = 1 << 20;

/// Parse VMware dictionary text into lowercase keys → unescaped values. Lines that are not
/// `key = "value"` are skipped (comments, damage): a recovery tool takes what it can.
pub fn parse_dict(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        if !k.is_empty() {
            out.insert(k, unescape(v));
        }
    }
    out
}

/// `|22` → `"`: VMware escapes bytes in values as `|` and two hex digits.
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'|'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(x) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("zz"), 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One snapshot of a `.vmsd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub uid: String,
    pub display_name: String,
    /// The parent snapshot's uid.
    pub parent: Option<String>,
    /// (node such as `scsi0:0`, disk file the snapshot froze), as recorded.
    pub disks: Vec<(String, String)>,
}

/// The snapshots listed in `.vmsd` text, in file order (`snapshotN.*` keys; gaps tolerated).
pub fn parse_vmsd(text: &str) -> Vec<Snapshot> {
    let d = parse_dict(text);
    let mut idx: Vec<u32> = d
        .keys()
        .filter_map(|k| k.strip_prefix("snapshot")?.split_once('.')?.0.parse().ok())
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .collect();
    idx.truncate(10_000);
    idx.into_iter()
        .filter_map(|i| {
            let get = |f: &str| d.get(&format!("snapshot{i}.{f}")).cloned();
            let uid = get("uid")?;
            let disks = (0..256u32)
                .filter_map(|k| {
                    let file = get(&format!("disk{k}.filename"))?;
                    Some((get(&format!("disk{k}.node")).unwrap_or_default(), file))
                })
                .collect();
            Some(Snapshot { display_name: get("displayname").unwrap_or_default(), parent: get("parent"), uid, disks })
        })
        .collect()
}

fn folder(path: &str) -> &str {
    path.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d })
}

/// The snapshots of the VM whose disk is `disk_path`: every `.vmsd` in its folder.
pub fn snapshots_near(files: &dyn Files, disk_path: &str) -> Result<Vec<Snapshot>> {
    let dir = folder(disk_path);
    let mut names: Vec<String> = files.list(dir)?.into_iter().filter(|n| n.ends_with(".vmsd")).collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let p = resolve(disk_path, &n);
        let src = files.open(&p)?;
        if src.len() > MAX_DICT {
            return Err(VdiskError::corrupt(&p, "vmsd", 0, format!("{} bytes: not a snapshot list", src.len())));
        }
        let mut b = vec![0u8; src.len() as usize];
        src.read_at(0, &mut b)?;
        out.extend(parse_vmsd(&String::from_utf8_lossy(&b)));
    }
    Ok(out)
}

/// `disk` as it was when snapshot `name` (display name or uid) was taken: the chain from the
/// disk file that snapshot froze down to the base. The frozen file must be a link of `disk`.
pub fn at_snapshot(files: &dyn Files, mut disk: VirtualDisk, name: &str) -> Result<VirtualDisk> {
    let leaf = disk.layers.first().map(|l| l.path.clone()).unwrap_or_default();
    let snaps = snapshots_near(files, &leaf)?;
    let names = || snaps.iter().map(|s| format!("{:?} (uid {})", s.display_name, s.uid)).collect::<Vec<_>>().join(", ");
    let matching: Vec<&Snapshot> = snaps.iter().filter(|s| s.display_name == name).collect();
    let snap = match matching.as_slice() {
        [s] => *s,
        [] => snaps.iter().find(|s| s.uid == name).ok_or_else(|| VdiskError::Missing {
            file: format!("snapshot {name:?}"),
            why: if snaps.is_empty() {
                "no .vmsd snapshot list next to the disk".into()
            } else {
                format!("the .vmsd lists {}", names())
            },
        })?,
        _ => {
            return Err(VdiskError::Unsupported {
                file: leaf,
                what: format!("several snapshots are called {name:?}: give the uid ({})", names()),
            });
        }
    };
    for (_, file) in &snap.disks {
        let want = resolve(&leaf, &file.replace('\\', "/"));
        if let Some(i) = disk.layers.iter().position(|l| l.path == want) {
            // Problems that name a dropped (newer) link are not this disk's any more.
            let dropped: Vec<String> = disk.layers.drain(..i).map(|l| l.path).collect();
            disk.problems.retain(|p| !dropped.iter().any(|d| p.contains(d.as_str())));
            return Ok(disk);
        }
    }
    Err(VdiskError::Missing {
        file: leaf,
        why: format!(
            "snapshot {:?} froze {} — none of them is a link of this disk's chain",
            snap.display_name,
            snap.disks.iter().map(|(n, f)| format!("{f} ({n})")).collect::<Vec<_>>().join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMSD: &str = r#".encoding = "UTF-8"
snapshot.lastUID = "2"
snapshot.current = "2"
snapshot0.uid = "1"
snapshot0.displayName = "before |22upgrade|22"
snapshot0.numDisks = "1"
snapshot0.disk0.fileName = "web01.vmdk"
snapshot0.disk0.node = "scsi0:0"
snapshot1.uid = "2"
snapshot1.parent = "1"
snapshot1.displayName = "patched"
snapshot1.disk0.fileName = "web01-000001.vmdk"
snapshot1.disk0.node = "scsi0:0"
garbage line
snapshot.numSnapshots = "2"
"#;

    #[test]
    fn parses_snapshots() {
        let s = parse_vmsd(VMSD);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].display_name, "before \"upgrade\"");
        assert_eq!(s[0].disks, vec![("scsi0:0".to_string(), "web01.vmdk".to_string())]);
        assert_eq!(s[1].parent.as_deref(), Some("1"));
    }

    #[test]
    fn hostile_text_is_tolerated() {
        assert!(parse_vmsd("snapshot99999999999.uid = \"x\"\n=\n|\n\"").is_empty());
        assert_eq!(parse_dict("a = \"|zz|4\"")["a"], "|zz|4");
    }
}
