//! The exit statuses of `entraid`, documented in `entraid --help` and the crate README.

use std::process::ExitCode;

/// An exit status.
pub(crate) type Exit = u8;

/// Everything worked.
pub(crate) const OK: Exit = 0;
/// A check failed (`doctor` found a problem, `demo` lost a command, a message or a connection).
pub(crate) const CHECK_FAILED: Exit = 1;
/// Bad arguments (clap's own status for usage errors).
pub(crate) const USAGE: Exit = 2;
/// No credential is available here (every credential tried was unavailable).
pub(crate) const NO_CREDENTIAL: Exit = 3;
/// Entra ID refused the credential (AADSTS error), or another identity error.
pub(crate) const AUTHENTICATION_FAILED: Exit = 4;
/// Redis could not be reached or refused the token (DNS, TCP, TLS, WRONGPASS, NOPERM on PING).
pub(crate) const REDIS_FAILED: Exit = 5;

/// The table for `--help`.
pub(crate) const TABLE: &str = "Exit status:
  0  success
  1  a check failed (doctor found a problem; demo lost a command, message or connection)
  2  usage error
  3  no credential available (every credential tried was unavailable)
  4  Entra ID refused the credential (AADSTS error) or another identity error
  5  Redis unreachable or refused the token (DNS, TCP, TLS, WRONGPASS, NOPERM)";

/// The process exit code.
pub(crate) fn code(exit: Exit) -> ExitCode {
    ExitCode::from(exit)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_lists_every_status() {
        for status in [
            super::OK,
            super::CHECK_FAILED,
            super::USAGE,
            super::NO_CREDENTIAL,
            super::AUTHENTICATION_FAILED,
            super::REDIS_FAILED,
        ] {
            assert!(super::TABLE.contains(&format!("\n  {status}  ")));
        }
    }
}
