//! The program the start-up benchmark (`benches/startup.rs`) runs as a whole process, many times: an application
//! using entraid-fred with a managed identity, from the start of `main` to its first authenticated `PING`.
//!
//! It reads the managed identity endpoint from the process environment (`IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER`, App Service style) and the Redis address from `STARTUP_REDIS`, and prints one line,
//! `STARTUP wall_main=<ns since the epoch>;<step>=<ns since main>;...`, with the end of each step on its own
//! monotonic clock. With `STARTUP_EAGER_ROOTS` set it first loads the operating system's root certificates into
//! a root store, as building the HTTP client did before the roots were made lazy. With `STARTUP_OVERLAP` set it
//! does not wait for the first token before `init()` (fred's credential provider waits for it), so the Redis
//! connection is made while the identity request is in flight.
//!
//! Not a usage example: see the crate's README for that.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark probe"
)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use fred::prelude::*;

fn main() {
    let wall_main = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let main = Instant::now();
    let eager_roots = std::env::var_os("STARTUP_EAGER_ROOTS").is_some();
    let overlap = std::env::var_os("STARTUP_OVERLAP").is_some();
    let addr: std::net::SocketAddr = std::env::var("STARTUP_REDIS")
        .expect("STARTUP_REDIS: the Redis address")
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut marks = vec![("runtime", main.elapsed())];
    runtime.block_on(async {
        if eager_roots {
            let loaded = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let _ = roots.add_parsable_certificates(loaded.certs);
            assert!(!roots.is_empty(), "no system root certificates to load");
            marks.push(("eager roots", main.elapsed()));
        }
        entraid_identity::HttpClient::shared_default().unwrap();
        marks.push(("HTTP client", main.elapsed()));
        let auth = entraid_fred::EntraIdAuth::system_assigned_managed_identity().unwrap();
        marks.push(("credential + manager", main.elapsed()));
        if !overlap {
            auth.manager().ready().await.unwrap();
            marks.push(("token (request + parse)", main.elapsed()));
        }
        let config = Config {
            server: ServerConfig::new_centralized(addr.ip().to_string(), addr.port()),
            version: fred::types::RespVersion::RESP3,
            ..Config::default()
        };
        let client = auth.fred_builder(config).build().unwrap();
        client.init().await.unwrap();
        marks.push(("fred connect + AUTH", main.elapsed()));
        let pong: String = client.ping(None).await.unwrap();
        assert_eq!(pong, "PONG");
        marks.push(("PING", main.elapsed()));
    });
    let marks: Vec<String> = marks
        .iter()
        .map(|(name, at)| format!("{name}={}", at.as_nanos()))
        .collect();
    println!("STARTUP wall_main={wall_main};{}", marks.join(";"));
    // Exit at once, as a short-lived tool would: the runtime's shutdown is not part of the measurement.
    std::process::exit(0);
}
