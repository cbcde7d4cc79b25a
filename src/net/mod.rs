//! Network exports: recovered data leaves the dead host with the tools admins already use.
//! `http` serves a datastore's tree, files (Range requests) and assembled virtual disks;
//! `nbd` serves assembled virtual disks to `qemu-img`, `nbdinfo` and `nbdcopy`; `auth` holds
//! the secret both require; `tls` the certificates both offer (NBD: `serve nbd --tls`).
//! Everything is read-only and read through the [`BlockSource`] layer, so bad sectors read
//! as zeros and are reported, never fatal.
//!
//! `sftp` pushes files to another host over SFTP (a `DataSink` of `extract`), on the SSH
//! connection of `block::ssh`, which also reads remote sources (ARCHITECTURE: "a new source
//! kind" is a `RawSource` in `block/`).
//!
//! [`BlockSource`]: crate::block::BlockSource

pub mod auth;
pub mod http;
pub mod nbd;
pub mod sftp;
pub mod tls;

pub use auth::Secret;

/// Errors of the network exports (a client's misbehaviour is not one: it ends its connection).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot listen on {0}: {1}")]
    Bind(String, #[source] std::io::Error),
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("no random numbers from the OS: {0}")]
    Random(String),
    #[error("secret not acceptable: {0}")]
    BadSecret(String),
    #[error("TLS: {0}")]
    Tls(String),
}
