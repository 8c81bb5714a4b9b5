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

/// Fake developer tools (`az`, `azd`, `date`): shell scripts in a temporary folder, which is the whole search
/// path handed to the credential (the process `PATH` is never changed). Scripts use absolute paths for anything
/// they run, and each records its arguments in `<name>.args`.
pub(crate) struct FakeTools {
    dir: TempDir,
}

impl FakeTools {
    pub(crate) fn new() -> Self {
        Self {
            dir: TempDir::new("tools"),
        }
    }

    /// The search path: just the folder.
    pub(crate) fn search_path(&self) -> std::ffi::OsString {
        self.dir.path().as_os_str().to_owned()
    }

    /// Writes an executable script `name` whose body runs after the arguments are recorded.
    pub(crate) fn script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = self.dir.path().display();
        let path = self.dir.path().join(name);
        let text = format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{dir}/{name}.args'\n{body}\n");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A script that prints `stdout` and exits 0.
    pub(crate) fn prints(&self, name: &str, stdout: &str) {
        assert!(!stdout.contains('\''), "no single quotes in fake output");
        self.script(name, &format!("printf '%s\\n' '{stdout}'"));
    }

    /// A script that prints `stderr` on standard error and exits with `code`.
    pub(crate) fn fails(&self, name: &str, stderr: &str, code: i32) {
        assert!(!stderr.contains('\''), "no single quotes in fake output");
        self.script(name, &format!("printf '%s\\n' '{stderr}' >&2\nexit {code}"));
    }

    /// The arguments the tool was last run with, or `None` when it never ran.
    pub(crate) fn args(&self, name: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.args"))).ok()?;
        Some(text.lines().map(str::to_owned).collect())
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `http://127.0.0.1:<port>` where nothing listens (connections are refused at once).
pub(crate) fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Unix seconds as a civil date-time `YYYY-MM-DD HH:MM:SS` (UTC), with `sep` between date and time.
pub(crate) fn civil(unix: i64, sep: char) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}{sep}{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The `exp` claim of a JWT.
pub(crate) fn exp_of(jwt: &str) -> i64 {
    entraid_core::Claims::from_jwt(jwt).unwrap().exp().unwrap()
}
