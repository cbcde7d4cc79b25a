//! SSH: a remote host's device or image read as a source (`ssh://user@host[:port]/path`), and
//! the session the SFTP push (`net::sftp`) shares.
//!
//! The session lives here, in the lowest layer, because the source needs it and `block`
//! depends on nothing above it; `net` uses it from above. Everything about the remote side
//! that we parse (URLs, sizes printed by `stat`) goes through the pure functions of `url.rs`.
//!
//! The host key is never trusted on first sight: its SHA-256 fingerprint (as OpenSSH prints
//! it, `SHA256:base64`) must equal the one given, or a person at a terminal must confirm it
//! (the caller's [`HostKeyCheck::Ask`]); otherwise the connection is refused.

mod session;
mod source;
mod url;

pub use session::{Auth, HostKeyCheck, SshOptions, SshSession};
pub use source::SshSource;
pub use url::{SshTarget, parse_size, parse_url, shell_quote};

/// Errors of an SSH connection or of a remote command.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The text is not an `ssh://` / `sftp://` URL we accept.
    #[error("not a valid {1}:// URL ({0}): {2}")]
    BadUrl(String, &'static str, &'static str),
    /// TCP connection, key exchange or transport failure.
    #[error("{host}: SSH: {error}")]
    Connect {
        /// host:port
        host: String,
        /// What russh said.
        #[source]
        error: russh::Error,
    },
    /// The host key was not the one given, or nobody confirmed it.
    #[error(
        "{host}: host key {found} not accepted{}",
        .expected.as_ref().map(|e| format!(" (expected {e})")).unwrap_or_else(|| " (confirm it with --host-key)".into())
    )]
    HostKey {
        /// host:port
        host: String,
        /// The fingerprint the server showed.
        found: String,
        /// The fingerprint given, if any.
        expected: Option<String>,
    },
    /// The server refused every way we tried to log in.
    #[error("{host}: authentication as {user} failed ({how})")]
    Auth {
        /// host:port
        host: String,
        /// User name.
        user: String,
        /// What was tried.
        how: String,
    },
    /// A private key file could not be read.
    #[error("key file {file}: {error}")]
    Key {
        /// Its path.
        file: String,
        /// What failed.
        #[source]
        error: russh::keys::Error,
    },
    /// A remote command failed or said something we cannot use.
    #[error("{host}: `{command}`: {why}")]
    Remote {
        /// host:port
        host: String,
        /// The command (paths quoted).
        command: String,
        /// Exit status and standard error, or what was wrong with the output.
        why: String,
    },
    /// Local resources (the async runtime) could not be set up.
    #[error("SSH runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
