//! Words and numbers as the screens print them.

use crate::recover::rebuild::{Confidence, State};

/// Bytes in binary units: "16.0 GiB".
pub fn size(b: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < U.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", U[u])
}

/// A Unix time as "YYYY-MM-DD HH:MM" (UTC); "-" for 0.
pub fn time(t: u32) -> String {
    if t == 0 {
        return "-".into();
    }
    let days = i64::from(t / 86_400);
    let secs = t % 86_400;
    let (y, m, d) = crate::calendar::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", secs / 3600, secs / 60 % 60)
}

/// A duration in seconds as "1h02m", "3m05s", "12s".
pub fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

pub fn state(s: State) -> &'static str {
    match s {
        State::Live => "live",
        State::Orphaned => "orphaned",
        State::Deleted => "deleted",
        State::Damaged => "damaged",
        State::Previous => "previous",
        State::Carved => "carved",
        State::Regenerated => "regenerated",
    }
}

/// A guest file system's time (Unix seconds; `None` when unknown) as [`time`] prints it.
pub fn time64(t: Option<i64>) -> String {
    t.and_then(|t| u32::try_from(t).ok()).map_or_else(|| "-".into(), time)
}

/// How sure a deleted guest file's content is.
pub fn guest_confidence(c: crate::guest::Confidence) -> &'static str {
    match c {
        crate::guest::Confidence::High => "high",
        crate::guest::Confidence::Medium => "med",
        crate::guest::Confidence::Low => "low",
    }
}

pub fn confidence(c: Confidence) -> &'static str {
    match c {
        Confidence::High => "high",
        Confidence::Medium => "med",
        Confidence::Low => "low",
    }
}

/// `s` cut to `w` characters, with "…" (or "~" in ASCII) when cut.
pub fn fit(s: &str, w: usize, ascii: bool) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    let keep: String = s.chars().take(w.saturating_sub(1)).collect();
    format!("{keep}{}", if ascii { "~" } else { "…" })
}

/// The first lines of a file: text when it reads as text, else a hex dump.
pub fn preview(bytes: &[u8], max_lines: usize) -> Vec<String> {
    let printable =
        bytes.iter().filter(|&&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b)).count();
    let text = !bytes.contains(&0) && (std::str::from_utf8(bytes).is_ok() || printable * 100 >= bytes.len() * 95);
    if text && !bytes.is_empty() {
        return String::from_utf8_lossy(bytes)
            .lines()
            .take(max_lines)
            .map(|l| l.replace('\t', "    ").chars().filter(|c| !c.is_control()).collect())
            .collect();
    }
    bytes
        .chunks(16)
        .take(max_lines)
        .enumerate()
        .map(|(i, c)| {
            let hex: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
            let asc: String = c.iter().map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '.' }).collect();
            format!("{:08x}  {:<47}  {asc}", i * 16, hex.join(" "))
        })
        .collect()
}

/// A progress bar of `w` cells: "#####-----" in ASCII, blocks otherwise.
pub fn bar(frac: f64, w: usize, ascii: bool) -> String {
    let f = frac.clamp(0.0, 1.0);
    let full = ((f * w as f64).round() as usize).min(w);
    let (on, off) = if ascii { ('#', '-') } else { ('█', '░') };
    std::iter::repeat_n(on, full).chain(std::iter::repeat_n(off, w - full)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(16 << 30), "16.0 GiB");
        assert_eq!(time(0), "-");
        assert_eq!(time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(time(951_782_400), "2000-02-29 00:00");
        assert_eq!(duration(3725), "1h02m");
        assert_eq!(fit("abcdef", 4, true), "abc~");
        assert_eq!(preview(b"a\tb\nc", 10), ["a    b", "c"]);
        assert_eq!(
            preview(&[0u8, 1, 2, 0x41], 1)[0],
            "00000000  00 01 02 41                                      ...A"
        );
    }
}
