//! Any bytes as a certificate file: PEM (when it looks like PEM), else PKCS#12, with and without a password; and
//! the same bytes wrapped in PEM blocks of each kind the loader reads. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use entraid_identity::fuzzing as f;
    let _ = f::certificate(data, None);
    let _ = f::certificate(data, Some("password"));
    let text = String::from_utf8_lossy(data);
    for kind in ["CERTIFICATE", "PRIVATE KEY", "RSA PRIVATE KEY"] {
        let pem = format!("-----BEGIN {kind}-----\n{text}\n-----END {kind}-----\n");
        let _ = f::certificate(pem.as_bytes(), None);
    }
});
