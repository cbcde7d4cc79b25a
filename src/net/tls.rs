//! The TLS identity of our exports, made at start (rcgen, rustls on ring; nothing is read
//! from or written to disk here): a certificate for the host names and addresses we listen
//! on, its SHA-256 fingerprint for the admin to compare, and the public-key pin curl takes
//! (`--pinnedpubkey sha256//...`).
//!
//! HTTPS uses one self-signed certificate ([`TlsIdentity::generate`]). NBD clients verify the
//! server with GnuTLS against a CA file (`ca-cert.pem`, qemu's `tls-creds-x509` and libnbd's
//! `tls-certificates`), and qemu insists that file hold a CA, so NBD gets a CA made for this
//! run and a server certificate it signs ([`TlsIdentity::generate_with_ca`]); the CA's key
//! is dropped once it has signed. rustls has no TLS-PSK: certificates only.

use crate::net::NetError;
use base64::Engine;
use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio_rustls::rustls;

/// A certificate and its key, made for this run.
pub struct TlsIdentity {
    /// The chain sent to clients, the server's own certificate first (DER).
    chain: Vec<Vec<u8>>,
    key_der: Vec<u8>,
    /// The certificate clients are to trust (DER): the CA, or the self-signed certificate.
    ca_der: Vec<u8>,
    /// SHA-256 of the server's certificate, colon-separated upper-case hex (as browsers and
    /// `openssl x509 -fingerprint -sha256` show it).
    pub fingerprint: String,
    /// base64 SHA-256 of the public key (curl `--pinnedpubkey sha256//<this>`).
    pub pubkey_pin: String,
    /// SHA-256 of the certificate clients trust ([`TlsIdentity::ca_pem`]), same format.
    pub ca_fingerprint: String,
}

fn tls_err(e: impl std::fmt::Display) -> NetError {
    NetError::Tls(e.to_string())
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn pin(key: &impl PublicKeyData) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(key.subject_public_key_info()))
}

fn common_name(cn: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    dn
}

impl TlsIdentity {
    /// A new self-signed certificate for these host names and addresses.
    pub fn generate(names: Vec<String>) -> Result<Self, NetError> {
        let ck = rcgen::generate_simple_self_signed(names).map_err(tls_err)?;
        let cert_der = ck.cert.der().to_vec();
        Ok(Self {
            fingerprint: fingerprint(&cert_der),
            ca_fingerprint: fingerprint(&cert_der),
            pubkey_pin: pin(&ck.signing_key),
            ca_der: cert_der.clone(),
            chain: vec![cert_der],
            key_der: ck.signing_key.serialize_der(),
        })
    }

    /// A CA made for this run and a server certificate it signs for these host names and
    /// addresses (subject alternative names: GnuTLS checks the host a client dialled).
    pub fn generate_with_ca(names: Vec<String>) -> Result<Self, NetError> {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca.distinguished_name = common_name("vmfs-rescue CA (made at start, valid for one run)");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_der = ca.self_signed(&ca_key).map_err(tls_err)?.der().to_vec();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(tls_err)?;
        let mut leaf = CertificateParams::new(names).map_err(tls_err)?;
        leaf.distinguished_name = common_name("vmfs-rescue");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let cert_der = leaf.signed_by(&key, &issuer).map_err(tls_err)?.der().to_vec();
        Ok(Self {
            fingerprint: fingerprint(&cert_der),
            ca_fingerprint: fingerprint(&ca_der),
            pubkey_pin: pin(&key),
            chain: vec![cert_der, ca_der.clone()],
            ca_der,
            key_der: key.serialize_der(),
        })
    }

    /// The certificate clients are to trust, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The certificate clients are to trust, PEM (qemu's and libnbd's `ca-cert.pem`).
    pub fn ca_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.ca_der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// The rustls server configuration for HTTPS (ALPN `http/1.1`).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, NetError> {
        self.server_config_alpn(vec![b"http/1.1".to_vec()])
    }

    /// The rustls server configuration (ring provider, TLS 1.2 and 1.3) offering these ALPN
    /// protocols (none: no ALPN, as for NBD).
    pub fn server_config_alpn(&self, alpn: Vec<Vec<u8>>) -> Result<Arc<rustls::ServerConfig>, NetError> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(
                self.chain.iter().map(|d| CertificateDer::from(d.clone())).collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(tls_err)?;
        c.alpn_protocols = alpn;
        Ok(Arc::new(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_signed_identity_has_a_separate_trust_anchor() {
        let id = TlsIdentity::generate_with_ca(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert_ne!(id.fingerprint, id.ca_fingerprint);
        assert_eq!(id.ca_fingerprint, fingerprint(id.ca_der()));
        let pem = id.ca_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n") && pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert!(id.server_config_alpn(vec![]).is_ok());
        let selfsigned = TlsIdentity::generate(vec!["localhost".into()]).unwrap();
        assert_eq!(selfsigned.fingerprint, selfsigned.ca_fingerprint);
    }
}
