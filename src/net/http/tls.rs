//! The HTTPS identity: a self-signed certificate made at start (rcgen, ring), its SHA-256
//! fingerprint for the admin to compare, and the public-key pin curl takes
//! (`--pinnedpubkey sha256//...`).

use crate::net::NetError;
use base64::Engine;
use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio_rustls::rustls;

/// A certificate and its key, made for this run.
pub struct TlsIdentity {
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    /// SHA-256 of the certificate, colon-separated upper-case hex (as browsers and
    /// `openssl x509 -fingerprint -sha256` show it).
    pub fingerprint: String,
    /// base64 SHA-256 of the public key (curl `--pinnedpubkey sha256//<this>`).
    pub pubkey_pin: String,
}

impl TlsIdentity {
    /// A new self-signed certificate for these host names and addresses.
    pub fn generate(names: Vec<String>) -> Result<Self, NetError> {
        let ck = rcgen::generate_simple_self_signed(names).map_err(|e| NetError::Tls(e.to_string()))?;
        let cert_der = ck.cert.der().to_vec();
        let fingerprint = Sha256::digest(&cert_der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        let pubkey_pin =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(ck.signing_key.subject_public_key_info()));
        Ok(Self { cert_der, key_der: ck.signing_key.serialize_der(), fingerprint, pubkey_pin })
    }

    /// The rustls server configuration (ring provider, TLS 1.2 and 1.3, HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, NetError> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let tls = |e: rustls::Error| NetError::Tls(e.to_string());
        let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(tls)?;
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(c))
    }
}
