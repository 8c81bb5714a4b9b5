//! [`IdentityProvider`]: the trait a source of tokens implements, and [`SharedIdentityProvider`], its shared form.
//!
//! The trait is object safe (`request_token` returns a boxed future), so providers can be chained and stored as
//! `Arc<dyn IdentityProvider>` without generics leaking through every layer. A user brings their own identity crate
//! by implementing it; nothing else from this project is needed on that side. A provider describes its requests
//! with a [`RequestHint`] (how long one may take, whether it needs a person), which the token manager honours.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::response::IdentityProviderResponse;

/// A boxed, `Send` future, as object-safe async traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a provider tells the token manager about its requests: how long one may take, and whether it needs a
/// person (a browser sign-in, a device code).
///
/// The default describes an unattended request (a managed identity endpoint, a client secret, a CLI): no duration
/// of its own (the manager's `request_timeout` applies) and no person involved, so failures are retried.
///
/// ```
/// use std::time::Duration;
/// use entraid_core::RequestHint;
///
/// let unattended = RequestHint::default();
/// assert_eq!(unattended.max_duration(), None);
/// assert!(!unattended.is_interactive());
///
/// let browser = RequestHint::interactive(Duration::from_secs(300));
/// assert_eq!(browser.max_duration(), Some(Duration::from_secs(300)));
/// assert!(browser.is_interactive());
///
/// let slow = RequestHint::default().with_max_duration(Duration::from_secs(90));
/// assert_eq!(slow.max_duration(), Some(Duration::from_secs(90)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestHint {
    max_duration: Option<Duration>,
    interactive: bool,
}

impl RequestHint {
    /// An unattended request with no duration of its own: the default.
    pub const fn unattended() -> Self {
        Self {
            max_duration: None,
            interactive: false,
        }
    }

    /// A request that waits for a person for up to `max_duration` (a browser sign-in, a device code). The token
    /// manager waits that long for it, and does not repeat it on its own after it failed (a new prompt loop).
    pub const fn interactive(max_duration: Duration) -> Self {
        Self {
            max_duration: Some(max_duration),
            interactive: true,
        }
    }

    /// The same hint with the longest time one request may take.
    #[must_use]
    pub const fn with_max_duration(mut self, max_duration: Duration) -> Self {
        self.max_duration = Some(max_duration);
        self
    }

    /// The longest time one request may take, when the provider knows it; `None`: the caller's own timeout.
    pub const fn max_duration(&self) -> Option<Duration> {
        self.max_duration
    }

    /// Whether a request may need a person.
    pub const fn is_interactive(&self) -> bool {
        self.interactive
    }
}

/// A source of access tokens for Redis.
///
/// `request_token` asks the identity provider for a new token every time it is called; caching and refresh timing
/// are the token manager's job. Return [`Error::CredentialUnavailable`] when this provider cannot work in this
/// environment, so a chain can try the next one, and [`Error::is_retryable`] errors for failures worth retrying.
///
/// ```
/// use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, SharedIdentityProvider};
///
/// #[derive(Debug)]
/// struct FromMyVault;
///
/// impl IdentityProvider for FromMyVault {
///     fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
///         Box::pin(async move {
///             let jwt = String::from("eyJ...fetched-from-my-vault");
///             Ok(IdentityProviderResponse::raw_token(jwt))
///         })
///     }
/// }
///
/// let shared = SharedIdentityProvider::new(FromMyVault);
/// assert_eq!(shared.name(), "custom");
/// ```
pub trait IdentityProvider: Send + Sync + fmt::Debug {
    /// Requests a new token.
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>>;

    /// A short name for logs and chain errors, for example `ManagedIdentity`.
    fn name(&self) -> &str {
        "custom"
    }

    /// How long one request may take and whether it needs a person. Default [`RequestHint::unattended`].
    ///
    /// Interactive providers (browser, device code) override it, so a token manager waits for the person instead
    /// of cancelling the request after its usual timeout, and does not prompt again in a loop after a failure.
    fn request_hint(&self) -> RequestHint {
        RequestHint::unattended()
    }
}

/// A cheaply cloneable, shared [`IdentityProvider`].
#[derive(Clone)]
pub struct SharedIdentityProvider(Arc<dyn IdentityProvider>);

impl SharedIdentityProvider {
    /// Shares a provider.
    pub fn new(provider: impl IdentityProvider + 'static) -> Self {
        Self(Arc::new(provider))
    }
}

impl fmt::Debug for SharedIdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<Arc<dyn IdentityProvider>> for SharedIdentityProvider {
    fn from(value: Arc<dyn IdentityProvider>) -> Self {
        Self(value)
    }
}

impl IdentityProvider for SharedIdentityProvider {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        self.0.request_token()
    }

    fn name(&self) -> &str {
        self.0.name()
    }

    fn request_hint(&self) -> RequestHint {
        self.0.request_hint()
    }
}

/// Implements [`IdentityProvider`] for smart pointers to a provider, forwarding every method to the pointee.
macro_rules! forward_through_pointer {
    ($($pointer:ident),+) => {$(
        impl<P: IdentityProvider + ?Sized> IdentityProvider for $pointer<P> {
            fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
                (**self).request_token()
            }

            fn name(&self) -> &str {
                (**self).name()
            }

            fn request_hint(&self) -> RequestHint {
                (**self).request_hint()
            }
        }
    )+};
}

forward_through_pointer!(Arc, Box);

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll, Waker};

    #[derive(Debug)]
    struct Fixed(&'static str);

    impl IdentityProvider for Fixed {
        fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
            Box::pin(async move { Ok(IdentityProviderResponse::raw_token(self.0)) })
        }

        fn name(&self) -> &str {
            "Fixed"
        }
    }

    /// Polls a future that is ready at once (no runtime in this crate).
    fn ready<T>(mut f: BoxFuture<'_, T>) -> T {
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("future was not ready"),
        }
    }

    #[test]
    fn object_safe_and_shared() {
        let dynamic: Arc<dyn IdentityProvider> = Arc::new(Fixed("a.b.c"));
        let shared = SharedIdentityProvider::from(dynamic);
        let clone = shared.clone();
        assert_eq!(clone.name(), "Fixed");
        assert_eq!(format!("{clone:?}"), "Fixed(\"a.b.c\")");
        let response = ready(clone.request_token()).unwrap();
        assert_eq!(response.kind(), "RawToken");
        let boxed: Box<dyn IdentityProvider> = Box::new(shared);
        assert!(ready(boxed.request_token()).is_ok());
    }

    #[derive(Debug)]
    struct Prompting;

    impl IdentityProvider for Prompting {
        fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
            Box::pin(async move { Err(Error::unavailable("Prompting", "no person here")) })
        }

        fn request_hint(&self) -> RequestHint {
            RequestHint::interactive(Duration::from_secs(300))
        }
    }

    #[test]
    fn request_hints_default_to_unattended_and_pass_through_wrappers() {
        assert_eq!(Fixed("a").request_hint(), RequestHint::unattended());
        assert_eq!(RequestHint::default(), RequestHint::unattended());
        let expected = RequestHint::interactive(Duration::from_secs(300));
        assert_eq!(
            SharedIdentityProvider::new(Prompting).request_hint(),
            expected
        );
        assert_eq!(Arc::new(Prompting).request_hint(), expected);
        let boxed: Box<dyn IdentityProvider> = Box::new(Prompting);
        assert_eq!(boxed.request_hint(), expected);
        let dynamic: Arc<dyn IdentityProvider> = Arc::new(Prompting);
        assert_eq!(
            SharedIdentityProvider::from(dynamic).request_hint(),
            expected
        );
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<SharedIdentityProvider>();
        assert_send_sync::<Error>();
    }
}
