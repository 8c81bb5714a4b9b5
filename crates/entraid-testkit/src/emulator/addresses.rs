//! Where each emulated endpoint is, and the secrets and trust a credential needs to reach it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Emulator, HttpClient};
use crate::keys::{JwtVerifier, TestKey};
use crate::tls::TestCa;

impl Emulator {
    // ----- URLs and trust -----

    /// `http://127.0.0.1:<port>`.
    pub fn http_url(&self) -> &str {
        &self.inner.http_url
    }

    /// `https://127.0.0.1:<port>` (trust [`Emulator::ca_cert_pem`]).
    pub fn https_url(&self) -> &str {
        &self.inner.https_url
    }

    /// The SHA-1 thumbprint (lower-case hex) of the certificate the HTTPS listener presents: what a Service Fabric
    /// cluster puts in `IDENTITY_SERVER_THUMBPRINT` for its managed identity endpoint.
    pub fn https_cert_thumbprint(&self) -> &str {
        &self.inner.https_cert_sha1
    }

    /// The test CA that signed the HTTPS certificate.
    pub fn ca(&self) -> &TestCa {
        &self.inner.ca
    }

    /// The test CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> &str {
        self.inner.ca.ca_cert_pem()
    }

    /// A small HTTP client trusting the emulator's CA.
    pub fn client(&self) -> HttpClient {
        HttpClient::new(self.inner.ca.rustls_client_config())
    }

    /// The default tenant's id.
    pub fn tenant_id(&self) -> &str {
        &self.inner.default_tenant
    }

    /// The authority for a tenant: `https://127.0.0.1:<port>/{tenant}` (what a client calls its authority; the
    /// authority host is [`Emulator::https_url`]).
    pub fn authority(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.inner.https_url)
    }

    /// The HTTPS token endpoint of a tenant (the `aud` certificate assertions must carry; the HTTP form is
    /// accepted too).
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.inner.https_url)
    }

    /// The issuer (`iss`) of a tenant's tokens: `https://127.0.0.1:<port>/{tenant}/v2.0`, whichever listener
    /// minted them.
    pub fn issuer(&self, tenant: &str) -> String {
        self.inner.issuer(tenant)
    }

    /// The JWKS the emulator serves (`{"keys":[<entra key JWK>]}`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [TestKey::entra().jwk()]})
    }

    /// A verifier trusting the emulator's signing key (what the Redis gateway uses).
    pub fn verifier(&self) -> JwtVerifier {
        JwtVerifier::new([TestKey::entra()])
    }

    /// The IMDS token endpoint: `http://127.0.0.1:<port>/metadata/identity/oauth2/token`.
    pub fn imds_endpoint(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.inner.http_url)
    }

    /// The App Service endpoint (`IDENTITY_ENDPOINT`): `http://127.0.0.1:<port>/msi/token`.
    pub fn app_service_endpoint(&self) -> String {
        format!("{}/msi/token", self.inner.http_url)
    }

    /// The secret `X-IDENTITY-HEADER` must carry (`IDENTITY_HEADER`).
    pub fn app_service_secret(&self) -> &str {
        &self.inner.app_service_secret
    }

    /// The Azure Arc endpoint (`IDENTITY_ENDPOINT`): `http://127.0.0.1:<port>/arc/metadata/identity/oauth2/token`.
    pub fn arc_endpoint(&self) -> String {
        format!("{}/arc/metadata/identity/oauth2/token", self.inner.http_url)
    }

    /// The Cloud Shell endpoint (`MSI_ENDPOINT`): `http://127.0.0.1:<port>/cloudshell/oauth2/token`.
    pub fn cloud_shell_endpoint(&self) -> String {
        format!("{}/cloudshell/oauth2/token", self.inner.http_url)
    }

    /// The Azure ML endpoint (`MSI_ENDPOINT`): `http://127.0.0.1:<port>/azureml/msi/token`.
    pub fn azure_ml_endpoint(&self) -> String {
        format!("{}/azureml/msi/token", self.inner.http_url)
    }

    /// The secret the Azure ML `secret` header must carry (`MSI_SECRET`).
    pub fn azure_ml_secret(&self) -> &str {
        &self.inner.azure_ml_secret
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL`: `http://127.0.0.1:<port>/github/idtoken?api-version=2.0`.
    pub fn github_oidc_url(&self) -> String {
        format!("{}/github/idtoken?api-version=2.0", self.inner.http_url)
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`: the bearer token the GitHub OIDC endpoint requires.
    pub fn github_request_token(&self) -> &str {
        &self.inner.github_request_token
    }

    /// The subject (`sub`) of GitHub OIDC tokens. Default `repo:octo-org/octo-repo:ref:refs/heads/main`.
    pub fn github_subject(&self) -> String {
        self.inner.lock().github_subject.clone()
    }

    /// Changes the subject of GitHub OIDC tokens.
    pub fn set_github_subject(&self, subject: impl Into<String>) {
        self.inner.lock().github_subject = subject.into();
    }

    /// `SYSTEM_OIDCREQUESTURI`: `http://127.0.0.1:<port>/pipelines/oidctoken`.
    pub fn pipelines_oidc_url(&self) -> String {
        format!("{}/pipelines/oidctoken", self.inner.http_url)
    }

    /// `SYSTEM_ACCESSTOKEN`: the bearer token the Pipelines OIDC endpoint requires.
    pub fn pipelines_request_token(&self) -> &str {
        &self.inner.pipelines_request_token
    }

    /// The subject of Pipelines OIDC tokens for a service connection: `sc://entraid-org/entraid-project/<id>`.
    pub fn pipelines_subject(service_connection_id: &str) -> String {
        super::oidc::pipelines_subject(service_connection_id)
    }

    /// A Kubernetes service-account token (the workload identity file's content), signed by
    /// [`TestKey::kubernetes`]: `iss` [`KUBERNETES_ISSUER`](crate::emulator::KUBERNETES_ISSUER), `sub` `system:serviceaccount:<ns>:<sa>`, `aud`
    /// `["api://AzureADTokenExchange"]`, valid for `lifetime` from the emulator's now.
    pub fn kubernetes_token(
        &self,
        namespace: &str,
        service_account: &str,
        lifetime: Duration,
    ) -> String {
        let now = self.now_unix();
        super::oidc::kubernetes_token(namespace, service_account, now, lifetime)
    }

    /// Trusts another federated issuer: assertions with this `iss` are verified with `key` (by `kid`).
    pub fn trust_issuer(&self, issuer: impl Into<String>, key: &TestKey) {
        self.inner
            .lock()
            .issuers
            .entry(issuer.into())
            .or_default()
            .push(key.clone());
    }
}
