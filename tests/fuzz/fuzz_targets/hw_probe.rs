//! The hardware inventory's parsers on arbitrary bytes: the file-system probe (the input is the
//! head of a disk and, past it, what the extra reads return), VPD pages, udev records,
//! mountinfo and pci.ids lines. No panic, no allocation from a size in the input.
// fuzz-smoke: -max_len=70000
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmfs_rescue::hw::{dest, ids, parse, probe};

fuzz_target!(|data: &[u8]| {
    let head = &data[..data.len().min(probe::HEAD_LEN)];
    // Extra reads see the same bytes again, at any offset: hostile geometry lands somewhere.
    let read = |off: u64, len: usize| -> Option<Vec<u8>> {
        if data.is_empty() {
            return None;
        }
        let start = usize::try_from(off % data.len() as u64).ok()?;
        Some(data.iter().cycle().skip(start).take(len.min(1 << 16)).copied().collect())
    };
    let _ = probe::identify(head, &read);
    let _ = probe::ntfs_volume_name(data);
    let _ = probe::exfat_label(data);
    let _ = parse::vpd_serial(data);
    let _ = parse::vpd_wwn(data);
    let text = String::from_utf8_lossy(data);
    let _ = parse::udev_properties(&text);
    let _ = parse::wwid(&text);
    let _ = dest::mountinfo(&text);
    let _ = ids::lookup(&text, 0x1000, 0x005d);
    let _ = ids::lookup_class(&text, 0x0107);
});
