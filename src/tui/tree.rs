//! The rows of one Browse folder, made from the flat catalogue: its direct entries, folders
//! implied by deeper paths, sizes summed, a VM folder named after its .vmx, and each disk
//! descriptor followed by the extent files it names.

use super::app::ItemRow;
use crate::recover::rebuild::{Kind, State};
use std::collections::BTreeMap;

/// One line of a Browse folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    /// The catalogue item, when the entry is one (implied folders have none).
    pub item: Option<usize>,
    pub dir: bool,
    /// 1 for an extent listed under its descriptor.
    pub indent: u8,
    /// File size, or the sum of the files below a folder.
    pub size: u64,
    /// Files below a folder.
    pub files: usize,
    /// The item's state, or for a folder the first state below that is not "live".
    pub state: Option<State>,
    /// A VM's name for its folder, a disk's description for a descriptor.
    pub note: Option<String>,
}

/// The rows of folder `cwd`.
pub fn rows(items: &[ItemRow], cwd: &[String]) -> Vec<Row> {
    let mut by_name: BTreeMap<&str, Row> = BTreeMap::new();
    for (idx, it) in items.iter().enumerate() {
        if it.path.len() <= cwd.len() || it.path[..cwd.len()] != *cwd {
            continue;
        }
        let name = it.path[cwd.len()].as_str();
        let direct = it.path.len() == cwd.len() + 1;
        let row = by_name.entry(name).or_insert_with(|| Row { name: name.to_string(), ..Row::default() });
        if direct {
            row.item = Some(idx);
            row.dir = it.kind == Kind::Dir;
            row.state = Some(it.state);
            if it.kind != Kind::Dir {
                row.size = it.size;
                row.note.clone_from(&it.note);
            }
        } else {
            row.dir = true;
            if it.kind == Kind::File {
                row.size = row.size.saturating_add(it.size);
                row.files += 1;
            }
            if it.state != State::Live && row.state.is_none_or(|s| s == State::Live) && row.item.is_none() {
                row.state = Some(it.state);
            }
            // A VM folder: the .vmx right inside it names the VM.
            if it.path.len() == cwd.len() + 2 && it.name().to_ascii_lowercase().ends_with(".vmx") && it.note.is_some() {
                row.note.clone_from(&it.note);
            }
        }
    }
    let mut dirs: Vec<Row> = Vec::new();
    let mut files: Vec<Row> = Vec::new();
    for (_, r) in by_name {
        if r.dir { dirs.push(r) } else { files.push(r) }
    }
    dirs.extend(group_extents(items, files));
    dirs
}

/// Files in name order, each descriptor followed by the extents it names that are here.
fn group_extents(items: &[ItemRow], files: Vec<Row>) -> Vec<Row> {
    let here: BTreeMap<String, usize> =
        files.iter().enumerate().filter_map(|(i, r)| Some((items.get(r.item?)?.out_path(), i))).collect();
    let mut owner: Vec<Option<usize>> = vec![None; files.len()];
    for (i, r) in files.iter().enumerate() {
        let Some(it) = r.item.and_then(|x| items.get(x)) else { continue };
        for e in &it.extents {
            if let Some(&j) = here.get(e)
                && j != i
                && owner[j].is_none()
            {
                owner[j] = Some(i);
            }
        }
    }
    let mut out = Vec::with_capacity(files.len());
    for (i, r) in files.iter().enumerate() {
        if owner[i].is_some() {
            continue;
        }
        out.push(r.clone());
        for (j, o) in owner.iter().enumerate() {
            if *o == Some(i) {
                out.push(Row { indent: 1, ..files[j].clone() });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(path: &str, kind: Kind, state: State, size: u64) -> ItemRow {
        ItemRow::new(path, kind, state, size)
    }

    #[test]
    fn folders_first_sizes_summed_extents_grouped() {
        let mut desc = item("volumes/ds/vm/vm.vmdk", Kind::File, State::Live, 500);
        desc.extents = vec!["volumes/ds/vm/vm-flat.vmdk".into()];
        let mut vmx = item("volumes/ds/vm/vm.vmx", Kind::File, State::Live, 100);
        vmx.note = Some("VM web01".into());
        let items = vec![
            item("volumes/ds/vm", Kind::Dir, State::Live, 0),
            item("volumes/ds/vm/a-flat.vmdk", Kind::File, State::Live, 7),
            item("volumes/ds/vm/vm-flat.vmdk", Kind::File, State::Live, 1000),
            desc,
            vmx,
            item("volumes/ds/old/x.log", Kind::File, State::Deleted, 5),
        ];
        let top = rows(&items, &["volumes".into(), "ds".into()]);
        let names: Vec<_> = top.iter().map(|r| (r.name.as_str(), r.size, r.state)).collect();
        assert_eq!(names, [("old", 5, Some(State::Deleted)), ("vm", 1607, Some(State::Live))]);
        assert_eq!(top[1].note.as_deref(), Some("VM web01"));
        assert!(top[0].item.is_none() && top[0].dir);
        let vm = rows(&items, &["volumes".into(), "ds".into(), "vm".into()]);
        let order: Vec<_> = vm.iter().map(|r| (r.name.as_str(), r.indent)).collect();
        assert_eq!(order, [("a-flat.vmdk", 0), ("vm.vmdk", 0), ("vm-flat.vmdk", 1), ("vm.vmx", 0)]);
    }
}
