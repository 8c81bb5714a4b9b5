//! `entraid`: a command-line companion for entraid-rs.
//!
//! - `token`: acquire a token (the default chain or a named credential) and print who it is for.
//! - `doctor`: try every link of the default chain, then (with `--redis`) every step of a Redis connection, with
//!   a hint per failure saying what to change in Azure.
//! - `ping`: connect through entraid-fred with Entra auth, PING, print latency and user.
//! - `emulator` (feature `testkit`): the Entra ID emulator in the foreground, with the variables pointing any
//!   client at it.
//! - `demo` (feature `testkit`): every layer against the emulator and the enforcing gateway, with short tokens.
//!
//! Exit statuses are in [`exit`] and `entraid --help`.

#![forbid(unsafe_code)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a binary reports to its user on the terminal"
)]

mod credential;
#[cfg(feature = "testkit")]
mod demo;
mod doctor;
#[cfg(feature = "testkit")]
mod emulator;
mod exit;
mod hints;
mod net;
mod ping;
mod resp;
mod token;

use clap::{Parser, Subcommand};

/// Microsoft Entra ID authentication for Redis: get and inspect tokens, diagnose a setup, ping a cache.
#[derive(Debug, Parser)]
#[command(name = "entraid", version, after_help = exit::TABLE)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Acquire a token and print its oid, tid, aud, expiry and the credential that produced it.
    Token(token::TokenArgs),
    /// Try every credential of the default chain and, with --redis, every step of a connection, with hints.
    Doctor(doctor::DoctorArgs),
    /// Connect with Entra auth through entraid-fred, PING, and print the latency and user.
    Ping(ping::PingArgs),
    /// Run the Entra ID emulator (and optionally redis behind the enforcing gateway) in the foreground.
    #[cfg(feature = "testkit")]
    Emulator(emulator::EmulatorArgs),
    /// Run every layer against the emulator and the enforcing gateway while short-lived tokens rotate.
    #[cfg(feature = "testkit")]
    Demo(demo::Options),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Token(args) => token::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Ping(args) => ping::run(args).await,
        #[cfg(feature = "testkit")]
        Command::Emulator(args) => emulator::run(args).await,
        #[cfg(feature = "testkit")]
        Command::Demo(args) => demo::run(args).await,
    };
    exit::code(status)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
