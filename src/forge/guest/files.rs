//! The guest files: what a small Linux or Windows server holds (host name, configuration, a
//! user's report, binary data with real magic numbers, a sparse file on ext4, UTF-8 names),
//! all derived from the seed so every run writes the same bytes.

use super::FsKind;
use crate::forge::vmdk::SplitMix64;
use std::fmt::Write as _;

/// A file to place in the guest: path (from the root, `/`-separated) and content. `holes`
/// lists byte ranges that are left unwritten in the staging copy (ext4 keeps them as holes).
#[derive(Clone, Debug)]
pub struct GenFile {
    /// Absolute guest path.
    pub path: String,
    /// Full content (zeros inside holes).
    pub data: Vec<u8>,
    /// Ranges never written (holes), sorted.
    pub holes: Vec<std::ops::Range<usize>>,
}

impl GenFile {
    fn new(path: &str, data: Vec<u8>) -> Self {
        Self { path: path.to_string(), data, holes: Vec::new() }
    }
}

/// The file set for a file system of `fs_len` bytes.
pub fn guest_files(fs: FsKind, fs_len: u64, hostname: &str, seed: u64) -> Vec<GenFile> {
    let mut g = SplitMix64::new(seed, 0x6669_6c65);
    // Binary data takes at most a quarter of the file system, 64 KiB..6 MiB in all.
    let budget = (fs_len / 4).clamp(64 << 10, 6 << 20) as usize;
    let db = binary(&mut g, b"SQLite format 3\0", budget * 2 / 5);
    let archive = binary(&mut g, &[0x1F, 0x8B, 0x08, 0x00], budget / 2);
    let report = report(&mut g, hostname);
    let note = "Не забыть: продлить сертификат до пятницы.\nÜberprüfung der Sicherung: OK ✓\n".as_bytes().to_vec();
    match fs {
        FsKind::Ext4 => {
            let mut sparse = GenFile::new("/var/lib/vm/disk-cache.img", vec![0u8; 1 << 20]);
            let head = g.bytes(64 << 10);
            let tail = g.bytes(32 << 10);
            sparse.data[..head.len()].copy_from_slice(&head);
            let at = sparse.data.len() - tail.len();
            sparse.data[at..].copy_from_slice(&tail);
            sparse.holes.push(head.len()..at);
            vec![
                GenFile::new("/etc/hostname", format!("{hostname}\n").into_bytes()),
                GenFile::new("/etc/fstab", fstab(seed).into_bytes()),
                GenFile::new("/etc/os-release", OS_RELEASE.as_bytes().to_vec()),
                GenFile::new("/home/admin/report.txt", report),
                GenFile::new("/home/admin/.bash_history", b"sudo apt update\nsystemctl status nginx\ndf -h\n".to_vec()),
                GenFile::new("/home/admin/Документы/заметка.txt", note),
                GenFile::new("/home/admin/empty.txt", Vec::new()),
                GenFile::new("/var/lib/app/inventory.db", db),
                GenFile::new("/srv/backup/2023/site-backup.tar.gz", archive),
                sparse,
            ]
        }
        FsKind::Fat32 | FsKind::Ntfs => {
            let hosts = format!("127.0.0.1       localhost\r\n10.0.0.{}       {hostname}\r\n", 2 + g.below(200));
            let report = String::from_utf8_lossy(&report).replace('\n', "\r\n").into_bytes();
            let nested = fs == FsKind::Fat32;
            let p = |dir: &str, name: &str| if nested { format!("{dir}/{name}") } else { format!("/{name}") };
            vec![
                GenFile::new(&p("/Windows/System32/drivers/etc", "hosts"), hosts.into_bytes()),
                GenFile::new(&p("/Users/Administrator/Documents", "report.txt"), report),
                GenFile::new(&p("/Users/Administrator/Documents", "Заметка über Sicherung.txt"), note),
                GenFile::new(&p("/ProgramData/App", "inventory.db"), db),
                GenFile::new(&p("/Backup", "site-backup.tar.gz"), archive),
                GenFile::new(&p("/Users/Administrator/Desktop", "empty.txt"), Vec::new()),
            ]
        }
    }
}

/// Seeded bytes behind a real magic number, with a structured run so it is not all noise.
fn binary(g: &mut SplitMix64, magic: &[u8], len: usize) -> Vec<u8> {
    let mut v = g.bytes(len.max(magic.len()));
    v[..magic.len()].copy_from_slice(magic);
    let run_start = len / 3;
    for (i, b) in v[run_start..run_start + len / 8].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    v
}

fn report(g: &mut SplitMix64, hostname: &str) -> Vec<u8> {
    let mut s = format!("Quarterly storage report for {hostname}\n========================================\n\n");
    for q in 1..=40 {
        let used = 100 + g.below(900);
        let free = 50 + g.below(500);
        let _ = writeln!(s, "volume{q:02}\tused {used} GiB\tfree {free} GiB\tsnapshots {}", g.below(5));
    }
    s.push_str("\nNo incidents reported.\n");
    s.into_bytes()
}

fn fstab(seed: u64) -> String {
    format!(
        "# /etc/fstab: static file system information.\nUUID={:08x}-0000-4000-8000-{:012x} / ext4 errors=remount-ro 0 1\n/swap.img none swap sw 0 0\n",
        seed as u32,
        seed & 0xFFFF_FFFF_FFFF
    )
}

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n";
