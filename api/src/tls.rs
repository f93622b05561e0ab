//! TLS for both doors: the server's certificate and key, and (for mTLS) the CA that client certificates
//! must chain to. Client certificates are optional at the TLS layer so that bearer-token callers can use
//! the same port; a caller without a token must present one.

use std::{path::PathBuf, sync::Arc};

use tokio_rustls::rustls::{
    self, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

/// Paths given on the command line.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// Files read once at startup.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl TlsFiles {
    pub fn load(&self) -> Result<TlsMaterial, String> {
        Ok(TlsMaterial {
            cert_pem: read(&self.cert)?,
            key_pem: read(&self.key)?,
            client_ca_pem: self.client_ca.as_ref().map(read).transpose()?,
        })
    }
}

impl TlsMaterial {
    /// tonic's configuration for the gRPC door.
    pub fn tonic(&self) -> tonic::transport::ServerTlsConfig {
        let mut config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem));
        if let Some(ca) = &self.client_ca_pem {
            config =
                config.client_ca_root(tonic::transport::Certificate::from_pem(ca)).client_auth_optional(true);
        }
        config
    }

    /// rustls's configuration for the MCP door (HTTP/1.1 and HTTP/2).
    pub fn rustls(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--tls-cert: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| format!("--tls-key: {e}"))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match &self.client_ca_pem {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca) {
                    roots
                        .add(cert.map_err(|e| format!("--client-ca: {e}"))?)
                        .map_err(|e| format!("--client-ca: {e}"))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| format!("--client-ca: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config =
            builder.with_single_cert(certs, key).map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The subject CN of a DER certificate (already verified by the TLS layer).
pub fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.trim().to_string();
    if cn.is_empty() { None } else { Some(cn) }
}
