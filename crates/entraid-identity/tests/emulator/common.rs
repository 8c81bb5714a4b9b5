//! Shared helpers: an emulator with an HTTPS client trusting its CA, token checks, temporary folders, and a
//! tracing subscriber that captures every log line.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entraid_core::{Error, IdentityProvider, IdentityProviderResponse};
use entraid_identity::{AuthorityHost, HttpClient, HttpOptions};
use entraid_testkit::emulator::Emulator;

/// The request timeout used against the emulator (short, so timeout tests are quick).
pub(crate) const TIMEOUT: Duration = Duration::from_millis(1500);

/// A started emulator and an HTTP client that trusts its test CA (and nothing else).
pub(crate) struct Ctx {
    pub(crate) emu: Emulator,
    pub(crate) http: HttpClient,
}

impl Ctx {
    pub(crate) async fn start() -> Self {
        Self::with(Emulator::start().await.unwrap())
    }

    pub(crate) fn with(emu: Emulator) -> Self {
        let http = HttpOptions::new()
            .native_roots(false)
            .timeout(TIMEOUT)
            .add_root_certificates_pem(emu.ca_cert_pem().as_bytes())
            .unwrap()
            .build()
            .unwrap();
        Self { emu, http }
    }

    /// The emulator's HTTPS authority host.
    pub(crate) fn host(&self) -> AuthorityHost {
        AuthorityHost::custom(self.emu.https_url()).unwrap()
    }

    /// Asks for a token and checks it is a real emulator token for `oid` and the Redis audience.
    pub(crate) async fn expect_token(&self, provider: &dyn IdentityProvider, oid: &str) -> String {
        let response = provider.request_token().await.unwrap();
        let token = token_of(response);
        let verified = self.emu.verifier().verify(&token).unwrap();
        assert_eq!(verified.claims.oid(), Some(oid));
        assert_eq!(verified.claims.aud(), Some("https://redis.azure.com"));
        token
    }
}

/// The access token of a response.
pub(crate) fn token_of(response: IdentityProviderResponse) -> String {
    match response {
        IdentityProviderResponse::TokenResponse(r) => {
            assert!(r.expires_in.is_some() || r.expires_on.is_some(), "{r:?}");
            r.access_token.expose_secret().to_owned()
        }
        other => panic!("expected a token response, got {}", other.kind()),
    }
}

/// The error of a request that must fail.
pub(crate) async fn expect_error(provider: &dyn IdentityProvider) -> Error {
    match provider.request_token().await {
        Ok(r) => panic!("expected an error, got a {}", r.kind()),
        Err(e) => e,
    }
}

/// A fresh temporary folder, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let mut bytes = [0u8; 8];
        getrandom(&mut bytes);
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("entraid-identity-{name}-{suffix}"));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn getrandom(bytes: &mut [u8]) {
    use std::hash::{BuildHasher, RandomState};
    for chunk in bytes.chunks_mut(8) {
        let v = RandomState::new()
            .hash_one(std::time::SystemTime::now())
            .to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// The path of a committed fixture.
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every log line (message and fields) written while it is the thread's default subscriber.
#[derive(Clone, Default)]
pub(crate) struct CapturedLogs(Arc<Mutex<Vec<String>>>);

impl CapturedLogs {
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Visitor<'a>(&'a mut String);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={}", field.name(), value));
    }
}

impl tracing::Subscriber for CapturedLogs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = format!("span {}", span.metadata().name());
        span.record(&mut Visitor(&mut line));
        self.0.lock().unwrap().push(line);
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = String::from("record");
        values.record(&mut Visitor(&mut line));
        self.0.lock().unwrap().push(line);
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("{} {}", event.metadata().level(), event.metadata().target());
        event.record(&mut Visitor(&mut line));
        self.0.lock().unwrap().push(line);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
