//! Subscriptions: [`TokenEvent`]s delivered to any number of [`Subscription`]s, each through its own bounded queue.
//!
//! The refresh task pushes each event into every subscriber's queue and moves on: it never waits for a
//! subscriber, so a slow or stuck subscriber blocks neither the refresh loop nor the other subscribers. A queue holds
//! at most `subscription_capacity` undelivered events; when it is full, the oldest undelivered *error* is dropped
//! first and, when there is none, the oldest undelivered token (a newer one supersedes it). So the newest token is
//! always delivered, memory stays bounded however long a subscriber sleeps, and [`Subscription::missed`] counts
//! what was dropped. Dropping a [`Subscription`] removes its queue at once.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use entraid_core::{Error, Token};
use tokio::sync::Notify;

/// What a [`Subscription`] receives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenEvent {
    /// A new token, once per token, in the order the manager received them. The manager already serves it.
    Token(Arc<Token>),
    /// An identity-provider request failed (every failure is reported). The manager keeps retrying, and keeps
    /// serving the previous token until it expires.
    Error(Arc<Error>),
}

impl TokenEvent {
    /// The token, for a [`TokenEvent::Token`].
    pub fn token(&self) -> Option<&Arc<Token>> {
        match self {
            Self::Token(t) => Some(t),
            Self::Error(_) => None,
        }
    }

    /// The error, for a [`TokenEvent::Error`].
    pub fn error(&self) -> Option<&Arc<Error>> {
        match self {
            Self::Error(e) => Some(e),
            Self::Token(_) => None,
        }
    }
}

/// Locks a mutex, carrying on after a panic elsewhere (the data is a queue or a map; no invariant spans a panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<TokenEvent>,
    closed: bool,
    missed: u64,
}

struct Queue {
    state: Mutex<QueueState>,
    notify: Notify,
    capacity: usize,
}

impl Queue {
    fn push(&self, event: TokenEvent) {
        {
            let mut q = lock(&self.state);
            if q.closed {
                return;
            }
            if q.events.len() >= self.capacity {
                let oldest_error = q
                    .events
                    .iter()
                    .position(|e| matches!(e, TokenEvent::Error(_)));
                match oldest_error {
                    Some(i) => drop(q.events.remove(i)),
                    None => drop(q.events.pop_front()),
                }
                q.missed += 1;
            }
            q.events.push_back(event);
        }
        // One consumer per queue: `notify_one` stores a permit when it is not waiting, so no wake-up is lost.
        self.notify.notify_one();
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.notify.notify_one();
    }
}

/// The set of live subscriptions, owned by the manager.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    next_id: u64,
    queues: HashMap<u64, Arc<Queue>>,
    closed: bool,
}

impl Registry {
    /// A new subscription. After [`Registry::close`], it is born closed.
    pub(crate) fn subscribe(self: &Arc<Self>, capacity: usize) -> Subscription {
        let queue = Arc::new(Queue {
            state: Mutex::default(),
            notify: Notify::new(),
            capacity,
        });
        let mut inner = lock(&self.inner);
        let id = inner.next_id;
        inner.next_id += 1;
        if inner.closed {
            lock(&queue.state).closed = true;
        } else {
            inner.queues.insert(id, Arc::clone(&queue));
        }
        Subscription {
            queue,
            id,
            registry: Arc::downgrade(self),
        }
    }

    /// Delivers an event to every subscription. Never waits for a subscriber.
    pub(crate) fn publish(&self, event: &TokenEvent) {
        let inner = lock(&self.inner);
        for queue in inner.queues.values() {
            queue.push(event.clone());
        }
    }

    /// Closes every subscription: each `recv` returns what is queued, then `None`.
    pub(crate) fn close(&self) {
        let queues = {
            let mut inner = lock(&self.inner);
            inner.closed = true;
            std::mem::take(&mut inner.queues)
        };
        for queue in queues.values() {
            queue.close();
        }
    }

    /// The number of live subscriptions.
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).queues.len()
    }

    fn remove(&self, id: u64) {
        // Taken out under the lock, dropped after it.
        let removed = lock(&self.inner).queues.remove(&id);
        drop(removed);
    }
}

/// A stream of [`TokenEvent`]s from a [`TokenManager`](crate::TokenManager): every new token once, in order, and
/// every error. Made by [`TokenManager::subscribe`](crate::TokenManager::subscribe).
///
/// A subscription sees events that happen after it was made; read
/// [`TokenManager::current`](crate::TokenManager::current) after subscribing for the token held now (reading it
/// before subscribing can miss a token published in between; [`TokenManager::watch`](crate::TokenManager::watch)
/// cannot miss one). An answer repeating the token already held is not an event. Dropping it
/// unsubscribes. It does not keep the manager alive: when the manager stops, [`Subscription::recv`] returns the
/// events still queued, then `None`.
///
/// # Queue policy
/// Each subscription has its own queue of at most
/// [`subscription_capacity`](crate::TokenManagerOptions::subscription_capacity) events (default 64). The manager
/// never waits for a subscriber. When a queue is full, the oldest undelivered error is dropped to make room, or,
/// without one, the oldest undelivered token (a newer token supersedes it); [`Subscription::missed`] counts them.
/// The newest token is therefore always delivered. With tokens arriving once per refresh (minutes to hours), a
/// subscriber that reads at all never misses one.
pub struct Subscription {
    queue: Arc<Queue>,
    id: u64,
    registry: Weak<Registry>,
}

impl Subscription {
    /// The next event; `None` once the manager has stopped and the queue is drained.
    ///
    /// Cancel safe: dropping the future loses no event.
    pub async fn recv(&mut self) -> Option<TokenEvent> {
        loop {
            {
                let mut q = lock(&self.queue.state);
                if let Some(event) = q.events.pop_front() {
                    return Some(event);
                }
                if q.closed {
                    return None;
                }
            }
            self.queue.notify.notified().await;
        }
    }

    /// The next event if one is queued now, without waiting.
    pub fn try_recv(&mut self) -> Option<TokenEvent> {
        lock(&self.queue.state).events.pop_front()
    }

    /// Events queued and not yet received.
    pub fn len(&self) -> usize {
        lock(&self.queue.state).events.len()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many events were dropped from this subscription's full queue (see the queue policy).
    pub fn missed(&self) -> u64 {
        lock(&self.queue.state).missed
    }

    /// Whether the manager has stopped (queued events can still be received).
    pub fn is_closed(&self) -> bool {
        lock(&self.queue.state).closed
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(self.id);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = lock(&self.queue.state);
        f.debug_struct("Subscription")
            .field("queued", &q.events.len())
            .field("missed", &q.missed)
            .field("closed", &q.closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entraid_core::{IdentityProviderResponse, unsigned_jwt};
    use std::time::{Duration, UNIX_EPOCH};

    fn token(n: u64) -> TokenEvent {
        let received = UNIX_EPOCH + Duration::from_secs(1000);
        let jwt = unsigned_jwt(&serde_json::json!({"oid": format!("u{n}"), "exp": 5000}));
        let t = Token::from_response(IdentityProviderResponse::raw_token(jwt), received).unwrap();
        TokenEvent::Token(Arc::new(t))
    }

    fn error(n: u64) -> TokenEvent {
        TokenEvent::Error(Arc::new(Error::transport("p", format!("e{n}"), None)))
    }

    fn name(e: &TokenEvent) -> String {
        match e {
            TokenEvent::Token(t) => t.username().to_owned(),
            TokenEvent::Error(e) => e.to_string(),
        }
    }

    #[test]
    fn full_queue_drops_oldest_error_then_oldest_token() {
        let registry = Arc::new(Registry::default());
        let mut sub = registry.subscribe(3);
        registry.publish(&token(1));
        registry.publish(&error(1));
        registry.publish(&token(2));
        registry.publish(&error(2)); // drops e1
        registry.publish(&error(3)); // drops e2
        registry.publish(&token(3)); // drops e3
        registry.publish(&token(4)); // no error left: drops u1
        assert_eq!(sub.missed(), 4);
        let got: Vec<String> = std::iter::from_fn(|| sub.try_recv())
            .map(|e| name(&e))
            .collect();
        assert_eq!(got, ["u2", "u3", "u4"]);
    }

    #[test]
    fn drop_unsubscribes_and_close_ends_streams() {
        let registry = Arc::new(Registry::default());
        let a = registry.subscribe(4);
        let mut b = registry.subscribe(4);
        assert_eq!(registry.len(), 2);
        drop(a);
        assert_eq!(registry.len(), 1);
        registry.publish(&error(1));
        registry.close();
        assert_eq!(registry.len(), 0);
        assert!(b.is_closed());
        assert_eq!(b.len(), 1);
        // Born closed after close; publishing after close reaches nobody.
        let late = registry.subscribe(4);
        assert!(late.is_closed());
        registry.publish(&error(2));
        assert!(late.is_empty());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(b.recv().await.is_some());
            assert!(b.recv().await.is_none());
        });
        assert!(format!("{b:?}").contains("closed: true"));
    }

    #[test]
    fn event_accessors() {
        let t = token(1);
        assert!(t.token().is_some() && t.error().is_none());
        let e = error(1);
        assert!(e.error().is_some() && e.token().is_none());
        // Debug of a token event shows no secret.
        assert!(!format!("{t:?}").contains("eyJ"));
    }
}
