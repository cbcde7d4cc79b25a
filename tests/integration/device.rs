//! Block devices: a real VMFS image behind a loop device (when the test runs as root and loop
//! devices exist) is opened read-only, marked read-only in the kernel (BLKROSET) before use, and
//! read exactly like the image file, with 512- and 4096-byte logical sectors.

use crate::util::{SourceGuard, corpus_image};
use crate::vmfs::bin;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop device over `img`, detached on drop.
struct Loop(PathBuf);

impl Loop {
    fn attach(img: &Path, sector: u32) -> Option<Self> {
        let out = Command::new("losetup")
            .args(["--find", "--show", "--sector-size", &sector.to_string()])
            .arg(img)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("SKIP: losetup failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        Some(Self(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim())))
    }
    fn read_only(&self) -> bool {
        let out = Command::new("blockdev").arg("--getro").arg(&self.0).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("blockdev").arg("--setrw").arg(&self.0).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn listing(source: &Path) -> String {
    let out = bin().args(["ls", "-R", "--json"]).arg(source).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn loop_device_is_set_read_only_and_reads_like_the_image() {
    let Some(img) = corpus_image("vmfs/dissect.vmfs-3.13/vmfs/vmfs6.bin.gz") else { return };
    if !nix_is_root() || !Path::new("/dev/loop-control").exists() {
        eprintln!("SKIP: needs root and loop devices");
        return;
    }
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let from_file = listing(&img);
    for sector in [512, 4096] {
        let Some(dev) = Loop::attach(&img, sector) else { return };
        // A loop device may keep the read-only flag of an earlier user: start from writable.
        assert!(Command::new("blockdev").arg("--setrw").arg(&dev.0).status().unwrap().success());
        assert!(!dev.read_only(), "loop device starts writable");
        assert_eq!(listing(&dev.0), from_file, "{sector}-byte sectors: listing through the device differs");
        assert!(dev.read_only(), "BLKROSET was not set on {}", dev.0.display());
        let out = bin().args(["cat", "--path", "/big"]).arg(&dev.0).output().unwrap();
        assert_eq!(out.stdout.len(), 1048577);
    }
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}
