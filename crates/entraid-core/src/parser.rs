//! The response-parser hook: how an [`IdentityProviderResponse`] becomes a [`Token`].
//!
//! [`DefaultResponseParser`] calls [`Token::from_response`]. A user with an unusual identity provider (a token in a
//! custom claim, an expiry in a header) supplies their own [`ResponseParser`], or a closure through
//! [`parser_fn`], as the Go README's `IdentityProviderResponseParser`.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::Error;
use crate::response::IdentityProviderResponse;
use crate::token::Token;

/// Turns an identity-provider response into a validated [`Token`].
pub trait ResponseParser: Send + Sync + fmt::Debug {
    /// Parses `response`, received at `received_at` (wall clock).
    fn parse(
        &self,
        response: IdentityProviderResponse,
        received_at: SystemTime,
    ) -> Result<Token, Error>;
}

/// A shared response parser.
pub type SharedResponseParser = Arc<dyn ResponseParser>;

/// The default parser: [`Token::from_response`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultResponseParser;

impl ResponseParser for DefaultResponseParser {
    fn parse(
        &self,
        response: IdentityProviderResponse,
        received_at: SystemTime,
    ) -> Result<Token, Error> {
        Token::from_response(response, received_at)
    }
}

/// A [`ResponseParser`] from a closure.
///
/// ```
/// use entraid_core::{parser_fn, DefaultResponseParser, ResponseParser, IdentityProviderResponse, Token};
///
/// // Log the kind of each response, then parse as usual.
/// let parser = parser_fn(|response: IdentityProviderResponse, received_at| {
///     let _kind = response.kind();
///     DefaultResponseParser.parse(response, received_at)
/// });
/// # let _ = parser;
/// ```
pub fn parser_fn<F>(f: F) -> FnParser<F>
where
    F: Fn(IdentityProviderResponse, SystemTime) -> Result<Token, Error> + Send + Sync,
{
    FnParser(f)
}

/// A [`ResponseParser`] made by [`parser_fn`].
pub struct FnParser<F>(F);

impl<F> fmt::Debug for FnParser<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnParser")
    }
}

impl<F> ResponseParser for FnParser<F>
where
    F: Fn(IdentityProviderResponse, SystemTime) -> Result<Token, Error> + Send + Sync,
{
    fn parse(
        &self,
        response: IdentityProviderResponse,
        received_at: SystemTime,
    ) -> Result<Token, Error> {
        (self.0)(response, received_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::unsigned_jwt;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn default_and_custom_parsers() {
        let received = UNIX_EPOCH + Duration::from_secs(10);
        let response =
            IdentityProviderResponse::raw_token(unsigned_jwt(&json!({"oid": "u", "exp": 100})));
        let shared: SharedResponseParser = Arc::new(DefaultResponseParser);
        assert_eq!(
            shared.parse(response.clone(), received).unwrap().username(),
            "u"
        );

        // A custom parser that takes the username from another claim is free to build the token its own way;
        // here it refuses everything, to show the hook is what runs.
        let custom = parser_fn(|_, _| Err(Error::invalid_response("custom parser refused")));
        let err = custom.parse(response, received).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid identity provider response: custom parser refused"
        );
        assert_eq!(format!("{custom:?}"), "FnParser");
    }
}
