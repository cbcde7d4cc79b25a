//! NBD wire format (doc/proto.md of NetworkBlockDevice/nbd): constants, the pure parsers of
//! what a client sends (option requests, transmission requests) and encoders of what we send.
//! No I/O here, so the fuzz target drives exactly the code the server runs.

/// "NBDMAGIC": first word of the handshake.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// "IHAVEOPT": newstyle negotiation, and the magic of every option request.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic of an option reply.
pub const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of a transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Magic of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Handshake flags (server): fixed newstyle, and "no 124 zero bytes" after EXPORT_NAME.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flags.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// Transmission flags.
pub const FLAG_HAS_FLAGS: u16 = 1 << 0;
pub const FLAG_READ_ONLY: u16 = 1 << 1;
pub const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// Options.
pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_STARTTLS: u32 = 5;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;
pub const OPT_LIST_META_CONTEXT: u32 = 9;
pub const OPT_SET_META_CONTEXT: u32 = 10;

/// Option reply types.
pub const REP_ACK: u32 = 1;
pub const REP_INFO: u32 = 3;
pub const REP_META_CONTEXT: u32 = 4;
pub const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
pub const REP_ERR_POLICY: u32 = (1 << 31) + 2;
pub const REP_ERR_INVALID: u32 = (1 << 31) + 3;
pub const REP_ERR_TLS_REQD: u32 = (1 << 31) + 5;
pub const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;

/// Information types of NBD_REP_INFO.
pub const INFO_EXPORT: u16 = 0;
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Commands.
pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_WRITE_ZEROES: u16 = 6;
pub const CMD_BLOCK_STATUS: u16 = 7;
pub const CMD_RESIZE: u16 = 8;

/// Command flags.
pub const CMD_FLAG_FUA: u16 = 1 << 0;
pub const CMD_FLAG_REQ_ONE: u16 = 1 << 3;

/// Structured reply chunk types and flags.
pub const REPLY_FLAG_DONE: u16 = 1 << 0;
pub const REPLY_TYPE_NONE: u16 = 0;
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
pub const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
pub const REPLY_TYPE_ERROR: u16 = (1 << 15) + 1;
pub const REPLY_TYPE_ERROR_OFFSET: u16 = (1 << 15) + 2;

/// `base:allocation` status bits.
pub const STATE_HOLE: u32 = 1 << 0;
pub const STATE_ZERO: u32 = 1 << 1;

/// Error values (the protocol's, which happen to be Linux errno numbers).
pub const EPERM: u32 = 1;
pub const EIO: u32 = 5;
pub const EINVAL: u32 = 22;

/// The one metadata context we serve, and its id.
pub const BASE_ALLOCATION: &str = "base:allocation";
pub const BASE_ALLOCATION_ID: u32 = 1;

/// Longest string (export name, query) the protocol allows.
pub const MAX_STRING: usize = 4096;

/// Size of an option request header and of a transmission request.
pub const OPTION_HEADER_LEN: usize = 16;
pub const REQUEST_LEN: usize = 28;

/// A parsed option request.
#[derive(Debug, PartialEq, Eq)]
pub enum Opt {
    ExportName(Vec<u8>),
    Abort,
    List,
    StartTls,
    /// NBD_OPT_INFO (`go: false`) or NBD_OPT_GO: the export and the information asked for.
    Info {
        go: bool,
        name: Vec<u8>,
        requests: Vec<u16>,
    },
    StructuredReply,
    /// NBD_OPT_LIST_META_CONTEXT (`set: false`) or NBD_OPT_SET_META_CONTEXT.
    MetaContext {
        set: bool,
        name: Vec<u8>,
        queries: Vec<Vec<u8>>,
    },
    Unknown(u32),
}

/// Why an option's data is malformed (answered with NBD_REP_ERR_INVALID; the session goes on).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed option: {0}")]
pub struct OptInvalid(pub &'static str);

/// A bounds-checked reader over an option's data.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], OptInvalid> {
        if n > self.0.len() {
            return Err(OptInvalid("shorter than its fields say"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, OptInvalid> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, OptInvalid> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<Vec<u8>, OptInvalid> {
        let n = self.u32()? as usize;
        if n > MAX_STRING {
            return Err(OptInvalid("string longer than 4096 bytes"));
        }
        Ok(self.take(n)?.to_vec())
    }
    fn end(&self) -> Result<(), OptInvalid> {
        if self.0.is_empty() { Ok(()) } else { Err(OptInvalid("longer than its fields say")) }
    }
}

/// The option code and data length of an option request header (None: not IHAVEOPT).
pub fn parse_option_header(h: &[u8; OPTION_HEADER_LEN]) -> Option<(u32, u32)> {
    let magic = u64::from_be_bytes(h[0..8].try_into().ok()?);
    if magic != IHAVEOPT {
        return None;
    }
    let code = u32::from_be_bytes(h[8..12].try_into().ok()?);
    let len = u32::from_be_bytes(h[12..16].try_into().ok()?);
    Some((code, len))
}

/// Parse an option's data. Counts in the data never size an allocation: each item must be
/// present in `data`, which the caller has already capped.
pub fn parse_option(code: u32, data: &[u8]) -> Result<Opt, OptInvalid> {
    let mut c = Cursor(data);
    let opt = match code {
        OPT_EXPORT_NAME => {
            if data.len() > MAX_STRING {
                return Err(OptInvalid("export name longer than 4096 bytes"));
            }
            return Ok(Opt::ExportName(data.to_vec()));
        }
        OPT_ABORT => Opt::Abort,
        OPT_LIST => Opt::List,
        OPT_STARTTLS => Opt::StartTls,
        OPT_STRUCTURED_REPLY => Opt::StructuredReply,
        OPT_INFO | OPT_GO => {
            let name = c.string()?;
            let n = c.u16()?;
            let mut requests = Vec::new();
            for _ in 0..n {
                requests.push(c.u16()?);
            }
            Opt::Info { go: code == OPT_GO, name, requests }
        }
        OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => {
            let name = c.string()?;
            let n = c.u32()?;
            let mut queries = Vec::new();
            for _ in 0..n {
                queries.push(c.string()?);
            }
            Opt::MetaContext { set: code == OPT_SET_META_CONTEXT, name, queries }
        }
        other => return Ok(Opt::Unknown(other)),
    };
    // Options without data must have none.
    c.end()?;
    Ok(opt)
}

/// Where a connection stands with TLS ("TLS support" in the spec: we run NOTLS or FORCEDTLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// The server offers no TLS (NOTLS).
    Off,
    /// TLS is required and not yet on (FORCEDTLS before NBD_OPT_STARTTLS).
    Required,
    /// TLS is on: option haggling goes on inside it.
    Active,
}

/// What to do with an option given the TLS mode, before looking at its data.
#[derive(Debug, PartialEq, Eq)]
pub enum TlsGate {
    /// Handle the option as usual.
    Pass,
    /// NBD_OPT_STARTTLS to accept: reply ACK (if it carries no data), then the TLS handshake.
    StartTls,
    /// Reply with this error type and message; the negotiation goes on.
    Refuse(u32, &'static str),
    /// Close the connection (an option that cannot be refused).
    Close(&'static str),
}

/// The spec's rules for an option code in each TLS mode: in FORCEDTLS, only STARTTLS and
/// ABORT before TLS, other options ERR_TLS_REQD, EXPORT_NAME (which has no error reply)
/// closes; STARTTLS once TLS is on is ERR_INVALID; without TLS, STARTTLS is ERR_UNSUP.
pub fn tls_gate(code: u32, mode: TlsMode) -> TlsGate {
    match (code, mode) {
        (OPT_STARTTLS, TlsMode::Off) => {
            TlsGate::Refuse(REP_ERR_UNSUP, "TLS is not offered here (serve nbd --tls offers it)")
        }
        (OPT_STARTTLS, TlsMode::Required) => TlsGate::StartTls,
        (OPT_STARTTLS, TlsMode::Active) => TlsGate::Refuse(REP_ERR_INVALID, "TLS is already on"),
        (OPT_ABORT, _) | (_, TlsMode::Off | TlsMode::Active) => TlsGate::Pass,
        (OPT_EXPORT_NAME, TlsMode::Required) => TlsGate::Close("NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS"),
        (_, TlsMode::Required) => TlsGate::Refuse(REP_ERR_TLS_REQD, "TLS is required: send NBD_OPT_STARTTLS first"),
    }
}

/// A transmission request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub flags: u16,
    pub kind: u16,
    pub handle: u64,
    pub offset: u64,
    pub len: u32,
}

/// Parse a request header (None: wrong magic; the stream cannot be trusted any further).
pub fn parse_request(b: &[u8; REQUEST_LEN]) -> Option<Request> {
    if u32::from_be_bytes(b[0..4].try_into().ok()?) != REQUEST_MAGIC {
        return None;
    }
    Some(Request {
        flags: u16::from_be_bytes(b[4..6].try_into().ok()?),
        kind: u16::from_be_bytes(b[6..8].try_into().ok()?),
        handle: u64::from_be_bytes(b[8..16].try_into().ok()?),
        offset: u64::from_be_bytes(b[16..24].try_into().ok()?),
        len: u32::from_be_bytes(b[24..28].try_into().ok()?),
    })
}

/// What the session has negotiated, as far as a request's validity depends on it.
#[derive(Clone, Copy, Debug)]
pub struct Session {
    pub size: u64,
    pub max_request: u32,
    pub structured: bool,
    pub base_allocation: bool,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Read {
        offset: u64,
        len: u32,
    },
    BlockStatus {
        offset: u64,
        len: u32,
        one: bool,
    },
    /// Success with no data (FLUSH on a read-only export).
    Ok,
    /// Reply with this error; first read and drop `discard` payload bytes (a WRITE's data).
    Error {
        errno: u32,
        discard: u32,
        why: &'static str,
    },
    /// The client said goodbye.
    Disconnect,
    /// The stream cannot be kept in step (a payload too large to skip): close it.
    Drop(&'static str),
}

/// Decide what a request asks for, checking flags, bounds and the negotiated state.
pub fn decide(r: &Request, s: &Session) -> Action {
    let err = |errno, why| Action::Error { errno, discard: 0, why };
    let in_bounds = r.offset.checked_add(u64::from(r.len)).is_some_and(|e| e <= s.size);
    match r.kind {
        CMD_READ => {
            if r.flags & !CMD_FLAG_FUA != 0 {
                err(EINVAL, "unsupported flag on READ")
            } else if r.len == 0 || r.len > s.max_request {
                err(EINVAL, "read length zero or over the maximum block size")
            } else if !in_bounds {
                err(EINVAL, "read past the end of the export")
            } else {
                Action::Read { offset: r.offset, len: r.len }
            }
        }
        CMD_BLOCK_STATUS => {
            if !s.structured || !s.base_allocation {
                err(EINVAL, "block status without a negotiated metadata context")
            } else if r.flags & !CMD_FLAG_REQ_ONE != 0 {
                err(EINVAL, "unsupported flag on BLOCK_STATUS")
            } else if r.len == 0 || !in_bounds {
                err(EINVAL, "block status range empty or past the end of the export")
            } else {
                Action::BlockStatus { offset: r.offset, len: r.len, one: r.flags & CMD_FLAG_REQ_ONE != 0 }
            }
        }
        CMD_WRITE if r.len > s.max_request => Action::Drop("write payload over the maximum block size"),
        CMD_WRITE => Action::Error { errno: EPERM, discard: r.len, why: "read-only export" },
        CMD_TRIM | CMD_WRITE_ZEROES | CMD_RESIZE => err(EPERM, "read-only export"),
        CMD_DISC => Action::Disconnect,
        // Nothing is ever written: a flush has nothing to do.
        CMD_FLUSH => Action::Ok,
        _ => err(EINVAL, "unsupported command"),
    }
}

/// An option reply (header and data).
pub fn option_reply(opt: u32, kind: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(20 + data.len());
    v.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    v.extend_from_slice(&opt.to_be_bytes());
    v.extend_from_slice(&kind.to_be_bytes());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// NBD_INFO_EXPORT data.
pub fn info_export(size: u64, flags: u16) -> Vec<u8> {
    let mut v = INFO_EXPORT.to_be_bytes().to_vec();
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(&flags.to_be_bytes());
    v
}

/// NBD_INFO_BLOCK_SIZE data.
pub fn info_block_size(min: u32, preferred: u32, max: u32) -> Vec<u8> {
    let mut v = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
    for x in [min, preferred, max] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

/// NBD_REP_META_CONTEXT data.
pub fn meta_context(id: u32, name: &str) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(name.as_bytes());
    v
}

/// A simple reply header.
pub fn simple_reply(errno: u32, handle: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    h[4..8].copy_from_slice(&errno.to_be_bytes());
    h[8..16].copy_from_slice(&handle.to_be_bytes());
    h
}

/// A structured reply chunk header for a payload of `len` bytes.
pub fn chunk_header(flags: u16, kind: u16, handle: u64, len: u32) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    h[4..6].copy_from_slice(&flags.to_be_bytes());
    h[6..8].copy_from_slice(&kind.to_be_bytes());
    h[8..16].copy_from_slice(&handle.to_be_bytes());
    h[16..20].copy_from_slice(&len.to_be_bytes());
    h
}

/// An error chunk (NBD_REPLY_TYPE_ERROR, or ERROR_OFFSET when `offset` is given), always the
/// last of its reply.
pub fn error_chunk(handle: u64, errno: u32, msg: &str, offset: Option<u64>) -> Vec<u8> {
    let msg = &msg.as_bytes()[..msg.len().min(MAX_STRING)];
    let mut payload = errno.to_be_bytes().to_vec();
    payload.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    payload.extend_from_slice(msg);
    let kind = match offset {
        Some(o) => {
            payload.extend_from_slice(&o.to_be_bytes());
            REPLY_TYPE_ERROR_OFFSET
        }
        None => REPLY_TYPE_ERROR,
    };
    let mut v = chunk_header(REPLY_FLAG_DONE, kind, handle, payload.len() as u32).to_vec();
    v.extend_from_slice(&payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session { size: 1 << 20, max_request: 32 << 20, structured: true, base_allocation: true }
    }

    fn req(kind: u16, flags: u16, offset: u64, len: u32) -> Request {
        Request { flags, kind, handle: 7, offset, len }
    }

    #[test]
    fn go_and_meta_context_parse() {
        let mut d = 4u32.to_be_bytes().to_vec();
        d.extend_from_slice(b"s/vm");
        d.extend_from_slice(&1u16.to_be_bytes());
        d.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
        assert_eq!(
            parse_option(OPT_GO, &d),
            Ok(Opt::Info { go: true, name: b"s/vm".to_vec(), requests: vec![INFO_BLOCK_SIZE] })
        );
        // A count larger than the data: invalid, and nothing allocated for it.
        let mut bad = 0u32.to_be_bytes().to_vec();
        bad.extend_from_slice(&u16::MAX.to_be_bytes());
        assert!(parse_option(OPT_INFO, &bad).is_err());
        let mut m = 0u32.to_be_bytes().to_vec();
        m.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_option(OPT_SET_META_CONTEXT, &m).is_err());
        let mut m = 0u32.to_be_bytes().to_vec();
        m.extend_from_slice(&1u32.to_be_bytes());
        m.extend_from_slice(&15u32.to_be_bytes());
        m.extend_from_slice(BASE_ALLOCATION.as_bytes());
        assert_eq!(
            parse_option(OPT_SET_META_CONTEXT, &m),
            Ok(Opt::MetaContext { set: true, name: vec![], queries: vec![BASE_ALLOCATION.as_bytes().to_vec()] })
        );
        assert!(parse_option(OPT_STRUCTURED_REPLY, b"x").is_err());
        assert_eq!(parse_option(99, b"anything"), Ok(Opt::Unknown(99)));
    }

    #[test]
    fn starttls_follows_the_mode() {
        use TlsGate::*;
        assert!(matches!(tls_gate(OPT_STARTTLS, TlsMode::Off), Refuse(REP_ERR_UNSUP, _)));
        assert_eq!(tls_gate(OPT_STARTTLS, TlsMode::Required), StartTls);
        assert!(matches!(tls_gate(OPT_STARTTLS, TlsMode::Active), Refuse(REP_ERR_INVALID, _)));
        // FORCEDTLS: everything but STARTTLS and ABORT is refused before TLS, even unknown
        // options; EXPORT_NAME cannot be refused, so it closes.
        for code in [OPT_GO, OPT_INFO, OPT_LIST, OPT_STRUCTURED_REPLY, OPT_SET_META_CONTEXT, 99] {
            assert!(matches!(tls_gate(code, TlsMode::Required), Refuse(REP_ERR_TLS_REQD, _)), "{code}");
            assert_eq!(tls_gate(code, TlsMode::Active), Pass, "{code}");
            assert_eq!(tls_gate(code, TlsMode::Off), Pass, "{code}");
        }
        assert!(matches!(tls_gate(OPT_EXPORT_NAME, TlsMode::Required), Close(_)));
        assert_eq!(tls_gate(OPT_EXPORT_NAME, TlsMode::Active), Pass);
        assert_eq!(tls_gate(OPT_ABORT, TlsMode::Required), Pass);
        // NBD_REP_ERR_TLS_REQD is never sent once TLS is on or when it is not offered.
        for mode in [TlsMode::Off, TlsMode::Active] {
            for code in 0..20 {
                assert!(!matches!(tls_gate(code, mode), Refuse(REP_ERR_TLS_REQD, _)));
            }
        }
    }

    #[test]
    fn requests_are_checked() {
        let s = session();
        assert_eq!(decide(&req(CMD_READ, 0, 0, 4096), &s), Action::Read { offset: 0, len: 4096 });
        assert!(matches!(decide(&req(CMD_READ, 0, (1 << 20) - 1, 2), &s), Action::Error { errno: EINVAL, .. }));
        assert!(matches!(decide(&req(CMD_READ, 0, u64::MAX, 2), &s), Action::Error { errno: EINVAL, .. }));
        assert!(matches!(decide(&req(CMD_READ, 0, 0, 64 << 20), &s), Action::Error { errno: EINVAL, .. }));
        assert!(matches!(decide(&req(CMD_READ, 4, 0, 1), &s), Action::Error { errno: EINVAL, .. }));
        assert_eq!(
            decide(&req(CMD_WRITE, 0, 0, 512), &s),
            Action::Error { errno: EPERM, discard: 512, why: "read-only export" }
        );
        assert!(matches!(decide(&req(CMD_WRITE, 0, 0, u32::MAX), &s), Action::Drop(_)));
        assert!(matches!(decide(&req(CMD_TRIM, 0, 0, 512), &s), Action::Error { errno: EPERM, .. }));
        assert_eq!(decide(&req(CMD_DISC, 0, 0, 0), &s), Action::Disconnect);
        assert_eq!(decide(&req(CMD_FLUSH, 0, 0, 0), &s), Action::Ok);
        assert_eq!(
            decide(&req(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 0, 512), &s),
            Action::BlockStatus { offset: 0, len: 512, one: true }
        );
        let plain = Session { structured: false, base_allocation: false, ..s };
        assert!(matches!(decide(&req(CMD_BLOCK_STATUS, 0, 0, 512), &plain), Action::Error { errno: EINVAL, .. }));
        assert!(matches!(decide(&req(42, 0, 0, 0), &s), Action::Error { errno: EINVAL, .. }));
    }

    #[test]
    fn request_magic_is_checked() {
        let mut b = [0u8; REQUEST_LEN];
        assert_eq!(parse_request(&b), None);
        b[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        b[27] = 9;
        assert_eq!(parse_request(&b).map(|r| r.len), Some(9));
    }
}
