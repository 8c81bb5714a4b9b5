//! `entraid ping <redis[s]://host:port>`: connect through entraid-fred as an application would (Entra auth,
//! fred, TLS on ring), PING, and print the latency and the user the connection is authenticated as.

use std::time::Duration;

use clap::Args;
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::RespVersion;
use entraid_fred::fred::types::config::{
    Config, ConnectionConfig, ServerConfig, TlsConfig, TlsConnector, TlsHostMapping,
};
use entraid_fred::{EntraIdAuth, TokenManagerOptions};
use serde_json::json;
use tokio::time::{Instant, timeout};

use crate::credential::CredentialArgs;
use crate::exit::{self, Exit};
use crate::hints;
use crate::net::{RedisUrl, TlsArgs};
use crate::token::identity_exit;

/// `entraid ping` options.
#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    /// The endpoint: `rediss://<name>.redis.cache.windows.net:6380`, `rediss://<name>.<region>.redis.azure.net:10000`.
    pub(crate) url: String,
    /// The endpoint is a cluster (Azure Managed Redis, OSS cluster policy).
    #[arg(long)]
    pub(crate) cluster: bool,
    /// PINGs to send.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) count: u32,
    /// RESP version.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub(crate) resp: u8,
    /// Seconds to wait for the token and the connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub(crate) timeout: u64,
    #[command(flatten)]
    pub(crate) credential: CredentialArgs,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

fn fail(args: &PingArgs, status: Exit, error: String, hint: Option<String>) -> Exit {
    if args.json {
        println!("{}", json!({"ok": false, "error": error, "hint": hint}));
    } else {
        eprintln!("entraid ping: {error}");
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
    }
    status
}

pub(crate) async fn run(args: PingArgs) -> Exit {
    let url = match RedisUrl::parse(&args.url) {
        Ok(u) => u,
        Err(e) => return fail(&args, exit::USAGE, e, None),
    };
    let credential = match args.credential.build() {
        Ok(c) => c,
        Err(e) => {
            let hint = hints::for_identity_error(&e);
            return fail(&args, identity_exit(&e), e.to_string(), hint);
        }
    };
    let auth =
        match EntraIdAuth::from_provider(credential.provider(), TokenManagerOptions::default()) {
            Ok(a) => a,
            Err(e) => return fail(&args, exit::AUTHENTICATION_FAILED, e.to_string(), None),
        };
    let limit = Duration::from_secs(args.timeout);
    match timeout(limit, auth.manager().ready()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let hint = hints::for_identity_error(&e);
            return fail(&args, identity_exit(&e), e.to_string(), hint);
        }
        Err(_) => {
            return fail(
                &args,
                exit::NO_CREDENTIAL,
                format!("no token within {} s", args.timeout),
                None,
            );
        }
    }
    let Some(token) = auth.manager().current() else {
        return fail(&args, exit::NO_CREDENTIAL, "no token".to_owned(), None);
    };
    let user = token.username().to_owned();
    let audience = token.claims().aud().map(str::to_owned);
    let audience_ok = audience
        .as_deref()
        .is_some_and(|a| crate::credential::REDIS_AUDIENCES.contains(&a.trim_end_matches('/')));
    let tls = if url.tls {
        match args.tls.client_config() {
            Ok(config) => Some(TlsConfig {
                connector: TlsConnector::from(config),
                hostnames: TlsHostMapping::DefaultHost,
            }),
            Err(e) => return fail(&args, exit::REDIS_FAILED, e, None),
        }
    } else {
        None
    };
    let server = if args.cluster {
        ServerConfig::new_clustered(vec![(url.host.clone(), url.port)])
    } else {
        ServerConfig::new_centralized(url.host.clone(), url.port)
    };
    let config = Config {
        server,
        tls,
        version: if args.resp == 2 {
            RespVersion::RESP2
        } else {
            RespVersion::RESP3
        },
        fail_fast: true,
        ..Config::default()
    };
    let mut builder = auth.fred_builder(config);
    builder.with_connection_config(|c: &mut ConnectionConfig| {
        c.connection_timeout = limit;
        c.internal_command_timeout = limit;
    });
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return fail(&args, exit::USAGE, e.to_string(), None),
    };
    let started = Instant::now();
    match timeout(limit, client.init()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let text = e.to_string();
            let hint = if audience_ok {
                hints::for_redis_error("AUTH", &text, &user).or_else(|| {
                    text.contains("NOPERM")
                        .then(|| hints::noperm("a command the connection needs"))
                })
            } else {
                Some(hints::wrong_audience(audience.as_deref()))
            };
            return fail(&args, exit::REDIS_FAILED, format!("connect: {text}"), hint);
        }
        Err(_) => {
            return fail(
                &args,
                exit::REDIS_FAILED,
                format!("connect: no answer within {} s", args.timeout),
                None,
            );
        }
    }
    let connect = started.elapsed();
    let mut latencies = Vec::new();
    for _ in 0..args.count {
        let started = Instant::now();
        match timeout(limit, client.ping::<String>(None)).await {
            Ok(Ok(_)) => latencies.push(started.elapsed()),
            Ok(Err(e)) => {
                let text = e.to_string();
                let hint = hints::for_redis_error("PING", &text, &user);
                let _ = client.quit().await;
                return fail(&args, exit::REDIS_FAILED, format!("PING: {text}"), hint);
            }
            Err(_) => {
                let _ = client.quit().await;
                return fail(
                    &args,
                    exit::REDIS_FAILED,
                    "PING: no answer".to_owned(),
                    None,
                );
            }
        }
    }
    let _ = client.quit().await;
    let millis = |d: Duration| d.as_secs_f64() * 1000.0;
    let min = latencies.iter().copied().min().unwrap_or_default();
    let max = latencies.iter().copied().max().unwrap_or_default();
    let total: Duration = latencies.iter().sum();
    let avg = total / u32::try_from(latencies.len().max(1)).unwrap_or(1);
    if args.json {
        println!(
            "{}",
            json!({
                "ok": true,
                "user": user,
                "credential": credential.winner(),
                "connect_ms": millis(connect),
                "pings": latencies.len(),
                "min_ms": millis(min),
                "avg_ms": millis(avg),
                "max_ms": millis(max),
            })
        );
    } else {
        println!(
            "PONG from {}:{} as {user} (credential {})",
            url.host,
            url.port,
            credential.winner()
        );
        println!(
            "connect {:.1} ms; {} PINGs: min {:.2} ms, avg {:.2} ms, max {:.2} ms",
            millis(connect),
            latencies.len(),
            millis(min),
            millis(avg),
            millis(max)
        );
    }
    exit::OK
}
