//! VHD and VHDX: every corpus image with a known raw sha256, the fuzzed afl5.img refused, the
//! Hyper-V checkpoint without its parent, differential checks against qemu-img on images made
//! here (including differencing disks built from qemu's own images), and damaged copies.

use crate::util::{SourceGuard, corpus, corpus_image};
use crate::vdisk::disk_sha;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use vmfs_rescue::block::BlockSource;
use vmfs_rescue::vdisk::vhdx::ondisk::{Guid, Item, MetadataTable, ParentLocator, VHDX_PARENT_LOCATOR};
use vmfs_rescue::vdisk::{Format, LocalFiles, VirtualDisk, files::local_path, open};

fn open_path(p: &Path) -> VirtualDisk {
    open(&LocalFiles, &local_path(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn have_qemu() -> bool {
    let ok = Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success())
        && Command::new("qemu-io").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: qemu-img/qemu-io not installed");
    }
    ok
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run");
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sha_file(p: &Path) -> String {
    Sha256::digest(std::fs::read(p).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Check one corpus image against its README figures.
fn check_corpus(rel: &str, format: Format, len: u64, sha: &str) {
    let Some(p) = corpus_image(&format!("vdisk/real/{rel}")) else { return };
    let _g = SourceGuard::new(std::slice::from_ref(&p));
    let d = open_path(&p);
    assert_eq!(d.layers[0].format, format, "{rel}");
    assert_eq!(d.len(), len, "{rel}");
    assert!(d.unreadable(0..len).is_empty(), "{rel}: {:?}", d.unreadable(0..len));
    assert_eq!(disk_sha(&d), sha, "{rel}");
}

#[test]
fn corpus_vhds_match_readme() {
    for (rel, len, sha) in [
        (
            "qemu-iotests/d2v-zerofilled.vhd.bz2",
            263454720,
            "1ba076be94a8a64541c25aae8d5a5f8b0da758c3797af597e03acb431ff8d143",
        ),
        (
            "dissect-hypervisor/dynamic.vhd.gz",
            10485760,
            "ecff2ef6615a3cddc6a6885f1c6d9cf13a232697e1dc6575f2c2f01f57247784",
        ),
        (
            "dissect-hypervisor/fixed.vhd.gz",
            10485760,
            "459325ab1fcd1d5ec9854cba790ee26378317cda177ffc1072008a1df88e6463",
        ),
    ] {
        check_corpus(rel, Format::Vhd, len, sha);
    }
}

#[test]
fn corpus_vhdxs_match_readme() {
    for (rel, len, sha) in [
        (
            "dissect-hypervisor/dynamic.vhdx.gz",
            10485760,
            "8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac",
        ),
        (
            "dissect-hypervisor/fixed.vhdx.gz",
            10485760,
            "bc0be4623b15aa84216fb31ba24e3b621ec7f1c72d198c990ac0eced222d9f62",
        ),
        (
            "qemu-iotests/iotest-dynamic-1G.vhdx.bz2",
            1073741824,
            "d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478",
        ),
    ] {
        check_corpus(rel, Format::Vhdx, len, sha);
    }
}

/// The key log test: qemu refuses this file read-only; the README's hash is of the replayed copy.
#[test]
fn corpus_vhdx_dirty_log_is_replayed_in_memory() {
    let rel = "qemu-iotests/iotest-dirtylog-10G-4M.vhdx.bz2";
    check_corpus(rel, Format::Vhdx, 10737418240, "179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f");
    let Some(p) = corpus_image(&format!("vdisk/real/{rel}")) else { return };
    let d = open_path(&p);
    assert!(d.problems.iter().any(|x| x.contains("replayed in memory (the file is unchanged)")), "{:?}", d.problems);
}

/// Virtual PC image: we follow the footer's current size (dissect's reading; qemu uses the CHS
/// geometry, 2 MiB less). The README's dissect sha256 dcb4f171... is that of 136365211648 zero
/// bytes: checked here as "that size, no data, nothing unreadable" instead of hashing 127 GiB.
#[test]
fn corpus_virtualpc_vhd_uses_the_footer_size() {
    let Some(root) = corpus() else { return };
    let p = root.join("vdisk/real/qemu-iotests/virtualpc-dynamic.vhd");
    let _g = SourceGuard::new(std::slice::from_ref(&p));
    let d = open_path(&p);
    assert_eq!(d.len(), 136365211648);
    assert!(d.data_ranges(0..d.len()).is_empty());
    assert!(d.unreadable(0..d.len()).is_empty());
    assert!(
        d.layers[0].variant.contains("CHS 65278/16/255 = 136363130880 bytes (qemu's size)"),
        "{}",
        d.layers[0].variant
    );
    let mut b = vec![0xffu8; 1 << 20];
    d.read_at(d.len() - b.len() as u64, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0));
}

#[test]
fn corpus_afl5_is_refused_fast() {
    let Some(root) = corpus() else { return };
    let p = root.join("vdisk/real/qemu-iotests/afl5.img");
    let t = std::time::Instant::now();
    let e = open(&LocalFiles, &local_path(&p)).err().expect("afl5.img must be rejected");
    assert!(e.to_string().contains("max table entries 0x40000001"), "{e}");
    assert!(t.elapsed().as_secs() < 2);
}

/// The Hyper-V checkpoint whose parent is not in the corpus: it opens, says the parent is
/// missing, and names it.
#[test]
fn corpus_avhdx_without_parent_names_it() {
    let Some(p) = corpus_image("vdisk/real/dissect-hypervisor/differencing.avhdx.gz") else { return };
    let _g = SourceGuard::new(std::slice::from_ref(&p));
    let d = open_path(&p);
    assert_eq!(d.layers.len(), 1);
    assert!(d.problems.iter().any(|x| x.contains("parent of") && x.contains("not found")), "{:?}", d.problems);
    let parent = d.layers[0].parent.as_ref().unwrap();
    assert_eq!(parent.format, Some(Format::Vhdx));
    assert!(parent.id.as_ref().is_some_and(|id| id.len() == 36 && id == &id.to_lowercase()), "{parent:?}");
    let name = "Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx";
    assert!(parent.hints[0].ends_with(name), "{:?}", parent.hints);
    // The CLI says the same in JSON.
    let o = Command::new(env!("CARGO_BIN_EXE_vmfs-rescue")).args(["vdisk", "info", "--json"]).arg(&p).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let names = &v["chain"][0]["parent"]["names"];
    assert!(names[0].as_str().unwrap().ends_with(name), "{v}");
    assert!(v["problems"][0].as_str().unwrap().contains("not found"), "{v}");
}

/// qemu-io writes spread over blocks: whole blocks, partial sectors, the last block.
fn qemu_writes(img: &Path, fmt: &str, size: u64) {
    let last = size / 512 * 512 - 4096;
    let cmds = [
        "write -P 0xaa 0 1M".to_string(),
        "write -P 0x55 3M 512".to_string(),
        "write -P 0x11 5242880 65536".to_string(),
        "write -z 5242880 4096".to_string(),
        format!("write -P 0x77 {last} 4096"),
    ];
    let mut c = Command::new("qemu-io");
    c.args(["-f", fmt]);
    for w in &cmds {
        c.args(["-c", w]);
    }
    run(c.arg(img));
}

/// Our bytes and qemu's, for one image.
fn compare_with_qemu(img: &Path, fmt: &str, dir: &Path) {
    let raw = dir.join("qemu.raw");
    run(Command::new("qemu-img").args(["convert", "-f", fmt, "-O", "raw"]).arg(img).arg(&raw));
    let _g = SourceGuard::new(&[img.to_path_buf()]);
    let d = open_path(img);
    assert_eq!(d.len(), std::fs::metadata(&raw).unwrap().len(), "{}: size", img.display());
    assert_eq!(disk_sha(&d), sha_file(&raw), "{}", img.display());
    assert!(d.problems.is_empty(), "{}: {:?}", img.display(), d.problems);
}

#[test]
fn vhd_matches_qemu() {
    if !have_qemu() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // 10000000 bytes is no CHS size: qemu rounds it up to one (or keeps it with force_size).
    for (opts, size) in [
        ("subformat=dynamic", 64 << 20),
        ("subformat=fixed", 64 << 20),
        ("subformat=dynamic", 10_000_000),
        ("subformat=fixed", 10_000_000),
        ("subformat=dynamic,force_size=on", 10_000_000),
    ] {
        let img = t.path().join("t.vhd");
        let _ = std::fs::remove_file(&img);
        run(Command::new("qemu-img").args(["create", "-q", "-f", "vpc", "-o", opts]).arg(&img).arg(size.to_string()));
        qemu_writes(&img, "vpc", size);
        compare_with_qemu(&img, "vpc", t.path());
    }
}

#[test]
fn vhdx_matches_qemu() {
    if !have_qemu() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    for opts in ["block_size=1M", "block_size=32M", "subformat=fixed", "block_size=8M,subformat=dynamic"] {
        let img = t.path().join("t.vhdx");
        let _ = std::fs::remove_file(&img);
        let size = 72 << 20;
        run(Command::new("qemu-img").args(["create", "-q", "-f", "vhdx", "-o", opts]).arg(&img).arg(size.to_string()));
        qemu_writes(&img, "vhdx", size);
        compare_with_qemu(&img, "vhdx", t.path());
    }
}

/// Ranges qemu reports as allocated in the top image.
fn qemu_allocated(img: &Path, fmt: &str) -> Vec<(u64, u64)> {
    let out = run(Command::new("qemu-img").args(["map", "--output=json", "-f", fmt]).arg(img));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"].as_bool() == Some(true))
        .map(|e| (e["start"].as_u64().unwrap(), e["length"].as_u64().unwrap()))
        .collect()
}

/// What a child over `base` reads as, from qemu's own reading of both: the child's allocated
/// ranges over the base.
fn expected_overlay(base: &Path, child: &Path, fmt: &str, dir: &Path) -> String {
    let (b, c) = (dir.join("base.raw"), dir.join("child.raw"));
    run(Command::new("qemu-img").args(["convert", "-f", fmt, "-O", "raw"]).arg(base).arg(&b));
    run(Command::new("qemu-img").args(["convert", "-f", fmt, "-O", "raw"]).arg(child).arg(&c));
    let (mut out, top) = (std::fs::read(&b).unwrap(), std::fs::read(&c).unwrap());
    for (s, n) in qemu_allocated(child, fmt) {
        let (s, e) = (s as usize, (s + n) as usize);
        out[s..e].copy_from_slice(&top[s..e]);
    }
    Sha256::digest(&out).iter().map(|b| format!("{b:02x}")).collect()
}

fn make(dir: &Path, name: &str, fmt: &str, opts: &str, writes: &[&str]) -> PathBuf {
    let p = dir.join(name);
    run(Command::new("qemu-img").args(["create", "-q", "-f", fmt, "-o", opts]).arg(&p).arg("64M"));
    let mut c = Command::new("qemu-io");
    c.args(["-f", fmt]);
    for w in writes {
        c.args(["-c", w]);
    }
    run(c.arg(&p));
    p
}

/// qemu cannot write differencing VHDX, so a qemu-made dynamic VHDX is turned into one: the
/// file parameters get HasParent and a parent locator item is added (the BAT is the same for
/// both kinds up to the first sector bitmap entry, which qemu left zero). Its fully present
/// blocks must then hide the parent's, and everything else come from it.
#[test]
fn vhdx_differencing_built_from_qemu_images() {
    if !have_qemu() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let o = "block_size=1M";
    let base = make(t.path(), "base.vhdx", "vhdx", o, &["write -P 0xb1 0 4M", "write -P 0xb2 20M 1M"]);
    let child = make(
        t.path(),
        "child.avhdx",
        "vhdx",
        o,
        &["write -P 0xc1 2M 1M", "write -P 0xc2 40M 512k", "write -P 0xc3 20M 4k"],
    );
    let want = expected_overlay(&base, &child, "vhdx", t.path());
    let base_id = open_path(&base).layers[0].id.clone().unwrap();

    let mut b = std::fs::read(&child).unwrap();
    // Metadata region offset from the region table (entries from 192 KiB + 16).
    let meta_at = (0..2)
        .map(|i| 0x30000 + 16 + 32 * i)
        .find(|&o| b[o..o + 4] == [0x06, 0xa2, 0x7c, 0x8b])
        .map(|o| u64::from_le_bytes(b[o + 16..o + 24].try_into().unwrap()) as usize)
        .unwrap();
    let mut table = MetadataTable::parse(&b[meta_at..meta_at + 65536]).unwrap();
    let fp = table.items.iter().find(|i| i.id.text() == "caa16737-fa36-4d43-b3b6-33f0aa44e76b").unwrap();
    b[meta_at + fp.offset as usize + 4] |= 2;
    let free = table.items.iter().map(|i| i.offset + i.length).max().unwrap().next_multiple_of(4096);
    let loc = ParentLocator {
        kind: VHDX_PARENT_LOCATOR,
        entries: vec![
            ("parent_linkage".into(), format!("{{{}}}", base_id.to_uppercase())),
            ("relative_path".into(), ".\\base.vhdx".into()),
            ("absolute_win32_path".into(), "C:\\nowhere\\base.vhdx".into()),
        ],
    }
    .encode();
    b[meta_at + free as usize..meta_at + free as usize + loc.len()].copy_from_slice(&loc);
    let id = Guid::parse_text("a8d35f2d-b30b-454d-abf7-d3d84834ab0c").unwrap();
    table.items.push(Item { id, offset: free, length: loc.len() as u32, user: false, required: true });
    b[meta_at..meta_at + 65536].copy_from_slice(&table.encode());
    std::fs::write(&child, &b).unwrap();

    let d = open_path(&child);
    assert_eq!(d.layers.len(), 2, "{:?}", d.problems);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.layers[0].parent.as_ref().unwrap().id.as_deref(), Some(base_id.as_str()));
    assert_eq!(disk_sha(&d), want);
}

/// A differencing VHD from qemu's dynamic ones: footer (both copies) to type 4, the header's
/// parent id set to the base's footer id, and a W2ru locator appended before the end footer.
/// qemu sets every bit of an allocated block's bitmap, so its allocated blocks hide the base.
#[test]
fn vhd_differencing_built_from_qemu_images() {
    if !have_qemu() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let o = "subformat=dynamic";
    let base = make(t.path(), "base.vhd", "vpc", o, &["write -P 0xb1 0 4M", "write -P 0xb2 20M 1M"]);
    let child = make(t.path(), "child.vhd", "vpc", o, &["write -P 0xc1 2M 1M", "write -P 0xc3 20M 4k"]);
    let want = expected_overlay(&base, &child, "vpc", t.path());
    let base_footer = std::fs::read(&base).unwrap()[..512].to_vec();

    let mut b = std::fs::read(&child).unwrap();
    let checksum = |s: &mut [u8], field: usize| {
        s[field..field + 4].fill(0);
        let sum = s.iter().fold(0u32, |a, &x| a.wrapping_add(u32::from(x)));
        s[field..field + 4].copy_from_slice(&(!sum).to_be_bytes());
    };
    let mut footer = b[..512].to_vec();
    footer[0x3c..0x40].copy_from_slice(&4u32.to_be_bytes());
    checksum(&mut footer, 0x40);
    b.truncate(b.len() - 512);
    let loc_at = b.len() as u64;
    let loc: Vec<u8> = ".\\base.vhd".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    b.extend_from_slice(&loc);
    b.resize(b.len().next_multiple_of(512), 0);
    b.extend_from_slice(&footer);
    b[..512].copy_from_slice(&footer);
    let h = &mut b[512..1536];
    h[0x28..0x38].copy_from_slice(&base_footer[0x44..0x54]);
    h[0x240..0x244].copy_from_slice(b"W2ru");
    h[0x244..0x248].copy_from_slice(&1u32.to_be_bytes());
    h[0x248..0x24c].copy_from_slice(&(loc.len() as u32).to_be_bytes());
    h[0x250..0x258].copy_from_slice(&loc_at.to_be_bytes());
    checksum(h, 0x24);
    std::fs::write(&child, &b).unwrap();

    let d = open_path(&child);
    assert_eq!(d.layers.len(), 2, "{:?}", d.problems);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert!(d.layers[0].variant.starts_with("differencing"));
    assert_eq!(disk_sha(&d), want);
}

/// Damaged copies of qemu images: they open and map the damage, or fail with a named structure.
#[test]
fn damaged_vhd_and_vhdx_fail_cleanly() {
    if !have_qemu() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let w = ["write -P 0xaa 0 4M"];
    let vhd = std::fs::read(make(t.path(), "d.vhd", "vpc", "subformat=dynamic", &w)).unwrap();
    let vhdx = std::fs::read(make(t.path(), "d.vhdx", "vhdx", "block_size=1M", &w)).unwrap();
    let try_open = |name: &str, b: &[u8]| {
        let p = t.path().join(name);
        std::fs::write(&p, b).unwrap();
        open(&LocalFiles, &local_path(&p))
    };

    // VHD, end footer checksum broken: the copy at 0 is used.
    let mut b = vhd.clone();
    let n = b.len();
    b[n - 512 + 0x30] ^= 0x10;
    let d = try_open("x1.vhd", &b).unwrap();
    assert!(d.problems.iter().any(|p| p.contains("used the copy at offset 0")), "{:?}", d.problems);
    assert!(d.len() >= 64 << 20, "qemu rounds up to a CHS size");
    // VHD cut in the middle of its data: the missing part is unreadable, the rest reads.
    let mut b = vhd.clone();
    b.truncate(b.len() / 2);
    let d = try_open("x2.vhd", &b).unwrap();
    let bad = d.unreadable(0..d.len());
    assert!(!bad.is_empty() && bad[0].start > 0, "{bad:?}");
    let mut s = vec![0u8; 4096];
    d.read_at(0, &mut s).unwrap();
    assert!(s.iter().all(|&x| x == 0xaa));
    // VHD BAT entry 0 pointing far past the end of the file.
    let mut b = vhd.clone();
    b[1536..1540].copy_from_slice(&0x0fff_0000u32.to_be_bytes());
    let d = try_open("x3.vhd", &b).unwrap();
    assert_eq!(d.unreadable(0..2 << 20), vec![0..2 << 20]);

    // VHDX, both headers broken: refused, naming the header.
    let mut b = vhdx.clone();
    b[0x10000 + 0x200] ^= 1;
    b[0x20000 + 0x200] ^= 1;
    let e = try_open("x4.vhdx", &b).err().unwrap().to_string();
    assert!(e.contains("VHDX header at offset 0x10000"), "{e}");
    // VHDX cut after its first block: the rest is unreadable.
    let mut b = vhdx.clone();
    b.truncate(b.len() - (3 << 20) + 4096);
    let d = try_open("x5.vhdx", &b).unwrap();
    assert!(!d.unreadable(0..d.len()).is_empty());
    assert!(d.problems.iter().any(|p| p.contains("past the end of the file")), "{:?}", d.problems);
    // VHDX cut inside its headers.
    let e = try_open("x6.vhdx", &vhdx[..0x18000]).err().unwrap().to_string();
    assert!(e.contains("VHDX"), "{e}");
}
