//! Redis addresses (`redis://host:port`, `rediss://host:port`) and the TLS client configuration the commands use:
//! the operating system's roots, plus `--ca-file` for a private CA (or the emulator's).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

/// A Redis endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    /// `rediss://`.
    pub(crate) tls: bool,
    /// The host name or IP address (without brackets).
    pub(crate) host: String,
    /// The port.
    pub(crate) port: u16,
}

impl RedisUrl {
    /// Parses `redis[s]://host[:port][/db]`; the port defaults to 6379 (`redis`) or 6380 (`rediss`).
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("rediss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("redis://") {
            (false, rest)
        } else {
            return Err(format!(
                "`{url}`: expected redis://host:port or rediss://host:port"
            ));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err("the URL must not carry credentials: the token is the password".to_owned());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{url}`: unclosed `[`"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("`{url}`: bad port `{p}`"))?,
            None if tls => 6380,
            None => 6379,
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
        })
    }

    /// Whether the host looks like Azure Cache for Redis or Azure Managed Redis and the URL lacks TLS.
    pub(crate) fn azure_without_tls(&self) -> bool {
        !self.tls
            && (self.host.ends_with(".redis.cache.windows.net")
                || self.host.ends_with(".redis.azure.net"))
    }
}

/// TLS options.
#[derive(Debug, Clone, Args)]
pub(crate) struct TlsArgs {
    /// Also trust the CA certificates in this PEM file (for a private CA or the emulator's gateway).
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
}

fn load_pem(path: &Path, roots: &mut rustls::RootCertStore) -> Result<(), String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut added = 0;
    for cert in CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("--ca-file {}: {e}", path.display()))?
    {
        let cert = cert.map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!(
            "--ca-file {}: no certificate in it",
            path.display()
        ));
    }
    Ok(())
}

impl TlsArgs {
    /// A rustls client configuration on the ring provider: the system's roots and `--ca-file`.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A broken system certificate is skipped, as every TLS client does.
            let _ = roots.add(cert);
        }
        if let Some(path) = &self.ca_file {
            load_pem(path, &mut roots)?;
        }
        if roots.is_empty() {
            return Err(
                "no trusted root certificates: install the system's CA bundle or pass --ca-file"
                    .to_owned(),
            );
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    }
}

#[cfg(test)]
mod tests {
    use super::RedisUrl;

    #[test]
    fn parses_redis_urls() {
        let u = RedisUrl::parse("rediss://myredis.redis.cache.windows.net:6380").unwrap();
        assert!(u.tls && u.host == "myredis.redis.cache.windows.net" && u.port == 6380);
        let u = RedisUrl::parse("rediss://myredis.westeurope.redis.azure.net").unwrap();
        assert_eq!(u.port, 6380);
        let u = RedisUrl::parse("redis://127.0.0.1:7000/0").unwrap();
        assert!(!u.tls && u.host == "127.0.0.1" && u.port == 7000);
        let u = RedisUrl::parse("redis://[::1]:7000").unwrap();
        assert_eq!(u.host, "::1");
        assert!(RedisUrl::parse("http://x").is_err());
        assert!(RedisUrl::parse("redis://:1").is_err());
        assert!(RedisUrl::parse("redis://h:99999").is_err());
        assert!(RedisUrl::parse("redis://u:p@h:1").is_err());
        assert!(
            RedisUrl::parse("redis://x.redis.cache.windows.net:6380")
                .unwrap()
                .azure_without_tls()
        );
    }
}
