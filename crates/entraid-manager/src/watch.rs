//! [`TokenWatch`]: the manager's tokens as one stream of numbered generations that cannot miss the latest one.
//!
//! A [`Subscription`](crate::Subscription) is a queue of events: it sees what happens after it was made, so a
//! reader that takes [`TokenManager::current`](crate::TokenManager::current) and then subscribes can miss a token
//! published in between. A `TokenWatch` reads the manager's own state (a tokio `watch` channel): the value it
//! shows and the change it waits for are the same, so nothing falls between them. Each genuinely new token is a
//! new generation; an answer that repeats the token held is not.

use std::fmt;
use std::sync::Arc;

use entraid_core::Token;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::WallClock;
use crate::state::State;

/// One generation of the manager's token: its number, the token, and its expiry on tokio's clock.
#[derive(Clone)]
#[non_exhaustive]
pub struct TokenGeneration {
    /// 1 for the first token, +1 for each genuinely new token.
    pub generation: u64,
    /// The token.
    pub token: Arc<Token>,
    /// When the token expires, on tokio's clock (corrected from the wall clock after a detected suspend).
    pub expires_at: Instant,
}

impl fmt::Debug for TokenGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGeneration")
            .field("generation", &self.generation)
            .field("username", &self.token.username())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The newest token of a [`TokenManager`](crate::TokenManager), as numbered generations, from
/// [`TokenManager::watch`](crate::TokenManager::watch).
///
/// [`TokenWatch::borrow`] shows the newest generation; [`TokenWatch::changed`] waits for a generation newer than
/// the last one this watch returned (from `changed` or [`TokenWatch::borrow_and_update`]). A watch made when a
/// token is held has not "seen" it, so its first `changed` returns it at once: a reader that starts with
/// `changed` (or `borrow_and_update`) can miss no token. Tokens that have expired, on tokio's clock or on the
/// wall clock, are never handed out. A watch does not keep the manager alive; after shutdown `changed` returns
/// `None`.
pub struct TokenWatch {
    rx: watch::Receiver<State>,
    clock: WallClock,
    seen: u64,
}

/// The generation in `s`, if its token is valid on both clocks.
fn read(s: &State, clock: &WallClock) -> Option<TokenGeneration> {
    let token = s.servable(Instant::now(), clock.now())?;
    Some(TokenGeneration {
        generation: s.generation,
        token: Arc::clone(token),
        expires_at: s.expires_at?,
    })
}

impl TokenWatch {
    pub(crate) fn new(rx: watch::Receiver<State>, clock: WallClock) -> Self {
        Self { rx, clock, seen: 0 }
    }

    /// The newest generation, if its token is still valid; does not mark it seen.
    pub fn borrow(&self) -> Option<TokenGeneration> {
        read(&self.rx.borrow(), &self.clock)
    }

    /// The newest generation, if its token is still valid, and marks it seen: the next
    /// [`TokenWatch::changed`] waits for a newer one.
    pub fn borrow_and_update(&mut self) -> Option<TokenGeneration> {
        let s = self.rx.borrow_and_update();
        let read = read(&s, &self.clock);
        self.seen = self.seen.max(s.generation);
        read
    }

    /// The newest generation number (0 before the first token), whether or not its token is still valid.
    pub fn generation(&self) -> u64 {
        self.rx.borrow().generation
    }

    /// The last generation number this watch returned.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Waits for a generation newer than the last one returned, and returns it. `None`: the manager has stopped.
    ///
    /// Cancel safe. A generation whose token expired before it was read is skipped.
    pub async fn changed(&mut self) -> Option<TokenGeneration> {
        loop {
            let seen = self.seen;
            let generation = {
                let s = self
                    .rx
                    .wait_for(|s| s.closed || s.generation > seen)
                    .await
                    .ok()?;
                if s.closed {
                    return None;
                }
                self.seen = s.generation;
                read(&s, &self.clock)
            };
            if generation.is_some() {
                return generation;
            }
        }
    }
}

impl fmt::Debug for TokenWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenWatch")
            .field("generation", &self.generation())
            .field("seen", &self.seen)
            .finish()
    }
}
