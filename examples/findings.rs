//! Print what the reference scan finds on image files, or (`--items`) what the rebuild makes of
//! it with each file's SHA-256 (a development aid).
use sha2::Digest;
fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let items = args.first().is_some_and(|a| a == "--items");
    if items {
        args.remove(0);
    }
    let srcs: Vec<_> = args.iter().map(|p| vmfs_rescue::block::open_path(p.as_ref()).expect("open")).collect();
    let refs: Vec<&dyn vmfs_rescue::block::BlockSource> = srcs.iter().map(|s| s.as_ref()).collect();
    let found = vmfs_rescue::recover::reference_scan(&refs);
    if !items {
        for f in found {
            println!("{}", serde_json::to_string(&f).unwrap_or_default());
        }
        return;
    }
    let cat = vmfs_rescue::recover::rebuild::rebuild(&srcs, &found);
    for v in &cat.volumes {
        eprintln!("volume {} v{} previous={} how: {}", v.name, v.version, v.previous, v.how);
    }
    for n in &cat.notes {
        eprintln!("note: {n}");
    }
    for i in &cat.items {
        let sha = i.content.as_ref().map(|c| {
            let mut h = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0;
            while off < c.len() {
                let n = ((c.len() - off) as usize).min(buf.len());
                c.read_at(off, &mut buf[..n]).expect("read");
                h.update(&buf[..n]);
                off += n as u64;
            }
            vmfs_rescue::extract::hex(&h.finalize())
        });
        let j = serde_json::json!({"path": i.out_path(), "state": i.state, "original": i.original, "size": i.size,
            "method": i.method, "confidence": i.confidence, "sha256": sha, "missing": i.missing, "kind": i.kind});
        println!("{j}");
    }
}
