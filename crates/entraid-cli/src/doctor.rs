//! `entraid doctor`: every link of the default chain with timings and a hint per failure; then, with `--redis`,
//! each step a connection takes (DNS, TCP, TLS, AUTH as the token's `oid`, PING), the commands the adapter needs
//! under the identity's access policy (`CLIENT UNBLOCK` included), and the clock against the token and the server.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use entraid_core::{Error, IdentityProvider as _, Token};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::credential::{CredentialArgs, CredentialKind, TokenInfo, relative, utc};
use crate::exit::{self, Exit};
use crate::hints;
use crate::net::{RedisUrl, TlsArgs};
use crate::resp::{Connection, Reply, Stream};
use crate::token::identity_exit;

/// `entraid doctor` options.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) credential: CredentialArgs,
    /// Also check this Redis endpoint (`rediss://<name>.redis.cache.windows.net:6380`,
    /// `rediss://<name>.<region>.redis.azure.net:10000`).
    #[arg(long, value_name = "URL")]
    pub(crate) redis: Option<String>,
    /// The endpoint is a cluster (Azure Managed Redis with the OSS cluster policy): check `CLUSTER SLOTS` too.
    #[arg(long)]
    pub(crate) cluster: bool,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    /// Timeout of each network step, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub(crate) timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "[ ok ]",
            Self::Warn => "[warn]",
            Self::Fail => "[FAIL]",
            Self::Skip => "[ -- ]",
        })
    }
}

/// The checks so far; each is printed as it is recorded.
struct Report {
    exit: Exit,
}

impl Report {
    fn record(
        &mut self,
        status: Status,
        name: &str,
        elapsed: Option<Duration>,
        detail: impl fmt::Display,
        hint: Option<String>,
    ) {
        let took = elapsed
            .map(|d| format!(" ({} ms)", d.as_millis()))
            .unwrap_or_default();
        println!("{status} {name}{took}: {detail}");
        if let Some(hint) = hint {
            println!("       hint: {hint}");
        }
    }

    fn fail(&mut self, exit: Exit) {
        if self.exit == exit::OK {
            self.exit = exit;
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) async fn run(args: DoctorArgs) -> Exit {
    let mut report = Report { exit: exit::OK };
    println!("identity");
    let Some(info) = identity(&args, &mut report).await else {
        println!("\nresult: no token, so no further checks");
        return report.exit;
    };
    check_token(&info, &mut report);
    if let Some(url) = &args.redis {
        println!("\nredis {url}");
        match RedisUrl::parse(url) {
            Ok(url) => redis(&args, &url, &info, &mut report).await,
            Err(e) => {
                report.record(Status::Fail, "url", None, e, None);
                report.fail(exit::USAGE);
            }
        }
    }
    println!(
        "\nresult: {}",
        if report.exit == exit::OK {
            "ok"
        } else {
            "problems found (see the hints above)"
        }
    );
    report.exit
}

/// Tries every link of the default chain (or the one credential named), and returns the first token.
async fn identity(args: &DoctorArgs, report: &mut Report) -> Option<TokenInfo> {
    if args.credential.credential != CredentialKind::Default {
        let name = format!("{:?}", args.credential.credential);
        let started = Instant::now();
        let result = match args.credential.build() {
            Ok(c) => c.token().await,
            Err(e) => Err(e),
        };
        return match result {
            Ok(info) => {
                report.record(
                    Status::Ok,
                    &name,
                    Some(started.elapsed()),
                    format!("token for oid {}", info.oid),
                    None,
                );
                Some(info)
            }
            Err(e) => {
                report.record(
                    Status::Fail,
                    &name,
                    Some(started.elapsed()),
                    &e,
                    hints::for_identity_error(&e),
                );
                report.fail(identity_exit(&e));
                None
            }
        };
    }
    let mut first: Option<TokenInfo> = None;
    let mut refused: Option<Error> = None;
    for (link, built) in args.credential.chain_links() {
        let name = link.credential_name();
        if first.is_some() || refused.is_some() {
            report.record(
                Status::Skip,
                name,
                None,
                "not tried by the chain (an earlier link answered)",
                None,
            );
            continue;
        }
        let started = Instant::now();
        let result = match built {
            Ok(provider) => match provider.request_token().await {
                Ok(response) => Token::from_response(response, SystemTime::now())
                    .and_then(TokenInfo::from_token),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let elapsed = Some(started.elapsed());
        match result {
            Ok(info) => {
                report.record(
                    Status::Ok,
                    name,
                    elapsed,
                    format!("token for oid {} (the chain uses this one)", info.oid),
                    None,
                );
                first = Some(info);
            }
            Err(e) if e.is_unavailable() || matches!(e, Error::Configuration { .. }) => {
                report.record(
                    Status::Skip,
                    name,
                    elapsed,
                    format!("unavailable: {e}"),
                    None,
                );
            }
            Err(e) => {
                report.record(
                    Status::Fail,
                    name,
                    elapsed,
                    &e,
                    hints::for_identity_error(&e),
                );
                refused = Some(e);
            }
        }
    }
    if let Some(e) = refused {
        report.fail(identity_exit(&e));
        return None;
    }
    if first.is_none() {
        let none = Error::unavailable("DefaultAzureCredential", "every link is unavailable");
        report.record(
            Status::Fail,
            "DefaultAzureCredential",
            None,
            "no credential is available here",
            hints::for_identity_error(&none),
        );
        report.fail(exit::NO_CREDENTIAL);
    }
    first
}

fn check_token(info: &TokenInfo, report: &mut Report) {
    println!("\ntoken");
    if info.audience_is_redis() {
        report.record(
            Status::Ok,
            "audience",
            None,
            info.aud.as_deref().unwrap_or_default(),
            None,
        );
    } else {
        report.record(
            Status::Fail,
            "audience",
            None,
            info.aud.as_deref().unwrap_or("(none)"),
            Some(hints::wrong_audience(info.aud.as_deref())),
        );
        report.fail(exit::CHECK_FAILED);
    }
    report.record(
        Status::Ok,
        "expiry",
        None,
        format!("{} ({})", utc(info.expires), relative(info.expires_in())),
        None,
    );
    match info.clock_skew() {
        // Entra back-dates `iat` by up to 5 minutes; a clock behind `iat` is behind Entra's.
        Some(skew) if skew < -60 => report.record(
            Status::Warn,
            "clock",
            None,
            format!("this clock is {} s behind the token's iat", -skew),
            Some(
                "fix this machine's clock (NTP): tokens look not yet valid or expire early"
                    .to_owned(),
            ),
        ),
        Some(skew) => report.record(
            Status::Ok,
            "clock",
            None,
            format!("received {skew} s after the token's iat"),
            None,
        ),
        None => report.record(Status::Skip, "clock", None, "the token has no iat", None),
    }
}

async fn step<T, E: fmt::Display>(
    seconds: u64,
    work: impl Future<Output = Result<T, E>>,
) -> (Duration, Result<T, String>) {
    let started = Instant::now();
    let result = match timeout(Duration::from_secs(seconds), work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {seconds} s")),
    };
    (started.elapsed(), result)
}

async fn redis(args: &DoctorArgs, url: &RedisUrl, info: &TokenInfo, report: &mut Report) {
    let (took, addrs) = step(
        args.timeout,
        tokio::net::lookup_host((url.host.as_str(), url.port)),
    )
    .await;
    let addrs: Vec<_> = match addrs {
        Ok(a) => a.collect(),
        Err(e) => {
            report.record(
                Status::Fail,
                "dns",
                Some(took),
                e,
                Some("check the host name; with a private endpoint, this machine must resolve the privatelink zone".to_owned()),
            );
            report.fail(exit::REDIS_FAILED);
            return;
        }
    };
    let Some(addr) = addrs.first().copied() else {
        report.record(Status::Fail, "dns", Some(took), "no address", None);
        report.fail(exit::REDIS_FAILED);
        return;
    };
    report.record(
        Status::Ok,
        "dns",
        Some(took),
        addrs
            .iter()
            .map(|a| a.ip().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        None,
    );
    let (took, tcp) = step(args.timeout, TcpStream::connect(addr)).await;
    let tcp = match tcp {
        Ok(s) => s,
        Err(e) => {
            report.record(
                Status::Fail,
                "tcp",
                Some(took),
                format!("{addr}: {e}"),
                Some("check the port (6380 for Azure Cache for Redis, 10000 for Azure Managed Redis), firewall rules and whether public network access is enabled".to_owned()),
            );
            report.fail(exit::REDIS_FAILED);
            return;
        }
    };
    report.record(Status::Ok, "tcp", Some(took), addr, None);
    let stream: Box<dyn Stream> = if url.tls {
        let config = match args.tls.client_config() {
            Ok(c) => c,
            Err(e) => {
                report.record(Status::Fail, "tls", None, e, None);
                report.fail(exit::REDIS_FAILED);
                return;
            }
        };
        let name = match rustls_pki_types::ServerName::try_from(url.host.clone()) {
            Ok(n) => n,
            Err(e) => {
                report.record(Status::Fail, "tls", None, e, None);
                report.fail(exit::REDIS_FAILED);
                return;
            }
        };
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let (took, tls) = step(args.timeout, connector.connect(name, tcp)).await;
        match tls {
            Ok(s) => {
                report.record(
                    Status::Ok,
                    "tls",
                    Some(took),
                    "handshake done, certificate trusted",
                    None,
                );
                Box::new(s)
            }
            Err(e) => {
                report.record(
                    Status::Fail,
                    "tls",
                    Some(took),
                    e,
                    Some("the server's certificate is not trusted for this name: use the cache's host name, or --ca-file for a private CA".to_owned()),
                );
                report.fail(exit::REDIS_FAILED);
                return;
            }
        }
    } else {
        if url.azure_without_tls() {
            report.record(
                Status::Warn,
                "tls",
                None,
                "not used",
                Some("Azure Redis accepts TLS only: use rediss://".to_owned()),
            );
        } else {
            report.record(Status::Skip, "tls", None, "not used (redis://)", None);
        }
        Box::new(tcp)
    };
    let mut conn = Connection::new(stream);
    let token = info
        .token
        .access_token()
        .expose_secret()
        .as_bytes()
        .to_vec();
    let (took, auth) = step(
        args.timeout,
        conn.command(&[b"AUTH", info.oid.as_bytes(), &token]),
    )
    .await;
    match auth {
        Ok(Reply::Simple(ok)) => report.record(
            Status::Ok,
            "auth",
            Some(took),
            format!("{ok} as {}", info.oid),
            None,
        ),
        Ok(reply) => {
            let text = reply.short();
            let mut hint = hints::for_redis_error("AUTH", &text, &info.oid);
            if !info.audience_is_redis() {
                hint = Some(hints::wrong_audience(info.aud.as_deref()));
            }
            report.record(Status::Fail, "auth", Some(took), text, hint);
            report.fail(exit::REDIS_FAILED);
            return;
        }
        Err(e) => {
            report.record(Status::Fail, "auth", Some(took), e, None);
            report.fail(exit::REDIS_FAILED);
            return;
        }
    }
    let mut commands: Vec<(&str, Vec<&[u8]>, bool)> = vec![
        ("PING", vec![b"PING"], true),
        ("EXISTS (a read)", vec![b"EXISTS", b"entraid:doctor"], true),
        // fred reads each connection's id on connect; CLIENT UNBLOCK needs it.
        ("CLIENT ID", vec![b"CLIENT", b"ID"], false),
        ("CLIENT UNBLOCK", vec![b"CLIENT", b"UNBLOCK", b"0"], false),
    ];
    if args.cluster {
        commands.push(("CLUSTER SLOTS", vec![b"CLUSTER", b"SLOTS"], true));
    }
    for (name, command, required) in commands {
        let (took, reply) = step(args.timeout, conn.command(&command)).await;
        match reply {
            Ok(reply) => match reply.error() {
                None => report.record(Status::Ok, name, Some(took), reply.short(), None),
                Some(e) => {
                    let short = name.split(" (").next().unwrap_or(name);
                    let hint = hints::for_redis_error(short, e, &info.oid);
                    if required {
                        report.record(Status::Fail, name, Some(took), e, hint);
                        report.fail(exit::REDIS_FAILED);
                    } else {
                        report.record(Status::Warn, name, Some(took), e, hint);
                    }
                }
            },
            Err(e) => {
                report.record(Status::Fail, name, Some(took), e, None);
                report.fail(exit::REDIS_FAILED);
                return;
            }
        }
    }
    let (took, time) = step(args.timeout, conn.command(&[b"TIME"])).await;
    match time {
        Ok(Reply::Array(Some(items))) => {
            let server = items.first().and_then(|i| match i {
                Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse::<i64>().ok(),
                _ => None,
            });
            match server {
                Some(server) => {
                    let skew = now_unix() - server;
                    let status = if skew.abs() > 30 {
                        Status::Warn
                    } else {
                        Status::Ok
                    };
                    let hint = (status == Status::Warn).then(|| {
                        "fix this machine's clock (NTP): refresh timing assumes it is right"
                            .to_owned()
                    });
                    report.record(
                        status,
                        "clock vs server",
                        Some(took),
                        format!("this clock minus the server's: {skew} s"),
                        hint,
                    );
                }
                None => report.record(
                    Status::Skip,
                    "clock vs server",
                    Some(took),
                    "unreadable TIME reply",
                    None,
                ),
            }
        }
        Ok(reply) => report.record(
            Status::Skip,
            "clock vs server",
            Some(took),
            reply.short(),
            None,
        ),
        Err(e) => report.record(Status::Skip, "clock vs server", Some(took), e, None),
    }
}
