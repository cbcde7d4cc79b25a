//! LVM2's metadata text (the config syntax of `lib/config/config.c`): `key = value` lines and
//! `name { ... }` sections; values are integers, "strings" with `\"` and `\\` escapes, and
//! `[ ... ]` lists of them; `#` starts a comment. A small parser for hostile input: nesting,
//! nodes and integer sizes are bounded, and every error names its byte offset.

/// Deepest nesting of sections and lists (LVM's own metadata uses 5).
const MAX_DEPTH: usize = 32;
/// Most values in one text (a VG with thousands of LVs stays far below).
const MAX_NODES: usize = 1 << 20;

/// A value of the metadata text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An integer (`extent_size = 8192`).
    Int(i64),
    /// A string, unescaped; also a number LVM would read as a float (kept as written).
    Str(String),
    /// `[ v, v ]`.
    List(Vec<Value>),
    /// `name { key = value ... }`, in written order.
    Section(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of a section.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Section(s) => s.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    /// The integer member `key`.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The string member `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The members of a section (empty for other values).
    pub fn members(&self) -> &[(String, Value)] {
        match self {
            Value::Section(s) => s,
            _ => &[],
        }
    }
}

/// Parse a whole text into its top-level section.
pub fn parse(text: &[u8]) -> Result<Value, String> {
    let mut p = Parser { b: text, i: 0, nodes: 0 };
    let members = p.members(0, false)?;
    Ok(Value::Section(members))
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    nodes: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    /// Skip blanks and comments.
    fn skip(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'#' {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.i += 1;
                }
            } else if c.is_ascii_whitespace() || c == 0 {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn count(&mut self) -> Result<(), String> {
        self.nodes += 1;
        if self.nodes > MAX_NODES { Err(self.err("more than 1 Mi values")) } else { Ok(()) }
    }

    /// Members until `}` (`inner`) or the end of the text.
    fn members(&mut self, depth: usize, inner: bool) -> Result<Vec<(String, Value)>, String> {
        if depth > MAX_DEPTH {
            return Err(self.err("sections nested deeper than 32"));
        }
        let mut out = Vec::new();
        loop {
            self.skip();
            match self.peek() {
                None if inner => return Err(self.err("unterminated section")),
                None => return Ok(out),
                Some(b'}') if inner => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(_) => {}
            }
            let key = self.ident()?;
            self.skip();
            self.count()?;
            match self.peek() {
                Some(b'=') => {
                    self.i += 1;
                    self.skip();
                    let v = self.value(depth + 1)?;
                    out.push((key, v));
                }
                Some(b'{') => {
                    self.i += 1;
                    let m = self.members(depth + 1, true)?;
                    out.push((key, Value::Section(m)));
                }
                _ => return Err(self.err(&format!("`=` or `{{` expected after `{key}`"))),
            }
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        if self.peek() == Some(b'"') {
            return self.string();
        }
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || b"_.+-/@:".contains(&c)) {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("a name expected"));
        }
        Ok(String::from_utf8_lossy(self.b.get(start..self.i).unwrap_or_default()).into_owned())
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.i;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => {
                    self.i = start;
                    return Err(self.err("unterminated string"));
                }
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    self.i += 1;
                    if let Some(c) = self.peek() {
                        out.push(c);
                        self.i += 1;
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.err("lists nested deeper than 32"));
        }
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip();
                    match self.peek() {
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::List(items));
                        }
                        Some(b',') => self.i += 1,
                        None => return Err(self.err("unterminated list")),
                        Some(_) => {
                            self.count()?;
                            items.push(self.value(depth + 1)?);
                        }
                    }
                }
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.') {
                    self.i += 1;
                }
                let s = String::from_utf8_lossy(self.b.get(start..self.i).unwrap_or_default()).into_owned();
                if s.contains('.') {
                    return Ok(Value::Str(s));
                }
                s.parse::<i64>().map(Value::Int).map_err(|_| {
                    self.i = start;
                    self.err(&format!("number `{s}` is not a 64-bit integer"))
                })
            }
            _ => Err(self.err("a value expected")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VG: &str = r#"vg0 {
id = "abc-def"
seqno = 7
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8192	# 4 Megabytes

physical_volumes {

pv0 {
id = "Xy-Z"
device = "/dev/loop0"	# Hint only
dev_size = 131072
pe_start = 2048
}
}
}
# Generated by LVM2 version 2.03.16(2) (2022-05-18): Thu Nov 26 15:40:00 2026

contents = "Text Format Volume Group"
version = 1
description = "with \"quotes\" and \\ backslash"
creation_time = 1764171600	# Thu Nov 26 15:40:00 2026
"#;

    #[test]
    fn parses_lvm_metadata_text() {
        let v = parse(VG.as_bytes()).unwrap();
        let vg = v.get("vg0").unwrap();
        assert_eq!(vg.int("seqno"), Some(7));
        assert_eq!(vg.int("extent_size"), Some(8192));
        assert_eq!(
            vg.get("status"),
            Some(&Value::List(vec![
                Value::Str("RESIZEABLE".into()),
                Value::Str("READ".into()),
                Value::Str("WRITE".into())
            ]))
        );
        let pv = vg.get("physical_volumes").unwrap().get("pv0").unwrap();
        assert_eq!(pv.str("device"), Some("/dev/loop0"));
        assert_eq!(pv.int("pe_start"), Some(2048));
        assert_eq!(v.str("description"), Some("with \"quotes\" and \\ backslash"));
        assert_eq!(v.int("version"), Some(1));
    }

    #[test]
    fn hostile_texts_are_errors_with_offsets() {
        // Deep nesting, of sections and of lists.
        let deep = "a {".repeat(10_000);
        assert!(parse(deep.as_bytes()).unwrap_err().contains("deeper"));
        let deep = format!("a = {}", "[".repeat(100_000));
        assert!(parse(deep.as_bytes()).unwrap_err().contains("deeper"));
        // Huge numbers.
        let e = parse(b"a = 99999999999999999999999").unwrap_err();
        assert!(e.contains("not a 64-bit integer") && e.contains("byte 4"), "{e}");
        assert_eq!(parse(b"a = -9223372036854775808").unwrap().int("a"), Some(i64::MIN));
        // Unterminated strings, lists and sections.
        assert!(parse(b"a = \"abc").unwrap_err().contains("unterminated string at byte 4"));
        assert!(parse(b"a = \"abc\\").unwrap_err().contains("unterminated string"));
        assert!(parse(b"a = [1, 2").unwrap_err().contains("unterminated list"));
        assert!(parse(b"a { b = 1").unwrap_err().contains("unterminated section"));
        // Junk.
        assert!(parse(b"= 1").is_err());
        assert!(parse(b"a 1").is_err());
        assert!(parse(b"a = }").is_err());
        assert!(parse(&[0xFF, 0xFE, b'=', b'1']).is_err());
        // Many values: bounded, not a hang.
        let many = format!("a = [{}]", "1,".repeat(2 << 20));
        assert!(parse(many.as_bytes()).unwrap_err().contains("1 Mi"));
        // Empty and comment-only texts are empty sections.
        assert_eq!(parse(b"").unwrap(), Value::Section(vec![]));
        assert_eq!(parse(b"# x\n\0\0").unwrap(), Value::Section(vec![]));
    }
}
