//! The developer tools' logins: [`AzureCliCredential`] (`az`) and [`AzureDeveloperCliCredential`] (`azd`).
//!
//! The tool is found on a search path (the process's `PATH` by default, or one you give: tests put fake tools
//! first) and run directly, without a shell, with validated arguments, from the root folder (so no `az` in the
//! current folder is picked up), with a timeout (10 s by default) after which it is killed. On unix the tool runs in
//! a process group of its own, and the whole group is killed on timeout (or when the request is dropped): the
//! Debian `az` launcher runs Python without `exec`, and killing only the launcher would leave Python behind. Its
//! standard output is read (at most 1 MiB) and never appears in errors or logs; its standard error becomes the
//! error message.
//!
//! - **Azure CLI**: `az account get-access-token -o json --resource <scope without /.default> [--tenant <t>]`.
//!   The expiry is `expires_on` (unix seconds, CLI 2.54 and later); older CLIs only give `expiresOn`, a date in
//!   the machine's *local* time without an offset, so the token's own `exp` claim (exact, and the same instant)
//!   is used instead. Nothing but the tool is run: no subprocess for the time or the time zone.
//! - **Azure Developer CLI**: `azd auth token -o json --no-prompt --scope <scope> [--tenant-id <t>]`; `expiresOn`
//!   is RFC 3339 in UTC.
//!
//! "Not installed" (no such program on the search path, or exit status 127) and "not logged in" (standard error
//! asks to run `az login` / `az account set` or `azd auth login`, without an AADSTS code) are
//! [`Error::CredentialUnavailable`] with the command to run; other failures are authentication failures, except
//! inside the default chain, where every failure of a developer tool counts as unavailable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entraid_core::{
    BoxFuture, Claims, Error, IdentityProvider, IdentityProviderResponse, REDIS_SCOPE, Secret,
    parse_expires_on,
};
use tokio::io::AsyncReadExt as _;

use crate::authority::TenantId;
use crate::env::Env;

/// How long a developer tool may run before it is killed: 10 s.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// The most output read from a developer tool: 1 MiB.
const MAX_OUTPUT: u64 = 1024 * 1024;

/// What a finished tool printed.
struct Output {
    stdout: Vec<u8>,
    stderr: String,
    code: Option<i32>,
}

/// How to find and run one developer tool.
#[derive(Debug, Clone)]
struct Tool {
    /// The credential's name.
    credential: &'static str,
    /// The program's name on the search path.
    program: &'static str,
    /// The search path; `None`: the environment's `PATH`.
    search_path: Option<OsString>,
    timeout: Duration,
}

impl Tool {
    /// The program's full path, found on the search path.
    fn locate(&self, program: &str) -> Option<PathBuf> {
        let path = self.search_path.as_ref()?;
        let names: &[&str] = if cfg!(windows) {
            &[".exe", ".cmd", ".bat", ""]
        } else {
            &[""]
        };
        std::env::split_paths(path)
            .filter(|dir| dir.is_absolute())
            .flat_map(|dir| {
                names
                    .iter()
                    .map(move |ext| dir.join(format!("{program}{ext}")))
            })
            .find(|candidate| is_executable(candidate))
    }

    /// Runs `program args...` without a shell, within the timeout; kills it when the time is up.
    async fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Result<Output, Error> {
        let Some(executable) = self.locate(program) else {
            return Err(Error::unavailable(
                self.credential,
                format!("`{program}` was not found on the search path (PATH); is it installed?"),
            ));
        };
        let mut command = tokio::process::Command::new(&executable);
        command
            .args(args)
            .current_dir(root_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group, so that a timeout kills whatever it started too.
        #[cfg(unix)]
        command.process_group(0);
        if let Some(path) = &self.search_path {
            command.env("PATH", path);
        }
        tracing::debug!(credential = self.credential, program = %executable.display(), ?args, "running");
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::unavailable(
                    self.credential,
                    format!("`{program}` could not be started ({e}); is it installed?"),
                )
            } else {
                Error::custom(
                    format!("{}: `{program}` could not be started: {e}", self.credential),
                    false,
                )
            }
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        // Kills the group if this future is dropped before the tool is done (a caller's own timeout).
        let mut group = ProcessGroup::of(&child);
        let finished = tokio::time::timeout(timeout, async {
            let (out, err, status) =
                tokio::join!(read_limited(stdout), read_limited(stderr), child.wait());
            (out, err, status)
        })
        .await;
        let (stdout, stderr, status) = match finished {
            Ok(done) => {
                group.disarm();
                done
            }
            Err(_) => {
                group.kill();
                let _ = child.start_kill();
                let _ = child.wait().await;
                tracing::debug!(
                    credential = self.credential,
                    program,
                    "killed after the timeout"
                );
                return Err(Error::timeout(self.credential, timeout));
            }
        };
        let status = status.map_err(|e| {
            Error::custom(
                format!("{}: waiting for `{program}` failed: {e}", self.credential),
                false,
            )
        })?;
        Ok(Output {
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            code: status.code(),
        })
    }
}

/// A running tool's process group (its own, on unix), killed with `SIGKILL` on [`ProcessGroup::kill`] or on drop
/// unless disarmed. The tool is not reaped before the kill, so its pid (the group's id) cannot have been reused.
struct ProcessGroup {
    #[cfg(unix)]
    leader: Option<rustix::process::Pid>,
}

impl ProcessGroup {
    fn of(child: &tokio::process::Child) -> Self {
        #[cfg(unix)]
        {
            Self {
                leader: child
                    .id()
                    .and_then(|id| i32::try_from(id).ok())
                    .and_then(rustix::process::Pid::from_raw),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = child;
            Self {}
        }
    }

    /// The tool finished normally: nothing to kill.
    fn disarm(&mut self) {
        #[cfg(unix)]
        {
            self.leader = None;
        }
    }

    /// Kills every process of the group (at most once).
    fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(leader) = self.leader.take() {
            // ESRCH (the group is already gone) is fine.
            let _ = rustix::process::kill_process_group(leader, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The root folder, where tools run (so nothing in the current folder shadows them).
fn root_dir() -> PathBuf {
    if cfg!(windows) {
        std::env::var_os("SystemRoot").map_or_else(|| PathBuf::from("C:\\"), PathBuf::from)
    } else {
        PathBuf::from("/")
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

async fn read_limited<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.take(MAX_OUTPUT).read_to_end(&mut bytes).await;
    }
    bytes
}

/// Checks a scope for a command line: `[A-Za-z0-9._/:-]` only, not starting with `-`.
fn check_scope(credential: &str, scope: &str) -> Result<(), Error> {
    let valid = !scope.is_empty()
        && !scope.starts_with('-')
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b':' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Error::configuration(format!(
            "{credential}: the scope may hold only letters, digits and `._/:-` (one scope, for example {REDIS_SCOPE})"
        )))
    }
}

/// The first lines of a tool's standard error, without `ERROR: ` prefixes, at most 600 characters.
fn summary(stderr: &str) -> String {
    let mut text: String = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("ERROR: ").unwrap_or(l))
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().count() > 600 {
        text = text.chars().take(600).collect::<String>() + "...";
    }
    if text.is_empty() {
        "no error message".to_owned()
    } else {
        text
    }
}

/// Options both tools share.
#[derive(Debug, Clone, Default)]
struct ToolOptions {
    tenant_id: Option<String>,
    scope: Option<String>,
    search_path: Option<OsString>,
    timeout: Option<Duration>,
    env: Option<Env>,
    in_chain: bool,
}

/// What sets one developer tool apart from the other.
#[derive(Debug)]
struct Spec {
    /// The credential's name in errors and logs.
    name: &'static str,
    /// The program's name on the search path.
    program: &'static str,
    /// The tool, in messages (`the Azure CLI`).
    title: &'static str,
    /// Who printed the output, in messages (`the Azure CLI's`, `azd's`).
    owner: &'static str,
    /// The command that is run, in messages (`az account get-access-token`).
    command: &'static str,
    /// The output's field that holds the token.
    token_field: &'static str,
    /// The command that logs in.
    login: &'static str,
    /// Standard error holding one of these, without an AADSTS code, means "not logged in".
    login_markers: &'static [&'static str],
    /// Standard error is JSON lines whose `/data/message` is the text (azd).
    json_stderr: bool,
}

/// The parts of a developer tool's credential both tools share.
#[derive(Debug)]
struct Cli {
    spec: &'static Spec,
    tool: Tool,
    tenant: Option<TenantId>,
    in_chain: bool,
}

impl ToolOptions {
    /// The scope (default: the Redis scope), checked.
    fn scope(&self, spec: &Spec) -> Result<String, Error> {
        let scope = self.scope.clone().unwrap_or_else(|| REDIS_SCOPE.to_owned());
        check_scope(spec.name, &scope)?;
        Ok(scope)
    }

    /// The shared parts of the credential: the tool on its search path, and the checked tenant.
    fn cli(&self, spec: &'static Spec) -> Result<Cli, Error> {
        let search_path = self.search_path.clone().or_else(|| {
            let env = self.env.clone().unwrap_or_default();
            env.get("PATH").map(OsString::from)
        });
        let tool = Tool {
            credential: spec.name,
            program: spec.program,
            search_path,
            timeout: self.timeout.unwrap_or(CLI_TIMEOUT),
        };
        let tenant = self
            .tenant_id
            .as_deref()
            .map(|t| {
                TenantId::new(t).map_err(|e| match e {
                    Error::Configuration { message } => {
                        Error::configuration(format!("{}: {message}", spec.name))
                    }
                    other => other,
                })
            })
            .transpose()?;
        Ok(Cli {
            spec,
            tool,
            tenant,
            in_chain: self.in_chain,
        })
    }
}

impl Cli {
    /// Runs the tool with `args`: its JSON output and the (non-empty) token in it.
    async fn run(&self, args: &[&str]) -> Result<(serde_json::Value, Secret), Error> {
        let spec = self.spec;
        let output = self
            .tool
            .run(self.tool.program, args, self.tool.timeout)
            .await?;
        if output.code != Some(0) {
            return Err(classify(spec, &output));
        }
        parse_output(spec, &output.stdout)
    }

    /// The request's outcome. Inside the default chain every failure counts as unavailable; an unavailable error
    /// gets the login hint when it has none.
    fn finish(
        &self,
        result: Result<IdentityProviderResponse, Error>,
    ) -> Result<IdentityProviderResponse, Error> {
        let error = match result {
            Err(error) if self.in_chain && !error.is_unavailable() => {
                let credential = match &error {
                    Error::AuthenticationFailed { credential, .. }
                    | Error::Timeout { credential, .. }
                    | Error::Transport { credential, .. }
                    | Error::Http { credential, .. } => credential.clone(),
                    _ => "developer tool".into(),
                };
                Error::unavailable(credential, error.to_string())
            }
            Err(error) => error,
            ok => return ok,
        };
        let login = self.spec.login;
        Err(match error {
            Error::CredentialUnavailable {
                credential,
                message,
            } if !message.contains(login) => {
                Error::unavailable(credential, format!("{message}; then run `{login}`"))
            }
            other => other,
        })
    }
}

/// A tool's standard output: its JSON and the (non-empty) token in it. Works on any bytes; errors never quote them.
fn parse_output(spec: &Spec, stdout: &[u8]) -> Result<(serde_json::Value, Secret), Error> {
    let parsed: serde_json::Value = serde_json::from_slice(stdout).map_err(|_| {
        Error::invalid_response(format!(
            "{}: `{}` did not print the expected JSON",
            spec.name, spec.command
        ))
    })?;
    let token = parsed
        .get(spec.token_field)
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .map(Secret::from)
        .ok_or_else(|| {
            Error::invalid_response(format!(
                "{}: {} output has no {}",
                spec.name, spec.owner, spec.token_field
            ))
        })?;
    Ok((parsed, token))
}

/// The token's own `exp` claim as a time, when it has a representable one.
fn exp_of(token: &Secret) -> Option<SystemTime> {
    Claims::from_jwt(token.expose_secret())
        .ok()
        .and_then(|c| c.exp())
        .and_then(|exp| u64::try_from(exp).ok())
        .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp)))
}

/// The messages of azd's JSON error lines (`{"type":"consoleMessage","data":{"message":...}}`), or the text.
fn messages(stderr: &str) -> String {
    let from_json: Vec<String> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter_map(|v| {
            v.pointer("/data/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .collect();
    if from_json.is_empty() {
        stderr.to_owned()
    } else {
        from_json.join("\n")
    }
}

/// Turns a failed run into an error: not installed, not logged in, or what the tool said.
fn classify(spec: &Spec, output: &Output) -> Error {
    let text = if spec.json_stderr {
        messages(&output.stderr)
    } else {
        output.stderr.clone()
    };
    let program = spec.program;
    if output.code == Some(127)
        || text.contains(&format!("{program}: not found"))
        || text.contains(&format!("'{program}' is not recognized"))
    {
        return Error::unavailable(
            spec.name,
            format!(
                "{} ({program}) is not installed; install it, then run `{}`",
                spec.title, spec.login
            ),
        );
    }
    if spec.login_markers.iter().any(|m| text.contains(m)) && !text.contains("AADSTS") {
        return Error::unavailable(
            spec.name,
            format!("not logged in to {}; run `{}`", spec.title, spec.login),
        );
    }
    Error::authentication_failed(
        spec.name,
        format!("{} failed: {}", spec.title, summary(&text)),
    )
}

/// The Azure CLI's standard output read into its expiry, as the credential does (for the fuzz targets and the
/// property tests).
#[cfg(all(any(test, fuzzing), feature = "azure-cli"))]
pub(crate) fn az_output(stdout: &[u8]) -> Result<SystemTime, Error> {
    let (parsed, token) = parse_output(&azure_cli::SPEC, stdout)?;
    azure_cli::az_expiry(&parsed, &token)
}

/// azd's standard output read into its expiry, as the credential does.
#[cfg(all(any(test, fuzzing), feature = "azure-developer-cli"))]
pub(crate) fn azd_output(stdout: &[u8]) -> Result<SystemTime, Error> {
    let (parsed, token) = parse_output(&azd::SPEC, stdout)?;
    azd::azd_expiry(&parsed, &token)
}

/// A failed run of each tool, classified.
#[cfg(all(
    any(test, fuzzing),
    feature = "azure-cli",
    feature = "azure-developer-cli"
))]
pub(crate) fn failures(stderr: &str, code: Option<i32>) -> [Error; 2] {
    [&azure_cli::SPEC, &azd::SPEC].map(|spec| {
        classify(
            spec,
            &Output {
                stdout: Vec::new(),
                stderr: stderr.to_owned(),
                code,
            },
        )
    })
}

/// Builder methods both tools' builders share.
macro_rules! tool_builder_methods {
    ($login:literal) => {
        /// The tenant to get the token from (`--tenant` / `--tenant-id`). Default: the tool's own default tenant.
        pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
            self.options.tenant_id = Some(tenant_id.into());
            self
        }

        /// The scope. Default `https://redis.azure.com/.default`; only `[A-Za-z0-9._/:-]` is allowed.
        pub fn scope(mut self, scope: impl Into<String>) -> Self {
            self.options.scope = Some(scope.into());
            self
        }

        /// Where the tool is looked for, as a `PATH`-style list of absolute folders; also the tool's `PATH`.
        /// Default: the environment's `PATH`.
        pub fn search_path(mut self, path: impl Into<OsString>) -> Self {
            self.options.search_path = Some(path.into());
            self
        }

        /// How long the tool may run before it is killed. Default [`CLI_TIMEOUT`] (10 s).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.options.timeout = Some(timeout);
            self
        }

        /// Where `PATH` is read from when no search path is given. Default: the process environment.
        pub fn env(mut self, env: Env) -> Self {
            self.options.env = Some(env);
            self
        }

        #[doc = concat!("Counts every failure as unavailable (as inside the default chain), with a hint to run `", $login, "`. Default `false`.")]
        pub fn in_chain(mut self, in_chain: bool) -> Self {
            self.options.in_chain = in_chain;
            self
        }
    };
}

#[cfg(feature = "azure-cli")]
pub use azure_cli::{AzureCliCredential, AzureCliCredentialBuilder};

#[cfg(feature = "azure-cli")]
mod azure_cli {
    //! The Azure CLI credential.

    use super::*;

    const NAME: &str = "AzureCli";

    pub(super) static SPEC: Spec = Spec {
        name: NAME,
        program: "az",
        title: "the Azure CLI",
        owner: "the Azure CLI's",
        command: "az account get-access-token",
        token_field: "accessToken",
        login: "az login",
        login_markers: &["az login", "az account set"],
        json_stderr: false,
    };

    /// The user (or service principal) logged in to the Azure CLI (`az login`).
    ///
    /// ```no_run
    /// use entraid_core::IdentityProvider;
    /// use entraid_identity::AzureCliCredential;
    ///
    /// # async fn run() -> Result<(), entraid_core::Error> {
    /// let credential = AzureCliCredential::new()?;
    /// let token = credential.request_token().await?; // runs `az account get-access-token ...`
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct AzureCliCredential {
        cli: Cli,
        resource: String,
    }

    impl AzureCliCredential {
        /// A builder.
        pub fn builder() -> AzureCliCredentialBuilder {
            AzureCliCredentialBuilder::default()
        }

        /// A credential with every setting at its default.
        pub fn new() -> Result<Self, Error> {
            Self::builder().build()
        }

        /// The arguments `az` is run with.
        pub fn arguments(&self) -> Vec<&str> {
            let mut args = vec![
                "account",
                "get-access-token",
                "-o",
                "json",
                "--resource",
                &self.resource,
            ];
            if let Some(tenant) = &self.cli.tenant {
                args.extend(["--tenant", tenant.as_str()]);
            }
            args
        }

        async fn get(&self) -> Result<IdentityProviderResponse, Error> {
            let (parsed, token) = self.cli.run(&self.arguments()).await?;
            let expires_on = az_expiry(&parsed, &token)?;
            Ok(IdentityProviderResponse::access_token(token, expires_on))
        }
    }

    /// The expiry in the Azure CLI's output: `expires_on` (unix seconds), else the token's `exp` claim (old CLIs'
    /// `expiresOn` is local time without an offset; `exp` is the same instant, exactly). Works on any JSON.
    pub(super) fn az_expiry(
        parsed: &serde_json::Value,
        token: &Secret,
    ) -> Result<SystemTime, Error> {
        if let Some(at) = unix_seconds(parsed.get("expires_on")) {
            return Ok(at);
        }
        if parsed.get("expires_on").is_some() {
            tracing::debug!("the Azure CLI's expires_on could not be read (or is out of range)");
        }
        let at = exp_of(token).ok_or_else(|| {
            Error::invalid_response(format!(
                "{NAME}: the Azure CLI's output has no usable expiry (expires_on or expiresOn)"
            ))
        })?;
        if parsed.get("expiresOn").is_some() {
            tracing::debug!(
                "the Azure CLI gave only a local-time expiresOn; using the token's exp claim"
            );
        }
        Ok(at)
    }

    impl IdentityProvider for AzureCliCredential {
        fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
            Box::pin(async move { self.cli.finish(self.get().await) })
        }

        fn name(&self) -> &str {
            NAME
        }
    }

    /// Builds an [`AzureCliCredential`]. Defaults: the Redis scope, the CLI's default tenant, `PATH`, 10 s.
    #[derive(Debug, Default)]
    pub struct AzureCliCredentialBuilder {
        options: ToolOptions,
    }

    impl AzureCliCredentialBuilder {
        tool_builder_methods!("az login");

        /// Builds the credential, checking the scope and the tenant.
        pub fn build(self) -> Result<AzureCliCredential, Error> {
            let scope = self.options.scope(&SPEC)?;
            let resource = scope.strip_suffix("/.default").unwrap_or(&scope).to_owned();
            check_scope(NAME, &resource)?;
            Ok(AzureCliCredential {
                cli: self.options.cli(&SPEC)?,
                resource,
            })
        }
    }

    /// Unix seconds (number or string), when a representable time (the lifetime cap is the token's to check).
    fn unix_seconds(value: Option<&serde_json::Value>) -> Option<SystemTime> {
        let seconds: u64 = match value? {
            serde_json::Value::Number(n) => n.as_u64()?,
            serde_json::Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        // The same range as every other expiry: up to the end of 9999.
        entraid_core::date::unix_time(seconds)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn expires_on_as_number_or_string() {
            let at = UNIX_EPOCH + Duration::from_secs(1_750_170_600);
            assert_eq!(
                unix_seconds(Some(&serde_json::json!(1_750_170_600))),
                Some(at)
            );
            assert_eq!(
                unix_seconds(Some(&serde_json::json!("1750170600"))),
                Some(at)
            );
            assert_eq!(unix_seconds(Some(&serde_json::json!("soon"))), None);
            assert_eq!(unix_seconds(None), None);
        }

        #[test]
        fn arguments_are_exact_and_checked() {
            let c = AzureCliCredential::builder()
                .tenant_id("contoso.onmicrosoft.com")
                .search_path("/nonexistent")
                .build()
                .unwrap();
            assert_eq!(
                c.arguments(),
                [
                    "account",
                    "get-access-token",
                    "-o",
                    "json",
                    "--resource",
                    "https://redis.azure.com",
                    "--tenant",
                    "contoso.onmicrosoft.com"
                ]
            );
            for bad in [
                "a b",
                "https://x/.default;rm -rf",
                "--debug",
                "$(x)",
                "",
                "x\ny",
            ] {
                let err = AzureCliCredential::builder()
                    .scope(bad)
                    .build()
                    .unwrap_err();
                assert!(matches!(err, Error::Configuration { .. }), "{bad:?}: {err}");
            }
            let err = AzureCliCredential::builder()
                .tenant_id("a;b")
                .build()
                .unwrap_err();
            assert!(err.to_string().contains("AzureCli"), "{err}");
        }
    }
}

#[cfg(feature = "azure-developer-cli")]
pub use azd::{AzureDeveloperCliCredential, AzureDeveloperCliCredentialBuilder};

#[cfg(feature = "azure-developer-cli")]
mod azd {
    //! The Azure Developer CLI credential.

    use super::*;

    const NAME: &str = "AzureDeveloperCli";

    pub(super) static SPEC: Spec = Spec {
        name: NAME,
        program: "azd",
        title: "the Azure Developer CLI",
        owner: "azd's",
        command: "azd auth token",
        token_field: "token",
        login: "azd auth login",
        login_markers: &["azd auth login"],
        json_stderr: true,
    };

    /// The user logged in to the Azure Developer CLI (`azd auth login`).
    ///
    /// ```
    /// use entraid_identity::AzureDeveloperCliCredential;
    ///
    /// let credential = AzureDeveloperCliCredential::builder().tenant_id("contoso.onmicrosoft.com").build().unwrap();
    /// assert_eq!(
    ///     credential.arguments(),
    ///     ["auth", "token", "-o", "json", "--no-prompt", "--scope", "https://redis.azure.com/.default",
    ///      "--tenant-id", "contoso.onmicrosoft.com"]
    /// );
    /// ```
    #[derive(Debug)]
    pub struct AzureDeveloperCliCredential {
        cli: Cli,
        scope: String,
    }

    impl AzureDeveloperCliCredential {
        /// A builder.
        pub fn builder() -> AzureDeveloperCliCredentialBuilder {
            AzureDeveloperCliCredentialBuilder::default()
        }

        /// A credential with every setting at its default.
        pub fn new() -> Result<Self, Error> {
            Self::builder().build()
        }

        /// The arguments `azd` is run with.
        pub fn arguments(&self) -> Vec<&str> {
            let mut args = vec![
                "auth",
                "token",
                "-o",
                "json",
                "--no-prompt",
                "--scope",
                &self.scope,
            ];
            if let Some(tenant) = &self.cli.tenant {
                args.extend(["--tenant-id", tenant.as_str()]);
            }
            args
        }

        async fn get(&self) -> Result<IdentityProviderResponse, Error> {
            let (parsed, token) = self.cli.run(&self.arguments()).await?;
            let expires_on = azd_expiry(&parsed, &token)?;
            Ok(IdentityProviderResponse::access_token(token, expires_on))
        }
    }

    /// The expiry in azd's output: the RFC 3339 `expiresOn`, else the token's `exp` claim (with a DEBUG note).
    /// Works on any JSON.
    pub(super) fn azd_expiry(
        parsed: &serde_json::Value,
        token: &Secret,
    ) -> Result<SystemTime, Error> {
        if let Some(at) = parsed
            .get("expiresOn")
            .and_then(|v| v.as_str())
            .and_then(parse_expires_on)
        {
            return Ok(at);
        }
        let at = exp_of(token).ok_or_else(|| {
            Error::invalid_response(format!(
                "{NAME}: azd's output has no RFC 3339 expiresOn (and the token no exp claim)"
            ))
        })?;
        tracing::debug!("azd's expiresOn could not be read; using the token's exp claim");
        Ok(at)
    }

    impl IdentityProvider for AzureDeveloperCliCredential {
        fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
            Box::pin(async move { self.cli.finish(self.get().await) })
        }

        fn name(&self) -> &str {
            NAME
        }
    }

    /// Builds an [`AzureDeveloperCliCredential`]. Defaults: the Redis scope, azd's default tenant, `PATH`, 10 s.
    #[derive(Debug, Default)]
    pub struct AzureDeveloperCliCredentialBuilder {
        options: ToolOptions,
    }

    impl AzureDeveloperCliCredentialBuilder {
        tool_builder_methods!("azd auth login");

        /// Builds the credential, checking the scope and the tenant.
        pub fn build(self) -> Result<AzureDeveloperCliCredential, Error> {
            Ok(AzureDeveloperCliCredential {
                scope: self.options.scope(&SPEC)?,
                cli: self.options.cli(&SPEC)?,
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_azd_json_error_lines() {
            let stderr = "{\"type\":\"consoleMessage\",\"timestamp\":\"2025-06-17T10:30:00Z\",\"data\":{\"message\":\"\\nERROR: fetching token: not logged in, run `azd auth login` to login\\n\"}}\n";
            let err = classify(
                &SPEC,
                &Output {
                    stdout: Vec::new(),
                    stderr: stderr.to_owned(),
                    code: Some(1),
                },
            );
            assert!(
                err.is_unavailable() && err.to_string().contains("`azd auth login`"),
                "{err}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_summaries() {
        assert!(check_scope("x", REDIS_SCOPE).is_ok());
        assert!(check_scope("x", "acca5fbb-b7e4-4009-81f1-37e38fd66d78/.default").is_ok());
        for bad in ["", "-x", "a b", "a&b", "a|b", "a\"b", "a'b", "é"] {
            assert!(check_scope("x", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            summary("ERROR: AADSTS70043: expired\n\nmore"),
            "AADSTS70043: expired more"
        );
        assert_eq!(summary(""), "no error message");
        assert_eq!(summary(&"x".repeat(700)).len(), 603);
    }
}
