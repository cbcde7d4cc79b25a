//! The network exports' parsers on arbitrary bytes: NBD option headers and option data, NBD
//! transmission requests and the decision taken on them, and the HTTP Range header. No panic,
//! no allocation sized by a field of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmfs_rescue::net::http::range::{RangeAnswer, parse_range};
use vmfs_rescue::net::nbd::proto::{self, Session};

fuzz_target!(|data: &[u8]| {
    if let Some(h) = data.get(..proto::OPTION_HEADER_LEN) {
        let h: &[u8; proto::OPTION_HEADER_LEN] = h.try_into().unwrap();
        let _ = proto::parse_option_header(h);
        // The data as every option code that carries some.
        let rest = &data[proto::OPTION_HEADER_LEN..];
        for code in [1, 2, 3, 5, 6, 7, 8, 9, 10, u32::from(h[11])] {
            let _ = proto::parse_option(code, rest);
        }
    }
    for w in data.chunks_exact(proto::REQUEST_LEN) {
        let w: &[u8; proto::REQUEST_LEN] = w.try_into().unwrap();
        let mut r = w.to_owned();
        // Also with the right magic, so the decision is reached.
        r[..4].copy_from_slice(&proto::REQUEST_MAGIC.to_be_bytes());
        for b in [w, &r] {
            if let Some(req) = proto::parse_request(b) {
                for (size, structured) in [(0, false), (1 << 30, true), (u64::MAX, true)] {
                    let s = Session { size, max_request: 32 << 20, structured, base_allocation: structured };
                    let _ = proto::decide(&req, &s);
                }
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    for len in [0, 1, 1000, u64::MAX] {
        if let RangeAnswer::Partial(r) = parse_range(&text, len) {
            assert!(r.start < r.end && r.end <= len, "{r:?}");
        }
    }
});
