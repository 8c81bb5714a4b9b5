//! [`Env`]: where credentials read their environment variables from.
//!
//! Every credential that reads `AZURE_*` or managed-identity variables takes an [`Env`], so tests (and
//! applications that keep configuration elsewhere) can hand it a map instead of mutating the process environment.
//! Empty values count as unset, as in the Azure SDKs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A source of environment variables. Defaults to the process environment.
///
/// ```
/// use entraid_identity::Env;
///
/// let env = Env::from_map([("AZURE_TENANT_ID", "contoso.onmicrosoft.com"), ("AZURE_CLIENT_ID", "")]);
/// assert_eq!(env.get("AZURE_TENANT_ID").as_deref(), Some("contoso.onmicrosoft.com"));
/// assert_eq!(env.get("AZURE_CLIENT_ID"), None); // empty counts as unset
/// assert_eq!(env.get("AZURE_CLIENT_SECRET"), None);
/// ```
#[derive(Clone)]
pub struct Env(Arc<Lookup>);

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self(Arc::new(|name| std::env::var(name).ok()))
    }

    /// A fixed set of variables; nothing else is set.
    pub fn from_map<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let map: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self(Arc::new(move |name| map.get(name).cloned()))
    }

    /// Variables looked up through a function.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(lookup))
    }

    /// The value of a variable; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    /// Whether a variable is set to a non-empty value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::process()
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets (AZURE_CLIENT_SECRET): never shown.
        f.write_str("Env")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_fn_and_debug() {
        let env = Env::from_map([("A", "1"), ("SECRET", "hunter2")]);
        assert!(env.has("A"));
        assert!(!env.has("B"));
        assert_eq!(format!("{env:?}"), "Env");
        let env = Env::from_fn(|n| (n == "X").then(|| "y".to_owned()));
        assert_eq!(env.get("X").as_deref(), Some("y"));
        assert_eq!(env.get("Y"), None);
    }
}
