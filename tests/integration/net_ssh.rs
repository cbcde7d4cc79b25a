//! SSH with a real OpenSSH server on loopback, started by the test (host and user keys made
//! with ssh-keygen here): a forged datastore image read as an `ssh://` source (listed, files
//! extracted with the forge's content), pushes over SFTP (content equal to the ground truth,
//! resumed after an interruption), and host keys that are not the one given refused.

use crate::net_nbd::forged;
use crate::util::{SourceGuard, sha256_file};
use crate::vmfs::bin;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// An `sshd -D -e -f CFG` on a free loopback port, logging in the current user by key; killed
/// when dropped.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub user: String,
    pub user_key: PathBuf,
    pub host_fp: String,
    _dir: tempfile::TempDir,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "vmfs-rescue-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (openssh-client, scripts/setup-tools.sh)");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
}

impl Sshd {
    /// None (with a message) only when the sshd binary is missing.
    pub fn start() -> Option<Self> {
        let sshd = ["/usr/sbin/sshd", "/sbin/sshd"].into_iter().find(|p| Path::new(p).exists());
        let Some(sshd) = sshd else {
            eprintln!("SKIPPED: no sshd (install openssh-server: scripts/setup-tools.sh)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host"));
        keygen(&d.join("user"));
        std::fs::copy(d.join("user.pub"), d.join("authorized_keys")).unwrap();
        let fp = Command::new("ssh-keygen").arg("-lf").arg(d.join("host.pub")).output().unwrap();
        let host_fp = String::from_utf8_lossy(&fp.stdout).split_whitespace().nth(1).unwrap().to_string();
        // sshd wants its privilege-separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = d.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "ListenAddress 127.0.0.1:{port}\nHostKey {h}\nAuthorizedKeysFile {a}\nPidFile none\n\
                 UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin yes\nStrictModes no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
                h = d.join("host").display(),
                a = d.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let child = Command::new(sshd).args(["-D", "-e", "-f"]).arg(&cfg).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let user =
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap().trim().to_string();
        Some(Self { child, port, user, user_key: d.join("user"), host_fp, _dir: dir })
    }

    /// End every open connection (the per-connection sshd processes); keep listening.
    pub fn drop_connections(&self) {
        let st = Command::new("pkill").args(["-KILL", "-P", &self.child.id().to_string()]).status().unwrap();
        assert!(st.success(), "no connection to drop");
    }

    /// `SCHEME://user@127.0.0.1:PORT` + path.
    pub fn url(&self, scheme: &str, path: &Path) -> String {
        format!("{scheme}://{}@127.0.0.1:{}{}", self.user, self.port, path.display())
    }

    /// The binary with the host key and user key given.
    pub fn cmd(&self) -> Command {
        let mut c = bin();
        c.args(["--host-key", &self.host_fp, "-i"]).arg(&self.user_key);
        c.env_remove("VMFS_RESCUE_SSH_PASSWORD");
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A forged datastore read over `ssh://`: the listing equals the local one, and a file's
/// content has the forge's SHA-256. Prints the remote and local read rates.
#[test]
fn ssh_source_lists_and_extracts_a_forged_datastore() {
    let Some(sshd) = Sshd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let url = sshd.url("ssh", &img);
    let remote = ok(sshd.cmd().args(["ls", "-R", "--json", &url]).output().unwrap(), "ls over ssh");
    let local = ok(bin().args(["ls", "-R", "--json"]).arg(&img).output().unwrap(), "ls");
    assert_eq!(String::from_utf8_lossy(&remote), String::from_utf8_lossy(&local));
    let f = truth
        .files
        .iter()
        .filter(|f| f.state == "live" && f.kind == "file" && f.sha256.is_some())
        .max_by_key(|f| f.size)
        .unwrap();
    let out = dir.path().join("remote.bin");
    let t = Instant::now();
    let o = sshd.cmd().args(["cat", &url, "--path", &f.path]).output().unwrap();
    let remote_s = t.elapsed().as_secs_f64();
    std::fs::write(&out, ok(o, "cat over ssh")).unwrap();
    assert_eq!(sha256_file(&out), *f.sha256.as_ref().unwrap(), "{}", f.path);
    let t = Instant::now();
    ok(bin().args(["cat"]).arg(&img).args(["--path", &f.path]).output().unwrap(), "cat");
    let local_s = t.elapsed().as_secs_f64();
    let mib = f.size as f64 / (1 << 20) as f64;
    eprintln!(
        "ssh source: {} ({mib:.1} MiB) in {remote_s:.2} s = {:.0} MiB/s over ssh, {:.0} MiB/s local",
        f.path,
        mib / remote_s,
        mib / local_s
    );
}

/// A host key other than the one given, or none given without a terminal: refused, and the
/// message shows the fingerprint the server offered.
#[test]
fn wrong_or_unconfirmed_host_key_is_refused() {
    let Some(sshd) = Sshd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let url = sshd.url("ssh", &img);
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let out = bin().args(["--host-key", wrong, "-i"]).arg(&sshd.user_key).args(["volumes", &url]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not accepted") && err.contains(&sshd.host_fp) && err.contains(wrong), "{err}");
    let out = bin().arg("-i").arg(&sshd.user_key).args(["volumes", &url]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&sshd.host_fp) && err.contains("--host-key"), "{err}");
}

/// A VM folder of a forged datastore pushed over SFTP: every file arrives with the forge's
/// SHA-256 and the manifest lists it. Then an interrupted push (the remote file cut back to a
/// `.part`, its journal line gone) is continued from the `.part`, not sent again.
#[test]
fn push_over_sftp_then_resume_an_interrupted_file() {
    let Some(sshd) = Sshd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let big = truth
        .files
        .iter()
        .filter(|f| f.state == "live" && f.kind == "file" && f.sha256.is_some())
        .max_by_key(|f| f.size)
        .unwrap();
    let folder = big.path.rsplit_once('/').unwrap().0.to_string();
    let dest = dir.path().join("remote/out");
    let to = sshd.url("sftp", &dest);
    let push = || sshd.cmd().arg("push").arg(&img).args(["--path", &folder, "--to", &to]).output().unwrap();
    let t = Instant::now();
    let out = push();
    let secs = t.elapsed().as_secs_f64();
    ok(out, "push");
    let mut bytes = 0u64;
    let mut n = 0;
    for f in truth.files.iter().filter(|f| f.state == "live" && f.kind == "file" && f.path.starts_with(&folder)) {
        let remote = dest.join(f.path.trim_start_matches('/'));
        assert_eq!(std::fs::metadata(&remote).unwrap().len(), f.size, "{}", f.path);
        if let Some(sha) = &f.sha256 {
            assert_eq!(sha256_file(&remote), *sha, "{}", f.path);
            n += 1;
        }
        bytes += f.size;
        assert!(!remote.with_extension("part").exists());
    }
    assert!(n >= 2, "{folder} holds files to compare");
    eprintln!("sftp push: {n} files, {:.1} MiB in {secs:.2} s", bytes as f64 / (1 << 20) as f64);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("manifest.json")).unwrap()).unwrap();
    let entry = manifest.as_array().unwrap().iter().find(|e| e["path"] == big.path.as_str()).unwrap();
    assert_eq!(entry["sha256"], big.sha256.as_deref().unwrap());

    // A second run keeps everything.
    let again = push();
    let err = String::from_utf8_lossy(&again.stderr).into_owned();
    ok(again, "second push");
    assert!(err.contains(&format!("{}: already pushed", big.path)), "{err}");

    // Interrupt the biggest file: cut back to a third, as `.part`, journal forgotten.
    let remote = dest.join(big.path.trim_start_matches('/'));
    let part = PathBuf::from(format!("{}.part", remote.display()));
    std::fs::rename(&remote, &part).unwrap();
    let cut = big.size / 3 + 12345;
    std::fs::OpenOptions::new().write(true).open(&part).unwrap().set_len(cut).unwrap();
    std::fs::remove_file(dest.join(".vmfs-rescue-push.jsonl")).unwrap();
    let out = push();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out, "resumed push");
    assert!(err.contains(&format!("{}: continued an earlier push at byte", big.path)), "{err}");
    assert_eq!(sha256_file(&remote), *big.sha256.as_ref().unwrap(), "resumed {}", big.path);
    assert!(!part.exists());

    // A `.part` of other content is not continued: it is sent again from the start.
    std::fs::rename(&remote, &part).unwrap();
    let mut junk = vec![0x5au8; (cut as usize).min(8 << 20)];
    junk.truncate(cut as usize);
    std::fs::write(&part, &junk).unwrap();
    std::fs::remove_file(dest.join(".vmfs-rescue-push.jsonl")).unwrap();
    let out = push();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out, "push over a foreign .part");
    assert!(!err.contains(&format!("{}: continued", big.path)), "{err}");
    assert_eq!(sha256_file(&remote), *big.sha256.as_ref().unwrap(), "restarted {}", big.path);
}

/// The streaming read path of an `ssh://` source: sequential reads (streamed by one long `dd`)
/// and jumps (one `dd` per chunk) give the file's bytes; when the remote file shrinks under a
/// stream, reads past its new end fail promptly (the chunk is marked, the next read of it asks
/// by the sector) and reads before it still succeed; when the connection drops, the source
/// logs in again and reads on.
#[test]
fn ssh_source_streams_and_fails_cleanly_when_the_file_shrinks() {
    use vmfs_rescue::block::RawSource;
    use vmfs_rescue::block::ssh::{Auth, HostKeyCheck, SshOptions, SshSource, parse_url};
    let Some(sshd) = Sshd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("remote.bin");
    const MIB: usize = 1 << 20;
    let data: Vec<u8> = (0..200 * MIB).map(|i| (i / 4096 % 251) as u8 ^ (i % 7) as u8).collect();
    std::fs::write(&img, &data).unwrap();
    let opts = SshOptions {
        host_key: HostKeyCheck::Expect(sshd.host_fp.clone()),
        auth: Auth { key_file: Some(sshd.user_key.clone()), ..Default::default() },
        timeout: Duration::from_secs(20),
    };
    let src = SshSource::open(&parse_url(&sshd.url("ssh", &img), "ssh").unwrap(), &opts).unwrap();
    assert_eq!(src.len(), data.len() as u64);
    let read = |at: usize, n: usize| {
        let mut b = vec![0u8; n];
        src.pread(at as u64, &mut b).map(|got| {
            b.truncate(got);
            b
        })
    };
    // In order (the third chunk on is streamed), with jumps back and far ahead in between.
    for at in (0..48 * MIB).step_by(MIB / 2) {
        assert_eq!(read(at, 300_000).unwrap(), data[at..at + 300_000], "at {at}");
        if at % (8 * MIB) == 0 {
            let far = 150 * MIB + at;
            assert_eq!(read(far, 4096).unwrap(), data[far..far + 4096], "jump to {far}");
        }
    }
    let t = Instant::now();
    // Shrink to 98 MiB, inside the chunk at 96 MiB: a stream from 92 MiB serves 92..96, then
    // falls short there; that chunk is then read by the sector: bytes before the cut come
    // back, bytes after it do not.
    std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len(98 * MIB as u64).unwrap();
    assert_eq!(read(60 * MIB, 1000).unwrap(), data[60 * MIB..60 * MIB + 1000]);
    for at in [92 * MIB, 93 * MIB, 94 * MIB, 95 * MIB] {
        assert_eq!(read(at, 4096).unwrap(), data[at..at + 4096], "at {at}");
    }
    assert!(read(96 * MIB, 4096).is_err(), "the short chunk fails as a whole first");
    assert_eq!(read(96 * MIB, 4096).unwrap(), data[96 * MIB..96 * MIB + 4096], "then by the sector");
    assert_eq!(read(98 * MIB - 512, 512).unwrap(), data[98 * MIB - 512..98 * MIB]);
    assert!(read(98 * MIB, 512).is_ok_and(|b| b.is_empty()) || read(98 * MIB, 512).is_err(), "nothing past the cut");
    assert!(read(104 * MIB, 4096).is_err(), "a chunk past the cut fails");
    assert!(t.elapsed() < Duration::from_secs(15), "failures are prompt: {:?}", t.elapsed());
    // The connection dropped (its sshd processes killed; the listener stays): the next reads
    // log in again, with the host key accepted the first time, and go on.
    sshd.drop_connections();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(read(70 * MIB, 1000).unwrap(), data[70 * MIB..70 * MIB + 1000], "after the connection dropped");
    // The first try waits 1 s before logging in again: a read that fast used the old connection.
    assert!(t.elapsed() >= Duration::from_secs(1), "no reconnect happened ({:?})", t.elapsed());
    for at in (0..24 * MIB).step_by(4 * MIB) {
        assert_eq!(read(at, 8192).unwrap(), data[at..at + 8192], "streamed again, at {at}");
    }
}
