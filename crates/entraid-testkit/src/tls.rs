//! A test certificate authority, server certificates and client certificates, made at run time.
//!
//! [`TestCa::new`] makes a fresh CA (ECDSA P-256) with rcgen. It issues server certificates for `127.0.0.1` and
//! `localhost` (the emulator's HTTPS listener and the Redis gateway's TLS use them) and builds rustls configs: a
//! server config presenting such a certificate and a client config trusting only this CA.
//!
//! [`ClientCertificate`] is an RSA certificate for an app that authenticates with a certificate
//! (`private_key_jwt`): it wraps one of the shipped [`TestKey`]s, so RSA key generation (slow in debug builds) is
//! never needed, and it signs the client assertions Entra expects (PS256 with `x5t#S256`, or RS256 with `x5t`).
//!
//! ```
//! use entraid_testkit::tls::TestCa;
//!
//! let ca = TestCa::new().unwrap();
//! let server = ca.rustls_server_config(&["127.0.0.1", "localhost"]).unwrap();
//! let client = ca.rustls_client_config();
//! assert!(ca.ca_cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! # let _ = (server, client);
//! ```

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

use crate::keys::{JwsAlgorithm, TestKey};

/// Why a certificate or TLS config could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rcgen refused the parameters or the key.
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the certificate, the key or the protocol versions.
    #[error("rustls configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The ring crypto provider, the one this workspace uses.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct CaInner {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate authority generated at run time (ECDSA P-256). Cheap to clone (shared).
///
/// `Debug` shows no key material.
#[derive(Clone)]
pub struct TestCa {
    inner: Arc<CaInner>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A certificate chain (leaf first, then the CA) and its private key, ready for rustls.
#[derive(Debug)]
pub struct IssuedCert {
    /// The chain: the leaf certificate, then the CA certificate.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
    /// The leaf certificate as PEM.
    pub cert_pem: String,
    /// The leaf's private key as PKCS#8 PEM (test material; never a real secret).
    pub key_pem: String,
}

impl TestCa {
    /// Generates a fresh CA: ECDSA P-256 key, self-signed, CN `entraid-testkit test CA`.
    pub fn new() -> Result<Self, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "entraid-testkit test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            inner: Arc::new(CaInner {
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                issuer: Issuer::new(params, key),
            }),
        })
    }

    /// The CA certificate as PEM (what a client adds to its trust roots).
    pub fn ca_cert_pem(&self) -> &str {
        &self.inner.cert_pem
    }

    /// The CA certificate as DER.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.inner.cert_der
    }

    /// Issues a server certificate (fresh ECDSA P-256 key) for these names. A name that parses as an IP address
    /// becomes an IP SAN (`127.0.0.1`), any other a DNS SAN (`localhost`).
    pub fn issue_server_cert(&self, names: &[&str]) -> Result<IssuedCert, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.inner.issuer)?;
        let key_der = key.serialize_der();
        Ok(IssuedCert {
            chain: vec![cert.der().clone(), self.inner.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A rustls server config (ring provider, TLS 1.2 and 1.3, no client auth) presenting a certificate for
    /// `names`, with ALPN `http/1.1`.
    pub fn rustls_server_config(
        &self,
        names: &[&str],
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        Self::server_config_for(self.issue_server_cert(names)?)
    }

    /// A rustls server config (ring provider, TLS 1.2 and 1.3, no client auth) presenting `issued`, with ALPN
    /// `http/1.1`.
    pub fn server_config_for(issued: IssuedCert) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(issued.chain, issued.key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A rustls root store holding only this CA.
    #[allow(
        clippy::expect_used,
        reason = "a CA certificate rcgen just generated is a valid trust anchor"
    )]
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        // The CA certificate was just generated by rcgen; webpki accepts it as a trust anchor.
        roots
            .add(self.inner.cert_der.clone())
            .expect("the generated CA certificate is a valid trust anchor");
        roots
    }

    /// A rustls client config (ring provider) trusting only this CA.
    #[allow(
        clippy::expect_used,
        reason = "the ring provider supports the default protocol versions"
    )]
    pub fn rustls_client_config(&self) -> Arc<rustls::ClientConfig> {
        let config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Issues an RSA client certificate for `key`, signed by this CA (`signature` RSA-SHA256 is not needed:
    /// the CA signs with ECDSA). Entra does not check the chain, only the registered certificate, so
    /// [`ClientCertificate::self_signed`] works as well.
    pub fn issue_client_certificate(
        &self,
        key: &TestKey,
        common_name: &str,
    ) -> Result<ClientCertificate, TlsError> {
        let pair = rsa_key_pair(key)?;
        let params = client_params(common_name)?;
        let cert = params.signed_by(&pair, &self.inner.issuer)?;
        Ok(ClientCertificate::new(key.clone(), cert.der().clone()))
    }
}

fn rsa_key_pair(key: &TestKey) -> Result<KeyPair, TlsError> {
    Ok(KeyPair::from_pkcs8_pem_and_sign_algo(
        key.private_key_pem(),
        &rcgen::PKCS_RSA_SHA256,
    )?)
}

fn client_params(common_name: &str) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// An RSA certificate for an app that authenticates with a certificate, with its [`TestKey`].
///
/// Register [`ClientCertificate::cert_der`] (or the PEM) with the emulator; give the client
/// [`ClientCertificate::pem_bundle`] (certificate + `PRIVATE KEY`), as `AZURE_CLIENT_CERTIFICATE_PATH` expects.
/// `Debug` shows the thumbprint only.
#[derive(Clone)]
pub struct ClientCertificate {
    key: TestKey,
    der: CertificateDer<'static>,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.x5t_s256())
            .finish_non_exhaustive()
    }
}

/// The standard client-assertion type.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl ClientCertificate {
    fn new(key: TestKey, der: CertificateDer<'static>) -> Self {
        Self { key, der }
    }

    /// A self-signed RSA (SHA-256) certificate for `key` with this common name.
    pub fn self_signed(key: &TestKey, common_name: &str) -> Result<Self, TlsError> {
        let pair = rsa_key_pair(key)?;
        let cert = client_params(common_name)?.self_signed(&pair)?;
        Ok(Self::new(key.clone(), cert.der().clone()))
    }

    /// The key the certificate certifies.
    pub fn key(&self) -> &TestKey {
        &self.key
    }

    /// The certificate as DER.
    pub fn cert_der(&self) -> &[u8] {
        self.der.as_ref()
    }

    /// The certificate as PEM.
    pub fn cert_pem(&self) -> String {
        pem_block("CERTIFICATE", self.der.as_ref())
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        self.key.private_key_pem()
    }

    /// Certificate then private key, both PEM, in one string (the format of a PEM certificate file).
    pub fn pem_bundle(&self) -> String {
        let mut out = self.cert_pem();
        out.push_str(self.key_pem());
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }

    /// The certificate's SHA-256 thumbprint, base64url without padding (the `x5t#S256` header).
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            self.der.as_ref(),
        ))
    }

    /// The certificate's SHA-1 thumbprint, base64url without padding (the legacy `x5t` header).
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            self.der.as_ref(),
        ))
    }

    /// The certificate as standard base64 DER (an `x5c` entry).
    pub fn x5c(&self) -> String {
        STANDARD.encode(self.der.as_ref())
    }

    /// Signs a client assertion the way MSAL does: `alg` PS256 with `x5t#S256`, or RS256 with `x5t`; claims
    /// `aud` (the token endpoint URL), `iss` = `sub` = `client_id`, a random `jti`, `nbf` = `iat` = `now_unix`,
    /// `exp` = `now_unix` + 600.
    pub fn client_assertion(
        &self,
        alg: JwsAlgorithm,
        client_id: &str,
        audience: &str,
        now_unix: i64,
    ) -> String {
        let claims = json!({
            "aud": audience, "iss": client_id, "sub": client_id, "jti": crate::keys::random_uuid(),
            "nbf": now_unix, "iat": now_unix, "exp": now_unix + 600,
        });
        self.client_assertion_with(alg, &claims)
    }

    /// Signs a client assertion with these exact claims (to build wrong ones in tests). The header carries the
    /// thumbprint that goes with `alg` (`x5t#S256` for PS256, `x5t` for RS256).
    pub fn client_assertion_with(&self, alg: JwsAlgorithm, claims: &Value) -> String {
        let header = match alg {
            JwsAlgorithm::Ps256 => json!({"x5t#S256": self.x5t_s256()}),
            JwsAlgorithm::Rs256 => json!({"x5t": self.x5t()}),
        };
        self.key.sign_jwt_with(alg, header, claims)
    }
}

/// Encodes DER as a PEM block with 64-character lines.
pub fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::verify_with_key;

    #[test]
    fn ca_issues_server_certificates_rustls_accepts() {
        let ca = TestCa::new().unwrap();
        assert!(ca.ca_cert_pem().contains("BEGIN CERTIFICATE"));
        let issued = ca.issue_server_cert(&["127.0.0.1", "localhost"]).unwrap();
        assert_eq!(issued.chain.len(), 2);
        assert!(issued.key_pem.contains("PRIVATE KEY"));
        ca.rustls_server_config(&["127.0.0.1"]).unwrap();
        let client = ca.rustls_client_config();
        assert!(client.alpn_protocols.is_empty());
        // Two CAs are different.
        assert_ne!(
            TestCa::new().unwrap().ca_cert_der(),
            TestCa::new().unwrap().ca_cert_der()
        );
        assert_eq!(format!("{ca:?}"), "TestCa { .. }");
    }

    #[test]
    fn client_certificates_sign_verifiable_assertions() {
        let cert = ClientCertificate::self_signed(TestKey::client_app(), "app").unwrap();
        let parsed = CertificateDer::from(cert.cert_der().to_vec());
        let ee = webpki::EndEntityCert::try_from(&parsed).unwrap();
        let jwt = cert.client_assertion(JwsAlgorithm::Ps256, "cid", "https://aud", 1000);
        let (header, claims, input, sig) = crate::keys::decode_unverified(&jwt).unwrap();
        assert_eq!(header["x5t#S256"], cert.x5t_s256());
        assert_eq!(claims.sub(), Some("cid"));
        ee.verify_signature(
            webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            input.as_bytes(),
            &sig,
        )
        .unwrap();
        verify_with_key(&jwt, &TestKey::client_app().public_components(), None).unwrap();

        let ca = TestCa::new().unwrap();
        let by_ca = ca
            .issue_client_certificate(TestKey::client_other(), "other")
            .unwrap();
        let rs = by_ca.client_assertion(JwsAlgorithm::Rs256, "cid", "https://aud", 1000);
        let (header, ..) = crate::keys::decode_unverified(&rs).unwrap();
        assert_eq!(header["x5t"], by_ca.x5t());
        assert_eq!(by_ca.x5t().len(), 27);
        assert_eq!(by_ca.x5t_s256().len(), 43);
        assert!(by_ca.pem_bundle().contains("BEGIN CERTIFICATE"));
        assert!(by_ca.pem_bundle().contains("BEGIN PRIVATE KEY"));
        assert!(!format!("{by_ca:?}").contains("PRIVATE"));
    }
}
