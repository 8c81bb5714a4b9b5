//! [`ClientCertificateCredential`]: a service principal authenticating with a certificate (private_key_jwt: the
//! client-credentials grant with a signed client assertion).

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse};

use crate::certificate::ClientCertificate;
use crate::signed_assertion::{AssertionSigner, CertificateSettings, certificate_builder_methods};
use crate::token_endpoint::{CommonBuilder, Grant, TokenEndpointClient, common_builder_methods};

const NAME: &str = "ClientCertificate";

/// A service principal authenticating with a certificate (private_key_jwt).
///
/// ```no_run
/// use entraid_identity::{ClientCertificate, ClientCertificateCredential};
///
/// let certificate = ClientCertificate::from_file("/etc/redis-client/cert.pem", None)?;
/// let credential = ClientCertificateCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .certificate(certificate)
///     .build()?;
/// # Ok::<(), entraid_core::Error>(())
/// ```
#[derive(Debug)]
pub struct ClientCertificateCredential {
    client: TokenEndpointClient,
    signer: AssertionSigner,
}

impl ClientCertificateCredential {
    /// A builder.
    pub fn builder() -> ClientCertificateCredentialBuilder {
        ClientCertificateCredentialBuilder::default()
    }

    /// The certificate.
    pub fn certificate(&self) -> &ClientCertificate {
        self.signer.certificate()
    }
}

impl IdentityProvider for ClientCertificateCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let response = self
                .client
                .request_signed(&self.signer, || Grant::ClientCredentials)
                .await?;
            Ok(response.into())
        })
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds a [`ClientCertificateCredential`]. Required: tenant id (or authority), client id, certificate.
/// Defaults: PS256 with `x5t#S256`, no `x5c` chain.
#[derive(Debug, Default)]
pub struct ClientCertificateCredentialBuilder {
    pub(crate) common: CommonBuilder,
    signing: CertificateSettings,
}

impl ClientCertificateCredentialBuilder {
    common_builder_methods!();
    certificate_builder_methods!("The certificate and its key. Required.");

    /// Builds the credential, checking every setting.
    pub fn build(self) -> Result<ClientCertificateCredential, Error> {
        let signer = self
            .signing
            .signer()
            .ok_or_else(|| Error::configuration(format!("{NAME}: no certificate was given")))?;
        Ok(ClientCertificateCredential {
            client: self.common.build(NAME)?,
            signer,
        })
    }
}
