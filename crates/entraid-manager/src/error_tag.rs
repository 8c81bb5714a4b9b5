//! [`ErrorTag`]: carries the manager's `Arc<entraid_core::Error>` through error types that hold only text.
//!
//! fred's `Error` is a kind and a string, and redis-rs's `AuthenticationFailed` errors carry a string detail: an
//! adapter cannot put an `entraid_core::Error` inside them. It writes an [`ErrorTag`] into the text instead
//! (`[entraid-rs error #17]`), and [`ErrorTag::find`] gives the error back from that text, with its
//! `is_retryable()`, `entra_error()` and AADSTS codes. The process keeps the [`ErrorTag::CAPACITY`] most recently
//! tagged distinct errors; an older tag finds nothing.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use entraid_core::Error;

/// The text an [`ErrorTag`] writes before its number.
const PREFIX: &str = "[entraid-rs error #";

/// The process's tags.
static RECENT: Recent = Recent::new();

/// Tagged errors: the most recent first-come [`ErrorTag::CAPACITY`], with numbers never reused (so a tag never
/// finds another error).
struct Recent {
    next: AtomicU64,
    errors: Mutex<VecDeque<(u64, Arc<Error>)>>,
}

impl Recent {
    const fn new() -> Self {
        Self {
            next: AtomicU64::new(1),
            errors: Mutex::new(VecDeque::new()),
        }
    }

    fn register(&self, error: &Arc<Error>) -> ErrorTag {
        let mut recent = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, _)) = recent.iter().find(|(_, e)| Arc::ptr_eq(e, error)) {
            return ErrorTag(*id);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if recent.len() >= ErrorTag::CAPACITY {
            recent.pop_front();
        }
        recent.push_back((id, Arc::clone(error)));
        ErrorTag(id)
    }

    fn find(&self, text: &str) -> Option<Arc<Error>> {
        let id = ErrorTag::parse(text)?;
        let recent = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .find(|(n, _)| *n == id.0)
            .map(|(_, e)| Arc::clone(e))
    }
}

/// A short marker naming one `entraid_core::Error`, for text-only error types; its `Display` is
/// `[entraid-rs error #<n>]`.
///
/// ```
/// use std::sync::Arc;
/// use entraid_core::Error;
/// use entraid_manager::ErrorTag;
///
/// let error = Arc::new(Error::transport("ManagedIdentityCredential", "connection refused", None));
/// let text = format!("no Entra ID token for Redis: {error} {}", ErrorTag::register(&error));
/// let found = ErrorTag::find(&text).expect("tagged a moment ago");
/// assert!(Arc::ptr_eq(&found, &error));
/// assert!(found.is_retryable());
/// assert!(ErrorTag::find("no tag here").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorTag(u64);

impl ErrorTag {
    /// How many distinct errors the process remembers (the most recent ones).
    pub const CAPACITY: usize = 64;

    /// The tag of `error`: the tag it already has when it is among the errors remembered (the same `Arc`, as
    /// the manager hands out one `Arc` per failure), a new one otherwise.
    pub fn register(error: &Arc<Error>) -> Self {
        RECENT.register(error)
    }

    /// The error whose tag appears in `text` (the last tag, when there are several), while it is remembered.
    pub fn find(text: &str) -> Option<Arc<Error>> {
        RECENT.find(text)
    }

    /// The last tag written in `text`.
    pub fn parse(text: &str) -> Option<Self> {
        let start = text.rfind(PREFIX)? + PREFIX.len();
        let rest = &text[start..];
        let end = rest.find(']')?;
        rest[..end].parse().ok().map(Self)
    }
}

impl fmt::Display for ErrorTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}]", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(n: usize) -> Arc<Error> {
        Arc::new(Error::configuration(format!("error {n}")))
    }

    #[test]
    fn the_same_error_keeps_its_tag_and_a_new_one_gets_a_new_tag() {
        let (a, b) = (error(1), error(2));
        let tag = ErrorTag::register(&a);
        assert_eq!(ErrorTag::register(&a), tag);
        assert_ne!(ErrorTag::register(&b), tag);
        let text = format!("Authentication Error: no token: {a} {tag}");
        assert_eq!(ErrorTag::parse(&text), Some(tag));
        assert!(Arc::ptr_eq(&ErrorTag::find(&text).unwrap(), &a));
    }

    #[test]
    fn hostile_text_finds_nothing_and_never_panics() {
        for text in [
            "",
            "[entraid-rs error #",
            "[entraid-rs error #]",
            "[entraid-rs error #abc]",
            "[entraid-rs error #99999999999999999999999]",
            "[entraid-rs error #18446744073709551615]",
            "é[entraid-rs error #1é",
        ] {
            assert!(ErrorTag::find(text).is_none(), "{text}");
        }
    }

    #[test]
    fn only_the_most_recent_errors_are_remembered() {
        // A registry of its own: the process's is shared with the other tests.
        let recent = Recent::new();
        let first = error(0);
        let tag = recent.register(&first);
        let rest: Vec<_> = (1..=ErrorTag::CAPACITY).map(error).collect();
        for e in &rest {
            recent.register(e);
        }
        assert!(recent.find(&tag.to_string()).is_none());
        let last = rest.last().unwrap();
        let tag = recent.register(last);
        assert!(Arc::ptr_eq(&recent.find(&tag.to_string()).unwrap(), last));
    }
}
