//! TLS to PostgreSQL, read from the connection URL the way libpq reads it.
//!
//! `sslmode`: `disable` (never), `prefer` (the default: TLS when the server offers it, the
//! certificate unchecked), `require` (TLS, the certificate unchecked — unless a root
//! certificate is given, then its chain is checked, as libpq does), `verify-ca` (the chain is
//! checked), `verify-full` (the chain and the host name). Roots come from `sslrootcert` in the
//! URL, else `PGSSLROOTCERT`, else the system's store.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PostgresUrl;
pub use crate::config::Verify;

/// A PostgreSQL URL with the TLS parameters taken out and understood.
pub struct Target {
    /// The rest of the URL, parsed.
    pub config: tokio_postgres::Config,
    /// The TLS connector (unused with `sslmode=disable`).
    pub tls: MakeRustlsConnect,
    /// What is checked.
    pub verify: Verify,
}

/// Reads `url`, with `root_cert` the configured default root certificate file
/// (`PGSSLROOTCERT`), and builds the connector.
///
/// # Errors
/// A message naming the bad parameter or the unreadable certificate file.
pub fn target(url: &str, root_cert: Option<&str>) -> Result<Target, String> {
    let PostgresUrl { config, verify, root_cert } = PostgresUrl::read(url, root_cert)?;
    let roots = match (&root_cert, verify) {
        (_, Verify::Nothing) => RootCertStore::empty(),
        (Some(path), _) => roots_from(Path::new(path))?,
        (None, _) => system_roots()?,
    };
    Ok(Target { config, tls: MakeRustlsConnect::new(client_config(roots, verify)?), verify })
}

/// A client configuration for HTTPS to public hosts (the system's roots, the name checked); for
/// a plain `http://` target, one that a connector needs but never uses.
///
/// # Errors
/// HTTPS without system root certificates.
pub fn web_client_config(https: bool) -> Result<ClientConfig, String> {
    if https {
        client_config(system_roots()?, Verify::ChainAndHost)
    } else {
        client_config(RootCertStore::empty(), Verify::Nothing)
    }
}

fn roots_from(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {} holds no certificate", path.display()));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err("no system root certificates found; give sslrootcert or PGSSLROOTCERT".into());
    }
    Ok(roots)
}

fn client_config(roots: RootCertStore, verify: Verify) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(Unchecked(provider)),
        _ => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
            if verify == Verify::Chain {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// `prefer` and `require`: any certificate (the handshake's signatures are still checked).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the name in the certificate is not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::SslMode;

    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_read_like_libpq() {
        let t = target("postgres://u@localhost/db", None).unwrap();
        assert_eq!((t.config.get_ssl_mode(), t.verify), (SslMode::Prefer, Verify::Nothing));
        let t = target("postgres://u@localhost/db?sslmode=disable&application_name=x", None).unwrap();
        assert_eq!((t.config.get_ssl_mode(), t.config.get_application_name()), (SslMode::Disable, Some("x")));
        let t = target("postgres://u@localhost/db?sslmode=require", None).unwrap();
        assert_eq!((t.config.get_ssl_mode(), t.verify), (SslMode::Require, Verify::Nothing));
        let err = target("postgres://u@localhost/db?sslmode=verify-full&sslrootcert=/nonexistent.pem", None);
        assert!(err.err().unwrap().contains("/nonexistent.pem"));
        let err = target("postgres://u@localhost/db?sslmode=require", Some("/nonexistent.pem"));
        assert!(err.err().unwrap().contains("/nonexistent.pem"), "PGSSLROOTCERT makes require check the chain");
        assert!(target("postgres://u@localhost/db?sslmode=sometimes", None).err().unwrap().contains("sometimes"));
    }
}
