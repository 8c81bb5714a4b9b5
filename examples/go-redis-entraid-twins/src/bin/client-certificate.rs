//! go-redis-entraid's "Client Certificate Authentication" example. Go loads `cert.pem` + `key.pem` with
//! `tls.LoadX509KeyPair`; here one PEM (or PFX) file holds both, as `AZURE_CLIENT_CERTIFICATE_PATH` does for the
//! Azure SDKs (its password, for a PFX, in `AZURE_CLIENT_CERTIFICATE_PASSWORD`).

use entraid_example_go_redis_entraid_twins::{BoxError, connect_and_ping, required};
use entraid_fred::{ClientCertificate, EntraIdAuth, Secret};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let password = std::env::var("AZURE_CLIENT_CERTIFICATE_PASSWORD")
        .ok()
        .map(Secret::new);
    let certificate = ClientCertificate::from_file(
        required("AZURE_CLIENT_CERTIFICATE_PATH")?,
        password.as_ref(),
    )?;
    let auth = EntraIdAuth::client_certificate(
        required("AZURE_TENANT_ID")?,
        required("AZURE_CLIENT_ID")?,
        certificate,
    )?;
    connect_and_ping(&auth, "client-certificate").await
}
