//! The container layer against the real ESXi-made corpus: every LVM device, volume and run of
//! `vmfs/manifest.json` (made with dissect.vmfs, an independent reader), spanned sets in both
//! orders and with a part missing, LV content hashes, and the two 64 TiB sparse LVM samples.

use crate::util::{SourceGuard, corpus, hex, images, manifest};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use vmfs_rescue::block::{BlockSource, Source, SparseMem, open_path};
use vmfs_rescue::container::probe::{CoarseScan, probe};
use vmfs_rescue::container::{
    CandidateKind, Discovery, LogicalVolume, LvmDevice, ProbeOptions, discover, find_candidates,
};

fn label(entry: &Value) -> String {
    entry["image_files"][0]["path"].as_str().unwrap().trim_end_matches(".gz").to_string()
}

/// A manifest number: `"0x…"` text or a JSON integer.
fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("hex {s}")),
        v => v.as_u64().unwrap_or_else(|| panic!("number {v}")),
    }
}

fn runs(v: &Value) -> Vec<(u64, u64, u64)> {
    v.as_array().unwrap().iter().map(|r| (num(&r[0]), num(&r[1]), num(&r[2]))).collect()
}

fn open_all(paths: &[PathBuf]) -> Vec<Source> {
    paths.iter().map(|p| open_path(p).unwrap()).collect()
}

/// Entries of these kinds, with their images.
fn entries(kinds: &[&str]) -> Vec<Value> {
    let Some(m) = manifest() else { return Vec::new() };
    m.into_iter().filter(|e| kinds.contains(&e["kind"].as_str().unwrap_or(""))).collect()
}

fn sha256_of(src: &dyn BlockSource) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0;
    while off < src.len() {
        let n = (src.len() - off).min(buf.len() as u64) as usize;
        src.read_at(off, &mut buf[..n]).unwrap();
        h.update(&buf[..n]);
        off += n as u64;
    }
    hex(&h.finalize())
}

/// Devices of the entry: every image probes to exactly one whole-device LVM candidate whose
/// header matches a manifest device.
fn check_devices(name: &str, entry: &Value, sources: &[Source]) {
    let devices = entry["lvm"]["devices"].as_array().unwrap();
    let mut matched = 0;
    for src in sources {
        let c = find_candidates(src);
        assert_eq!(c.len(), 1, "{name}: candidates {c:?}");
        assert_eq!(
            (c[0].offset, c[0].kind, c[0].how.as_str()),
            (0, CandidateKind::LvmDevice, "whole device"),
            "{name}"
        );
        let d = LvmDevice::open_candidate(src, &c[0]).unwrap();
        let uuid = d.dev_uuid().to_string();
        let m = devices
            .iter()
            .find(|m| m["dev_uuid"].as_str() == Some(&uuid))
            .unwrap_or_else(|| panic!("{name}: device {uuid} not in the manifest"));
        matched += 1;
        assert_eq!(u64::from(d.header.major), num(&m["major"]), "{name}: major");
        assert_eq!(u64::from(d.header.minor), num(&m["minor"]), "{name}: minor");
        assert_eq!(d.header.total_bytes, num(&m["total_bytes"]), "{name}: totalBytes");
        assert_eq!(d.header.data_offset, num(&m["data_offset"]), "{name}: dataOffset");
        assert_eq!(d.header.disk_id.id(), m["disk_id"].as_str().unwrap(), "{name}: diskID");
        assert!(d.damage.is_empty(), "{name}: {:?}", d.damage);
        assert!(d.notes.is_empty(), "{name}: {:?}", d.notes);
    }
    assert_eq!(matched, devices.len(), "{name}");
}

/// The volumes of a discovery match the manifest's, run for run.
fn check_volumes(name: &str, entry: &Value, d: &Discovery) {
    let want = entry["lvm"]["volumes"].as_array().unwrap();
    assert_eq!(d.volumes.len(), want.len(), "{name}: {:?} / {:?}", d.volumes, d.notes);
    assert!(d.notes.is_empty(), "{name}: {:?}", d.notes);
    for w in want {
        let v = d
            .volumes
            .iter()
            .find(|v| v.uuid.to_string() == w["uuid"].as_str().unwrap())
            .unwrap_or_else(|| panic!("{name}: volume {} not found", w["uuid"]));
        assert_eq!(v.name, w["name"].as_str().unwrap(), "{name}: name");
        assert_eq!(v.size, num(&w["size"]), "{name}: size");
        assert_eq!(v.source.len(), v.size, "{name}: source size");
        assert_eq!(v.state.map(|s| s.to_string()).as_deref(), w["state"].as_str(), "{name}: state");
        assert_eq!(v.runs(), runs(&w["runs"]), "{name}: runs");
        let names: Vec<&str> = w["device_names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        assert_eq!(v.device_names, names, "{name}: device names");
        if !names.is_empty() {
            let parts: Vec<&str> = v.parts.iter().map(|p| p.device_name.as_str()).collect();
            assert_eq!(parts, names, "{name}: part device names");
        }
        assert!(v.missing.is_empty(), "{name}: missing {:?}", v.missing);
        assert!(v.notes.is_empty(), "{name}: {:?}", v.notes);
        assert!(v.source.unreadable(0..v.size).is_empty(), "{name}");
        let expected_major =
            entry["lvm"]["devices"].as_array().unwrap().iter().map(|m| num(&m["major"])).max().unwrap();
        assert_eq!(u64::from(v.lvm_major), expected_major, "{name}: LVM major");
        if let Some(sha) = w.get("content_sha256").and_then(|s| s.as_str()) {
            assert_eq!(sha256_of(&*v.source), sha, "{name}: LV content");
        }
    }
}

/// The FS3 descriptor magic sits at LV offset 0x200000.
fn check_fs3(name: &str, entry: &Value, v: &LogicalVolume) {
    let mut b = [0u8; 4];
    v.source.read_at(0x200000, &mut b).unwrap();
    assert_eq!(u64::from(u32::from_le_bytes(b)), num(&entry["vmfs"]["magic"]), "{name}: FS3 magic");
}

#[test]
fn lvm_only_images_match_the_manifest() {
    let list = entries(&["lvm-only"]);
    for entry in &list {
        let name = label(entry);
        let paths = images(entry);
        let _guard = SourceGuard::new(&paths);
        let sources = open_all(&paths);
        check_devices(&name, entry, &sources);
        check_volumes(&name, entry, &discover(&sources));
    }
    eprintln!("checked {} lvm-only entries", list.len());
}

#[test]
fn vmfs_images_match_the_manifest() {
    let list = entries(&["vmfs"]);
    for entry in &list {
        let name = label(entry);
        let paths = images(entry);
        let _guard = SourceGuard::new(&paths);
        let sources = open_all(&paths);
        let d = discover(&sources);
        // Probing every MiB and cylinder boundary finds nothing inside a real volume.
        for src in &sources {
            let always = probe(src, &ProbeOptions { coarse: CoarseScan::Always, ..ProbeOptions::default() });
            assert_eq!(always.candidates, find_candidates(src), "{name}: coarse probe");
        }
        if entry["lvm"].is_null() {
            // A raw logical-volume image: no LVM header, the FS3 descriptor at 0x200000.
            let c = find_candidates(&sources[0]);
            assert_eq!(c.len(), 1, "{name}: {c:?}");
            assert_eq!(
                (c[0].offset, c[0].kind, c[0].how.as_str()),
                (0, CandidateKind::RawVolume, "whole device (raw logical volume)"),
                "{name}"
            );
            assert_eq!(d.volumes.len(), 1, "{name}: {:?}", d.notes);
            let v = &d.volumes[0];
            assert!(!v.is_lvm() && v.parts.is_empty() && v.missing.is_empty(), "{name}");
            assert_eq!(v.size, entry["image_files"][0]["decoded_size"].as_u64().unwrap(), "{name}: size");
            check_fs3(&name, entry, v);
        } else {
            check_devices(&name, entry, &sources);
            check_volumes(&name, entry, &d);
            check_fs3(&name, entry, &d.volumes[0]);
        }
    }
    eprintln!("checked {} vmfs entries", list.len());
}

#[test]
fn spanned_sets_assemble_in_any_order_and_with_a_part_missing() {
    let list: Vec<Value> = entries(&["vmfs", "lvm-only"])
        .into_iter()
        .filter(|e| e["image_files"].as_array().unwrap().len() == 2)
        .collect();
    for entry in &list {
        let name = label(entry);
        let paths = images(entry);
        let _guard = SourceGuard::new(&paths);
        let sources = open_all(&paths);
        let want = &entry["lvm"]["volumes"][0];
        let want_runs = runs(&want["runs"]);
        let fwd = discover(&sources);
        let rev = discover(&[Arc::clone(&sources[1]), Arc::clone(&sources[0])]);
        for d in [&fwd, &rev] {
            assert_eq!(d.volumes.len(), 1, "{name}");
            assert_eq!(d.volumes[0].runs(), want_runs, "{name}");
            assert_eq!(d.volumes[0].size, num(&want["size"]), "{name}");
        }
        assert_eq!(fwd.volumes[0].parts, rev.volumes[0].parts, "{name}");
        assert_eq!(fwd.volumes[0].uuid, rev.volumes[0].uuid, "{name}");

        // One part alone: the other part's range is missing, reads as zeros and is reported.
        for (present, absent) in [(0usize, 1usize), (1, 0)] {
            let d = discover(&[Arc::clone(&sources[present])]);
            assert_eq!(d.volumes.len(), 1, "{name}: {:?}", d.notes);
            let v = &d.volumes[0];
            let (vol, _, len) = want_runs[absent];
            let gap = vol..vol + len;
            assert_eq!(v.size, num(&want["size"]), "{name}");
            assert_eq!(v.missing, vec![gap.clone()], "{name}: part {absent} missing");
            assert_eq!(v.runs(), vec![want_runs[present]], "{name}");
            assert_eq!(
                v.notes,
                vec![format!(
                    "device {} of 2 missing: volume bytes {:#x}..{:#x} read as zeros",
                    absent + 1,
                    gap.start,
                    gap.end
                )],
                "{name}"
            );
            assert_eq!(v.source.unreadable(0..v.size), vec![gap.clone()], "{name}");
            for at in [gap.start, gap.start + len / 2, gap.end - (1 << 20)] {
                let mut b = vec![0xAAu8; 1 << 20];
                v.source.read_at(at, &mut b).unwrap();
                assert!(b.iter().all(|&x| x == 0), "{name}: bytes at {at:#x} of the missing part are not zeros");
            }
            // The present part still reads its own bytes.
            let (pvol, pdev, _) = want_runs[present];
            let mut via_lv = vec![0u8; 1 << 16];
            let mut direct = vec![0u8; 1 << 16];
            v.source.read_at(pvol + 0x200000, &mut via_lv).unwrap();
            sources[present].read_at(pdev + 0x200000, &mut direct).unwrap();
            assert_eq!(via_lv, direct, "{name}");
        }
    }
    eprintln!("checked {} spanned sets", list.len());
}

/// A 64 TiB device that is zeros except for the regions of a corpus CSV (`offset,hexbytes`).
fn csv_sparse(rel: &str) -> Option<SparseMem> {
    let root = corpus()?;
    let path = root.join(rel);
    let f = std::fs::File::open(&path).expect("open csv");
    let mut regions = BTreeMap::new();
    for line in BufReader::new(flate2::read::GzDecoder::new(f)).lines() {
        let line = line.expect("csv line");
        let (off, hexbytes) = line.trim().split_once(',').expect("offset,hex");
        let bytes = (0..hexbytes.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hexbytes[i..i + 2], 16).expect("hex byte"))
            .collect();
        regions.insert(off.parse().expect("offset"), bytes);
    }
    Some(SparseMem { name: rel.into(), len: 1 << 46, regions })
}

fn check_huge(rel: &str) {
    let Some(entry) = manifest()
        .and_then(|m| m.into_iter().find(|e| e["image_files"][0]["path"].as_str() == rel.strip_prefix("vmfs/")))
    else {
        return;
    };
    let Some(src) = csv_sparse(rel) else { return };
    let src: Source = Arc::new(src);
    let want_dev = &entry["lvm"]["devices"][0];
    let c = find_candidates(&src);
    assert_eq!(c.len(), 1, "{rel}: {c:?}");
    let dev = LvmDevice::open_candidate(&src, &c[0]).unwrap();
    assert_eq!(u64::from(dev.header.major), num(&want_dev["major"]), "{rel}");
    assert_eq!(u64::from(dev.header.num_pes), num(&want_dev["numPEs"]), "{rel}");
    assert_eq!(u64::from(dev.header.num_pes6), num(&want_dev["numPEs6"]), "{rel}");
    assert!(dev.damage.is_empty(), "{rel}: {:?}", dev.damage);
    let d = discover(&[Arc::clone(&src)]);
    assert!(d.notes.is_empty(), "{rel}: {:?}", d.notes);
    assert_eq!(d.volumes.len(), 1, "{rel}");
    let v = &d.volumes[0];
    let w = &entry["lvm"]["volumes"][0];
    assert_eq!(v.name, w["name"].as_str().unwrap(), "{rel}");
    assert_eq!(v.size, num(&w["size"]), "{rel}");
    assert_eq!(v.runs(), runs(&w["runs"]), "{rel}");
    assert!(v.missing.is_empty() && v.notes.is_empty(), "{rel}: {:?} {:?}", v.missing, v.notes);
    for tib in [0u64, 16, 32, 48] {
        let at = tib << 40;
        let mut b = vec![0u8; 512];
        v.source.read_at(at, &mut b).unwrap();
        let text: String = b.iter().take_while(|&&c| c != 0).map(|&c| c as char).collect();
        let rest = text.strip_prefix("Logical offset ").unwrap_or_else(|| panic!("{rel}: sector at {at:#x}: {text:?}"));
        let n = match rest.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => rest.parse().unwrap(),
        };
        assert_eq!(n, at, "{rel}: sector at LV {tib} TiB");
    }
    eprintln!("checked {rel}: {} PEs in {} runs", dev.pes.len(), v.runs().len());
}

#[test]
fn huge_lvm5_with_extended_metadata() {
    check_huge("vmfs/dissect.vmfs-3.13/lvm/huge/lvm5.csv.gz");
}

#[test]
fn huge_lvm6_with_large_pes() {
    check_huge("vmfs/dissect.vmfs-3.13/lvm/huge/lvm6.csv.gz");
}

/// A disk made of `head` bytes (a partition table), then `image` at `head.len()`, then `tail`.
fn disk_around(head: Vec<u8>, image: &Source, tail: Vec<u8>) -> Source {
    use vmfs_rescue::block::{Concat, MemSource, Piece, Tolerant};
    let h = head.len() as u64;
    let len = h + image.len() + tail.len() as u64;
    let mem = |name: &str, b: Vec<u8>| -> Source { Arc::new(Tolerant::new(MemSource::new(name, b))) };
    let mut pieces = vec![Piece { offset: 0, len: h, src: Some((mem("head", head), 0)) }];
    pieces.push(Piece { offset: h, len: image.len(), src: Some((Arc::clone(image), 0)) });
    let t = tail.len() as u64;
    pieces.push(Piece { offset: h + image.len(), len: t, src: Some((mem("tail", tail), 0)) });
    Arc::new(Concat::new("disk", pieces, len))
}

/// An MBR with one partition of `type_byte` at `lba` covering `sectors`.
fn mbr(type_byte: u8, lba: u32, sectors: u32) -> Vec<u8> {
    let mut m = vec![0u8; 512];
    m[0x1BE + 4] = type_byte;
    m[0x1BE + 8..0x1BE + 12].copy_from_slice(&lba.to_le_bytes());
    m[0x1BE + 12..0x1BE + 16].copy_from_slice(&sectors.to_le_bytes());
    m[0x1FE] = 0x55;
    m[0x1FF] = 0xAA;
    m
}

/// GPT head (1 MiB: protective MBR, header, entries) and tail (entries, backup header) around a
/// VMFS partition of `part_len` bytes at LBA 2048.
fn gpt(part_len: u64) -> (Vec<u8>, Vec<u8>) {
    let sectors = (2 * (1 << 20) + part_len) / 512;
    let mut entries = vec![0u8; 128 * 128];
    // AA31E02A-400F-11DB-9590-000C2911D1B8, mixed-endian.
    entries[..16].copy_from_slice(&[
        0x2A, 0xE0, 0x31, 0xAA, 0x0F, 0x40, 0xDB, 0x11, 0x95, 0x90, 0x00, 0x0C, 0x29, 0x11, 0xD1, 0xB8,
    ]);
    entries[16] = 1;
    entries[0x20..0x28].copy_from_slice(&2048u64.to_le_bytes());
    entries[0x28..0x30].copy_from_slice(&(2048 + part_len / 512 - 1).to_le_bytes());
    let header = |my: u64, alt: u64, arr: u64| {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x10000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&my.to_le_bytes());
        h[0x20..0x28].copy_from_slice(&alt.to_le_bytes());
        h[0x28..0x30].copy_from_slice(&34u64.to_le_bytes());
        h[0x30..0x38].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[0x48..0x50].copy_from_slice(&arr.to_le_bytes());
        h[0x50..0x54].copy_from_slice(&128u32.to_le_bytes());
        h[0x54..0x58].copy_from_slice(&128u32.to_le_bytes());
        h[0x58..0x5C].copy_from_slice(&crc32fast::hash(&entries).to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[0x10..0x14].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let mut head = mbr(0xEE, 1, u32::try_from(sectors - 1).unwrap_or(u32::MAX));
    head.extend(header(1, sectors - 1, 2));
    head.extend(&entries);
    head.resize(1 << 20, 0);
    let mut tail = vec![0u8; (1 << 20) - 512 - entries.len()];
    let arr_lba = sectors - 1 - 32;
    tail.extend(&entries);
    tail.extend(header(sectors - 1, 1, arr_lba));
    (head, tail)
}

#[test]
fn real_devices_behind_tables_and_at_odd_starts() {
    let Some(entry) = entries(&["vmfs"]).into_iter().find(|e| label(e).ends_with("vmfs/vmfs5.bin")) else {
        assert!(corpus().is_none(), "vmfs5.bin not in the manifest");
        return;
    };
    let paths = images(&entry);
    let _guard = SourceGuard::new(&paths);
    let image = open_all(&paths).remove(0);
    let want = runs(&entry["lvm"]["volumes"][0]["runs"]);
    let len = image.len();
    let (head, tail) = gpt(len);
    let larger = format!("MBR partition 1 type 0x83 (the LVM device there is larger: {len:#x} bytes used)");
    let cases: Vec<(&str, Source, u64, &str)> = vec![
        ("GPT", disk_around(head, &image, tail), 1 << 20, "GPT partition 1 (VMFS)"),
        (
            "MBR",
            disk_around([mbr(0xFB, 2048, (len / 512) as u32), vec![0; (1 << 20) - 512]].concat(), &image, vec![]),
            1 << 20,
            "MBR partition 1 type 0xfb",
        ),
        ("no table, LBA 63", disk_around(vec![0; 63 * 512], &image, vec![]), 63 * 512, "probe at 0x7e00"),
        ("no table, 5 MiB", disk_around(vec![0; 5 << 20], &image, vec![]), 5 << 20, "probe at 0x500000"),
        (
            "a 100-sector Linux partition where the device starts",
            disk_around([mbr(0x83, 2048, 100), vec![0; (1 << 20) - 512]].concat(), &image, vec![]),
            1 << 20,
            &larger,
        ),
        (
            "a table that points elsewhere",
            disk_around([mbr(0x83, 8192, 100), vec![0; (1 << 20) - 512]].concat(), &image, vec![]),
            1 << 20,
            "probe at 0x100000",
        ),
    ];
    for (what, disk, at, how) in cases {
        let c = find_candidates(&disk);
        assert_eq!(c.len(), 1, "{what}: {c:?}");
        assert_eq!((c[0].offset, c[0].kind), (at, CandidateKind::LvmDevice), "{what}");
        assert!(c[0].how.starts_with(how), "{what}: {}", c[0].how);
        assert_eq!(c[0].len, len, "{what}");
        let d = discover(&[disk]);
        assert_eq!(d.volumes.len(), 1, "{what}: {:?}", d.notes);
        let v = &d.volumes[0];
        assert_eq!(v.runs(), want, "{what}");
        assert_eq!(v.parts[0].device_offset, at, "{what}");
        assert!(v.missing.is_empty() && v.notes.is_empty(), "{what}: {:?}", v.notes);
        check_fs3(what, &entry, v);
    }
}
