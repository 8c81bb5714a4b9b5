//! [`ChainedCredential`]: tries identity providers in order, any [`IdentityProvider`] (your own included).
//!
//! A provider that answers [`Error::CredentialUnavailable`] passes to the next; any other error stops the chain
//! and is returned as it is (its `credential` names the link). The first provider that succeeds is kept: later
//! requests go to it alone (sticky), unless [`ChainedCredentialBuilder::sticky`] turns that off. When every
//! provider is unavailable, the error is a [`Error::CredentialUnavailable`] that lists each provider and its
//! reason, one per line, in order — so chains nest.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use entraid_core::{
    BoxFuture, Error, IdentityProvider, IdentityProviderResponse, SharedIdentityProvider,
};

const NONE: usize = usize::MAX;

/// Identity providers tried in order until one gives a token.
///
/// ```
/// use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse};
/// use entraid_identity::ChainedCredential;
///
/// #[derive(Debug)]
/// struct FromVault;
///
/// impl IdentityProvider for FromVault {
///     fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
///         Box::pin(async { Err(Error::unavailable("FromVault", "no vault on this host")) })
///     }
///     fn name(&self) -> &str {
///         "FromVault"
///     }
/// }
///
/// let chain = ChainedCredential::builder()
///     .push(FromVault)
///     // .push(ManagedIdentityCredential::system_assigned()?) ...
///     .build()
///     .unwrap();
/// assert_eq!(chain.links(), vec!["FromVault"]);
/// ```
pub struct ChainedCredential {
    name: Cow<'static, str>,
    links: Vec<SharedIdentityProvider>,
    sticky: bool,
    selected: AtomicUsize,
}

impl fmt::Debug for ChainedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainedCredential")
            .field("name", &self.name)
            .field("links", &self.links)
            .field("sticky", &self.sticky)
            .field("selected", &self.selected_name())
            .finish()
    }
}

impl ChainedCredential {
    /// A builder.
    pub fn builder() -> ChainedCredentialBuilder {
        ChainedCredentialBuilder::default()
    }

    /// A chain of these providers, in order, with the default options.
    pub fn new(links: Vec<SharedIdentityProvider>) -> Result<Self, Error> {
        ChainedCredentialBuilder {
            links,
            ..ChainedCredentialBuilder::default()
        }
        .build()
    }

    /// The providers' names, in order.
    pub fn links(&self) -> Vec<&str> {
        self.links.iter().map(|l| l.name()).collect()
    }

    /// The provider kept after the first success, if one succeeded.
    pub fn selected_name(&self) -> Option<&str> {
        self.links
            .get(self.selected.load(Ordering::Acquire))
            .map(|l| l.name())
    }

    async fn run(&self) -> Result<IdentityProviderResponse, Error> {
        if self.sticky
            && let Some(link) = self.links.get(self.selected.load(Ordering::Acquire))
        {
            return link.request_token().await;
        }
        let mut reasons: Vec<(String, String)> = Vec::with_capacity(self.links.len());
        for (index, link) in self.links.iter().enumerate() {
            match link.request_token().await {
                Ok(response) => {
                    tracing::debug!(
                        chain = %self.name,
                        credential = link.name(),
                        "the chain got a token"
                    );
                    if self.sticky {
                        self.selected.store(index, Ordering::Release);
                    }
                    return Ok(response);
                }
                Err(Error::CredentialUnavailable { message, .. }) => {
                    tracing::debug!(
                        chain = %self.name,
                        credential = link.name(),
                        reason = %message,
                        "unavailable; trying the next credential"
                    );
                    reasons.push((link.name().to_owned(), message));
                }
                Err(error) => {
                    tracing::debug!(
                        chain = %self.name,
                        credential = link.name(),
                        unavailable_before = reasons.len(),
                        "the chain stops: {error}"
                    );
                    return Err(error);
                }
            }
        }
        Err(Error::unavailable(self.name.clone(), list(&reasons)))
    }
}

/// The chain's message: one line per link, continuation lines indented (for nested chains).
fn list(reasons: &[(String, String)]) -> String {
    let mut text = String::from("no credential in the chain could get a token:");
    for (name, reason) in reasons {
        text.push_str("\n  ");
        text.push_str(name);
        text.push_str(": ");
        text.push_str(&reason.replace('\n', "\n  "));
    }
    text
}

impl IdentityProvider for ChainedCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(self.run())
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// A link that can never work, with the reason (a provider that could not be built).
#[derive(Debug)]
pub(crate) struct Unavailable {
    pub(crate) name: &'static str,
    pub(crate) reason: String,
}

impl IdentityProvider for Unavailable {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move { Err(Error::unavailable(self.name, self.reason.clone())) })
    }

    fn name(&self) -> &str {
        self.name
    }
}

/// Builds a [`ChainedCredential`]. Defaults: name `ChainedCredential`, sticky. At least one provider is
/// required.
#[derive(Default)]
pub struct ChainedCredentialBuilder {
    name: Option<Cow<'static, str>>,
    links: Vec<SharedIdentityProvider>,
    sticky: Option<bool>,
}

impl fmt::Debug for ChainedCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainedCredentialBuilder")
            .field("name", &self.name)
            .field("links", &self.links)
            .field("sticky", &self.sticky)
            .finish()
    }
}

impl ChainedCredentialBuilder {
    /// Adds a provider at the end.
    pub fn push(mut self, provider: impl IdentityProvider + 'static) -> Self {
        self.links.push(SharedIdentityProvider::new(provider));
        self
    }

    /// Adds a shared provider at the end.
    pub fn push_shared(mut self, provider: SharedIdentityProvider) -> Self {
        self.links.push(provider);
        self
    }

    /// The chain's name, in its errors and logs. Default `ChainedCredential`.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the first provider that succeeds is the only one used afterwards. Default `true`.
    pub fn sticky(mut self, sticky: bool) -> Self {
        self.sticky = Some(sticky);
        self
    }

    /// Builds the chain.
    pub fn build(self) -> Result<ChainedCredential, Error> {
        if self.links.is_empty() {
            return Err(Error::configuration(
                "a chained credential needs at least one provider",
            ));
        }
        Ok(ChainedCredential {
            name: self.name.unwrap_or(Cow::Borrowed("ChainedCredential")),
            links: self.links,
            sticky: self.sticky.unwrap_or(true),
            selected: AtomicUsize::new(NONE),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    use super::*;

    /// A provider whose answers follow a script (`u` unavailable, `f` failed, `o` ok), then repeat the last.
    #[derive(Debug)]
    struct Scripted {
        name: &'static str,
        script: &'static str,
        calls: Arc<AtomicU32>,
    }

    impl Scripted {
        fn new(name: &'static str, script: &'static str) -> (Self, Arc<AtomicU32>) {
            let calls = Arc::new(AtomicU32::new(0));
            (
                Self {
                    name,
                    script,
                    calls: calls.clone(),
                },
                calls,
            )
        }
    }

    impl IdentityProvider for Scripted {
        fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
            let step = self
                .script
                .as_bytes()
                .get(n)
                .or(self.script.as_bytes().last())
                .copied();
            Box::pin(async move {
                match step {
                    Some(b'u') => Err(Error::unavailable(self.name, format!("not here ({n})"))),
                    Some(b'f') => Err(Error::authentication_failed(self.name, "refused")),
                    _ => Ok(IdentityProviderResponse::raw_token(format!(
                        "token-{}",
                        self.name
                    ))),
                }
            })
        }

        fn name(&self) -> &str {
            self.name
        }
    }

    fn token(r: IdentityProviderResponse) -> String {
        match r {
            IdentityProviderResponse::RawToken(t) => t.expose_secret().to_owned(),
            other => panic!("{}", other.kind()),
        }
    }

    #[tokio::test]
    async fn unavailable_passes_on_and_the_first_success_is_sticky() {
        let (a, a_calls) = Scripted::new("A", "uo");
        let (b, b_calls) = Scripted::new("B", "o");
        let chain = ChainedCredential::builder()
            .push(a)
            .push(b)
            .build()
            .unwrap();
        assert_eq!(token(chain.request_token().await.unwrap()), "token-B");
        assert_eq!(chain.selected_name(), Some("B"));
        // A would now succeed, but B was kept.
        assert_eq!(token(chain.request_token().await.unwrap()), "token-B");
        assert_eq!(a_calls.load(Ordering::SeqCst), 1);
        assert_eq!(b_calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn without_stickiness_every_request_walks_the_chain() {
        let (a, _) = Scripted::new("A", "uo");
        let (b, _) = Scripted::new("B", "o");
        let chain = ChainedCredential::builder()
            .push(a)
            .push(b)
            .sticky(false)
            .build()
            .unwrap();
        assert_eq!(token(chain.request_token().await.unwrap()), "token-B");
        assert_eq!(token(chain.request_token().await.unwrap()), "token-A");
        assert_eq!(chain.selected_name(), None);
    }

    #[tokio::test]
    async fn a_failure_stops_the_chain_and_is_returned_as_it_is() {
        let (a, _) = Scripted::new("A", "u");
        let (b, _) = Scripted::new("B", "f");
        let (c, c_calls) = Scripted::new("C", "o");
        let chain = ChainedCredential::new(vec![
            SharedIdentityProvider::new(a),
            SharedIdentityProvider::new(b),
            SharedIdentityProvider::new(c),
        ])
        .unwrap();
        let err = chain.request_token().await.unwrap_err();
        assert!(
            matches!(&err, Error::AuthenticationFailed { credential, .. } if credential == "B"),
            "{err}"
        );
        assert_eq!(c_calls.load(Ordering::SeqCst), 0);
        assert_eq!(chain.selected_name(), None);
    }

    #[tokio::test]
    async fn all_unavailable_lists_every_link_in_order_and_chains_nest() {
        let (a, _) = Scripted::new("A", "u");
        let (b, _) = Scripted::new("B", "u");
        let inner = ChainedCredential::builder()
            .name("Inner")
            .push(a)
            .push(b)
            .build()
            .unwrap();
        let (c, _) = Scripted::new("C", "u");
        let outer = ChainedCredential::builder()
            .name("Outer")
            .push(inner)
            .push(c)
            .push(Unavailable {
                name: "D",
                reason: "could not be built".into(),
            })
            .build()
            .unwrap();
        let err = outer.request_token().await.unwrap_err();
        assert!(err.is_unavailable());
        assert_eq!(
            err.to_string(),
            "Outer is unavailable: no credential in the chain could get a token:\n  \
             Inner: no credential in the chain could get a token:\n    \
             A: not here (0)\n    \
             B: not here (0)\n  \
             C: not here (0)\n  \
             D: could not be built"
        );
        assert!(ChainedCredential::builder().build().is_err());
        assert_eq!(outer.links(), vec!["Inner", "C", "D"]);
    }
}
