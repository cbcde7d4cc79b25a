//! Guest files on Linux LVM2 (issue 9): a disk with an MBR partition of type 8e made a PV by
//! lvm2's own tools (`pvcreate`, `vgcreate`, `lvcreate --activate n --zero n` on a loop device
//! with activation disabled: device-mapper is not needed), two linear LVs, the first extended
//! after the second was created so it has two segments. Device-mapper cannot map the LVs here,
//! so an ext4 image made by `mkfs.ext4 -d` is written into each LV's extents at the offsets
//! lvm's own `pvs`/`vgs`/`lvs --segments` print. Then every file is read back through
//! `open_disk`/`open_fs` (from the raw disk and a streamOptimized VMDK of it) and the CLI.
//!
//! Needs root and a loop device; fails (never skips) without them.

use crate::guest_exfat::{Loop, run, sha, write_mbr};
use crate::util::hex;
use sha2::{Digest, Sha256};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use vmfs_rescue::block::Source;
use vmfs_rescue::guest::{self, Kind};
use vmfs_rescue::vdisk::{self, LocalFiles};

const PART_START: u64 = 1 << 20;
const DISK_SIZE: u64 = 64 << 20;

/// An lvm2 command that sees only `dev`, writes no backup or archive under /etc/lvm and never
/// talks to device-mapper.
fn lvm(tool: &str, dev: &str, args: &[&str]) -> String {
    let conf = format!(
        "devices {{ filter = [ \"a|^{dev}$|\", \"r|.*|\" ] obtain_device_list_from_udev = 0 scan_lvs = 0 \
         use_devicesfile = 0 }} activation {{ udev_sync = 0 udev_rules = 0 }} global {{ activation = 0 }} \
         backup {{ backup = 0 archive = 0 }}"
    );
    let o = run(Command::new(tool)
        .args(["--nolocking", "--config", &conf])
        .args(args)
        .env("DM_DISABLE_UDEV", "1")
        .env("LVM_SUPPRESS_FD_WARNINGS", "1"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Files of one LV: path and content.
type Files = Vec<(String, Vec<u8>)>;

/// An ext4 image of `size` bytes holding `files` (made by `mkfs.ext4 -d`).
fn ext4_image(dir: &Path, name: &str, size: u64, files: &Files) -> Vec<u8> {
    let stage = dir.join(format!("stage-{name}"));
    for (p, d) in files {
        let f = stage.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, d).unwrap();
    }
    let img = dir.join(format!("{name}.ext4"));
    std::fs::File::create(&img).unwrap().set_len(size).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096", "-O", "^has_journal", "-L", name, "-d"])
        .arg(&stage)
        .arg(&img));
    std::fs::read(&img).unwrap()
}

/// Two LVs on a PV in partition 1: `root` (20 MiB, two segments), `data` (8 MiB).
#[test]
fn guest_lvm2_linear_lvs_from_lvm_tools() {
    let t = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lvm.img");
    write_mbr(&img, DISK_SIZE, PART_START, 0x8E);
    let vg = format!("vgtest{}", std::process::id());
    let (pe_start, extent, segs) = {
        let dev = Loop::new(&img, PART_START, DISK_SIZE - PART_START);
        let d = dev.0.as_str();
        lvm("pvcreate", d, &[d]);
        lvm("vgcreate", d, &[&vg, d]);
        lvm("lvcreate", d, &["--activate", "n", "--zero", "n", "-n", "root", "-L", "12M", &vg]);
        lvm("lvcreate", d, &["--activate", "n", "--zero", "n", "-n", "data", "-L", "8M", &vg]);
        lvm("lvextend", d, &["-L", "+8M", &format!("{vg}/root")]);
        let num = |s: String| s.trim().parse::<u64>().unwrap_or_else(|_| panic!("a number: {s:?}"));
        let pe_start = num(lvm("pvs", d, &["--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start"]));
        let extent = num(lvm("vgs", d, &["--noheadings", "--units", "b", "--nosuffix", "-o", "vg_extent_size", &vg]));
        let out = lvm(
            "lvs",
            d,
            &["--noheadings", "--segments", "--separator", ";", "-o", "lv_name,seg_start_pe,seg_pe_ranges", &vg],
        );
        // "root;0;/dev/loop0:0-2": LV, first LE of the segment, PV:first-last PE.
        let segs: Vec<(String, u64, u64, u64)> = out
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.trim().split(';').collect();
                let (a, b) = f[2].rsplit(':').next().unwrap().split_once('-').unwrap();
                (f[0].to_string(), f[1].parse().unwrap(), a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        (pe_start, extent, segs)
    };
    assert_eq!(segs.iter().filter(|s| s.0 == "root").count(), 2, "root has two segments: {segs:?}");
    let mut rng = vmfs_rescue::forge::vmdk::SplitMix64::new(23, 5);
    let root_files: Files = vec![
        ("/big across both segments.bin".into(), rng.bytes(13 << 20)),
        ("/etc/hostname".into(), b"guest\n".to_vec()),
        ("/home/user/Dokumente/Übersicht.txt".into(), "Grüße\n".repeat(1000).into_bytes()),
    ];
    let mut data_files: Files = (0..30).map(|i| (format!("/db/table{i:02}.dat"), rng.bytes(1000 + i * 7919))).collect();
    data_files.push(("/readme".into(), b"data LV\n".to_vec()));
    let lvs = [("root", 20u64 << 20, &root_files), ("data", 8 << 20, &data_files)];
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    for (name, size, files) in lvs {
        let bytes = ext4_image(dir.path(), name, size, files);
        for (_, le, a, b) in segs.iter().filter(|s| s.0 == name) {
            let (from, len) = ((le * extent) as usize, ((b - a + 1) * extent) as usize);
            f.write_all_at(&bytes[from..from + len], PART_START + pe_start + a * extent).unwrap();
        }
    }
    drop(f);

    // The library: partition 1 is the PV, LVs follow in name order as 2 and 3.
    let disk: Source = vmfs_rescue::block::open_path(&img).unwrap();
    let g = guest::open_disk(&disk).unwrap();
    let descr: Vec<(u32, &str)> = g.volumes.iter().map(|v| (v.index, v.describe.as_str())).collect();
    assert_eq!(g.volumes.len(), 3, "{descr:?}");
    assert_eq!(g.volumes[1].describe, format!("LVM {vg}/data (linear)"));
    assert_eq!(g.volumes[2].describe, format!("LVM {vg}/root (linear)"));
    assert!(g.notes.is_empty(), "{:?}", g.notes);
    assert!(guest::open_fs(&g.volumes[0].source).is_err(), "the PV itself is no file system");
    let mut n = 0;
    for (v, files) in [(&g.volumes[1], &data_files), (&g.volumes[2], &root_files)] {
        assert_eq!(v.source.len(), if files.len() > 3 { 8 << 20 } else { 20 << 20 });
        let fs = guest::open_fs(&v.source).unwrap();
        for (p, d) in files.iter() {
            let e = guest::lookup(&*fs, p).unwrap_or_else(|e| panic!("{}: {p}: {e}", v.describe));
            assert_eq!(e.kind, Kind::File);
            let src = fs.open(&e, None).unwrap();
            assert_eq!(sha(&*src), hex(&Sha256::digest(d)), "{}: {p}", v.describe);
            assert!(src.unreadable(0..src.len()).is_empty());
            n += 1;
        }
    }

    // The same disk as a streamOptimized VMDK: the LVs open through the virtual-disk engine.
    let vmdk = dir.path().join("lvm.vmdk");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized"])
        .arg(&img)
        .arg(&vmdk));
    let vdisk: Source = Arc::new(vdisk::open(&LocalFiles, &vdisk::files::local_path(&vmdk)).unwrap());
    let g = guest::open_disk(&vdisk).unwrap();
    assert_eq!(g.volumes.len(), 3);
    let fs = guest::open_fs(&g.volumes[2].source).unwrap();
    for (p, d) in root_files.iter() {
        let e = guest::lookup(&*fs, p).unwrap();
        assert_eq!(sha(&*fs.open(&e, None).unwrap()), hex(&Sha256::digest(d)), "VMDK: {p}");
        n += 1;
    }

    // The CLI: `guest ls` lists the LVs; ls and cat reach their files.
    let bin = env!("CARGO_BIN_EXE_vmfs-rescue");
    let ls = run(Command::new(bin).args(["guest", "ls"]).arg(&img));
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains(&format!("LVM {vg}/root (linear)")) && ls.contains("ext4"), "{ls}");
    let ls = run(Command::new(bin).args(["guest", "ls", "-R", "--part", "2"]).arg(&img));
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains("/db/table29.dat"), "{ls}");
    for (p, d) in &root_files {
        let o = run(Command::new(bin).args(["guest", "cat", "--part", "3", "--guest-path", p]).arg(&img));
        assert!(o.stdout == *d, "guest cat {p}");
        n += 1;
    }
    eprintln!("LVM2: {n} file reads byte-exact over 2 LVs (3 segments) in {:?}", t.elapsed());
}
