//! The convenience constructors' construction errors (which need no network). The credentials behind them are
//! `entraid-identity`'s, tested end to end against the emulator there and in the workspace's `tests/` package.

#![cfg(feature = "identity")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use entraid_core::Error;
use entraid_redis::EntraIdAuth;

#[tokio::test]
async fn constructors_refuse_bad_configuration_before_any_request() {
    let err =
        EntraIdAuth::client_secret("common", "00000000-0000-0000-0000-000000000001", "s".into())
            .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
    assert!(err.to_string().contains("tenant"), "{err}");
    let err = EntraIdAuth::client_secret("bad tenant!", "client", "s".into()).unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
}
