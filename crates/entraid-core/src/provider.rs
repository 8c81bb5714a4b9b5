//! [`IdentityProvider`]: the trait a source of tokens implements, and [`SharedIdentityProvider`], its shared form.
//!
//! The trait is object safe (`request_token` returns a boxed future), so providers can be chained and stored as
//! `Arc<dyn IdentityProvider>` without generics leaking through every layer. A user brings their own identity crate
//! by implementing it; nothing else from this project is needed on that side.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::Error;
use crate::response::IdentityProviderResponse;

/// A boxed, `Send` future, as object-safe async traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
}

impl<P: IdentityProvider + ?Sized> IdentityProvider for Arc<P> {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        (**self).request_token()
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

impl<P: IdentityProvider + ?Sized> IdentityProvider for Box<P> {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        (**self).request_token()
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

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

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<SharedIdentityProvider>();
        assert_send_sync::<Error>();
    }
}
