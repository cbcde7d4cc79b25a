//! The shared secret of an export: generated from the OS random source, compared in constant
//! time. HTTP takes it as a bearer token or a `token` query parameter; NBD as the export name's
//! prefix (`<secret>/<disk>`), so an export name cannot be guessed.

use super::NetError;

/// Random bytes in a generated secret (128 bits).
const SECRET_BYTES: usize = 16;
/// Shortest secret an admin may choose.
pub const MIN_SECRET_LEN: usize = 8;
/// Longest secret accepted (it must fit in an NBD export name and a URL).
pub const MAX_SECRET_LEN: usize = 256;

/// The secret of one running export.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    // Never in logs by accident.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A new random secret: 32 lower-case hex digits from the OS random source.
    pub fn generate() -> Result<Self, NetError> {
        let mut b = [0u8; SECRET_BYTES];
        getrandom::fill(&mut b).map_err(|e| NetError::Random(e.to_string()))?;
        Ok(Self(b.iter().map(|x| format!("{x:02x}")).collect()))
    }

    /// A secret the admin chose: URL-safe characters only (letters, digits, `-._~`), so it
    /// needs no escaping in a URL and cannot contain the `/` that ends it in an export name.
    pub fn from_user(s: &str) -> Result<Self, NetError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        if s.len() < MIN_SECRET_LEN || s.len() > MAX_SECRET_LEN || !s.chars().all(ok_char) {
            return Err(NetError::BadSecret(format!(
                "{MIN_SECRET_LEN} to {MAX_SECRET_LEN} characters from A-Z a-z 0-9 - . _ ~"
            )));
        }
        Ok(Self(s.to_string()))
    }

    /// The secret's text (to print for the admin).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the secret, in time independent of where they differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        ct_eq(self.0.as_bytes(), given)
    }
}

/// Constant-time equality: every byte of the longer input is looked at whatever the content;
/// only the lengths (not secret: a generated secret's length is public) shape the time.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_differ_and_are_hex() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert!(a.matches(a.expose().as_bytes()));
        assert!(!a.matches(b.expose().as_bytes()));
        assert_eq!(format!("{a:?}"), "Secret(..)");
    }

    #[test]
    fn compares_whole_inputs() {
        assert!(ct_eq(b"abcdefgh", b"abcdefgh"));
        assert!(!ct_eq(b"abcdefgh", b"abcdefgi"));
        assert!(!ct_eq(b"abcdefgh", b"abcdefg"));
        assert!(!ct_eq(b"abcdefgh", b"abcdefgh\0"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn user_secrets_are_checked() {
        assert!(Secret::from_user("correct-horse.battery").is_ok());
        assert!(Secret::from_user("short").is_err());
        assert!(Secret::from_user("has/slash/inside").is_err());
        assert!(Secret::from_user("has space inside").is_err());
        assert!(Secret::from_user(&"x".repeat(MAX_SECRET_LEN + 1)).is_err());
    }
}
