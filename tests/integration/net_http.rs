//! `serve http` with curl on loopback: listings, full, Range and resumed (`curl -C -`)
//! downloads of files and of a virtual disk assembled through its chain (content = the forge's
//! ground truth), HEAD and 416, the secret refused when wrong or missing, HTTPS with the printed
//! public-key pin, and clients that must not stall the server.

use crate::net_nbd::{SECRET, Served, forged};
use crate::util::{SourceGuard, sha256_file};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl (scripts/setup-tools.sh)");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The HTTP status of a request.
fn status(args: &[&str]) -> u16 {
    let mut a = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    a.extend_from_slice(args);
    curl(&a).0.trim().parse().unwrap()
}

const BEARER: &str = "Authorization: Bearer loopback-test-secret";

#[test]
fn curl_downloads_files_and_disks_whole_ranged_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let s = Served::start(&["serve", "http", img.to_str().unwrap()]);
    let base = format!("http://{}", s.addr);
    let vol = &truth.label;

    // The listing, as JSON.
    let (idx, _) = curl(&["-H", BEARER, &format!("{base}/?format=json")]);
    assert!(idx.contains(&format!("\"name\":\"{vol}\"")), "{idx}");
    let disk = &truth.disks.iter().find(|d| d.chain.len() > 1).unwrap();
    let vm_dir = disk.chain[0].rsplit_once('/').unwrap().0;
    let (ls, _) = curl(&["-H", BEARER, &format!("{base}/files/{vol}{vm_dir}/?format=json")]);
    let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
    let leaf_name = disk.chain[0].rsplit('/').next().unwrap();
    let e = v["entries"].as_array().unwrap().iter().find(|e| e["name"] == leaf_name).unwrap();
    assert_eq!(e["disk_href"], format!("/disk/{vol}{}", disk.chain[0]));

    // A file: whole, a range, and a resumed download.
    let f = truth
        .files
        .iter()
        .filter(|f| f.state == "live" && f.kind == "file" && f.sha256.is_some() && f.size > 1 << 20)
        .max_by_key(|f| f.size)
        .unwrap();
    let url = format!("{base}/files/{vol}{}", f.path);
    let out = dir.path().join("whole");
    curl(&["-H", BEARER, "-o", out.to_str().unwrap(), &url]);
    assert_eq!(sha256_file(&out), *f.sha256.as_ref().unwrap(), "{}", f.path);
    let whole = std::fs::read(&out).unwrap();
    let part = dir.path().join("part");
    curl(&["-H", BEARER, "-r", "1000-1999", "-o", part.to_str().unwrap(), &url]);
    assert_eq!(std::fs::read(&part).unwrap(), &whole[1000..2000]);
    let resumed = dir.path().join("resumed");
    std::fs::write(&resumed, &whole[..whole.len() / 3]).unwrap();
    curl(&["-H", BEARER, "-C", "-", "-o", resumed.to_str().unwrap(), &url]);
    assert_eq!(sha256_file(&resumed), *f.sha256.as_ref().unwrap(), "resumed download");
    // HEAD, and a range past the end.
    let (head, _) = curl(&["-I", "-H", BEARER, &url]);
    assert!(head.contains(&format!("content-length: {}", f.size)) && head.contains("accept-ranges: bytes"), "{head}");
    assert_eq!(status(&["-H", BEARER, "-r", &format!("{}-", f.size), &url]), 416);
    assert_eq!(status(&["-H", BEARER, &format!("{base}/files/{vol}/no/such/file")]), 404);

    // The virtual disk, assembled through its snapshot chain: whole and resumed.
    let durl = format!("{base}/disk/{vol}{}", disk.chain[0]);
    let raw = dir.path().join("disk.raw");
    curl(&["-H", BEARER, "-o", raw.to_str().unwrap(), &durl]);
    assert_eq!(sha256_file(&raw), disk.sha256, "{}", disk.chain[0]);
    let all = std::fs::read(&raw).unwrap();
    std::fs::write(&raw, &all[..all.len() / 2 + 12345]).unwrap();
    curl(&["-H", BEARER, "-C", "-", "-o", raw.to_str().unwrap(), &durl]);
    assert_eq!(sha256_file(&raw), disk.sha256, "resumed disk download");
    // The token as a query parameter works too (browsers).
    assert_eq!(status(&[&format!("{durl}?token={SECRET}"), "-r", "0-0"]), 206);
}

#[test]
fn wrong_or_missing_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let s = Served::start(&["serve", "http", img.to_str().unwrap()]);
    let base = format!("http://{}", s.addr);
    let file = &truth.files.iter().find(|f| f.kind == "file" && f.state == "live").unwrap().path;
    for url in [
        format!("{base}/"),
        format!("{base}/?format=json"),
        format!("{base}/files/{}/", truth.label),
        format!("{base}/files/{}{file}", truth.label),
        format!("{base}/disk/{}{}", truth.label, truth.disks[0].chain[0]),
    ] {
        for auth in [vec![], vec!["-H", "Authorization: Bearer wrong-secret-1"], vec!["-H", "Authorization: Basic abc"]]
        {
            let mut a = auth.clone();
            a.push(&url);
            assert_eq!(status(&a), 401, "{url} {auth:?}");
            let (body, _) = curl(&a);
            assert!(!body.contains(&truth.label) && !body.contains("entries"), "a 401 showed content: {body}");
        }
        assert_eq!(status(&[&format!("{url}{}token=wrong-secret-1", if url.contains('?') { "&" } else { "?" })]), 401);
        assert_eq!(status(&["-r", "0-0", "-H", BEARER, &url]) / 100, 2, "{url}");
    }
}

#[test]
fn https_with_the_printed_pin() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let s = Served::start(&["serve", "http", img.to_str().unwrap(), "--tls"]);
    let pin = s
        .banner
        .iter()
        .find_map(|l| l.split("--pinnedpubkey '").nth(1).and_then(|r| r.split('\'').next()))
        .unwrap_or_else(|| panic!("no pin printed: {:?}", s.banner))
        .to_string();
    assert!(s.banner.iter().any(|l| l.contains("fingerprint")), "{:?}", s.banner);
    let url = format!("https://{}/files/{}/", s.addr, truth.label);
    assert_eq!(status(&["-k", "--pinnedpubkey", &pin, "-H", BEARER, &url]), 200);
    assert_eq!(status(&["-k", "--pinnedpubkey", &pin, &url]), 401);
    let wrong = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let out = Command::new("curl").args(["-sS", "-k", "--pinnedpubkey", wrong, "-H", BEARER, &url]).output().unwrap();
    assert!(!out.status.success(), "a wrong pin must fail");
    // Without -k the self-signed certificate is refused by curl, as it should be.
    assert!(!Command::new("curl").args(["-sS", "-H", BEARER, &url]).output().unwrap().status.success());
}

/// Idle connections, a slow sender of headers, garbage, a half TLS-less request and a reader
/// that never reads: the next client is still served.
#[test]
fn bad_http_clients_do_not_stall_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (img, truth) = forged(dir.path());
    let mut s = Served::start(&["serve", "http", img.to_str().unwrap()]);
    let base = format!("http://{}", s.addr);
    let mut held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(s.addr).unwrap()).collect();
    let mut slow = TcpStream::connect(s.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut garbage = TcpStream::connect(s.addr).unwrap();
    garbage.write_all(&[0x16, 3, 1, 0, 0xff, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    garbage.write_all(&[0u8; 4096]).unwrap();
    garbage.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 64];
    let n = garbage.read(&mut b).unwrap_or(0);
    assert!(n == 0 || b.starts_with(b"HTTP/1.1 400"), "{:?}", String::from_utf8_lossy(&b[..n]));
    // A download that is never read.
    let mut deaf = TcpStream::connect(s.addr).unwrap();
    let disk = format!("/disk/{}{}", truth.label, truth.disks[0].chain[0]);
    deaf.write_all(format!("GET {disk} HTTP/1.1\r\nHost: x\r\n{BEARER}\r\n\r\n").as_bytes()).unwrap();
    // A huge Range value and a pile of ranges: answered, never a crash.
    let r = "bytes=".to_string() + &"0-1,".repeat(5000) + "0-1";
    assert_eq!(status(&["-H", BEARER, "-H", &format!("Range: {r}"), &format!("{base}{disk}"), "-r", "0-0"]) / 100, 2);
    assert_eq!(status(&["-H", BEARER, &format!("{base}/?format=json")]), 200);
    let out = dir.path().join("d.raw");
    curl(&["-H", BEARER, "-o", out.to_str().unwrap(), &format!("{base}{disk}")]);
    assert_eq!(sha256_file(&out), truth.disks[0].sha256);
    assert!(s.alive());
    held.clear();
}
