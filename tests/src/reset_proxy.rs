//! [`ResetProxy`]: a TCP proxy on 127.0.0.1 that forwards to one address and, on request, resets a random live
//! connection (TCP RST through a zero linger), as a load balancer, a NAT table flush or a failing node does.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Shared {
    next_id: AtomicU64,
    accepted: AtomicU64,
    resets: AtomicU64,
    /// The live connections, each with the sender that resets it.
    live: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl Shared {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running proxy. Dropping it stops accepting and closes every connection it serves.
pub struct ResetProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ResetProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ResetProxy {
    /// Starts a proxy on a free 127.0.0.1 port in front of `target`.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(accept_loop(listener, target, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resets one live connection chosen at random (both sides: RST to the client, the upstream side closed).
    /// Returns whether there was one.
    pub fn reset_random(&self) -> bool {
        let mut live = self.shared.live();
        if live.is_empty() {
            return false;
        }
        let pick = usize::try_from(
            RandomState::new().hash_one(self.shared.resets.load(Ordering::Relaxed)),
        )
        .unwrap_or(0)
            % live.len();
        let Some(id) = live.keys().nth(pick).copied() else {
            return false;
        };
        match live.remove(&id) {
            Some(reset) => {
                let _ = reset.send(());
                self.shared.resets.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// How many connections were reset so far.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::Relaxed)
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// How many connections are open now.
    pub fn open(&self) -> usize {
        self.shared.live().len()
    }
}

impl Drop for ResetProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    // Connection tasks live in this set: aborting the accept loop drops it, which aborts them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (reset, on_reset) = oneshot::channel();
        shared.live().insert(id, reset);
        let shared = shared.clone();
        connections.spawn(async move {
            serve(client, target, on_reset).await;
            shared.live().remove(&id);
        });
    }
}

async fn serve(mut client: TcpStream, target: SocketAddr, on_reset: oneshot::Receiver<()>) {
    let _ = client.set_nodelay(true);
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let reset = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => false,
        signal = on_reset => signal.is_ok(),
    };
    if reset {
        // A zero linger turns the close into a RST: the client sees "connection reset by peer".
        let _ = client.set_zero_linger();
    }
}
