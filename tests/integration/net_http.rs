//! `serve http` with curl on loopback: listings, full, Range and resumed (`curl -C -`)
//! downloads of files and of a virtual disk assembled through its chain (content = the forge's
//! ground truth), HEAD and 416, the secret refused when wrong or missing, HTTPS with the printed
//! public-key pin, and clients that must not stall the server.

use crate::net_nbd::{SECRET, Served, forged};
use crate::util::{SourceGuard, hex, sha256_file};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

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

/// Percent-encode a URL path as a client would (every byte but unreserved ones and `/`).
fn enc(p: &str) -> String {
    p.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A forged VMFS6 datastore holding one VM whose disk (a flat base and an SEsparse snapshot
/// delta) carries an MBR and a FAT32 partition made by mkfs.fat + mtools: nested folders,
/// non-ASCII, long and URL-hostile names, a file deleted with mdel. Returns the image, the
/// guest's files (path, SHA-256) and the deleted file's content.
fn guest_datastore(dir: &Path) -> (PathBuf, Vec<(String, String)>, Vec<u8>) {
    use vmfs_rescue::block::Source;
    use vmfs_rescue::forge::disk::Table;
    use vmfs_rescue::forge::guest::TableKind;
    use vmfs_rescue::forge::vmdk::{Delta, Descriptor, DiskKind, SesparseOptions, sesparse_extent};
    use vmfs_rescue::forge::vmfs::{Provisioning, ROOT};
    use vmfs_rescue::forge::volume::{VolumeSpec, create};
    let (disk, mut files, deleted) = crate::guest::fat_disk(dir, TableKind::Mbr);
    let hostile = "R&D #1; 100% + 'more' = done.txt";
    let stage = dir.join(hostile);
    std::fs::write(&stage, b"hostile name\n").unwrap();
    let img = format!("{}@@{}", disk.image.display(), disk.partition_offset);
    let o =
        Command::new("mcopy").env("MTOOLS_SKIP_CHECK", "1").args(["-i", &img]).arg(&stage).arg("::/Projects/").output();
    assert!(o.unwrap().status.success(), "mcopy");
    // In a folder: in the root it would take the deleted file's directory slots.
    files.push((format!("/Projects/{hostile}"), b"hostile name\n".to_vec()));
    let mut sums: Vec<(String, String)> = files.iter().map(|(p, d)| (p.clone(), hex(&Sha256::digest(d)))).collect();
    sums.extend(disk.files.iter().map(|f| (f.path.clone(), f.sha256.clone())));

    let ds = dir.join("ds.img");
    let spec = VolumeSpec {
        version: 6,
        disks: vec![(ds.clone(), 3 << 30)],
        table: Table::Gpt,
        label: "guestds".into(),
        seed: 5,
        time: 1_750_000_000,
    };
    let mut w = create(&spec).unwrap();
    let vm = w.mkdir(ROOT, "vm1").unwrap();
    let base: Source = disk.open().unwrap();
    let base_desc = Descriptor::base("vm1", base.len() / 512, DiskKind::Thin, [7; 16]).unwrap();
    w.add_file(vm, &base_desc.extent_file, &*base, Provisioning::Thin, 0o600).unwrap();
    let text = |name: &str, t: String| vmfs_rescue::block::SparseMem::from_bytes(name, t.into_bytes());
    w.add_file(vm, "vm1.vmdk", &text("vm1.vmdk", base_desc.text()), Provisioning::Thin, 0o600).unwrap();
    // A snapshot: the guest wrote boot code after it; its file system reads the same.
    let mut delta = Delta::new(Arc::clone(&base)).unwrap();
    delta.write(0, &[0x90; 440]).unwrap();
    let child =
        Descriptor::delta("vm1-000001", &base_desc, "vm1.vmdk", DiskKind::SeSparse, 0x1234_5678, [3; 12]).unwrap();
    let extent = sesparse_extent(&delta, &SesparseOptions::default()).unwrap();
    w.add_file(vm, &child.extent_file, &extent, Provisioning::Thin, 0o600).unwrap();
    w.add_file(vm, "vm1-000001.vmdk", &text("vm1-000001.vmdk", child.text()), Provisioning::Thin, 0o600).unwrap();
    w.finish().unwrap();
    (ds, sums, deleted)
}

/// The guest view: from the `/files/` listing's link to the disk's partitions (JSON), a
/// folder, files whole, ranged and resumed (SHA-256 of the originals), through the links the
/// server made for hostile names; the deleted file listed as deleted and downloadable; the
/// secret required; `..` and bad partition numbers answered 404 by a server that lives on.
#[test]
fn curl_browses_and_downloads_guest_files() {
    let dir = tempfile::tempdir().unwrap();
    let (img, sums, deleted) = guest_datastore(dir.path());
    let _guard = SourceGuard::new(std::slice::from_ref(&img));
    let mut s = Served::start(&["serve", "http", img.to_str().unwrap()]);
    let base = format!("http://{}", s.addr);
    let get_json = |url: &str| -> serde_json::Value {
        let (body, err) = curl(&["-H", BEARER, url]);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body} {err}"))
    };

    // The VM folder links the snapshot's descriptor to its guest view.
    let ls = get_json(&format!("{base}/files/guestds/vm1/?format=json"));
    let leaf = ls["entries"].as_array().unwrap().iter().find(|e| e["name"] == "vm1-000001.vmdk").unwrap();
    assert_eq!(leaf["guest_href"], "/guest/guestds/vm1/vm1-000001.vmdk/");
    let disk = format!("{base}/guest/guestds/vm1/vm1-000001.vmdk");

    // The partitions, as JSON: one MBR partition holding FAT32.
    let parts = get_json(&format!("{disk}/?format=json"));
    let p = parts["partitions"].as_array().unwrap();
    assert_eq!(p.len(), 1, "{parts}");
    assert_eq!((p[0]["part"].as_u64(), p[0]["fs"].as_str()), (Some(1), Some("FAT32")), "{parts}");
    assert!(p[0]["describe"].as_str().unwrap().contains("MBR partition 1"), "{parts}");
    assert_eq!(p[0]["href"], "/guest/guestds/vm1/vm1-000001.vmdk/1/");

    // A nested folder with non-ASCII and long names.
    let folder = "/Projects/2024/Quartalsbericht – Übersicht/";
    let l = get_json(&format!("{disk}/1{}?format=json", enc(folder)));
    let names: Vec<&str> = l["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"Zusammenfassung für Vorstand.docx"), "{names:?}");
    assert!(names.contains(&"very long folder name beyond eight dot three"), "{names:?}");
    // Its name reaches a browser whole (RFC 6266 filename*), an old client as ASCII.
    let (head, _) =
        curl(&["-H", BEARER, "-I", &format!("{disk}/1{}Zusammenfassung%20f%C3%BCr%20Vorstand.docx", enc(folder))]);
    assert!(head.contains("filename*=UTF-8''Zusammenfassung%20f%C3%BCr%20Vorstand.docx"), "{head}");
    assert!(head.contains("filename=\"Zusammenfassung_f_r_Vorstand.docx\""), "{head}");

    // Every guest file through the href its folder's listing gives, byte-exact.
    let mut n = 0;
    for (path, sum) in &sums {
        let (parent, name) = path.rsplit_once('/').unwrap();
        let l = get_json(&format!("{disk}/1{}/?format=json", enc(parent)));
        let e = l["entries"].as_array().unwrap().iter().find(|e| e["name"] == *name);
        let e = e.unwrap_or_else(|| panic!("{name} not listed in {parent}: {l}"));
        assert_eq!(e["deleted"], false, "{path}");
        let out = dir.path().join("got");
        let _ = std::fs::remove_file(&out);
        curl(&["-H", BEARER, "-o", out.to_str().unwrap(), &format!("{base}{}", e["href"].as_str().unwrap())]);
        // curl may leave no file for an empty body.
        assert_eq!(hex(&Sha256::digest(std::fs::read(&out).unwrap_or_default())), *sum, "{path}");
        n += 1;
    }
    assert!(n >= 45, "{n} files");

    // A file of a few MiB: whole, two ranges, a download resumed with curl -C -, HEAD.
    let (path, sum) = sums.iter().find(|(p, _)| p.ends_with("/site-backup.tar.gz")).unwrap();
    let url = format!("{disk}/1{}", enc(path));
    let out = dir.path().join("whole");
    curl(&["-H", BEARER, "-o", out.to_str().unwrap(), &url]);
    assert_eq!(sha256_file(&out), *sum, "{path}");
    let whole = std::fs::read(&out).unwrap();
    assert!(whole.len() > 1 << 20, "{}", whole.len());
    let part = dir.path().join("part");
    for (a, b) in [(1000, 1999), (4095, 300_000)] {
        curl(&["-H", BEARER, "-r", &format!("{a}-{b}"), "-o", part.to_str().unwrap(), &url]);
        assert!(std::fs::read(&part).unwrap() == whole[a..=b], "range {a}-{b}");
    }
    let resumed = dir.path().join("resumed");
    std::fs::write(&resumed, &whole[..whole.len() / 3]).unwrap();
    curl(&["-H", BEARER, "-C", "-", "-o", resumed.to_str().unwrap(), &url]);
    assert_eq!(sha256_file(&resumed), *sum, "resumed download");
    let (head, _) = curl(&["-I", "-H", BEARER, &url]);
    assert!(head.contains(&format!("content-length: {}", whole.len())) && head.contains("accept-ranges: bytes"));
    assert_eq!(status(&["-H", BEARER, "-r", &format!("{}-", whole.len()), &url]), 416);

    // The deleted file: listed as deleted with its confidence, and downloadable.
    let root = get_json(&format!("{disk}/1/?format=json"));
    let d = root["entries"].as_array().unwrap().iter().find(|e| e["name"] == "to be deleted.bin").unwrap();
    assert_eq!((d["deleted"].as_bool(), d["confidence"].as_str()), (Some(true), Some("medium")), "{d}");
    let out = dir.path().join("deleted");
    curl(&["-H", BEARER, "-o", out.to_str().unwrap(), &format!("{base}{}", d["href"].as_str().unwrap())]);
    assert_eq!(std::fs::read(&out).unwrap(), deleted);
    let (html, _) = curl(&["-H", BEARER, &format!("{disk}/1/")]);
    assert!(html.contains("<s>to be deleted.bin</s>") && html.contains("deleted (medium confidence)"), "{html}");
    let (html, _) = curl(&["-H", BEARER, &format!("{disk}/1/Projects/")]);
    assert!(html.contains("R&amp;D #1; 100% + 'more' = done.txt"), "{html}");
    assert!(html.contains("/1/Projects/R%26D%20%231%3B%20100%25%20%2B%20%27more%27%20%3D%20done.txt"), "{html}");

    // The secret is required.
    for url in [format!("{disk}/"), format!("{disk}/1/"), format!("{disk}/1/Projects/README")] {
        assert_eq!(status(&[&url]), 401, "{url}");
        assert_eq!(status(&["-H", "Authorization: Bearer wrong-secret-1", &url]), 401, "{url}");
        let (body, _) = curl(&[&url]);
        assert!(!body.contains("Projects") && !body.contains("FAT32"), "a 401 showed content: {body}");
    }

    // `..` never leaves the guest root; bad partition numbers and paths are 404.
    for bad in [
        format!("{disk}/1/.."),
        format!("{disk}/1/../../vm1.vmdk/1/"),
        format!("{disk}/1/Projects/../../../../../files/guestds/"),
        format!("{disk}/1/%2E%2E/%2E%2E/"),
        format!("{disk}/1/Projects%2F..%2F..%2F"),
        format!("{disk}/2/"),
        format!("{disk}/0/"),
        format!("{disk}/x/"),
        format!("{disk}/-1/"),
        format!("{disk}/99999999999999999999/"),
        format!("{disk}/1/no/such/file"),
        format!("{disk}/1/Projects/README/below"),
        format!("{base}/guest/guestds/vm1/"),
        format!("{base}/guest/guestds/vm1/nope.vmdk/1/"),
        format!("{base}/guest/nope/vm1/vm1.vmdk/1/"),
    ] {
        assert_eq!(status(&["--path-as-is", "-H", BEARER, &bad]), 404, "{bad}");
    }
    // `..` inside the guest root is followed.
    let readme = format!("{disk}/1/Projects/2024/../README");
    let (body, _) = curl(&["--path-as-is", "-H", BEARER, &readme]);
    assert_eq!(body, "plain\n");
    assert!(s.alive(), "the server survived");
}
