//! [`Secret`]: a string that never shows itself.
//!
//! Access tokens, refresh tokens, client secrets, passwords and assertions are held in a [`Secret`]. Its `Debug`
//! prints `Secret([redacted])`, it has no `Display`, and its memory is zeroed when it is dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string: redacted in `Debug`, without `Display`, zeroed on drop.
///
/// ```
/// use entraid_core::Secret;
///
/// let secret = Secret::new("hunter2");
/// assert_eq!(format!("{secret:?}"), "Secret([redacted])");
/// assert_eq!(secret.expose_secret(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret value.
    ///
    /// # Security
    /// The returned string is the secret itself: send it where it belongs (a request body, an `AUTH` command) and
    /// never log, print or format it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The length of the secret in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::from("s3cr3t-value");
        let shown = format!("{secret:?} {secret:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(secret.len(), 12);
        assert!(!secret.is_empty());
    }

    #[test]
    fn deserializes_from_json_string() {
        let secret: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(secret.expose_secret(), "abc");
    }
}
