//! The handshake: the fixed newstyle greeting and the option haggling, in one of the TLS
//! modes of the spec (`proto::tls_gate` decides what each mode allows).

use super::proto::*;
use super::tls::Conn;
use super::{End, PREFERRED_BLOCK, Shared, read_full};
use crate::net::auth::ct_eq;
use std::time::Instant;

/// Find the export an export name names, if it carries the secret.
fn lookup(shared: &Shared, name: &[u8]) -> Option<usize> {
    let slash = name.iter().position(|&b| b == b'/')?;
    let (secret, rest) = (&name[..slash], &name[slash + 1..]);
    if !shared.secret.matches(secret) {
        return None;
    }
    let rest = rest.strip_prefix(b"/").unwrap_or(rest);
    shared.exports.iter().position(|e| ct_eq(e.name.trim_start_matches('/').as_bytes(), rest))
}

fn transmission_flags() -> u16 {
    // Read-only: several connections cannot see each other's writes, as there are none.
    FLAG_HAS_FLAGS | FLAG_READ_ONLY | FLAG_CAN_MULTI_CONN
}

/// The negotiation outcome.
pub(super) struct Chosen {
    pub export: usize,
    pub structured: bool,
    pub base_allocation: bool,
}

/// How the option haggling ended.
pub(super) enum Negotiated {
    /// The client aborted.
    Abort,
    Go(Chosen),
    /// STARTTLS was acknowledged: the TLS handshake comes next.
    StartTls,
}

/// The fixed newstyle greeting; whether the client asked for no zeroes after EXPORT_NAME.
pub(super) fn greet<S: Conn>(s: &mut S, deadline: Instant) -> Result<bool, End> {
    let mut hello = NBDMAGIC.to_be_bytes().to_vec();
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    s.write_all(&hello)?;
    let mut cf = [0u8; 4];
    read_full(s, &mut cf, Some(deadline))?;
    let cflags = u32::from_be_bytes(cf);
    if cflags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(End::Protocol("unknown client flags"));
    }
    if cflags & FLAG_C_FIXED_NEWSTYLE == 0 {
        // Without fixed newstyle an unsupported option could not be answered.
        return Err(End::Protocol("client does not speak fixed newstyle"));
    }
    Ok(cflags & FLAG_C_NO_ZEROES != 0)
}

/// The option haggling in one TLS mode; `budget` counts the options left for the connection.
pub(super) fn options<S: Conn>(
    s: &mut S,
    shared: &Shared,
    deadline: Instant,
    mode: TlsMode,
    no_zeroes: bool,
    budget: &mut usize,
) -> Result<Negotiated, End> {
    let lim = &shared.limits;
    let deadline = Some(deadline);
    let (mut structured, mut base_allocation) = (false, false);
    while *budget > 0 {
        *budget -= 1;
        let mut h = [0u8; OPTION_HEADER_LEN];
        read_full(s, &mut h, deadline)?;
        let Some((code, len)) = parse_option_header(&h) else {
            return Err(End::Protocol("option without IHAVEOPT magic"));
        };
        if len > lim.max_option {
            return Err(End::Protocol("option data too long"));
        }
        let mut data = vec![0u8; len as usize];
        read_full(s, &mut data, deadline)?;
        let reply = |s: &mut S, kind: u32, d: &[u8]| s.write_all(&option_reply(code, kind, d));
        match tls_gate(code, mode) {
            TlsGate::Pass => {}
            TlsGate::Refuse(kind, why) => {
                reply(s, kind, why.as_bytes())?;
                continue;
            }
            TlsGate::Close(why) => return Err(End::Protocol(why)),
            TlsGate::StartTls if !data.is_empty() => {
                reply(s, REP_ERR_INVALID, b"NBD_OPT_STARTTLS carries no data")?;
                continue;
            }
            TlsGate::StartTls => {
                reply(s, REP_ACK, &[])?;
                return Ok(Negotiated::StartTls);
            }
        }
        let opt = match parse_option(code, &data) {
            Ok(o) => o,
            Err(e) => {
                reply(s, REP_ERR_INVALID, e.0.as_bytes())?;
                continue;
            }
        };
        match opt {
            Opt::ExportName(name) => {
                // No way to answer "unknown" here: the protocol says close.
                let Some(i) = lookup(shared, &name) else { return Err(End::Protocol("unknown export name")) };
                let mut v = shared.exports[i].disk.len().to_be_bytes().to_vec();
                v.extend_from_slice(&transmission_flags().to_be_bytes());
                if !no_zeroes {
                    v.extend_from_slice(&[0u8; 124]);
                }
                s.write_all(&v)?;
                return Ok(Negotiated::Go(Chosen { export: i, structured: false, base_allocation: false }));
            }
            Opt::Abort => {
                reply(s, REP_ACK, &[])?;
                return Ok(Negotiated::Abort);
            }
            Opt::List => reply(s, REP_ERR_POLICY, b"export names carry the secret: they are not listed")?,
            // Answered by tls_gate in every mode; kept for completeness.
            Opt::StartTls => reply(s, REP_ERR_INVALID, b"unexpected NBD_OPT_STARTTLS")?,
            Opt::StructuredReply => {
                structured = true;
                reply(s, REP_ACK, &[])?;
            }
            Opt::Info { go, name, requests } => {
                let Some(i) = lookup(shared, &name) else {
                    reply(s, REP_ERR_UNKNOWN, b"no such export")?;
                    continue;
                };
                let size = shared.exports[i].disk.len();
                reply(s, REP_INFO, &info_export(size, transmission_flags()))?;
                if requests.contains(&INFO_BLOCK_SIZE) {
                    reply(s, REP_INFO, &info_block_size(1, PREFERRED_BLOCK, lim.max_request))?;
                }
                reply(s, REP_ACK, &[])?;
                if go {
                    return Ok(Negotiated::Go(Chosen { export: i, structured, base_allocation }));
                }
            }
            Opt::MetaContext { set, name, queries } => {
                if !structured {
                    reply(s, REP_ERR_INVALID, b"negotiate structured replies first")?;
                    continue;
                }
                if lookup(shared, &name).is_none() {
                    reply(s, REP_ERR_UNKNOWN, b"no such export")?;
                    continue;
                }
                // LIST with no query lists every context; "base:" lists the namespace.
                let wanted = |q: &[u8]| q == BASE_ALLOCATION.as_bytes() || (!set && q == b"base:");
                let hit = if set {
                    queries.iter().any(|q| wanted(q))
                } else {
                    queries.is_empty() || queries.iter().any(|q| wanted(q))
                };
                if hit {
                    reply(s, REP_META_CONTEXT, &meta_context(BASE_ALLOCATION_ID, BASE_ALLOCATION))?;
                }
                if set {
                    base_allocation = hit;
                }
                reply(s, REP_ACK, &[])?;
            }
            Opt::Unknown(_) => reply(s, REP_ERR_UNSUP, b"option not supported")?,
        }
    }
    Err(End::Protocol("too many options"))
}
