//! `vmfs-rescue scan`: one read of every data byte of the sources into a resumable index.

use super::{Failed, Outcome, UsageError, open_sources};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vmfs_rescue::datastore::dest_on_source;
use vmfs_rescue::recover::{Progress, RecoverError, ScanOptions, ScanSummary, scan};

/// Milliseconds to sleep after each chunk read: tests slow a scan down to kill it midway.
const THROTTLE_ENV: &str = "VMFS_RESCUE_SCAN_THROTTLE";

pub fn run(sources: &[PathBuf], state: &Path, json: bool, chunk_kib: usize) -> Result<Outcome> {
    // Check before creating anything: the folder's nearest existing ancestor must not be on a
    // source (creating it there would already be a write).
    let existing = state.ancestors().find(|a| a.exists()).unwrap_or(Path::new("."));
    if let Some(src) = dest_on_source(existing, sources).or_else(|| dest_on_source(state, sources)) {
        bail!(UsageError(format!(
            "refusing to keep the scan state in {}: it is on source {}",
            state.display(),
            src.display()
        )));
    }
    std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    if let Some(src) = dest_on_source(state, sources) {
        bail!(UsageError(format!(
            "refusing to keep the scan state in {}: it is on source {}",
            state.display(),
            src.display()
        )));
    }
    let opened = open_sources(sources)?;
    let named: Vec<(String, _)> = sources.iter().map(|p| p.display().to_string()).zip(opened).collect();
    let throttle = std::env::var(THROTTLE_ENV).ok().and_then(|v| v.parse::<u64>().ok()).map(Duration::from_millis);
    let opts = ScanOptions { chunk: chunk_kib.saturating_mul(1024), throttle, ..ScanOptions::default() };
    let tty = std::io::stderr().is_terminal();
    let mut show = |p: &Progress| {
        if tty {
            eprint!("\r{}\x1b[K", progress_line(p));
        }
    };
    // Status 1 is an answer (unreadable sectors met), so a failed scan exits 2.
    let summary = scan(&named, state, &opts, &mut show).map_err(|e| match e {
        RecoverError::OtherSources { .. } => anyhow::Error::new(UsageError(e.to_string())),
        e => anyhow::Error::new(Failed(e.into())),
    })?;
    if tty {
        eprintln!();
    }
    let peak = peak_memory_mib();
    if json {
        println!("{}", summary_json(&summary, state, peak));
    } else {
        println!("{}", summary_line(&summary, peak));
    }
    Ok(if summary.progress.unreadable > 0 { Outcome::Damaged } else { Outcome::Clean })
}

fn mib(b: u64) -> f64 {
    b as f64 / f64::from(1u32 << 20)
}

fn progress_line(p: &Progress) -> String {
    let pct = if p.total > 0 { 100.0 * p.done as f64 / p.total as f64 } else { 100.0 };
    let eta = p.eta.map_or_else(|| "?".to_string(), |d| format!("{}s", d.as_secs()));
    let bad = if p.unreadable > 0 { format!(", {} unreadable bytes", p.unreadable) } else { String::new() };
    format!(
        "scan: {:.0}/{:.0} MiB ({pct:.1}%), {:.1} MB/s, ETA {eta}, {} findings{bad}",
        mib(p.done),
        mib(p.total),
        p.throughput / 1e6,
        p.findings
    )
}

fn counts(p: &Progress) -> String {
    if p.counts.is_empty() {
        return "none".into();
    }
    p.counts.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

fn summary_line(s: &ScanSummary, peak: Option<u64>) -> String {
    let p = &s.progress;
    let how = if s.already_finished {
        "already finished, nothing read"
    } else if s.resumed {
        "resumed"
    } else {
        "complete"
    };
    format!(
        "scan {how}: {} bytes of data scanned, {} read this run in {:.1} s ({:.1} MB/s); findings: {}; unreadable: {} bytes; peak memory: {} MiB",
        p.done,
        p.read_this_run,
        p.elapsed.as_secs_f64(),
        p.throughput / 1e6,
        counts(p),
        p.unreadable,
        peak.map_or_else(|| "?".to_string(), |m| m.to_string())
    )
}

fn summary_json(s: &ScanSummary, state: &Path, peak: Option<u64>) -> serde_json::Value {
    let p = &s.progress;
    let bad: Vec<_> = s
        .unreadable
        .iter()
        .enumerate()
        .flat_map(|(i, v)| v.iter().map(move |r| json!({"source": i, "offset": r.start, "len": r.end - r.start})))
        .collect();
    json!({
        "state": state.display().to_string(),
        "scanned": p.done,
        "total": p.total,
        "read_this_run": p.read_this_run,
        "seconds": p.elapsed.as_secs_f64(),
        "mb_per_s": p.throughput / 1e6,
        "findings": p.findings,
        "by_kind": p.counts,
        "unreadable_bytes": p.unreadable,
        "unreadable": bad,
        "resumed": s.resumed,
        "already_finished": s.already_finished,
        "peak_memory_mib": peak,
    })
}

/// The process's peak resident memory (VmHWM), in MiB.
fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_memory_is_read() {
        assert!(peak_memory_mib().is_some());
    }

    #[test]
    fn progress_line_names_figures() {
        let p = Progress { done: 1 << 20, total: 2 << 20, findings: 3, ..Progress::default() };
        assert!(progress_line(&p).contains("1/2 MiB (50.0%)"));
    }
}
