//! The gateway's I/O: the accept loop (plain TCP or TLS), and per connection the request and reply pumps and the
//! deadline that closes it when its token expires.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::registry::{LastSeen, Registration, Shared, lock};
use super::replies::{Expect, Tracker};
use super::session::Session;
use super::types::CloseReason;
use crate::redis::resp::parse_request;

/// How long a TLS handshake may take before the gateway drops the connection.
pub(super) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Copies client requests to the backend, rewriting credentials, and queues in `tracker` what the server will
/// send back for them (before they are sent). Returns when the client closes.
pub(super) async fn pump_requests<R, W>(
    session: &mut Session,
    tracker: &Mutex<Tracker>,
    client: &mut R,
    backend: &mut W,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut expects = Vec::new();
    let mut passthrough = false;
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        if client.read_buf(&mut buf).await? == 0 {
            backend.shutdown().await?;
            return Ok(());
        }
        if passthrough {
            backend.write_all(&buf).await?;
            buf.clear();
            continue;
        }
        let mut view = buf.split().freeze();
        loop {
            match parse_request(&view) {
                Ok(Some((request, used))) => {
                    let raw = view.split_to(used);
                    session.handle(request, &raw, &mut out, &mut expects);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(id = session.id, error = %e, "client request not framed: forwarding the rest as is");
                    out.extend_from_slice(&view);
                    view.clear();
                    passthrough = true;
                    expects.push(Expect::Stop);
                    break;
                }
            }
        }
        if !view.is_empty() {
            buf = match view.try_into_mut() {
                Ok(unique) => unique,
                Err(shared) => BytesMut::from(&shared[..]),
            };
        }
        if !expects.is_empty() {
            let mut tracker = lock(tracker);
            for expect in expects.drain(..) {
                tracker.expect(expect);
            }
        }
        // An AUTH as a principal seen for the first time: its ACL user must exist before the AUTH reaches the server.
        for oid in std::mem::take(&mut session.to_provision) {
            session.shared.provision(&oid).await;
        }
        if !out.is_empty() {
            backend.write_all(&out).await?;
            backend.flush().await?;
            out.clear();
        }
    }
}

/// Relays the backend's bytes to the client unchanged, counting replies as they pass (each piece is scanned, then
/// written at once: nothing waits for the rest of a reply). Returns when the backend closes.
pub(super) async fn pump_replies<R, W>(
    tracker: &Mutex<Tracker>,
    backend: &mut R,
    client: &mut W,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; 32 * 1024];
    loop {
        let n = backend.read(&mut buf).await?;
        if n == 0 {
            client.flush().await?;
            return Ok(());
        }
        // Credential changes apply before the client sees the reply that confirms them.
        lock(tracker).on_bytes(&buf[..n]);
        client.write_all(&buf[..n]).await?;
        client.flush().await?;
    }
}

/// Resolves when the deadline in `rx` passes; a new value re-arms it.
pub(super) async fn wait_for_deadline(mut rx: watch::Receiver<Option<Instant>>) {
    loop {
        let current = *rx.borrow_and_update();
        match current {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => return,
                    changed = rx.changed() => if changed.is_err() {
                        tokio::time::sleep_until(deadline).await;
                        return;
                    },
                }
            }
            None => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Serves one client connection over `client`, talking to the backend over `backend`.
pub(crate) async fn serve_connection<C, B>(shared: Arc<Shared>, id: u64, client: C, backend: B)
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    B: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut registration = Registration {
        shared: shared.clone(),
        id,
        reason: CloseReason::Client,
        last: LastSeen::default(),
    };
    let (deadline_tx, deadline_rx) = watch::channel(None);
    let tracker = Mutex::new(Tracker::new(shared.clone(), id, deadline_tx));
    let mut session = Session::new(shared, id);
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let (mut backend_rd, mut backend_wr) = tokio::io::split(backend);
    let reason = {
        let up = pump_requests(&mut session, &tracker, &mut client_rd, &mut backend_wr);
        let down = pump_replies(&tracker, &mut backend_rd, &mut client_wr);
        let expiry = wait_for_deadline(deadline_rx);
        tokio::pin!(up, down, expiry);
        let mut client_done = false;
        loop {
            tokio::select! {
                r = &mut up, if !client_done => {
                    client_done = true;
                    if r.is_err() {
                        break CloseReason::Client;
                    }
                    // The client half-closed: the backend was told and closes; keep relaying until it does.
                }
                r = &mut down => {
                    break match r {
                        Ok(()) if !client_done => CloseReason::Backend,
                        _ => CloseReason::Client,
                    };
                }
                () = &mut expiry => break CloseReason::Expired,
            }
        }
    };
    registration.reason = reason;
    registration.last = std::mem::take(&mut session.last);
    if reason == CloseReason::Expired {
        // Best effort: a FIN (and a TLS close_notify) to the client; the backend side is simply dropped.
        let _ = tokio::time::timeout(Duration::from_secs(1), client_wr.shutdown()).await;
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    // Connection tasks live in this set: aborting the accept loop drops it, which aborts them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "gateway accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let id = shared.register(Some(peer));
            let backend = match TcpStream::connect(shared.backend.addr).await {
                Ok(backend) => backend,
                Err(e) => {
                    tracing::warn!(id, error = %e, "gateway could not reach its backend");
                    shared.unregister(id, CloseReason::BackendUnavailable, LastSeen::default());
                    return;
                }
            };
            let _ = backend.set_nodelay(true);
            match tls {
                None => serve_connection(shared, id, tcp, backend).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(shared, id, stream, backend).await,
                        Ok(Err(e)) => {
                            tracing::debug!(id, error = %e, "gateway TLS handshake failed");
                            shared.unregister(id, CloseReason::TlsHandshake, LastSeen::default());
                        }
                        Err(_) => {
                            shared.unregister(id, CloseReason::TlsHandshake, LastSeen::default())
                        }
                    }
                }
            }
        });
    }
}
