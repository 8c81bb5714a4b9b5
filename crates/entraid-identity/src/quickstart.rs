//! The Quick Start constructors both adapters offer (managed identity, client secret, client certificate, the
//! default chain), written once: [`quickstart_constructors!`](crate::quickstart_constructors) expands them as
//! inherent methods of an adapter's auth type, each building the credential here and handing it to the adapter's
//! `from_provider` with the token manager options the adapter names.

/// The paths the expansion of [`quickstart_constructors!`](crate::quickstart_constructors) names, so an adapter needs
/// no extra imports. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use entraid_core::{Error, Secret};
}

/// Expands the Quick Start constructors as inherent methods of `$auth`, which must have
/// `fn from_provider(provider: impl IdentityProvider + 'static, options: TokenManagerOptions) -> Result<Self, Error>`;
/// `$options` is evaluated once per call for the token manager options.
///
/// The constructors: `system_assigned_managed_identity()`, `user_assigned_managed_identity(id)`,
/// `client_secret(tenant_id, client_id, secret)`, `client_certificate(tenant_id, client_id, certificate)` and
/// `default_azure_credential()`.
#[macro_export]
macro_rules! quickstart_constructors {
    ($auth:ty, $options:expr) => {
        impl $auth {
            /// The system-assigned managed identity of the Azure host this runs on (IMDS, App Service, Functions,
            /// Arc, Cloud Shell, Azure ML or Service Fabric, detected from the environment).
            pub fn system_assigned_managed_identity()
            -> ::core::result::Result<Self, $crate::quickstart::__private::Error> {
                Self::from_provider(
                    $crate::ManagedIdentityCredential::system_assigned()?,
                    $options,
                )
            }

            /// A user-assigned managed identity, by client id, object id or resource id.
            pub fn user_assigned_managed_identity(
                id: $crate::UserAssignedId,
            ) -> ::core::result::Result<Self, $crate::quickstart::__private::Error> {
                let credential = $crate::ManagedIdentityCredential::builder()
                    .user_assigned(id)
                    .build()?;
                Self::from_provider(credential, $options)
            }

            /// A service principal with a client secret, in `tenant_id` (a tenant id or domain, not `common`).
            pub fn client_secret(
                tenant_id: impl ::core::convert::Into<::std::string::String>,
                client_id: impl ::core::convert::Into<::std::string::String>,
                secret: $crate::quickstart::__private::Secret,
            ) -> ::core::result::Result<Self, $crate::quickstart::__private::Error> {
                let credential = $crate::ClientSecretCredential::new(tenant_id, client_id, secret)?;
                Self::from_provider(credential, $options)
            }

            /// A service principal with a certificate (PS256 assertion, `x5t#S256`), in `tenant_id`.
            pub fn client_certificate(
                tenant_id: impl ::core::convert::Into<::std::string::String>,
                client_id: impl ::core::convert::Into<::std::string::String>,
                certificate: $crate::ClientCertificate,
            ) -> ::core::result::Result<Self, $crate::quickstart::__private::Error> {
                let credential = $crate::ClientCertificateCredential::builder()
                    .tenant_id(tenant_id)
                    .client_id(client_id)
                    .certificate(certificate)
                    .build()?;
                Self::from_provider(credential, $options)
            }

            /// The default chain: environment, workload identity, managed identity, Azure CLI, Azure Developer CLI
            /// (`AZURE_TOKEN_CREDENTIALS` narrows it).
            pub fn default_azure_credential()
            -> ::core::result::Result<Self, $crate::quickstart::__private::Error> {
                Self::from_provider($crate::DefaultAzureCredential::new()?, $options)
            }
        }
    };
}
