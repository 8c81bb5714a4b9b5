//! [`Form`]: an `application/x-www-form-urlencoded` request body, as token endpoints take it.

use entraid_core::Secret;

/// A form body under construction, encoded by `form_urlencoded` (alphanumerics and `*-._` as they are, space as
/// `+`, every other byte `%XX`). It may hold secrets, so it has no `Debug`.
#[derive(Default)]
pub(crate) struct Form {
    body: String,
}

impl Form {
    /// An empty form.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a field whose value is not secret.
    pub(crate) fn field(mut self, name: &str, value: &str) -> Self {
        self.push(name, value);
        self
    }

    /// Adds a field whose value is secret.
    pub(crate) fn secret(mut self, name: &str, value: &Secret) -> Self {
        self.push(name, value.expose_secret());
        self
    }

    fn push(&mut self, name: &str, value: &str) {
        // The serializer writes into the body (from its start, so it puts `&` between pairs) and is dropped here:
        // it is not `Send`, and forms are held across awaits.
        form_urlencoded::Serializer::for_suffix(&mut self.body, 0).append_pair(name, value);
    }

    /// The encoded body.
    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_a_browser() {
        let body = Form::new()
            .field("grant_type", "client_credentials")
            .field("scope", "https://redis.azure.com/.default")
            .secret("client_secret", &Secret::new("a+b/c=d&e f~é"))
            .into_body();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "grant_type=client_credentials&scope=https%3A%2F%2Fredis.azure.com%2F.default\
             &client_secret=a%2Bb%2Fc%3Dd%26e+f%7E%C3%A9"
        );
        assert!(Form::new().into_body().is_empty());
    }
}
