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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entraid_core::{
    BoxFuture, Claims, Error, IdentityProvider, IdentityProviderResponse, REDIS_SCOPE, Secret,
    parse_expires_on,
};

use crate::authority::TenantId;
use crate::env::Env;

/// How long a developer tool may run before it is killed: 10 s.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(10);

mod runner;

use runner::{Output, Tool};

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
mod azure_cli;

#[cfg(feature = "azure-cli")]
pub use azure_cli::{AzureCliCredential, AzureCliCredentialBuilder};

#[cfg(feature = "azure-developer-cli")]
mod azd;

#[cfg(feature = "azure-developer-cli")]
pub use azd::{AzureDeveloperCliCredential, AzureDeveloperCliCredentialBuilder};

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
