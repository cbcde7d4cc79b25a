//! `vmfs-rescue forge` and `vmfs-rescue demo`: test datastores with known content and damage.

use super::args::ForgeArgs;
use super::{Outcome, UsageError};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use vmfs_rescue::forge::scenario::{Options, SCENARIOS, forge};

/// "16G", "512M", "2T", "1048576" → bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => bail!(UsageError(format!("size {s:?}: unit must be K, M, G or T"))),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| UsageError(format!("size {s:?} is not a number with a unit")))?;
    n.checked_mul(mul).ok_or_else(|| UsageError(format!("size {s:?} is too large")).into())
}

pub fn run(a: &ForgeArgs) -> Result<Outcome> {
    if a.list {
        for s in SCENARIOS {
            println!("{:<32} {}", s.name, s.story);
        }
        return Ok(Outcome::Clean);
    }
    let scenario = a.scenario.clone().unwrap_or_default();
    if !matches!(a.version, 3 | 5 | 6) {
        bail!(UsageError(format!("--version {}: 3, 5 or 6", a.version)));
    }
    if a.outs.is_empty() || a.outs.len() > 2 {
        bail!(UsageError("give one output image, or two for a spanned volume".into()));
    }
    let opts = Options {
        scenario,
        version: a.version,
        size: parse_size(&a.size)?,
        outs: a.outs.clone(),
        seed: a.seed,
        small: a.small,
    };
    let t = forge(&opts).map_err(|e| match e {
        vmfs_rescue::forge::ForgeError::Layout(m) if m.starts_with("no scenario") => UsageError(m).into(),
        e => anyhow::Error::from(e),
    })?;
    let live = t.files.iter().filter(|f| f.state == "live").count();
    eprintln!(
        "forged {} (VMFS{} {}, {} files and folders live, {} damage records); ground truth: {}",
        opts.outs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" + "),
        t.version,
        t.fs_uuid,
        live,
        t.damage.len(),
        vmfs_rescue::forge::truth::Truth::path_for(&opts.outs[0]).display()
    );
    Ok(Outcome::Clean)
}

/// Build the demo datastore and show it as an admin would first see it.
pub fn demo(dir: Option<PathBuf>) -> Result<Outcome> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("vmfs-rescue-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let img = dir.join("datastore1.img");
    println!("Building a small damaged VMFS6 datastore in {} ...", dir.display());
    let opts =
        Options { scenario: "demo".into(), version: 6, size: 8 << 30, outs: vec![img.clone()], seed: 1, small: true };
    let t = forge(&opts)?;
    println!("It holds three VMs. What happened to it:");
    for f in t.files.iter().filter(|f| f.state == "deleted" && f.path.matches('/').count() == 1) {
        println!("  - {} was deleted (its data is still on the disk)", f.path);
    }
    for d in t.disks.iter().filter(|d| d.status != "ok") {
        println!("  - the snapshot chain of {} is broken ({})", d.chain[0], d.status);
    }
    println!("\n$ vmfs-rescue volumes {}", img.display());
    super::volumes::run(std::slice::from_ref(&img), false)?;
    println!("\n$ vmfs-rescue ls -R {}", img.display());
    let select = super::args::Select { sources: vec![img.clone()], volume: None, state: None };
    super::ls::run(&select, "/", true, false)?;
    let state = dir.join("scan");
    let out = dir.join("recovered");
    println!("\nThe deleted VM is not listed. Scan the disk and rebuild what survives:");
    println!("\n$ vmfs-rescue scan {} --state {}", img.display(), state.display());
    super::scan::run(std::slice::from_ref(&img), &state, false, 512)?;
    println!("\n$ vmfs-rescue recover {} --state {} --to {}", img.display(), state.display(), out.display());
    super::recover::run(std::slice::from_ref(&img), &state, &out, &[], 16 << 30)?;
    println!("\n$ cat {}", out.join("report.txt").display());
    print!("{}", std::fs::read_to_string(out.join("report.txt")).unwrap_or_default());
    println!("\nNext steps:");
    println!("  ls -R {}      what came back", out.display());
    println!("  vmfs-rescue extract {} --to /mnt/usb/recovered      copy the live files out", img.display());
    println!(
        "  cat {}      what a perfect recovery returns",
        vmfs_rescue::forge::truth::Truth::path_for(&img).display()
    );
    println!("  rm -r {}      when done", dir.display());
    Ok(Outcome::Clean)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16G").unwrap(), 16 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
