//! Any bytes as `Retry-After` and `x-ms-retry-after-ms` header values (split at the first newline), read as the
//! HTTP pipeline reads them, at a few clock readings. Never a panic.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (first, second) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    for now in [UNIX_EPOCH, UNIX_EPOCH + Duration::from_secs(1_750_000_000)] {
        let _ = entraid_identity::fuzzing::retry_after(first, second, now);
        let _ = entraid_identity::fuzzing::retry_after(second, first, now);
    }
});
