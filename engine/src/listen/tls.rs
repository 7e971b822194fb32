//! `[ingest.tls]` and `[server.tls]`: the PEM files read into a rustls `ServerConfig` (ring
//! provider), and why a handshake failed. The files are read at start-up (and by `check` and a
//! reload, to validate them); a new certificate needs a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use slis::config::ConfigError;
use toml::Spanned;

use super::io::Timeout;

/// `[ingest.tls]` / `[server.tls]`: serve TLS instead of plain TCP. `Debug` shows the values
/// without their places in the file (a reload compares configs by it).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server's certificate chain, leaf first.
    pub cert: Spanned<String>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<String>,
    /// PEM file with the CA certificate(s) a client certificate must be signed by. Set: mutual
    /// TLS, a client without such a certificate is refused during the handshake.
    pub client_ca: Option<Spanned<String>>,
    /// A client that has not finished the handshake by then is cut off (counted as `timeout`).
    #[serde(default = "ten_seconds")]
    pub handshake_timeout: Timeout,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", self.cert.get_ref())
            .field("key", self.key.get_ref())
            .field("client_ca", &self.client_ca.as_ref().map(|c| c.get_ref()))
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

fn ten_seconds() -> Timeout {
    Timeout(Duration::from_secs(10))
}

/// What `serve` needs: the rustls config and the handshake timeout.
#[derive(Debug, Clone)]
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// Reads the PEM files of `[<section>.tls]`. Each error points at the key whose file is
    /// wrong and names the file.
    pub fn load(&self, section: &str) -> Result<Tls, Vec<ConfigError>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let at = |key: &Spanned<String>, what: &str, message: String| {
            ConfigError::at(
                key.span(),
                format!("{section}.tls.{what} {:?}: {message}", key.get_ref()),
            )
        };
        // Each file is read and checked on its own, so every bad one is reported at once.
        let chain = certificates(key_path(&self.cert)).map_err(|m| at(&self.cert, "cert", m));
        let key = private_key(key_path(&self.key)).map_err(|m| at(&self.key, "key", m));
        let verifier = self.client_ca.as_ref().map(|ca| {
            let mut roots = RootCertStore::empty();
            for c in certificates(key_path(ca)).map_err(|m| at(ca, "client_ca", m))? {
                roots
                    .add(c)
                    .map_err(|e| at(ca, "client_ca", format!("not a usable CA certificate: {e}")))?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| at(ca, "client_ca", format!("cannot verify clients with it: {e}")))
        });
        let errors: Vec<ConfigError> = [chain.as_ref().err(), key.as_ref().err()]
            .into_iter()
            .flatten()
            .chain(verifier.as_ref().and_then(|v| v.as_ref().err()))
            .cloned()
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let (chain, key) = (chain.expect("checked"), key.expect("checked"));
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| vec![at(&self.cert, "cert", format!("no TLS version available: {e}"))])?;
        let builder = match verifier {
            None => builder.with_no_client_auth(),
            Some(v) => builder.with_client_cert_verifier(v.expect("checked")),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            vec![at(
                &self.key,
                "key",
                format!("does not go with the certificate in {:?}: {e}", self.cert.get_ref()),
            )]
        })?;
        // HTTP/2 first (gRPC needs it), HTTP/1.1 for the rest.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            handshake_timeout: self.handshake_timeout.0,
        })
    }
}

fn key_path(key: &Spanned<String>) -> &Path {
    Path::new(key.get_ref())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a valid PEM file: {e}"))?;
    if chain.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            "holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)".to_owned()
        }
        e => format!("not a valid PEM file: {e}"),
    })
}

/// The `reason` label of a failed handshake: `no_client_cert`, `bad_cert` (a client certificate
/// not signed by `client_ca`, expired, …) or `protocol` (anything else: plain HTTP sent to a TLS
/// port, no common cipher suite, the client refusing our certificate, a reset).
pub fn failure_reason(e: &std::io::Error) -> &'static str {
    match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::NoCertificatesPresented) => "no_client_cert",
        Some(rustls::Error::InvalidCertificate(_)) => "bad_cert",
        _ => "protocol",
    }
}
