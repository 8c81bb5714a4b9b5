//! IMDS, as a default chain meets it first: the probe that tells "no managed identity here" (unavailable) from an
//! IMDS that answers (then the normal request, with the retries of `retry.rs`).

use entraid_core::Error;
use reqwest::Url;

use super::retry::ImdsRetryPolicy;
use super::{ManagedIdentityCredential, NAME, Source};
use crate::http::{Request, Response};

impl ManagedIdentityCredential {
    /// The IMDS probe of a default chain: until IMDS has answered once, one try within the probe timeout, no
    /// retries. No answer (connection refused, timeout) is unavailable, and so are a 400 for a system-assigned
    /// identity (this host has none) and a 403 saying "unreachable" (Docker Desktop's network). `Some` is the answer
    /// to use; `None` means "IMDS is there: make the normal request, with retries".
    pub(super) async fn probe(&self) -> Result<Option<Response>, Error> {
        use std::sync::atomic::Ordering;
        let (Some(timeout), Source::Imds { endpoint }) = (self.probe, &self.source) else {
            return Ok(None);
        };
        if self.probed.load(Ordering::Acquire) {
            return Ok(None);
        }
        let url = self.url("2018-02-01", Some(["client_id", "object_id", "msi_res_id"]));
        let request = Request::get(NAME, url).header("metadata", "true")?;
        let not_here = |why: String| {
            Error::unavailable(
                NAME,
                format!(
                    "{why} at {} (IMDS); this does not look like an Azure host with a managed identity",
                    host_of(endpoint)
                ),
            )
        };
        let response = match tokio::time::timeout(timeout, self.http.send(request)).await {
            Err(_) => {
                return Err(not_here(format!(
                    "no managed identity endpoint answered within {timeout:?}"
                )));
            }
            Ok(Err(e @ (Error::Transport { .. } | Error::Timeout { .. }))) => {
                return Err(not_here(format!(
                    "no managed identity endpoint answered ({e})"
                )));
            }
            Ok(Err(other)) => return Err(other),
            Ok(Ok(response)) => response,
        };
        if response.status == 400 && self.id.is_none() {
            return Err(not_here(
                "IMDS has no system-assigned identity for this host (HTTP 400)".to_owned(),
            ));
        }
        if response.status == 403 && String::from_utf8_lossy(&response.body).contains("unreachable")
        {
            return Err(not_here("IMDS is unreachable (HTTP 403)".to_owned()));
        }
        self.probed.store(true, Ordering::Release);
        if ImdsRetryPolicy::is_retryable_status(response.status) {
            Ok(None)
        } else {
            Ok(Some(response))
        }
    }
}

pub(super) fn host_of(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    }
}
