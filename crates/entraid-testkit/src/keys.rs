//! Fixed RSA test keys, RS256/PS256 JWT signing, and JWT signature verification.
//!
//! The emulator signs its access tokens with [`TestKey::entra`]; the emulated GitHub, Azure Pipelines and
//! Kubernetes issuers sign federated tokens with their own keys; the Redis gateway verifies tokens with a
//! [`JwtVerifier`] built from the emulator's keys. Keys are shipped (see `keys/README.md`); every JWT is minted at
//! the moment it is asked for.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};

use entraid_core::Claims;

/// A random version-4 UUID (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`), for object ids, `jti`s and trace ids.
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Fills `out` with random bytes from the system's secure generator.
#[allow(
    clippy::expect_used,
    reason = "the system random source does not fail on supported platforms"
)]
pub fn random_bytes(out: &mut [u8]) {
    use ring::rand::SecureRandom as _;
    // The system random source does not fail on supported platforms.
    SystemRandom::new()
        .fill(out)
        .expect("the system random generator is available");
}

/// The JWS algorithms the test kit signs and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256.
    Ps256,
}

impl JwsAlgorithm {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }

    /// Parses an `alg` header value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "PS256" => Some(Self::Ps256),
            _ => None,
        }
    }
}

/// An RSA key that signs JWTs. `Debug` shows only its key id.
#[derive(Clone)]
pub struct TestKey {
    kid: String,
    pair: Arc<RsaKeyPair>,
    pkcs8_pem: Arc<str>,
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

macro_rules! shipped_key {
    ($fn_name:ident, $file:literal, $kid:literal, $doc:literal) => {
        #[doc = $doc]
        #[allow(
            clippy::expect_used,
            reason = "the shipped keys are checked by the tests"
        )]
        pub fn $fn_name() -> &'static TestKey {
            static KEY: LazyLock<TestKey> = LazyLock::new(|| {
                TestKey::from_pkcs8_pem($kid, include_str!(concat!("../keys/", $file))).expect(
                    concat!("shipped test key ", $file, " is a valid RSA PKCS#8 key"),
                )
            });
            &KEY
        }
    };
}

impl TestKey {
    shipped_key!(
        entra,
        "entra.pem",
        "entraid-testkit-entra",
        "The emulator's Entra ID token-signing key."
    );
    shipped_key!(
        github,
        "github.pem",
        "entraid-testkit-github",
        "The emulated GitHub Actions OIDC issuer's key."
    );
    shipped_key!(
        pipelines,
        "pipelines.pem",
        "entraid-testkit-pipelines",
        "The emulated Azure Pipelines OIDC issuer's key."
    );
    shipped_key!(
        kubernetes,
        "kubernetes.pem",
        "entraid-testkit-kubernetes",
        "The emulated Kubernetes service-account issuer's key (workload identity)."
    );
    shipped_key!(
        client_app,
        "client-app.pem",
        "client-app",
        "A confidential client's certificate key."
    );
    shipped_key!(
        client_other,
        "client-other.pem",
        "client-other",
        "A key that matches no registered certificate."
    );

    /// Loads an RSA private key from PKCS#8 PEM.
    pub fn from_pkcs8_pem(kid: impl Into<String>, pem: &str) -> Result<Self, String> {
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("PEM: {e}"))?;
        let pair =
            RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| format!("RSA key: {e}"))?;
        Ok(Self {
            kid: kid.into(),
            pair: Arc::new(pair),
            pkcs8_pem: pem.into(),
        })
    }

    /// The key id (`kid`) put in the headers of the JWTs it signs and in its JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#8 PEM (to build certificates with rcgen, or PEM fixtures).
    pub fn private_key_pem(&self) -> &str {
        &self.pkcs8_pem
    }

    /// The public key as DER `RSAPublicKey` (PKCS#1).
    pub fn public_key_der(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key's modulus and exponent, big-endian without leading zeros.
    pub fn public_components(&self) -> RsaPublicKeyComponents<Vec<u8>> {
        RsaPublicKeyComponents::<Vec<u8>>::from(self.pair.public())
    }

    /// The public key as a JWK (`kty` RSA, `use` sig, `alg` RS256, `kid`, `n`, `e`).
    pub fn jwk(&self) -> Value {
        let c = self.public_components();
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e)})
    }

    /// Signs arbitrary bytes.
    #[allow(
        clippy::expect_used,
        reason = "signing with a valid key into a modulus-sized buffer cannot fail"
    )]
    pub fn sign(&self, alg: JwsAlgorithm, message: &[u8]) -> Vec<u8> {
        let encoding: &'static dyn signature::RsaEncoding = match alg {
            JwsAlgorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
            JwsAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
        };
        let mut sig = vec![0; self.pair.public().modulus_len()];
        // Signing with a valid key into a buffer of the modulus length cannot fail.
        self.pair
            .sign(encoding, &SystemRandom::new(), message, &mut sig)
            .expect("RSA signing");
        sig
    }

    /// Signs a JWT with RS256. The header gets `alg`, `typ` and this key's `kid`.
    pub fn sign_jwt(&self, claims: &Value) -> String {
        self.sign_jwt_with(JwsAlgorithm::Rs256, json!({"kid": self.kid}), claims)
    }

    /// Signs a JWT with the given algorithm and extra header fields (`alg` and `typ` are set here).
    pub fn sign_jwt_with(&self, alg: JwsAlgorithm, mut header: Value, claims: &Value) -> String {
        if let Value::Object(map) = &mut header {
            map.insert("alg".into(), alg.name().into());
            map.entry("typ").or_insert_with(|| "JWT".into());
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.sign(alg, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// Why a JWT failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not three base64url segments with a JSON header and payload.
    #[error("malformed JWT")]
    Malformed,
    /// The header's `alg` is not RS256 or PS256 (or not the one required).
    #[error("unsupported or unexpected alg")]
    Algorithm,
    /// No known key has the header's `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

/// A verified JWT: its header and claims.
#[derive(Debug, Clone)]
pub struct VerifiedJwt {
    /// The JOSE header.
    pub header: Value,
    /// The claims.
    pub claims: Claims,
}

/// Splits a compact JWT and decodes header and payload as JSON objects.
pub fn decode_unverified(jwt: &str) -> Result<(Value, Claims, String, Vec<u8>), VerifyError> {
    let mut parts = jwt.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object)
        .ok_or(VerifyError::Malformed)?;
    let claims = Claims::from_jwt(jwt).map_err(|_| VerifyError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| VerifyError::Malformed)?;
    Ok((header, claims, format!("{h}.{p}"), sig))
}

/// Verifies `jwt`'s signature with one RSA public key (for certificate assertions, where the key comes from the
/// registered certificate). `alg` must be RS256 or PS256; when `required` is given it must be that one.
pub fn verify_with_key(
    jwt: &str,
    key: &RsaPublicKeyComponents<Vec<u8>>,
    required: Option<JwsAlgorithm>,
) -> Result<VerifiedJwt, VerifyError> {
    let (header, claims, signing_input, sig) = decode_unverified(jwt)?;
    let alg = header["alg"]
        .as_str()
        .and_then(JwsAlgorithm::from_name)
        .ok_or(VerifyError::Algorithm)?;
    if required.is_some_and(|r| r != alg) {
        return Err(VerifyError::Algorithm);
    }
    let params: &'static signature::RsaParameters = match alg {
        JwsAlgorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        JwsAlgorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
    };
    key.verify(params, signing_input.as_bytes(), &sig)
        .map_err(|_| VerifyError::BadSignature)?;
    Ok(VerifiedJwt { header, claims })
}

/// Verifies JWT signatures against a set of keys chosen by `kid` (RS256 only, as Entra signs access tokens).
#[derive(Debug, Clone, Default)]
pub struct JwtVerifier {
    keys: HashMap<String, RsaPublicKeyComponents<Vec<u8>>>,
}

impl JwtVerifier {
    /// A verifier trusting these keys.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a TestKey>) -> Self {
        Self {
            keys: keys
                .into_iter()
                .map(|k| (k.kid.clone(), k.public_components()))
                .collect(),
        }
    }

    /// A verifier trusting the RSA keys of a JWKS document (`{"keys": [...]}`).
    pub fn from_jwks(jwks: &Value) -> Self {
        let keys = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["kty"] == "RSA")
            .filter_map(|k| {
                let kid = k["kid"].as_str()?.to_owned();
                let n = URL_SAFE_NO_PAD.decode(k["n"].as_str()?).ok()?;
                let e = URL_SAFE_NO_PAD.decode(k["e"].as_str()?).ok()?;
                Some((kid, RsaPublicKeyComponents { n, e }))
            })
            .collect();
        Self { keys }
    }

    /// Verifies the signature (RS256, key by `kid`) and returns header and claims. Claims such as `exp`, `aud`
    /// and `nbf` are the caller's to check.
    pub fn verify(&self, jwt: &str) -> Result<VerifiedJwt, VerifyError> {
        let (header, ..) = decode_unverified(jwt)?;
        let kid = header["kid"].as_str().ok_or(VerifyError::UnknownKey)?;
        let key = self.keys.get(kid).ok_or(VerifyError::UnknownKey)?;
        verify_with_key(jwt, key, Some(JwsAlgorithm::Rs256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_rs256_and_ps256() {
        let key = TestKey::entra();
        let jwt = key.sign_jwt(&json!({"oid": "o", "exp": 1}));
        let verified = JwtVerifier::new([key]).verify(&jwt).unwrap();
        assert_eq!(verified.claims.oid(), Some("o"));
        assert_eq!(verified.header["kid"], "entraid-testkit-entra");
        assert_eq!(verified.header["alg"], "RS256");

        let ps = key.sign_jwt_with(
            JwsAlgorithm::Ps256,
            json!({"x5t#S256": "abc"}),
            &json!({"sub": "s"}),
        );
        let v = verify_with_key(&ps, &key.public_components(), Some(JwsAlgorithm::Ps256)).unwrap();
        assert_eq!(v.header["x5t#S256"], "abc");
        assert_eq!(
            verify_with_key(&ps, &key.public_components(), Some(JwsAlgorithm::Rs256)).unwrap_err(),
            VerifyError::Algorithm
        );
    }

    #[test]
    fn wrong_key_tampering_and_garbage_fail() {
        let jwt = TestKey::github().sign_jwt(&json!({"oid": "o"}));
        assert_eq!(
            JwtVerifier::new([TestKey::entra()])
                .verify(&jwt)
                .unwrap_err(),
            VerifyError::UnknownKey
        );
        // Same kid, different key material.
        let impostor = TestKey::from_pkcs8_pem(
            "entraid-testkit-entra",
            TestKey::client_other().private_key_pem(),
        )
        .unwrap()
        .sign_jwt(&json!({"oid": "o"}));
        assert_eq!(
            JwtVerifier::new([TestKey::entra()])
                .verify(&impostor)
                .unwrap_err(),
            VerifyError::BadSignature
        );
        // A modified payload.
        let jwt = TestKey::entra().sign_jwt(&json!({"oid": "o"}));
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"oid":"admin"}"#);
        parts[1] = &forged;
        assert_eq!(
            JwtVerifier::new([TestKey::entra()])
                .verify(&parts.join("."))
                .unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            JwtVerifier::default().verify("a.b").unwrap_err(),
            VerifyError::Malformed
        );
    }

    #[test]
    fn jwks_round_trip() {
        let jwks = json!({"keys": [TestKey::entra().jwk(), TestKey::kubernetes().jwk()]});
        let verifier = JwtVerifier::from_jwks(&jwks);
        for key in [TestKey::entra(), TestKey::kubernetes()] {
            assert!(verifier.verify(&key.sign_jwt(&json!({"a": 1}))).is_ok());
        }
        assert_eq!(
            format!("{:?}", TestKey::entra()),
            "TestKey { kid: \"entraid-testkit-entra\", .. }"
        );
    }
}
