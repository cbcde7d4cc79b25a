//! The real binary's terminal UI in a pseudo-terminal, driven by keys and read back through a
//! terminal emulator (vt100): open a forged datastore with a deleted VM, scan, mark the VM,
//! recover it to a folder, quit; the files match the forge's ground truth.

use super::forge_scenarios::forge;
use super::util::{SourceGuard, sha256_file};
use nix::pty::{Winsize, openpty};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const W: u16 = 100;
const H: u16 = 30;
const DOWN: &str = "\x1b[B";
const HOME: &str = "\x1b[H";

struct Pty {
    child: Child,
    master: std::fs::File,
    screen: Arc<Mutex<vt100::Parser>>,
}

impl Pty {
    fn spawn(args: &[&str]) -> Self {
        let ws = Winsize { ws_row: H, ws_col: W, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = openpty(Some(&ws), None).unwrap();
        let slave = std::fs::File::from(pty.slave);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vmfs-rescue"));
        cmd.args(args)
            .env("TERM", "xterm")
            .env_remove("NO_COLOR")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // The pty becomes the child's controlling terminal, as a login shell's would.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let master = std::fs::File::from(pty.master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            std::num::NonZero::new(H).unwrap(),
            std::num::NonZero::new(W).unwrap(),
            0,
        )));
        let (mut r, s) = (master.try_clone().unwrap(), Arc::clone(&screen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().process(&buf[..n]);
            }
        });
        Self { child, master, screen }
    }

    fn text(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let t = self.text();
            if ok(&t) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{t}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Put the Browse cursor on the row `name` and press Enter (or `then`).
    fn pick(&mut self, name: &str, then: &str) {
        self.wait_for(name, |t| t.contains(name));
        let t = self.text();
        let lines: Vec<&str> = t.lines().collect();
        let header = lines.iter().position(|l| l.contains("Name") && l.contains("Modified")).expect("a Browse list");
        let row = lines.iter().skip(header + 1).position(|l| l.contains(name)).expect("the row");
        self.send(HOME);
        for _ in 0..row {
            self.send(DOWN);
        }
        self.send(then);
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tui_recovers_a_deleted_vm_in_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (images, truth) = forge(dir.path(), "demo", 6, "2G", &["ds.img"], true);
    let _guard = SourceGuard::new(&images);
    let state = dir.path().join("state");
    let out = dir.path().join("out");
    let log = dir.path().join("tui.log");
    let img = images[0].display().to_string();
    let mut ui = Pty::spawn(&[
        "tui",
        &img,
        "--state",
        state.to_str().unwrap(),
        "--mono",
        "--log",
        log.to_str().unwrap(),
        "--mount-base",
        dir.path().join("mnt").to_str().unwrap(),
    ]);
    ui.wait_for("the volume", |t| t.contains("datastore6") && t.contains("VMFS6"));

    ui.send("4");
    ui.send("s");
    ui.wait_for("the end of the scan", |t| t.contains("finished: the findings are in Browse"));
    ui.send("3");
    ui.wait_for("the rebuilt catalogue", |t| t.contains("volumes and scan") && !t.contains("rebuilding"));
    ui.pick("volumes/", "\r");
    ui.pick("datastore6/", "\r");
    ui.pick("db01/", " ");
    ui.wait_for("the mark", |t| t.contains("[x] db01/"));
    ui.send("r");
    ui.wait_for("the Recover screen", |t| t.contains("What and where"));
    ui.send("t");
    ui.send("\x7f");
    ui.send(&out.display().to_string());
    ui.send("\r");
    ui.wait_for("the destination", |t| t.contains("free)"));
    ui.send("s");
    ui.wait_for("the end of the writing", |t| t.contains("report:"));
    ui.send("q");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = ui.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "q did not quit; screen:\n{}", ui.text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");

    let got = out.join("vmfs-rescue/volumes/datastore6/db01");
    let want = truth.file("/db01/db01-flat.vmdk").unwrap().sha256.clone().unwrap();
    assert_eq!(sha256_file(&got.join("db01-flat.vmdk")), want);
    assert!(got.join("db01.vmx").is_file());
    assert!(out.join("vmfs-rescue/report.txt").is_file());
}
