//! The certificate the client listener serves, replaced without a restart: every reload
//! (SIGHUP, `gerbang reload`, the admin API) reads `listen.tls_cert` and `listen.tls_key`
//! again and, when they load, new connections get the new pair; connections already open
//! keep theirs. A pair that does not load is logged and the running one kept, so a renewal
//! copied in half never takes the listener down. The served certificate's end of validity
//! is the gauge `gerbang_tls_certificate_expiry_timestamp_seconds`, which the alert
//! `GerbangTlsCertificateExpiring` watches.

use std::sync::Arc;

use arc_swap::ArcSwap;
use gerbang_core::TlsFiles;
use pingora::listeners::tls::Acceptor;
use prometheus::{IntGauge, Registry};

use crate::server::{ServeError, TlsError};

/// The served pair and its expiry gauge.
pub(crate) struct ServedCert {
    files: TlsFiles,
    acceptor: ArcSwap<Acceptor>,
    expiry: IntGauge,
}

impl ServedCert {
    /// Loads the pair (an error stops the start) and registers the expiry gauge.
    pub(crate) fn load(files: &TlsFiles, registry: &Registry) -> Result<Self, ServeError> {
        let (acceptor, not_after) = build(files)?;
        let expiry = IntGauge::new(
            "gerbang_tls_certificate_expiry_timestamp_seconds",
            "When the certificate the client listener serves stops being valid (Unix time).",
        )
        .and_then(|g| registry.register(Box::new(g.clone())).map(|()| g))?;
        expiry.set(not_after);
        Ok(Self {
            files: files.clone(),
            acceptor: ArcSwap::from_pointee(acceptor),
            expiry,
        })
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> Arc<Acceptor> {
        self.acceptor.load_full()
    }

    /// Reads the pair again; in force for new connections when it loads, else the running
    /// pair stays and the error is returned.
    pub(crate) fn reload(&self) -> Result<(), ServeError> {
        let (acceptor, not_after) = build(&self.files)?;
        self.acceptor.store(Arc::new(acceptor));
        self.expiry.set(not_after);
        Ok(())
    }
}

/// TLS 1.2 and 1.3, HTTP/1.1, the configured chain and key (what pingora's
/// `TlsSettings::intermediate` builds, with an error instead of a panic when a file does not
/// load), and the first certificate's end of validity.
fn build(files: &TlsFiles) -> Result<(Acceptor, i64), ServeError> {
    use pingora::tls::{ServerConfig, install_default_crypto_provider, version};
    install_default_crypto_provider();
    let cannot = |source| ServeError::Tls {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let (cert, key) = (
        files.cert.display().to_string(),
        files.key.display().to_string(),
    );
    let (certs, key_der) = pingora::tls::load_certs_and_key_files(&cert, &key)
        .map_err(|e| cannot(TlsError::Load(e)))?
        .ok_or_else(|| cannot(TlsError::Missing))?;
    let not_after = certs
        .first()
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, c)| c.validity().not_after.timestamp())
        .ok_or_else(|| cannot(TlsError::NotX509))?;
    let builder = ServerConfig::builder_with_protocol_versions(&[&version::TLS12, &version::TLS13]);
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path).map_err(cannot)?),
    };
    let server = builder
        .with_single_cert(certs, key_der)
        .map_err(|e| cannot(TlsError::Refused(e)))?;
    Ok((Acceptor::from_server_config(Arc::new(server)), not_after))
}

/// Asks every client for a certificate and checks one presented against the authorities in
/// `path` (chain, validity, key usage); a client presenting none is let through the
/// handshake, and refused later only if its User ID must present one (its PKS's
/// `sertifikat_klien`), with an answer it can read instead of a failed handshake.
fn client_verifier(
    path: &std::path::Path,
) -> Result<Arc<dyn pingora::tls::ClientCertVerifier>, TlsError> {
    use pingora::tls::{RootCertStore, WebPkiClientVerifier, load_ca_file_into_store};
    let mut roots = RootCertStore::empty();
    load_ca_file_into_store(path, &mut roots).map_err(|source| TlsError::ClientCa {
        path: path.to_path_buf(),
        source,
    })?;
    WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|source| TlsError::ClientVerifier {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
}
