//! VMDK descriptor text as ESXi writes it (reference §2): header keys, one extent line, and the
//! disk database with its keys sorted, `key = "value"`.

use crate::forge::ForgeError;
use std::fmt::Write as _;

/// How the link stores its data, which fixes createType, the extent type and DDB keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskKind {
    /// Thick base disk. Lazy- and eager-zeroed look the same in the descriptor on ESXi (the
    /// difference is only in VMFS block state), so `eager` changes nothing in the text.
    Thick {
        /// Eager-zeroed (kept for the caller's VMFS layout, not written here).
        eager: bool,
    },
    /// Thin base disk: createType "vmfs" plus `ddb.thinProvisioned = "1"` (ESXi never writes
    /// "vmfsThin").
    Thin,
    /// vmfsSparse (COWD) delta.
    VmfsSparse,
    /// SEsparse delta (adds `ddb.grain = "8"`).
    SeSparse,
}

impl DiskKind {
    /// The createType value.
    pub fn create_type(self) -> &'static str {
        match self {
            DiskKind::Thick { .. } | DiskKind::Thin => "vmfs",
            DiskKind::VmfsSparse => "vmfsSparse",
            DiskKind::SeSparse => "seSparse",
        }
    }
    /// The extent line's type.
    pub fn extent_type(self) -> &'static str {
        match self {
            DiskKind::Thick { .. } | DiskKind::Thin => "VMFS",
            DiskKind::VmfsSparse => "VMFSSPARSE",
            DiskKind::SeSparse => "SESPARSE",
        }
    }
    /// The extent file's suffix after the link's stem: `-flat`, `-delta`, `-sesparse`.
    pub fn extent_suffix(self) -> &'static str {
        match self {
            DiskKind::Thick { .. } | DiskKind::Thin => "-flat.vmdk",
            DiskKind::VmfsSparse => "-delta.vmdk",
            DiskKind::SeSparse => "-sesparse.vmdk",
        }
    }
    /// Whether the link is a delta.
    pub fn is_delta(self) -> bool {
        matches!(self, DiskKind::VmfsSparse | DiskKind::SeSparse)
    }
}

/// One descriptor. Build with [`Descriptor::base`] or [`Descriptor::delta`], adjust the public
/// fields if needed, then call [`Descriptor::text`].
#[derive(Clone, Debug)]
pub struct Descriptor {
    /// Storage kind.
    pub kind: DiskKind,
    /// Capacity in 512-byte sectors.
    pub capacity_sectors: u64,
    /// `CID`.
    pub cid: u32,
    /// `parentCID` and `parentFileNameHint` of a delta.
    pub parent: Option<(u32, String)>,
    /// Extent file name as written in the extent line.
    pub extent_file: String,
    /// `ddb.adapterType` (ESXi writes "lsilogic" also for pvscsi disks created by the UI).
    pub adapter_type: String,
    /// `ddb.uuid` bytes (base disks only).
    pub uuid: Option<[u8; 16]>,
    /// First 24 hex digits of `ddb.longContentID`; the last 8 are the CID.
    pub long_content_prefix: [u8; 12],
    /// `ddb.virtualHWVersion` (base disks only).
    pub virtual_hw_version: u32,
    /// `ddb.deletable`, when written.
    pub deletable: Option<bool>,
    /// `ddb.toolsInstallType` / `ddb.toolsVersion` (base disks), when written.
    pub tools: Option<(u32, u32)>,
}

impl Descriptor {
    /// A base disk `<stem>.vmdk` with extent `<stem>-flat.vmdk`. `ids` gives the uuid and
    /// longContentID bytes (from the forge's seeded generator). CID starts at `fffffffe`, the
    /// value of a disk never modified since creation.
    pub fn base(stem: &str, capacity_sectors: u64, kind: DiskKind, ids: [u8; 16]) -> Result<Self, ForgeError> {
        if kind.is_delta() {
            return Err(ForgeError::Layout(format!("{kind:?} is a delta kind, not a base disk")));
        }
        check_stem(stem)?;
        if capacity_sectors == 0 {
            return Err(ForgeError::Layout("disk capacity is 0 sectors".into()));
        }
        let mut uuid = ids;
        // VMware's virtual disk uuids start "60 00 C2 9x".
        uuid[0] = 0x60;
        uuid[1] = 0x00;
        uuid[2] = 0xC2;
        uuid[3] = 0x90 | (uuid[3] & 0x0F);
        let mut prefix = [0u8; 12];
        prefix.copy_from_slice(&ids[4..16]);
        Ok(Self {
            kind,
            capacity_sectors,
            cid: 0xFFFF_FFFE,
            parent: None,
            extent_file: format!("{stem}{}", kind.extent_suffix()),
            adapter_type: "lsilogic".into(),
            uuid: Some(uuid),
            long_content_prefix: prefix,
            virtual_hw_version: 19,
            deletable: None,
            tools: Some((4, 12_352)),
        })
    }

    /// A delta `<stem>.vmdk` (e.g. `vm-000001`) over `parent`, whose descriptor file name is
    /// `parent_file` (relative to the child's directory, as ESXi writes it). `new_cid` is the
    /// CID the child has after its first write.
    pub fn delta(
        stem: &str,
        parent: &Descriptor,
        parent_file: &str,
        kind: DiskKind,
        new_cid: u32,
        ids: [u8; 12],
    ) -> Result<Self, ForgeError> {
        if !kind.is_delta() {
            return Err(ForgeError::Layout(format!("{kind:?} is not a delta kind")));
        }
        check_stem(stem)?;
        if kind == DiskKind::VmfsSparse && parent.capacity_sectors > u64::from(u32::MAX) {
            return Err(ForgeError::Layout("vmfsSparse deltas are limited to 2^32-1 sectors".into()));
        }
        Ok(Self {
            kind,
            capacity_sectors: parent.capacity_sectors,
            cid: new_cid,
            parent: Some((parent.cid, parent_file.to_string())),
            extent_file: format!("{stem}{}", kind.extent_suffix()),
            adapter_type: parent.adapter_type.clone(),
            uuid: None,
            long_content_prefix: ids,
            virtual_hw_version: parent.virtual_hw_version,
            deletable: Some(true),
            tools: None,
        })
    }

    /// CHS geometry as ESXi computes it for SCSI disks: 255 heads, 63 sectors per track,
    /// cylinders = capacity / (255 * 63), not capped (ESXi writes e.g. "130541" for 1 TiB;
    /// the 16383 cap of the reference applies to hosted IDE disks).
    pub fn geometry(&self) -> (u64, u32, u32) {
        (self.capacity_sectors / (255 * 63), 255, 63)
    }

    /// The descriptor file's text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let parent_cid = self.parent.as_ref().map_or(0xFFFF_FFFF, |p| p.0);
        let _ = write!(
            s,
            "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={:08x}\nparentCID={parent_cid:08x}\n",
            self.cid
        );
        let _ = writeln!(s, "createType=\"{}\"", self.kind.create_type());
        if let Some((_, hint)) = &self.parent {
            let _ = writeln!(s, "parentFileNameHint=\"{hint}\"");
        }
        let _ = write!(
            s,
            "\n# Extent description\nRW {} {} \"{}\"\n\n# The Disk Data Base \n#DDB\n\n",
            self.capacity_sectors,
            self.kind.extent_type(),
            self.extent_file
        );
        let mut ddb: Vec<(&str, String)> = vec![("ddb.longContentID", self.long_content_id())];
        ddb.push(("ddb.adapterType", self.adapter_type.clone()));
        if let Some(d) = self.deletable {
            ddb.push(("ddb.deletable", d.to_string()));
        }
        ddb.push(("ddb.encoding", "UTF-8".into()));
        if self.kind == DiskKind::SeSparse {
            ddb.push(("ddb.grain", "8".into()));
        }
        if !self.kind.is_delta() {
            let (c, h, sec) = self.geometry();
            ddb.push(("ddb.geometry.cylinders", c.to_string()));
            ddb.push(("ddb.geometry.heads", h.to_string()));
            ddb.push(("ddb.geometry.sectors", sec.to_string()));
            if self.kind == DiskKind::Thin {
                ddb.push(("ddb.thinProvisioned", "1".into()));
            }
            if let Some((t, v)) = self.tools {
                ddb.push(("ddb.toolsInstallType", t.to_string()));
                ddb.push(("ddb.toolsVersion", v.to_string()));
            }
            if let Some(u) = self.uuid {
                ddb.push(("ddb.uuid", uuid_text(&u)));
            }
            ddb.push(("ddb.virtualHWVersion", self.virtual_hw_version.to_string()));
        }
        ddb.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in ddb {
            let _ = writeln!(s, "{k} = \"{v}\"");
        }
        s
    }

    /// `ddb.longContentID`: 32 hex digits ending with the CID.
    pub fn long_content_id(&self) -> String {
        let mut s: String = self.long_content_prefix.iter().map(|b| format!("{b:02x}")).collect();
        let _ = write!(s, "{:08x}", self.cid);
        s
    }
}

/// VMware's uuid text: bytes separated by spaces, one dash after the eighth.
pub fn uuid_text(u: &[u8; 16]) -> String {
    let hex: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}", hex[..8].join(" "), hex[8..].join(" "))
}

fn check_stem(stem: &str) -> Result<(), ForgeError> {
    if stem.is_empty() || stem.contains(['"', '/', '\n', '\0']) {
        return Err(ForgeError::Layout(format!("bad VMDK name {stem:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thin_base_and_sesparse_child() {
        let b = Descriptor::base("web01", 2_097_152, DiskKind::Thin, [0x11; 16]).unwrap();
        let t = b.text();
        assert!(t.starts_with("# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\n"));
        assert!(t.contains("parentCID=ffffffff\ncreateType=\"vmfs\"\n"));
        assert!(t.contains("\nRW 2097152 VMFS \"web01-flat.vmdk\"\n"));
        assert!(t.contains("ddb.thinProvisioned = \"1\""));
        assert!(t.contains("ddb.geometry.cylinders = \"130\""));
        assert!(t.contains("ddb.uuid = \"60 00 c2 91 11 11 11 11-11 11 11 11 11 11 11 11\""));
        assert!(t.contains("ddb.longContentID = \"111111111111111111111111fffffffe\""));
        let c = Descriptor::delta("web01-000001", &b, "web01.vmdk", DiskKind::SeSparse, 0x1234abcd, [2; 12]).unwrap();
        let t = c.text();
        assert!(t.contains("CID=1234abcd\nparentCID=fffffffe\ncreateType=\"seSparse\"\n"));
        assert!(t.contains("parentFileNameHint=\"web01.vmdk\""));
        assert!(t.contains("RW 2097152 SESPARSE \"web01-000001-sesparse.vmdk\""));
        assert!(t.contains("ddb.grain = \"8\""));
        assert!(!t.contains("thinProvisioned"));
        let thick = Descriptor::base("a", 2048, DiskKind::Thick { eager: true }, [0; 16]).unwrap();
        assert!(!thick.text().contains("thinProvisioned"));
        assert!(Descriptor::base("a", 0, DiskKind::Thin, [0; 16]).is_err());
        assert!(Descriptor::base("a\"b", 8, DiskKind::Thin, [0; 16]).is_err());
    }
}
