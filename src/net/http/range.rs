//! The `Range` request header (RFC 9110 §14.2), single range: enough for resumed downloads
//! (`curl -C -`, `wget -c`) and for players or browsers that seek. Pure, so it is fuzzed.

use std::ops::Range;

/// Longest header value looked at; longer ones are ignored (the whole file is sent).
const MAX_HEADER: usize = 1024;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range (absent, malformed, several ranges, another unit): 200 with everything.
    Full,
    /// One satisfiable range: 206.
    Partial(Range<u64>),
    /// A well-formed range that starts past the end: 416.
    Unsatisfiable,
}

/// Interpret a `Range` header value. Malformed values are ignored, as the RFC lets a server
/// do; several ranges are answered with the whole representation (also allowed).
pub fn parse_range(value: &str, len: u64) -> RangeAnswer {
    if value.len() > MAX_HEADER {
        return RangeAnswer::Full;
    }
    let Some((unit, spec)) = value.trim().split_once('=') else { return RangeAnswer::Full };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAnswer::Full;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.split_once('-') else { return RangeAnswer::Full };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.is_empty() {
        // Suffix: the last N bytes.
        let Some(n) = num(last) else { return RangeAnswer::Full };
        if n == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial(len.saturating_sub(n)..len);
    }
    let Some(a) = num(first) else { return RangeAnswer::Full };
    let b = if last.is_empty() {
        None
    } else {
        match num(last) {
            Some(b) if b >= a => Some(b),
            _ => return RangeAnswer::Full,
        }
    };
    if a >= len {
        return RangeAnswer::Unsatisfiable;
    }
    let end = b.map_or(len, |b| b.saturating_add(1).min(len));
    RangeAnswer::Partial(a..end)
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::*;
    use super::parse_range;

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Partial(0..100));
        assert_eq!(parse_range("bytes=500-", 1000), Partial(500..1000));
        assert_eq!(parse_range("bytes=-100", 1000), Partial(900..1000));
        assert_eq!(parse_range("bytes=-5000", 1000), Partial(0..1000));
        assert_eq!(parse_range("bytes=900-5000", 1000), Partial(900..1000));
        assert_eq!(parse_range(" Bytes = 1 - 1 ", 1000), Partial(1..2));
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Full);
        assert_eq!(parse_range("items=0-1", 1000), Full);
        assert_eq!(parse_range("bytes=x-1", 1000), Full);
        assert_eq!(parse_range("bytes=+1-2", 1000), Full);
        assert_eq!(parse_range("bytes=99999999999999999999999-", 1000), Full);
        assert_eq!(parse_range("bytes=18446744073709551615-18446744073709551615", u64::MAX), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-18446744073709551615", u64::MAX), Partial(0..u64::MAX));
        assert_eq!(parse_range("", 1000), Full);
    }
}
