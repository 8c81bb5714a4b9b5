//! Azure Arc: the challenge answered with a key file read from the agent's tokens folder (checked before it is
//! read), and the fail-closed check that an answer is for the user-assigned identity asked for.

use std::path::{Path, PathBuf};

use entraid_core::{Error, Secret};

use super::{ARC_MAX_KEY_BYTES, ManagedIdentityCredential, NAME, UserAssignedId};
use crate::http::{Request, Response};

impl ManagedIdentityCredential {
    /// Azure Arc: a first request answered by a 401 challenge naming a key file, then the request again with the
    /// file's contents as Basic credentials.
    pub(super) async fn fetch_arc(&self, tokens_dir: &Path) -> Result<Response, Error> {
        let url = self.url("2020-06-01", Some(["client_id", "object_id", "msi_res_id"]));
        let challenge = self
            .http
            .send(Request::get(NAME, url.clone()).header("metadata", "true")?)
            .await?;
        if challenge.status != 401 {
            if challenge.is_success() {
                return Err(Error::authentication_failed(
                    NAME,
                    "Azure Arc answered without the expected 401 challenge",
                ));
            }
            return Ok(challenge);
        }
        let header = challenge
            .headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::authentication_failed(
                    NAME,
                    "Azure Arc's 401 answer has no WWW-Authenticate header",
                )
            })?;
        let key_path = arc_key_path(header, tokens_dir)?;
        let key = read_arc_key(&key_path)?;
        let request = Request::get(NAME, url)
            .header("metadata", "true")?
            .secret_header(
                "authorization",
                &Secret::new(format!("Basic {}", key.expose_secret())),
            )?;
        self.http.send(request).await
    }
}

/// Checks Azure Arc's challenge (`Basic realm=<path>`) and returns the key file's path, rebuilt from its file name
/// inside the expected folder: the path must end in `.key` and its folder must be exactly `tokens_dir`.
pub(crate) fn arc_key_path(challenge: &str, tokens_dir: &Path) -> Result<PathBuf, Error> {
    let refuse = |why: &str| {
        Error::authentication_failed(NAME, format!("refusing Azure Arc's challenge: {why}"))
    };
    let realm = challenge
        .trim()
        .strip_prefix("Basic realm=")
        .or_else(|| challenge.trim().strip_prefix("basic realm="))
        .ok_or_else(|| refuse("it is not `Basic realm=<path>`"))?
        .trim()
        .trim_matches('"');
    let path = Path::new(realm);
    let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(refuse("the realm names no file"));
    };
    if !file_name.ends_with(".key") || file_name.len() <= ".key".len() {
        return Err(refuse("the key file's name does not end in .key"));
    }
    if path.parent() != Some(tokens_dir) {
        return Err(refuse(&format!(
            "the key file is not directly inside {}",
            tokens_dir.display()
        )));
    }
    Ok(tokens_dir.join(file_name))
}

/// Reads an Azure Arc key file after checking that it is a file of at most 4096 bytes.
fn read_arc_key(path: &Path) -> Result<Secret, Error> {
    let metadata = std::fs::metadata(path).map_err(|e| {
        Error::authentication_failed(
            NAME,
            format!("cannot read the Azure Arc key file {}: {e}", path.display()),
        )
    })?;
    if !metadata.is_file() {
        return Err(Error::authentication_failed(
            NAME,
            format!("the Azure Arc key {} is not a file", path.display()),
        ));
    }
    if metadata.len() > ARC_MAX_KEY_BYTES {
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "the Azure Arc key file {} is {} bytes, over the {ARC_MAX_KEY_BYTES} byte limit",
                path.display(),
                metadata.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Error::authentication_failed(
            NAME,
            format!("cannot read the Azure Arc key file {}: {e}", path.display()),
        )
    })?;
    if bytes.len() as u64 > ARC_MAX_KEY_BYTES {
        return Err(Error::authentication_failed(
            NAME,
            "the Azure Arc key file grew over the limit while it was read",
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::authentication_failed(NAME, "the Azure Arc key file is not text"))?;
    Ok(Secret::new(text.trim().to_owned()))
}

/// Azure Arc and user-assigned identities: fail closed unless the answer names the identity asked for, in the
/// response body (`client_id`, `object_id`, `msi_res_id`) or in the token's claims (`appid`/`azp`, `oid`,
/// `xms_mirid`).
pub(crate) fn check_arc_echo(body: &[u8], id: &UserAssignedId) -> Result<(), Error> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let claims = value
        .get("access_token")
        .and_then(|t| t.as_str())
        .and_then(|t| entraid_core::Claims::from_jwt(t).ok());
    let (fields, claim_names): (&[&str], &[&str]) = match id {
        UserAssignedId::ClientId(_) => (&["client_id"], &["appid", "azp"]),
        UserAssignedId::ObjectId(_) => (&["object_id"], &["oid"]),
        UserAssignedId::ResourceId(_) => (&["msi_res_id", "mi_res_id"], &["xms_mirid"]),
    };
    let from_body = fields
        .iter()
        .filter_map(|n| value.get(*n).and_then(|v| v.as_str()));
    let from_claims = claim_names.iter().filter_map(|n| {
        claims
            .as_ref()
            .and_then(|c| c.get(n))
            .and_then(|v| v.as_str())
    });
    let mut echoed = from_body.chain(from_claims).peekable();
    if echoed.peek().is_none() {
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "Azure Arc's answer does not say which identity it is for; refusing it, as the user-assigned {} \
                 cannot be confirmed",
                id.kind()
            ),
        ));
    }
    if echoed.all(|v| v.eq_ignore_ascii_case(id.value())) {
        Ok(())
    } else {
        Err(Error::authentication_failed(
            NAME,
            format!(
                "Azure Arc answered for another identity than the user-assigned {} asked for; refusing the token",
                id.kind()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arc_challenges_are_checked() {
        let dir = Path::new("/var/opt/azcmagent/tokens");
        assert_eq!(
            arc_key_path("Basic realm=/var/opt/azcmagent/tokens/abc.key", dir).unwrap(),
            dir.join("abc.key")
        );
        assert_eq!(
            arc_key_path("Basic realm=\"/var/opt/azcmagent/tokens/abc.key\"", dir).unwrap(),
            dir.join("abc.key")
        );
        for bad in [
            "Bearer realm=/var/opt/azcmagent/tokens/abc.key",
            "Basic realm=/var/opt/azcmagent/tokens/abc.txt",
            "Basic realm=/var/opt/azcmagent/tokens/.key",
            "Basic realm=/etc/abc.key",
            "Basic realm=/var/opt/azcmagent/tokens/sub/abc.key",
            "Basic realm=/var/opt/azcmagent/tokens/../abc.key",
            "Basic realm=/var/opt/azcmagent/tokens/",
            "Basic realm=",
            "Basic realm=abc.key",
        ] {
            let err = arc_key_path(bad, dir).unwrap_err();
            assert!(
                matches!(err, Error::AuthenticationFailed { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn arc_key_files_are_size_checked_before_reading() {
        let dir = std::env::temp_dir().join(format!("entraid-arc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.key");
        std::fs::write(&ok, "the-key\n").unwrap();
        assert_eq!(read_arc_key(&ok).unwrap().expose_secret(), "the-key");
        let big = dir.join("big.key");
        std::fs::write(&big, vec![b'a'; 4097]).unwrap();
        let err = read_arc_key(&big).unwrap_err();
        assert!(err.to_string().contains("4097 bytes"), "{err}");
        let err = read_arc_key(&dir.join("missing.key")).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arc_echo_fails_closed() {
        let body = br#"{"access_token":"x","client_id":"CID"}"#;
        assert!(check_arc_echo(body, &UserAssignedId::ClientId("cid".into())).is_ok());
        let err = check_arc_echo(body, &UserAssignedId::ClientId("other".into())).unwrap_err();
        assert!(err.to_string().contains("another identity"), "{err}");
        let err = check_arc_echo(body, &UserAssignedId::ObjectId("cid".into())).unwrap_err();
        assert!(err.to_string().contains("cannot be confirmed"), "{err}");
        assert!(check_arc_echo(b"not json", &UserAssignedId::ClientId("cid".into())).is_err());
        // The token's claims count too: oid for an object id, xms_mirid for a resource id.
        let jwt =
            entraid_core::unsigned_jwt(&serde_json::json!({"oid": "o-1", "xms_mirid": "/sub/r"}));
        let body = format!(r#"{{"access_token":"{jwt}","client_id":"c"}}"#);
        assert!(check_arc_echo(body.as_bytes(), &UserAssignedId::ObjectId("o-1".into())).is_ok());
        assert!(check_arc_echo(body.as_bytes(), &UserAssignedId::ObjectId("o-2".into())).is_err());
        assert!(
            check_arc_echo(
                body.as_bytes(),
                &UserAssignedId::ResourceId("/SUB/R".into())
            )
            .is_ok()
        );
    }
}
