//! `entraid`: a command-line companion for entraid-rs.
//!
//! `entraid demo` is implemented: it starts the Entra ID emulator and a redis-server behind the testkit's enforcing
//! gateway (which closes any connection whose token expires), then runs fred clients through entraid-rs while
//! short-lived tokens rotate, and prints what happened. The other planned subcommands (`token`, `doctor`, `ping`,
//! `emulator`) are not implemented yet: the command says so and exits with status 2 rather than pretend.

#![forbid(unsafe_code)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a binary reports to its user on the terminal"
)]

mod demo;

use std::process::ExitCode;

const USAGE: &str = "usage: entraid demo [--rotations N] [--lifetime SECONDS]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => match demo::Options::parse(&args[1..]) {
            Ok(options) => demo::run(options).await,
            Err(message) => {
                eprintln!("entraid demo: {message}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some(planned @ ("token" | "doctor" | "ping" | "emulator")) => {
            eprintln!("entraid {planned}: not implemented yet (only `entraid demo` is)");
            ExitCode::from(2)
        }
        _ => {
            eprintln!("entraid {}\n{USAGE}", env!("CARGO_PKG_VERSION"));
            ExitCode::from(2)
        }
    }
}
