//! The TLS client settings the store connectors share (rustls, the ring provider):
//! the WebPKI roots, or the certificate authorities of a PEM file. A leaf.

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
