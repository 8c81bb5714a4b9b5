//! Integration tests of the token manager against a scripted fake identity provider, all on tokio's paused clock
//! (except one multi-threaded single-flight test, which waits on no clock at all).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions: a failed unwrap fails the test, as it should"
)]

mod support;

mod clocks;
mod identical;
mod interactive;
mod jitter;
mod lifecycle;
mod refresh;
mod retry;
mod single_flight;
mod subscriptions;
mod watch;
