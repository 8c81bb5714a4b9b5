//! `entraid`: a command-line companion for entraid-rs.
//!
//! Planned subcommands: `token`, `doctor`, `ping`, `emulator`, `demo`. None works yet: the command says so and
//! exits with status 2 rather than pretend.

#![forbid(unsafe_code)]

use std::process::ExitCode;

#[allow(
    clippy::print_stderr,
    reason = "a binary reports to its user on stderr"
)]
fn main() -> ExitCode {
    let version = env!("CARGO_PKG_VERSION");
    eprintln!(
        "entraid {version}: no subcommand is implemented yet (planned: token, doctor, ping, emulator, demo)"
    );
    ExitCode::from(2)
}
