//! [`ClientCertificate`]: a certificate chain and its RSA private key, from PEM or PKCS#12/PFX, and the client
//! assertion it signs ([`ClientCertificate::sign_assertion`]).
//!
//! Signing goes through rustls's ring crypto provider; the certificate's public key is read by x509-parser (no
//! hand-written DER). The assertion header is `{"alg":"PS256","typ":"JWT","x5t#S256":...}` by default, or
//! `{"alg":"RS256","typ":"JWT","x5t":...}` (the legacy form, for AD FS), optionally with the `x5c` chain. Claims:
//! `aud` = the token endpoint, `iss` = `sub` = the client id, a random `jti`, `nbf` = `iat` = now, `exp` = now +
//! 10 minutes. Reusing an assertion is `signed_assertion.rs`'s job; the credential is `client_certificate.rs`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use entraid_core::{Error, Secret};
use rustls::SignatureScheme;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;
use rustls_pki_types::pem::SectionKind;
use serde_json::json;

use crate::http::uuid_v4;

/// How long a signed assertion is valid: 10 minutes.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// The JWS algorithm of certificate assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256; the header names the certificate by `x5t#S256` (its SHA-256 thumbprint). The
    /// default, as current Entra ID guidance and MSAL have it.
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; the header names the certificate by `x5t` (its SHA-1 thumbprint). The
    /// legacy form, for AD FS.
    Rs256,
}

impl AssertionAlgorithm {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Rs256 => "RS256",
        }
    }

    fn scheme(self) -> SignatureScheme {
        match self {
            Self::Ps256 => SignatureScheme::RSA_PSS_SHA256,
            Self::Rs256 => SignatureScheme::RSA_PKCS1_SHA256,
        }
    }
}

/// A client certificate: the certificate that signs (first), the rest of its chain, and its RSA private key.
///
/// Loading checks that the key is RSA and matches one of the certificates (which becomes the signing
/// certificate). `Debug` shows only thumbprints.
#[derive(Clone)]
pub struct ClientCertificate {
    key: Arc<dyn SigningKey>,
    chain: Vec<CertificateDer<'static>>,
    sha1: [u8; 20],
    sha256: [u8; 32],
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint_sha1", &self.thumbprint_sha1())
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn cert_error(message: impl fmt::Display) -> Error {
    Error::configuration(format!("client certificate: {message}"))
}

impl ClientCertificate {
    /// Loads PEM text holding one or more `CERTIFICATE` blocks (a chain, in any order) and exactly one private
    /// key: `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1). EC keys, encrypted keys and more than one key are
    /// refused with a clear error.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let mut certs = Vec::new();
        let mut keys: Vec<PrivateKeyDer<'static>> = Vec::new();
        let mut reader = pem;
        loop {
            let section = rustls_pki_types::pem::from_buf(&mut reader)
                .map_err(|e| cert_error(format!("unreadable PEM: {e}")))?;
            let Some((kind, der)) = section else { break };
            match kind {
                SectionKind::Certificate => certs.push(CertificateDer::from(der)),
                SectionKind::PrivateKey => keys.push(PrivateKeyDer::Pkcs8(der.into())),
                SectionKind::RsaPrivateKey => keys.push(PrivateKeyDer::Pkcs1(der.into())),
                SectionKind::EcPrivateKey => {
                    return Err(cert_error(
                        "the key is an EC key; Entra ID certificate credentials need an RSA key",
                    ));
                }
                _ => {}
            }
        }
        if keys.is_empty() {
            let text = String::from_utf8_lossy(pem);
            if text.contains("ENCRYPTED PRIVATE KEY") {
                return Err(cert_error(
                    "the PEM private key is encrypted; decrypt it (openssl pkcs8) or use a password-protected PFX",
                ));
            }
            if certs.is_empty() {
                return Err(cert_error(
                    "no PEM certificate or private key found (expected `-----BEGIN CERTIFICATE-----` and \
                     `-----BEGIN PRIVATE KEY-----` blocks)",
                ));
            }
            return Err(cert_error("the PEM holds certificates but no private key"));
        }
        if keys.len() > 1 {
            return Err(cert_error(format!(
                "the PEM holds {} private keys; it must hold exactly one",
                keys.len()
            )));
        }
        let key = keys.remove(0);
        Self::from_der(certs, key)
    }

    /// Loads a PKCS#12 / PFX archive (DER), with its password (`None` for an archive without one). It must hold
    /// exactly one private key, RSA, and its certificate.
    #[cfg(feature = "pkcs12")]
    pub fn from_pkcs12(der: &[u8], password: Option<&Secret>) -> Result<Self, Error> {
        let password = password.map(Secret::expose_secret).unwrap_or("");
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, password).map_err(|e| {
            let wrong_password = matches!(e, p12_keystore::error::Error::MacError(_));
            if wrong_password {
                cert_error("the PFX password is wrong (the archive's integrity check failed)")
            } else {
                cert_error(format!("unreadable PKCS#12/PFX archive: {e}"))
            }
        })?;
        match archive.keys.len() {
            0 => return Err(cert_error("the PFX holds no private key")),
            1 => {}
            n => {
                return Err(cert_error(format!(
                    "the PFX holds {n} private keys; it must hold exactly one"
                )));
            }
        }
        let certs = archive
            .certs
            .iter()
            .map(|bag| CertificateDer::from(bag.cert.as_der().to_vec()))
            .collect();
        let key = PrivateKeyDer::Pkcs8(archive.keys[0].key.as_der().to_vec().into());
        Self::from_der(certs, key)
    }

    /// Loads certificate bytes: PEM when they look like PEM, else PKCS#12 (with the `pkcs12` feature).
    pub fn from_bytes(data: &[u8], password: Option<&Secret>) -> Result<Self, Error> {
        let trimmed = data.trim_ascii_start();
        if trimmed.starts_with(b"-----BEGIN") || trimmed.starts_with(b"Bag Attributes") {
            return Self::from_pem(data);
        }
        #[cfg(feature = "pkcs12")]
        {
            Self::from_pkcs12(data, password)
        }
        #[cfg(not(feature = "pkcs12"))]
        {
            let _ = password;
            Err(cert_error(
                "the data is not PEM, and PKCS#12/PFX support needs the `pkcs12` feature of entraid-identity",
            ))
        }
    }

    /// Reads a PEM or PFX file (see [`ClientCertificate::from_bytes`]).
    pub fn from_file(path: impl AsRef<Path>, password: Option<&Secret>) -> Result<Self, Error> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|e| {
            cert_error(format!(
                "cannot read the certificate file {}: {e}",
                path.display()
            ))
        })?;
        Self::from_bytes(&data, password)
    }

    /// Builds from DER certificates (any order) and a private key.
    pub fn from_der(
        certificates: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, Error> {
        if certificates.is_empty() {
            return Err(cert_error("no certificate found next to the private key"));
        }
        let key = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|_| cert_error("the private key is not a readable RSA key"))?;
        if key.algorithm() != rustls::SignatureAlgorithm::RSA {
            return Err(cert_error(format!(
                "the key is an {:?} key; Entra ID certificate credentials need an RSA key",
                key.algorithm()
            )));
        }
        let probe = b"entraid-identity: does this key match its certificate?";
        let signer = key
            .choose_scheme(&[SignatureScheme::RSA_PSS_SHA256])
            .ok_or_else(|| cert_error("the RSA key cannot sign PS256"))?;
        let signature = signer
            .sign(probe)
            .map_err(|e| cert_error(format!("the RSA key cannot sign: {e}")))?;
        let mut readable = 0;
        let mut non_rsa_certificate = false;
        let position = certificates.iter().position(|cert| {
            let public_key = match public_key(cert) {
                None => return false,
                Some(PublicKey::Other) => {
                    readable += 1;
                    non_rsa_certificate = true;
                    return false;
                }
                Some(PublicKey::Rsa(key)) => {
                    readable += 1;
                    key
                }
            };
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PSS_2048_8192_SHA256,
                public_key,
            )
            .verify(probe, &signature)
            .is_ok()
        });
        let Some(position) = position else {
            if readable == 0 {
                return Err(cert_error(
                    "the certificate is not a readable X.509 certificate",
                ));
            }
            return Err(cert_error(if non_rsa_certificate && readable == 1 {
                "the certificate's public key is not RSA, so it cannot match the RSA private key"
            } else {
                "the private key does not match the certificate (or any certificate of the chain)"
            }));
        };
        let mut chain = certificates;
        let leaf = chain.remove(position);
        chain.insert(0, leaf);
        let sha1 = digest_array::<20>(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &chain[0]);
        let sha256 = digest_array::<32>(&ring::digest::SHA256, &chain[0]);
        Ok(Self {
            key,
            chain,
            sha1,
            sha256,
        })
    }

    /// The signing certificate's SHA-1 thumbprint, upper-case hex (as the Azure portal shows it).
    pub fn thumbprint_sha1(&self) -> String {
        hex_upper(&self.sha1)
    }

    /// The signing certificate's SHA-256 thumbprint, upper-case hex.
    pub fn thumbprint_sha256(&self) -> String {
        hex_upper(&self.sha256)
    }

    /// The chain, signing certificate first (DER).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Signs a client assertion for `audience` (the token endpoint) and `client_id`, valid from `now` for
    /// [`ASSERTION_LIFETIME`].
    pub fn sign_assertion(
        &self,
        algorithm: AssertionAlgorithm,
        send_chain: bool,
        audience: &str,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Secret, Error> {
        let mut header = json!({"alg": algorithm.name(), "typ": "JWT"});
        match algorithm {
            AssertionAlgorithm::Ps256 => {
                header["x5t#S256"] = URL_SAFE_NO_PAD.encode(self.sha256).into();
            }
            AssertionAlgorithm::Rs256 => header["x5t"] = URL_SAFE_NO_PAD.encode(self.sha1).into(),
        }
        if send_chain {
            header["x5c"] = self
                .chain
                .iter()
                .map(|c| STANDARD.encode(c))
                .collect::<Vec<_>>()
                .into();
        }
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| cert_error("the system clock is before 1970"))?
            .as_secs();
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid_v4()?,
            "nbf": iat,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = self
            .key
            .choose_scheme(&[algorithm.scheme()])
            .ok_or_else(|| cert_error(format!("the key cannot sign {}", algorithm.name())))?;
        let signature = signer
            .sign(signing_input.as_bytes())
            .map_err(|e| cert_error(format!("signing the assertion failed: {e}")))?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// What a certificate's public key is, as far as matching an RSA private key goes.
enum PublicKey<'a> {
    /// An RSA key: the PKCS#1 `RSAPublicKey` bytes.
    Rsa(&'a [u8]),
    /// Any other kind of key.
    Other,
}

/// The certificate's subject public key (X.509 v1 or v3), read by x509-parser; `None` for unreadable DER.
fn public_key(cert: &[u8]) -> Option<PublicKey<'_>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let spki = parsed.tbs_certificate.subject_pki;
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Some(PublicKey::Other);
    }
    // The BIT STRING's bytes borrow from `cert`, not from the parsed structure.
    let key: &[u8] = match spki.subject_public_key.data {
        std::borrow::Cow::Borrowed(key) => key,
        std::borrow::Cow::Owned(_) => return None,
    };
    Some(PublicKey::Rsa(key))
}

fn digest_array<const N: usize>(
    algorithm: &'static ring::digest::Algorithm,
    data: &[u8],
) -> [u8; N] {
    let digest = ring::digest::digest(algorithm, data);
    let mut out = [0u8; N];
    out.copy_from_slice(digest.as_ref());
    out
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use entraid_testkit::keys::{JwsAlgorithm, TestKey};
    use rustls_pki_types::pem::PemObject as _;

    /// A self-signed certificate for a test key, made with rcgen at test time.
    pub(crate) fn self_signed(key: &TestKey, name: &str) -> String {
        let pair = rcgen::KeyPair::from_pem(key.private_key_pem()).unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.self_signed(&pair).unwrap().pem()
    }

    fn pem_for(key: &TestKey) -> String {
        format!(
            "{}{}",
            self_signed(key, "client-app"),
            key.private_key_pem()
        )
    }

    #[test]
    fn loads_pem_and_signs_verifiable_assertions() {
        let key = TestKey::client_app();
        let cert = ClientCertificate::from_pem(pem_for(key).as_bytes()).unwrap();
        assert_eq!(cert.chain().len(), 1);
        assert_eq!(cert.thumbprint_sha1().len(), 40);
        assert_eq!(cert.thumbprint_sha256().len(), 64);
        let now = SystemTime::now();
        for (alg, jws, thumb) in [
            (AssertionAlgorithm::Ps256, JwsAlgorithm::Ps256, "x5t#S256"),
            (AssertionAlgorithm::Rs256, JwsAlgorithm::Rs256, "x5t"),
        ] {
            let jwt = cert
                .sign_assertion(alg, true, "https://aud/token", "client-1", now)
                .unwrap();
            let jwt = jwt.expose_secret();
            let parts: Vec<&str> = jwt.split('.').collect();
            assert_eq!(parts.len(), 3);
            let header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            let claims: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
            assert_eq!(header["alg"], alg.name());
            assert_eq!(header["typ"], "JWT");
            assert!(header[thumb].is_string(), "{header}");
            assert_eq!(header["x5c"].as_array().unwrap().len(), 1);
            assert_eq!(claims["aud"], "https://aud/token");
            assert_eq!(claims["iss"], "client-1");
            assert_eq!(claims["sub"], "client-1");
            assert_eq!(
                claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
                600
            );
            assert_eq!(claims["nbf"], claims["iat"]);
            assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
            // The signature verifies with the key's public half.
            let public = ring::signature::UnparsedPublicKey::new(
                match jws {
                    JwsAlgorithm::Rs256 => {
                        &ring::signature::RSA_PKCS1_2048_8192_SHA256
                            as &dyn ring::signature::VerificationAlgorithm
                    }
                    JwsAlgorithm::Ps256 => &ring::signature::RSA_PSS_2048_8192_SHA256,
                },
                key.public_key_der(),
            );
            public
                .verify(
                    format!("{}.{}", parts[0], parts[1]).as_bytes(),
                    &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
                )
                .unwrap();
        }
    }

    #[test]
    fn pkcs1_keys_and_chains_in_any_order() {
        let key = TestKey::client_app();
        // A chain: a CA certificate first, then the leaf signed by it; the leaf must become the signing cert.
        let ca_pair = rcgen::KeyPair::from_pem(TestKey::entra().private_key_pem()).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(vec!["test-ca".into()]).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_pair).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_pair);
        let leaf_pair = rcgen::KeyPair::from_pem(key.private_key_pem()).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["client-app".into()])
            .unwrap()
            .signed_by(&leaf_pair, &issuer)
            .unwrap();
        let pem = format!("{}{}{}", ca.pem(), leaf.pem(), key.private_key_pem());
        let cert = ClientCertificate::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(cert.chain().len(), 2);
        assert_eq!(cert.chain()[0].as_ref(), leaf.der().as_ref());
        let expected = digest_array::<20>(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf.der());
        assert_eq!(cert.thumbprint_sha1(), hex_upper(&expected));

        // PKCS#1 (`RSA PRIVATE KEY`) works too.
        let pkcs1 = pkcs8_to_pkcs1_pem(key);
        let pem = format!("{}{}", leaf.pem(), pkcs1);
        assert!(ClientCertificate::from_pem(pem.as_bytes()).is_ok());
    }

    /// Re-wraps a PKCS#8 RSA key as PKCS#1 (the PKCS#8 `privateKey` OCTET STRING holds the PKCS#1 structure).
    fn pkcs8_to_pkcs1_pem(key: &TestKey) -> String {
        use rustls_pki_types::pem::PemObject as _;
        let der =
            rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(key.private_key_pem().as_bytes())
                .unwrap();
        let bytes = der.secret_pkcs8_der();
        // The PKCS#1 RSAPrivateKey is the last TLV: a SEQUENCE inside the final OCTET STRING; find "04 82 len 30 82".
        let start = bytes
            .windows(6)
            .rposition(|w| w[0] == 0x04 && w[1] == 0x82 && w[4] == 0x30 && w[5] == 0x82)
            .unwrap()
            + 4;
        let pkcs1 = &bytes[start..];
        let b64 = STANDARD.encode(pkcs1);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn refuses_bad_pem() {
        let app = TestKey::client_app();
        let other = TestKey::client_other();
        let cert = self_signed(app, "client-app");
        let ec_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ec_cert = rcgen::CertificateParams::new(vec!["ec".into()])
            .unwrap()
            .self_signed(&ec_pair)
            .unwrap()
            .pem();
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{cert}{}", other.private_key_pem()),
                "does not match the certificate",
            ),
            (
                format!("{cert}{}{}", app.private_key_pem(), other.private_key_pem()),
                "2 private keys",
            ),
            (
                format!("{ec_cert}{}", ec_pair.serialize_pem()),
                "need an RSA key",
            ),
            (
                format!(
                    "{ec_cert}-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"
                ),
                "EC key",
            ),
            (
                format!("{ec_cert}{}", app.private_key_pem()),
                "public key is not RSA",
            ),
            (cert.clone(), "no private key"),
            (app.private_key_pem().to_owned(), "no certificate"),
            ("garbage".to_owned(), "no PEM certificate"),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_owned(),
                "unreadable PEM",
            ),
            (
                format!(
                    "{cert}-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
                ),
                "encrypted",
            ),
            (
                format!(
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{}",
                    app.private_key_pem()
                ),
                "not a readable X.509",
            ),
        ];
        for (pem, expected) in cases {
            let err = ClientCertificate::from_pem(pem.as_bytes()).unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(expected), "expected `{expected}` in `{text}`");
            assert!(!text.contains("MII"), "{text}");
        }
    }

    #[test]
    fn x509_v1_certificates_load() {
        let v1 = include_str!("../tests/fixtures/client-app-leaf-v1.pem");
        let pem = format!("{v1}{}", TestKey::client_app().private_key_pem());
        let cert = ClientCertificate::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(cert.chain().len(), 1);
        let pem = format!("{v1}{}", TestKey::client_other().private_key_pem());
        assert!(ClientCertificate::from_pem(pem.as_bytes()).is_err());
    }

    #[test]
    fn truncated_der_is_unreadable_not_a_panic() {
        let cert = self_signed(TestKey::client_app(), "x");
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        for cut in [0, 1, 2, 10, 100, der.len() / 2, der.len() - 1] {
            assert!(public_key(&der[..cut]).is_none(), "{cut}");
        }
        assert!(matches!(public_key(&der), Some(PublicKey::Rsa(_))));
        assert!(public_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn debug_shows_no_key() {
        let cert = ClientCertificate::from_pem(pem_for(TestKey::client_app()).as_bytes()).unwrap();
        let shown = format!("{cert:?}");
        assert!(shown.contains(&cert.thumbprint_sha1()), "{shown}");
        assert!(!shown.contains("MII"), "{shown}");
    }
}
