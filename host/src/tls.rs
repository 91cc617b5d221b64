//! TLS settings (rustls, the ring provider): the client side the store connectors
//! share (the WebPKI roots, or the certificate authorities of a PEM file), and the
//! server side the HTTP ingest source serves with (a certificate and its key). A leaf.

use std::path::Path;
use std::sync::Arc;

/// A client config trusting `ca_file` (resolved against `base_dir`), or the WebPKI
/// roots without one.
pub fn client_config(
    ca_file: Option<&Path>,
    base_dir: &Path,
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(file) => {
            let path = base_dir.join(file);
            let certs = CertificateDer::pem_file_iter(&path)
                .map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A server config presenting the certificate chain of `cert_file` with the private
/// key of `key_file` (PEM; resolved against `base_dir`), TLS 1.2 and 1.3.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    base_dir: &Path,
) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_path = base_dir.join(cert_file);
    let key_path = base_dir.join(key_file);
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert_file {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate in it (PEM, \"-----BEGIN CERTIFICATE-----\")",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("tls.key_file {}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!("tls: the key does not go with the certificate, or is not usable: {e}")
        })
}
