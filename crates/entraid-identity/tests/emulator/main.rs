//! End-to-end tests of every flow against the testkit's Entra ID emulator, over HTTPS with its test CA: success,
//! the seeds' Entra errors, and the emulator's faults.

// Test helpers outside `#[test]` functions unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

mod browser;
mod certificate;
mod chain;
mod ci;
mod client_secret;
mod common;
mod developer_cli;
mod device_code;
mod environment;
mod managed_identity;
mod proxy;
mod redaction;
mod user_flows;
mod workload_identity;
