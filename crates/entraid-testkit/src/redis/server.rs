//! [`RedisServer`]: one real `redis-server` process on a free 127.0.0.1 port, in its own temporary directory,
//! password-protected, no persistence; killed and reaped on drop (also when a test panics), its log kept and
//! printed when the owning thread is panicking. redis-server runs under a tiny `sh` supervisor tied to this
//! process by a pipe, so it is killed even when the test process itself is killed (SIGKILL, a test timeout).

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use entraid_core::Secret;
use ring::rand::{SecureRandom as _, SystemRandom};

use super::client::RespClient;
use super::{Error, RespValue};

/// Runs redis-server (`$0`, config `$1`) under a small `sh` supervisor whose stdin is a pipe from this process.
/// When the pipe closes (the owner is dropped, or the whole test process dies, even by SIGKILL), the supervisor
/// kills redis-server with SIGKILL and reaps it, so no redis-server outlives the process that started it. The
/// supervisor exits with redis-server's status when redis-server exits on its own.
const SUPERVISOR: &str = r#"exec 3<&0 0</dev/null
"$0" "$1" 3<&- &
server=$!
( read -r _ <&3; kill -9 "$server" 2>/dev/null ) &
watcher=$!
exec 3<&-
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
exit "$status""#;

/// How long [`RedisServer::kill`] waits for the supervisor before killing it outright.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How many times a start is retried when another process took the chosen port first.
const PORT_ATTEMPTS: usize = 8;

/// Options for [`RedisServer::start`]. `Debug` never shows the password.
#[derive(Clone)]
pub struct RedisServerOptions {
    /// The `redis-server` program. Default: the `ENTRAID_REDIS_SERVER` environment variable, else `redis-server`
    /// on `PATH`.
    pub program: PathBuf,
    /// The password clients must `AUTH` with (`requirepass`, user `default`). Default: 32 random hex characters.
    pub password: Option<Secret>,
    /// Start the node in cluster mode (`cluster-enabled yes`, bus port on its own free port). Default: `false`.
    pub cluster: bool,
    /// The port the node announces to clients in cluster replies (`cluster-announce-port`), e.g. its gateway's.
    /// Default: none (the node's own port).
    pub announce_port: Option<u16>,
    /// Extra `redis.conf` lines (`"name value"`), appended last. Default: none.
    pub extra_config: Vec<String>,
    /// How long to wait for the server to answer `PING`. Default: 10 s.
    pub startup_timeout: Duration,
}

impl fmt::Debug for RedisServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServerOptions")
            .field("program", &self.program)
            .field("password", &self.password)
            .field("cluster", &self.cluster)
            .field("announce_port", &self.announce_port)
            .field("extra_config", &self.extra_config)
            .field("startup_timeout", &self.startup_timeout)
            .finish()
    }
}

impl Default for RedisServerOptions {
    fn default() -> Self {
        Self {
            program: std::env::var_os("ENTRAID_REDIS_SERVER")
                .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from),
            password: None,
            cluster: false,
            announce_port: None,
            extra_config: Vec::new(),
            startup_timeout: Duration::from_secs(10),
        }
    }
}

/// A running `redis-server`. Dropping it kills the process (SIGKILL) and waits for it, so no process outlives
/// its owner; when the dropping thread is panicking, the log's last lines are printed to stderr and the
/// directory is kept for inspection.
pub struct RedisServer {
    /// The supervisor (`sh`), which owns redis-server.
    child: Option<Child>,
    /// The supervisor's stdin: closing it kills redis-server.
    lifeline: Option<std::process::ChildStdin>,
    pid: u32,
    addr: SocketAddr,
    bus_port: Option<u16>,
    password: Secret,
    dir: PathBuf,
    version: String,
    /// The program and startup timeout it was started with, for [`RedisServer::restart`].
    program: PathBuf,
    startup_timeout: Duration,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("pid", &self.pid)
            .field("addr", &self.addr)
            .field("bus_port", &self.bus_port)
            .field("dir", &self.dir)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Picks a free 127.0.0.1 port below 55535 by binding port 0 and releasing it. Another process can take it before
/// it is used: callers retry on "address in use".
pub fn free_port() -> Result<u16, Error> {
    for _ in 0..64 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if port < 55535 {
            return Ok(port);
        }
    }
    Err(Error::Io(std::io::Error::other(
        "no free port below 55535 found",
    )))
}

fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::Io(std::io::Error::other("system random generator failed")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Parses `v=7.0.15` out of `redis-server --version`.
fn parse_version(output: &str) -> Option<(u32, String)> {
    let v = output
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))?;
    let major = v.split('.').next()?.parse().ok()?;
    Some((major, v.to_owned()))
}

fn check_program(program: &Path) -> Result<String, Error> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::RedisServerMissing {
                    program: program.to_path_buf(),
                }
            } else {
                Error::Io(e)
            }
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    match parse_version(&text) {
        Some((major, version)) if major >= 6 => Ok(version),
        Some((_, version)) => Err(Error::RedisServerTooOld { version }),
        None => Err(Error::RedisServerTooOld {
            version: format!("unrecognised --version output {:?}", text.trim()),
        }),
    }
}

fn make_dir() -> Result<PathBuf, Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!(
            "entraid-redis-{}-{n}-{}",
            std::process::id(),
            random_hex(4)?
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn tail_of(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl RedisServer {
    /// Starts a standalone server with default options.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(RedisServerOptions::default()).await
    }

    /// Starts a server: checks the program (present, version 6 or newer), writes a `redis.conf` into a fresh
    /// temporary directory, starts the process on a free port (retrying when the port was taken meanwhile) and
    /// waits until it answers `PING` after `AUTH`.
    pub async fn start_with(options: RedisServerOptions) -> Result<Self, Error> {
        let version = check_program(&options.program)?;
        let password = match &options.password {
            Some(p) => p.clone(),
            None => Secret::new(random_hex(16)?),
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let dir = make_dir()?;
            match Self::try_start(&options, &password, &dir, &version).await {
                Ok(server) => return Ok(server),
                Err((error, port_taken)) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    if !port_taken {
                        return Err(error);
                    }
                    tracing::debug!(%error, "redis-server port was taken, retrying");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or(Error::Io(std::io::Error::other("no start attempt"))))
    }

    async fn try_start(
        options: &RedisServerOptions,
        password: &Secret,
        dir: &Path,
        version: &str,
    ) -> Result<Self, (Error, bool)> {
        let port = free_port().map_err(|e| (e, false))?;
        let bus_port = if options.cluster {
            Some(free_port().map_err(|e| (e, false))?)
        } else {
            None
        };
        let log = dir.join("redis.log");
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\nsave \"\"\nappendonly no\n\
             dir \"{}\"\npidfile \"{}\"\nlogfile \"{}\"\nloglevel notice\nrequirepass \"{}\"\n",
            dir.display(),
            dir.join("redis.pid").display(),
            log.display(),
            password.expose_secret()
        );
        if let Some(bus) = bus_port {
            conf.push_str(&format!(
                "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-port {bus}\n\
                 cluster-announce-ip 127.0.0.1\ncluster-node-timeout 5000\nmasterauth \"{}\"\n",
                password.expose_secret()
            ));
        }
        if let Some(announce) = options.announce_port {
            conf.push_str(&format!("cluster-announce-port {announce}\n"));
        }
        for line in &options.extra_config {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = dir.join("redis.conf");
        std::fs::write(&conf_path, conf).map_err(|e| (e.into(), false))?;
        let stdio = std::fs::File::create(dir.join("stdio.log")).map_err(|e| (e.into(), false))?;
        let stdio2 = stdio.try_clone().map_err(|e| (e.into(), false))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg(&options.program)
            .arg(&conf_path)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(stdio)
            .stderr(stdio2)
            .spawn()
            .map_err(|e| (Error::Io(e), false))?;
        let lifeline = child.stdin.take();
        let mut server = Self {
            pid: 0,
            child: Some(child),
            lifeline,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            bus_port,
            password: password.clone(),
            dir: dir.to_path_buf(),
            version: version.to_owned(),
            program: options.program.clone(),
            startup_timeout: options.startup_timeout,
        };
        let deadline = tokio::time::Instant::now() + options.startup_timeout;
        loop {
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                server.child = None;
                let log = server.log_tail(40);
                let port_taken = log.contains("Address already in use");
                return Err((
                    Error::Exited {
                        status: status.to_string(),
                        log_tail: log,
                    },
                    port_taken,
                ));
            }
            if server.ping().await.is_ok() {
                server.pid = std::fs::read_to_string(dir.join("redis.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(0);
                tracing::debug!(pid = server.pid, addr = %server.addr, "redis-server ready");
                return Ok(server);
            }
            if tokio::time::Instant::now() >= deadline {
                let log_tail = server.log_tail(40);
                return Err((
                    Error::StartTimeout {
                        addr: server.addr,
                        log_tail,
                    },
                    false,
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ping(&self) -> Result<(), Error> {
        let mut client = self.connect().await?;
        match client.command(&["PING"]).await? {
            RespValue::Simple(s) if s == "PONG" => Ok(()),
            other => Err(Error::UnexpectedReply {
                command: "PING",
                reply: format!("{other:?}"),
            }),
        }
    }

    /// Opens a raw client straight to the server (not through a gateway), already authenticated.
    pub async fn connect(&self) -> Result<RespClient, Error> {
        let mut client = RespClient::connect(self.addr).await?;
        let reply = client
            .command(&["AUTH", "default", self.password.expose_secret()])
            .await?;
        if reply != RespValue::Simple("OK".into()) {
            return Err(Error::UnexpectedReply {
                command: "AUTH",
                reply: format!("{reply:?}"),
            });
        }
        Ok(client)
    }

    /// The address clients connect to directly (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster bus port, for a cluster node.
    pub fn bus_port(&self) -> Option<u16> {
        self.bus_port
    }

    /// The password of user `default` (`requirepass`).
    pub fn password(&self) -> &Secret {
        &self.password
    }

    /// redis-server's process id (0 if its pid file could not be read).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server version, e.g. `7.0.15`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The server's temporary directory (config, log, cluster state).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The last `lines` lines of the server's log, followed by anything it printed on stdout or stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut tail = tail_of(&self.log_path(), lines);
        let stdio = tail_of(&self.dir.join("stdio.log"), lines);
        if !stdio.trim().is_empty() {
            tail.push_str("\n--- stdout/stderr ---\n");
            tail.push_str(&stdio);
        }
        tail
    }

    /// Kills redis-server (SIGKILL, by closing its supervisor's lifeline) and waits until it and its supervisor
    /// have exited. Idempotent; [`Drop`] calls it. Blocks for the few milliseconds that takes.
    pub fn kill(&mut self) {
        drop(self.lifeline.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        let started = std::time::Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if started.elapsed() < KILL_GRACE => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                _ => break,
            }
        }
        tracing::warn!(
            pid = self.pid,
            "redis-server supervisor did not exit: killing it"
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts redis-server again after [`RedisServer::kill`] (or kills it first when it still runs): the same
    /// port, configuration and directory, so what it persisted survives (for example with `appendonly yes` and
    /// `appendfsync always` in [`RedisServerOptions::extra_config`]; the default configuration persists
    /// nothing). Waits until it answers `PING` again. ACL users created at run time (`ACL SETUSER`) are not
    /// persisted by redis-server: a caller that needs them creates them again.
    ///
    /// # Errors
    /// [`Error::Exited`] when the server exits at once (for example because another process took its port
    /// meanwhile), [`Error::StartTimeout`] when it does not answer in the startup timeout.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        let conf_path = self.dir.join("redis.conf");
        let stdio = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("stdio.log"))?;
        let stdio2 = stdio.try_clone()?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg(&self.program)
            .arg(&conf_path)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(stdio)
            .stderr(stdio2)
            .spawn()?;
        self.lifeline = child.stdin.take();
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + self.startup_timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                self.lifeline = None;
                return Err(Error::Exited {
                    status: status.to_string(),
                    log_tail: self.log_tail(40),
                });
            }
            if self.ping().await.is_ok() {
                self.pid = std::fs::read_to_string(self.dir.join("redis.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(0);
                tracing::debug!(pid = self.pid, addr = %self.addr, "redis-server restarted");
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::StartTimeout {
                    addr: self.addr,
                    log_tail: self.log_tail(40),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            #[allow(clippy::print_stderr, reason = "a failing test shows the server's log")]
            {
                eprintln!(
                    "redis-server pid {} at {} (directory kept: {}), last log lines:\n{}",
                    self.pid,
                    self.addr,
                    self.dir.display(),
                    self.log_tail(30)
                );
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsing() {
        let out = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d";
        assert_eq!(parse_version(out), Some((7, "7.0.15".into())));
        assert_eq!(parse_version("nonsense"), None);
    }

    #[tokio::test]
    async fn restart_keeps_the_port_and_what_was_persisted() {
        let mut server = RedisServer::start_with(RedisServerOptions {
            extra_config: vec!["appendonly yes".into(), "appendfsync always".into()],
            ..RedisServerOptions::default()
        })
        .await
        .unwrap();
        let addr = server.addr();
        let first_pid = server.pid();
        let mut client = server.connect().await.unwrap();
        assert_eq!(
            client.command(&["SET", "k", "v"]).await.unwrap(),
            RespValue::Simple("OK".into())
        );
        server.kill();
        assert!(server.connect().await.is_err(), "killed: nothing answers");
        server.restart().await.unwrap();
        assert_eq!(server.addr(), addr);
        assert_ne!(server.pid(), first_pid);
        let mut client = server.connect().await.unwrap();
        assert_eq!(
            client.command(&["GET", "k"]).await.unwrap(),
            RespValue::Bulk(bytes::Bytes::from_static(b"v"))
        );
        // A second restart of a running server kills it first.
        server.restart().await.unwrap();
        assert_eq!(server.addr(), addr);
    }

    #[test]
    fn options_debug_hides_password() {
        let options = RedisServerOptions {
            password: Some(Secret::new("hunter2-secret")),
            ..RedisServerOptions::default()
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
