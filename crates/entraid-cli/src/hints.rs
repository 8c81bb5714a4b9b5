//! What to change, given what failed: AADSTS codes, `WRONGPASS`, `NOPERM`, unavailable credentials. The same table
//! is the troubleshooting guide (`docs/troubleshooting.md`); keep them in step.

use entraid_core::Error;

/// AADSTS codes and what to do about each.
pub(crate) const AADSTS_HINTS: &[(i64, &str)] = &[
    (
        50012,
        "the client secret or certificate assertion is wrong: create a new secret under the app registration's \
         'Certificates & secrets' and update AZURE_CLIENT_SECRET (secrets expire)",
    ),
    (
        50013,
        "the certificate assertion was refused: upload this certificate's public key to the app registration, \
         and check the certificate has not expired",
    ),
    (
        50076,
        "multi-factor authentication is required for this user: use a service principal or managed identity for \
         services, or sign in interactively (`az login`) for development",
    ),
    (
        54005,
        "the authorization code was already redeemed: start the sign-in again (codes are single use)",
    ),
    (
        70002,
        "the credentials could not be validated: check the client id, the tenant and the secret or certificate",
    ),
    (
        700024,
        "the client assertion is outside its valid time range: fix this machine's clock (NTP) or refresh the \
         federated token file",
    ),
    (
        70016,
        "the device code is still waiting for the user to sign in (normal while polling)",
    ),
    (
        70019,
        "the device code expired: start the device-code sign-in again",
    ),
    (
        70021,
        "no federated credential matches the presented token: add a federated credential to the app registration \
         (or managed identity) whose issuer, subject and audience match exactly",
    ),
    (
        700016,
        "the application was not found in this tenant: check AZURE_CLIENT_ID and AZURE_TENANT_ID",
    ),
    (
        7000215,
        "an invalid client secret was provided: use the secret's value, not its id, and check it has not expired",
    ),
    (
        7000218,
        "the request has no client secret or assertion: set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH",
    ),
    (
        70011,
        "the scope is invalid: ask for https://redis.azure.com/.default",
    ),
    (
        90002,
        "the tenant was not found: check AZURE_TENANT_ID (a GUID or a verified domain)",
    ),
];

/// The hint for an identity error, when one is known.
pub(crate) fn for_identity_error(error: &Error) -> Option<String> {
    if let Some(entra) = error.entra_error() {
        let hints: Vec<String> = AADSTS_HINTS
            .iter()
            .filter(|(code, _)| entra.has_code(*code))
            .map(|(code, hint)| format!("AADSTS{code}: {hint}"))
            .collect();
        if !hints.is_empty() {
            return Some(hints.join("; "));
        }
    }
    match error {
        Error::CredentialUnavailable { .. } => Some(
            "no credential is available here: on Azure, enable a managed identity on the resource; locally, run \
             `az login`; or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal"
                .to_owned(),
        ),
        Error::Configuration { .. } => {
            Some("fix the option or environment variable the message names".to_owned())
        }
        Error::Timeout { .. } | Error::Transport { .. } => Some(
            "the identity endpoint could not be reached: check network access to it (proxy, firewall, DNS)"
                .to_owned(),
        ),
        _ => None,
    }
}

/// The hint for a wrong audience.
pub(crate) fn wrong_audience(aud: Option<&str>) -> String {
    format!(
        "the token's audience is {} but Redis accepts only https://redis.azure.com: ask for the scope \
         https://redis.azure.com/.default (drop --scope)",
        aud.unwrap_or("(none)")
    )
}

/// The hint for a refused `AUTH`.
pub(crate) fn wrongpass(oid: &str) -> String {
    format!(
        "Redis refused AUTH as {oid}: on the cache, enable Microsoft Entra authentication and assign a data \
         access policy (for example Data Contributor) to the object id {oid} (portal: Data Access Configuration \
         or Authentication; CLI: `az redis access-policy-assignment create`, or \
         `az redisenterprise database access-policy-assignment create` for Azure Managed Redis). A new \
         assignment takes a few minutes"
    )
}

/// The hint for a command refused with `NOPERM`.
pub(crate) fn noperm(command: &str) -> String {
    if command.eq_ignore_ascii_case("CLIENT UNBLOCK") {
        "the identity's access policy refuses CLIENT UNBLOCK (Data Contributor and Data Reader do): connections \
         blocked in BLPOP/BRPOP/XREAD BLOCK cannot be re-authenticated in place and are reconnected before their \
         token expires instead. To avoid that, use a custom access policy that adds `+client|unblock`"
            .to_owned()
    } else {
        format!(
            "the identity's access policy refuses {command}: assign a policy that allows it (Data Owner, Data \
             Contributor, Data Reader for reads only, or a custom policy)"
        )
    }
}

/// The hint for a Redis error reply, by its code.
pub(crate) fn for_redis_error(command: &str, reply: &str, oid: &str) -> Option<String> {
    // fred prefixes the server's error (`Unknown Error: NOPERM ...`, `Auth Error: WRONGPASS ...`).
    let code = reply
        .split_whitespace()
        .find(|w| matches!(*w, "WRONGPASS" | "NOPERM"))
        .unwrap_or_default();
    match code {
        "WRONGPASS" => Some(wrongpass(oid)),
        "NOPERM" => Some(noperm(command)),
        _ if reply.contains("MicrosoftEntraTokenExpired") || reply.contains("expired") => Some(
            "the token had expired when Redis checked it: the connection must AUTH with a new token before \
             expiry (entraid-fred does; check this machine's clock)"
                .to_owned(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entraid_core::EntraError;

    #[test]
    fn aadsts_codes_become_hints() {
        let entra = EntraError::from_json(
            br#"{"error":"invalid_client","error_description":"AADSTS70002: x. AADSTS50012: y.","error_codes":[70002,50012]}"#,
        )
        .unwrap();
        let error = Error::AuthenticationFailed {
            credential: "ClientSecret".into(),
            message: "refused".into(),
            status: Some(401),
            entra: Some(Box::new(entra)),
        };
        let hint = for_identity_error(&error).unwrap();
        assert!(hint.contains("AADSTS50012"), "{hint}");
        assert!(hint.contains("new secret"), "{hint}");
        assert!(hint.contains("AADSTS70002"), "{hint}");
    }

    #[test]
    fn redis_errors_become_hints() {
        let h = for_redis_error("AUTH", "WRONGPASS invalid username-password pair", "o-1").unwrap();
        assert!(h.contains("data access policy") && h.contains("o-1"), "{h}");
        let h = for_redis_error(
            "CLIENT UNBLOCK",
            "NOPERM User o-1 has no permissions",
            "o-1",
        )
        .unwrap();
        assert!(h.contains("+client|unblock"), "{h}");
        let h = for_redis_error("GET", "NOPERM no", "o-1").unwrap();
        assert!(h.contains("refuses GET"), "{h}");
        assert!(for_redis_error("PING", "ERR unknown", "o").is_none());
    }
}
