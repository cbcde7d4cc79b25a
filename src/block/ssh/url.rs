//! Pure functions on what the user types and what the remote host prints: no I/O here.

use super::SshError;

/// Where to connect and what to read or write there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// Login name.
    pub user: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port (22 unless given).
    pub port: u16,
    /// Absolute path on the remote host, percent-decoded.
    pub path: String,
}

impl SshTarget {
    /// `host:port` (IPv6 in brackets), for messages and connecting.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Longest URL accepted: a path on a remote host has no reason to be longer.
const MAX_URL: usize = 4096;

/// Parse `SCHEME://user@host[:port]/path` (`scheme` is "ssh" or "sftp"). The user is required
/// (root on ESXi, but never guessed); `%XX` escapes are decoded in the path, the user and the host.
pub fn parse_url(text: &str, scheme: &'static str) -> Result<SshTarget, SshError> {
    let bad = |why| SshError::BadUrl(text.chars().take(200).collect(), scheme, why);
    if text.len() > MAX_URL {
        return Err(bad("too long"));
    }
    let rest = text
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(|| bad("it must start with the scheme and ://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => return Err(bad("no path after the host")),
    };
    let (user, hostport) = authority.rsplit_once('@').ok_or_else(|| bad("no user@ before the host"))?;
    let user = decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
    if user.is_empty() || user.chars().any(|c| c.is_control() || c == ':') {
        return Err(bad("empty or invalid user (a password in the URL is not accepted)"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed [ in the host"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    let host = decode(&host).ok_or_else(|| bad("bad %-escape in the host"))?;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@') {
        return Err(bad("empty or invalid host"));
    }
    let port = match port {
        None => 22,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("the port is not 1..65535"))?,
    };
    let path = decode(path).ok_or_else(|| bad("bad %-escape in the path"))?;
    if path.contains('\0') || path.contains('\n') {
        return Err(bad("NUL or newline in the path"));
    }
    Ok(SshTarget { user, host, port, path })
}

/// Decode `%XX` escapes; `None` on a broken escape or a result that is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Quote `s` for a POSIX shell (ESXi's busybox ash too): one single-quoted word, each `'` as
/// `'\''`. Remote paths go into command lines only through this.
pub fn shell_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        if c == '\'' {
            q.push_str("'\\''");
        } else {
            q.push(c);
        }
    }
    q.push('\'');
    q
}

/// A size printed by `blockdev --getsize64`, `stat -c %s` or `wc -c`: the first line, blanks
/// trimmed, decimal digits only (no sign, no unit), fitting a u64. Anything else is `None`.
pub fn parse_size(out: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(out.get(..out.len().min(64))?).ok()?;
    let line = text.lines().next()?.trim();
    if line.is_empty() || line.len() > 20 || !line.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    line.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("ssh://root@esx01/vmfs/devices/disks/naa.600", "ssh").unwrap();
        assert_eq!(
            t,
            SshTarget {
                user: "root".into(),
                host: "esx01".into(),
                port: 22,
                path: "/vmfs/devices/disks/naa.600".into()
            }
        );
        let t = parse_url("sftp://a%40b@[::1]:2222/dir%20x/", "sftp").unwrap();
        assert_eq!((t.user.as_str(), t.host.as_str(), t.port, t.path.as_str()), ("a@b", "::1", 2222, "/dir x/"));
        assert_eq!(t.host_port(), "[::1]:2222");
        assert_eq!(parse_url("sftp://u@h:22/", "sftp").unwrap().path, "/");
        for bad in [
            "ssh://host/path",
            "ssh://u@host",
            "ssh://u@host:0/p",
            "ssh://u@host:70000/p",
            "ssh://u@host:x/p",
            "ssh://u:pw@host/p",
            "ssh://@host/p",
            "ssh://u@/p",
            "ssh://u@[::1/p",
            "ssh://u@h/%zz",
            "ssh://u@h/a%00b",
            "sftp://u@h/p",
            "/dev/sdb",
        ] {
            assert!(parse_url(bad, "ssh").is_err(), "{bad}");
        }
        assert!(parse_url(&format!("ssh://u@h/{}", "a".repeat(5000)), "ssh").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/vmfs/devices/disks/naa.1"), "'/vmfs/devices/disks/naa.1'");
        assert_eq!(shell_quote("a'b; rm -rf /"), "'a'\\''b; rm -rf /'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(b"3221225472\n"), Some(3221225472));
        assert_eq!(parse_size(b"  42  \nmore"), Some(42));
        assert_eq!(parse_size(b"0\n"), Some(0));
        for bad in [&b""[..], b"\n", b"-1", b"12 KiB", b"0x10", b"99999999999999999999999", b"\xff\xfe", b"1e9"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
