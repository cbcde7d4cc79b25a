//! Pure parsers of what the kernel and udevd leave as files: udevd's database records, SCSI VPD
//! pages 0x80 and 0x83 (binary, from `device/vpd_pg80` and `device/vpd_pg83`), `uevent` files
//! and kernel WWID strings. Lengths inside the pages are clamped to the bytes present.

use std::collections::BTreeMap;

/// The `E:KEY=VALUE` properties of a udevd database record (`/run/udev/data/bMAJ:MIN`). Other
/// lines (`S:` links, `I:`, `G:`, `Q:`, `V:`) are skipped.
pub fn udev_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `KEY=VALUE` lines of a sysfs `uevent` file.
pub fn uevent(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Printable ASCII with blanks trimmed; `None` when nothing is left.
fn ascii(b: &[u8]) -> Option<String> {
    let s: String = b.iter().filter(|c| c.is_ascii_graphic() || **c == b' ').map(|&c| char::from(c)).collect();
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The body of VPD page `code`: the 4-byte header's length, clamped to what was read.
fn vpd_body(page: &[u8], code: u8) -> Option<&[u8]> {
    if page.len() < 4 || page[1] != code {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    Some(&page[4..page.len().min(4 + len)])
}

/// The unit serial number of VPD page 0x80.
pub fn vpd_serial(page: &[u8]) -> Option<String> {
    ascii(vpd_body(page, 0x80)?)
}

/// The WWN of VPD page 0x83 (device identification): the logical unit's NAA designator as
/// `0x` + hex (udev's `ID_WWN_WITH_EXTENSION` spelling), else its EUI-64 as `eui.` + hex.
pub fn vpd_wwn(page: &[u8]) -> Option<String> {
    let mut body = vpd_body(page, 0x83)?;
    let mut eui = None;
    while body.len() >= 4 {
        let (assoc, kind, len) = ((body[1] >> 4) & 3, body[1] & 0xF, usize::from(body[3]));
        let Some(id) = body.get(4..4 + len) else { break };
        if assoc == 0 && kind == 3 && matches!(len, 8 | 16) {
            return Some(format!("0x{}", hex(id)));
        }
        if assoc == 0 && kind == 2 && matches!(len, 8 | 12 | 16) && eui.is_none() {
            eui = Some(format!("eui.{}", hex(id)));
        }
        body = &body[4 + len..];
    }
    eui
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A kernel `wwid` attribute as a WWN: `naa.HEX` becomes `0xhex`; `eui.`, `nvme.` and `uuid.`
/// forms stay; `t10.` (vendor, model and serial glued together, no WWN) is `None`.
pub fn wwid(text: &str) -> Option<String> {
    let t = text.trim();
    if let Some(h) = t.strip_prefix("naa.") {
        return (!h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("0x{}", h.to_lowercase()));
    }
    if t.is_empty() || t.starts_with("t10.") {
        return None;
    }
    Some(t.to_string())
}

/// `MAJ:MIN` as numbers.
pub fn dev_numbers(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_record_lines() {
        let rec = "S:disk/by-id/wwn-0x5000c500a1b2c3d4\nI:1234\nE:ID_SERIAL_SHORT=Z1X2C3\nE:ID_WWN=0x5000c500a1b2c3d4\nE:ID_MODEL=ST300MM0008\nE:=bad\nE:NOEQUALS\nG:systemd\n";
        let p = udev_properties(rec);
        assert_eq!(p.get("ID_SERIAL_SHORT").map(String::as_str), Some("Z1X2C3"));
        assert_eq!(p.get("ID_WWN").map(String::as_str), Some("0x5000c500a1b2c3d4"));
        assert_eq!(p.len(), 3);
        assert!(udev_properties("\u{0}\u{1}E:").is_empty());
    }

    #[test]
    fn vpd80_serial_and_hostile_lengths() {
        let mut p = vec![0x00, 0x80, 0x00, 0x0C];
        p.extend_from_slice(b"  S1X2Y3Z4  ");
        assert_eq!(vpd_serial(&p).as_deref(), Some("S1X2Y3Z4"));
        p[3] = 0xFF; // longer than the page: clamped
        assert_eq!(vpd_serial(&p).as_deref(), Some("S1X2Y3Z4"));
        p[1] = 0x83;
        assert_eq!(vpd_serial(&p), None);
        assert_eq!(vpd_serial(&[0, 0x80, 0, 0]), None);
        assert_eq!(vpd_serial(&[0, 0x80]), None);
    }

    #[test]
    fn vpd83_naa_then_eui_fallback() {
        // A T10 vendor id designator (type 1), a target-port NAA (association 1), then the LU NAA.
        let mut d = vec![0x02, 0x01, 0x00, 0x04];
        d.extend_from_slice(b"ATA ");
        d.extend_from_slice(&[0x01, 0x93, 0x00, 0x08, 0x50, 1, 2, 3, 4, 5, 6, 7]);
        d.extend_from_slice(&[0x01, 0x03, 0x00, 0x10]);
        d.extend_from_slice(&[0x60, 0x06, 0x05, 0xb0, 0x0a, 0xbc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let mut page = vec![0x00, 0x83, 0x00, u8::try_from(d.len()).unwrap()];
        page.extend_from_slice(&d);
        assert_eq!(vpd_wwn(&page).as_deref(), Some("0x600605b00abc00000000000000000001"));
        let eui = [0x00, 0x83, 0x00, 0x0C, 0x01, 0x02, 0x00, 0x08, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 1];
        assert_eq!(vpd_wwn(&eui).as_deref(), Some("eui.aabbccdd00000001"));
        // A designator whose length runs past the page ends the walk.
        let bad = [0x00, 0x83, 0x00, 0x08, 0x01, 0x03, 0x00, 0xFF, 0x50, 0x00, 0x00, 0x00];
        assert_eq!(vpd_wwn(&bad), None);
    }

    #[test]
    fn wwid_forms_and_dev_numbers() {
        assert_eq!(wwid("naa.5000C500A1B2C3D4\n").as_deref(), Some("0x5000c500a1b2c3d4"));
        assert_eq!(wwid("eui.0025388b71b0e91b").as_deref(), Some("eui.0025388b71b0e91b"));
        assert_eq!(wwid("t10.ATA     QEMU HARDDISK   QM00001"), None);
        assert_eq!(wwid("naa.xyz"), None);
        assert_eq!(dev_numbers("8:16\n"), Some((8, 16)));
        assert_eq!(dev_numbers("8-16"), None);
        assert_eq!(uevent("MAJOR=8\nDEVNAME=sda\n").get("DEVNAME").map(String::as_str), Some("sda"));
    }
}
