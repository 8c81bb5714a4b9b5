//! # entraid-identity
//!
//! Entra ID identity flows spoken over raw HTTP (reqwest + rustls with the ring provider; no Azure SDK, no
//! openssl). Each flow is an [`entraid_core::IdentityProvider`], built from a builder whose defaults are
//! documented; the default scope is `https://redis.azure.com/.default`.
//!
//! | flow | type | Cargo feature |
//! |---|---|---|
//! | managed identity: IMDS, App Service / Functions, Azure Arc, Cloud Shell, Azure ML, Service Fabric | `ManagedIdentityCredential` | `managed-identity` |
//! | client secret | `ClientSecretCredential` | `client-secret` |
//! | client certificate (private_key_jwt), PEM | `ClientCertificateCredential`, `ClientCertificate` | `client-certificate` |
//! | client certificate from PKCS#12 / PFX | `ClientCertificate::from_pkcs12` | `pkcs12` |
//! | workload identity (AKS), any federated assertion (callback or file) | `WorkloadIdentityCredential`, `ClientAssertionCredential` | `workload-identity` |
//! | environment (`AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH`) | `EnvironmentCredential` | `environment` |
//! | default chain (environment → workload identity → managed identity → Azure CLI → azd), `AZURE_TOKEN_CREDENTIALS` | `DefaultAzureCredential` | `default-chain` |
//! | any providers in order, yours included | `ChainedCredential` | `chain` |
//! | Azure CLI, Azure Developer CLI | `AzureCliCredential`, `AzureDeveloperCliCredential` | `azure-cli`, `azure-developer-cli` |
//! | device code | `DeviceCodeCredential` | `device-code` |
//! | interactive browser (authorization code + PKCE S256) | `InteractiveBrowserCredential` | `interactive-browser` |
//! | username + password (ROPC, deprecated by Microsoft) | `UsernamePasswordCredential` | `username-password` |
//! | on-behalf-of (secret or certificate) | `OnBehalfOfCredential` | `on-behalf-of` |
//! | refresh token (automatic in every user flow) | `RefreshTokenCredential` | `refresh-token` |
//! | OpenID Connect discovery, cached per authority | `OidcDiscovery` | `oidc-discovery` |
//! | GitHub Actions, Azure Pipelines federation | `GitHubActionsCredential`, `AzurePipelinesCredential` | `github-actions`, `azure-pipelines` |
//!
//! Every feature is on by default; features are additive and never change another flow's behaviour.
//!
//! Every request goes through one pipeline ([`HttpClient`]): a timeout (30 s by default), no redirects, bodies
//! capped at 1 MiB, a `client-request-id`, and `User-Agent: entraid-identity/<version>`. Errors are
//! [`entraid_core::Error`]s: *unavailable* (this credential cannot work here) is told from *authentication failed*
//! (Entra refused; the error carries the AADSTS codes, trace and correlation ids). Secrets (client secrets, keys,
//! assertions, tokens, managed-identity headers) are [`entraid_core::Secret`]s and never appear in `Debug`,
//! `Display`, logs or errors.
//!
//! ```no_run
//! # async fn run() -> Result<(), entraid_core::Error> {
//! use entraid_core::IdentityProvider;
//! use entraid_identity::ClientSecretCredential;
//!
//! let credential = ClientSecretCredential::new("contoso.onmicrosoft.com", "<client id>", "<secret>".into())?;
//! let token = credential.request_token().await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The shared plumbing (forms, requests, client auth kinds) is only partly used when only some flows are compiled;
// with every feature on (as clippy runs in CI) dead code is still reported.
#![cfg_attr(
    not(all(
        feature = "managed-identity",
        feature = "client-secret",
        feature = "client-certificate",
        feature = "workload-identity",
        feature = "environment",
        feature = "default-chain",
        feature = "chain",
        feature = "azure-cli",
        feature = "azure-developer-cli",
        feature = "oidc-discovery",
        feature = "refresh-token",
        feature = "device-code",
        feature = "interactive-browser",
        feature = "username-password",
        feature = "on-behalf-of",
        feature = "github-actions",
        feature = "azure-pipelines"
    )),
    allow(dead_code, unused_imports)
)]

mod authority;
mod env;
mod form;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod proxy;
mod tls_roots;

#[cfg(any(
    feature = "client-secret",
    feature = "client-certificate",
    feature = "workload-identity",
    feature = "refresh-token"
))]
mod token_endpoint;

#[cfg(feature = "client-secret")]
mod client_secret;

#[cfg(feature = "client-certificate")]
mod certificate;

#[cfg(feature = "client-certificate")]
mod signed_assertion;

#[cfg(feature = "client-certificate")]
mod client_certificate;

#[cfg(feature = "managed-identity")]
mod managed_identity;

#[cfg(feature = "workload-identity")]
mod federated;

#[cfg(feature = "environment")]
mod environment_credential;

#[cfg(feature = "chain")]
mod chain;

#[cfg(feature = "default-chain")]
mod default_chain;

#[cfg(any(feature = "azure-cli", feature = "azure-developer-cli"))]
mod developer_cli;

#[cfg(feature = "oidc-discovery")]
mod discovery;

#[cfg(feature = "refresh-token")]
mod refresh_token;

#[cfg(feature = "device-code")]
mod device_code;

#[cfg(feature = "interactive-browser")]
mod browser;

#[cfg(feature = "username-password")]
mod username_password;

#[cfg(feature = "on-behalf-of")]
mod on_behalf_of;

#[cfg(any(feature = "github-actions", feature = "azure-pipelines"))]
mod ci;

#[cfg(feature = "quickstart")]
#[doc(hidden)]
pub mod quickstart;

pub use authority::{AZURE_AUTHORITY_HOST, Authority, AuthorityHost, AuthorityKind, TenantId};
pub use env::Env;
pub use http::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, HttpClient, HttpOptions, MAX_BODY_BYTES,
    ProxyOptions, USER_AGENT,
};

#[cfg(feature = "client-secret")]
pub use client_secret::{ClientSecretCredential, ClientSecretCredentialBuilder};

#[cfg(feature = "managed-identity")]
pub use managed_identity::{
    ARC_DEFAULT_ENDPOINT, ARC_HIMDS_PATH, ARC_MAX_KEY_BYTES, ARC_TOKENS_DIR, IMDS_ENDPOINT,
    ImdsRetryPolicy, ManagedIdentityCredential, ManagedIdentityCredentialBuilder,
    ManagedIdentitySource, UserAssignedId,
};

#[cfg(feature = "workload-identity")]
pub use federated::{
    ASSERTION_FILE_REREAD, AZURE_FEDERATED_TOKEN_FILE, ClientAssertionCredential,
    ClientAssertionCredentialBuilder, WorkloadIdentityCredential,
    WorkloadIdentityCredentialBuilder,
};

#[cfg(feature = "environment")]
pub use environment_credential::{
    EnvironmentCredential, EnvironmentCredentialBuilder, EnvironmentCredentialKind,
};

#[cfg(feature = "client-certificate")]
pub use certificate::{ASSERTION_LIFETIME, AssertionAlgorithm, ClientCertificate};

#[cfg(feature = "client-certificate")]
pub use client_certificate::{ClientCertificateCredential, ClientCertificateCredentialBuilder};

#[cfg(feature = "client-certificate")]
pub use signed_assertion::ASSERTION_REUSE_MARGIN;

#[cfg(feature = "chain")]
pub use chain::{ChainedCredential, ChainedCredentialBuilder};

#[cfg(feature = "default-chain")]
pub use default_chain::{
    AZURE_TOKEN_CREDENTIALS, ChainLink, DefaultAzureCredential, DefaultAzureCredentialBuilder,
    IMDS_PROBE_TIMEOUT,
};

#[cfg(any(feature = "azure-cli", feature = "azure-developer-cli"))]
pub use developer_cli::CLI_TIMEOUT;

#[cfg(feature = "azure-cli")]
pub use developer_cli::{AzureCliCredential, AzureCliCredentialBuilder};

#[cfg(feature = "azure-developer-cli")]
pub use developer_cli::{AzureDeveloperCliCredential, AzureDeveloperCliCredentialBuilder};

#[cfg(feature = "oidc-discovery")]
pub use discovery::{OidcDiscovery, OpenIdConfiguration};

#[cfg(any(
    feature = "client-secret",
    feature = "client-certificate",
    feature = "workload-identity",
    feature = "refresh-token"
))]
pub use token_endpoint::AZURE_CLI_CLIENT_ID;

#[cfg(feature = "refresh-token")]
pub use refresh_token::{RefreshTokenCredential, RefreshTokenCredentialBuilder};

#[cfg(feature = "device-code")]
pub use device_code::{
    DEFAULT_POLL_INTERVAL, DeviceCodeCredential, DeviceCodeCredentialBuilder, DeviceCodeInfo,
    SLOW_DOWN_INCREMENT,
};

#[cfg(feature = "interactive-browser")]
pub use browser::{
    BROWSER_TIMEOUT, InteractiveBrowserCredential, InteractiveBrowserCredentialBuilder,
};

#[cfg(feature = "username-password")]
pub use username_password::{UsernamePasswordCredential, UsernamePasswordCredentialBuilder};

#[cfg(feature = "on-behalf-of")]
pub use on_behalf_of::{OnBehalfOfCredential, OnBehalfOfCredentialBuilder};

#[cfg(feature = "github-actions")]
pub use ci::{GitHubActionsCredential, GitHubActionsCredentialBuilder};

#[cfg(feature = "azure-pipelines")]
pub use ci::{AzurePipelinesCredential, AzurePipelinesCredentialBuilder};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
