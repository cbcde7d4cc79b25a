//! Every TUI screen drawn at 80x24 and 160x48 (ratatui `TestBackend`, insta snapshots), fed by
//! a fake hardware tree and a forged datastore with a deleted VM. The state comes from the real
//! worker (open, scan, rebuild, write), driven by keys as the admin would press them; the
//! recovered files are checked against the forge's ground truth.

use super::forge_scenarios::forge;
use super::util::{SourceGuard, sha256_file};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use vmfs_rescue::hw::{Controller, Disk, FsKind, Inventory, Partition, Roots};
use vmfs_rescue::tui::app::{App, JobStatus, Screen};
use vmfs_rescue::tui::event::{Command, Event, JobEvent};
use vmfs_rescue::tui::theme::Theme;
use vmfs_rescue::tui::worker::{self, Worker};
use vmfs_rescue::tui::{handle, hwview, view};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

/// The UI state with the real worker behind it, without a terminal.
struct Ui {
    app: App,
    worker: Worker,
    rx: Receiver<Event>,
}

fn roots(empty: &Path) -> Roots {
    Roots {
        sys: empty.join("sys"),
        dev: empty.join("dev"),
        udev_data: empty.join("udev"),
        run: empty.join("run"),
        boot_device: None,
        pci_ids: vec![],
    }
}

impl Ui {
    fn new(sources: Vec<PathBuf>, state_dir: PathBuf, fake_root: &Path, theme: Theme) -> Self {
        let (tx, rx) = channel();
        let opts = worker::Options {
            sources,
            state_dir: state_dir.clone(),
            state_auto: false,
            mount_base: fake_root.join("mnt"),
            roots: roots(fake_root),
            ports: worker::ExportPorts { http: 0, https: 0, nbd: 0 },
        };
        let worker = Worker::new(opts, tx);
        Self { app: App::new(theme, state_dir), worker, rx }
    }

    fn submit(&mut self, cmds: Vec<Command>) {
        for c in cmds {
            self.worker.submit(c);
        }
    }

    /// Handle worker answers until `done` holds and nothing more arrives for a moment.
    fn settle(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match self.rx.recv_timeout(Duration::from_millis(400)) {
                Ok(ev) => {
                    let cmds = handle(&mut self.app, ev);
                    self.submit(cmds);
                }
                Err(_) if done(&self.app) => return,
                Err(_) => {}
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; log: {:?}", self.app.log);
        }
    }

    fn key(&mut self, code: KeyCode) {
        let cmds = handle(&mut self.app, Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        self.submit(cmds);
    }

    fn keys(&mut self, text: &str) {
        for c in text.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    /// Move the Browse cursor to the row named `name`.
    fn select(&mut self, name: &str) {
        let i = self.app.browse.rows.iter().position(|r| r.name == name);
        let i = i.unwrap_or_else(|| panic!("no row {name} in {:?}", self.app.browse.rows));
        self.key(KeyCode::Home);
        for _ in 0..i {
            self.key(KeyCode::Down);
        }
    }

    fn snap(&mut self, name: &str) {
        // Answers still on their way (a preview following the cursor) are part of the screen.
        self.settle("the preview", |a| {
            a.browse.preview.as_ref().is_none_or(|p| p.lines.first().is_none_or(|l| l != "reading..."))
        });
        for (w, h) in SIZES {
            self.snap_at(name, w, h);
        }
    }

    fn snap_at(&self, name: &str, w: u16, h: u16) {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| view::draw(f, &self.app)).unwrap();
        insta::with_settings!({
            filters => vec![
                (r"/tmp/[^ │|]*", "[TMP]"),
                (r"\d+(\.\d)? [KMGT]?i?B free", "[FREE] free"),
                (r"speed: [^│|]*", "speed: [SPEED]"),
            ],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(format!("tui_{name}_{w}x{h}"), t.backend());
        });
    }
}

fn color() -> Theme {
    Theme { mono: false, ascii: false }
}

/// A server's controllers: a MegaRAID with two disks, AHCI with one, the USB stick the system
/// booted from, and an HBA with nothing attached.
fn fake_inventory() -> Inventory {
    let disk = |name: &str, size: u64, transport: &str, model: &str| Disk {
        name: name.into(),
        devnode: PathBuf::from(format!("/dev/{name}")),
        dev: "8:0".into(),
        vendor: Some("AVAGO".into()),
        model: Some(model.into()),
        serial: Some(format!("SN-{name}")),
        wwn: Some("0x600605b00d6f8a10".into()),
        size,
        logical_sector: 512,
        physical_sector: 4096,
        transport: transport.into(),
        removable: false,
        read_only: true,
        rotational: Some(true),
        boot_medium: false,
        fs: None,
        label: None,
        partitions: vec![],
    };
    let mut sda = disk("sda", 1_199_966_446_592, "sas", "MR9361-8i");
    sda.partitions.push(Partition {
        name: "sda1".into(),
        devnode: "/dev/sda1".into(),
        dev: "8:1".into(),
        start: 1 << 20,
        size: 1_199_965_000_000,
        read_only: true,
        fs: Some(FsKind::VmwareLvm),
        label: None,
    });
    let sdb = disk("sdb", 599_550_590_976, "sas", "MR9361-8i");
    let mut sdc = disk("sdc", 2_000_398_934_016, "sata", "WDC WD20EFRX");
    sdc.vendor = None;
    let mut usb = disk("sdd", 16_008_609_792, "usb", "Flash Drive");
    usb.boot_medium = true;
    usb.removable = true;
    usb.read_only = false;
    usb.partitions.push(Partition {
        name: "sdd1".into(),
        devnode: "/dev/sdd1".into(),
        dev: "8:49".into(),
        start: 1 << 20,
        size: 67_108_864,
        read_only: false,
        fs: Some(FsKind::Vfat),
        label: Some("VMFSRESCUE".into()),
    });
    let ctl = |id: &str, vendor: &str, model: &str, driver: &str, kind: &str, disks: Vec<Disk>| Controller {
        id: id.into(),
        vendor: vendor.into(),
        model: model.into(),
        class: String::new(),
        driver: Some(driver.into()),
        kind: kind.into(),
        hosts: vec!["host0".into()],
        disks,
    };
    Inventory {
        controllers: vec![
            ctl("0000:03:00.0", "Broadcom / LSI", "MegaRAID SAS-3 3108", "megaraid_sas", "RAID", vec![sda, sdb]),
            ctl("0000:00:17.0", "Intel Corporation", "C620 SATA AHCI", "ahci", "SATA", vec![sdc]),
            ctl("0000:00:14.0", "Intel Corporation", "C620 USB 3.0 xHCI", "xhci_hcd", "USB", vec![usb]),
            ctl("0000:5e:00.0", "Broadcom / LSI", "SAS3008", "mpt3sas", "SAS/SCSI", vec![]),
        ],
        notes: vec![],
    }
}

#[test]
fn hardware_screen() {
    let dir = tempfile::tempdir().unwrap();
    let mut ui = Ui::new(vec![], dir.path().join("state"), dir.path(), color());
    let inv = fake_inventory();
    let rows = hwview::rows(&inv, &[PathBuf::from("/dev/sda"), PathBuf::from("/dev/sdb")]);
    handle(&mut ui.app, Event::Job(JobEvent::Hardware(rows)));
    ui.key(KeyCode::Char('1'));
    ui.key(KeyCode::Down);
    assert_eq!(ui.app.screen, Screen::Hardware);
    ui.snap("hardware");
    ui.key(KeyCode::Char('?'));
    ui.snap("hardware_help");
}

#[test]
fn no_sources_screens() {
    let dir = tempfile::tempdir().unwrap();
    let mut ui = Ui::new(vec![], dir.path().join("state"), dir.path(), color());
    ui.submit(vmfs_rescue::tui::startup());
    ui.settle("an empty inventory", |a| a.hw_ready && a.busy.is_none());
    ui.snap("sources_none");
    ui.key(KeyCode::Char('1'));
    ui.snap("hardware_none");
}

/// The whole path of an admin: sources, browse, scan, the deleted VM, recover it, check it.
#[test]
fn screens_from_open_to_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), "demo", 6, "2G", &["ds.img"], true);
    let _guard = SourceGuard::new(&images);
    let mut ui = Ui::new(images.clone(), dir.path().join("state"), dir.path(), color());
    ui.submit(vmfs_rescue::tui::startup());
    ui.settle("the volumes", |a| a.busy.is_none() && a.volumes.iter().any(|v| v.browse_path.is_some()));
    ui.snap("sources");

    ui.key(KeyCode::Enter);
    assert_eq!(ui.app.screen, Screen::Browse);
    ui.snap("browse_volume");
    ui.select("web01");
    ui.key(KeyCode::Enter);
    ui.snap("browse_vm");
    ui.select("web01.vmx");
    ui.key(KeyCode::Enter);
    ui.settle("the preview", |a| a.browse.preview.as_ref().is_some_and(|p| p.lines.len() > 3));
    ui.snap("preview");
    ui.key(KeyCode::Esc);
    ui.key(KeyCode::Backspace);

    // The deep scan, then the deleted VM comes into view.
    ui.key(KeyCode::Char('4'));
    ui.snap("scan_idle");
    ui.key(KeyCode::Char('s'));
    ui.settle("the scan and the rebuild", |a| a.scan.status == JobStatus::Done && a.from_scan && a.busy.is_none());
    ui.snap("scan_done");
    ui.key(KeyCode::Char('3'));
    assert!(ui.app.browse.rows.iter().any(|r| r.name == "db01"), "{:?}", ui.app.browse.rows);
    ui.select("db01");
    ui.key(KeyCode::Enter);
    ui.snap("browse_deleted_vm");
    ui.key(KeyCode::Backspace);
    ui.select("db01");
    ui.key(KeyCode::Char(' '));
    ui.key(KeyCode::Char('l'));
    ui.snap("browse_marked_log");
    ui.key(KeyCode::Char('l'));

    // Recover the marked VM to a folder typed in.
    let out = dir.path().join("out");
    ui.key(KeyCode::Char('r'));
    assert_eq!(ui.app.screen, Screen::Recover);
    ui.key(KeyCode::Char('t'));
    for _ in 0..4 {
        ui.key(KeyCode::Backspace);
    }
    ui.keys(&out.display().to_string());
    ui.snap("recover_typing");
    ui.key(KeyCode::Enter);
    ui.settle("the destination", |a| a.recover.target.is_some());
    ui.snap("recover_ready");
    ui.key(KeyCode::Char('s'));
    ui.settle("the recovery", |a| a.recover.status == JobStatus::Done);
    ui.snap("recover_done");

    // What the forge deleted comes back byte for byte; what it cannot is reported.
    let got = out.join(worker::OUTPUT_DIR).join("volumes/datastore6/db01");
    let want = truth.file("/db01/db01-flat.vmdk").unwrap().sha256.clone().unwrap();
    assert_eq!(sha256_file(&got.join("db01-flat.vmdk")), want);
    assert!(got.join("db01.vmx").is_file() && got.join("db01.vmdk").is_file());
    let report = std::fs::read_to_string(out.join(worker::OUTPUT_DIR).join("report.json")).unwrap();
    assert!(report.contains("db01-flat.vmdk"));
    // Only what was marked was written.
    assert!(!out.join(worker::OUTPUT_DIR).join("volumes/datastore6/web01").exists());

    // Quitting asks while a job runs; a finished one does not hold it up.
    ui.app.scan.status = JobStatus::Running;
    ui.key(KeyCode::Char('q'));
    ui.snap("quit_confirm");
    ui.key(KeyCode::Char('n'));
    assert!(!ui.app.quit);
    ui.app.scan.status = JobStatus::Done;
    ui.key(KeyCode::Char('q'));
    assert!(ui.app.quit);

    // The next session on the same disks uses the finished scan without reading them again.
    let mut again = Ui::new(images, dir.path().join("state"), dir.path(), color());
    again.submit(vmfs_rescue::tui::startup());
    again.settle("the earlier scan", |a| a.from_scan && a.busy.is_none());
    assert_eq!(again.app.scan.status, JobStatus::Done);
    assert!(again.app.items.iter().any(|i| i.out_path().ends_with("db01/db01-flat.vmdk")));
}

/// A serial console (TERM=vt100): no colours, ASCII borders.
#[test]
fn serial_console_screens() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = forge(dir.path(), "demo", 5, "2G", &["ds.img"], true);
    let mut ui = Ui::new(images, dir.path().join("state"), dir.path(), Theme { mono: true, ascii: true });
    ui.submit(vmfs_rescue::tui::startup());
    ui.settle("the volumes", |a| a.busy.is_none() && a.volumes.iter().any(|v| v.browse_path.is_some()));
    ui.key(KeyCode::Enter);
    ui.snap_at("browse_serial", 80, 24);
    ui.key(KeyCode::Char('?'));
    ui.snap_at("browse_serial_help", 80, 24);
    // Nothing drawn uses a character outside ASCII.
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| view::draw(f, &ui.app)).unwrap();
    let text = t.backend().to_string();
    assert!(text.is_ascii(), "{text}");
}

/// A fake network interface in the fake sysfs (a name no real host has: no real addresses).
fn fake_nic(root: &Path) {
    let p = root.join("sys/class/net/vmnic0");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("carrier"), "1\n").unwrap();
    std::fs::write(p.join("speed"), "10000\n").unwrap();
    std::fs::write(p.join("address"), "00:50:56:aa:bb:cc\n").unwrap();
    let drv = root.join("sys/bus/pci/drivers/ixgbe");
    std::fs::create_dir_all(&drv).unwrap();
    std::fs::create_dir_all(p.join("device")).unwrap();
    std::os::unix::fs::symlink(&drv, p.join("device/driver")).unwrap();
}

/// The value after `key` in an export's lines ("secret: X" → X).
fn export_line(lines: &[String], key: &str) -> String {
    let l = lines.iter().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in {lines:?}"));
    l[key.len()..].split_whitespace().next().unwrap().to_string()
}

/// The Network screen: the interfaces, then both exports started from the keys and read by real
/// clients (curl, qemu-img) with the URLs the screen shows; contents equal the forge's truth.
#[test]
fn network_screen_exports_to_real_clients() {
    use vmfs_rescue::tui::app::ExportState;
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), "healthy", 6, "2G", &["ds.img"], true);
    let _guard = SourceGuard::new(&images);
    fake_nic(dir.path());
    let mut ui = Ui::new(images, dir.path().join("state"), dir.path(), color());
    ui.submit(vmfs_rescue::tui::startup());
    ui.settle("the volumes", |a| a.busy.is_none() && a.volumes.iter().any(|v| v.browse_path.is_some()));
    ui.key(KeyCode::Char('6'));
    ui.settle("the interfaces", |a| a.net.ready);
    assert_eq!(ui.app.screen, Screen::Network);
    assert_eq!(ui.app.net.nics[0].name, "vmnic0");
    // Not the rescue image: no address is set here.
    ui.key(KeyCode::Char('d'));
    assert!(
        matches!(&ui.app.overlay, Some(vmfs_rescue::tui::app::Overlay::Message(m)) if m.contains("not the rescue image"))
    );
    ui.key(KeyCode::Esc);
    ui.snap("network_off");

    ui.key(KeyCode::Char('n'));
    ui.key(KeyCode::Char('h'));
    ui.settle("the exports", |a| {
        !matches!(a.net.nbd, ExportState::Starting) && !matches!(a.net.web, ExportState::Starting)
    });
    let ExportState::On(nbd) = ui.app.net.nbd.clone() else { panic!("NBD: {:?}", ui.app.net.nbd) };
    let ExportState::On(web) = ui.app.net.web.clone() else { panic!("web: {:?}", ui.app.net.web) };
    let secret = export_line(&web, "secret: ");
    assert_eq!(secret, export_line(&nbd, "secret: "));
    let filters = |s: &str| s.replace(&secret, "[SECRET]");
    for (w, h) in SIZES {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| view::draw(f, &ui.app)).unwrap();
        insta::with_settings!({
            filters => vec![(r":\d{4,5}/", ":[PORT]/"), (r"/tmp/[^ │|]*", "[TMP]")],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(format!("tui_network_on_{w}x{h}"), filters(&t.backend().to_string()));
        });
    }

    // NBD: qemu-img pulls the snapshot chain through the URL shown.
    let d = truth.disks.iter().find(|d| d.chain.len() > 1).expect("a disk with a snapshot");
    let uri = nbd
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .find(|u| u.starts_with("nbd://") && u.ends_with(&d.chain[0].replace('/', "%2F").replace("%2F", "/")))
        .unwrap_or_else(|| panic!("no URL for {} in {nbd:?}", d.chain[0]))
        .replace("THIS-HOST", "127.0.0.1");
    let out = dir.path().join("pulled.raw");
    let st =
        std::process::Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "raw", &uri]).arg(&out).status();
    assert!(st.unwrap().success(), "qemu-img convert {uri}");
    assert_eq!(sha256_file(&out), d.sha256, "{uri}");

    // Web: curl with the bearer token; without it, 401.
    let browse = export_line(&web, "browse: ");
    let base = browse.split("/?").next().unwrap().replace("THIS-HOST", "127.0.0.1");
    let base = if base.contains("://") { base } else { format!("http://127.0.0.1{base}") };
    let f = truth.files.iter().filter(|f| f.kind == "file" && f.sha256.is_some()).max_by_key(|f| f.size).unwrap();
    let url = format!("{base}/files/{}{}", truth.label, f.path);
    let got = dir.path().join("got.bin");
    let st = std::process::Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {secret}"), "-o"])
        .arg(&got)
        .arg(&url)
        .status();
    assert!(st.unwrap().success(), "curl {url}");
    assert_eq!(Some(sha256_file(&got)), f.sha256, "{url}");
    let code = std::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url]).output();
    assert_eq!(String::from_utf8_lossy(&code.unwrap().stdout), "401");

    // Off again.
    ui.key(KeyCode::Char('n'));
    ui.key(KeyCode::Char('h'));
    ui.settle("the exports' end", |a| a.net.nbd == ExportState::Off && a.net.web == ExportState::Off);
    let out2 = std::process::Command::new("nbdinfo").arg("--size").arg(&uri).output().unwrap();
    assert!(!out2.status.success(), "the NBD export still answers after n");
}

/// Mark the FAT directory entry of `short` (11 bytes, `NAME    EXT`, a regular file) deleted
/// wherever it is in `img`, with the long-name entries before it: the guest now holds a deleted
/// file, as if the guest had removed it.
fn delete_fat_entry(img: &Path, short: &[u8; 11]) -> usize {
    let mut b = std::fs::read(img).unwrap();
    let mut n = 0;
    let mut at = 0;
    while let Some(i) = b[at..].windows(11).position(|w| w == short) {
        let e = at + i;
        at = e + 11;
        // A directory entry: 32-byte aligned in its cluster, attribute "archive" or none.
        if e % 32 != 0 || !matches!(b[e + 11], 0x00 | 0x20) {
            continue;
        }
        b[e] = 0xE5;
        let mut l = e;
        while l >= 32 && b[l - 32 + 11] == 0x0F {
            l -= 32;
            b[l] = 0xE5;
        }
        n += 1;
    }
    std::fs::write(img, b).unwrap();
    n
}

impl Ui {
    /// Move the guest view's cursor to the live entry `name`.
    fn guest_select(&mut self, name: &str) {
        let g = self.app.guest.as_ref().unwrap();
        let i = g.rows.iter().position(|e| e.name == name && !e.deleted);
        let i = i.unwrap_or_else(|| panic!("no guest row {name} in {:?}", g.rows));
        self.key(KeyCode::Home);
        for _ in 0..i {
            self.key(KeyCode::Down);
        }
    }

    fn guest_listed(&mut self, what: &str) {
        self.settle(what, |a| a.guest.as_ref().is_some_and(|g| !g.opening && !g.listing));
    }

    fn guest_enter(&mut self, name: &str) {
        self.guest_select(name);
        self.key(KeyCode::Enter);
        self.guest_listed(name);
    }
}

/// Browse's guest view on a forged datastore: the FAT32 guest of a VM under a snapshot (its
/// chain read in place), its volumes, a folder with a file the guest deleted, a preview; marked
/// files and folders extracted to the Recover screen's destination on the worker, byte-exact
/// against the forge's truth, with the manifest.
#[test]
fn guest_view_from_browse_to_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), "healthy", 6, "3G", &["ds.img"], true);
    let disk = truth.disks.iter().find(|d| d.guest_fs == "fat32").expect("a FAT32 guest").clone();
    assert!(delete_fat_entry(&images[0], b"REPORT  TXT") > 0, "the report's entry is on the datastore");
    let _guard = SourceGuard::new(&images);
    let mut ui = Ui::new(images.clone(), dir.path().join("state"), dir.path(), color());
    ui.submit(vmfs_rescue::tui::startup());
    ui.settle("the volumes", |a| a.busy.is_none() && a.volumes.iter().any(|v| v.browse_path.is_some()));
    ui.key(KeyCode::Enter);
    ui.select(&disk.vm);
    ui.key(KeyCode::Enter);
    let leaf = disk.chain[0].rsplit('/').next().unwrap();
    ui.select(leaf);
    ui.key(KeyCode::Char('g'));
    assert!(ui.app.guest.is_some(), "g opens the guest view");
    ui.settle("the guest disk", |a| a.guest.as_ref().is_some_and(|g| !g.opening));
    let g = ui.app.guest.as_ref().unwrap();
    assert!(g.error.is_none(), "{:?}", g.error);
    assert!(g.volumes.iter().any(|v| v.fs == "FAT32"), "{:?}", g.volumes);
    let fat = g.volumes.iter().position(|v| v.fs == "FAT32").unwrap();
    ui.snap("guest_volumes");

    // Into the volume and down to the folder with the deleted report.
    ui.key(KeyCode::Home);
    for _ in 0..fat {
        ui.key(KeyCode::Down);
    }
    ui.key(KeyCode::Enter);
    ui.guest_listed("the root");
    ui.guest_enter("Users");
    ui.guest_enter("Administrator");
    ui.guest_enter("Documents");
    let g = ui.app.guest.as_ref().unwrap();
    let gone = g.rows.iter().find(|e| e.deleted).unwrap_or_else(|| panic!("a deleted entry: {:?}", g.rows));
    // FAT keeps no first letter of a deleted 8.3 name.
    assert!(gone.name.to_ascii_lowercase().ends_with("eport.txt") && gone.confidence.is_some(), "{gone:?}");
    let note = "Заметка über Sicherung.txt";
    ui.guest_select(note);
    ui.snap("guest_deleted");

    // A preview in the overlay.
    ui.key(KeyCode::Enter);
    ui.settle("the guest preview", |a| a.browse.preview.as_ref().is_some_and(|p| p.lines.len() > 3));
    assert!(ui.app.browse.preview.as_ref().unwrap().lines.iter().any(|l| l.contains("Überprüfung")));
    ui.key(KeyCode::Esc);
    assert!(ui.app.guest.is_some(), "Esc closes only the preview");

    // Mark the note and, from the root, the Windows and ProgramData folders.
    ui.key(KeyCode::Char(' '));
    for _ in 0..3 {
        ui.key(KeyCode::Backspace);
        ui.guest_listed("back up");
    }
    assert_eq!(ui.app.guest.as_ref().unwrap().path(), "");
    ui.guest_select("Windows");
    ui.key(KeyCode::Char(' '));
    ui.guest_select("ProgramData");
    ui.key(KeyCode::Char(' '));
    assert_eq!(ui.app.guest.as_ref().unwrap().marked.len(), 3);

    // No destination yet: r says where to choose one. Then the Recover screen's folder.
    ui.key(KeyCode::Char('r'));
    assert!(ui.app.overlay.is_some() && !ui.app.guest.as_ref().unwrap().extract.status.active());
    ui.key(KeyCode::Esc);
    let out = dir.path().join("out");
    ui.key(KeyCode::Char('5'));
    ui.key(KeyCode::Char('t'));
    for _ in 0..4 {
        ui.key(KeyCode::Backspace);
    }
    ui.keys(&out.display().to_string());
    ui.key(KeyCode::Enter);
    ui.settle("the destination", |a| a.recover.target.is_some());
    ui.key(KeyCode::Char('3'));
    assert!(ui.app.guest.is_some(), "the guest view is still open");
    ui.key(KeyCode::Char('r'));
    ui.settle("the extraction", |a| {
        a.guest.as_ref().is_some_and(|g| !g.extract.status.active() && !g.extract.summary.is_empty())
    });
    let g = ui.app.guest.as_ref().unwrap();
    assert_eq!(g.extract.status, JobStatus::Done, "{:?}", g.extract.summary);

    // Byte-exact against the forge's truth, and the manifest says so.
    let mut base = out.join(worker::OUTPUT_DIR).join("guest");
    base.extend(g.disk.split('/'));
    let index = g.volumes[fat].index;
    let part = base.join(format!("part{index}"));
    let m: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(part.join("manifest.json")).unwrap()).unwrap();
    let want: Vec<_> = truth
        .guest_files
        .iter()
        .filter(|f| f.disk == disk.chain[0])
        .filter(|f| f.path.starts_with("/Windows/") || f.path.starts_with("/ProgramData/") || f.path.ends_with(note))
        .collect();
    assert_eq!(want.len(), 3, "{want:?}");
    for f in want {
        let e = m.iter().find(|e| e["path"] == f.path.as_str()).unwrap_or_else(|| panic!("{} not in {m:?}", f.path));
        assert_eq!(e["sha256"], f.sha256.as_str(), "{}", f.path);
        let file = part.join(e["output"].as_str().unwrap());
        assert_eq!(sha256_file(&file), f.sha256, "{}", f.path);
    }
    assert!(part.join("Windows/System32/drivers/etc/hosts").is_file());
    assert!(part.join(note).is_file(), "a marked file lands at the top");
    assert!(!part.join("Users").exists(), "only what was marked is written");
}
