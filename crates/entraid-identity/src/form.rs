//! [`Form`]: an `application/x-www-form-urlencoded` request body, as token endpoints take it.

use entraid_core::Secret;

/// A form body under construction. It may hold secrets, so it has no `Debug`.
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
        if !self.body.is_empty() {
            self.body.push('&');
        }
        encode_into(&mut self.body, name);
        self.body.push('=');
        encode_into(&mut self.body, value);
    }

    /// The encoded body.
    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body.into_bytes()
    }
}

/// Percent-encodes for `application/x-www-form-urlencoded`: alphanumerics and `*-._` as they are, space as `+`.
fn encode_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
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
